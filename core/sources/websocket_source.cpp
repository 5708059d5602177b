// SPDX-License-Identifier: Apache-2.0
#include "websocket_source.hpp"

#include <Poco/Logger.h>
#include <libwebsockets.h>

#include <cstring>
#include <mutex>

#include "failover.hpp"
#include "keys.hpp"
#include "logging.hpp"
#include "source_type.hpp"
#include "yaml_map.hpp"

namespace streamrelay {

namespace {

Poco::Logger& logger() { return Poco::Logger::get("streamrelay.upstream"); }
constexpr int kTickMs = 100;  // how often the service loop looks at the stop signal and the idle clock

// libwebsockets' own log lines, at debug level in ours.
void lwsLog(int, const char* line) {
  std::string text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  text = oneLine(text);
  Poco::Logger::get("streamrelay.websocket").debug("%s", text);
}

std::once_flag lwsLogRouted;

std::string closeText(const unsigned char* payload, std::size_t size) {
  if (size < 2) return "closed by the provider (no close code)";
  const int code = (payload[0] << 8) | payload[1];
  std::string reason(reinterpret_cast<const char*>(payload) + 2, size - 2);
  return "closed by the provider with code " + std::to_string(code) + (reason.empty() ? "" : " (" + oneLine(reason) + ")");
}

}  // namespace

// One connection's state. libwebsockets calls back on the source thread only.
struct WebSocketSource::Session {
  WebSocketSource& source;
  std::size_t endpoint;
  FrameBatchBuilder batch;         // messages completed since the last publish
  std::string message;             // the message in progress
  std::size_t nextGreeting = 0;
  bool established = false;
  bool done = false;               // the connection is over for us (why: error)
  bool gone = false;               // libwebsockets has let go of it: the session may be destroyed
  std::string error;               // why it ended
  std::chrono::steady_clock::time_point lastByte = std::chrono::steady_clock::now();
  lws* wsi = nullptr;

  Session(WebSocketSource& s, std::size_t e) : source(s), endpoint(e) {}
  void end(std::string why) {
    if (!done) error = std::move(why);
    done = true;
  }
};

namespace {

int callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, std::size_t len) {
  auto* s = static_cast<WebSocketSource::Session*>(user);
  switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
      if (!s) break;
      auto** p = static_cast<unsigned char**>(in);
      unsigned char* end = *p + len;
      const auto& headers = s->source.headersForHandshake();
      for (std::size_t i = 0; i + 1 < headers.size(); i += 2)
        if (lws_add_http_header_by_name(wsi, reinterpret_cast<const unsigned char*>(headers[i].c_str()),
                                        reinterpret_cast<const unsigned char*>(headers[i + 1].data()),
                                        static_cast<int>(headers[i + 1].size()), p, end))
          return -1;
      break;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
      s->established = true;
      s->lastByte = std::chrono::steady_clock::now();
      if (!s->source.greeting().empty()) lws_callback_on_writable(wsi);
      break;
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
      const auto& greeting = s->source.greeting();
      if (s->nextGreeting >= greeting.size()) break;
      const std::string& text = greeting[s->nextGreeting++];
      std::vector<unsigned char> buffer(LWS_PRE + text.size());
      std::memcpy(buffer.data() + LWS_PRE, text.data(), text.size());
      if (lws_write(wsi, buffer.data() + LWS_PRE, text.size(), LWS_WRITE_TEXT) < static_cast<int>(text.size())) {
        s->end("sending send_on_connect failed");
        return -1;
      }
      if (s->nextGreeting < greeting.size()) lws_callback_on_writable(wsi);
      break;
    }
    case LWS_CALLBACK_CLIENT_RECEIVE: {
      s->lastByte = std::chrono::steady_clock::now();
      // The whole frame's length is known from its header: check it before keeping any of it.
      const std::size_t announced = s->message.size() + len + lws_remaining_packet_payload(wsi);
      if (announced > s->source.maxMessageBytes()) {
        s->end("a message of at least " + std::to_string(announced) + " bytes is larger than max_frame_bytes (" +
               std::to_string(s->source.maxMessageBytes()) + ")");
        s->message.clear();
        s->message.shrink_to_fit();
        return -1;
      }
      const bool complete = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
      if (complete && s->message.empty()) {  // the common case: a whole message in one piece, one copy
        s->batch.add(static_cast<const char*>(in), len);
        break;
      }
      s->message.append(static_cast<const char*>(in), len);
      if (complete) {
        s->batch.add(s->message.data(), s->message.size());
        s->message.clear();
      }
      break;
    }
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
      s->end(closeText(static_cast<const unsigned char*>(in), len));
      break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
      if (s) {
        s->end(in ? oneLine(static_cast<const char*>(in)) : "cannot connect");
        s->gone = true;
      }
      break;
    case LWS_CALLBACK_CLIENT_CLOSED:
      if (s) {
        s->end("connection closed without a close code from the provider (a dropped connection, or one libwebsockets closed on a protocol error)");
        s->gone = true;
      }
      break;
    case LWS_CALLBACK_WSI_DESTROY:
      if (s) s->gone = true;
      break;
    default:
      break;
  }
  return lws_callback_http_dummy(wsi, reason, user, in, len);
}

// Reads of up to 256 KiB, as the other sources make: one service call then
// carries many messages, and they are published as one batch.
constexpr std::size_t kReadBytes = 256 * 1024;

const lws_protocols kProtocols[] = {
    {"streamrelay", &callback, 0, kReadBytes, 0, nullptr, 0},
    {nullptr, nullptr, 0, 0, 0, nullptr, 0},
};

}  // namespace

WebSocketSource::WebSocketSource(const SourceConfig& config, Bus& bus)
    : UpstreamSource(config, bus),
      greeting_(config.settings.strings("send_on_connect")),
      maxMessageBytes_(static_cast<std::size_t>(config.settings.integer("max_frame_bytes"))),
      pingIntervalMs_(static_cast<int>(config.settings.integer("ping_interval_ms"))),
      caFile_(config.settings.group("tls").string("ca_file")),
      certFile_(config.settings.group("tls").string("cert_file")),
      keyFile_(config.settings.group("tls").string("key_file")),
      verify_(config.settings.group("tls").boolean("verify")),
      idleTimeoutMs_(static_cast<int>(config.settings.integer("idle_timeout_ms"))),
      failover_(config.settings.strings("endpoints").empty()
                    ? std::vector<std::string>{config.settings.string("url")}
                    : config.settings.strings("endpoints"),
                config.settings.group("reconnect"), counters_) {
  for (const auto& [name, value] : config.settings.stringMap("headers")) {
    headers_.push_back(name + ":");
    headers_.push_back(value);
  }
  const int pingSecs = pingIntervalMs_ > 0 ? std::max(1, pingIntervalMs_ / 1000) : 65534;
  pings_.secs_since_valid_ping = static_cast<uint16_t>(std::min(pingSecs, 65534));
  pings_.secs_since_valid_hangup = static_cast<uint16_t>(std::min(pingSecs * 2 + 5, 65535));
}

WebSocketSource::~WebSocketSource() { stop(); }

std::unique_ptr<WebSocketSource::Session> WebSocketSource::open(lws_context* context, std::size_t endpoint,
                                                                std::string& error) {
  auto session = std::make_unique<Session>(*this, endpoint);
  std::string url = failover_.address(endpoint);  // lws_parse_uri cuts it up in place
  const char *scheme = nullptr, *address = nullptr, *path = nullptr;
  int port = 0;
  if (lws_parse_uri(url.data(), &scheme, &address, &port, &path) != 0) {
    error = "cannot parse the url";
    return nullptr;
  }
  const std::string fullPath = "/" + std::string(path);
  lws_client_connect_info info{};
  info.context = context;
  info.address = address;
  info.port = port;
  info.path = fullPath.c_str();
  info.host = address;
  info.origin = address;
  info.protocol = nullptr;
  info.local_protocol_name = "streamrelay";
  info.pwsi = &session->wsi;
  info.userdata = session.get();
  info.retry_and_idle_policy = &pings_;
  if (std::string(scheme) == "wss") {
    info.ssl_connection = LCCSCF_USE_SSL;
    if (!verify_)
      info.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK | LCCSCF_ALLOW_EXPIRED |
                             LCCSCF_ALLOW_INSECURE;
  }
  if (!lws_client_connect_via_info(&info)) {
    // Failed at once: the callback may have had the session (an error), and the wsi is gone.
    error = session->error.empty() ? "cannot connect" : session->error;
    return nullptr;
  }
  return session;
}

// The session is libwebsockets' user data: close its connection now, in this
// call, so that no callback can reach the session once it is destroyed.
void WebSocketSource::close(Session& session) {
  if (!session.gone && session.wsi) lws_set_timeout(session.wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_SYNC);
}

WebSocketSource::Outcome WebSocketSource::stream(lws_context* context, std::size_t endpoint) {
  Outcome outcome;
  outcome.endpoint = endpoint;
  std::unique_ptr<Session> live = open(context, endpoint, outcome.error);
  if (!live) return outcome;
  std::unique_ptr<Session> probe;
  // A tick that wakes the service loop, so that a stop, an idle feed or a due
  // probe is noticed however quiet the connection.
  struct Tick {
    lws_sorted_usec_list_t sul;  // first: standard layout for lws_container_of
    lws_context* context;
    static void fire(lws_sorted_usec_list_t* sul) {
      auto* t = lws_container_of(sul, Tick, sul);
      lws_sul_schedule(t->context, 0, sul, &Tick::fire, kTickMs * LWS_US_PER_MS);
    }
  } tick{};
  tick.context = context;
  lws_sul_schedule(context, 0, &tick.sul, &Tick::fire, kTickMs * LWS_US_PER_MS);
  bool logged = false;
  for (;;) {
    if (lws_service(context, 0) < 0) {
      live->end("libwebsockets service failed");
      break;
    }
    if (!live->batch.empty()) {  // what one service call received: one batch, one publish
      auto batch = live->batch.seal(unixNowNs());
      counters_.bytesRead.fetch_add(batch->totalWireBytes() - batch->frameCount() * kWireHeaderBytes,
                                    std::memory_order_relaxed);
      bus_.publish(std::move(batch));
      outcome.delivered = true;
    }
    if (live->established && !logged) {
      logged = true;
      outcome.streamed = true;
      counters_.connects.fetch_add(1);
      counters_.connected = true;
      failover_.connected(live->endpoint);
      logger().information("%s %s: connected", label(), failover_.describe(live->endpoint));
    }
    if (probe && probe->established) {  // the primary answers: it takes over
      logger().warning("%s %s: the primary %s answers again: switching back", label(),
                       failover_.describe(live->endpoint), failover_.address(0));
      close(*live);
      failover_.lost(true);
      live = std::move(probe);  // what it received meanwhile is published next
      logged = false;
      continue;
    }
    if (probe && probe->done) {
      close(*probe);
      probe.reset();
      failover_.probeFailed();
    }
    if (stop_.requested() || live->done) break;
    if (idleTimeoutMs_ > 0 && live->established &&
        std::chrono::steady_clock::now() - live->lastByte > std::chrono::milliseconds(idleTimeoutMs_)) {
      live->end("no data for idle_timeout_ms " + std::to_string(idleTimeoutMs_) + " ms");
      break;
    }
    if (!probe && logged && failover_.probeDue()) {
      std::string ignored;
      probe = open(context, 0, ignored);
      if (!probe) failover_.probeFailed();
    }
  }
  outcome.endpoint = live->endpoint;
  outcome.error = stop_.requested() ? "" : live->error;
  lws_sul_cancel(&tick.sul);
  if (probe) close(*probe);
  close(*live);
  counters_.connected = false;
  return outcome;
}

void WebSocketSource::run() {
  std::call_once(lwsLogRouted, [] { lws_set_log_level(LLL_ERR | LLL_WARN, &lwsLog); });
  lws_context_creation_info info{};
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = kProtocols;
  info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
  info.fd_limit_per_thread = 6;  // the live connection, a probe, and lws' own
  info.pt_serv_buf_size = kReadBytes;
  if (!caFile_.empty()) info.client_ssl_ca_filepath = caFile_.c_str();
  if (!certFile_.empty()) {
    info.client_ssl_cert_filepath = certFile_.c_str();
    info.client_ssl_private_key_filepath = keyFile_.c_str();
  }
  lws_context* context = lws_create_context(&info);
  if (!context) {
    logger().error("%s %s: cannot create a libwebsockets context (TLS files?)", label(), failover_.address(0));
    return;
  }
  if (!verify_)
    logger().warning("%s: tls.verify is false: the provider's certificate is NOT checked; anyone on the path "
                     "can read and change the stream",
                     label());
  while (!stop_.requested()) {
    Outcome outcome = stream(context, failover_.next());
    const Failover::Next next = failover_.ended(outcome, outcome.error.empty() || stop_.requested());
    if (next == Failover::Next::Stop) break;
    if (next == Failover::Next::TryNext) {
      logger().warning("%s %s: %s; trying %s", label(), failover_.describe(outcome.endpoint), outcome.error,
                       failover_.describe(failover_.next()));
      continue;  // the next endpoint at once: only a failed round waits
    }
    const int wait = failover_.nextWaitMs();
    logger().warning("%s %s: %s; reconnecting in %d ms", label(), failover_.describe(outcome.endpoint),
                     outcome.error, wait);
    if (stop_.waitFor(std::chrono::milliseconds(wait))) break;
  }
  lws_context_destroy(context);
  logger().information("%s %s: stopped", label(), failover_.address(0));
}

SourceType websocket_source_type() {
  return {{"websocket",
           "a ws:// or wss:// feed: each message is a frame; subscribe messages after every connect",
           {key("url").doc("ws:// or wss://"),
            key("endpoints", KeyKind::Strings).doc("URLs instead of url: the first is the primary, the others fail over"),
            key("headers", KeyKind::StringMap).env().hidden().doc("sent with the handshake; ${ENV} expands"),
            key("send_on_connect", KeyKind::Strings).env().hidden()
                .doc("messages sent in order after every connect (subscribe, auth); ${ENV} expands"),
            key("ping_interval_ms", KeyKind::Int).def("30000").range(0, 3600000)
                .doc("a PING after this long without traffic (whole seconds; 0: never)"),
            key("max_frame_bytes", KeyKind::Int).def("1048576").range(1, kMaxFrameBytesLimit)
                .doc("a larger message closes the connection"),
            groupKey("tls", urlTlsSchema()),
            groupKey("reconnect", reconnectSchema()),
            key("idle_timeout_ms", KeyKind::Int).def("0").range(0, kIntMax)
                .doc("reconnect after this long without a message (0: never)")},
           [](const Settings& s, const YamlMap& m) {
             checkUrlOrEndpoints(s, m, {"ws://", "wss://"});
           }},
          [](const SourceConfig& config, Bus& bus) { return std::make_unique<WebSocketSource>(config, bus); }};
}

}  // namespace streamrelay
