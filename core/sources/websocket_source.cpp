// SPDX-License-Identifier: Apache-2.0
#include "websocket_source.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>

#include "burst_end.hpp"
#include "client_socket.hpp"
#include "host_port.hpp"
#include "http_response.hpp"
#include "keys.hpp"
#include "logging.hpp"
#include "source_type.hpp"
#include "websocket_frames.hpp"
#include "yaml_map.hpp"

namespace streamrelay {

namespace {

constexpr std::size_t kReadBytes = 16 * 1024;  // a handshake answer's read

bool equalNoCase(const std::string& a, const char* b) {
  std::string lower = a;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower == b;
}

int msUntil(ProviderConnection::Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - ProviderConnection::Clock::now());
  return static_cast<int>(std::clamp<long long>(left.count(), 0, 1 << 30));
}

std::string urlPart(CURLU* url, CURLUPart which, unsigned flags = 0) {
  char* text = nullptr;
  if (curl_url_get(url, which, &text, flags) != CURLUE_OK || !text) return "";
  std::string value(text);
  curl_free(text);
  return value;
}

}  // namespace

// One WebSocket connection after its handshake: messages in, PINGs
// answered, the close handshake.
class WebSocketSource::Connection : public ProviderConnection {
 public:
  Connection(std::unique_ptr<ClientSocket> socket, std::string early, FrameReader& reader, WebSocketDecoder& decoder,
             int pingIntervalMs)
      : socket_(std::move(socket)), early_(std::move(early)), reader_(reader), decoder_(decoder),
        pingIntervalMs_(pingIntervalMs) {}

  std::optional<StreamEnd> pump(int timeoutMs, int stopFd) override {
    if (!early_.empty()) {  // what came with the handshake's answer
      const std::string bytes = std::move(early_);
      early_.clear();
      if (std::optional<StreamEnd> end = take(bytes.data(), bytes.size())) return end;
    }
    if (std::optional<StreamEnd> end = keepAlive(timeoutMs)) return end;
    std::optional<StreamEnd> end;
    auto decode = [&](const char* data, std::size_t size) {
      lastByte_ = Clock::now();
      end = take(data, size);
      return !end;
    };
    // Read first: `decode` sets `end` during the burst.
    const ClientSocket::Burst burst = socket_->readBurst(reader_.buffer(), stopFd, timeoutMs, decode);
    return endOfBurst(burst, *socket_, std::move(end), [] {
      return StreamEnd::failed("connection closed by the provider without a close frame");
    });
  }

  void close(const Goodbye& goodbye, Clock::time_point deadline) override {
    if (!closeSent_) send(WsOpcode::Close, closePayload(goodbye.code, goodbye.reason), deadline);
    socket_->close(deadline);  // close_notify, FIN, and what comes until the provider closes too
  }

  std::string describe() const override { return socket_->describe(); }

 private:
  // Decodes bytes from the provider: messages are published, PINGs answered,
  // a CLOSE answered and the stream ended.
  std::optional<StreamEnd> take(const char* data, std::size_t size) {
    if (reader_.decode(data, size) == FrameReader::Result::ProtocolError) {
      send(WsOpcode::Close, closePayload(decoder_.errorCloseCode(), "protocol error"), soon());
      return StreamEnd::failed(reader_.error().message);
    }
    for (const std::string& ping : decoder_.pings())
      if (!send(WsOpcode::Pong, ping, soon())) return StreamEnd::failed("answering a PING: " + socket_->error());
    decoder_.pings().clear();
    if (!decoder_.closed()) return std::nullopt;
    const int code = decoder_.closeCode();
    send(WsOpcode::Close, code == 1005 ? std::string() : closePayload(code, ""), soon());  // the close handshake's answer
    const std::string& reason = decoder_.closeReason();
    const std::string name = closeCodeName(code);
    const std::string why = "closed by the provider with code " + std::to_string(code) +
                            (!reason.empty() ? " (" + oneLine(reason) + ")" : !name.empty() ? " (" + name + ")" : "");
    return StreamEnd{isPlannedClose(code) ? StreamEnd::How::Planned : StreamEnd::How::Failed, why};
  }

  // Pings after ping_interval_ms without a byte; no byte for as long after
  // the PING ends the stream. Shortens `timeoutMs` to the next of those moments.
  std::optional<StreamEnd> keepAlive(int& timeoutMs) {
    if (pingIntervalMs_ <= 0) return std::nullopt;
    const Clock::time_point now = Clock::now();
    const auto interval = std::chrono::milliseconds(pingIntervalMs_);
    if (pingSent_ && lastByte_ >= pingSentAt_) pingSent_ = false;  // anything back proves the provider is there
    if (pingSent_ && now - pingSentAt_ >= interval)
      return StreamEnd::failed("no answer to a PING within ping_interval_ms " + std::to_string(pingIntervalMs_) + " ms");
    if (!pingSent_ && now - lastByte_ >= interval) {
      if (!send(WsOpcode::Ping, "", soon())) return StreamEnd::failed("sending a PING: " + socket_->error());
      pingSent_ = true;
      pingSentAt_ = now;
    }
    const int next = msUntil((pingSent_ ? pingSentAt_ : lastByte_) + interval);
    timeoutMs = timeoutMs < 0 ? next : std::min(timeoutMs, next);
    return std::nullopt;
  }

  bool send(WsOpcode opcode, std::string_view payload, Clock::time_point deadline) {
    if (closeSent_) return true;
    if (opcode == WsOpcode::Close) closeSent_ = true;
    return socket_->writeAll(encodeClientFrame(opcode, payload), deadline);
  }

  static Clock::time_point soon() { return Clock::now() + std::chrono::seconds(3); }

  std::unique_ptr<ClientSocket> socket_;
  std::string early_;
  FrameReader& reader_;
  WebSocketDecoder& decoder_;
  const int pingIntervalMs_;
  Clock::time_point lastByte_ = Clock::now();
  bool pingSent_ = false;
  Clock::time_point pingSentAt_{};
  bool closeSent_ = false;
};

WebSocketSource::Endpoint WebSocketSource::endpointOf(const std::string& text) {
  Endpoint e;
  std::unique_ptr<CURLU, void (*)(CURLU*)> url(curl_url(), &curl_url_cleanup);
  if (!url || curl_url_set(url.get(), CURLUPART_URL, text.c_str(), CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
    e.error = "cannot parse the url";
    return e;
  }
  e.tls = urlPart(url.get(), CURLUPART_SCHEME) == "wss";
  const std::string host = urlPart(url.get(), CURLUPART_HOST);
  const std::string port = urlPart(url.get(), CURLUPART_PORT);
  e.host = withoutBrackets(host);
  e.port = port.empty() ? (e.tls ? 443 : 80) : std::stoi(port);
  e.hostHeader = port.empty() ? host : host + ":" + port;
  const std::string query = urlPart(url.get(), CURLUPART_QUERY);
  e.target = urlPart(url.get(), CURLUPART_PATH) + (query.empty() ? "" : "?" + query);
  if (e.target.empty() || e.target[0] != '/') e.target = "/" + e.target;
  return e;
}

WebSocketSource::WebSocketSource(const SourceConfig& config, Bus& bus)
    : ConnectingSource(config, bus, urlsOf(config.settings),
                       std::make_unique<WebSocketDecoder>(
                           static_cast<std::size_t>(config.settings.integer("max_frame_bytes")))),
      headers_(config.settings.stringMap("headers")),
      greeting_(config.settings.strings("send_on_connect")),
      pingIntervalMs_(static_cast<int>(config.settings.integer("ping_interval_ms"))),
      decoder_(static_cast<WebSocketDecoder&>(reader().decoder())) {
  for (const std::string& url : urlsOf(config.settings)) endpoints_.push_back(endpointOf(url));
}

WebSocketSource::~WebSocketSource() { stop(); }

std::string WebSocketSource::handshakeRequest(const Endpoint& endpoint, const std::string& key) const {
  std::string request = "GET " + endpoint.target + " HTTP/1.1\r\nHost: " + endpoint.hostHeader +
                        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
                        "\r\nSec-WebSocket-Version: 13\r\nUser-Agent: streamrelay\r\n";
  for (const auto& [name, value] : headers_) request += name + ": " + value + "\r\n";
  return request + "\r\n";
}

// Reads the answer to the upgrade request by `deadline` and checks it is one
// for `key`; the bytes after it (the first messages) land in `early`. "" if
// it is, else why not.
std::string WebSocketSource::awaitUpgrade(ClientSocket& socket, const std::string& key, Clock::time_point deadline,
                                          std::string& early) {
  std::string answer;
  HttpResponseHead head;
  long headBytes = 0;
  while (headBytes == 0) {
    if (socket.waitReadable(stop_.fd(), msUntil(deadline)) != ClientSocket::Wait::Readable)
      return stop_.requested() ? "stopped" : "handshake: no answer in time";
    char buffer[kReadBytes];
    const long n = socket.read(buffer, sizeof buffer);
    if (n == ClientSocket::kWouldBlock) continue;
    if (n <= 0) return "handshake: " + (n == 0 ? std::string("the provider closed the connection") : socket.error());
    answer.append(buffer, static_cast<std::size_t>(n));
    head = HttpResponseHead();
    headBytes = parseResponseHead(answer, head);
    if (headBytes < 0) return "handshake: " + head.error();
  }
  if (head.status() != 101)
    return "handshake: HTTP " + std::to_string(head.status()) +
           (head.reason().empty() ? "" : " " + oneLine(head.reason())) + " (not an upgrade to WebSocket)";
  if (!equalNoCase(head.header("upgrade"), "websocket") || head.header("sec-websocket-accept") != webSocketAccept(key))
    return "handshake: the answer is not a WebSocket upgrade of this request (Upgrade, Sec-WebSocket-Accept)";
  if (!head.header("sec-websocket-extensions").empty())
    return "handshake: the provider chose an extension, and none was offered";
  early = answer.substr(static_cast<std::size_t>(headBytes));
  return "";
}

// Connects, upgrades and greets. Bytes that follow the upgrade's answer (the
// first messages) wait in the connection for its first pump().
std::unique_ptr<ProviderConnection> WebSocketSource::open(std::size_t index, Clock::time_point deadline,
                                                          OpenFailure& failure) {
  const Endpoint& endpoint = endpoints_[index];
  if (!endpoint.error.empty()) {
    failure.why = endpoint.error;
    return nullptr;
  }
  std::unique_ptr<ClientSocket> socket =
      connect(endpoint.host, endpoint.port, endpoint.tls ? tlsContext() : nullptr, deadline, failure);
  if (!socket) return nullptr;
  const std::string key = newWebSocketKey();
  if (!socket->writeAll(handshakeRequest(endpoint, key), deadline)) {
    failure.why = "sending the handshake: " + socket->error();
    return nullptr;
  }
  std::string early;
  failure.why = awaitUpgrade(*socket, key, deadline, early);
  if (!failure.why.empty()) return nullptr;
  for (const std::string& message : greeting_) {
    if (!socket->writeAll(encodeClientFrame(WsOpcode::Text, message), deadline)) {
      failure.why = "sending send_on_connect: " + socket->error();
      return nullptr;
    }
  }
  return std::make_unique<Connection>(std::move(socket), std::move(early), reader(), decoder_, pingIntervalMs_);
}

SourceType websocket_source_type() {
  std::vector<KeySpec> keys{
      key("url").doc("ws:// or wss://"),
      key("endpoints", KeyKind::Strings).doc("URLs instead of url: the first is the primary, the others fail over"),
      key("headers", KeyKind::StringMap).env().hidden().doc("sent with the handshake; ${ENV} expands"),
      key("send_on_connect", KeyKind::Strings).env().hidden()
          .doc("messages sent in order after every connect (subscribe, auth); ${ENV} expands"),
      key("ping_interval_ms", KeyKind::Int).def("30000").range(0, 3600000)
          .doc("a PING after this long without a byte; no byte for as long after it hangs up (0: never)"),
      key("max_frame_bytes", KeyKind::Int).def("1048576").range(1, kMaxFrameBytesLimit)
          .doc("a larger message closes the connection")};
  addConnectingKeys(keys, urlTlsSchema());
  return {{"websocket", "a ws:// or wss:// feed: each message is a frame; subscribe messages after every connect",
           std::move(keys),
           [](const Settings& s, const YamlMap& m) {
             checkUrlOrEndpoints(s, m, {"ws://", "wss://"});
             checkFailover(s, m);
           }},
          [](const SourceConfig& config, Bus& bus) { return std::make_unique<WebSocketSource>(config, bus); }};
}

}  // namespace streamrelay
