// SPDX-License-Identifier: Apache-2.0
// tls_fanout_bench: fan-out over TLS, for streamrelay, nats-server and
// redis-server side by side. The shared harness (../shared/bench) speaks
// plain TCP only; this is its TLS counterpart, kept in the project as the
// issue asks, with the same yardstick: one publisher, N subscribers that must
// each get every frame, and a window (the frames the slowest subscriber may
// lag behind the publisher: min(2 MiB, 256 MiB / N) of payload, 16..8192
// frames) so that what is measured is lossless throughput.
//
//   relay: the bench listens as the relay's tcp upstream (--upstream-listen)
//          and writes [u32 length][payload]; subscribers connect over TLS to
//          a raw TLS listener (--subscribe) and read length-prefixed frames.
//   nats:  publisher and subscribers over TLS to --subscribe (nats-server
//          makes every client of a TLS port use TLS); PUB / SUB / MSG.
//   redis: publisher in clear to --publish (the plain port), subscribers over
//          TLS to --subscribe (tls-port); PUBLISH / SUBSCRIBE.
//
// Payload: u64 seq, u64 send time (ns), padding. One thread publishes, one
// reads every subscriber with epoll. Prints one JSON line.
//
//   tls_fanout_bench --target relay --upstream-listen 127.0.0.1:17101
//       --subscribe 127.0.0.1:17100 --ca ca.pem --subs 16 --size 128 --seconds 5

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
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

struct Options {
  std::string target = "relay", subscribe, publish, upstreamListen, ca, label;
  int subs = 16;
  std::size_t size = 128;
  double seconds = 5, warmup = 1;
  bool plain = false;  // subscribers without TLS: the same yardstick for the plaintext relay
};
Options O;

void sendAll(int fd, SSL* ssl, const char* data, std::size_t size) {
  if (!ssl) return bench::sendAll(fd, data, size);
  while (size > 0) {
    const int n = SSL_write(ssl, data, static_cast<int>(size));
    if (n <= 0) throw std::runtime_error("send failed");
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

SSL_CTX* clientContext() {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_load_verify_locations(ctx, O.ca.c_str(), nullptr) != 1) throw std::runtime_error("cannot load --ca");
  return ctx;
}

SSL* handshake(SSL_CTX* ctx, int fd) {
  if (!ctx) return nullptr;  // --plain
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1");
  if (SSL_connect(ssl) != 1) {
    char text[256];
    ERR_error_string_n(ERR_get_error(), text, sizeof text);
    throw std::runtime_error(std::string("TLS handshake: ") + text);
  }
  return ssl;
}

// Reads a line in clear (NATS' INFO comes before TLS).
std::string readLine(int fd) {
  std::string line;
  char c;
  while (::recv(fd, &c, 1, 0) == 1 && c != '\n') line += c;
  return line;
}

struct Subscriber {
  int fd = -1;
  SSL* ssl = nullptr;
  std::string buffer;
  std::size_t begin = 0;
  std::uint64_t lastSeq = 0;
  std::atomic<std::uint64_t> seen{0};  // last seq, for the publisher's window
  std::uint64_t counted = 0;          // frames received in the measuring window
  std::uint64_t gaps = 0;
  bool ready = false;                 // SUBSCRIBE confirmed (redis)
};

std::uint64_t seqOf(const char* payload) {
  std::uint64_t seq = 0;
  for (int i = 0; i < 8; ++i) seq = (seq << 8) | static_cast<unsigned char>(payload[i]);
  return seq;
}

std::atomic<bool> measuring{false}, stopping{false};
// The reader says when subscribers advanced; a publisher whose window is
// full waits for that instead of spinning on a core the server needs.
std::mutex progressMutex;
std::condition_variable progress;

void onFrame(Subscriber& s, const char* payload, std::size_t size) {
  if (size < 16) return;
  const std::uint64_t seq = seqOf(payload);
  if (s.lastSeq != 0 && seq != s.lastSeq + 1) ++s.gaps;
  s.lastSeq = seq;
  s.seen.store(seq, std::memory_order_relaxed);
  if (measuring.load(std::memory_order_relaxed)) ++s.counted;
}

// Takes every whole message from the subscriber's buffer.
void parse(Subscriber& s) {
  for (;;) {
    const char* data = s.buffer.data() + s.begin;
    const std::size_t have = s.buffer.size() - s.begin;
    if (O.target == "relay") {
      const std::size_t taken = bench::takeFrames(data, have, 4, [&](const char*, const char* payload, std::size_t n) {
        onFrame(s, payload, n);
      });
      if (taken == 0) break;
      s.begin += taken;
    } else if (O.target == "nats") {
      const std::size_t taken = bench::takeNatsMessages(
          data, have, [&](const char* payload, std::size_t n) { onFrame(s, payload, n); },
          [&](const char* line, std::size_t n) {
            if (n >= 4 && std::strncmp(line, "PING", 4) == 0) sendAll(s.fd, s.ssl, "PONG\r\n", 6);
          });
      if (taken == 0) break;
      s.begin += taken;
    } else {  // redis: *3\r\n$7\r\nmessage\r\n$N\r\nchannel\r\n$N\r\npayload\r\n
      std::size_t at = 0;
      auto line = [&](std::string& out) {
        const char* eol = static_cast<const char*>(std::memchr(data + at, '\n', have - at));
        if (!eol) return false;
        out.assign(data + at, static_cast<std::size_t>(eol - (data + at)) - 1);
        at = static_cast<std::size_t>(eol - data) + 1;
        return true;
      };
      auto bulk = [&](std::string* out, const char** where, std::size_t* size) {
        std::string header;
        if (!line(header) || header.empty()) return false;
        if (header[0] == ':') {  // an integer (the subscribe count)
          if (out) *out = header;
          return true;
        }
        const std::size_t len = std::stoul(header.substr(1));
        if (have - at < len + 2) return false;
        if (out) out->assign(data + at, len);
        if (where) *where = data + at, *size = len;
        at += len + 2;
        return true;
      };
      std::string head, kind;
      if (!line(head)) break;
      if (!bulk(&kind, nullptr, nullptr)) break;
      std::string channel;
      if (!bulk(&channel, nullptr, nullptr)) break;
      const char* payload = nullptr;
      std::size_t len = 0;
      std::string third;
      if (!bulk(&third, &payload, &len)) break;
      if (kind == "subscribe") s.ready = true;
      else if (kind == "message") onFrame(s, payload, len);
      s.begin += at;
    }
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
      fds, stopping,
      [&](std::size_t i, char* into, std::size_t capacity) -> long {
        Subscriber& s = subs[i];
        return s.ssl ? SSL_read(s.ssl, into, static_cast<int>(capacity)) : ::recv(s.fd, into, capacity, 0);
      },
      [&](std::size_t i, const char* data, std::size_t size) {
        subs[i].buffer.append(data, size);
        parse(subs[i]);
      },
      [] { progress.notify_one(); });
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
    else if (a == "--ca") O.ca = v();
    else if (a == "--label") O.label = v();
    else if (a == "--plain") O.plain = true;
    else if (a == "--subs") O.subs = std::stoi(v());
    else if (a == "--size") O.size = std::stoul(v());
    else if (a == "--seconds") O.seconds = std::stod(v());
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (O.label.empty()) O.label = O.target;
  O.size = std::max<std::size_t>(O.size, 16);
  const double budget = std::min(2.0 * 1048576.0, 256.0 * 1048576.0 / O.subs);
  const std::uint64_t window = static_cast<std::uint64_t>(std::clamp<double>(budget / static_cast<double>(O.size), 16, 8192));
  std::signal(SIGPIPE, SIG_IGN);
  try {
    SSL_CTX* ctx = O.plain ? nullptr : clientContext();
    // The publisher's connection first (the relay connects to us).
    int pubFd = -1;
    SSL* pubSsl = nullptr;
    int listenFd = -1;
    if (O.target == "relay") {
      std::tie(listenFd, pubFd) = bench::acceptOne(O.upstreamListen, 30000);
    } else if (O.target == "nats") {
      pubFd = connectTo(O.subscribe);
      readLine(pubFd);  // INFO, in clear
      pubSsl = handshake(ctx, pubFd);
      const std::string connect = "CONNECT {\"verbose\":false,\"pedantic\":false,\"tls_required\":true}\r\n";
      sendAll(pubFd, pubSsl, connect.data(), connect.size());
    } else {
      pubFd = connectTo(O.publish);
    }

    std::vector<Subscriber> subs(static_cast<std::size_t>(O.subs));
    for (Subscriber& s : subs) {
      s.fd = connectTo(O.subscribe);
      if (O.target == "nats") readLine(s.fd);
      s.ssl = handshake(ctx, s.fd);
      if (O.target == "nats") {
        const std::string hello = "CONNECT {\"verbose\":false,\"pedantic\":false,\"tls_required\":true}\r\nSUB bench 1\r\nPING\r\n";
        sendAll(s.fd, s.ssl, hello.data(), hello.size());
        char pong[4096];
        std::string got;
        while (got.find("PONG") == std::string::npos) {  // the SUB is registered once PONG comes
          int n = SSL_read(s.ssl, pong, sizeof pong);
          if (n <= 0) throw std::runtime_error("nats: no PONG");
          got.append(pong, static_cast<std::size_t>(n));
        }
      } else if (O.target == "redis") {
        const std::string sub = "*2\r\n$9\r\nSUBSCRIBE\r\n$5\r\nbench\r\n";
        sendAll(s.fd, s.ssl, sub.data(), sub.size());
      }
    }
    std::thread reader([&] { readLoop(subs); });
    bench::JoinOnExit joinReader{reader, stopping};

    // Publish: batches of frames, never more than `window` ahead of the slowest.
    const std::size_t batchFrames = std::max<std::size_t>(1, std::min<std::size_t>(65536 / (O.size + 64), window / 4));
    std::string batch, payload(O.size, 'x');
    std::string redisReplies(65536, '\0');
    std::uint64_t seq = 0;
    const std::int64_t start = nowNs();
    const std::int64_t measureFrom = start + static_cast<std::int64_t>(O.warmup * 1e9);
    const std::int64_t giveUp = measureFrom + static_cast<std::int64_t>((O.seconds + 30) * 1e9);
    std::int64_t measureTo = INT64_MAX;
    std::uint64_t seqAtMeasure = 0, seqAtEnd = 0;
    while (nowNs() < measureTo) {
      if (nowNs() > giveUp) throw std::runtime_error("some subscriber never got a frame");
      // The window counts subscribers that have had a frame: a raw listener
      // subscribes a client a moment after its connect returned, and frames
      // published before that never reach it (the warm-up covers them).
      std::uint64_t slowest = UINT64_MAX;
      bool allReady = true;
      for (const Subscriber& s : subs) {
        const std::uint64_t seen = s.seen.load(std::memory_order_relaxed);
        if (seen == 0) allReady = false;
        else slowest = std::min(slowest, seen);
      }
      if (slowest == UINT64_MAX) slowest = seq;  // nobody ready yet: pace by the wait below
      if (seq - slowest + batchFrames > window) {  // the window is full: wait for the slowest subscriber
        std::unique_lock<std::mutex> lock(progressMutex);
        progress.wait_for(lock, std::chrono::milliseconds(1));
        continue;
      }
      if (!allReady && seq > 0) {  // some subscriber is not registered yet: a batch per millisecond until it is
        std::unique_lock<std::mutex> lock(progressMutex);
        progress.wait_for(lock, std::chrono::milliseconds(1));
      }
      if (!measuring.load() && nowNs() >= measureFrom && allReady) {
        measuring.store(true);
        seqAtMeasure = seq;
        measureTo = nowNs() + static_cast<std::int64_t>(O.seconds * 1e9);
      }
      batch.clear();
      for (std::size_t i = 0; i < batchFrames; ++i) {
        ++seq;
        for (int b = 0; b < 8; ++b) payload[static_cast<std::size_t>(b)] = static_cast<char>(seq >> (56 - 8 * b));
        const std::int64_t t = nowNs();
        for (int b = 0; b < 8; ++b) payload[static_cast<std::size_t>(8 + b)] = static_cast<char>(t >> (56 - 8 * b));
        if (O.target == "relay") {
          const std::uint32_t len = htonl(static_cast<std::uint32_t>(payload.size()));
          batch.append(reinterpret_cast<const char*>(&len), 4);
          batch += payload;
        } else if (O.target == "nats") {
          batch += "PUB bench " + std::to_string(payload.size()) + "\r\n";
          batch += payload;
          batch += "\r\n";
        } else {
          batch += "*3\r\n$7\r\nPUBLISH\r\n$5\r\nbench\r\n$" + std::to_string(payload.size()) + "\r\n";
          batch += payload;
          batch += "\r\n";
        }
      }
      sendAll(pubFd, pubSsl, batch.data(), batch.size());
      if (O.target == "redis")  // the integer replies: read what is there, never wait
        while (::recv(pubFd, redisReplies.data(), redisReplies.size(), MSG_DONTWAIT) > 0) {
        }
    }
    seqAtEnd = seq;
    measuring.store(false);
    stopping.store(true);
    reader.join();
    std::uint64_t delivered = 0, gaps = 0, minCounted = UINT64_MAX;
    for (const Subscriber& s : subs) {
      delivered += s.counted;
      gaps += s.gaps;
      minCounted = std::min(minCounted, s.counted);
    }
    std::printf("{\"target\":\"%s\",\"label\":\"%s\",\"tls\":%s,\"subscribers\":%d,\"size\":%zu,\"window\":%llu,"
                "\"seconds\":%.1f,\"published_per_s\":%.0f,\"delivered_per_s\":%.0f,\"slowest_per_s\":%.0f,"
                "\"gaps\":%llu}\n",
                O.target.c_str(), O.label.c_str(), O.plain ? "false" : "true", O.subs, O.size, static_cast<unsigned long long>(window), O.seconds,
                static_cast<double>(seqAtEnd - seqAtMeasure) / O.seconds, static_cast<double>(delivered) / O.seconds,
                static_cast<double>(minCounted) / O.seconds, static_cast<unsigned long long>(gaps));
    for (Subscriber& s : subs) {
      SSL_free(s.ssl);
      ::close(s.fd);
    }
    if (pubSsl) SSL_free(pubSsl);
    if (!ctx) ctx = SSL_CTX_new(TLS_client_method());  // freed below either way
    ::close(pubFd);
    if (listenFd >= 0) ::close(listenFd);
    SSL_CTX_free(ctx);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tls_fanout_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
