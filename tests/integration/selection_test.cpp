// SPDX-License-Identifier: Apache-2.0
// Integration tests of selection by key with the real relay: frames keyed by
// streams.NAME.key, subscribers that select by pattern (hello, listener,
// JWT claim), snapshots of the newest frame per key before live frames.

#include <catch2/catch.hpp>

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JWT/Signer.h>
#include <Poco/JWT/Token.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "relay_fixture.hpp"
#include "subscriber_helpers.hpp"

using namespace streamrelay::test;
using streamrelay::client::FrameInfo;
using streamrelay::client::Refused;

namespace {

using Clock = std::chrono::steady_clock;

const std::string kKeyedUpstream =
    kListenUpstream + "streams:\n  upstream: {key: {json_pointer: /k}, last_value: {max_keys: 1000}}\n";

// A publisher of the relay's listen source: length-prefixed JSON frames
// {"k": KEY, "c": N} where N counts the frames of that key (from 1), or
// frames without a key.
class KeyedPublisher {
 public:
  explicit KeyedPublisher(const RunningRelay& relay) : fd_(connectLoopback(relay.publisherPort)) { REQUIRE(fd_ >= 0); }
  ~KeyedPublisher() { ::close(fd_); }
  KeyedPublisher(const KeyedPublisher&) = delete;
  KeyedPublisher& operator=(const KeyedPublisher&) = delete;

  // Adds a frame of `key` ("" : a frame without a key) to what flush() sends.
  void add(const std::string& key) {
    const std::string payload =
        key.empty() ? std::string(R"({"none":true})")
                    : R"({"k":")" + key + R"(","c":)" + std::to_string(++counts_[key]) + "}";
    const auto size = static_cast<std::uint32_t>(payload.size());
    const char prefix[4] = {static_cast<char>(size >> 24), static_cast<char>(size >> 16), static_cast<char>(size >> 8),
                            static_cast<char>(size)};
    pending_.append(prefix, 4);
    pending_ += payload;
  }
  // False if the relay stopped taking them. No Catch assertion here: a
  // test's publisher thread calls it, and Catch is not thread safe.
  bool flush() {
    for (std::size_t sent = 0; sent < pending_.size();) {
      const ssize_t n = ::send(fd_, pending_.data() + sent, pending_.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<std::size_t>(n);
    }
    pending_.clear();
    return true;
  }
  const std::map<std::string, int>& counts() const { return counts_; }

 private:
  int fd_;
  std::string pending_;
  std::map<std::string, int> counts_;
};

// {"k":"KEY","c":N} -> (KEY, N); ("", 0) for anything else.
std::pair<std::string, int> keyAndCount(const std::string& frame) {
  const std::size_t k = frame.find(R"("k":")"), c = frame.find(R"(","c":)");
  if (k == std::string::npos || c == std::string::npos) return {"", 0};
  return {frame.substr(k + 5, c - k - 5), std::stoi(frame.substr(c + 6))};
}

const std::vector<std::string> kKeys = {"md.eu.BTC", "md.us.BTC", "md.eu.ETH", "md.us.ETH", ""};

bool matchesAny(const std::string& key, const std::vector<std::string>& wanted) {
  for (const std::string& w : wanted)
    if (w == key) return true;
  return false;
}

Subscriber::Options selecting(std::vector<std::string> select, const std::string& token = "") {
  Subscriber::Options o = protocolClient(token);
  o.select = std::move(select);
  return o;
}

std::string jwtSelecting(const std::vector<std::string>& patterns) {
  Poco::JWT::Token token;
  token.setType("JWT");
  token.setExpiration(Poco::Timestamp() + Poco::Timespan(3600, 0));
  Poco::JSON::Array::Ptr list = new Poco::JSON::Array;
  for (const std::string& p : patterns) list->add(p);
  token.payload().set("select", list);
  Poco::JWT::Signer signer("jwt-secret");
  return signer.sign(token, Poco::JWT::Signer::ALGO_HS256);
}

}  // namespace

TEST_CASE("selection: each subscriber gets exactly the frames whose key its patterns match, in seq order",
          "[integration][select]") {
  RunningRelay relay = startRelay(kKeyedUpstream + "listeners:\n" +
                                  listener("main", "protocol: streamrelay, queue: {max_frames: 100000, max_bytes: 0}"));
  struct Case {
    std::vector<std::string> select;
    std::vector<std::string> keys;  // of kKeys, the ones it gets
  };
  const std::vector<Case> cases = {{{"md.*.BTC"}, {"md.eu.BTC", "md.us.BTC"}},
                                   {{"md.eu.>"}, {"md.eu.BTC", "md.eu.ETH"}},
                                   {{"md.us.ETH", "md.*.ETH"}, {"md.eu.ETH", "md.us.ETH"}},
                                   {{}, kKeys}};
  std::vector<std::unique_ptr<Subscriber>> subs;
  for (const Case& c : cases) {
    subs.push_back(std::make_unique<Subscriber>(relay.address(), selecting(c.select)));
    REQUIRE(subs.back()->awaitAnswer(10s));
  }
  KeyedPublisher feed(relay);
  constexpr int kFrames = 5000;
  for (int i = 0; i < kFrames; ++i) feed.add(kKeys[static_cast<std::size_t>(i * 7 + i / 3) % kKeys.size()]);
  REQUIRE(feed.flush());
  // The keys of seqs 1..kFrames, as published.
  std::vector<std::string> keyOfSeq(1);
  for (int i = 0; i < kFrames; ++i) keyOfSeq.push_back(kKeys[static_cast<std::size_t>(i * 7 + i / 3) % kKeys.size()]);
  for (std::size_t s = 0; s < cases.size(); ++s) {
    INFO("subscriber " << s);
    std::vector<std::uint64_t> expected;
    for (std::uint64_t seq = 1; seq <= kFrames; ++seq)
      if (matchesAny(keyOfSeq[seq], cases[s].keys)) expected.push_back(seq);
    std::vector<std::uint64_t> got;
    std::string frame;
    FrameInfo info;
    while (got.size() < expected.size() && subs[s]->next(frame, info, 20s)) {
      got.push_back(info.seq);
      CHECK(keyAndCount(frame).first == keyOfSeq[info.seq]);
    }
    CHECK(got == expected);
  }
}

TEST_CASE("selection: a listener's select and a token's select claim bound what a subscriber may ask for",
          "[integration][select][auth]") {
  RunningRelay relay = startRelay(
      kKeyedUpstream + "listeners:\n" +
          listener("main", "protocol: streamrelay, select: ['md.>'], auth: {jwt: {secret: jwt-secret}}") +
          listener("raw", "select: ['md.*.ETH']"),
      {"main", "raw"});
  std::string frame;
  {  // a pattern inside the claim's (wildcards on both sides) is admitted
    Subscriber sub(relay.address(), selecting({"md.eu.>"}, jwtSelecting({"md.*.>"})));
    CHECK(sub.awaitAnswer(10s));
  }
  {  // one that is not is refused: md.*.BTC reaches md.us.BTC, which md.eu.> does not
    Subscriber sub(relay.address(), selecting({"md.*.BTC"}, jwtSelecting({"md.eu.>"})));
    CHECK_THROWS_WITH(sub.next(frame, 10s), Catch::Contains("the token does not allow select pattern 'md.*.BTC'"));
  }
  {  // inside the union of two granted patterns, though in neither alone
    Subscriber sub(relay.address(), selecting({"md.>"}, jwtSelecting({"md.*", "md.*.>"})));
    CHECK(sub.awaitAnswer(10s));
  }
  {  // outside the listener's select
    Subscriber sub(relay.address(), selecting({">"}, jwtSelecting({">"})));
    CHECK_THROWS_WITH(sub.next(frame, 10s), Catch::Contains("outside what this listener serves"));
  }
  {  // a pattern that is not one
    Subscriber sub(relay.address(), selecting({"md.>.x"}, jwtSelecting({">"})));
    CHECK_THROWS_WITH(sub.next(frame, 10s), Catch::Contains("md.>.x"));
  }
  {  // a token whose select claim is empty allows nothing (not everything)
    Subscriber sub(relay.address(), selecting({}, jwtSelecting({})));
    CHECK_THROWS_WITH(sub.next(frame, 10s), Catch::Contains("the token allows no key pattern"));
  }
  {  // more patterns than a hello may give
    std::vector<std::string> many;
    for (int i = 0; i < 65; ++i) many.push_back("md.eu.K" + std::to_string(i));
    Subscriber sub(relay.address(), selecting(many, jwtSelecting({">"})));
    CHECK_THROWS_WITH(sub.next(frame, 10s), Catch::Contains("65 patterns, more than 64"));
  }
  // Without a select of its own, a subscriber gets what its token allows;
  // a raw subscriber gets what its listener's select says.
  Subscriber narrowed(relay.address(), selecting({}, jwtSelecting({"md.us.*"})));
  REQUIRE(narrowed.awaitAnswer(10s));
  Subscriber raw(relay.address("raw"), Subscriber::Options{});
  relay.waitForSubscribers(1, "raw");
  KeyedPublisher feed(relay);
  for (const char* key : {"md.eu.BTC", "md.us.BTC", "md.eu.ETH", "md.us.ETH", "x.y"}) feed.add(key);
  REQUIRE(feed.flush());
  FrameInfo info;
  REQUIRE(narrowed.next(frame, info, 10s));
  CHECK(keyAndCount(frame).first == "md.us.BTC");
  REQUIRE(narrowed.next(frame, info, 10s));
  CHECK(keyAndCount(frame).first == "md.us.ETH");
  REQUIRE(raw.next(frame, 10s));
  CHECK(keyAndCount(frame).first == "md.eu.ETH");
  REQUIRE(raw.next(frame, 10s));
  CHECK(keyAndCount(frame).first == "md.us.ETH");
}

TEST_CASE("snapshot: the newest frame of each selected key, then live, with no gap and no repeat per key at 20,000 f/s",
          "[integration][select][snapshot]") {
  RunningRelay relay = startRelay(kKeyedUpstream + "listeners:\n" +
                                  listener("main", "protocol: streamrelay, queue: {max_frames: 1000000, max_bytes: 0}"));
  std::vector<std::string> keys;
  for (int i = 0; i < 200; ++i) keys.push_back("md." + std::string(i % 2 ? "eu" : "us") + ".K" + std::to_string(i));
  // The publisher sends 60,000 frames at about 20,000 f/s (bursts of 200
  // every 10 ms) while the subscriber joins, once 10,000 have gone out.
  std::mutex mutex;
  std::condition_variable changed;
  int sent = 0;
  std::map<std::string, int> finalCounts;
  std::atomic<bool> feedFailed{false};
  KeyedPublisher feed(relay);  // connected here: the thread below makes no Catch assertion
  std::thread publisher([&] {
    auto next = Clock::now();
    for (int burst = 0; burst < 300; ++burst) {
      for (int i = 0; i < 200; ++i) feed.add(keys[static_cast<std::size_t>(burst * 200 + i) * 7919 % keys.size()]);
      if (!feed.flush()) {
        feedFailed = true;
        break;
      }
      {
        std::lock_guard<std::mutex> lock(mutex);
        sent += 200;
      }
      changed.notify_all();
      next += std::chrono::milliseconds(10);
      std::this_thread::sleep_until(next);  // pacing the feed, not waiting for anything
    }
    std::lock_guard<std::mutex> lock(mutex);
    finalCounts = feed.counts();
  });
  {
    std::unique_lock<std::mutex> lock(mutex);
    REQUIRE(changed.wait_for(lock, 30s, [&] { return sent >= 10000; }));
  }
  Subscriber::Options o = selecting({"md.eu.>"});
  o.snapshot = true;
  Subscriber sub(relay.address(), o);
  std::map<std::string, int> last;  // per key, the count of the last frame it got
  std::string frame;
  FrameInfo info;
  bool live = false;
  int snapshotFrames = 0, gaps = 0;
  std::uint64_t lastSeq = 0;
  auto done = [&] {
    std::lock_guard<std::mutex> lock(mutex);
    if (finalCounts.empty()) return false;
    for (const auto& [key, count] : finalCounts)
      if (key.rfind("md.eu.", 0) == 0 && last[key] != count) return false;
    return true;
  };
  while (!done() && sub.next(frame, info, 20s)) {
    const auto [key, count] = keyAndCount(frame);
    REQUIRE(key.rfind("md.eu.", 0) == 0);
    CHECK(info.seq > lastSeq);
    lastSeq = info.seq;
    if (info.flags & streamrelay::wire::kFlagSnapshot) {
      CHECK_FALSE(live);  // every snapshot frame comes before the first live one
      CHECK(last.count(key) == 0);
      ++snapshotFrames;
    } else {
      live = true;
      // A key's first live frame follows its snapshot frame (or is its first).
      if (last.count(key) ? count != last[key] + 1 : false) ++gaps;
    }
    last[key] = count;
  }
  publisher.join();
  CHECK_FALSE(feedFailed);
  CHECK(done());
  CHECK(gaps == 0);
  CHECK(snapshotFrames == 100);  // every md.eu key had frames before it joined
}

TEST_CASE("streamrelay-sub and the Python example select and ask for a snapshot, and mark its frames",
          "[integration][select][snapshot]") {
  RunningRelay relay = startRelay(kKeyedUpstream + "listeners:\n" + listener("main", "protocol: streamrelay"));
  // A subscriber of everything tells when the first frames are published (and kept as last values).
  Subscriber watcher(relay.address(), protocolClient());
  REQUIRE(watcher.awaitAnswer(10s));
  KeyedPublisher feed(relay);
  for (const char* key : {"md.eu.BTC", "md.us.BTC", "md.eu.ETH"}) feed.add(key);
  REQUIRE(feed.flush());
  std::string frame;
  for (int i = 0; i < 3; ++i) REQUIRE(watcher.next(frame, 10s));

  const std::string args = " --select 'md.eu.>' --snapshot --count 3 1>&2";
  ChildProcess cli("/bin/sh", {"-c", "exec " STREAMRELAY_SUB_BIN " " + relay.address() + " --protocol streamrelay" + args});
  ChildProcess python("/bin/sh", {"-c", "exec /usr/bin/python3 " STREAMRELAY_SOURCE_DIR
                                        "/sdk/examples/python_client/streamrelay_client.py " +
                                            relay.address() + args});
  REQUIRE(cli.waitForLine("connected: ").size() > 0);
  REQUIRE(python.waitForLine("connected: ").size() > 0);
  feed.add("md.eu.BTC");
  feed.add("md.us.ETH");
  REQUIRE(feed.flush());
  for (ChildProcess* client : {&cli, &python}) {
    INFO(client->output());
    CHECK(client->waitForExit(20s) == 0);
    CHECK(client->countLines(R"(^upstream seq=1 snapshot lag_ms=\S+ \{"k":"md.eu.BTC","c":1\}$)") == 1);
    CHECK(client->countLines(R"(^upstream seq=3 snapshot lag_ms=\S+ \{"k":"md.eu.ETH","c":1\}$)") == 1);
    CHECK(client->countLines(R"(^upstream seq=4 lag_ms=\S+ \{"k":"md.eu.BTC","c":2\}$)") == 1);
  }
}

TEST_CASE("on_full conflate: a subscriber that stopped reading ends with the newest frame of every key, others get every frame",
          "[integration][select][qos]") {
  RunningRelay relay = startRelay(
      kKeyedUpstream + "listeners:\n" +
          listener("main", "protocol: streamrelay, queue: {max_frames: 1000000, max_bytes: 0}") +
          listener("board", "protocol: streamrelay, send_buffer_bytes: 4096, queue: {max_frames: 40, max_bytes: 0, "
                            "on_full: conflate}"),
      {"main", "board"});
  Subscriber everything(relay.address(), protocolClient());
  REQUIRE(everything.awaitAnswer(10s));
  // The board's reader is stalled: it reads nothing until the feed is done.
  Subscriber::Options stalled = protocolClient();
  Subscriber board(relay.address("board"), stalled);
  REQUIRE(board.awaitAnswer(10s));
  KeyedPublisher feed(relay);
  constexpr int kFrames = 20000;
  for (int i = 0; i < kFrames; ++i) feed.add("md.K" + std::to_string(i % 50));
  REQUIRE(feed.flush());
  std::string frame;
  FrameInfo info;
  for (int i = 1; i <= kFrames; ++i) {
    REQUIRE(everything.next(frame, info, 20s));
    REQUIRE(info.seq == static_cast<std::uint64_t>(i));
  }
  // Now the board reads: what it gets ends with the newest frame of each key.
  std::map<std::string, int> last;
  int received = 0, flagged = 0;
  auto caughtUp = [&] {
    if (last.size() < 50) return false;
    for (const auto& [key, count] : last)
      if (count != feed.counts().at(key)) return false;
    return true;
  };
  while (!caughtUp() && board.next(frame, info, 20s)) {
    const auto [key, count] = keyAndCount(frame);
    CHECK(count > last[key]);  // per key, never an older frame after a newer one
    last[key] = count;
    ++received;
    if (info.flags & streamrelay::wire::kFlagConflated) ++flagged;
  }
  CHECK(caughtUp());
  CHECK(received < kFrames);  // it was conflated, not cut and not fed everything
  CHECK(flagged > 0);
}

TEST_CASE("metrics: a keyed stream's keys, last values and selecting subscribers in /metrics as in /stats",
          "[integration][select][metrics]") {
  RelayStats stats;
  RunningRelay relay = startRelay(kKeyedUpstream + "listeners:\n" + listener("main", "protocol: streamrelay") +
                                  stats.section());
  stats.attach(relay);
  Subscriber::Options selecting = protocolClient();
  selecting.select = {"md.eu.>", "md.*.BTC"};
  Subscriber sub(relay.address(), selecting);
  REQUIRE(sub.awaitAnswer(10s));
  KeyedPublisher feed(relay);
  for (const char* key : {"md.eu.BTC", "md.us.BTC", "md.eu.ETH", "md.us.ETH", ""}) feed.add(key);
  REQUIRE(feed.flush());
  std::string frame;
  for (int i = 0; i < 3; ++i) REQUIRE(sub.next(frame, 10s));  // md.eu.BTC, md.us.BTC, md.eu.ETH

  // The relay counts a frame once the batch is published: wait for all five.
  const std::string stream = "{stream=\"upstream\"}";
  std::string page;
  REQUIRE(pollUntil([&] {
    page = stats.text("/metrics");
    return sampleValue(page, "streamrelay_stream_frames_total" + stream) == 5;
  }));
  CHECK(sampleValue(page, "streamrelay_stream_keyed_frames_total" + stream) == 4);
  CHECK(sampleValue(page, "streamrelay_stream_frames_without_key_total" + stream) == 1);
  CHECK(sampleValue(page, "streamrelay_stream_distinct_keys" + stream) == 4);
  CHECK(sampleValue(page, "streamrelay_stream_last_value_keys" + stream) == 4);
  CHECK(sampleValue(page, "streamrelay_stream_last_value_evictions_total" + stream) == 0);
  CHECK(sampleValue(page, "streamrelay_stream_selecting_consumers" + stream) == 1);
  CHECK(sampleValue(page, "streamrelay_stream_indexed_patterns" + stream) == 2);
  CHECK(page.find("streamrelay_consumer_conflated_frames_total{consumer=\"main/") != std::string::npos);
  CHECK(page.find("streamrelay_consumer_rate_skipped_frames_total{consumer=\"main/") != std::string::npos);
}
