// SPDX-License-Identifier: Apache-2.0
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

#include "keys.hpp"
#include "source_type.hpp"
#include "yaml_map.hpp"

namespace streamrelay {

namespace {

Poco::Logger& logger() { return Poco::Logger::get("streamrelay.upstream"); }
constexpr int kConnectTimeoutMs = 3000;

std::string withoutBrackets(const std::string& host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') return host.substr(1, host.size() - 2);
  return host;
}

std::string endpointText(const std::string& host, int port) {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

TcpSource::Connection::~Connection() {
  tls.reset();  // before the socket it runs on
  if (fd >= 0) ::close(fd);
}

std::vector<TcpSource::Endpoint> TcpSource::endpointsOf(const Settings& settings) {
  std::vector<Endpoint> endpoints;
  const std::vector<std::string>& list = settings.strings("endpoints");
  if (list.empty()) {
    const std::string host = withoutBrackets(settings.string("host"));
    const int port = static_cast<int>(settings.integer("port"));
    endpoints.push_back({host, port, endpointText(host, port)});
  }
  for (const std::string& text : list) {  // HOST:PORT, checked with the config
    const auto colon = text.rfind(':');
    const std::string host = withoutBrackets(text.substr(0, colon));
    const int port = std::stoi(text.substr(colon + 1));
    endpoints.push_back({host, port, endpointText(host, port)});
  }
  return endpoints;
}

namespace {
std::vector<std::string> textsOf(const std::vector<std::string>& list, const std::string& host, std::int64_t port) {
  if (!list.empty()) return list;
  return {endpointText(withoutBrackets(host), static_cast<int>(port))};
}
}  // namespace

TcpSource::TcpSource(const SourceConfig& config, Bus& bus)
    : UpstreamSource(config, bus),
      endpoints_(endpointsOf(config.settings)),
      sendOnConnect_(config.settings.string("send_on_connect")),
      idleTimeoutMs_(static_cast<int>(config.settings.integer("idle_timeout_ms"))),
      tlsOptions_(TlsOptions::from(config.settings.group("tls"))),
      failover_(textsOf(config.settings.strings("endpoints"), config.settings.string("host"),
                        config.settings.integer("port")),
                config.settings.group("reconnect"), counters_) {}

TcpSource::~TcpSource() { stop(); }

void TcpSource::prepare() {
  if (!tlsOptions_.enabled) return;
  try {
    tls_ = std::make_unique<TlsContext>(tlsOptions_);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(label() + ": " + e.what());
  }
  if (!tlsOptions_.verify)
    logger().warning("%s: tls.verify is false: the provider's certificate is NOT checked; anyone on the path "
                     "can read and change the stream",
                     label());
}

// A connected blocking socket owned by the caller, or -1 with `error` set.
int TcpSource::connectSocket(const Endpoint& endpoint, std::string& error) {
  try {
    Poco::Net::StreamSocket socket;
    socket.connect(Poco::Net::SocketAddress(endpoint.host, static_cast<Poco::UInt16>(endpoint.port)),
                   Poco::Timespan(kConnectTimeoutMs * 1000LL));
    socket.setNoDelay(true);
    return ::dup(socket.impl()->sockfd());  // the Poco socket closes its own copy
  } catch (const Poco::Exception& e) {
    error = e.displayText();
    return -1;
  }
}

bool TcpSource::sendGreeting(Connection& connection, std::string& error) {
  const std::string& text = sendOnConnect_;
  if (connection.tls) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kConnectTimeoutMs);
    if (connection.tls->writeAll(text, deadline)) return true;
    error = "sending send_on_connect: " + connection.tls->error();
    return false;
  }
  std::size_t sent = 0;
  while (sent < text.size()) {
    ssize_t n = ::send(connection.fd, text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = std::string("sending send_on_connect: ") + strerror(errno);
      return false;
    }
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

std::unique_ptr<TcpSource::Connection> TcpSource::connect(std::size_t index, std::string& error) {
  auto connection = std::make_unique<Connection>();
  connection->endpoint = index;
  connection->fd = connectSocket(endpoints_[index], error);
  if (connection->fd < 0) return nullptr;
  if (tls_) {
    try {
      auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kConnectTimeoutMs);
      connection->tls = std::make_unique<TlsConnection>(*tls_, connection->fd, endpoints_[index].host, deadline);
    } catch (const std::runtime_error& e) {
      error = e.what();
      return nullptr;
    }
  }
  if (!sendGreeting(*connection, error)) return nullptr;
  return connection;
}

// Reads what the socket has (through TLS: until OpenSSL needs more); "" to go on.
std::string TcpSource::readAvailable(Connection& connection, FrameReader& reader) {
  FrameReader::Result result;
  if (!connection.tls) {
    result = reader.readOnce(connection.fd);
  } else {
    for (;;) {
      std::vector<char>& buffer = reader.buffer();
      long n = connection.tls->read(buffer.data(), buffer.size());
      if (n == TlsConnection::kWouldBlock) return "";
      if (n == TlsConnection::kFailed) return "TLS: " + connection.tls->error();
      if (n == 0) return "connection closed by the provider (TLS close_notify)";
      result = reader.decode(buffer.data(), static_cast<std::size_t>(n));
      if (result != FrameReader::Result::Frames) break;
    }
  }
  switch (result) {
    case FrameReader::Result::Frames:
    case FrameReader::Result::WouldBlock:
      return "";
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
  return "";
}

std::string TcpSource::readUntilDone(Connection& connection, FrameReader& reader, std::unique_ptr<Connection>& next) {
  pollfd fds[2] = {{connection.fd, POLLIN, 0}, {stop_.fd(), POLLIN, 0}};
  using Clock = std::chrono::steady_clock;
  Clock::time_point lastByte = Clock::now();
  for (;;) {
    const Clock::time_point now = Clock::now();
    int timeout = failover_.msUntilProbe(now);
    if (idleTimeoutMs_ > 0) {
      auto idleLeft = std::chrono::duration_cast<std::chrono::milliseconds>(
          lastByte + std::chrono::milliseconds(idleTimeoutMs_) - now).count();
      const int idleMs = static_cast<int>(std::max<long long>(0, idleLeft));
      timeout = timeout < 0 ? idleMs : std::min(timeout, idleMs);
    }
    int rc = ::poll(fds, 2, timeout);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return std::string("poll: ") + strerror(errno);
    if (fds[1].revents) return "";  // stop requested
    if (fds[0].revents) {
      lastByte = Clock::now();
      std::string error = readAvailable(connection, reader);
      if (!error.empty()) return error;
      continue;
    }
    if (idleTimeoutMs_ > 0 && Clock::now() - lastByte >= std::chrono::milliseconds(idleTimeoutMs_))
      return "no data for idle_timeout_ms " + std::to_string(idleTimeoutMs_) + " ms";
    if (failover_.probeDue()) {
      std::string error;
      next = connect(0, error);
      if (next) return "the primary " + endpoints_[0].text + " answers again: switching back";
      failover_.probeFailed();
    }
  }
}

void TcpSource::run() {
  FrameReader reader(config_.framing, bus_, counters_);
  std::unique_ptr<Connection> ready;  // the primary, connected by a probe
  while (!stop_.requested()) {
    std::string error;
    const std::size_t tried = ready ? 0 : failover_.next();
    std::unique_ptr<Connection> connection = ready ? std::move(ready) : connect(tried, error);
    if (connection) {
      counters_.connects.fetch_add(1);
      counters_.connected = true;
      failover_.connected(tried);
      logger().information("%s %s: connected%s", label(), failover_.describe(tried),
                           connection->tls ? " (" + connection->tls->describe() + ")" : std::string());
      std::uint64_t before = counters_.bytesRead.load();
      error = readUntilDone(*connection, reader, ready);
      counters_.connected = false;
      connection.reset();
      reader.reset();  // a frame cut by the change of connection is never published
      if (counters_.bytesRead.load() > before) failover_.deliveredFrames();
      const bool stopping = error.empty() || stop_.requested();  // whatever ended the read is no fault then
      failover_.lost(stopping || ready != nullptr);                // nor is switching back to the primary
      if (stopping) break;
      if (ready) {
        logger().warning("%s %s: %s", label(), failover_.describe(tried), error);
        continue;
      }
    } else if (failover_.failed(tried)) {  // the next one at once: only a failed round waits
      logger().warning("%s %s: %s; trying %s", label(), failover_.describe(tried), error,
                       failover_.describe(failover_.next()));
      continue;
    }
    const int wait = failover_.nextWaitMs();
    logger().warning("%s %s: %s; reconnecting in %d ms", label(), failover_.describe(tried), error, wait);
    if (stop_.waitFor(std::chrono::milliseconds(wait))) break;
  }
  logger().information("%s %s: stopped", label(), endpoints_[0].text);
}

SourceType tcp_source_type() {
  return {{"tcp",
           "connects out to a provider (TLS optional), reconnects with backoff, fails over between endpoints",
           {key("host").doc("the provider's host name or address ([v6] allowed); or endpoints"),
            key("port", KeyKind::Int).def("0").range(0, 65535).doc("with host (0: not set)"),
            key("endpoints", KeyKind::Endpoints).doc("HOST:PORT list instead of host/port: the first is the primary"),
            key("send_on_connect").env().hidden().doc("bytes sent after each connect (login, subscribe)"),
            groupKey("tls", tlsSchema()),
            groupKey("reconnect", reconnectSchema()),
            key("idle_timeout_ms", KeyKind::Int).def("0").range(0, kIntMax)
                .doc("reconnect after this long without a byte (0: never)"),
            groupKey("framing", framingSchema())},
           [](const Settings& s, const YamlMap& m) {
             const bool endpoints = !s.strings("endpoints").empty();
             // (--check-config prints host "" and port 0 beside endpoints: those mean "not set")
             const bool hostSet = !s.string("host").empty(), portSet = s.integer("port") != 0;
             if (endpoints && (hostSet || portSet))
               m.fail(hostSet ? "host" : "port", "use either host and port, or endpoints");
             if (!endpoints && !m.has("host")) m.failHere("missing required key 'host' (or endpoints)");
             if (!endpoints && !m.has("port")) m.failHere("missing required key 'port'");
             if (!endpoints && s.integer("port") == 0) m.fail("port", "0 is out of range 1..65535");
           }},
          [](const SourceConfig& config, Bus& bus) { return std::make_unique<TcpSource>(config, bus); }};
}

}  // namespace streamrelay
