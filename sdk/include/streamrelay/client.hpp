#pragma once
// streamrelay client library: connect to a relay listener, read frames, and
// reconnect if asked. Header-only, POSIX sockets, no dependencies, so any
// C++17 program can subscribe by including this one file.
//
//   streamrelay::client::Subscriber sub("127.0.0.1:7000");
//   std::string frame;
//   while (sub.next(frame)) use(frame);
//
// A Subscriber is not thread safe: one thread reads it.

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

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
      for (int i = 0; i < width; ++i) {
        int shift = 8 * (bigEndian ? width - 1 - i : i);
        out += static_cast<char>(shift >= 64 ? 0 : (static_cast<std::uint64_t>(payload.size()) >> shift) & 0xff);
      }
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

class Subscriber {
 public:
  struct Options {
    Framing framing;
    bool reconnect = false;  // on a lost connection, connect again (backoff 100 ms .. 5 s)
  };

  explicit Subscriber(const std::string& hostPort) : Subscriber(hostPort, Options()) {}
  Subscriber(const std::string& hostPort, Options options)
      : endpoint_(Endpoint::parse(hostPort)), options_(std::move(options)) {
    fd_ = connectTo(endpoint_);
    ::shutdown(fd_, SHUT_WR);  // a subscriber never sends
  }
  ~Subscriber() { close(); }
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  // Blocks until the next frame. False when the connection ended (and
  // reconnect is off), or `timeout` passed without a frame (timedOut() then).
  bool next(std::string& frame, std::chrono::milliseconds timeout = std::chrono::milliseconds(-1)) {
    timedOut_ = false;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (extract(frame)) return true;
      if (fd_ < 0 && !reopen()) return false;
      if (timeout.count() >= 0) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd p{fd_, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) == 0) {
          timedOut_ = true;
          return false;
        }
      }
      if (!fill()) {
        close();
        if (!options_.reconnect) return false;
      }
    }
  }

  bool timedOut() const { return timedOut_; }
  bool connected() const { return fd_ >= 0; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buffer_.clear();
    begin_ = 0;
  }

 private:
  bool fill() {
    if (begin_ > 0) {  // drop what was consumed; a partial frame moves to the front
      buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(begin_));
      begin_ = 0;
    }
    char chunk[65536];
    ssize_t n;
    do n = ::recv(fd_, chunk, sizeof chunk, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0) return false;
    buffer_.insert(buffer_.end(), chunk, chunk + n);
    return true;
  }

  // Takes one complete frame from the buffer, if there is one.
  bool extract(std::string& frame) {
    const Framing& f = options_.framing;
    const char* data = buffer_.data() + begin_;
    std::size_t have = buffer_.size() - begin_;
    std::size_t header = 0, size = 0, consumed = 0;
    if (f.type == Framing::Type::LengthPrefix) {
      if (have < static_cast<std::size_t>(f.width)) return false;
      std::uint64_t length = 0;
      for (int i = 0; i < f.width; ++i)
        length = (length << 8) | static_cast<unsigned char>(data[f.bigEndian ? i : f.width - 1 - i]);
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

  bool reopen() {
    if (!options_.reconnect) return false;
    for (int delayMs = 100;; delayMs = std::min(delayMs * 2, 5000)) {
      try {
        fd_ = connectTo(endpoint_);
        ::shutdown(fd_, SHUT_WR);
        return true;
      } catch (const std::runtime_error&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(delayMs));  // reconnect backoff
      }
    }
  }

  Endpoint endpoint_;
  Options options_;
  int fd_ = -1;
  std::vector<char> buffer_;
  std::size_t begin_ = 0;
  bool timedOut_ = false;
};

}  // namespace client
}  // namespace streamrelay
