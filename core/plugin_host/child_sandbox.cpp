// SPDX-License-Identifier: Apache-2.0
#include "child_sandbox.hpp"

#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace streamrelay {

bool dieWithRelay(pid_t relay) {
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return false;
  return ::getppid() == relay;  // the relay may have died before the call
}

std::string forbidNewPrivileges() {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return std::string("PR_SET_NO_NEW_PRIVS: ") + std::strerror(errno);
  return "";
}

std::string limitHeap(std::uint64_t bytes) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  (void)bytes;  // their shadow memory is private writable mappings, counted as data
  return "";
#else
  const rlimit limit{bytes, bytes};
  if (::setrlimit(RLIMIT_DATA, &limit) != 0) return std::string("RLIMIT_DATA: ") + std::strerror(errno);
  return "";
#endif
}

namespace {

// System calls any plugin may make, without looking at their arguments.
const char* const kAllowed[] = {
    // files (SQLite: its database, journal, WAL and shared-memory files)
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2",
    "open", "openat", "close", "close_range", "lseek", "stat", "fstat", "lstat", "newfstatat", "statx", "statfs",
    "fstatfs", "access", "faccessat", "faccessat2", "readlink", "readlinkat", "getdents64", "getcwd", "fcntl",
    "flock", "fsync", "fdatasync", "sync_file_range", "ftruncate", "fallocate", "fadvise64", "unlink", "unlinkat",
    "rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "fchmod", "fchown", "umask", "dup", "dup2",
    "dup3", "pipe", "pipe2",
    // waiting on descriptors
    "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait",
    "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "timerfd_create", "timerfd_settime", "timerfd_gettime",
    // sockets (Redis, NATS, the metrics server; DNS); socket() itself is checked below
    "socketpair", "connect", "bind", "listen", "accept", "accept4", "getsockname", "getpeername", "getsockopt",
    "setsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown",
    // memory (mprotect with PROT_EXEC too: libraries loaded later, such as NSS modules, and JITs)
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "msync", "mincore", "membarrier",
    // threads and time
    "futex", "futex_waitv", "set_robust_list", "get_robust_list", "rseq", "set_tid_address", "sched_yield",
    "sched_getaffinity", "sched_getparam", "sched_getscheduler", "sched_get_priority_max",
    "sched_get_priority_min", "gettid", "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getgroups",
    "getresuid", "getresgid", "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday",
    "time", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "rt_sigpending", "sigaltstack",
    "restart_syscall", "pause", "rt_sigsuspend", "exit", "exit_group", "arch_prctl",
    // about the process and the system, read only
    "getrlimit", "getrusage", "times", "sysinfo", "uname", "getrandom",
};

// Where the arguments matter.
struct Rule {
  const char* name;
  scmp_arg_cmp test;
};

// The names of the system calls, looked up before the filter is installed:
// the SIGSYS handler only reads this table (async-signal-safe).
constexpr int kNamedCalls = 512;
const char* callNames[kNamedCalls] = {};

void appendText(char* line, std::size_t& used, std::size_t capacity, const char* text) {
  while (*text && used < capacity) line[used++] = *text++;
}

void appendNumber(char* line, std::size_t& used, std::size_t capacity, long n) {
  char digits[24];
  int count = 0;
  unsigned long v = n < 0 ? 0 : static_cast<unsigned long>(n);
  do digits[count++] = static_cast<char>('0' + v % 10);
  while ((v /= 10) != 0 && count < 23);
  while (count > 0 && used < capacity) line[used++] = digits[--count];
}

// SIGSYS from the filter: one line naming the call, then death by SIGSYS.
void onRefusedCall(int, siginfo_t* info, void*) {
  char line[256];
  std::size_t used = 0;
  const int call = info ? info->si_syscall : -1;
  appendText(line, used, sizeof line - 1, "streamrelay plugin child: the seccomp filter refused system call ");
  appendText(line, used, sizeof line - 1, call >= 0 && call < kNamedCalls && callNames[call] ? callNames[call] : "?");
  appendText(line, used, sizeof line - 1, " (");
  appendNumber(line, used, sizeof line - 1, call);
  appendText(line, used, sizeof line - 1, "); process.seccomp: false lifts the filter");
  line[used++] = '\n';
  if (::write(STDERR_FILENO, line, used) < 0) {
    // nothing more to do: the death by SIGSYS says enough
  }
  ::signal(SIGSYS, SIG_DFL);
  ::raise(SIGSYS);  // delivered when the handler returns
}

void nameCalls() {
  for (int call = 0; call < kNamedCalls; ++call) callNames[call] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, call);
}

struct FilterDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};

}  // namespace

std::string installSeccompFilter() {
  nameCalls();
  struct sigaction action {};
  action.sa_sigaction = &onRefusedCall;
  action.sa_flags = SA_SIGINFO;
  ::sigaction(SIGSYS, &action, nullptr);

  std::unique_ptr<void, FilterDeleter> filter(seccomp_init(SCMP_ACT_TRAP));
  if (!filter) return "seccomp_init failed";
  const scmp_filter_ctx ctx = filter.get();
  auto allow = [&](const char* name, unsigned count, const scmp_arg_cmp* tests) -> std::string {
    const int call = seccomp_syscall_resolve_name(name);
    if (call == __NR_SCMP_ERROR) return "";  // not a system call of this architecture
    const int rc = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, call, count, tests);
    return rc == 0 ? "" : std::string("seccomp rule for ") + name + ": " + std::strerror(-rc);
  };
  for (const char* name : kAllowed)
    if (std::string e = allow(name, 0, nullptr); !e.empty()) return e;

  const pid_t self = ::getpid();
  const Rule rules[] = {
      // threads, never new processes
      {"clone", SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)},
      // the sockets plugins use: local, IPv4, IPv6, and netlink for getaddrinfo
      {"socket", SCMP_A0(SCMP_CMP_EQ, AF_UNIX)},
      {"socket", SCMP_A0(SCMP_CMP_EQ, AF_INET)},
      {"socket", SCMP_A0(SCMP_CMP_EQ, AF_INET6)},
      {"socket", SCMP_A0(SCMP_CMP_EQ, AF_NETLINK)},
      // descriptor flags and terminal queries (isatty), nothing that talks to a device
      {"ioctl", SCMP_A1(SCMP_CMP_EQ, FIONREAD)},
      {"ioctl", SCMP_A1(SCMP_CMP_EQ, FIONBIO)},
      {"ioctl", SCMP_A1(SCMP_CMP_EQ, FIOCLEX)},
      {"ioctl", SCMP_A1(SCMP_CMP_EQ, FIONCLEX)},
      {"ioctl", SCMP_A1(SCMP_CMP_EQ, TCGETS)},
      {"ioctl", SCMP_A1(SCMP_CMP_EQ, TIOCGWINSZ)},
      // naming threads and mappings
      {"prctl", SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME)},
      {"prctl", SCMP_A0(SCMP_CMP_EQ, PR_GET_NAME)},
#ifdef PR_SET_VMA
      {"prctl", SCMP_A0(SCMP_CMP_EQ, PR_SET_VMA)},
#endif
      // reading limits, never raising them
      {"prlimit64", SCMP_A2(SCMP_CMP_EQ, 0)},
      // signals to itself only (raise, abort, a thread of its own)
      {"kill", SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(self))},
      {"tgkill", SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(self))},
  };
  for (const Rule& r : rules)
    if (std::string e = allow(r.name, 1, &r.test); !e.empty()) return e;
  // glibc tries clone3 first and falls back to clone on ENOSYS; clone3's flags
  // sit in memory, where a filter cannot look.
  if (int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0); rc != 0)
    return std::string("seccomp rule for clone3: ") + std::strerror(-rc);
  if (int rc = seccomp_load(ctx); rc != 0) return std::string("seccomp_load: ") + std::strerror(-rc);
  return "";
}

}  // namespace streamrelay
