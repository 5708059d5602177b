// SPDX-License-Identifier: Apache-2.0
#include "client_socket.hpp"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>

namespace streamrelay {

namespace {

int msUntil(ClientSocket::Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - ClientSocket::Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
}

enum class Ready { Yes, TimedOut, Stopped, Failed };

// Waits for `events` on `fd` by `deadline`, or until `stopFd` (if >= 0) is readable.
Ready waitFor(int fd, short events, ClientSocket::Clock::time_point deadline, int stopFd) {
  pollfd p[2] = {{fd, events, 0}, {stopFd, POLLIN, 0}};
  for (;;) {
    const int rc = ::poll(p, stopFd >= 0 ? 2 : 1, msUntil(deadline));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return Ready::Failed;
    if (p[1].revents) return Ready::Stopped;
    return rc == 0 ? Ready::TimedOut : Ready::Yes;
  }
}

// A non-blocking socket connected to one of the addresses of host:port, or
// -1 with `error` set.
int connectTo(const std::string& host, int port, ClientSocket::Clock::time_point deadline, int stopFd,
              std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &list); rc != 0) {
    error = "cannot resolve '" + host + "': " + gai_strerror(rc);
    return -1;
  }
  int connected = -1;
  for (addrinfo* a = list; a && connected < 0; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      error = std::string("socket: ") + strerror(errno);
      continue;
    }
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      const Ready ready = waitFor(fd, POLLOUT, deadline, stopFd);
      int soError = 0;
      socklen_t length = sizeof soError;
      if (ready == Ready::Yes && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &length) == 0) errno = soError;
      else errno = ready == Ready::Stopped ? ECANCELED : ETIMEDOUT;
      rc = errno == 0 ? 0 : -1;
    }
    if (rc == 0) {
      connected = fd;
    } else {
      error = std::string("connect: ") + (errno == ECANCELED ? "stopped" : strerror(errno));
      ::close(fd);
      if (errno == ECANCELED) break;
    }
  }
  ::freeaddrinfo(list);
  return connected;
}

}  // namespace

ClientSocket::ClientSocket(const std::string& host, int port, const TlsContext* tls, Clock::time_point deadline,
                           int stopFd) {
  fd_ = connectTo(host, port, deadline, stopFd, error_);
  if (fd_ < 0) throw std::runtime_error(error_);
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (!tls) return;
  try {
    tls_ = std::make_unique<TlsConnection>(*tls, fd_, host, deadline, stopFd);
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

ClientSocket::~ClientSocket() {
  tls_.reset();  // before the socket it runs on
  if (fd_ >= 0) ::close(fd_);
}

long ClientSocket::read(char* data, std::size_t size) {
  if (tls_) {
    const long n = tls_->read(data, size);
    if (n == TlsConnection::kFailed) error_ = "TLS: " + tls_->error();
    return n == TlsConnection::kWouldBlock ? kWouldBlock : n == TlsConnection::kFailed ? kFailed : n;
  }
  ssize_t n;
  do {
    n = ::read(fd_, data, size);
  } while (n < 0 && errno == EINTR);
  if (n >= 0) return n;
  if (errno == EAGAIN || errno == EWOULDBLOCK) return kWouldBlock;
  error_ = std::string("read error: ") + strerror(errno);
  return kFailed;
}

ClientSocket::Wait ClientSocket::waitReadable(int stopFd, int timeoutMs) const {
  if (tls_ && tls_->pending()) return Wait::Readable;
  pollfd p[2] = {{fd_, POLLIN, 0}, {stopFd, POLLIN, 0}};
  for (;;) {
    const int rc = ::poll(p, 2, timeoutMs);
    if (rc < 0 && errno == EINTR) continue;
    if (p[1].revents) return Wait::Stopped;
    // A poll error is the socket's to report: read() says what it is.
    return rc == 0 ? Wait::TimedOut : Wait::Readable;
  }
}

bool ClientSocket::writeAll(std::string_view data, Clock::time_point deadline) {
  if (tls_) {
    if (tls_->writeAll(data, deadline)) return true;
    error_ = "TLS: " + tls_->error();
    return false;
  }
  std::size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (waitFor(fd_, POLLOUT, deadline, -1) != Ready::Yes) {
        error_ = "write timed out";
        return false;
      }
    } else {
      error_ = std::string("write error: ") + strerror(errno);
      return false;
    }
  }
  return true;
}

void ClientSocket::close(Clock::time_point deadline) {
  if (closed_) return;
  closed_ = true;
  if (tls_) tls_->sendCloseNotify(deadline);
  ::shutdown(fd_, SHUT_WR);
  char sink[16 * 1024];
  while (waitFor(fd_, POLLIN, deadline, -1) == Ready::Yes) {
    const ssize_t n = ::read(fd_, sink, sizeof sink);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) break;
  }
}

}  // namespace streamrelay
