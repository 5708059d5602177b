#include "websocket_source.hpp"

#include <Poco/Logger.h>
#include <libwebsockets.h>

#include <cstring>
#include <mutex>
#include <random>

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
  lws_context* context;
  FrameBatchBuilder batch;         // messages completed since the last publish
  std::string message;             // the message in progress
  std::size_t nextGreeting = 0;
  bool established = false;
  bool done = false;               // the connection is over for us (why: error)
  bool gone = false;               // libwebsockets has let go of it: the session may be destroyed
  bool delivered = false;
  std::string error;               // why it ended
  std::chrono::steady_clock::time_point lastByte = std::chrono::steady_clock::now();
  // Wakes the service loop every kTickMs (standard layout, for lws_container_of).
  struct Tick {
    lws_sorted_usec_list_t sul;
    lws_context* context;
  } tick{};
  lws* wsi = nullptr;

  Session(WebSocketSource& s, lws_context* c) : source(s), context(c) {}
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
      url_(config.settings.string("url")),
      greeting_(config.settings.strings("send_on_connect")),
      maxMessageBytes_(static_cast<std::size_t>(config.settings.integer("max_frame_bytes"))),
      pingIntervalMs_(static_cast<int>(config.settings.integer("ping_interval_ms"))),
      caFile_(config.settings.group("tls").string("ca_file")),
      certFile_(config.settings.group("tls").string("cert_file")),
      keyFile_(config.settings.group("tls").string("key_file")),
      verify_(config.settings.group("tls").boolean("verify")),
      initialDelayMs_(static_cast<int>(config.settings.group("reconnect").integer("initial_delay_ms"))),
      maxDelayMs_(static_cast<int>(config.settings.group("reconnect").integer("max_delay_ms"))),
      idleTimeoutMs_(static_cast<int>(config.settings.integer("idle_timeout_ms"))) {
  for (const auto& [name, value] : config.settings.stringMap("headers")) {
    headers_.push_back(name + ":");
    headers_.push_back(value);
  }
  std::lock_guard<std::mutex> lock(counters_.endpointsMutex);
  counters_.endpoints.push_back({url_, 0});
}

WebSocketSource::~WebSocketSource() { stop(); }

std::string WebSocketSource::connectOnce(lws_context* context, bool& delivered) {
  Session session(*this, context);
  std::string url = url_;  // lws_parse_uri cuts it up in place
  const char *scheme = nullptr, *address = nullptr, *path = nullptr;
  int port = 0;
  if (lws_parse_uri(url.data(), &scheme, &address, &port, &path) != 0) return "cannot parse the url";
  const bool secure = std::string(scheme) == "wss";
  const std::string fullPath = "/" + std::string(path);
  lws_retry_bo_t pings{};
  const int pingSecs = pingIntervalMs_ > 0 ? std::max(1, pingIntervalMs_ / 1000) : 65535;
  pings.secs_since_valid_ping = static_cast<uint16_t>(std::min(pingSecs, 65534));
  pings.secs_since_valid_hangup = static_cast<uint16_t>(std::min(pingSecs * 2 + 5, 65535));

  lws_client_connect_info info{};
  info.context = context;
  info.address = address;
  info.port = port;
  info.path = fullPath.c_str();
  info.host = address;
  info.origin = address;
  info.protocol = nullptr;
  info.local_protocol_name = "streamrelay";
  info.pwsi = &session.wsi;
  info.userdata = &session;
  info.retry_and_idle_policy = &pings;
  if (secure) {
    info.ssl_connection = LCCSCF_USE_SSL;
    if (!verify_)
      info.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK | LCCSCF_ALLOW_EXPIRED |
                             LCCSCF_ALLOW_INSECURE;
  }
  if (!lws_client_connect_via_info(&info)) {
    // Failed at once: the callback may have had the session (an error), and the wsi is gone.
    return session.error.empty() ? "cannot connect" : session.error;
  }

  // A tick that wakes the loop, so that a stop or an idle feed is noticed.
  struct Fire {
    static void tick(lws_sorted_usec_list_t* sul) {
      auto* t = lws_container_of(sul, Session::Tick, sul);
      lws_sul_schedule(t->context, 0, sul, &Fire::tick, kTickMs * LWS_US_PER_MS);
    }
  };
  session.tick.context = context;
  lws_sul_schedule(context, 0, &session.tick.sul, &Fire::tick, kTickMs * LWS_US_PER_MS);
  bool logged = false;
  std::string result;
  while (!session.done) {
    if (lws_service(context, 0) < 0) {
      session.end("libwebsockets service failed");
      break;
    }
    if (!session.batch.empty()) {  // what one service call received: one batch, one publish
      auto batch = session.batch.seal(unixNowNs());
      counters_.bytesRead.fetch_add(batch->totalWireBytes() - batch->frameCount() * kWireHeaderBytes,
                                    std::memory_order_relaxed);
      bus_.publish(std::move(batch));
      session.delivered = true;
    }
    if (session.established && !logged) {
      logged = true;
      counters_.connects.fetch_add(1);
      counters_.connected = true;
      {
        std::lock_guard<std::mutex> lock(counters_.endpointsMutex);
        counters_.liveEndpoint = url_;
      }
      logger().information("%s %s: connected", label(), url_);
    }
    if (stop_.requested()) break;
    if (idleTimeoutMs_ > 0 && session.established &&
        std::chrono::steady_clock::now() - session.lastByte > std::chrono::milliseconds(idleTimeoutMs_)) {
      session.end("no data for idle_timeout_ms " + std::to_string(idleTimeoutMs_) + " ms");
      break;
    }
  }
  result = stop_.requested() ? "" : session.error;
  // The session is libwebsockets' user data: close the connection now, in
  // this call, so that no callback can reach the session once it is gone.
  lws_sul_cancel(&session.tick.sul);
  if (!session.gone && session.wsi) lws_set_timeout(session.wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_SYNC);
  counters_.connected = false;
  {
    std::lock_guard<std::mutex> lock(counters_.endpointsMutex);
    counters_.liveEndpoint.clear();
  }
  delivered = session.delivered;
  return result;
}

void WebSocketSource::run() {
  std::call_once(lwsLogRouted, [] { lws_set_log_level(LLL_ERR | LLL_WARN, &lwsLog); });
  lws_context_creation_info info{};
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = kProtocols;
  info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
  info.fd_limit_per_thread = 4;
  info.pt_serv_buf_size = kReadBytes;
  if (!caFile_.empty()) info.client_ssl_ca_filepath = caFile_.c_str();
  if (!certFile_.empty()) {
    info.client_ssl_cert_filepath = certFile_.c_str();
    info.client_ssl_private_key_filepath = keyFile_.c_str();
  }
  lws_context* context = lws_create_context(&info);
  if (!context) {
    logger().error("%s %s: cannot create a libwebsockets context (TLS files?)", label(), url_);
    return;
  }
  if (!verify_)
    logger().warning("%s: tls.verify is false: the provider's certificate is NOT checked; anyone on the path "
                     "can read and change the stream",
                     label());
  std::mt19937 random(std::random_device{}());
  int delayMs = initialDelayMs_;
  while (!stop_.requested()) {
    bool delivered = false;
    std::string error = connectOnce(context, delivered);
    if (error.empty() || stop_.requested()) break;
    {
      std::lock_guard<std::mutex> lock(counters_.endpointsMutex);
      ++counters_.endpoints.front().failures;
    }
    if (delivered) delayMs = initialDelayMs_;
    int wait = std::uniform_int_distribution<int>(delayMs / 2, delayMs)(random);
    logger().warning("%s %s: %s; reconnecting in %d ms", label(), url_, error, wait);
    if (stop_.waitFor(std::chrono::milliseconds(wait))) break;
    delayMs = static_cast<int>(std::min<long long>(2LL * delayMs, maxDelayMs_));
  }
  lws_context_destroy(context);
  logger().information("%s %s: stopped", label(), url_);
}

SourceType websocket_source_type() {
  return {{"websocket",
           "a ws:// or wss:// feed: each message is a frame; subscribe messages after every connect",
           {key("url").needed().doc("ws:// or wss://"),
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
             const std::string& url = s.string("url");
             if (url.rfind("ws://", 0) != 0 && url.rfind("wss://", 0) != 0)
               m.fail("url", "must start with ws:// or wss://, got '" + url + "'");
           }},
          [](const SourceConfig& config, Bus& bus) { return std::make_unique<WebSocketSource>(config, bus); }};
}

}  // namespace streamrelay
