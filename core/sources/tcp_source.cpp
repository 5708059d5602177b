// SPDX-License-Identifier: Apache-2.0
#include "tcp_source.hpp"

#include "burst_end.hpp"
#include "client_socket.hpp"
#include "keys.hpp"
#include "source_type.hpp"
#include "yaml_map.hpp"

namespace streamrelay {

namespace {

std::string endpointText(const std::string& host, int port) {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// The endpoints as the log and /stats name them.
std::vector<std::string> textsOf(const Settings& s) {
  if (!s.strings("endpoints").empty()) return s.strings("endpoints");
  return {endpointText(withoutBrackets(s.string("host")), static_cast<int>(s.integer("port")))};
}

// A connection's bytes, cut by the source's framing.
class TcpConnection : public ProviderConnection {
 public:
  TcpConnection(std::unique_ptr<ClientSocket> socket, FrameReader& reader)
      : socket_(std::move(socket)), reader_(reader) {}

  std::optional<StreamEnd> pump(int timeoutMs, int stopFd) override {
    std::optional<StreamEnd> end;
    auto decode = [&](const char* data, std::size_t size) {
      if (reader_.decode(data, size) == FrameReader::Result::ProtocolError) {
        const ProtocolError& e = reader_.error();
        end = StreamEnd::failed("protocol error at offset " + std::to_string(e.offset) + " (announced size " +
                                std::to_string(e.announced) + "): " + e.message);
      }
      return !end;
    };
    // Read first: `decode` sets `end` during the burst.
    const ClientSocket::Burst burst = socket_->readBurst(reader_.buffer(), stopFd, timeoutMs, decode);
    return endOfBurst(burst, *socket_, std::move(end), [] {
      return StreamEnd{StreamEnd::How::Orderly, "connection closed by the provider"};
    });
  }

  void close(const Goodbye&, Clock::time_point deadline) override { socket_->close(deadline); }
  std::string describe() const override { return socket_->describe(); }

 private:
  std::unique_ptr<ClientSocket> socket_;
  FrameReader& reader_;
};

}  // namespace

std::vector<HostPort> TcpSource::endpointsOf(const Settings& settings) {
  std::vector<HostPort> endpoints;
  const std::vector<std::string>& list = settings.strings("endpoints");
  if (list.empty())
    endpoints.push_back({withoutBrackets(settings.string("host")), static_cast<int>(settings.integer("port"))});
  for (const std::string& text : list) endpoints.push_back(hostPortOf(text));
  return endpoints;
}

TcpSource::TcpSource(const SourceConfig& config, Bus& bus)
    : ConnectingSource(config, bus, textsOf(config.settings)),
      endpoints_(endpointsOf(config.settings)),
      sendOnConnect_(config.settings.string("send_on_connect")) {}

TcpSource::~TcpSource() { stop(); }

std::unique_ptr<ProviderConnection> TcpSource::open(std::size_t endpoint, Clock::time_point deadline,
                                                    OpenFailure& failure) {
  std::unique_ptr<ClientSocket> socket =
      connect(endpoints_[endpoint].host, endpoints_[endpoint].port, tlsContext(), deadline, failure);
  if (!socket) return nullptr;
  if (!socket->writeAll(sendOnConnect_, deadline)) {
    failure.why = "sending send_on_connect: " + socket->error();
    return nullptr;
  }
  return std::make_unique<TcpConnection>(std::move(socket), reader());
}

SourceType tcp_source_type() {
  std::vector<KeySpec> keys{
      key("host").doc("the provider's host name or address ([v6] allowed); or endpoints"),
      key("port", KeyKind::Int).def("0").range(0, 65535).doc("with host (0: not set)"),
      key("endpoints", KeyKind::Endpoints).doc("HOST:PORT list instead of host/port: the first is the primary"),
      key("send_on_connect").env().hidden().doc("bytes sent after each connect (login, subscribe)")};
  addConnectingKeys(keys, tlsSchema());
  keys.push_back(groupKey("framing", framingSchema()));
  return {{"tcp", "connects out to a provider (TLS optional), reconnects with backoff, fails over between endpoints",
           std::move(keys),
           [](const Settings& s, const YamlMap& m) {
             const bool endpoints = !s.strings("endpoints").empty();
             // (--check-config prints host "" and port 0 beside endpoints: those mean "not set")
             const bool hostSet = !s.string("host").empty(), portSet = s.integer("port") != 0;
             if (endpoints && (hostSet || portSet))
               m.fail(hostSet ? "host" : "port", "use either host and port, or endpoints");
             if (!endpoints && !m.has("host")) m.failHere("missing required key 'host' (or endpoints)");
             if (!endpoints && !m.has("port")) m.failHere("missing required key 'port'");
             if (!endpoints && s.integer("port") == 0) m.fail("port", "0 is out of range 1..65535");
             checkFailover(s, m);
           }},
          [](const SourceConfig& config, Bus& bus) { return std::make_unique<TcpSource>(config, bus); }};
}

}  // namespace streamrelay
