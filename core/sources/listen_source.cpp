// SPDX-License-Identifier: Apache-2.0
#include "listen_source.hpp"

#include <Poco/Logger.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <string.h>

#include <algorithm>
#include <stdexcept>

#include "keys.hpp"
#include "source_type.hpp"

namespace streamrelay {

namespace {
CidrList parseAllow(const std::vector<std::string>& texts) {
  std::vector<Cidr> rules;
  for (const std::string& text : texts) rules.push_back(Cidr::parse(text));  // validated with the config
  return CidrList(std::move(rules));
}
}  // namespace

ListenSource::ListenSource(const SourceConfig& config, Bus& bus)
    : UpstreamSource(config, bus),
      bind_(config.settings.string("bind")),
      maxPublishers_(static_cast<std::size_t>(config.settings.integer("max_publishers"))),
      allow_(parseAllow(config.settings.strings("allow"))),
      idleTimeoutMs_(static_cast<int>(config.settings.integer("idle_timeout_ms"))) {}

namespace {
Poco::Logger& logger() { return Poco::Logger::get("streamrelay.upstream"); }
}  // namespace

void ListenSource::prepare() {
  try {
    Poco::Net::SocketAddress address(bind_);
    if (address.family() == Poco::Net::SocketAddress::IPv6) server_.bind6(address, true, false, false);
    else server_.bind(address, true, false);  // SO_REUSEPORT off: a port in use must fail
    server_.listen(64);
    port_ = server_.address().port();
  } catch (const Poco::Exception& e) {
    throw std::runtime_error(label() + ": bind: cannot listen on " + bind_ + ": " + e.displayText());
  }
  logger().information("%s: listening for publishers on %s", label(), server_.address().toString());
}

void ListenSource::acceptPublisher() {
  Poco::Net::StreamSocket socket;
  Poco::Net::SocketAddress peer;
  try {
    socket = server_.acceptConnection();
    peer = socket.peerAddress();
  } catch (const Poco::Exception& e) {
    logger().warning("%s: accepting a publisher failed: %s", label(), e.displayText());
    return;
  }
  if (!allow_.allows(peer.addr())) {
    counters_.refusedPublishers.fetch_add(1, std::memory_order_relaxed);
    std::uint64_t suppressed = 0;
    if (refusalLog_.allow(suppressed))
      logger().warning("%s: refused publisher %s: not in the allow list%s", label(), peer.toString(),
                       suppressed ? " (and " + std::to_string(suppressed) + " more since the last such line)" : "");
    return;  // the socket closes as it goes out of scope
  }
  if (publishers_.size() >= maxPublishers_) {
    counters_.refusedPublishers.fetch_add(1, std::memory_order_relaxed);
    std::uint64_t suppressed = 0;
    if (refusalLog_.allow(suppressed))
      logger().warning("%s: refused publisher %s: max_publishers %z reached%s", label(), peer.toString(),
                       maxPublishers_,
                       suppressed ? " (and " + std::to_string(suppressed) + " more since the last such line)" : "");
    return;
  }
  socket.setBlocking(false);
  counters_.connects.fetch_add(1);
  counters_.connected = true;
  logger().information("%s: publisher %s connected", label(), peer.toString());
  publishers_.push_back({socket, peer.toString(), std::make_unique<FrameReader>(config_.framing, bus_, counters_),
                         std::chrono::steady_clock::now()});
}

bool ListenSource::readPublisher(Publisher& p, int maxReads) {
  for (int reads = 0; reads < maxReads; ++reads) {  // bounded: other publishers get their turn
    switch (p.reader->readOnce(p.socket.impl()->sockfd())) {
      case FrameReader::Result::Frames:
        p.lastByte = std::chrono::steady_clock::now();
        continue;
      case FrameReader::Result::WouldBlock:
        return true;
      case FrameReader::Result::Eof:
        logger().information("%s: publisher %s disconnected", label(), p.peer);
        return false;
      case FrameReader::Result::Error:
        logger().warning("%s: publisher %s: read error: %s", label(), p.peer, std::string(strerror(p.reader->lastErrno())));
        return false;
      case FrameReader::Result::ProtocolError: {
        const ProtocolError& e = p.reader->error();
        logger().warning("%s: publisher %s: protocol error at offset %?u (announced size %?u): %s; disconnected", label(),
                         p.peer, e.offset, e.announced, e.message);
        return false;
      }
    }
  }
  return true;
}

int ListenSource::closeIdlePublishers() {
  if (idleTimeoutMs_ <= 0) return -1;
  const auto idle = std::chrono::milliseconds(idleTimeoutMs_);
  const auto now = std::chrono::steady_clock::now();
  auto nextDue = std::chrono::steady_clock::time_point::max();
  std::vector<Publisher> alive;
  for (Publisher& p : publishers_) {
    if (now - p.lastByte >= idle) {
      logger().warning("%s: publisher %s sent nothing for idle_timeout_ms %d; disconnected", label(), p.peer,
                       idleTimeoutMs_);
      continue;
    }
    nextDue = std::min(nextDue, p.lastByte + idle);
    alive.push_back(std::move(p));
  }
  publishers_.swap(alive);
  if (publishers_.empty()) return -1;
  auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(nextDue - now).count() + 1;
  return static_cast<int>(std::max<long long>(wait, 1));
}

// At stop: publishes what each publisher had sent before the stop (the bytes
// waiting in its socket now), and nothing that arrives after.
void ListenSource::readWhatWasSent() {
  // Publishers whose connection is complete but not yet accepted sent data too.
  for (pollfd waiting{server_.impl()->sockfd(), POLLIN, 0}; ::poll(&waiting, 1, 0) > 0 && (waiting.revents & POLLIN);)
    acceptPublisher();
  for (Publisher& p : publishers_) {
    int pending = 0;
    if (::ioctl(p.socket.impl()->sockfd(), FIONREAD, &pending) != 0 || pending <= 0) continue;
    const int reads = pending / kSourceReadBytes + 1;
    readPublisher(p, reads);
  }
}

void ListenSource::run() {
  std::vector<pollfd> fds;
  while (!stop_.requested()) {
    const int timeout = closeIdlePublishers();
    counters_.connected = !publishers_.empty();
    fds.assign({{stop_.fd(), POLLIN, 0}, {server_.impl()->sockfd(), POLLIN, 0}});
    for (const Publisher& p : publishers_) fds.push_back({p.socket.impl()->sockfd(), POLLIN, 0});
    int rc = ::poll(fds.data(), fds.size(), timeout);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) {
      logger().critical("%s: poll failed: %s", label(), std::string(strerror(errno)));
      break;
    }
    if (fds[0].revents) break;
    std::vector<Publisher> alive;
    for (std::size_t i = 0; i < publishers_.size(); ++i) {
      if (fds[i + 2].revents == 0 || readPublisher(publishers_[i], 16)) alive.push_back(std::move(publishers_[i]));
    }
    publishers_.swap(alive);
    counters_.connected = !publishers_.empty();
    if (fds[1].revents) acceptPublisher();
  }
  readWhatWasSent();
  publishers_.clear();
  counters_.connected = false;
  server_.close();
}


SourceType listen_source_type() {
  return {{"listen",
           "publishers connect to the relay and push frames",
           {key("bind", KeyKind::Endpoint).needed().doc("HOST:PORT publishers connect to"),
            key("max_publishers", KeyKind::Int).def("16").range(1, 4096).doc("publishers at once; more are refused"),
            key("allow", KeyKind::Cidrs).doc("publishers admitted (empty: everyone)"),
            key("idle_timeout_ms", KeyKind::Int).def("0").range(0, kIntMax)
                .doc("a publisher silent this long is closed (0: never)"),
            groupKey("framing", framingSchema())},
           {}},
          [](const SourceConfig& config, Bus& bus) { return std::make_unique<ListenSource>(config, bus); }};
}
}  // namespace streamrelay
