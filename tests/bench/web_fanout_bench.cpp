// SPDX-License-Identifier: Apache-2.0
// web_fanout_bench: fan-out to WebSocket and Server-Sent Events subscribers,
// for streamrelay's websocket and sse listeners, nats-server's websocket
// listener and nginx with nchan, side by side; and the relay's raw listener
// on the same yardstick. The same method as tls_fanout_bench: one
// publisher, N subscribers that must each get every frame, and a window
// (the frames the slowest subscriber may lag behind the publisher:
// min(2 MiB, 256 MiB / N) of payload, 16..8192 frames), so that what is
// measured is lossless throughput.
//
//   relay-raw, relay-streamrelay, relay-ws, relay-sse: the bench listens as
//          the relay's tcp upstream (--upstream-listen) and writes [u32
//          length][payload]; subscribers connect to --subscribe: raw
//          length-prefixed frames, the streamrelay protocol (a hello line
//          "{}", then 24-byte headers; control frames skipped), a
//          WebSocket upgrade of --path (binary messages, envelope none), or
//          a GET of --path (text/event-stream, one data line per frame).
//   nats-ws: publisher in the NATS protocol over TCP to --publish (PUB);
//          subscribers upgrade to nats-server's websocket port
//          (--subscribe) and speak the NATS protocol inside WebSocket
//          messages (CONNECT, SUB, then MSG; PING answered).
//   nchan-ws, nchan-sse: publisher a WebSocket to --publish --pub-path (each
//          message is published); subscribers a WebSocket upgrade or an
//          EventSource GET of --path (HTTP/1.1, de-chunked).
//
// Payload (ASCII, so that SSE's text carries it): 16 hex digits of seq,
// 16 of the send time (ns), then 'x' up to --size (at least 32). One thread
// publishes, one reads every subscriber with epoll. With --pid (or
// --pid-file), the server's CPU time over the measured seconds. Prints one
// JSON line.
//
//   web_fanout_bench --target relay-ws --upstream-listen 127.0.0.1:17201
//       --subscribe 127.0.0.1:17200 --path '/?inputs=upstream' --subs 1000 --size 128

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "fanout_harness.hpp"

namespace {

using bench::connectTo;
using bench::nowNs;
using bench::sendAll;
using bench::treeCpuSecondsOf;

struct Options {
  std::string target = "relay-ws", subscribe, publish, upstreamListen, label, path = "/", pubPath = "/pub/bench";
  std::string pidFile;  // the server's pid, read when the measured seconds start (a relay started after the bench)
  int subs = 16;
  std::size_t size = 128;
  double seconds = 5, warmup = 1;
  long pid = 0;
};
Options O;

bool isWebSocket() { return O.target == "relay-ws" || O.target == "nats-ws" || O.target == "nchan-ws"; }
bool isSse() { return O.target == "relay-sse" || O.target == "nchan-sse"; }
bool fromRelay() { return O.target.rfind("relay-", 0) == 0; }

// A client's (masked) WebSocket message.
std::string clientMessage(int opcode, const std::string& payload) {
  std::string frame(1, static_cast<char>(0x80 | opcode));
  const std::size_t n = payload.size();
  if (n < 126) {
    frame += static_cast<char>(0x80 | n);
  } else if (n < 65536) {
    frame += static_cast<char>(0x80 | 126);
    frame += static_cast<char>(n >> 8);
    frame += static_cast<char>(n & 0xff);
  } else {
    frame += static_cast<char>(0x80 | 127);
    for (int b = 7; b >= 0; --b) frame += static_cast<char>((static_cast<std::uint64_t>(n) >> (8 * b)) & 0xff);
  }
  const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
  frame.append(reinterpret_cast<const char*>(mask), 4);
  const std::size_t at = frame.size();
  frame += payload;
  for (std::size_t i = 0; i < n; ++i) frame[at + i] = static_cast<char>(frame[at + i] ^ mask[i & 3]);
  return frame;
}

// Sends the HTTP request of `path` (an upgrade or an event stream) and reads
// the response head; returns what came after it.
std::string openHttp(int fd, const std::string& path, bool upgrade) {
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  if (upgrade)
    request += "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: d2ViLWZhbm91dC1iZW5jaA==\r\n"
               "Sec-WebSocket-Version: 13\r\n";
  else
    request += "Accept: text/event-stream\r\n";
  sendAll(fd, request + "\r\n");
  std::string got;
  char chunk[4096];
  for (;;) {
    const std::size_t end = got.find("\r\n\r\n");
    if (end != std::string::npos) {
      const std::string status = got.substr(0, got.find("\r\n"));
      if (status.find(upgrade ? " 101" : " 200") == std::string::npos)
        throw std::runtime_error("refused: " + status + " for " + path);
      return got;  // the caller takes the head off
    }
    const long n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) throw std::runtime_error("no answer to GET " + path);
    got.append(chunk, static_cast<std::size_t>(n));
  }
}

struct Subscriber {
  int fd = -1;
  std::string buffer;     // bytes as read
  std::size_t begin = 0;
  std::string inner;      // nats-ws: the NATS protocol carried by the messages; sse: de-chunked bytes
  std::size_t innerBegin = 0;
  bool chunked = false;   // sse: Transfer-Encoding: chunked
  std::size_t chunkLeft = 0;
  bool chunkCrlf = false; // a chunk's CRLF is still to skip
  bool ponged = false;    // nats-ws: a PONG came (the SUB before it is registered)
  std::uint64_t lastSeq = 0;
  std::atomic<std::uint64_t> seen{0};  // last seq, for the publisher's window
  std::uint64_t counted = 0;           // frames received in the measured seconds
  std::uint64_t gaps = 0;
};

std::uint64_t hexOf(const char* text) {
  std::uint64_t value = 0;
  for (int i = 0; i < 16; ++i) {
    const char c = text[i];
    value = (value << 4) | static_cast<std::uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
  }
  return value;
}

std::atomic<bool> measuring{false}, stopping{false};
std::mutex progressMutex;
std::condition_variable progress;

void onFrame(Subscriber& s, const char* payload, std::size_t size) {
  if (size < 32 || payload[0] == '{') return;  // an answer (relay) or anything else that is no frame
  const std::uint64_t seq = hexOf(payload);
  if (s.lastSeq != 0 && seq != s.lastSeq + 1) ++s.gaps;
  s.lastSeq = seq;
  s.seen.store(seq, std::memory_order_relaxed);
  if (measuring.load(std::memory_order_relaxed)) ++s.counted;
}

// The NATS protocol carried by the WebSocket messages.
void parseNats(Subscriber& s) {
  s.innerBegin += bench::takeNatsMessages(
      s.inner.data() + s.innerBegin, s.inner.size() - s.innerBegin,
      [&](const char* payload, std::size_t size) { onFrame(s, payload, size); },
      [&](const char* line, std::size_t size) {
        if (size >= 4 && std::strncmp(line, "PING", 4) == 0) sendAll(s.fd, clientMessage(2, "PONG\r\n"));
        if (size >= 4 && std::strncmp(line, "PONG", 4) == 0) s.ponged = true;
      });
  if (s.innerBegin == s.inner.size()) s.inner.clear(), s.innerBegin = 0;
}

// Server WebSocket messages (unmasked, unfragmented).
void parseWebSocket(Subscriber& s) {
  for (;;) {
    const auto* data = reinterpret_cast<const unsigned char*>(s.buffer.data() + s.begin);
    const std::size_t have = s.buffer.size() - s.begin;
    if (have < 2) break;
    std::size_t header = 2;
    std::uint64_t len = data[1] & 0x7f;
    if (len == 126) header = 4;
    if (len == 127) header = 10;
    if (have < header) break;
    if (len == 126) len = (static_cast<std::uint64_t>(data[2]) << 8) | data[3];
    if (len == 127) {
      len = 0;
      for (int b = 0; b < 8; ++b) len = (len << 8) | data[2 + b];
    }
    if (have < header + len) break;
    const int opcode = data[0] & 0x0f;
    const char* payload = reinterpret_cast<const char*>(data + header);
    if (opcode == 9) {
      sendAll(s.fd, clientMessage(10, std::string(payload, len)));
    } else if (opcode == 8) {
      throw std::runtime_error("a subscriber was closed by the server");
    } else if (opcode == 1 || opcode == 2 || opcode == 0) {
      if (O.target == "nats-ws") {
        s.inner.append(payload, len);
        parseNats(s);
      } else {
        onFrame(s, payload, len);
      }
    }
    s.begin += header + len;
  }
}

// text/event-stream: "data: payload" lines; everything else skipped.
void parseEvents(Subscriber& s, std::string& text, std::size_t& begin) {
  for (;;) {
    const char* data = text.data() + begin;
    const std::size_t have = text.size() - begin;
    const char* eol = static_cast<const char*>(std::memchr(data, '\n', have));
    if (!eol) break;
    const std::size_t lineBytes = static_cast<std::size_t>(eol - data) + 1;
    if (lineBytes > 6 && std::strncmp(data, "data: ", 6) == 0) onFrame(s, data + 6, lineBytes - 7);
    begin += lineBytes;
  }
}

// An HTTP/1.1 chunked body back to its bytes, appended to s.inner.
void dechunk(Subscriber& s) {
  for (;;) {
    const char* data = s.buffer.data() + s.begin;
    const std::size_t have = s.buffer.size() - s.begin;
    if (s.chunkCrlf) {
      if (have < 2) return;
      s.begin += 2;
      s.chunkCrlf = false;
      continue;
    }
    if (s.chunkLeft > 0) {
      const std::size_t take = std::min(have, s.chunkLeft);
      if (take == 0) return;
      s.inner.append(data, take);
      s.begin += take;
      s.chunkLeft -= take;
      if (s.chunkLeft == 0) s.chunkCrlf = true;
      continue;
    }
    const char* eol = static_cast<const char*>(std::memchr(data, '\n', have));
    if (!eol) return;
    s.chunkLeft = std::strtoul(data, nullptr, 16);
    s.begin += static_cast<std::size_t>(eol - data) + 1;
    if (s.chunkLeft == 0) throw std::runtime_error("an event stream ended");
  }
}

void parse(Subscriber& s) {
  if (isWebSocket()) {
    parseWebSocket(s);
  } else if (isSse()) {
    if (s.chunked) {
      dechunk(s);
      parseEvents(s, s.inner, s.innerBegin);
      if (s.innerBegin == s.inner.size()) s.inner.clear(), s.innerBegin = 0;
    } else {
      parseEvents(s, s.buffer, s.begin);
    }
  } else {  // relay-raw: [u32 length][payload]; relay-streamrelay: the 24-byte header, control frames skipped
    const std::size_t header = O.target == "relay-streamrelay" ? 24 : 4;
    s.begin += bench::takeFrames(s.buffer.data() + s.begin, s.buffer.size() - s.begin, header,
                                 [&](const char* head, const char* payload, std::size_t size) {
                                   if (header == 4 || !bench::isControlFrame(head)) onFrame(s, payload, size);
                                 });
  }
  if (s.begin > (1 << 20) || s.begin == s.buffer.size()) {
    s.buffer.erase(0, s.begin);
    s.begin = 0;
  }
}

void readLoop(std::vector<Subscriber>& subs) {
  std::vector<int> fds;
  for (const Subscriber& s : subs) fds.push_back(s.fd);
  bench::epollReadLoop(
      fds, stopping, [&](std::size_t i, char* into, std::size_t capacity) { return ::recv(subs[i].fd, into, capacity, 0); },
      [&](std::size_t i, const char* data, std::size_t size) {
        subs[i].buffer.append(data, size);
        parse(subs[i]);
      },
      [] { progress.notify_one(); });
}

// Connects one subscriber and waits until the server has it (its response
// head; NATS: the PONG after SUB), so that a server's limit on clients in
// their set-up is never what is measured.
void open(Subscriber& s) {
  s.fd = connectTo(O.subscribe);
  if (O.target == "relay-raw") return;
  if (O.target == "relay-streamrelay") {  // the hello, then its answer (a control frame) before the next client
    sendAll(s.fd, "{}\n");
    char chunk[4096];
    while (s.buffer.size() < 24 || s.buffer.size() < 24 + bench::bigEndian32(s.buffer.data())) {
      const long n = ::recv(s.fd, chunk, sizeof chunk, 0);
      if (n <= 0) throw std::runtime_error("streamrelay: no answer to the hello");
      s.buffer.append(chunk, static_cast<std::size_t>(n));
    }
    return;
  }
  std::string rest = openHttp(s.fd, O.path, isWebSocket());
  const std::size_t end = rest.find("\r\n\r\n");
  std::string head = rest.substr(0, end);
  std::transform(head.begin(), head.end(), head.begin(), [](unsigned char c) { return std::tolower(c); });
  s.chunked = head.find("transfer-encoding: chunked") != std::string::npos;
  s.buffer = rest.substr(end + 4);
  if (O.target == "nats-ws") {
    sendAll(s.fd, clientMessage(2, "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB bench 1\r\nPING\r\n"));
    char chunk[4096];
    for (;;) {  // the SUB is registered once PONG comes
      parse(s);
      if (s.ponged) break;
      const long n = ::recv(s.fd, chunk, sizeof chunk, 0);
      if (n <= 0) throw std::runtime_error("nats-ws: no PONG");
      s.buffer.append(chunk, static_cast<std::size_t>(n));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto v = [&] { return std::string(i + 1 < argc ? argv[++i] : ""); };
    if (a == "--target") O.target = v();
    else if (a == "--subscribe") O.subscribe = v();
    else if (a == "--publish") O.publish = v();
    else if (a == "--upstream-listen") O.upstreamListen = v();
    else if (a == "--path") O.path = v();
    else if (a == "--pub-path") O.pubPath = v();
    else if (a == "--label") O.label = v();
    else if (a == "--subs") O.subs = std::stoi(v());
    else if (a == "--size") O.size = std::stoul(v());
    else if (a == "--seconds") O.seconds = std::stod(v());
    else if (a == "--pid") O.pid = std::stol(v());
    else if (a == "--pid-file") O.pidFile = v();
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (O.label.empty()) O.label = O.target;
  O.size = std::max<std::size_t>(O.size, 32);
  const double budget = std::min(2.0 * 1048576.0, 256.0 * 1048576.0 / O.subs);
  const std::uint64_t window =
      static_cast<std::uint64_t>(std::clamp<double>(budget / static_cast<double>(O.size), 16, 8192));
  std::signal(SIGPIPE, SIG_IGN);
  try {
    // The publisher's connection first (the relay connects to us).
    int pubFd = -1, listenFd = -1;
    if (fromRelay()) {
      std::tie(listenFd, pubFd) = bench::acceptOne(O.upstreamListen, 30000);
    } else if (O.target == "nats-ws") {
      pubFd = connectTo(O.publish);
      sendAll(pubFd, "CONNECT {\"verbose\":false,\"pedantic\":false}\r\n");
    } else {  // nchan: a WebSocket publisher
      pubFd = connectTo(O.publish);
      openHttp(pubFd, O.pubPath, true);
    }

    std::vector<Subscriber> subs(static_cast<std::size_t>(O.subs));
    for (Subscriber& s : subs) open(s);
    std::thread reader([&] { readLoop(subs); });
    bench::JoinOnExit joinReader{reader, stopping};

    // Publish: batches of frames, never more than `window` ahead of the slowest.
    const std::size_t batchFrames = std::max<std::size_t>(1, std::min<std::size_t>(65536 / (O.size + 64), window / 4));
    std::string batch, payload(O.size, 'x');
    std::vector<char> discard(65536);
    std::uint64_t seq = 0;
    const std::int64_t start = nowNs();
    const std::int64_t measureFrom = start + static_cast<std::int64_t>(O.warmup * 1e9);
    const std::int64_t giveUp = measureFrom + static_cast<std::int64_t>((O.seconds + 30) * 1e9);
    std::int64_t measureTo = INT64_MAX;
    std::uint64_t seqAtMeasure = 0;
    double cpuAtMeasure = 0;
    while (nowNs() < measureTo) {
      if (nowNs() > giveUp) throw std::runtime_error("some subscriber never got a frame");
      std::uint64_t slowest = UINT64_MAX;
      bool allReady = true;
      for (const Subscriber& s : subs) {
        const std::uint64_t seen = s.seen.load(std::memory_order_relaxed);
        if (seen == 0) allReady = false;
        else slowest = std::min(slowest, seen);
      }
      if (slowest == UINT64_MAX) slowest = seq;
      if (seq - slowest + batchFrames > window) {  // the window is full: wait for the slowest subscriber
        std::unique_lock<std::mutex> lock(progressMutex);
        progress.wait_for(lock, std::chrono::milliseconds(1));
        continue;
      }
      if (!allReady && seq > 0) {  // a subscriber not registered yet: a batch per millisecond until it is
        std::unique_lock<std::mutex> lock(progressMutex);
        progress.wait_for(lock, std::chrono::milliseconds(1));
      }
      if (!measuring.load() && nowNs() >= measureFrom && allReady) {
        measuring.store(true);
        seqAtMeasure = seq;
        if (O.pid == 0 && !O.pidFile.empty()) std::ifstream(O.pidFile) >> O.pid;
        cpuAtMeasure = treeCpuSecondsOf(O.pid);
        measureTo = nowNs() + static_cast<std::int64_t>(O.seconds * 1e9);
      }
      batch.clear();
      for (std::size_t i = 0; i < batchFrames; ++i) {
        ++seq;
        payload.resize(O.size + 1, 'x');  // room for snprintf's NUL
        std::snprintf(&payload[0], 33, "%016llx%016llx", static_cast<unsigned long long>(seq),
                      static_cast<unsigned long long>(nowNs()));
        payload[32] = 'x';
        payload.resize(O.size);
        if (fromRelay()) {
          const std::uint32_t len = htonl(static_cast<std::uint32_t>(payload.size()));
          batch.append(reinterpret_cast<const char*>(&len), 4);
          batch += payload;
        } else if (O.target == "nats-ws") {
          batch += "PUB bench " + std::to_string(payload.size()) + "\r\n";
          batch += payload;
          batch += "\r\n";
        } else {
          batch += clientMessage(1, payload);
        }
      }
      sendAll(pubFd, batch);
      while (!fromRelay() && ::recv(pubFd, discard.data(), discard.size(), MSG_DONTWAIT) > 0) {
      }  // whatever the server says to the publisher (nchan: publish confirmations): read, never waited for
    }
    const std::uint64_t published = seq - seqAtMeasure;
    const double cpu = treeCpuSecondsOf(O.pid) - cpuAtMeasure;
    measuring.store(false);
    stopping.store(true);
    reader.join();
    std::uint64_t delivered = 0, gaps = 0, minCounted = UINT64_MAX;
    for (const Subscriber& s : subs) {
      delivered += s.counted;
      gaps += s.gaps;
      minCounted = std::min(minCounted, s.counted);
    }
    std::printf("{\"target\":\"%s\",\"label\":\"%s\",\"subscribers\":%d,\"size\":%zu,\"window\":%llu,"
                "\"seconds\":%.1f,\"published_per_s\":%.0f,\"delivered_per_s\":%.0f,\"slowest_per_s\":%.0f,"
                "\"gaps\":%llu,\"server_cpu_pct\":%.0f}\n",
                O.target.c_str(), O.label.c_str(), O.subs, O.size, static_cast<unsigned long long>(window), O.seconds,
                static_cast<double>(published) / O.seconds, static_cast<double>(delivered) / O.seconds,
                static_cast<double>(minCounted) / O.seconds, static_cast<unsigned long long>(gaps),
                100.0 * cpu / O.seconds);
    for (Subscriber& s : subs) ::close(s.fd);
    ::close(pubFd);
    if (listenFd >= 0) ::close(listenFd);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "web_fanout_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
