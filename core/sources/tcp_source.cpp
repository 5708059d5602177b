#include "tcp_source.hpp"

#include <Poco/Logger.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <random>

#include "keys.hpp"
#include "source_type.hpp"

namespace streamrelay {

namespace {
Poco::Logger& logger() { return Poco::Logger::get("streamrelay.upstream"); }
constexpr int kConnectTimeoutMs = 3000;
}  // namespace

namespace {
std::string withoutBrackets(const std::string& host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') return host.substr(1, host.size() - 2);
  return host;
}
}  // namespace

TcpSource::TcpSource(const SourceConfig& config, Bus& bus)
    : UpstreamSource(config, bus),
      host_(withoutBrackets(config.settings.string("host"))),
      port_(static_cast<int>(config.settings.integer("port"))),
      sendOnConnect_(config.settings.string("send_on_connect")),
      initialDelayMs_(static_cast<int>(config.settings.group("reconnect").integer("initial_delay_ms"))),
      maxDelayMs_(static_cast<int>(config.settings.group("reconnect").integer("max_delay_ms"))),
      idleTimeoutMs_(static_cast<int>(config.settings.integer("idle_timeout_ms"))) {}

std::string TcpSource::endpoint() const {
  bool v6 = host_.find(':') != std::string::npos;
  return (v6 ? "[" + host_ + "]" : host_) + ":" + std::to_string(port_);
}

// Returns a connected blocking fd owned by the caller, or -1 with `error` set.
int TcpSource::connectOnce(std::string& error) {
  try {
    Poco::Net::StreamSocket socket;
    socket.connect(Poco::Net::SocketAddress(host_, static_cast<Poco::UInt16>(port_)),
                   Poco::Timespan(kConnectTimeoutMs * 1000LL));
    socket.setNoDelay(true);
    return ::dup(socket.impl()->sockfd());  // the Poco socket closes its own copy
  } catch (const Poco::Exception& e) {
    error = e.displayText();
    return -1;
  }
}

bool TcpSource::sendGreeting(int fd) {
  const std::string& text = sendOnConnect_;
  std::size_t sent = 0;
  while (sent < text.size()) {
    ssize_t n = ::send(fd, text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

std::string TcpSource::readUntilDone(int fd, FrameReader& reader) {
  pollfd fds[2] = {{fd, POLLIN, 0}, {stop_.fd(), POLLIN, 0}};
  const int timeout = idleTimeoutMs_ > 0 ? idleTimeoutMs_ : -1;
  for (;;) {
    int rc = ::poll(fds, 2, timeout);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return std::string("poll: ") + strerror(errno);
    if (fds[1].revents) return "";  // stop requested
    if (rc == 0) return "no data for idle_timeout_ms " + std::to_string(idleTimeoutMs_) + " ms";
    switch (reader.readOnce(fd)) {
      case FrameReader::Result::Frames:
      case FrameReader::Result::WouldBlock:
        continue;
      case FrameReader::Result::Eof:
        return "connection closed by the provider";
      case FrameReader::Result::Error:
        return std::string("read error: ") + strerror(reader.lastErrno());
      case FrameReader::Result::ProtocolError: {
        const ProtocolError& e = reader.error();
        return "protocol error at offset " + std::to_string(e.offset) + " (announced size " +
               std::to_string(e.announced) + "): " + e.message;
      }
    }
  }
}

void TcpSource::run() {
  FrameReader reader(config_.framing, bus_, counters_);
  std::mt19937 random(std::random_device{}());
  int delayMs = initialDelayMs_;
  while (!stop_.requested()) {
    std::string error;
    int fd = connectOnce(error);
    if (fd >= 0 && !sendGreeting(fd)) {
      error = std::string("sending send_on_connect: ") + strerror(errno);
      ::close(fd);
      fd = -1;
    }
    if (fd >= 0) {
      counters_.connects.fetch_add(1);
      counters_.connected = true;
      logger().information("%s %s: connected", label(), endpoint());
      std::uint64_t before = counters_.bytesRead.load();
      error = readUntilDone(fd, reader);
      counters_.connected = false;
      ::close(fd);
      reader.reset();
      if (counters_.bytesRead.load() > before) delayMs = initialDelayMs_;
      if (error.empty() || stop_.requested()) break;  // stopping: whatever ended the read is no fault
    }
    // Full jitter over the upper half keeps many relays from reconnecting in step.
    int wait = std::uniform_int_distribution<int>(delayMs / 2, delayMs)(random);
    logger().warning("%s %s: %s; reconnecting in %d ms", label(), endpoint(), error, wait);
    if (stop_.waitFor(std::chrono::milliseconds(wait))) break;
    delayMs = static_cast<int>(std::min<long long>(2LL * delayMs, maxDelayMs_));
  }
  logger().information("%s %s: stopped", label(), endpoint());
}

SourceType tcp_source_type() {
  return {{"tcp",
           "connects out to a provider and reconnects with backoff",
           {key("host").needed().doc("the provider's host name or address ([v6] allowed)"),
            key("port", KeyKind::Int).needed().def("0").range(1, 65535),
            key("send_on_connect").env().hidden().doc("bytes sent after each connect (login, subscribe)"),
            groupKey("reconnect", reconnectSchema()),
            key("idle_timeout_ms", KeyKind::Int).def("0").range(0, kIntMax)
                .doc("reconnect after this long without a byte (0: never)")},
           {}},
          [](const SourceConfig& config, Bus& bus) { return std::make_unique<TcpSource>(config, bus); }};
}

}  // namespace streamrelay
