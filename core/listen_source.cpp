#include "listen_source.hpp"

#include <Poco/Logger.h>
#include <poll.h>
#include <string.h>

#include <stdexcept>

namespace streamrelay {

namespace {
Poco::Logger& logger() { return Poco::Logger::get("streamrelay.upstream"); }
}  // namespace

void ListenSource::prepare() {
  try {
    Poco::Net::SocketAddress address(config_.bind);
    if (address.family() == Poco::Net::SocketAddress::IPv6) server_.bind6(address, true, false, false);
    else server_.bind(address, true, false);  // SO_REUSEPORT off: a port in use must fail
    server_.listen(64);
    port_ = server_.address().port();
  } catch (const Poco::Exception& e) {
    throw std::runtime_error("upstream.bind: cannot listen on " + config_.bind + ": " + e.displayText());
  }
  logger().information("upstream: listening for publishers on %s", server_.address().toString());
}

void ListenSource::acceptPublisher() {
  Poco::Net::StreamSocket socket;
  std::string peer;
  try {
    socket = server_.acceptConnection();
    peer = socket.peerAddress().toString();
  } catch (const Poco::Exception& e) {
    logger().warning("upstream: accepting a publisher failed: %s", e.displayText());
    return;
  }
  if (publishers_.size() >= static_cast<std::size_t>(config_.maxPublishers)) {
    logger().warning("upstream: refused publisher %s: max_publishers %d reached", peer, config_.maxPublishers);
    return;  // the socket closes as it goes out of scope
  }
  socket.setBlocking(false);
  counters_.connects.fetch_add(1);
  counters_.connected = true;
  logger().information("upstream: publisher %s connected", peer);
  publishers_.push_back({socket, peer, std::make_unique<FrameReader>(config_.framing, bus_, counters_)});
}

bool ListenSource::readPublisher(Publisher& p) {
  for (int reads = 0; reads < 16; ++reads) {  // bounded: other publishers get their turn
    switch (p.reader->readOnce(p.socket.impl()->sockfd())) {
      case FrameReader::Result::Frames:
        continue;
      case FrameReader::Result::WouldBlock:
        return true;
      case FrameReader::Result::Eof:
        logger().information("upstream: publisher %s disconnected", p.peer);
        return false;
      case FrameReader::Result::Error:
        logger().warning("upstream: publisher %s: read error: %s", p.peer, std::string(strerror(p.reader->lastErrno())));
        return false;
      case FrameReader::Result::ProtocolError: {
        const ProtocolError& e = p.reader->error();
        logger().warning("upstream: publisher %s: protocol error at offset %?u (announced size %?u): %s; disconnected",
                         p.peer, e.offset,
                         e.announced, e.message);
        return false;
      }
    }
  }
  return true;
}

void ListenSource::run() {
  std::vector<pollfd> fds;
  while (!stop_.requested()) {
    fds.assign({{stop_.fd(), POLLIN, 0}, {server_.impl()->sockfd(), POLLIN, 0}});
    for (const Publisher& p : publishers_) fds.push_back({p.socket.impl()->sockfd(), POLLIN, 0});
    int timeout = config_.idleTimeoutMs > 0 ? config_.idleTimeoutMs : -1;
    int rc = ::poll(fds.data(), fds.size(), timeout);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) {
      logger().critical("upstream: poll failed: %s", std::string(strerror(errno)));
      break;
    }
    if (fds[0].revents) break;
    if (rc == 0) {
      if (!publishers_.empty())
        logger().warning("upstream: no data from any publisher for idle_timeout_ms %d; closing them",
                         config_.idleTimeoutMs);
      publishers_.clear();
    }
    std::vector<Publisher> alive;
    for (std::size_t i = 0; i < publishers_.size(); ++i) {
      if (fds[i + 2].revents == 0 || readPublisher(publishers_[i])) alive.push_back(std::move(publishers_[i]));
    }
    publishers_.swap(alive);
    counters_.connected = !publishers_.empty();
    if (fds[1].revents) acceptPublisher();
  }
  publishers_.clear();
  counters_.connected = false;
  server_.close();
}

}  // namespace streamrelay
