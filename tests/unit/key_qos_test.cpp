// SPDX-License-Identifier: Apache-2.0
// Per-subscriber rate and conflation: a listener queue with on_full conflate
// keeps the newest frame per key once full; a hello's max_rate_per_key lets
// at most one frame per key per interval through, the newest, the last one
// always (KeyRateLimiter, with time given, not slept).
#include <catch2/catch.hpp>

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <set>

#include "bus.hpp"
#include "key_rate_limiter.hpp"
#include "streamrelay/wire.hpp"

using namespace streamrelay;

namespace {

// Frames with these keys (nullopt: none); each frame's payload is `tag` + its index.
std::unique_ptr<FrameBatch> batchOf(const std::vector<std::optional<std::string>>& keys, const std::string& tag) {
  FrameBatchBuilder builder;
  FrameKeys frameKeys;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const std::string payload = tag + std::to_string(i);
    builder.add(payload.data(), payload.size());
    if (keys[i]) frameKeys.add(*keys[i]);
    else frameKeys.addNone();
  }
  auto batch = builder.seal(0);
  batch->setKeys(std::move(frameKeys));
  return batch;
}

struct Got {
  std::uint64_t seq;
  std::string payload;
  std::uint16_t flags;
  bool operator==(const Got& o) const { return seq == o.seq && payload == o.payload && flags == o.flags; }
};
std::ostream& operator<<(std::ostream& os, const Got& g) {
  return os << "{" << g.seq << " " << g.payload << " flags " << g.flags << "}";
}

std::vector<Got> flatten(const std::deque<FrameSpan>& spans) {
  std::vector<Got> out;
  for (const FrameSpan& s : spans)
    for (std::uint32_t i = s.first; i < s.end; ++i)
      out.push_back({s.batch->seq(i), std::string(s.batch->payload(i)), s.flags});
  return out;
}

std::vector<Got> takeAll(SubscriptionQueue& queue) {
  std::deque<FrameSpan> spans;
  queue.takeAll(spans);
  return flatten(spans);
}

QueuePtr conflatingQueue(std::size_t maxFrames, std::size_t maxBytes = 0) {
  return std::make_shared<SubscriptionQueue>("conflating", QueueLimits{maxFrames, maxBytes, OverflowPolicy::Conflate},
                                             [] {});
}

constexpr std::int64_t kMs = 1000000;

}  // namespace

TEST_CASE("conflate: a stalled subscriber ends with the newest frame per key, another of the bus gets every frame",
          "[queue][qos]") {
  Bus bus(StreamId{"feed", 1}, nullptr);
  const std::size_t limit = 20;
  QueuePtr stalled = conflatingQueue(limit);
  QueuePtr everything = std::make_shared<SubscriptionQueue>("all", QueueLimits{0, 0, OverflowPolicy::Disconnect}, [] {});
  bus.subscribe(stalled);
  bus.subscribe(everything);

  std::mt19937 rng(7);
  const int keys = 30;  // more keys than the limit: once full, every push conflates
  std::map<std::string, std::uint64_t> newest;  // key -> seq of its newest frame
  std::map<std::string, int> count;
  std::uint64_t seq = 0;
  int batches = 0;
  while (seq < 10 * limit) {  // 10x the limit, while the subscriber reads nothing
    std::vector<std::optional<std::string>> batchKeys;
    const int frames = std::uniform_int_distribution<int>(1, 9)(rng);
    for (int i = 0; i < frames; ++i) {
      const std::string key = "k" + std::to_string(std::uniform_int_distribution<int>(0, keys - 1)(rng));
      batchKeys.push_back(key);
      newest[key] = ++seq;
      ++count[key];
    }
    bus.publish(batchOf(batchKeys, "b" + std::to_string(batches++) + "."));
    // Bounded by the keys waiting (plus, below the limit, one batch).
    CHECK(stalled->queuedFrames() <= static_cast<std::size_t>(keys));
  }

  std::vector<Got> got = takeAll(*stalled);
  std::vector<std::pair<std::uint64_t, std::string>> expected;  // (seq, key) in seq order
  for (const auto& [key, s] : newest) expected.emplace_back(s, key);
  std::sort(expected.begin(), expected.end());
  REQUIRE(got.size() == expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("key " << expected[i].second << ", frame " << got[i]);
    CHECK(got[i].seq == expected[i].first);
    CHECK(got[i].flags == (count[expected[i].second] > 1 ? wire::kFlagConflated : 0));
  }
  CHECK(stalled->counters().enqueued == seq);
  CHECK(stalled->counters().conflated == seq - newest.size());
  CHECK(stalled->counters().dropped == 0);
  CHECK_FALSE(stalled->closed());

  std::vector<Got> all = takeAll(*everything);
  REQUIRE(all.size() == seq);
  for (std::size_t i = 0; i < all.size(); ++i) {
    CHECK(all[i].seq == i + 1);
    CHECK(all[i].flags == 0);
  }

  // Reading again, it gets every frame while it keeps up.
  bus.publish(batchOf({std::string("k1"), std::string("k1")}, "after."));
  CHECK(takeAll(*stalled).size() == 2);
}

TEST_CASE("conflate: below its limits a queue keeps every frame, frames without a key go oldest first",
          "[queue][qos]") {
  QueuePtr queue = conflatingQueue(4);
  auto push = [&](std::unique_ptr<FrameBatch> batch, std::uint64_t firstSeq) {
    batch->assignFirstSeq(firstSeq);
    queue->push(FrameBatchPtr(std::move(batch)));
  };
  const std::optional<std::string> none;
  // a1 -1 -2 b1: at the limit, nothing conflated yet.
  push(batchOf({std::string("a"), none, none, std::string("b")}, "x"), 1);
  CHECK(queue->queuedFrames() == 4);
  CHECK(queue->counters().conflated == 0);
  // Then -3 a2: a2 replaces a1; of the five left, the oldest keyless goes.
  push(batchOf({none, std::string("a")}, "y"), 5);
  CHECK(takeAll(*queue) == std::vector<Got>{{3, "x2", 0}, {4, "x3", 0}, {5, "y0", 0}, {6, "y1", wire::kFlagConflated}});
  CHECK(queue->counters().conflated == 1);
  CHECK(queue->counters().dropped == 1);
  CHECK(queue->counters().enqueued == 6);
  CHECK(std::string(toString(OverflowPolicy::Conflate)) == "conflate");
}

TEST_CASE("conflate: max_bytes triggers it as max_frames does, and a frame's earlier flags are kept", "[queue][qos]") {
  QueuePtr queue = conflatingQueue(0, 10);  // each frame below is 4 + 2 bytes
  auto b1 = FrameBatchPtr(batchOf({std::string("a"), std::string("b")}, "s"));
  queue->preload({FrameSpan{b1, 0, 2, wire::kFlagSnapshot}});
  queue->push(FrameBatchPtr(batchOf({std::string("b")}, "t")));
  const std::vector<Got> got = takeAll(*queue);
  REQUIRE(got.size() == 2);
  CHECK(got[0].payload == "s0");
  CHECK(got[0].flags == wire::kFlagSnapshot);
  CHECK(got[1].payload == "t0");
  CHECK(got[1].flags == wire::kFlagConflated);
}

TEST_CASE("max_rate_per_key: one frame per key per interval, the newest, flagged if it replaced others",
          "[qos][rate]") {
  KeyRateLimiter limiter(std::chrono::milliseconds(100));
  std::deque<FrameSpan> out;
  auto admit = [&](std::unique_ptr<FrameBatch> batch, std::int64_t now) {
    FrameBatchPtr shared(std::move(batch));
    std::deque<FrameSpan> taken{FrameSpan{shared, 0, static_cast<std::uint32_t>(shared->frameCount()), 0}};
    return limiter.admit(taken, out, now);
  };
  auto drained = [&] {
    std::vector<Got> got = flatten(out);
    out.clear();
    return got;
  };
  const std::optional<std::string> none;
  const std::string a = "a", b = "b";

  CHECK(admit(batchOf({a, b, none}, "t0."), 0) == 0);  // the first of each key goes at once
  CHECK(drained() == std::vector<Got>{{0, "t0.0", 0}, {1, "t0.1", 0}, {2, "t0.2", 0}});
  CHECK(limiter.nextReleaseNs() == 0);

  CHECK(admit(batchOf({a, none}, "t10."), 10 * kMs) == 0);  // a held; a frame without a key is not limited
  CHECK(drained() == std::vector<Got>{{1, "t10.1", 0}});
  CHECK(limiter.nextReleaseNs() == 100 * kMs);
  CHECK(admit(batchOf({a, b}, "t20."), 20 * kMs) == 1);  // the newer a replaces the held one
  CHECK(limiter.heldFrames() == 2);
  limiter.release(out, 99 * kMs);
  CHECK(out.empty());
  limiter.release(out, 100 * kMs);
  CHECK(drained() == std::vector<Got>{{0, "t20.0", wire::kFlagConflated}, {1, "t20.1", 0}});
  CHECK(limiter.nextReleaseNs() == 0);

  // Sending a held frame opened the next interval: a's next frame waits for it.
  CHECK(admit(batchOf({a}, "t150."), 150 * kMs) == 0);
  CHECK(out.empty());
  CHECK(limiter.nextReleaseNs() == 200 * kMs);
  limiter.release(out, 200 * kMs);
  CHECK(drained() == std::vector<Got>{{0, "t150.0", 0}});
  // After a quiet interval, a frame goes at once.
  CHECK(admit(batchOf({a}, "t400."), 400 * kMs) == 0);
  CHECK(drained() == std::vector<Got>{{0, "t400.0", 0}});
  // Draining: what is held goes now.
  CHECK(admit(batchOf({a, a}, "t410."), 410 * kMs) == 1);
  limiter.releaseAll(out);
  CHECK(drained() == std::vector<Got>{{1, "t410.1", wire::kFlagConflated}});
}

TEST_CASE("max_rate_per_key: random traffic never gets two frames of a key within an interval, and the last of each key",
          "[qos][rate]") {
  const std::int64_t interval = 50 * kMs;
  KeyRateLimiter limiter(std::chrono::milliseconds(50));
  std::mt19937 rng(GENERATE(1u, 2u, 3u));
  std::map<std::string, std::int64_t> lastSentAt;
  std::map<std::string, std::string> lastPublished, lastSent;
  std::uint64_t published = 0, sent = 0, skipped = 0;
  std::int64_t now = 0;
  std::deque<FrameSpan> out;
  auto collect = [&] {
    for (const FrameSpan& s : out)
      for (std::uint32_t i = s.first; i < s.end; ++i) {
        const std::string key(s.batch->key(i));
        if (lastSentAt.count(key)) CHECK(now - lastSentAt[key] >= interval);
        lastSentAt[key] = now;
        lastSent[key] = std::string(s.batch->payload(i));
        ++sent;
      }
    out.clear();
  };
  for (int round = 0; round < 2000; ++round) {
    now += std::uniform_int_distribution<int>(0, 20)(rng) * kMs;
    limiter.release(out, now);
    std::vector<std::optional<std::string>> keys;
    const int frames = std::uniform_int_distribution<int>(0, 5)(rng);
    for (int i = 0; i < frames; ++i) keys.push_back("k" + std::to_string(std::uniform_int_distribution<int>(0, 7)(rng)));
    const std::string tag = "r" + std::to_string(round) + ".";
    for (int i = 0; i < frames; ++i) lastPublished[*keys[i]] = tag + std::to_string(i);
    published += frames;
    if (frames > 0) {
      auto batch = FrameBatchPtr(batchOf(keys, tag));
      std::deque<FrameSpan> taken{FrameSpan{batch, 0, static_cast<std::uint32_t>(frames), 0}};
      skipped += limiter.admit(taken, out, now);
    }
    collect();
    if (const std::int64_t next = limiter.nextReleaseNs()) CHECK(next > now);
  }
  // When the last intervals end, the newest frame of every key has arrived.
  now += interval;
  limiter.release(out, now);
  collect();
  CHECK(limiter.heldFrames() == 0);
  CHECK(lastSent == lastPublished);
  CHECK(sent + skipped == published);
  CHECK(skipped > 0);
}

TEST_CASE("conflate: with more distinct keys waiting than twice the limits hold, the subscriber is cut as slow",
          "[queue][qos]") {
  QueuePtr queue = conflatingQueue(5);
  std::vector<std::optional<std::string>> keys;
  for (int i = 0; i < 8; ++i) keys.push_back("k" + std::to_string(i));
  FrameBatchPtr first(batchOf(keys, "a."));
  queue->push(first);  // 8 frames: admitted whole while below the limit
  CHECK_FALSE(queue->closed());
  keys.clear();
  for (int i = 8; i < 12; ++i) keys.push_back("k" + std::to_string(i));
  FrameBatchPtr second(batchOf(keys, "b."));
  queue->push(second);  // 12 distinct keys waiting, more than 2 x 5: conflation cannot bound it
  CHECK(queue->closeReason() == CloseReason::SlowConsumer);
  CHECK(queue->queuedFrames() == 0);
}
