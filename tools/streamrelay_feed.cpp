// SPDX-License-Identifier: Apache-2.0
// streamrelay-feed: a test upstream. It listens for the relay (the provider's
// side of a `tcp` upstream) or connects to a relay's `listen` source, and sends
// frames made from stdin lines, a file's lines, or a generator.

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "streamrelay/client.hpp"

namespace {

using streamrelay::client::Endpoint;
using streamrelay::client::Framing;

const char* kUsage =
    "usage: streamrelay-feed [--listen HOST:PORT | --connect HOST:PORT] [--framing SPEC]\n"
    "                        [--generate [--size S] [--count N] | --file F] [--rate R] [--hold]\n"
    "  --listen    wait for the relay to connect here (default 127.0.0.1:9000; port 0 picks one)\n"
    "  --connect   connect to a relay's `listen` upstream instead\n"
    "  --generate  make frames \"feed N\" padded to --size bytes, --count in all (0: endless); otherwise\n"
    "              one frame per line of --file or stdin\n"
    "  --rate      frames per second (0: as fast as possible); default 1000 generated, lines unpaced\n"
    "  --framing   length-prefix[:W[:big|little]] (default), delimiter[:TEXT], fixed:N\n"
    "  --hold      keep the connection open after the last frame, until killed\n";

struct Options {
  std::string listen = "127.0.0.1:9000";
  std::string connect;
  Framing framing;
  bool generate = false;
  double rate = -1;  // not given: 1000 generated, lines unpaced
  std::size_t size = 32;
  long long count = 0;
  std::string file;
  bool hold = false;
};

// Where frames come from: a generator or lines of a stream.
class FrameSource {
 public:
  explicit FrameSource(const Options& o) : o_(o) {
    if (!o.file.empty()) {
      file_ = std::make_unique<std::ifstream>(o.file);
      if (!*file_) throw std::runtime_error("cannot read " + o.file);
    }
  }
  bool next(std::string& frame) {
    if (o_.generate && o_.count > 0 && made_ >= o_.count) return false;
    if (o_.rate > 0) {  // pacing: the frame's due time
      auto due = start_ + std::chrono::duration<double>(made_ / o_.rate);
      std::this_thread::sleep_until(due);
    }
    if (!o_.generate) {
      ++made_;
      return static_cast<bool>(std::getline(file_ ? *file_ : std::cin, frame));
    }
    frame = "feed " + std::to_string(++made_);
    if (frame.size() < o_.size) frame.resize(o_.size, '.');
    return true;
  }

 private:
  const Options& o_;
  std::unique_ptr<std::ifstream> file_;
  long long made_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

int listenOn(const Endpoint& e) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* list = nullptr;
  if (int rc = ::getaddrinfo(e.host.c_str(), e.port.c_str(), &hints, &list); rc != 0)
    throw std::runtime_error(e.host + ": " + gai_strerror(rc));
  int fd = ::socket(list->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, list->ai_addr, list->ai_addrlen) != 0 || ::listen(fd, 4) != 0) {
    std::string error = std::strerror(errno);
    ::freeaddrinfo(list);
    throw std::runtime_error("cannot listen on " + e.host + ":" + e.port + ": " + error);
  }
  ::freeaddrinfo(list);
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  int port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                               : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  std::cerr << "streamrelay-feed: listening on " << e.host << ":" << port << std::endl;
  return fd;
}

bool sendAll(int fd, const std::string& bytes) {
  for (std::size_t sent = 0; sent < bytes.size();) {
    ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

int run(const Options& o) {
  FrameSource source(o);
  int server = o.connect.empty() ? listenOn(Endpoint::parse(o.listen)) : -1;
  auto open = [&]() {
    if (server < 0) return streamrelay::client::connectTo(Endpoint::parse(o.connect));
    int fd = ::accept4(server, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) throw std::runtime_error(std::string("accept: ") + std::strerror(errno));
    std::cerr << "streamrelay-feed: relay connected" << std::endl;
    return fd;
  };
  int fd = open();
  std::string frame, pending;
  long long sent = 0;
  bool more = true;
  while (more) {
    more = source.next(frame);
    if (more) o.framing.encode(frame, pending);
    // Batch when frames come fast; send at once when paced or at the end.
    if (pending.size() >= 65536 || !more || !o.generate || o.rate > 0) {
      while (!pending.empty() && !sendAll(fd, pending)) {
        ::close(fd);
        std::cerr << "streamrelay-feed: relay went away; waiting for it" << std::endl;
        if (server < 0) return 1;
        fd = open();  // what was pending is sent again to the new connection
      }
      pending.clear();
    }
    if (more) ++sent;
  }
  std::cerr << "streamrelay-feed: sent " << sent << " frames" << std::endl;
  if (o.hold) {
    char byte;
    while (::recv(fd, &byte, 1, 0) > 0) {
    }
  }
  ::close(fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
        return argv[++i];
      };
      if (arg == "--help" || arg == "-h") {
        std::cout << kUsage;
        return 0;
      }
      if (arg == "--listen") o.listen = value();
      else if (arg == "--connect") o.connect = value();
      else if (arg == "--framing") o.framing = Framing::parse(value());
      else if (arg == "--generate") o.generate = true;
      else if (arg == "--rate") {
        o.rate = std::stod(value());
        if (o.rate < 0) throw std::invalid_argument("--rate must be 0 or more");
      }
      else if (arg == "--size") o.size = std::stoul(value());
      else if (arg == "--count") o.count = std::stoll(value());
      else if (arg == "--file") o.file = value();
      else if (arg == "--hold") o.hold = true;
      else throw std::invalid_argument("unknown argument '" + arg + "'");
    }
  } catch (const std::exception& e) {
    std::cerr << "streamrelay-feed: " << e.what() << "\n" << kUsage;
    return 2;
  }
  if (o.rate < 0) o.rate = o.generate ? 1000 : 0;
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::cerr << "streamrelay-feed: " << e.what() << "\n";
    return 1;
  }
}
