// SPDX-License-Identifier: Apache-2.0
#pragma once
// What the fan-out benches (web_fanout_bench, tls_fanout_bench,
// selection_bench) share: loopback sockets, a server's CPU time, the
// framings they read (length-prefixed frames, the streamrelay protocol's
// 24-byte header, NATS' MSG lines), the epoll loop that reads every
// subscriber, and a latency histogram. Plain TCP only; a bench with TLS
// wraps its reads and writes around these.
//
// Header-only, POSIX and the standard library; a bench is one .cpp file
// plus this one (tests/bench/CMakeLists.txt builds them).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace bench {

inline std::int64_t nowNs() {  // steady (monotonic): the same clock in every process of this machine
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// ---- CPU time ------------------------------------------------------------

// The CPU time of a process, all its threads (exited ones too), in ns from
// the kernel's process CPU clock: /proc's utime + stime count ticks of 10 ms,
// too coarse for a server that spends a fraction of a second in a run. The
// /proc figure stays as the fallback where the clock cannot be read.
inline double cpuSecondsOf(long pid) {
  if (pid <= 0) return 0;
  clockid_t clock{};
  timespec spent{};
  if (::clock_getcpuclockid(static_cast<pid_t>(pid), &clock) == 0 && ::clock_gettime(clock, &spent) == 0)
    return static_cast<double>(spent.tv_sec) + static_cast<double>(spent.tv_nsec) / 1e9;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const std::size_t paren = text.rfind(')');
  if (paren == std::string::npos) return 0;  // the process is gone
  std::istringstream fields(text.substr(paren + 2));
  std::string skip;
  for (int i = 0; i < 11; ++i) fields >> skip;  // fields 3..13
  double utime = 0, stime = 0;
  fields >> utime >> stime;
  return (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// The CPU time of a process and its children (nginx's workers).
inline double treeCpuSecondsOf(long pid) {
  if (pid <= 0) return 0;
  double total = cpuSecondsOf(pid);
  std::ifstream children("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  for (long child; children >> child;) total += treeCpuSecondsOf(child);
  return total;
}

inline double ownCpuSeconds() {  // this process, every thread
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// ---- loopback sockets ----------------------------------------------------

inline sockaddr_in addressOf(const std::string& hostPort) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  const std::size_t colon = hostPort.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("not HOST:PORT: " + hostPort);
  a.sin_port = htons(static_cast<std::uint16_t>(std::stoi(hostPort.substr(colon + 1))));
  if (inet_pton(AF_INET, hostPort.substr(0, colon).c_str(), &a.sin_addr) != 1)
    throw std::runtime_error("not an IPv4 address: " + hostPort);
  if ((ntohl(a.sin_addr.s_addr) >> 24) != 127) throw std::runtime_error("loopback only: " + hostPort);
  return a;
}

inline int connectTo(const std::string& hostPort) {
  const sockaddr_in a = addressOf(hostPort);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (;;) {  // the server may still be starting: retry refusals until the deadline
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno) + " (ulimit -n?)");
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0) {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return fd;
    }
    ::close(fd);
    if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("cannot connect to " + hostPort);
    pollfd none{-1, 0, 0};
    ::poll(&none, 0, 20);  // retry interval for a server that is starting
  }
}

// Listens on hostPort and takes one connection (a relay's tcp source
// connecting to the bench as its upstream) within `timeoutMs`. The caller
// closes both descriptors: {listening, accepted}.
inline std::pair<int, int> acceptOne(const std::string& hostPort, int timeoutMs) {
  const int listenFd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(listenFd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const sockaddr_in a = addressOf(hostPort);
  if (::bind(listenFd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 || ::listen(listenFd, 1) != 0)
    throw std::runtime_error("cannot listen on " + hostPort);
  pollfd p{listenFd, POLLIN, 0};
  if (::poll(&p, 1, timeoutMs) != 1) throw std::runtime_error("the relay did not connect to " + hostPort);
  const int fd = ::accept4(listenFd, nullptr, nullptr, SOCK_CLOEXEC);
  // The feed is written in small paced bursts: without TCP_NODELAY Nagle holds
  // each burst until the relay's delayed ACK (up to 40 ms), a latency that is
  // the bench's own (connectTo sets it for nats-server's publisher as well).
  if (fd >= 0) ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return {listenFd, fd};
}

// `count` different loopback ports nobody listens on now (each held until
// all are chosen), for servers that must be told their port.
inline std::vector<int> freePorts(int count) {
  std::vector<int> held, ports;
  for (int i = 0; i < count; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &size) != 0)
      throw std::runtime_error("cannot bind a loopback port");
    held.push_back(fd);
    ports.push_back(ntohs(a.sin_port));
  }
  for (int fd : held) ::close(fd);
  return ports;
}

inline void sendAll(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const long n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n <= 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {  // a non-blocking socket: wait until it takes more
        pollfd p{fd, POLLOUT, 0};
        ::poll(&p, 1, 1000);
        continue;
      }
      throw std::runtime_error(std::string("send failed: ") + std::strerror(errno));
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}
inline void sendAll(int fd, const std::string& bytes) { sendAll(fd, bytes.data(), bytes.size()); }

// ---- framings ------------------------------------------------------------

inline std::uint32_t bigEndian32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (static_cast<std::uint32_t>(u[0]) << 24) | (static_cast<std::uint32_t>(u[1]) << 16) |
         (static_cast<std::uint32_t>(u[2]) << 8) | u[3];
}

// Length-prefixed frames: a u32 big-endian payload size at the start of a
// `headerBytes` header (4: the raw framing; 24: the streamrelay protocol's
// header, whose bytes 4-5 are the stream id). Calls onFrame(header, payload,
// size) for each whole frame; returns the bytes taken.
template <class OnFrame>
std::size_t takeFrames(const char* data, std::size_t have, std::size_t headerBytes, OnFrame&& onFrame) {
  std::size_t taken = 0;
  while (have - taken >= headerBytes) {
    const char* header = data + taken;
    const std::uint32_t size = bigEndian32(header);
    if (have - taken < headerBytes + size) break;
    onFrame(header, header + headerBytes, static_cast<std::size_t>(size));
    taken += headerBytes + size;
  }
  return taken;
}

// The streamrelay protocol's control frames (the answer to a hello,
// heartbeats) carry stream id 0xFFFF (sdk/include/streamrelay/wire.hpp).
inline bool isControlFrame(const char* header24) {
  return static_cast<unsigned char>(header24[4]) == 0xff && static_cast<unsigned char>(header24[5]) == 0xff;
}

// The NATS protocol as a subscriber reads it: "MSG subject sid [reply] size\r\n
// payload\r\n" calls onMessage(payload, size); any other line (INFO, PING,
// PONG, +OK, -ERR) calls onLine(line, size without the CRLF). Returns the
// bytes taken.
template <class OnMessage, class OnLine>
std::size_t takeNatsMessages(const char* data, std::size_t have, OnMessage&& onMessage, OnLine&& onLine) {
  std::size_t taken = 0;
  while (taken < have) {
    const char* line = data + taken;
    const std::size_t left = have - taken;
    const char* eol = static_cast<const char*>(std::memchr(line, '\n', left));
    if (!eol) break;
    const std::size_t lineBytes = static_cast<std::size_t>(eol - line) + 1;
    if (lineBytes < 4 || std::strncmp(line, "MSG ", 4) != 0) {
      onLine(line, lineBytes >= 2 ? lineBytes - 2 : 0);
      taken += lineBytes;
      continue;
    }
    const char* space = static_cast<const char*>(memrchr(line, ' ', lineBytes));
    const std::size_t size = std::strtoul(space + 1, nullptr, 10);
    if (left < lineBytes + size + 2) break;
    onMessage(line + lineBytes, size);
    taken += lineBytes + size + 2;
  }
  return taken;
}

// Bytes read and not yet parsed, for one connection.
struct ReadBuffer {
  std::string bytes;
  std::size_t begin = 0;

  const char* data() const { return bytes.data() + begin; }
  std::size_t size() const { return bytes.size() - begin; }
  void append(const char* data, std::size_t size) { bytes.append(data, size); }
  void consume(std::size_t n) {  // compacts once everything or a lot was taken
    begin += n;
    if (begin == bytes.size() || begin > (1u << 20)) {
      bytes.erase(0, begin);
      begin = 0;
    }
  }
};

// ---- the reader thread ---------------------------------------------------

// Reads every descriptor of `fds` with epoll until `stopping`:
// read(i, buffer, capacity) returns what one read of connection i got (<= 0:
// nothing more now), onBytes(i, data, size) takes it, and afterEachWait()
// runs once per epoll_wait (to wake a publisher waiting for progress).
template <class Read, class OnBytes, class AfterEachWait>
void epollReadLoop(const std::vector<int>& fds, const std::atomic<bool>& stopping, Read&& read, OnBytes&& onBytes,
                   AfterEachWait&& afterEachWait) {
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  for (std::size_t i = 0; i < fds.size(); ++i) {
    ::fcntl(fds[i], F_SETFL, ::fcntl(fds[i], F_GETFL) | O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
  }
  std::vector<char> chunk(256 * 1024);
  epoll_event events[256];
  while (!stopping.load()) {
    const int n = epoll_wait(ep, events, 256, 50);
    for (int e = 0; e < n; ++e) {
      const std::size_t i = events[e].data.u64;
      for (;;) {
        const long got = read(i, chunk.data(), chunk.size());
        if (got <= 0) break;
        onBytes(i, chunk.data(), static_cast<std::size_t>(got));
      }
    }
    afterEachWait();
  }
  ::close(ep);
}

// Joins a thread on every way out of a scope, so that an error is reported,
// not std::terminate.
struct JoinOnExit {
  std::thread& thread;
  std::atomic<bool>& stopping;
  ~JoinOnExit() {
    stopping.store(true);
    if (thread.joinable()) thread.join();
  }
};

// ---- latency -------------------------------------------------------------

// Nanoseconds in buckets of ~3% (32 per power of two), up to ~68 s. One
// thread records; read after it stopped.
class LatencyHistogram {
 public:
  void record(std::int64_t ns) {
    if (ns < 1) ns = 1;
    ++counts_[bucketOf(static_cast<std::uint64_t>(ns))];
    ++total_;
  }
  std::uint64_t count() const { return total_; }
  // The upper bound of the bucket holding the q-quantile (0 if empty).
  double quantileNs(double q) const {
    if (total_ == 0) return 0;
    const auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total_)));
    std::uint64_t seen = 0;
    for (std::size_t b = 0; b < kBuckets; ++b) {
      seen += counts_[b];
      if (seen >= rank && counts_[b] > 0) return upperOf(b);
    }
    return upperOf(kBuckets - 1);
  }

 private:
  static constexpr int kSub = 32;  // buckets per power of two
  static constexpr std::size_t kBuckets = 37 * kSub;
  static std::size_t bucketOf(std::uint64_t ns) {
    if (ns < kSub) return static_cast<std::size_t>(ns);
    const int log = 63 - __builtin_clzll(ns);  // >= 5
    const auto sub = static_cast<std::size_t>((ns >> (log - 5)) & (kSub - 1));
    const std::size_t b = static_cast<std::size_t>(log - 4) * kSub + sub;
    return b < kBuckets ? b : kBuckets - 1;
  }
  static double upperOf(std::size_t b) {
    if (b < kSub) return static_cast<double>(b);
    const int log = static_cast<int>(b / kSub) + 4;
    const double sub = static_cast<double>(b % kSub);
    return std::ldexp(1.0 + (sub + 1) / kSub, log);
  }
  std::vector<std::uint64_t> counts_ = std::vector<std::uint64_t>(kBuckets, 0);
  std::uint64_t total_ = 0;
};

}  // namespace bench
