// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <atomic>
#include <random>
#include <thread>

#include "bus.hpp"
#include "replay_ring.hpp"

using namespace streamrelay;
using namespace std::chrono_literals;

namespace {

// A batch of `count` frames of `size` bytes numbered from `firstSeq`,
// received `age` ago.
FrameBatchPtr makeBatch(std::size_t count, std::size_t size, std::uint64_t firstSeq,
                        std::chrono::nanoseconds age = 0ns) {
  FrameBatchBuilder builder;
  std::string payload(size, 'x');
  for (std::size_t i = 0; i < count; ++i) builder.add(payload.data(), payload.size());
  auto batch = builder.seal(0, steadyNowNs() - age.count());
  batch->assignFirstSeq(firstSeq);
  return FrameBatchPtr(std::move(batch));
}

std::vector<std::uint64_t> seqsOf(const std::vector<FrameSpan>& spans) {
  std::vector<std::uint64_t> seqs;
  for (const FrameSpan& s : spans)
    for (std::uint32_t i = s.first; i < s.end; ++i) seqs.push_back(s.batch->seq(i));
  return seqs;
}

std::vector<std::uint64_t> range(std::uint64_t first, std::uint64_t last) {
  std::vector<std::uint64_t> seqs;
  for (std::uint64_t s = first; s <= last; ++s) seqs.push_back(s);
  return seqs;
}

ReplayLimits ring(std::size_t frames, std::size_t bytes, std::chrono::milliseconds age = 0ms) {
  ReplayLimits l;
  l.maxFrames = frames;
  l.maxBytes = bytes;
  l.maxAge = age;
  return l;
}

}  // namespace

TEST_CASE("a replay ring keeps the newest frames in whole shared batches", "[replay]") {
  std::vector<FrameBatchPtr> evicted;
  SECTION("frames: the fewest newest batches that cover max_frames") {
    ReplayRing r(ring(10, 0));
    for (std::uint64_t b = 0; b < 5; ++b) r.append(makeBatch(4, 8, 1 + 4 * b), evicted);
    CHECK(r.frames() == 12);  // batches 9..12, 13..16, 17..20
    CHECK(evicted.size() == 2);
    CHECK(seqsOf(r.newest(10)) == range(11, 20));
    CHECK(seqsOf(r.newest(100)) == range(9, 20));
    CHECK(seqsOf(r.newest(1)) == range(20, 20));
    CHECK(r.newest(0).empty());
  }
  SECTION("bytes: a hard bound, oldest batches go first") {
    const std::size_t batchBytes = 4 * (8 + kWireHeaderBytes);
    ReplayRing r(ring(0, 3 * batchBytes));
    for (std::uint64_t b = 0; b < 5; ++b) r.append(makeBatch(4, 8, 1 + 4 * b), evicted);
    CHECK(r.bytes() == 3 * batchBytes);
    CHECK(seqsOf(r.newest(100)) == range(9, 20));
    r.append(makeBatch(1, 10 * batchBytes, 21), evicted);  // larger than the bound: nothing is kept
    CHECK(r.frames() == 0);
    CHECK(r.newest(5).empty());
  }
  SECTION("age: frames older than max_age are let go") {
    ReplayRing r(ring(0, 0, 5000ms));
    r.append(makeBatch(3, 8, 1, 10s), evicted);
    r.append(makeBatch(3, 8, 4, 1s), evicted);
    CHECK(seqsOf(r.newest(100)) == range(4, 6));
  }
  SECTION("the ring shares the published batches, it does not copy them") {
    ReplayRing r(ring(100, 0));
    FrameBatchPtr batch = makeBatch(3, 8, 1);
    r.append(batch, evicted);
    CHECK(r.newest(3).front().batch.get() == batch.get());
  }
}

// The seam: a subscriber that asks for N frames of replay while the stream is
// published as fast as one thread can gets N frames from the ring, then live
// frames, with no gap and no frame twice.
TEST_CASE("a replay meets the live stream without gap or duplicate under load", "[replay]") {
  constexpr std::size_t kReplay = 500;
  constexpr std::size_t kMaxBatch = 50;
  Bus bus(StreamId{"s", 1}, nullptr, ring(1000, 0));
  std::atomic<bool> stop{false};
  std::thread publisher([&] {
    bus.claimPublisher();  // this thread is the stream's one publisher from now on
    std::mt19937 random(7);
    std::uniform_int_distribution<std::size_t> frames(1, kMaxBatch);
    FrameBatchBuilder builder;
    while (!stop.load()) {
      for (std::size_t n = frames(random); n > 0; --n) builder.add("frame", 5);
      bus.publish(builder.seal(0));
    }
  });
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (bus.lastSeq() < 5000 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  REQUIRE(bus.lastSeq() >= 5000);

  for (int round = 0; round < 100; ++round) {
    QueueLimits unbounded;
    unbounded.maxFrames = 0;
    unbounded.maxBytes = std::size_t{1} << 34;
    auto queue = std::make_shared<SubscriptionQueue>("q", unbounded, [] {});
    const std::uint64_t before = bus.lastSeq();
    bus.subscribe(queue, kReplay);
    const std::uint64_t after = bus.lastSeq();
    std::vector<std::uint64_t> seqs;
    std::deque<FrameSpan> spans;
    while (seqs.size() < 3 * kReplay && queue->waitForFrames(std::chrono::steady_clock::now() + 10s)) {
      spans.clear();
      queue->takeAll(spans);
      for (const FrameSpan& s : spans)
        for (std::uint32_t i = s.first; i < s.end; ++i) seqs.push_back(s.batch->seq(i));
    }
    bus.unsubscribe(queue.get());
    INFO("round " << round << ", subscribed between seq " << before << " and " << after);
    REQUIRE(seqs.size() >= 3 * kReplay);
    // The newest kReplay frames at the moment of subscribing (a seq may be
    // taken by a batch not yet in the ring: hence kMaxBatch of slack)...
    CHECK(seqs.front() + kReplay - 1 + kMaxBatch >= before);
    CHECK(seqs.front() + kReplay - 1 <= after);
    // ...then every frame once, in order.
    for (std::size_t i = 1; i < seqs.size(); ++i)
      if (seqs[i] != seqs[i - 1] + 1) FAIL("seq " << seqs[i - 1] << " then " << seqs[i]);
  }
  stop = true;
  publisher.join();
}

TEST_CASE("a stream without a ring replays nothing", "[replay]") {
  Bus bus(StreamId{"s", 1}, nullptr);
  FrameBatchBuilder builder;
  builder.add("a", 1);
  bus.publish(builder.seal(0));
  auto queue = std::make_shared<SubscriptionQueue>("q", QueueLimits{}, [] {});
  bus.subscribe(queue, 10);
  CHECK(queue->queuedFrames() == 0);
  CHECK(bus.replayHeld() == std::make_pair(std::size_t{0}, std::size_t{0}));
}

namespace {
// Publishes `batches` batches of `perBatch` one-byte frames (seqs from 1).
void publishFrames(Bus& bus, int batches, int perBatch) {
  for (int b = 0; b < batches; ++b) {
    FrameBatchBuilder builder;
    for (int i = 0; i < perBatch; ++i) builder.add("x", 1);
    bus.publish(builder.seal(0));
  }
}

std::vector<std::uint64_t> queuedSeqs(SubscriptionQueue& queue) {
  std::deque<FrameSpan> spans;
  queue.takeAll(spans);
  return seqsOf({spans.begin(), spans.end()});
}
}  // namespace

TEST_CASE("a resume continues right after the seq asked for while the ring holds it", "[replay][resume]") {
  Bus bus(StreamId{"s", 1}, nullptr, ring(100, 0));
  publishFrames(bus, 30, 10);  // seqs 1..300, the ring holds 201..300
  auto queue = std::make_shared<SubscriptionQueue>("q", QueueLimits{}, [] {});

  SECTION("inside the ring, mid-batch") {
    Bus::Start start = bus.subscribeAfter(queue, 254, 0);
    CHECK(start.recovered);
    CHECK(start.firstSeq == 255);
    publishFrames(bus, 1, 10);
    CHECK(queuedSeqs(*queue) == range(255, 310));
  }
  SECTION("at the newest frame: live frames only") {
    Bus::Start start = bus.subscribeAfter(queue, 300, 0);
    CHECK(start.recovered);
    CHECK(start.firstSeq == 301);
    publishFrames(bus, 1, 10);
    CHECK(queuedSeqs(*queue) == range(301, 310));
  }
  SECTION("older than the ring: not recovered, starts where the listener's replay starts") {
    Bus::Start start = bus.subscribeAfter(queue, 150, 50);
    CHECK_FALSE(start.recovered);
    CHECK(start.firstSeq == 251);
    CHECK(queuedSeqs(*queue) == range(251, 300));
  }
  SECTION("older than the ring, no listener replay: starts live") {
    Bus::Start start = bus.subscribeAfter(queue, 150, 0);
    CHECK_FALSE(start.recovered);
    CHECK(start.firstSeq == 301);
  }
  SECTION("a seq this run never reached (a client of another run): not recovered") {
    Bus::Start start = bus.subscribeAfter(queue, 5000, 0);
    CHECK_FALSE(start.recovered);
    CHECK(start.firstSeq == 301);
  }
  SECTION("another epoch (no seq): not recovered") {
    Bus::Start start = bus.subscribeAfter(queue, std::nullopt, 0);
    CHECK_FALSE(start.recovered);
    CHECK(start.firstSeq == 301);
  }
}

TEST_CASE("a resume at the newest seq recovers without a ring", "[replay][resume]") {
  Bus bus(StreamId{"s", 1}, nullptr);
  publishFrames(bus, 3, 10);
  auto queue = std::make_shared<SubscriptionQueue>("q", QueueLimits{}, [] {});
  CHECK(bus.subscribeAfter(queue, 30, 0).recovered);
  auto other = std::make_shared<SubscriptionQueue>("q2", QueueLimits{}, [] {});
  Bus::Start start = bus.subscribeAfter(other, 29, 0);
  CHECK_FALSE(start.recovered);
  CHECK(start.firstSeq == 31);
}

TEST_CASE("a stream that starts at a given seq (a logged stream after a restart) numbers on from it", "[replay][resume]") {
  BusOptions options(ring(100, 0));
  options.firstSeq = 501;
  Bus bus(StreamId{"s", 7}, nullptr, options);
  CHECK(bus.lastSeq() == 500);
  // A client that saw seq 500 of this epoch before the restart continues with 501.
  auto queue = std::make_shared<SubscriptionQueue>("q", QueueLimits{}, [] {});
  const Bus::Start start = bus.subscribeAfter(queue, 500, 0);
  CHECK(start.recovered);
  CHECK(start.firstSeq == 501);
  publishFrames(bus, 2, 10);
  CHECK(bus.lastSeq() == 520);
  std::deque<FrameSpan> spans;
  queue->takeAll(spans);
  std::vector<std::uint64_t> seqs;
  for (const FrameSpan& s : spans)
    for (std::uint32_t i = s.first; i < s.end; ++i) seqs.push_back(s.batch->seq(i));
  CHECK(seqs == range(501, 520));
  CHECK(spans.front().batch->stream()->epoch == 7);
}

TEST_CASE("a backfill hands over to the ring and the live frames only where nothing is missing between",
          "[replay][resume]") {
  Bus bus(StreamId{"s", 1}, nullptr, ring(100, 0));
  publishFrames(bus, 30, 10);  // seqs 1..300, the ring holds 201..300
  auto queue = std::make_shared<SubscriptionQueue>("q", QueueLimits{}, [] {});

  SECTION("older than the ring: nothing done, not subscribed") {
    CHECK_FALSE(bus.continueAfter(queue, 150, {}));
    publishFrames(bus, 1, 10);
    CHECK(queuedSeqs(*queue).empty());
  }
  SECTION("inside the ring: its frames after the seq, then live") {
    CHECK(bus.continueAfter(queue, 254, {}));
    publishFrames(bus, 1, 10);
    CHECK(queuedSeqs(*queue) == range(255, 310));
  }
  SECTION("at the newest frame: live only") {
    CHECK(bus.continueAfter(queue, 300, {}));
    publishFrames(bus, 1, 10);
    CHECK(queuedSeqs(*queue) == range(301, 310));
  }
  SECTION("its subscriber gone meanwhile (the queue closed): done, never subscribed") {
    queue->close(CloseReason::PeerClosed);
    CHECK(bus.continueAfter(queue, 254, {}));
    CHECK(bus.queues().empty());
  }
}

TEST_CASE("a ring kept for the hand-over from a log is not replayed to new subscribers", "[replay][resume]") {
  BusOptions options;
  options.handOverBytes = 1 << 20;
  Bus bus(StreamId{"s", 1}, nullptr, options);
  publishFrames(bus, 3, 10);
  auto queue = std::make_shared<SubscriptionQueue>("q", QueueLimits{}, [] {});
  const Bus::Start start = bus.subscribeAfter(queue, std::nullopt, 100);
  CHECK(start.firstSeq == 31);
  CHECK(queuedSeqs(*queue).empty());
  CHECK(bus.replayHeld().first == 30);   // held, for a resume or a hand-over
  auto resumed = std::make_shared<SubscriptionQueue>("r", QueueLimits{}, [] {});
  CHECK(bus.subscribeAfter(resumed, 12, 0).recovered);
  CHECK(queuedSeqs(*resumed) == range(13, 30));
}

TEST_CASE("a ring keeps at least its hand-over bytes whatever its limits", "[replay][resume]") {
  std::vector<FrameBatchPtr> evicted;
  ReplayRing r(ring(10, 100), 1000);
  for (std::uint64_t b = 0; b < 50; ++b) r.append(makeBatch(4, 16, 1 + 4 * b), evicted);
  CHECK(r.bytes() >= 1000);
  CHECK(r.bytes() < 1000 + 4 * 20);  // no more than one batch beyond it
  CHECK(seqsOf(*r.after(150)) == range(151, 200));
  CHECK(seqsOf(r.newest(10)) == range(191, 200));  // a listener's replay: still what it asks
}
