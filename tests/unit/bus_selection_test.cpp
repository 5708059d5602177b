// SPDX-License-Identifier: Apache-2.0
// Selection by key on the bus: a selecting subscriber gets exactly the frames
// whose key matches one of its patterns, checked against a brute-force
// reference (subject::matches over every frame) on a random key stream.
#include <catch2/catch.hpp>

#include <deque>
#include <map>
#include <random>

#include "bus.hpp"
#include "subject.hpp"

using namespace streamrelay;

namespace {

// A batch whose frame i carries keys[i] as its key (an empty optional: none)
// and its own key as its payload.
std::unique_ptr<FrameBatch> keyedBatch(const std::vector<std::optional<std::string>>& keys) {
  FrameBatchBuilder builder;
  FrameKeys frameKeys;
  for (const auto& key : keys) {
    const std::string payload = key ? *key : "-";
    builder.add(payload.data(), payload.size());
    if (key) frameKeys.add(*key);
    else frameKeys.addNone();
  }
  auto batch = builder.seal(0);
  batch->setKeys(std::move(frameKeys));
  return batch;
}

QueuePtr newQueue(const std::string& name) {
  QueueLimits limits;
  limits.maxFrames = 0;
  limits.maxBytes = 0;  // unbounded: the test takes everything at the end
  return std::make_shared<SubscriptionQueue>(name, limits, [] {});
}

std::vector<std::uint64_t> taken(SubscriptionQueue& queue) {
  std::deque<FrameSpan> spans;
  queue.takeAll(spans);
  std::vector<std::uint64_t> seqs;
  for (const FrameSpan& s : spans)
    for (std::uint32_t i = s.first; i < s.end; ++i) seqs.push_back(s.batch->seq(i));
  return seqs;
}

// Keys of 1..4 tokens over a small alphabet, so that wildcards match often.
std::string randomKey(std::mt19937& rng) {
  static const char* tokens[] = {"md", "eu", "us", "BTC", "ETH", "x"};
  std::uniform_int_distribution<int> length(1, 4), token(0, 5);
  std::string key = tokens[token(rng)];
  for (int n = length(rng); n > 1; --n) key += std::string(".") + tokens[token(rng)];
  return key;
}

std::string randomPattern(std::mt19937& rng) {
  std::string key = randomKey(rng);
  std::vector<std::string> parts;
  for (std::size_t a = 0;;) {
    const std::size_t dot = key.find('.', a);
    parts.push_back(key.substr(a, dot - a));
    if (dot == std::string::npos) break;
    a = dot + 1;
  }
  std::uniform_int_distribution<int> die(0, 5);
  std::string pattern;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const int roll = die(rng);
    if (roll == 0 && i + 1 == parts.size()) parts[i] = ">";
    else if (roll == 1) parts[i] = "*";
    pattern += (i ? "." : "") + parts[i];
  }
  return pattern;
}

}  // namespace

TEST_CASE("bus: selecting subscribers get exactly the frames their patterns match, as a brute-force reference says",
          "[bus][select]") {
  std::mt19937 rng(GENERATE(1u, 2u, 3u));
  Bus bus(StreamId{"feed", 7}, nullptr);
  struct Subscriber {
    QueuePtr queue;
    std::vector<std::string> patterns;
    std::vector<std::uint64_t> expected;
    std::uint64_t from = 1;  // subscribed before the frame of this seq
  };
  std::vector<Subscriber> subscribers;
  QueuePtr everything = newQueue("everything");
  bus.subscribe(everything);

  std::uint64_t seq = 0;
  std::vector<std::pair<std::uint64_t, std::optional<std::string>>> published;
  for (int round = 0; round < 40; ++round) {
    // Subscribers come (with one to three patterns, overlapping on purpose) and go between batches.
    if (round % 4 == 0) {
      Subscriber s;
      s.queue = newQueue("s" + std::to_string(round));
      const int count = std::uniform_int_distribution<int>(1, 3)(rng);
      for (int i = 0; i < count; ++i) s.patterns.push_back(randomPattern(rng));
      s.from = seq + 1;
      bus.subscribe(s.queue, 0, s.patterns);
      subscribers.push_back(std::move(s));
    }
    if (round % 10 == 9) {
      bus.unsubscribe(subscribers.front().queue.get());
      taken(*subscribers.front().queue);  // what it got before is not checked again
      subscribers.erase(subscribers.begin());
    }
    std::vector<std::optional<std::string>> keys;
    const int frames = std::uniform_int_distribution<int>(1, 50)(rng);
    for (int i = 0; i < frames; ++i) {
      if (std::uniform_int_distribution<int>(0, 9)(rng) == 0) keys.push_back(std::nullopt);  // no key
      else keys.push_back(randomKey(rng));
    }
    for (const auto& key : keys) published.emplace_back(++seq, key);
    bus.publish(keyedBatch(keys));
    for (Subscriber& s : subscribers) {
      for (const auto& [frameSeq, key] : published) {
        if (frameSeq < s.from || !key) continue;
        if (std::any_of(s.patterns.begin(), s.patterns.end(),
                        [&](const std::string& p) { return subject::matches(p, *key); }))
          s.expected.push_back(frameSeq);
      }
      std::vector<std::uint64_t> got = taken(*s.queue);
      INFO("patterns " << s.patterns.front() << " (" << s.patterns.size() << ")");
      CHECK(got == s.expected);
      s.expected.clear();
      s.from = seq + 1;
    }
    published.erase(published.begin(), published.end());
  }
  CHECK(taken(*everything).size() == seq);  // a subscriber without select gets every frame, keyed or not
  CHECK(bus.selectionCounts().subscriptions == subscribers.size());
}

TEST_CASE("bus: a selecting subscriber's replay and resume take only its frames, then live with no gap", "[bus][select]") {
  ReplayLimits ring;
  ring.maxFrames = 100;
  Bus bus(StreamId{"feed", 7}, nullptr, ring);
  bus.publish(keyedBatch({std::string("a.1"), std::string("b.1"), std::nullopt, std::string("a.2")}));  // seqs 1-4
  bus.publish(keyedBatch({std::string("b.2"), std::string("a.3")}));                                     // 5-6

  QueuePtr resumed = newQueue("resumed");
  const Bus::Start start = bus.subscribeAfter(resumed, 1, 0, {"a.*"});
  CHECK(start.recovered);
  QueuePtr replayed = newQueue("replayed");
  bus.subscribe(replayed, 3, {"b.>"});
  bus.publish(keyedBatch({std::string("a.4"), std::string("b.3")}));  // 7-8
  CHECK(taken(*resumed) == std::vector<std::uint64_t>{4, 6, 7});
  // The newest 3 frames of the ring are 4-6; of them only 5 is b.*.
  CHECK(taken(*replayed) == std::vector<std::uint64_t>{5, 8});
}

TEST_CASE("bus: an unsubscribed selecting queue gets nothing more and leaves the index", "[bus][select]") {
  Bus bus(StreamId{"feed", 7}, nullptr);
  QueuePtr q = newQueue("q");
  bus.subscribe(q, 0, {"a", "a.>", "*"});
  CHECK(bus.selectionCounts().patterns == 3);
  bus.publish(keyedBatch({std::string("a")}));
  bus.unsubscribe(q.get());
  bus.publish(keyedBatch({std::string("a")}));
  CHECK(taken(*q) == std::vector<std::uint64_t>{1});  // once, though two of its patterns matched
  CHECK(bus.selectionCounts().subscriptions == 0);
  CHECK(bus.selectionCounts().patterns == 0);
}

TEST_CASE("bus: a snapshot gives the newest frame of each selected key, flagged, then live with no gap per key",
          "[bus][select][snapshot]") {
  BusOptions options;
  options.lastValueKeys = 100;
  Bus bus(StreamId{"feed", 7}, nullptr, options);
  bus.publish(keyedBatch({std::string("md.eu.BTC"), std::string("md.us.BTC"), std::string("md.eu.ETH")}));  // 1-3
  bus.publish(keyedBatch({std::string("md.eu.BTC"), std::nullopt, std::string("x")}));                      // 4-6

  QueuePtr q = newQueue("q");
  const Bus::Start start = bus.subscribeAfter(q, std::nullopt, 0, {"md.*.BTC"}, true);
  CHECK(start.firstSeq == 2);
  bus.publish(keyedBatch({std::string("md.us.BTC"), std::string("md.eu.ETH")}));  // 7-8
  std::deque<FrameSpan> spans;
  q->takeAll(spans);
  std::vector<std::pair<std::uint64_t, std::uint16_t>> got;
  for (const FrameSpan& s : spans)
    for (std::uint32_t i = s.first; i < s.end; ++i) got.emplace_back(s.batch->seq(i), s.flags);
  // md.us.BTC's newest (2) and md.eu.BTC's (4) as a snapshot, in seq order, then live md.us.BTC (7).
  CHECK(got == std::vector<std::pair<std::uint64_t, std::uint16_t>>{{2, 1}, {4, 1}, {7, 0}});
}

TEST_CASE("bus: last values keep at most max_keys keys, the least recently updated going first", "[bus][snapshot]") {
  BusOptions options;
  options.lastValueKeys = 2;
  Bus bus(StreamId{"feed", 7}, nullptr, options);
  bus.publish(keyedBatch({std::string("a"), std::string("b"), std::string("a"), std::string("c")}));  // b goes
  CHECK(bus.lastValueCounts().keys == 2);
  CHECK(bus.lastValueCounts().evictions == 1);
  QueuePtr q = newQueue("q");
  bus.subscribeAfter(q, std::nullopt, 0, {}, true);
  CHECK(taken(*q) == std::vector<std::uint64_t>{3, 4});
}
