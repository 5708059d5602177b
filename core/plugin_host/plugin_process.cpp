// SPDX-License-Identifier: Apache-2.0
#include "plugin_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

extern char** environ;

namespace streamrelay {

namespace {

// Descriptors are moved out of the way to here first, so that putting them
// at 3, 4, ... never overwrites one still to be placed.
constexpr int kParkedFdsFrom = 100;

std::runtime_error spawnError(const std::string& what, int error) {
  return std::runtime_error("cannot start the plugin's child process: " + what + ": " + std::strerror(error));
}

// Under a sanitizer the child is instrumented too. Its crashes must stay
// plain signals, as in a release build (the relay reports them), and it must
// not start a symbolizer or a leak checker, which its seccomp filter forbids.
std::vector<std::string> childEnvironment() {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The sanitizers' flag parsers split on spaces as well as colons.
  const std::string options = "handle_segv=0 handle_sigbus=0 handle_sigfpe=0 handle_sigill=0 handle_abort=0 "
                              "symbolize=0 detect_leaks=0";
  for (const char* name : {"ASAN_OPTIONS", "TSAN_OPTIONS", "UBSAN_OPTIONS"}) {
    const std::string prefix = std::string(name) + "=";
    bool found = false;
    for (std::string& e : env)
      if (e.rfind(prefix, 0) == 0) {
        e += " " + options;
        found = true;
      }
    if (!found) env.push_back(prefix + options);
  }
#endif
  return env;
}

int openPidFd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  return -1;
#endif
}

}  // namespace

PluginProcess::PluginProcess(const std::string& instanceName, const std::vector<int>& fds) {
  int output[2];
  if (::pipe2(output, O_CLOEXEC) != 0) throw spawnError("pipe", errno);
  std::vector<int> parked;
  auto closeAll = [&] {
    for (int fd : parked) ::close(fd);
    ::close(output[1]);
  };
  for (int fd : fds) {
    const int p = ::fcntl(fd, F_DUPFD_CLOEXEC, kParkedFdsFrom);
    if (p < 0) {
      const int error = errno;
      closeAll();
      ::close(output[0]);
      throw spawnError("dup", error);
    }
    parked.push_back(p);
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, output[1], 1);
  posix_spawn_file_actions_adddup2(&actions, output[1], 2);
  for (std::size_t i = 0; i < parked.size(); ++i)
    posix_spawn_file_actions_adddup2(&actions, parked[i], kChildControlFd + static_cast<int>(i));
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 34)
  posix_spawn_file_actions_addclosefrom_np(&actions, kChildControlFd + static_cast<int>(parked.size()));
#endif
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setpgroup(&attributes, 0);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);

  const std::string relay = std::to_string(::getpid());
  std::vector<std::string> argvText{"streamrelay", kPluginChildFlag, instanceName, relay};
  std::vector<char*> argv;
  for (std::string& a : argvText) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> envText = childEnvironment();
  std::vector<char*> envp;
  for (std::string& e : envText) envp.push_back(e.data());
  envp.push_back(nullptr);

  const int rc = ::posix_spawn(&pid_, "/proc/self/exe", &actions, &attributes, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  closeAll();
  if (rc != 0) {
    ::close(output[0]);
    throw spawnError("posix_spawn", rc);
  }
  outputFd_ = output[0];
  ::fcntl(outputFd_, F_SETFL, O_NONBLOCK);
  exitFd_ = openPidFd(pid_);
}

PluginProcess::~PluginProcess() {
  if (!reaped_) {
    kill();
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (exitFd_ >= 0) ::close(exitFd_);
  ::close(outputFd_);
}

void PluginProcess::kill() {
  if (!reaped_) ::kill(pid_, SIGKILL);
}

bool PluginProcess::reap(int& status) {
  if (reaped_) return false;
  pid_t r;
  while ((r = ::waitpid(pid_, &status, WNOHANG)) < 0 && errno == EINTR) {
  }
  if (r != pid_) return false;
  reaped_ = true;
  return true;
}

std::uint64_t PluginProcess::residentBytes() const {
  std::ifstream statm("/proc/" + std::to_string(pid_) + "/statm");
  std::uint64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

std::string describeExit(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* abbrev = ::sigabbrev_np(sig);
    return abbrev ? std::string("signal SIG") + abbrev : "signal " + std::to_string(sig);
  }
  return "status " + std::to_string(status);
}

}  // namespace streamrelay
