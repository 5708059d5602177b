// SPDX-License-Identifier: Apache-2.0
#pragma once
// streamrelay client library: connect to a relay listener, read frames, and
// reconnect if asked. Header-only, POSIX sockets, so any C++17 program can
// subscribe by including this one file.
//
//   streamrelay::client::Subscriber sub("127.0.0.1:7000");
//   std::string frame;
//   while (sub.next(frame)) use(frame);
//
// It speaks every listener protocol: `raw` (frames only), `streamrelay`
// (a hello line, an answer, then frames with stream, seq and receive time,
// and heartbeats, which it skips), `websocket` and `sse`, whose addresses are
// URLs (ws://, wss://; http://, https://, sse://, sses://). With streamrelay,
// websocket (envelope header or json) and sse it knows each frame's stream
// and seq, and on reconnect resumes after the last seq it returned. A
// connection that ends, cleanly or not (a relay restarted or gone, a TLS
// connection cut without close_notify, a relay silent past the read
// timeout), is a reconnect when asked, else the end of next(): see
// endReason(). TLS needs OpenSSL: define STREAMRELAY_CLIENT_TLS before
// including it and link OpenSSL::SSL.
//
// A Subscriber is not thread safe: one thread reads it.

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <map>
#include <optional>
#include <thread>
#include <vector>

#ifdef STREAMRELAY_CLIENT_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#endif

#include "streamrelay/client_hello.hpp"
#include "streamrelay/mini_json.hpp"
#include "streamrelay/wire.hpp"

namespace streamrelay {
namespace client {

// How frames are cut, as in the relay's `framing` config.
struct Framing {
  enum class Type { LengthPrefix, Delimiter, Fixed };
  Type type = Type::LengthPrefix;
  int width = 4;
  bool bigEndian = true;
  std::string delimiter = "\n";
  bool strip = true;
  std::size_t size = 0;
  std::size_t maxFrameBytes = 1 << 20;

  // "length-prefix[:WIDTH[:big|little]]", "delimiter[:TEXT]" (\n, \0, \r, \t
  // and \\ escapes), or "fixed:SIZE".
  static Framing parse(const std::string& spec) {
    Framing f;
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (;;) {
      std::size_t colon = spec.find(':', start);
      parts.push_back(spec.substr(start, colon - start));
      if (colon == std::string::npos) break;
      start = colon + 1;
      if (parts.size() == 1 && parts[0] == "delimiter") {  // the rest is the delimiter
        parts.push_back(spec.substr(start));
        break;
      }
    }
    if (parts[0] == "length-prefix") {
      if (parts.size() > 1) f.width = std::stoi(parts[1]);
      if (f.width != 1 && f.width != 2 && f.width != 4 && f.width != 8)
        throw std::invalid_argument("length-prefix width must be 1, 2, 4 or 8");
      if (parts.size() > 2 && parts[2] != "big" && parts[2] != "little")
        throw std::invalid_argument("byte order must be big or little");
      f.bigEndian = parts.size() < 3 || parts[2] == "big";
    } else if (parts[0] == "delimiter") {
      f.type = Type::Delimiter;
      if (parts.size() > 1) f.delimiter = unescape(parts[1]);
      if (f.delimiter.empty()) throw std::invalid_argument("the delimiter must not be empty");
    } else if (parts[0] == "fixed" && parts.size() == 2) {
      f.type = Type::Fixed;
      f.size = std::stoul(parts[1]);
      if (f.size == 0) throw std::invalid_argument("fixed size must be >= 1");
    } else {
      throw std::invalid_argument("unknown framing '" + spec + "' (length-prefix[:W[:big|little]], delimiter[:TEXT], fixed:N)");
    }
    return f;
  }

  static std::string unescape(const std::string& text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (text[i] != '\\' || i + 1 == text.size()) {
        out += text[i];
        continue;
      }
      char c = text[++i];
      out += c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c == '0' ? '\0' : c;
    }
    return out;
  }

  // Appends one frame in this framing to `out` (the publisher's side).
  void encode(const std::string& payload, std::string& out) const {
    if (type == Type::LengthPrefix) {
      char prefix[8];
      wire::putUnsigned(prefix, payload.size(), width, bigEndian);
      out.append(prefix, static_cast<std::size_t>(width));
    }
    out += payload;
    if (type == Type::Delimiter) out += delimiter;
  }
};

struct Endpoint {
  std::string host;
  std::string port;

  // "HOST:PORT" or "[IPv6]:PORT".
  static Endpoint parse(const std::string& text) {
    std::size_t colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
      throw std::invalid_argument("expected HOST:PORT or [IPv6]:PORT, got '" + text + "'");
    Endpoint e{text.substr(0, colon), text.substr(colon + 1)};
    if (e.host.size() > 2 && e.host.front() == '[' && e.host.back() == ']') e.host = e.host.substr(1, e.host.size() - 2);
    return e;
  }
};

// Connects to HOST:PORT; returns the fd or throws std::runtime_error.
inline int connectTo(const Endpoint& endpoint) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  int rc = ::getaddrinfo(endpoint.host.c_str(), endpoint.port.c_str(), &hints, &list);
  if (rc != 0) throw std::runtime_error(endpoint.host + ": " + gai_strerror(rc));
  std::string error = "no address";
  int fd = -1;
  for (addrinfo* a = list; a && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd >= 0 && ::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      error = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(list);
  if (fd < 0) throw std::runtime_error("connect to " + endpoint.host + ":" + endpoint.port + ": " + error);
  return fd;
}

struct TlsOptions {
  bool enabled = false;
  std::string caFile;      // PEM CAs to trust (empty: the system's store)
  std::string certFile;    // client certificate (mutual TLS), with keyFile
  std::string keyFile;
  std::string serverName;  // the name the certificate must carry (empty: the host connected to)
};

// One connection to a listener: a socket, through TLS if asked.
class Connection {
 public:
  Connection(const Endpoint& endpoint, const TlsOptions& tls) : fd_(connectTo(endpoint)) {
    if (!tls.enabled) return;
#ifdef STREAMRELAY_CLIENT_TLS
    try {
      startTls(endpoint, tls);
    } catch (...) {
      close();
      throw;
    }
#else
    close();
    throw std::runtime_error("TLS asked for, but client.hpp was built without STREAMRELAY_CLIENT_TLS");
#endif
  }
  ~Connection() { close(); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // > 0 bytes read; 0 when the connection ended, whether the relay closed it
  // (a TLS close_notify, a TCP FIN) or it was lost (reset, or cut without
  // close_notify: OpenSSL 3 reports that as SSL_R_UNEXPECTED_EOF_WHILE_READING),
  // with ended() saying which. Throws on a TLS error that a new connection
  // would meet again (an alert: a refused certificate).
  long read(char* data, std::size_t size) {
#ifdef STREAMRELAY_CLIENT_TLS
    if (ssl_) {
      ERR_clear_error();
      int n = SSL_read(ssl_, data, static_cast<int>(size));
      if (n > 0) return n;
      const int code = SSL_get_error(ssl_, n);
      const int saved = errno;
      if (code == SSL_ERROR_ZERO_RETURN) return end("the relay closed the connection");
      if (code == SSL_ERROR_SYSCALL)
        return end(std::string("connection lost: ") + (saved ? std::strerror(saved) : "cut without TLS close_notify"));
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
      if (code == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ERR_clear_error();
        return end("connection lost: cut without TLS close_notify");
      }
#endif
      throw std::runtime_error("TLS read: " + sslError());
    }
#endif
    ssize_t n;
    do n = ::recv(fd_, data, size, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0) return n;
    return end(n == 0 ? "the relay closed the connection" : std::string("connection lost: ") + std::strerror(errno));
  }

  // Why read() returned 0 (empty until then).
  const std::string& ended() const { return ended_; }

  void writeAll(const std::string& data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
      long n;
#ifdef STREAMRELAY_CLIENT_TLS
      if (ssl_) n = SSL_write(ssl_, data.data() + sent, static_cast<int>(data.size() - sent));
      else
#endif
        n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw std::runtime_error("send: the relay closed the connection");
      sent += static_cast<std::size_t>(n);
    }
  }

  // Waits up to `ms` for something to read; false when nothing came.
  bool waitReadable(int ms) {
#ifdef STREAMRELAY_CLIENT_TLS
    if (ssl_ && SSL_pending(ssl_) > 0) return true;
#endif
    pollfd p{fd_, POLLIN, 0};
    int rc;
    do rc = ::poll(&p, 1, ms);
    while (rc < 0 && errno == EINTR);
    return rc > 0;
  }

  // A raw subscriber never sends: it may say so at once (not over TLS, which
  // still exchanges messages after the handshake).
  void shutdownWrite() {
    if (!tls()) ::shutdown(fd_, SHUT_WR);
  }
  bool tls() const {
#ifdef STREAMRELAY_CLIENT_TLS
    return ssl_ != nullptr;
#else
    return false;
#endif
  }

 private:
  void close() {
#ifdef STREAMRELAY_CLIENT_TLS
    if (ssl_) SSL_free(ssl_);
    if (ctx_) SSL_CTX_free(ctx_);
    ssl_ = nullptr;
    ctx_ = nullptr;
#endif
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  long end(std::string why) {
    ended_ = std::move(why);
    return 0;
  }

#ifdef STREAMRELAY_CLIENT_TLS
  static std::string sslError() {
    unsigned long code = ERR_get_error();
    ERR_clear_error();
    if (code == 0) return "connection closed";
    const char* reason = ERR_reason_error_string(code);
    return reason ? reason : "TLS error";
  }

  void startTls(const Endpoint& endpoint, const TlsOptions& tls) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (!ctx_) throw std::runtime_error("TLS: " + sslError());
    SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    if (tls.caFile.empty() ? SSL_CTX_set_default_verify_paths(ctx_) != 1
                           : SSL_CTX_load_verify_locations(ctx_, tls.caFile.c_str(), nullptr) != 1)
      throw std::runtime_error("TLS CA file '" + tls.caFile + "': " + sslError());
    if (!tls.certFile.empty()) {
      if (SSL_CTX_use_certificate_chain_file(ctx_, tls.certFile.c_str()) != 1)
        throw std::runtime_error("TLS certificate '" + tls.certFile + "': " + sslError());
      if (SSL_CTX_use_PrivateKey_file(ctx_, (tls.keyFile.empty() ? tls.certFile : tls.keyFile).c_str(),
                                      SSL_FILETYPE_PEM) != 1)
        throw std::runtime_error("TLS key '" + tls.keyFile + "': " + sslError());
    }
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    const std::string name = tls.serverName.empty() ? endpoint.host : tls.serverName;
    unsigned char ip[16];
    const bool isIp = inet_pton(AF_INET, name.c_str(), ip) == 1 || inet_pton(AF_INET6, name.c_str(), ip) == 1;
    if (isIp) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), name.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl_, name.c_str());
      SSL_set1_host(ssl_, name.c_str());
    }
    if (SSL_connect(ssl_) != 1) {
      const long verify = SSL_get_verify_result(ssl_);
      std::string why = sslError();
      if (verify != X509_V_OK) why += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
      throw std::runtime_error("TLS handshake with " + endpoint.host + ":" + endpoint.port + ": " + why);
    }
  }

  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
#endif
  int fd_ = -1;
  std::string ended_;
};

// Whether the relay could continue where a hello asked to resume.

// Where the last frame returned came from (streamrelay and sse protocols,
// websocket with envelope header or json; empty and 0 otherwise).
struct FrameInfo {
  std::string stream;
  std::uint64_t seq = 0;
  std::int64_t receivedUnixNs = 0;  // when the relay read it
  std::uint16_t flags = 0;          // wire::kFlagSnapshot, kFlagConflated (streamrelay; websocket envelope header)
};

// "a,b,,c" -> {"a", "b", "c"}: the lists of a query and of the command line.
inline std::vector<std::string> commaList(const std::string& text) {
  std::vector<std::string> items;
  for (std::size_t start = 0; start < text.size();) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    if (comma > start) items.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return items;
}



class Subscriber {
 public:
  enum class Protocol { Raw, Streamrelay, WebSocket, Sse };
  static constexpr std::chrono::milliseconds kAutoReadTimeout{-1};
  struct Options {
    Framing framing;         // raw protocol only (and the largest frame any protocol may announce)
    bool reconnect = false;  // on a lost connection, connect again (backoff 100 ms .. 5 s)
    TlsOptions tls;
    Protocol protocol = Protocol::Raw;
    // The hello (streamrelay, websocket, sse; a URL's query may give them too):
    std::string token;                // presented to the relay (sse: as Authorization: Bearer)
    std::vector<std::string> inputs;  // streams wanted (empty: all)
    std::vector<std::string> select;  // key patterns wanted (NATS subjects: md.*.BTC, md.>; empty: every frame)
    bool snapshot = false;            // first the newest frame of each selected key, then live
    std::optional<ResumePoint> resume;  // where the first connection starts
    // Or a replay of the one stream asked for from its seq N (in its epoch
    // now), or of every stream from what was received `since` ago; then
    // live. For the first connection; reconnects resume after the last frame.
    std::optional<std::uint64_t> fromSeq;
    std::optional<std::chrono::milliseconds> since;
    // How long the relay may send nothing at all (no frame, no heartbeat)
    // before the connection counts as lost: kAutoReadTimeout is 3 x the
    // heartbeat_ms the relay's answer announced (none announced: no limit);
    // 0: no limit.
    std::chrono::milliseconds readTimeout = kAutoReadTimeout;
    // Called on the reading thread, inside next() or awaitAnswer(), each
    // time the relay answers a hello (once per connection), before any
    // frame of that connection is returned: answer(), answers() and
    // endReason() (why the previous connection ended) say what happened.
    std::function<void(const Subscriber&)> onAnswer;
  };

  // `address`: HOST:PORT (raw or streamrelay, as options.protocol says) or
  // a URL: ws://HOST:PORT/PATH and wss:// (websocket), http://, https://,
  // sse:// and sses:// (sse); a URL's query may hold token, inputs and
  // resume (EPOCH-SEQ), as a browser's would. Throws std::invalid_argument.
  // Several relays of a fleet: HOST:PORT,HOST:PORT (a URL: ws://H1:P1,H2:P2/PATH);
  // the first that takes the connection serves it, and a reconnect goes to
  // the next one, resuming by (epoch, seq).
  explicit Subscriber(const std::string& address) : Subscriber(address, Options()) {}
  Subscriber(const std::string& address, Options options) : options_(std::move(options)) {
    setAddress(address);
    position_ = options_.resume;
    openAny();
  }
  ~Subscriber() { close(); }
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  // Blocks until the next frame. False when the connection ended (and
  // reconnect is off), or `timeout` passed without a frame (timedOut() then).
  bool next(std::string& frame, std::chrono::milliseconds timeout = std::chrono::milliseconds(-1)) {
    FrameInfo ignored;
    return next(frame, ignored, timeout);
  }

  bool next(std::string& frame, FrameInfo& info, std::chrono::milliseconds timeout = std::chrono::milliseconds(-1)) {
    timedOut_ = false;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (extract(frame, info)) return true;
      if (!connection_ && !reopen()) return false;
      const Wait waited = awaitBytes(timeout.count() >= 0 ? &deadline : nullptr);
      if (waited == Wait::CallerTimeout) {
        timedOut_ = true;
        return false;
      }
      if (waited == Wait::Readable && fill()) continue;
      close();  // ended, or silent past the read timeout: endReason() says which
      if (!options_.reconnect) return false;
    }
  }

  // The streamrelay protocol: waits until the relay has answered the hello
  // of the current connection (answer() then holds it). False at the
  // timeout, or if the connection ended first; throws Refused if refused.
  bool awaitAnswer(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (connection_ && awaitingAnswer_) {
      if (takeLeadingAnswer()) return true;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 || !connection_->waitReadable(static_cast<int>(left.count()))) return false;
      if (!fill()) {
        close();
        return false;
      }
    }
    return connection_ != nullptr;
  }

  bool timedOut() const { return timedOut_; }
  // The protocol it speaks (a URL's scheme chose websocket or sse).
  Protocol protocol() const { return options_.protocol; }
  bool connected() const { return connection_ != nullptr; }
  // The relay connected to (or tried last): one of the address's list.
  const Endpoint& endpoint() const { return endpoints_[current_]; }
  // Why the latest connection ended ("the relay closed the connection",
  // "connection lost: ..."); empty while the first one lasts.
  const std::string& endReason() const { return endReason_; }
  // The relay's answer to the latest hello, and how many were received
  // (one per connection): after a reconnect, answer().recovery says
  // whether anything was missed, and first_seq where each stream restarted.
  const Answer& answer() const { return answer_; }
  int answers() const { return answers_; }
  // Heartbeats received (streamrelay control frames, WebSocket pings, SSE
  // comment lines), over every connection.
  std::uint64_t heartbeats() const { return heartbeats_; }
  // Where a new connection would resume (streamrelay protocol).
  const std::optional<ResumePoint>& position() const { return position_; }

  void close() {
    if (connection_ && !connection_->ended().empty()) endReason_ = connection_->ended();
    if (!closeNote_.empty()) endReason_ = closeNote_;
    closeNote_.clear();
    pending_.clear();
    connection_.reset();
    buffer_.clear();
    begin_ = 0;
  }

 private:
  enum class Wait { Readable, CallerTimeout, Silent };

  // The read timeout in force (see Options::readTimeout); 0: none.
  std::chrono::milliseconds silenceLimit() const {
    if (options_.readTimeout != kAutoReadTimeout) return options_.readTimeout;
    return std::chrono::milliseconds(3LL * answer_.heartbeatMs);
  }

  // Waits until the connection has bytes, the caller's deadline (if any)
  // passes, or the relay has been silent for the read timeout. Without
  // either limit, returns at once (the read then blocks).
  Wait awaitBytes(const std::chrono::steady_clock::time_point* deadline) {
    using std::chrono::milliseconds;
    const milliseconds silence = silenceLimit();
    if (!deadline && silence.count() <= 0) return Wait::Readable;
    for (;;) {
      const auto now = std::chrono::steady_clock::now();
      long long wait = -1;
      if (deadline) {
        wait = std::max(0LL, static_cast<long long>(std::chrono::duration_cast<milliseconds>(*deadline - now).count()));
        if (wait == 0) return Wait::CallerTimeout;
      }
      if (silence.count() > 0) {
        const long long quiet = std::chrono::duration_cast<milliseconds>(lastByte_ + silence - now).count();
        // Bytes waiting mean a relay that spoke, however long ago this
        // client last looked.
        if (quiet <= 0 && !connection_->waitReadable(0)) {
          endReason_ = "connection lost: nothing from the relay for " + std::to_string(silence.count()) + " ms";
          return Wait::Silent;
        }
        if (quiet <= 0) return Wait::Readable;
        wait = wait < 0 ? quiet : std::min(wait, quiet);
      }
      if (connection_->waitReadable(static_cast<int>(std::min(wait, 24LL * 3600 * 1000)))) return Wait::Readable;
    }
  }

  std::string helloLine() const {
    client::HelloRequest request;
    request.token = options_.token;
    request.inputs = options_.inputs;
    request.select = options_.select;
    request.snapshot = options_.snapshot;
    request.fromSeq = options_.fromSeq;
    if (options_.since) request.fromTime = sinceTime();
    return client::helloLine(request, position_);
  }

  // Options::since as an RFC 3339 time (UTC, milliseconds).
  std::string sinceTime() const {
    const auto at = std::chrono::system_clock::now() - *options_.since;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
    const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
    std::tm utc{};
    ::gmtime_r(&seconds, &utc);
    char text[96];  // room for any int the compiler cannot rule out
    std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                  utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(ms % 1000));
    return text;
  }

  // ---- addresses ----------------------------------------------------------

  static std::string percentDecode(const std::string& text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '+') out += ' ';
      else if (text[i] == '%') {
        if (i + 2 >= text.size() || !std::isxdigit(static_cast<unsigned char>(text[i + 1])) ||
            !std::isxdigit(static_cast<unsigned char>(text[i + 2])))
          throw std::invalid_argument("a URL's query has a % not followed by two hex digits");
        out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
        i += 2;
      } else out += text[i];
    }
    return out;
  }

  static std::string percentEncode(const std::string& text) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : text) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ',') out += static_cast<char>(c);
      else {
        out += '%';
        out += hex[c >> 4];
        out += hex[c & 15];
      }
    }
    return out;
  }

  // "HOST:PORT,HOST:PORT": the relays of a fleet, in the order tried. A port
  // left out (a URL's authority) is `defaultPort`.
  static std::vector<Endpoint> endpointsOf(const std::string& list, const std::string& defaultPort = "") {
    std::vector<Endpoint> endpoints;
    for (const std::string& item : commaList(list)) {
      const bool portless = item.find(':') == std::string::npos || item.back() == ']';
      endpoints.push_back(Endpoint::parse(portless && !defaultPort.empty() ? item + ":" + defaultPort : item));
    }
    if (endpoints.empty()) throw std::invalid_argument("expected HOST:PORT or [IPv6]:PORT, got '" + list + "'");
    return endpoints;
  }

  void setAddress(const std::string& address) {
    const std::size_t scheme = address.find("://");
    if (scheme == std::string::npos) {
      endpoints_ = endpointsOf(address);
      return;
    }
    const std::string name = address.substr(0, scheme);
    if (name == "ws" || name == "wss") options_.protocol = Protocol::WebSocket;
    else if (name == "http" || name == "https" || name == "sse" || name == "sses") options_.protocol = Protocol::Sse;
    else throw std::invalid_argument("unknown scheme '" + name + "' (ws, wss, http, https, sse, sses)");
    if (name == "wss" || name == "https" || name == "sses") options_.tls.enabled = true;
    std::string rest = address.substr(scheme + 3);
    const std::size_t slash = rest.find_first_of("/?");
    const std::string authority = rest.substr(0, slash);
    target_ = slash == std::string::npos ? "/" : rest.substr(slash);
    if (target_[0] == '?') target_ = "/" + target_;
    endpoints_ = endpointsOf(authority, options_.tls.enabled ? "443" : "80");
    // The query's hello becomes the options' (so that a reconnect resumes from where it got).
    const std::size_t question = target_.find('?');
    if (question == std::string::npos) return;
    std::string query = target_.substr(question + 1);
    target_.resize(question);
    for (std::size_t start = 0; start <= query.size();) {
      std::size_t amp = query.find('&', start);
      if (amp == std::string::npos) amp = query.size();
      const std::string item = query.substr(start, amp - start);
      start = amp + 1;
      if (item.empty()) continue;
      const std::size_t eq = item.find('=');
      const std::string key = item.substr(0, eq);
      const std::string value = eq == std::string::npos ? "" : percentDecode(item.substr(eq + 1));
      if (key == "token") options_.token = value;
      else if (key == "inputs") options_.inputs = commaList(value);
      else if (key == "resume") options_.resume = resumeOf(value);
      else if (key == "select") options_.select = commaList(value);
      else if (key == "snapshot") options_.snapshot = value == "true" || value == "1";
      else throw std::invalid_argument("unknown query parameter '" + key + "' (token, inputs, select, snapshot, resume)");
    }
  }


  // EPOCH-SEQ (the only stream) or EPOCH-STREAM-SEQ,...
  static ResumePoint resumeOf(const std::string& text) {
    ResumePoint point;
    for (const std::string& item : commaList(text)) {
      const std::optional<wire::EventId> id = wire::parseEventId(item);
      if (!id) throw std::invalid_argument("resume: '" + item + "' is not EPOCH-SEQ or EPOCH-STREAM-SEQ");
      point.epoch = id->epoch;
      point.afterSeq[id->stream] = id->seq;
    }
    return point;
  }

  std::string hostHeader() const { return "Host: " + endpoint().host + ":" + endpoint().port + "\r\n"; }

  // The upgrade, and the hello as the first message right behind it.
  std::string webSocketOpening() const {
    std::string line = helloLine();
    line.pop_back();  // no newline: a message
    return "GET " + target_ + " HTTP/1.1\r\n" + hostHeader() +
           "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: c3RyZWFtcmVsYXktc3ViIQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n" + clientFrame(wire::WsOpcode::Text, line);
  }

  // The hello as the query; the token as a header.
  std::string sseRequest() const {
    std::string query;
    auto add = [&](const std::string& key, const std::string& value) {
      query += (query.empty() ? "?" : "&") + key + "=" + percentEncode(value);
    };
    if (!options_.inputs.empty()) {
      std::string list;
      for (const std::string& input : options_.inputs) list += (list.empty() ? "" : ",") + input;
      add("inputs", list);
    }
    if (!options_.select.empty()) {
      std::string list;
      for (const std::string& pattern : options_.select) list += (list.empty() ? "" : ",") + pattern;
      add("select", list);
    }
    if (options_.snapshot) add("snapshot", "true");
    if (position_ && !position_->afterSeq.empty()) {
      std::string ids;
      for (const auto& [stream, seq] : position_->afterSeq)
        ids += (ids.empty() ? "" : ",") + wire::formatEventId(position_->epochOf(stream), stream, seq);
      add("resume", ids);
    } else if (!position_ && options_.fromSeq) {
      add("from_seq", std::to_string(*options_.fromSeq));
    } else if (!position_ && options_.since) {
      add("from_time", sinceTime());
    }
    return "GET " + target_ + query + " HTTP/1.1\r\n" + hostHeader() + "Accept: text/event-stream\r\n" +
           (options_.token.empty() ? "" : "Authorization: Bearer " + options_.token + "\r\n") + "\r\n";
  }

  static std::string clientFrame(wire::WsOpcode opcode, const std::string& payload) {
    const unsigned char mask[4] = {0x5b, 0x17, 0xa3, 0x42};  // any key will do: nothing here is secret from the relay
    char header[wire::kMaxWsHeaderBytes];
    std::string frame(header, wire::writeWsHeader(header, opcode, payload.size(), mask));
    const std::size_t at = frame.size();
    frame += payload;
    wire::applyWsMask(&frame[at], payload.size(), mask);
    return frame;
  }

  // Connects to the current relay, or else to each of the others in turn;
  // throws the last one's error if none takes the connection.
  void openAny() {
    for (std::size_t tried = 1;; ++tried) {
      try {
        open();
        return;
      } catch (const Refused&) {
        throw;
      } catch (const std::runtime_error&) {
        if (tried == endpoints_.size()) throw;
        current_ = (current_ + 1) % endpoints_.size();
      }
    }
  }

  void open() {
    connection_ = std::make_unique<Connection>(endpoint(), options_.tls);
    lastByte_ = std::chrono::steady_clock::now();
    switch (options_.protocol) {
      case Protocol::Raw: connection_->shutdownWrite(); break;
      case Protocol::Streamrelay: connection_->writeAll(helloLine()); break;
      case Protocol::WebSocket: connection_->writeAll(webSocketOpening()); break;
      case Protocol::Sse: connection_->writeAll(sseRequest()); break;
    }
    awaitingAnswer_ = options_.protocol != Protocol::Raw;
    awaitingHttp_ = options_.protocol == Protocol::WebSocket || options_.protocol == Protocol::Sse;
    event_ = SseEvent();
  }

  bool fill() {
    if (begin_ > 0) {  // drop what was consumed; a partial frame moves to the front
      buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(begin_));
      begin_ = 0;
    }
    char chunk[65536];
    long n = connection_->read(chunk, sizeof chunk);
    if (n <= 0) return false;
    buffer_.insert(buffer_.end(), chunk, chunk + n);
    lastByte_ = std::chrono::steady_clock::now();
    return true;
  }

  struct HeaderedFrame {
    std::uint16_t stream = 0;
    std::uint16_t flags = 0;
    std::uint64_t seq = 0;
    std::int64_t receivedUnixNs = 0;
    std::string payload;
  };

  // Takes the whole frame (header and payload) at the front of the buffer,
  // if it is there; never allocates more than the limit a header announces.
  bool takeHeadered(HeaderedFrame& out) {
    const char* data = buffer_.data() + begin_;
    const std::size_t have = buffer_.size() - begin_;
    if (have < wire::kFrameHeaderBytes) return false;
    const wire::FrameHeader header = wire::readFrameHeader(data);
    const std::size_t size = header.payloadBytes;
    if (size > options_.framing.maxFrameBytes)
      throw std::runtime_error("frame of " + std::to_string(size) + " bytes announced, over the limit");
    if (have < wire::kFrameHeaderBytes + size) return false;
    out.stream = header.stream;
    out.seq = header.seq;
    out.flags = header.flags;
    out.receivedUnixNs = header.receivedUnixNs;
    out.payload.assign(data + wire::kFrameHeaderBytes, size);
    begin_ += wire::kFrameHeaderBytes + size;
    return true;
  }

  // The streamrelay protocol: header, payload; the answer comes first.
  bool extractHeadered(std::string& frame, FrameInfo& info) {
    HeaderedFrame f;
    while (takeHeadered(f)) {
      if (f.stream == wire::kControlStream) {
        takeControl(f.payload);
        continue;
      }
      if (awaitingAnswer_) throw std::runtime_error("protocol error: a frame before the answer");
      auto name = names_.find(f.stream);
      noteFrame(name == names_.end() ? std::to_string(f.stream) : name->second, f.seq, f.receivedUnixNs, info);
      info.flags = f.flags;
      frame = std::move(f.payload);
      return true;
    }
    return false;
  }

  // Takes control frames from the front of the buffer until the answer;
  // true once it is taken.
  bool takeLeadingAnswer() {
    if (options_.protocol == Protocol::WebSocket || options_.protocol == Protocol::Sse) {
      std::string frame;
      FrameInfo info;
      if (extract(frame, info)) pending_.emplace_back(std::move(frame), std::move(info));  // a frame right behind the answer
      return !awaitingAnswer_;
    }
    HeaderedFrame f;
    while (awaitingAnswer_ && takeHeadered(f)) {
      if (f.stream != wire::kControlStream) throw std::runtime_error("protocol error: a frame before the answer");
      takeControl(f.payload);
    }
    return !awaitingAnswer_;
  }

  // ---- websocket and sse ----------------------------------------------------

  // The relay's HTTP answer head; false until it is all there. A status
  // other than `wanted` is a refusal (its body says why, when it is there).
  bool takeHttpHead(int wanted) {
    const std::string_view data(buffer_.data() + begin_, buffer_.size() - begin_);
    const std::size_t end = data.find("\r\n\r\n");
    if (end == std::string_view::npos) {
      if (data.size() > 64 * 1024) throw std::runtime_error("protocol error: an HTTP answer head over 64 KiB");
      return false;
    }
    const std::string head(data.substr(0, end));
    const int status = head.size() > 12 && head.compare(0, 9, "HTTP/1.1 ") == 0 ? std::atoi(head.c_str() + 9) : 0;
    if (status != wanted) {
      std::string body(data.substr(end + 4, 300));
      while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
      throw Refused("the relay refused: " + head.substr(0, head.find('\r')) + (body.empty() ? "" : ": " + body));
    }
    begin_ += end + 4;
    awaitingHttp_ = false;
    return true;
  }

  // Client messages from the relay: the answer first, then frames in the
  // listener's envelope; pings are answered, a close ends the connection.
  bool extractWebSocket(std::string& frame, FrameInfo& info) {
    if (awaitingHttp_ && !takeHttpHead(101)) return false;
    for (;;) {
      const char* data = buffer_.data() + begin_;
      const std::size_t have = buffer_.size() - begin_;
      if (have < 2) return false;
      const auto* bytes = reinterpret_cast<const unsigned char*>(data);
      const std::size_t headerBytes = wire::wsHeaderBytes(bytes[0], bytes[1]);
      if (have < headerBytes) return false;
      const wire::WsHeader h = wire::readWsHeader(bytes);
      if (h.masked || h.reserved || !h.fin) throw std::runtime_error("protocol error: a WebSocket frame this client does not take");
      if (h.payloadBytes > options_.framing.maxFrameBytes + 1024)
        throw std::runtime_error("message of " + std::to_string(h.payloadBytes) + " bytes announced, over the limit");
      if (have < headerBytes + h.payloadBytes) return false;
      std::string payload(data + headerBytes, static_cast<std::size_t>(h.payloadBytes));
      begin_ += headerBytes + static_cast<std::size_t>(h.payloadBytes);
      if (h.opcode == static_cast<int>(wire::WsOpcode::Ping)) {
        ++heartbeats_;
        connection_->writeAll(clientFrame(wire::WsOpcode::Pong, payload));
        continue;
      }
      if (h.opcode == static_cast<int>(wire::WsOpcode::Close)) {
        const int code = payload.size() >= 2 ? (static_cast<unsigned char>(payload[0]) << 8) | static_cast<unsigned char>(payload[1]) : 1005;
        closeNote_ = "the relay closed the WebSocket (" + std::to_string(code) +
                     (payload.size() > 2 ? " " + payload.substr(2) : std::string()) + ")";
        buffer_.resize(begin_);  // nothing after a close counts
        return false;
      }
      if (h.opcode != 1 && h.opcode != 2) continue;  // pongs
      if (awaitingAnswer_) {
        takeControl(payload);
        continue;
      }
      if (answer_.envelope == "header") {
        if (payload.size() < wire::kFrameHeaderBytes) throw std::runtime_error("protocol error: a message shorter than its header");
        const wire::FrameHeader header = wire::readFrameHeader(payload.data());
        auto name = names_.find(header.stream);
        noteFrame(name == names_.end() ? std::to_string(header.stream) : name->second, header.seq, header.receivedUnixNs, info);
        info.flags = header.flags;
        frame = payload.substr(wire::kFrameHeaderBytes);
      } else if (answer_.envelope == "json") {
        takeJsonEnvelope(payload, frame, info);
      } else {
        info = FrameInfo();
        frame = std::move(payload);
      }
      return true;
    }
  }

  // {"stream":"s","seq":"N","time_ns":"T","data":...[,"encoding":"base64"]}:
  // data is the payload itself when it is JSON, else a string.
  void takeJsonEnvelope(const std::string& message, std::string& frame, FrameInfo& info) {
    const std::size_t at = message.find(",\"data\":");
    if (at == std::string::npos || message.back() != '}') throw std::runtime_error("protocol error: a json envelope without data");
    const JsonValue fields = JsonValue::parse(message.substr(0, at) + "}");
    std::uint64_t seq = 0, time = 0;
    const JsonValue* stream = fields.find("stream");
    const JsonValue* seqField = fields.find("seq");
    const JsonValue* timeField = fields.find("time_ns");
    if (!stream || !seqField || !seqField->asUnsigned(seq) || (timeField && !timeField->asUnsigned(time)))
      throw std::runtime_error("protocol error: a json envelope without stream and seq");
    noteFrame(stream->text, seq, static_cast<std::int64_t>(time), info);
    std::string data = message.substr(at + 8, message.size() - at - 9);
    const std::string base64Tail = ",\"encoding\":\"base64\"";
    const bool base64 = data.size() > base64Tail.size() && data[0] == '"' &&
                        data.compare(data.size() - base64Tail.size(), base64Tail.size(), base64Tail) == 0;
    if (base64) data.resize(data.size() - base64Tail.size());
    if (data.empty() || data[0] != '"') {
      frame = std::move(data);  // verbatim JSON
      return;
    }
    frame = JsonValue::parse(data).text;
    if (base64 && !wire::decodeBase64(std::string(frame), frame)) throw std::runtime_error("protocol error: data that is not base64");
  }

  struct SseEvent {
    std::string id, type, data;
    bool hasData = false;
  };

  // text/event-stream: the answer event, then one event per frame; comment
  // lines are the relay's heartbeats.
  bool extractSse(std::string& frame, FrameInfo& info) {
    if (awaitingHttp_ && !takeHttpHead(200)) return false;
    for (;;) {
      const char* data = buffer_.data() + begin_;
      const std::size_t have = buffer_.size() - begin_;
      const char* eol = static_cast<const char*>(std::memchr(data, '\n', have));
      if (!eol) {
        if (have > options_.framing.maxFrameBytes * 2 + 1024) throw std::runtime_error("an event line over the limit");
        return false;
      }
      std::string line(data, static_cast<std::size_t>(eol - data));
      begin_ += line.size() + 1;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) {
        if (line[0] == ':') {
          ++heartbeats_;
          continue;
        }
        const std::size_t colon = line.find(':');
        const std::string field = line.substr(0, colon);
        std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
        if (!value.empty() && value[0] == ' ') value.erase(0, 1);
        if (field == "id") event_.id = value;
        else if (field == "event") event_.type = value;
        else if (field == "data") {
          event_.data += (event_.hasData ? "\n" : "") + value;
          event_.hasData = true;
        }
        continue;
      }
      SseEvent event = std::move(event_);  // a blank line: the event is complete
      event_ = SseEvent();
      if (!event.hasData) continue;
      if (event.type == "streamrelay-answer") {
        takeControl(event.data);
        continue;
      }
      const std::optional<wire::EventId> id = wire::parseEventId(event.id);
      if (!id) throw std::runtime_error("protocol error: an event without an id EPOCH-SEQ");
      noteFrame(id->stream.empty() && names_.size() == 1 ? names_.begin()->second : id->stream, id->seq, 0, info);
      frame = std::move(event.data);
      if (answer_.encoding == "base64" && !wire::decodeBase64(std::string(frame), frame))
        throw std::runtime_error("protocol error: data that is not base64");
      return true;
    }
  }

  void noteFrame(const std::string& stream, std::uint64_t seq, std::int64_t receivedUnixNs, FrameInfo& info) {
    info.stream = stream;
    info.seq = seq;
    info.receivedUnixNs = receivedUnixNs;
    info.flags = 0;
    if (!position_) position_ = ResumePoint{answer_.epoch, {}, {}};
    position_->afterSeq[stream] = seq;
  }

  // A control frame: a message with a `type` (a heartbeat; one of a type
  // this library does not know is skipped too), or the answer.
  void takeControl(const std::string& json) {
    const JsonValue message = JsonValue::parse(json);
    if (const JsonValue* type = message.find("type")) {
      if (type->type == JsonValue::Type::String && type->text == "heartbeat") ++heartbeats_;
      return;
    }
    takeAnswer(message, json);
  }

  void takeAnswer(const JsonValue& answer, const std::string& json) {
    Answer next = parseAnswer(answer, json);
    names_.clear();
    for (const auto& [name, one] : next.streams) names_[one.id] = name;
    // From here on, a reconnect resumes after the frame before each stream's
    // first one (if nothing else arrives first).
    if (position_ && position_->afterSeq.count("") && next.streams.size() == 1) {  // a URL's EPOCH-SEQ names no stream
      position_->afterSeq[next.streams.begin()->first] = position_->afterSeq.at("");
      position_->afterSeq.erase("");
    }
    if (!position_ || position_->epoch != next.epoch) position_ = ResumePoint{next.epoch, {}, {}};
    position_->epochs.clear();
    for (const auto& [name, s] : next.streams) {
      if (s.epoch != next.epoch) position_->epochs[name] = s.epoch;
      if (s.firstSeq > 0 && (s.recovery != Recovery::Recovered || !position_->afterSeq.count(name)))
        position_->afterSeq[name] = s.firstSeq - 1;
    }
    answer_ = std::move(next);
    ++answers_;
    awaitingAnswer_ = false;
    if (options_.onAnswer) options_.onAnswer(*this);
  }

  // Takes one complete frame from the buffer, if there is one.
  bool extract(std::string& frame, FrameInfo& info) {
    if (!pending_.empty()) {
      frame = std::move(pending_.front().first);
      info = std::move(pending_.front().second);
      pending_.erase(pending_.begin());
      return true;
    }
    if (options_.protocol == Protocol::Streamrelay) return extractHeadered(frame, info);
    if (options_.protocol == Protocol::WebSocket) return extractWebSocket(frame, info);
    if (options_.protocol == Protocol::Sse) return extractSse(frame, info);
    const Framing& f = options_.framing;
    const char* data = buffer_.data() + begin_;
    std::size_t have = buffer_.size() - begin_;
    std::size_t header = 0, size = 0, consumed = 0;
    if (f.type == Framing::Type::LengthPrefix) {
      if (have < static_cast<std::size_t>(f.width)) return false;
      const std::uint64_t length = wire::getUnsigned(data, f.width, f.bigEndian);
      if (length > f.maxFrameBytes) throw std::runtime_error("frame of " + std::to_string(length) + " bytes announced, over the limit");
      header = f.width;
      size = length;
      if (have < header + size) return false;
      consumed = header + size;
    } else if (f.type == Framing::Type::Fixed) {
      if (have < f.size) return false;
      size = consumed = f.size;
    } else {
      std::string_view view(data, have);
      std::size_t at = view.find(f.delimiter);
      if (at == std::string_view::npos) return false;
      size = f.strip ? at : at + f.delimiter.size();
      consumed = at + f.delimiter.size();
    }
    frame.assign(data + header, size);
    begin_ += consumed;
    return true;
  }

  // With several relays the next one is tried first and the one just lost
  // last: in a fleet they serve the same streams with the same (epoch, seq),
  // and the hello resumes where this connection stopped.
  bool reopen() {
    if (!options_.reconnect) return false;
    for (int delayMs = 100;; delayMs = std::min(delayMs * 2, 5000)) {
      current_ = (current_ + 1) % endpoints_.size();
      try {
        openAny();
        return true;
      } catch (const Refused&) {
        throw;
      } catch (const std::runtime_error&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(delayMs));  // backoff once every relay refused
      }
    }
  }

  std::vector<Endpoint> endpoints_;  // never empty once constructed
  std::size_t current_ = 0;          // the relay connected to (or tried last)
  std::string target_ = "/";  // websocket and sse: the path
  Options options_;
  std::unique_ptr<Connection> connection_;
  std::vector<char> buffer_;
  std::size_t begin_ = 0;
  bool timedOut_ = false;
  bool awaitingAnswer_ = false;
  bool awaitingHttp_ = false;  // websocket, sse: the relay's HTTP answer head has not come yet
  SseEvent event_;             // sse: the event being read
  std::string closeNote_;      // websocket: the relay's close frame, for endReason()
  std::vector<std::pair<std::string, FrameInfo>> pending_;  // frames read while awaiting the answer
  Answer answer_;
  int answers_ = 0;
  std::uint64_t heartbeats_ = 0;
  std::string endReason_;
  std::chrono::steady_clock::time_point lastByte_;  // when the connection last gave bytes (or was opened)
  std::map<std::uint16_t, std::string> names_;  // stream id -> name, from the answer
  std::optional<ResumePoint> position_;
};

}  // namespace client
}  // namespace streamrelay
