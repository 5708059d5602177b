// SPDX-License-Identifier: Apache-2.0
#include "http_source.hpp"

#include <Poco/Logger.h>
#include <curl/curl.h>

#include <algorithm>
#include <ctime>
#include <mutex>

#include "http_response.hpp"
#include "keys.hpp"
#include "logging.hpp"
#include "source_type.hpp"
#include "yaml_map.hpp"

namespace streamrelay {

namespace {

constexpr long kConnectTimeoutMs = 3000;
constexpr std::size_t kErrorBodyBytes = 200;  // of a response >= 300, for the log line
constexpr long long kMaxRetryAfterMs = 3600LL * 1000;
constexpr int kTurnMs = 1000;  // the longest libcurl waits in one turn (its own timers need turns)

// One request's state, shared with libcurl's callbacks (the source thread only).
struct Transfer {
  explicit Transfer(FrameReader& r) : reader(r) {}
  FrameReader& reader;
  HttpResponseHead head;     // of the response being received
  std::string errorBody;     // the first bytes of a response >= 300
  std::string decodeError;
  bool hold = true;          // a 2xx body waits (paused) until the stream is taken (the first pump)
  bool paused = false;
};

bool isSuccess(long status) { return status >= 200 && status < 300; }

// Every header line of the response (a proxy's CONNECT answer is suppressed).
// Returning less than given aborts the transfer.
std::size_t onHeader(char* data, std::size_t size, std::size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  return t.head.addLine(std::string_view(data, n)) ? n : 0;
}

// The body: frames when it is 2xx, the head of an error otherwise.
std::size_t onBody(char* data, std::size_t size, std::size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  if (!isSuccess(t.head.status())) {
    t.errorBody.append(data, std::min(n, kErrorBodyBytes - t.errorBody.size()));
    return t.errorBody.size() < kErrorBodyBytes ? n : 0;
  }
  if (t.hold) {
    t.paused = true;
    return CURL_WRITEFUNC_PAUSE;  // delivered again on unpause
  }
  if (t.reader.decode(data, n) == FrameReader::Result::ProtocolError) {
    const ProtocolError& e = t.reader.error();
    t.decodeError = "protocol error at offset " + std::to_string(e.offset) + " (announced size " +
                    std::to_string(e.announced) + "): " + e.message;
    return 0;
  }
  return n;
}

std::once_flag curlInitialized;

}  // namespace

// The request in flight (one after another across redirects) and the multi
// handle that drives it, polled with the stop signal.
class HttpSource::Connection : public ProviderConnection {
 public:
  explicit Connection(FrameReader& reader) : reader_(reader), multi_(curl_multi_init()) {}
  ~Connection() override {
    drop();
    curl_multi_cleanup(multi_);
  }

  // Starts `request`, dropping the one before (a redirect's).
  void start(const HttpSource& source, const Request& request);

  enum class Turn { Going, Done, Stopped };
  // Lets libcurl work, then waits up to `timeoutMs` for its sockets or the stop fd.
  Turn turn(int timeoutMs, int stopFd);

  // Drives the request until a final response's head is in (true), or it
  // ends, stops or passes the deadline (false, with why()).
  bool awaitHead(Clock::time_point deadline, int stopFd);
  // Drives an error response until the first bytes of its body are in.
  void awaitErrorBody(Clock::time_point deadline, int stopFd);
  const HttpResponseHead& head() const { return transfer_->head; }
  const std::string& errorBody() const { return transfer_->errorBody; }
  const std::string& why() const { return why_; }

  std::optional<StreamEnd> pump(int timeoutMs, int stopFd) override;
  void close(const Goodbye&, Clock::time_point) override {}  // libcurl closes (close_notify included) on cleanup
  std::string describe() const override { return "HTTP " + std::to_string(transfer_->head.status()); }

 private:
  void drop();
  std::string failure() const;

  FrameReader& reader_;
  CURLM* multi_;
  CURL* easy_ = nullptr;
  curl_slist* headers_ = nullptr;
  std::unique_ptr<Transfer> transfer_;
  char error_[CURL_ERROR_SIZE] = "";
  bool done_ = false;
  CURLcode result_ = CURLE_OK;
  std::string why_;
};

void HttpSource::Connection::drop() {
  if (easy_) {
    curl_multi_remove_handle(multi_, easy_);
    curl_easy_cleanup(easy_);
  }
  curl_slist_free_all(headers_);
  easy_ = nullptr;
  headers_ = nullptr;
}

void HttpSource::Connection::start(const HttpSource& source, const Request& request) {
  drop();
  transfer_ = std::make_unique<Transfer>(reader_);
  done_ = false;
  error_[0] = '\0';
  easy_ = curl_easy_init();
  if (request.withHeaders)
    for (const std::string& h : source.headers_) headers_ = curl_slist_append(headers_, h.c_str());
  const std::string resume = reader_.lastEventId();
  if (!resume.empty()) headers_ = curl_slist_append(headers_, ("Last-Event-ID: " + resume).c_str());
  curl_easy_setopt(easy_, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, headers_);
  if (request.method == "POST") {
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDS, source.body_.c_str());
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDSIZE, static_cast<long>(source.body_.size()));
  }
  curl_easy_setopt(easy_, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy_, CURLOPT_FOLLOWLOCATION, 0L);  // followed by open(), which decides what goes where
  curl_easy_setopt(easy_, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  curl_easy_setopt(easy_, CURLOPT_USERAGENT, "streamrelay");
  curl_easy_setopt(easy_, CURLOPT_ACCEPT_ENCODING, "");  // every encoding libcurl decodes (gzip, deflate, br)
  curl_easy_setopt(easy_, CURLOPT_CONNECTTIMEOUT_MS, kConnectTimeoutMs);
  curl_easy_setopt(easy_, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy_, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(easy_, CURLOPT_BUFFERSIZE, 256L * 1024);
  curl_easy_setopt(easy_, CURLOPT_ERRORBUFFER, error_);
  curl_easy_setopt(easy_, CURLOPT_HEADERFUNCTION, &onHeader);
  curl_easy_setopt(easy_, CURLOPT_HEADERDATA, transfer_.get());
  curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, &onBody);
  curl_easy_setopt(easy_, CURLOPT_WRITEDATA, transfer_.get());
  const TlsOptions& tls = source.tlsOptions();
  if (!tls.caFile.empty()) curl_easy_setopt(easy_, CURLOPT_CAINFO, tls.caFile.c_str());
  if (!tls.certFile.empty()) {
    curl_easy_setopt(easy_, CURLOPT_SSLCERT, tls.certFile.c_str());
    curl_easy_setopt(easy_, CURLOPT_SSLKEY, tls.keyFile.c_str());
  }
  curl_easy_setopt(easy_, CURLOPT_SSL_VERIFYPEER, tls.verify ? 1L : 0L);
  curl_easy_setopt(easy_, CURLOPT_SSL_VERIFYHOST, tls.verify ? 2L : 0L);
  curl_multi_add_handle(multi_, easy_);
}

HttpSource::Connection::Turn HttpSource::Connection::turn(int timeoutMs, int stopFd) {
  int running = 0;
  if (CURLMcode mc = curl_multi_perform(multi_, &running); mc != CURLM_OK) {
    why_ = std::string("libcurl: ") + curl_multi_strerror(mc);
    done_ = true;
    result_ = CURLE_FAILED_INIT;
  }
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
    if (msg->msg != CURLMSG_DONE || msg->easy_handle != easy_) continue;
    done_ = true;
    result_ = msg->data.result;
  }
  if (done_) return Turn::Done;
  curl_waitfd stop{stopFd, CURL_WAIT_POLLIN, 0};
  curl_multi_poll(multi_, &stop, 1, timeoutMs, nullptr);
  return stop.revents != 0 ? Turn::Stopped : Turn::Going;
}

std::string HttpSource::Connection::failure() const {
  if (!why_.empty()) return why_;
  if (!transfer_->head.error().empty()) return transfer_->head.error();
  if (!transfer_->decodeError.empty()) return transfer_->decodeError;
  return error_[0] ? error_ : curl_easy_strerror(result_);
}

bool HttpSource::Connection::awaitHead(Clock::time_point deadline, int stopFd) {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    const Turn t = turn(static_cast<int>(std::clamp<long long>(left, 0, kTurnMs)), stopFd);
    if (transfer_->head.complete()) return true;
    if (t == Turn::Done) {
      why_ = failure();
      return false;
    }
    if (t == Turn::Stopped) {
      why_ = "stopped";
      return false;
    }
    if (left <= 0) {
      why_ = "no response in time";
      return false;
    }
  }
}

void HttpSource::Connection::awaitErrorBody(Clock::time_point deadline, int stopFd) {
  while (!done_ && transfer_->errorBody.size() < kErrorBodyBytes && Clock::now() < deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (turn(static_cast<int>(std::clamp<long long>(left, 0, kTurnMs)), stopFd) == Turn::Stopped) return;
  }
}

std::optional<StreamEnd> HttpSource::Connection::pump(int timeoutMs, int stopFd) {
  Transfer& t = *transfer_;
  if (t.hold) {  // the stream is taken: its body flows
    t.hold = false;
    if (t.paused) {
      t.paused = false;
      curl_easy_pause(easy_, CURLPAUSE_CONT);
    }
  }
  const Turn result = turn(timeoutMs < 0 ? kTurnMs : std::min(timeoutMs, kTurnMs), stopFd);
  if (result == Turn::Stopped) return StreamEnd::stopped();
  if (result == Turn::Going) return std::nullopt;
  if (result_ == CURLE_OK && why_.empty())
    return StreamEnd{StreamEnd::How::Orderly, "the response ended (HTTP " + std::to_string(t.head.status()) + ")"};
  return StreamEnd::failed(failure());
}

HttpSource::HttpSource(const SourceConfig& config, Bus& bus)
    : ConnectingSource(config, bus, urlsOf(config.settings)),
      method_(config.settings.string("method")),
      body_(config.settings.string("body")),
      maxRedirects_(static_cast<long>(config.settings.integer("max_redirects"))),
      headersOnRedirect_(config.settings.boolean("headers_on_redirect")) {
  for (const auto& [name, value] : config.settings.stringMap("headers")) headers_.push_back(name + ": " + value);
}

HttpSource::~HttpSource() { stop(); }

void HttpSource::prepare() {
  CURLcode rc = CURLE_OK;
  std::call_once(curlInitialized, [&] { rc = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (rc != CURLE_OK) throw std::runtime_error(label() + ": libcurl: " + curl_easy_strerror(rc));
  ConnectingSource::prepare();
}

// One request, and the requests its redirects lead to, until a 2xx response
// whose body waits for the first pump().
std::unique_ptr<ProviderConnection> HttpSource::open(std::size_t endpoint, Clock::time_point deadline,
                                                     OpenFailure& failure) {
  auto connection = std::make_unique<Connection>(reader());
  const std::string origin = originOf(failover().address(endpoint));
  Request request{failover().address(endpoint), method_, true};
  for (long redirects = 0;; ++redirects) {
    connection->start(*this, request);
    if (!connection->awaitHead(deadline, stop_.fd())) {
      failure.why = connection->why();
      return nullptr;
    }
    const HttpResponseHead& head = connection->head();
    const long status = head.status();
    if (isSuccess(status)) return connection;
    const std::string location = head.header("location");
    if (status >= 300 && status < 400 && !location.empty() && redirects < maxRedirects_) {
      const Redirect next = resolveRedirect(request.url, location);
      if (!next.error.empty()) {
        failure.why = "HTTP " + std::to_string(status) + ": the redirect to " +
                      oneLine(withoutQuery(next.url.empty() ? location : next.url)) + " is refused: " + next.error;
        return nullptr;
      }
      if (status == 303 || ((status == 301 || status == 302) && request.method == "POST")) request.method = "GET";
      request.url = next.url;
      request.withHeaders = headersOnRedirect_ || originOf(next.url) == origin;
      continue;
    }
    connection->awaitErrorBody(deadline, stop_.fd());
    failure.why = "HTTP " + std::to_string(status) + (head.reason().empty() ? "" : " " + oneLine(head.reason())) +
                  (connection->errorBody().empty() ? "" : ": " + oneLine(connection->errorBody())) +
                  (status >= 300 && status < 400 && !location.empty()
                       ? " (max_redirects " + std::to_string(maxRedirects_) + " reached)" : "");
    if (status == 429 || status == 503)
      failure.retryAfterMs = static_cast<int>(
          retryAfterMs(head.header("retry-after"), static_cast<std::int64_t>(std::time(nullptr)), kMaxRetryAfterMs));
    return nullptr;
  }
}

SourceType http_source_type() {
  std::vector<KeySpec> keys{
      key("url").doc("http:// or https://"),
      key("endpoints", KeyKind::Strings).doc("URLs instead of url: the first is the primary, the others fail over"),
      key("method").def("GET").oneOf({"GET", "POST"}).doc("POST sends body"),
      key("headers", KeyKind::StringMap).env().hidden()
          .doc("sent with every request to the URL's origin; ${ENV} expands"),
      key("headers_on_redirect", KeyKind::Bool).def("false")
          .doc("send headers to the hosts redirects name too (false: only to the configured URL's origin)"),
      key("body").env().hidden().doc("the POST body; ${ENV} expands"),
      key("max_redirects", KeyKind::Int).def("5").range(0, 50)
          .doc("redirects followed (0: none); only to http(s)://, never from https to http")};
  addConnectingKeys(keys, urlTlsSchema());
  keys.push_back(groupKey("framing", lineFramingSchema()));
  return {{"http", "an HTTP(S) streaming response: NDJSON lines by default, or framing: {type: sse}", std::move(keys),
           [](const Settings& s, const YamlMap& m) {
             checkUrlOrEndpoints(s, m, {"http://", "https://"});
             checkFailover(s, m);
             if (!s.string("body").empty() && s.string("method") != "POST") m.fail("body", "needs method: POST");
           }},
          [](const SourceConfig& config, Bus& bus) { return std::make_unique<HttpSource>(config, bus); }};
}

}  // namespace streamrelay
