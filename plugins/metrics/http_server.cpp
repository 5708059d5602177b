// SPDX-License-Identifier: Apache-2.0
#include "http_server.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/SocketAddress.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace streamrelay::plugins {

namespace {

using Clock = std::chrono::steady_clock;

const char* reasonOf(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    default: return "Internal Server Error";
  }
}

}  // namespace

struct HttpServer::Connection {
  int fd = -1;
  Clock::time_point accepted;
  Clock::time_point deadline;
  bool answered = false;  // reading the request until then, writing the response after
  std::string in;         // the request head so far
  std::string out;        // the response
  std::size_t sent = 0;
  ~Connection() {
    if (fd >= 0) ::close(fd);
  }
};

HttpServer::HttpServer(const std::string& bind, Limits limits, Handler handler, std::chrono::milliseconds tickInterval,
                       Tick tick, Event event)
    : limits_(limits),
      handler_(std::move(handler)),
      tickInterval_(tickInterval),
      tick_(std::move(tick)),
      event_(std::move(event)) {
  try {
    socket_.bind(Poco::Net::SocketAddress(bind), true, false);
    socket_.listen(128);
    socket_.setBlocking(false);
  } catch (const Poco::Exception& e) {
    throw std::runtime_error("cannot listen on " + bind + ": " + e.displayText());
  }
  wakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakeFd_ < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
  thread_ = std::thread([this] { run(); });
}

HttpServer::~HttpServer() {
  stopping_ = true;
  const std::uint64_t one = 1;
  if (::write(wakeFd_, &one, sizeof one) < 0) {
    // an eventfd write fails only if the counter would overflow: it is set already
  }
  thread_.join();
  ::close(wakeFd_);
}

std::string HttpServer::address() const { return socket_.address().toString(); }

void HttpServer::run() {
  std::vector<std::unique_ptr<Connection>> connections;
  std::vector<pollfd> fds;
  auto nextTick = Clock::now();
  while (!stopping_) {
    auto now = Clock::now();
    if (now >= nextTick) {
      tick_();
      nextTick = now + tickInterval_;
    }
    // Connections past their deadline: a request that did not come whole, or
    // a response not taken.
    for (auto it = connections.begin(); it != connections.end();) {
      if ((*it)->deadline > now) {
        ++it;
        continue;
      }
      event_("http_timeouts");
      it = connections.erase(it);
    }
    auto wake = nextTick;
    for (const auto& c : connections) wake = std::min(wake, c->deadline);
    fds.assign({{wakeFd_, POLLIN, 0}, {socket_.impl()->sockfd(), POLLIN, 0}});
    for (const auto& c : connections) fds.push_back({c->fd, static_cast<short>(c->answered ? POLLOUT : POLLIN), 0});
    const auto waitMs = std::chrono::duration_cast<std::chrono::milliseconds>(wake - now).count() + 1;
    if (::poll(fds.data(), fds.size(), static_cast<int>(std::max<long long>(waitMs, 0))) < 0 && errno != EINTR) break;
    // Connections first (their poll entries are in order), then new ones.
    std::size_t i = 2;
    for (auto it = connections.begin(); it != connections.end(); ++i) {
      const short events = fds[i].revents;
      bool open = true;
      if (events & (POLLIN | POLLHUP | POLLERR)) open = (*it)->answered ? writeResponse(**it) : readRequest(**it);
      else if (events & POLLOUT) open = writeResponse(**it);
      it = open ? std::next(it) : connections.erase(it);
    }
    if (fds[1].revents & POLLIN) acceptAll(connections);
  }
}

void HttpServer::acceptAll(std::vector<std::unique_ptr<Connection>>& connections) {
  for (;;) {
    const int fd = ::accept4(socket_.impl()->sockfd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN: all taken; anything else: the next poll says again
    auto c = std::make_unique<Connection>();
    c->fd = fd;
    c->accepted = Clock::now();
    c->deadline = c->accepted + limits_.requestTimeout;
    if (connections.size() >= limits_.maxConnections) {
      // Room for the newcomer: the oldest connection still sending its request goes.
      auto oldest = std::min_element(connections.begin(), connections.end(), [](const auto& a, const auto& b) {
        return !a->answered && (b->answered || a->accepted < b->accepted);
      });
      if ((*oldest)->answered) {  // every one is being answered: the newcomer waits for none
        event_("http_rejected");
        continue;
      }
      event_("http_evicted");
      connections.erase(oldest);
    }
    connections.push_back(std::move(c));
  }
}

bool HttpServer::readRequest(Connection& c) {
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::recv(c.fd, buffer, sizeof buffer, 0);
    if (n == 0) return false;  // the client went away before asking
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    c.in.append(buffer, static_cast<std::size_t>(n));
    const std::size_t end = c.in.find("\r\n\r\n");
    if (end == std::string::npos && c.in.size() <= limits_.maxRequestBytes) continue;
    if (end == std::string::npos || end > limits_.maxRequestBytes) {
      answer(c, {431, "text/plain", "request head too large\n"}, true);
      return writeResponse(c);
    }
    // "METHOD TARGET HTTP/1.x"
    const std::string line = c.in.substr(0, c.in.find("\r\n"));
    const std::size_t space1 = line.find(' '), space2 = line.rfind(' ');
    if (space1 == std::string::npos || space2 <= space1 || line.compare(space2 + 1, 5, "HTTP/") != 0) {
      answer(c, {400, "text/plain", "bad request line\n"}, true);
      return writeResponse(c);
    }
    const std::string method = line.substr(0, space1);
    const std::string target = line.substr(space1 + 1, space2 - space1 - 1);
    if (method != "GET" && method != "HEAD") answer(c, {405, "text/plain", "only GET\n"}, true);
    else answer(c, handler_(method, target), method == "GET");
    return writeResponse(c);
  }
}

void HttpServer::answer(Connection& c, const Response& response, bool withBody) {
  c.out = "HTTP/1.1 " + std::to_string(response.status) + " " + reasonOf(response.status) +
          "\r\nContent-Type: " + response.contentType +
          "\r\nContent-Length: " + std::to_string(response.body.size()) +
          "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
  if (withBody) c.out += response.body;
  c.answered = true;
  c.deadline = Clock::now() + limits_.requestTimeout;
}

bool HttpServer::writeResponse(Connection& c) {
  while (c.sent < c.out.size()) {
    const ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    c.sent += static_cast<std::size_t>(n);
  }
  ::shutdown(c.fd, SHUT_WR);  // all sent: the client sees the end of the response
  return false;
}

}  // namespace streamrelay::plugins
