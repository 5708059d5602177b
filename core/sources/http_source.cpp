// SPDX-License-Identifier: Apache-2.0
#include "http_source.hpp"

#include <Poco/Logger.h>
#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <mutex>

#include "failover.hpp"
#include "keys.hpp"
#include "logging.hpp"
#include "source_type.hpp"
#include "yaml_map.hpp"

namespace streamrelay {

namespace {

Poco::Logger& logger() { return Poco::Logger::get("streamrelay.upstream"); }
constexpr long kConnectTimeoutMs = 3000;
constexpr std::size_t kErrorBodyBytes = 200;  // of a response >= 400, for the log line
constexpr int kMaxRetryAfterMs = 3600 * 1000;

// One request's state, shared with libcurl's callbacks (the source thread only).
struct Transfer {
  explicit Transfer(FrameReader& r) : reader(r) {}
  FrameReader& reader;
  long status = 0;            // of the response being received (the last status line)
  std::string reason;         // its reason phrase
  int retryAfterMs = -1;
  std::string errorBody;      // the first bytes of a response >= 300
  std::string decodeError;
  bool delivered = false;
  bool streaming = false;     // the headers of a 2xx response are complete: the stream is on
  bool hold = false;          // a probe of the primary: its body waits (paused) until it takes over
  std::chrono::steady_clock::time_point lastByte = std::chrono::steady_clock::now();
};

bool startsWithNoCase(const std::string& text, const char* prefix) {
  for (std::size_t i = 0; prefix[i]; ++i)
    if (i >= text.size() || std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  return true;
}

std::string trimmed(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  std::size_t start = 0;
  while (start < text.size() && std::isspace(static_cast<unsigned char>(text[start]))) ++start;
  return text.substr(start);
}

// Every header line of every response (redirects included): a status line
// starts a new response.
std::size_t onHeader(char* data, std::size_t size, std::size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  const std::string line(data, n);
  t.lastByte = std::chrono::steady_clock::now();
  if (line.rfind("HTTP/", 0) == 0) {
    const std::size_t space = line.find(' ');
    t.status = space == std::string::npos ? 0 : std::strtol(line.c_str() + space + 1, nullptr, 10);
    const std::size_t reasonAt = line.find(' ', space + 1);
    t.reason = reasonAt == std::string::npos ? "" : trimmed(line.substr(reasonAt + 1));
    t.retryAfterMs = -1;
  } else if ((line == "\r\n" || line == "\n") && t.status >= 200 && t.status < 300) {
    t.streaming = true;
  } else if (startsWithNoCase(line, "retry-after:")) {
    const std::string value = trimmed(line.substr(12));
    if (!value.empty() && value.find_first_not_of("0123456789") == std::string::npos && value.size() < 8)
      t.retryAfterMs = std::min(kMaxRetryAfterMs, std::stoi(value) * 1000);
  }
  return n;
}

// The final response's body: frames when it is 2xx, the head of an error
// otherwise. Returning less than given aborts the transfer.
std::size_t onBody(char* data, std::size_t size, std::size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  t.lastByte = std::chrono::steady_clock::now();
  if (t.hold && t.status >= 200 && t.status < 300) return CURL_WRITEFUNC_PAUSE;  // delivered again on unpause
  if (t.status < 200 || t.status >= 300) {
    t.errorBody.append(data, std::min(n, kErrorBodyBytes - t.errorBody.size()));
    return t.errorBody.size() < kErrorBodyBytes ? n : 0;
  }
  if (t.reader.decode(data, n) == FrameReader::Result::ProtocolError) {
    const ProtocolError& e = t.reader.error();
    t.decodeError = "protocol error at offset " + std::to_string(e.offset) + " (announced size " +
                    std::to_string(e.announced) + "): " + e.message;
    return 0;
  }
  t.delivered = true;
  return n;
}

std::once_flag curlInitialized;

}  // namespace

HttpSource::HttpSource(const SourceConfig& config, Bus& bus)
    : UpstreamSource(config, bus),
      method_(config.settings.string("method")),
      body_(config.settings.string("body")),
      maxRedirects_(static_cast<long>(config.settings.integer("max_redirects"))),
      tls_([&] {
        const Settings& t = config.settings.group("tls");
        TlsOptions o;
        o.caFile = t.string("ca_file");
        o.certFile = t.string("cert_file");
        o.keyFile = t.string("key_file");
        o.verify = t.boolean("verify");
        return o;
      }()),
      idleTimeoutMs_(static_cast<int>(config.settings.integer("idle_timeout_ms"))),
      failover_(config.settings.strings("endpoints").empty()
                    ? std::vector<std::string>{config.settings.string("url")}
                    : config.settings.strings("endpoints"),
                config.settings.group("reconnect"), counters_) {
  for (const auto& [name, value] : config.settings.stringMap("headers")) headers_.push_back(name + ": " + value);
}

HttpSource::~HttpSource() { stop(); }

void HttpSource::prepare() {
  CURLcode rc = CURLE_OK;
  std::call_once(curlInitialized, [&] { rc = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (rc != CURLE_OK) throw std::runtime_error(label() + ": libcurl: " + curl_easy_strerror(rc));
  if (!tls_.verify)
    logger().warning("%s: tls.verify is false: the provider's certificate is NOT checked; anyone on the path "
                     "can read and change the stream",
                     label());
}

// One request: its easy handle and what the callbacks saw.
struct HttpSource::Request {
  Request(FrameReader& reader, std::size_t endpointIndex) : t(reader), endpoint(endpointIndex) {}
  ~Request() {
    if (multi) curl_multi_remove_handle(multi, easy);
    curl_easy_cleanup(easy);
    curl_slist_free_all(headers);
  }
  Transfer t;
  std::size_t endpoint;
  CURL* easy = curl_easy_init();
  CURLM* multi = nullptr;
  curl_slist* headers = nullptr;
  char error[CURL_ERROR_SIZE] = "";
};

std::unique_ptr<HttpSource::Request> HttpSource::start(CURLM* multi, FrameReader& reader, std::size_t endpoint,
                                                       bool hold) {
  auto r = std::make_unique<Request>(reader, endpoint);
  CURL* easy = r->easy;
  r->t.hold = hold;
  for (const std::string& h : headers_) r->headers = curl_slist_append(r->headers, h.c_str());
  const std::string resume = reader.lastEventId();
  if (!resume.empty()) r->headers = curl_slist_append(r->headers, ("Last-Event-ID: " + resume).c_str());
  curl_easy_setopt(easy, CURLOPT_URL, failover_.address(endpoint).c_str());
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, r->headers);
  if (method_ == "POST") {
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body_.c_str());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(body_.size()));
  }
  curl_easy_setopt(easy, CURLOPT_USERAGENT, "streamrelay");
  curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");  // every encoding libcurl decodes (gzip, deflate, br)
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(easy, CURLOPT_MAXREDIRS, maxRedirects_);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, kConnectTimeoutMs);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, 256L * 1024);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, r->error);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &onHeader);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, &r->t);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &onBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &r->t);
  if (!tls_.caFile.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, tls_.caFile.c_str());
  if (!tls_.certFile.empty()) {
    curl_easy_setopt(easy, CURLOPT_SSLCERT, tls_.certFile.c_str());
    curl_easy_setopt(easy, CURLOPT_SSLKEY, tls_.keyFile.c_str());
  }
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, tls_.verify ? 1L : 0L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, tls_.verify ? 2L : 0L);
  curl_multi_add_handle(multi, easy);
  r->multi = multi;
  return r;
}

// Streams from `endpoint` until the response ends. While a secondary is live
// the primary is probed with a second request whose body waits (paused):
// once the primary's 2xx headers are in, the secondary is dropped, a frame it
// left cut is forgotten, and the primary's body flows.
HttpSource::Outcome HttpSource::stream(FrameReader& reader, std::size_t endpoint) {
  Outcome outcome;
  CURLM* multi = curl_multi_init();
  std::unique_ptr<Request> live = start(multi, reader, endpoint, false);
  std::unique_ptr<Request> probe;
  bool stopping = false, idle = false, logged = false;
  CURLcode result = CURLE_OK;
  for (;;) {
    int running = 0;
    if (CURLMcode mc = curl_multi_perform(multi, &running); mc != CURLM_OK) {
      outcome.error = std::string("libcurl: ") + curl_multi_strerror(mc);
      break;
    }
    if (live->t.streaming && !logged) {
      logged = true;
      outcome.streamed = true;
      counters_.connected = true;
      failover_.connected(live->endpoint);
      logger().information("%s %s: connected (HTTP %ld)", label(), failover_.describe(live->endpoint),
                           live->t.status);
    }
    if (probe && probe->t.streaming) {
      logger().warning("%s %s: the primary %s answers again: switching back", label(),
                       failover_.describe(live->endpoint), failover_.address(0));
      failover_.lost(true);
      live.reset();
      reader.reset();  // a frame the secondary left cut is never published
      live = std::move(probe);
      live->t.hold = false;
      curl_easy_pause(live->easy, CURLPAUSE_CONT);
      logged = false;
      continue;
    }
    bool liveDone = false;
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      if (probe && msg->easy_handle == probe->easy) {
        probe.reset();  // the primary does not answer yet
        failover_.probeFailed();
      } else if (msg->easy_handle == live->easy) {
        liveDone = true;
        result = msg->data.result;
      }
    }
    if (liveDone) break;
    if (!probe && logged && failover_.probeDue()) probe = start(multi, reader, 0, true);
    int timeoutMs = 1000;
    if (const int probeMs = failover_.msUntilProbe(); probeMs >= 0 && !probe) timeoutMs = std::min(timeoutMs, probeMs);
    if (idleTimeoutMs_ > 0) {
      auto idleLeft = live->t.lastByte + std::chrono::milliseconds(idleTimeoutMs_) - std::chrono::steady_clock::now();
      auto leftMs = std::chrono::duration_cast<std::chrono::milliseconds>(idleLeft).count();
      if (leftMs <= 0) {
        idle = true;
        break;
      }
      timeoutMs = static_cast<int>(std::min<long long>(timeoutMs, leftMs));
    }
    curl_waitfd stopFd{stop_.fd(), CURL_WAIT_POLLIN, 0};
    curl_multi_poll(multi, &stopFd, 1, timeoutMs, nullptr);
    if (stopFd.revents != 0 || stop_.requested()) {
      stopping = true;
      break;
    }
  }
  const Transfer& t = live->t;
  outcome.endpoint = live->endpoint;
  outcome.status = t.status;
  outcome.retryAfterMs = t.retryAfterMs;
  outcome.delivered = t.delivered;
  if (stopping) {
    outcome.error.clear();
  } else if (!outcome.error.empty()) {
    // libcurl's own failure, set above
  } else if (!t.decodeError.empty()) {
    outcome.error = t.decodeError;
  } else if (idle) {
    outcome.error = "no data for idle_timeout_ms " + std::to_string(idleTimeoutMs_) + " ms";
  } else if (t.status >= 300 && (result == CURLE_OK || result == CURLE_WRITE_ERROR)) {
    outcome.error = "HTTP " + std::to_string(t.status) + (t.reason.empty() ? "" : " " + t.reason) +
                    (t.errorBody.empty() ? "" : ": " + oneLine(t.errorBody));
  } else if (result != CURLE_OK) {
    outcome.error = live->error[0] ? live->error : curl_easy_strerror(result);
  } else {
    outcome.error = "the response ended (HTTP " + std::to_string(t.status) + ")";
  }
  probe.reset();
  live.reset();
  curl_multi_cleanup(multi);
  return outcome;
}

void HttpSource::run() {
  FrameReader reader(config_.framing, bus_, counters_);
  while (!stop_.requested()) {
    counters_.connects.fetch_add(1);
    Outcome outcome = stream(reader, failover_.next());
    counters_.connected = false;
    reader.reset();  // a frame cut by the end of the response is never published
    const Failover::Next next = failover_.ended(outcome, outcome.error.empty() || stop_.requested());
    if (next == Failover::Next::Stop) break;
    const bool honourRetryAfter = outcome.retryAfterMs >= 0 && (outcome.status == 429 || outcome.status == 503);
    if (next == Failover::Next::TryNext && !honourRetryAfter) {
      logger().warning("%s %s: %s; trying %s", label(), failover_.describe(outcome.endpoint), outcome.error,
                       failover_.describe(failover_.next()));
      continue;  // the next endpoint at once: only a failed round waits
    }
    const int wait = honourRetryAfter ? outcome.retryAfterMs : failover_.nextWaitMs();
    logger().warning("%s %s: %s; retrying in %d ms%s", label(), failover_.describe(outcome.endpoint), outcome.error,
                     wait, std::string(honourRetryAfter ? " (Retry-After)" : ""));
    if (stop_.waitFor(std::chrono::milliseconds(wait))) break;
  }
  logger().information("%s %s: stopped", label(), failover_.address(0));
}

SourceType http_source_type() {
  return {{"http",
           "an HTTP(S) streaming response: NDJSON lines by default, or framing: {type: sse}",
           {key("url").doc("http:// or https://"),
            key("endpoints", KeyKind::Strings).doc("URLs instead of url: the first is the primary, the others fail over"),
            key("method").def("GET").oneOf({"GET", "POST"}),
            key("headers", KeyKind::StringMap).env().hidden().doc("sent with every request; ${ENV} expands"),
            key("body").env().hidden().doc("the POST body; ${ENV} expands"),
            key("max_redirects", KeyKind::Int).def("5").range(0, 50),
            groupKey("tls", urlTlsSchema()),
            groupKey("reconnect", reconnectSchema()),
            key("idle_timeout_ms", KeyKind::Int).def("0").range(0, kIntMax)
                .doc("a body quiet this long is dropped and requested again (0: never)"),
            groupKey("framing", lineFramingSchema())},
           [](const Settings& s, const YamlMap& m) {
             checkUrlOrEndpoints(s, m, {"http://", "https://"});
             if (!s.string("body").empty() && s.string("method") != "POST") m.fail("body", "needs method: POST");
           }},
          [](const SourceConfig& config, Bus& bus) { return std::make_unique<HttpSource>(config, bus); }};
}

}  // namespace streamrelay
