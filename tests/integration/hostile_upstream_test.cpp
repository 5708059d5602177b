// SPDX-License-Identifier: Apache-2.0
// Integration tests of the `streamrelay` source against a hostile upstream: a
// fake relay on loopback (in this file) that answers the hello with what no
// relay sends — not JSON, a refusal, a length of 4 GiB, a flood, seqs that go
// back, a stream id never named, a close in the middle of a frame, silence —
// and then, on the next connection, behaves. The relay must survive each,
// count it in /stats (protocol_errors, endpoints[].failures, gaps), reconnect,
// and keep serving its own subscribers every good frame.

#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "relay_fixture.hpp"
#include "subscriber_helpers.hpp"  // protocolClient()
#include "streamrelay/wire.hpp"

using namespace streamrelay::test;
using streamrelay::client::FrameInfo;
namespace wire = streamrelay::wire;

namespace {

// The bytes of one streamrelay-protocol frame; `announced` overrides the
// header's length (a lie about the payload that follows).
std::string frame(std::uint16_t stream, std::uint64_t seq, const std::string& payload, std::int64_t announced = -1) {
  std::string bytes(wire::kFrameHeaderBytes, '\0');
  wire::putUnsigned(&bytes[0], announced >= 0 ? static_cast<std::uint64_t>(announced) : payload.size(), 4);
  wire::putUnsigned(&bytes[4], stream, 2);
  wire::putUnsigned(&bytes[6], 0, 2);
  wire::putUnsigned(&bytes[8], seq, 8);
  wire::putUnsigned(&bytes[16], 1700000000000000000ull + seq, 8);
  return bytes + payload;
}

std::string control(const std::string& json) { return frame(wire::kControlStream, 0, json); }

// An accepted answer for the one stream "upstream", with stream id `id`.
std::string answer(std::uint64_t epoch, std::uint64_t firstSeq, int id = 0) {
  const std::string e = std::to_string(epoch), f = std::to_string(firstSeq);
  return control(R"({"ok":true,"epoch":")" + e + R"(","first_seq":)" + f + R"(,"streams":{"upstream":{"id":)" +
                 std::to_string(id) + R"(,"epoch":")" + e + R"(","first_seq":)" + f + "}}}");
}

bool sendAll(int fd, const std::string& bytes) {
  std::size_t at = 0;
  while (at < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
    if (n <= 0) return false;
    at += static_cast<std::size_t>(n);
  }
  return true;
}

// Reads (and drops) until the relay closes the connection; false if it
// has not within `timeout` (a relay that accepted what it should not have).
bool closedByRelay(int fd, std::chrono::milliseconds timeout = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char sink[4096];
  for (;;) {
    using std::chrono::milliseconds;
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    if (::recv(fd, sink, sizeof sink, 0) <= 0) return true;
  }
}

// What a live upstream does when it has no frame to send: a heartbeat every
// 200 ms (the relay's idle timeout sees a live link), until the relay closes
// the connection or `timeout` passes.
void heartbeatUntilClosed(int fd, std::chrono::milliseconds timeout = 120s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char sink[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 200) > 0 && ::recv(fd, sink, sizeof sink, 0) <= 0) return;
    if (!sendAll(fd, control(wire::kHeartbeatJson))) return;
  }
}

// A fake upstream relay on 127.0.0.1: once started, it accepts one
// connection at a time, reads its hello line, and runs the script of that
// connection (the last script for every connection after it). The test
// thread owns it; its accept thread runs the scripts.
class FakeUpstream {
 public:
  // A script gets the socket and the hello line; it returns once it is done
  // with the connection (the fake then closes it).
  using Script = std::function<void(int fd, const std::string& hello)>;

  FakeUpstream() {
    listenFd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(listenFd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listenFd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listenFd_, 8) == 0);
    socklen_t length = sizeof addr;
    REQUIRE(::getsockname(listenFd_, reinterpret_cast<sockaddr*>(&addr), &length) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~FakeUpstream() {
    ::shutdown(listenFd_, SHUT_RDWR);  // wakes accept()
    if (thread_.joinable()) thread_.join();
    ::close(listenFd_);
  }

  int port() const { return port_; }
  // Connections made to the fake wait in its backlog until this.
  void start(std::vector<Script> scripts) {
    scripts_ = std::move(scripts);
    thread_ = std::thread([this] { run(); });
  }
  std::vector<std::string> hellos() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return hellos_;
  }

 private:
  void run() {
    for (std::size_t n = 0;; ++n) {
      const int fd = ::accept(listenFd_, nullptr, nullptr);
      if (fd < 0) return;
      std::string hello;
      char c;
      while (hello.size() < wire::kMaxHelloBytes && ::recv(fd, &c, 1, 0) == 1 && c != '\n') hello += c;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        hellos_.push_back(hello);
      }
      scripts_[std::min(n, scripts_.size() - 1)](fd, hello);
      ::close(fd);
    }
  }

  int listenFd_ = -1;
  int port_ = 0;
  std::vector<Script> scripts_;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::vector<std::string> hellos_;
};

// A relay following `fake` (its source `upstream`, with `more` keys) and
// serving the stream on a raw listener `main`, whose subscribers stay
// connected when the upstream's epoch changes; beside it, a stream `other`
// of a generator on the streamrelay listener `others`.
std::string relayOn(const FakeUpstream& fake, const RelayStats& stats, const std::string& more = "") {
  return "sources:\n  upstream: {type: streamrelay, endpoints: ['127.0.0.1:" + std::to_string(fake.port()) +
         "'], reconnect: {initial_delay_ms: 10, max_delay_ms: 50}" + more + "}\n" +
         "  other: {type: generator, rate: 200}\n" + "listeners:\n" + listener("main", "inputs: [upstream]") +
         listener("others", "inputs: [other], protocol: streamrelay") + stats.section();
}
const std::vector<std::string> kListeners{"main", "others"};

// The payloads of the next `count` frames (fewer if none came for 20 s).
std::vector<std::string> payloads(Subscriber& sub, std::size_t count) {
  std::vector<std::string> got;
  std::string payload;
  FrameInfo info;
  while (got.size() < count && sub.next(payload, info, 20s)) got.push_back(payload);
  return got;
}

}  // namespace

TEST_CASE("a hostile upstream's answers (not JSON, a refusal, 4 GiB, a flood, a truncation, no answer first, a stream id it cannot have, a second answer) are each a counted failed try, and the relay serves on", "[integration][fleet][hostile]") {
  // Before the fake: its scripts use them until its thread ends.
  std::atomic<int> droppedByRelay{0};  // connections the relay closed itself
  auto thenClosed = [&](int fd) { droppedByRelay += closedByRelay(fd) ? 1 : 0; };
  FakeUpstream fake;
  RelayStats stats("upstream");
  RunningRelay relay = startRelay(relayOn(fake, stats), kListeners);
  stats.attach(relay);
  Subscriber sub(relay.address(), Subscriber::Options{});
  relay.waitForSubscribers(1, "main");
  Subscriber ofOther(relay.address("others"), protocolClient());  // the other stream, read after the attack
  REQUIRE(ofOther.awaitAnswer(10s));
  const long residentBefore = residentKiB(relay.process->pid());

  auto sending = [&](std::string bytes) {
    return [&, bytes](int fd, const std::string&) {
      sendAll(fd, bytes);
      thenClosed(fd);
    };
  };
  fake.start({
      sending(control("this is not JSON")),
      // A refusal whose error would be a log line of its own, and a long one.
      sending(control(R"({"ok":false,"error":"go away\nINJECTED )" + std::string(100000, 'x') + R"("})")),
      sending(control(R"({"ok":true,"epoch":"7","streams":{"a":{"id":0,"first_seq":1},"b":{"id":1,"first_seq":1}}})")),
      sending(frame(0, 1, "a frame before the answer")),
      sending(frame(wire::kControlStream, 0, "{", 0xFFFFFFFFll)),  // 4 GiB - 1 announced, never sent
      sending(answer(7, 1, wire::kControlStream)),                  // its frames would be control frames
      [&](int fd, const std::string&) {  // 64 MiB with no frame in it: "xxxx" announces 2 GB
        const std::string mib(1 << 20, 'x');
        for (int i = 0; i < 64 && sendAll(fd, mib); ++i) {
        }
        thenClosed(fd);
      },
      [&](int fd, const std::string&) { sendAll(fd, control(R"({"ok":true)").substr(0, 30)); },  // then closes
      sending(answer(6, 1) + frame(0, 1, "epoch 6") + answer(7, 1)),  // another epoch mid-stream: a second answer
      [&](int fd, const std::string&) {  // behaves
        sendAll(fd, answer(7, 1) + frame(0, 1, "good 1") + frame(0, 2, "good 2") + frame(0, 3, "good 3"));
        heartbeatUntilClosed(fd);
      },
  });

  CHECK(payloads(sub, 4) == std::vector<std::string>{"epoch 6", "good 1", "good 2", "good 3"});
  CHECK(droppedByRelay == 8);
  CHECK(stats.counter("protocol_errors") == 8);
  CHECK(stats.endpointFailures(0) == 9);  // the eight and the truncated answer
  CHECK(stats.counter("connects") == 2);
  CHECK(stats.counter("new_epochs") == 1);
  CHECK(stats.counter("upstream_seq") == 3);
  // What the upstream said is on the relay's lines, never a line of its own nor 100 KB.
  std::size_t longest = 0;
  std::istringstream lines(relay.process->output());
  for (std::string line; std::getline(lines, line);) {
    CHECK(line.rfind("INJECTED", 0) == std::string::npos);
    longest = std::max(longest, line.size());
  }
  CHECK(longest < 1000);
  // The other stream went on all along: its subscriber has every frame since it connected.
  std::uint64_t otherSeq = ofOther.answer().streams.at("other").firstSeq - 1;
  std::string payload;
  FrameInfo info;
  for (int i = 0; i < 200 && ofOther.next(payload, info, 20s) && info.seq == otherSeq + 1; ++i) otherSeq = info.seq;
  CHECK(otherSeq == ofOther.answer().streams.at("other").firstSeq + 199);
  // The 64 MiB flood was not kept (a frame's bytes are held only up to max_frame_bytes, 1 MiB).
  CHECK(residentKiB(relay.process->pid()) - residentBefore < 32 * 1024);
}

TEST_CASE("a hostile upstream's frames (4 GiB announced, seq going back, an unnamed stream id, a gap, over max_frame_bytes, another epoch, a close mid-frame, silence, seq 2^64-1): the good frames before each are published, each is counted, the relay resumes", "[integration][fleet][hostile]") {
  std::atomic<int> droppedByRelay{0};  // before the fake: its scripts use it until its thread ends
  FakeUpstream fake;
  RelayStats stats("upstream");
  RunningRelay relay = startRelay(relayOn(fake, stats, ", idle_timeout_ms: 2000"), kListeners);
  stats.attach(relay);
  Subscriber sub(relay.address(), Subscriber::Options{});
  relay.waitForSubscribers(1, "main");

  constexpr std::uint64_t kFirst = 1111, kSecond = 2222;  // the upstream's epochs
  auto sending = [&](std::string bytes) {
    return [&, bytes](int fd, const std::string&) {
      sendAll(fd, bytes);
      droppedByRelay += closedByRelay(fd) ? 1 : 0;
    };
  };
  // Each connection's good frames come in one write with the bad bytes after them.
  fake.start({
      sending(answer(kFirst, 1) + frame(0, 1, "a1") + frame(0, 2, "a2") + frame(0, 3, "a3") +
              frame(0, 4, "x", 0xFFFFFFFFll)),
      sending(answer(kFirst, 4) + frame(0, 4, "a4") + frame(0, 2, "a2 again")),
      sending(answer(kFirst, 5) + frame(0, 5, "a5") + frame(7, 6, "of stream 7")),
      sending(answer(kFirst, 6) + frame(0, 6, "a6") + frame(0, 100, "a100") + frame(0, 101, "x", (1 << 20) + 1)),
      [&](int fd, const std::string&) {  // another epoch; then the upstream closes in a frame's middle
        const std::string cut = frame(0, 3, "b3, cut short").substr(0, 30);
        sendAll(fd, answer(kSecond, 1) + frame(0, 1, "b1") + frame(0, 2, "b2") + cut);
      },
      sending(answer(kSecond, 3) + frame(0, 3, "b3")),  // then silence: idle_timeout_ms
      sending(answer(kSecond, 4) + frame(0, 4, "b4") + frame(0, ~0ull, "the last seq there is")),
      [&](int fd, const std::string&) {
        sendAll(fd, answer(kSecond, 5) + frame(0, 5, "b5"));
        heartbeatUntilClosed(fd);
      },
  });

  CHECK(payloads(sub, 12) ==
        std::vector<std::string>{"a1", "a2", "a3", "a4", "a5", "a6", "a100", "b1", "b2", "b3", "b4", "b5"});
  CHECK(droppedByRelay == 6);  // the five protocol errors and the idle timeout
  CHECK(stats.counter("protocol_errors") == 5);
  CHECK(stats.endpointFailures(0) == 7);  // and the close mid-frame
  CHECK(stats.counter("gaps") == 1);
  CHECK(stats.counter("frames_missed") == 93);
  CHECK(stats.counter("new_epochs") == 1);
  CHECK(stats.counter("upstream_seq") == 5);
  CHECK(stats.source()->getValue<std::string>("upstream_epoch") == std::to_string(kSecond));
  // Each reconnect resumed after the last frame published, in its epoch.
  const std::vector<std::string> hellos = fake.hellos();
  std::string shown;
  for (const std::string& hello : hellos) shown += hello + "\n";
  INFO(shown);
  REQUIRE(hellos.size() >= 8);
  CHECK(hellos[1].find(R"("epoch":"1111","after_seq":3)") != std::string::npos);
  CHECK(hellos[2].find(R"("after_seq":4)") != std::string::npos);
  CHECK(hellos[4].find(R"("after_seq":100)") != std::string::npos);
  CHECK(hellos[5].find(R"("epoch":"2222","after_seq":2)") != std::string::npos);
  CHECK(hellos[7].find(R"("epoch":"2222","after_seq":4)") != std::string::npos);
}
