// SPDX-License-Identifier: Apache-2.0
// Bus::publishAt: a mirror's stream keeps its upstream's (epoch, seq); a
// jump is a gap no resume crosses; another epoch starts the stream anew.
#include <catch2/catch.hpp>

#include "bus.hpp"

using namespace streamrelay;

namespace {

std::unique_ptr<FrameBatch> frames(int count) {
  FrameBatchBuilder builder;
  for (int i = 0; i < count; ++i) builder.add("x", 1);
  return builder.seal(0);
}

std::vector<std::uint64_t> taken(SubscriptionQueue& queue, std::vector<std::uint64_t>* epochs = nullptr) {
  std::deque<FrameSpan> spans;
  queue.takeAll(spans);
  std::vector<std::uint64_t> seqs;
  for (const FrameSpan& s : spans)
    for (std::uint32_t i = s.first; i < s.end; ++i) {
      seqs.push_back(s.batch->seq(i));
      if (epochs) epochs->push_back(s.batch->stream()->epoch);
    }
  return seqs;
}

std::vector<std::uint64_t> range(std::uint64_t first, std::uint64_t last) {
  std::vector<std::uint64_t> seqs;
  for (std::uint64_t s = first; s <= last; ++s) seqs.push_back(s);
  return seqs;
}

QueuePtr newQueue() { return std::make_shared<SubscriptionQueue>("q", QueueLimits{}, [] {}); }

ReplayLimits ringOf(std::size_t frames) {
  ReplayLimits l;
  l.maxFrames = frames;
  return l;
}

}  // namespace

TEST_CASE("a mirror publishes its upstream's seqs and epoch", "[bus][mirror]") {
  Bus bus(StreamId{"m", 1}, nullptr, ringOf(1000));
  auto live = newQueue();
  bus.subscribe(live);
  bus.publishAt(frames(10), 77, 41);  // the upstream's epoch 77, seqs 41..50
  CHECK(bus.stream().epoch == 77);
  CHECK(bus.lastSeq() == 50);
  bus.publishAt(frames(5), 77, 51);
  std::vector<std::uint64_t> epochs;
  CHECK(taken(*live, &epochs) == range(41, 55));
  CHECK(epochs == std::vector<std::uint64_t>(15, 77));
  CHECK(bus.gaps() == 0);

  // A subscriber of the mirror resumes in the upstream's numbering.
  auto resumed = newQueue();
  const Bus::Start start = bus.subscribeAfter(resumed, 44, 0, {}, false, 77);
  CHECK(start.recovered);
  CHECK(start.epoch == 77);
  CHECK(taken(*resumed) == range(45, 55));
}

TEST_CASE("a jump in a mirror's seqs is a gap: counted, never replayed over", "[bus][mirror]") {
  Bus bus(StreamId{"m", 1}, nullptr, ringOf(1000));
  bus.publishAt(frames(10), 5, 1);    // 1..10
  bus.publishAt(frames(10), 5, 31);   // 31..40: 11..30 never came
  CHECK(bus.gaps() == 1);
  CHECK(bus.framesSkipped() == 20);
  CHECK(bus.lastSeq() == 40);

  SECTION("a resume from before the gap is not recovered") {
    auto queue = newQueue();
    const Bus::Start start = bus.subscribeAfter(queue, 5, 0, {}, false, 5);
    CHECK_FALSE(start.recovered);
    CHECK(start.firstSeq == 41);
  }
  SECTION("a resume from inside the gap is not recovered") {
    auto queue = newQueue();
    const Bus::Start start = bus.subscribeAfter(queue, 20, 0, {}, false, 5);
    CHECK_FALSE(start.recovered);
  }
  SECTION("a resume after the gap is") {
    auto queue = newQueue();
    const Bus::Start start = bus.subscribeAfter(queue, 32, 0, {}, false, 5);
    CHECK(start.recovered);
    CHECK(taken(*queue) == range(33, 40));
  }
  SECTION("a replay of the newest frames still gives what the ring holds, in order") {
    auto queue = newQueue();
    bus.subscribe(queue, 15);
    std::vector<std::uint64_t> expected = range(6, 10);
    for (std::uint64_t s = 31; s <= 40; ++s) expected.push_back(s);
    CHECK(taken(*queue) == expected);
  }
}

TEST_CASE("another upstream epoch starts a mirror's stream anew", "[bus][mirror]") {
  Bus bus(StreamId{"m", 1}, nullptr, ringOf(1000));
  bus.publishAt(frames(10), 5, 1);  // epoch 5: 1..10
  auto live = newQueue();
  bus.subscribe(live);
  bus.publishAt(frames(3), 9, 1);   // the upstream restarted: epoch 9 from 1
  CHECK(bus.stream().epoch == 9);
  CHECK(bus.lastSeq() == 3);
  CHECK(bus.gaps() == 0);
  CHECK(bus.replayHeld().first == 3);  // the old epoch's frames are gone from the ring
  std::vector<std::uint64_t> epochs;
  CHECK(taken(*live, &epochs) == range(1, 3));
  CHECK(epochs == std::vector<std::uint64_t>(3, 9));

  SECTION("a resume in the old epoch is not recovered, though its seq exists in the new one") {
    auto queue = newQueue();
    const Bus::Start start = bus.subscribeAfter(queue, 2, 0, {}, false, 5);
    CHECK_FALSE(start.recovered);
    CHECK(start.epoch == 9);
    CHECK(start.firstSeq == 4);
  }
  SECTION("a resume in the new one is") {
    auto queue = newQueue();
    const Bus::Start start = bus.subscribeAfter(queue, 1, 0, {}, false, 9);
    CHECK(start.recovered);
    CHECK(taken(*queue) == range(2, 3));
  }
}

TEST_CASE("a new epoch closes the remote subscriptions of the old one, not the in-process ones", "[bus][mirror]") {
  Bus bus(StreamId{"m", 1}, nullptr, ringOf(1000));
  bus.publishAt(frames(4), 5, 1);
  auto remote = newQueue();  // a hello's subscription: its frames name no epoch
  bus.subscribeAfter(remote, std::nullopt, 0);
  auto plugin = newQueue();  // a plugin's or the log's: frames carry their StreamId
  bus.subscribe(plugin);
  bus.publishAt(frames(2), 5, 5);
  CHECK_FALSE(remote->closed());
  bus.publishAt(frames(3), 9, 1);
  CHECK(remote->closed());
  CHECK(remote->closeReason() == CloseReason::EpochChanged);
  CHECK(taken(*remote) == range(5, 6));  // nothing of the new epoch reached it
  CHECK_FALSE(plugin->closed());
  std::vector<std::uint64_t> epochs;
  CHECK(taken(*plugin, &epochs) == std::vector<std::uint64_t>{5, 6, 1, 2, 3});
  CHECK(epochs == std::vector<std::uint64_t>{5, 5, 9, 9, 9});
}

TEST_CASE("a resume ahead of a mirror waits for its frame and goes on right after it", "[bus][mirror]") {
  // The subscriber comes from a relay further along the same upstream.
  Bus bus(StreamId{"m", 1}, nullptr, ringOf(1000));
  bus.publishAt(frames(10), 5, 1);  // 1..10
  auto ahead = newQueue();
  const Bus::Start start = bus.subscribeAfter(ahead, 15, 0, {}, false, 5);
  CHECK(start.recovered);
  CHECK(start.firstSeq == 16);
  CHECK(start.epoch == 5);

  SECTION("the frames up to the one asked for are not given, the rest are, live after") {
    bus.publishAt(frames(4), 5, 11);  // 11..14
    CHECK(taken(*ahead).empty());
    bus.publishAt(frames(4), 5, 15);  // 15..18: its frame, and three after it
    bus.publishAt(frames(2), 5, 19);
    CHECK(taken(*ahead) == range(16, 20));
  }
  SECTION("a batch that ends on its frame: from the next batch") {
    bus.publishAt(frames(5), 5, 11);  // 11..15
    CHECK(taken(*ahead).empty());
    bus.publishAt(frames(3), 5, 16);
    CHECK(taken(*ahead) == range(16, 18));
  }
  SECTION("another epoch first: closed, to resume again") {
    bus.publishAt(frames(20), 9, 1);
    CHECK(ahead->closed());
    CHECK(ahead->closeReason() == CloseReason::EpochChanged);
    CHECK(taken(*ahead).empty());
  }
  SECTION("the stream numbers its own frames first (a standby took the lease): closed") {
    bus.publish(frames(10));  // 11..20, not the upstream's
    CHECK(ahead->closed());
    CHECK(ahead->closeReason() == CloseReason::EpochChanged);
    CHECK(taken(*ahead).empty());
  }
  SECTION("gone before its frame came: nothing is kept for it") {
    bus.unsubscribe(ahead.get());
    bus.publishAt(frames(10), 5, 11);
    CHECK(taken(*ahead).empty());
  }
}

TEST_CASE("a resume ahead that names no epoch, or of a stream that is no mirror, is not recovered", "[bus][mirror]") {
  SECTION("no epoch named") {
    Bus bus(StreamId{"m", 1}, nullptr, ringOf(1000));
    bus.publishAt(frames(10), 5, 1);
    auto queue = newQueue();
    const Bus::Start start = bus.subscribeAfter(queue, 15, 0, {}, false, 0);
    CHECK_FALSE(start.recovered);
    CHECK(start.firstSeq == 11);
  }
  SECTION("a stream that numbers its own frames never issued that seq") {
    Bus bus(StreamId{"m", 5}, nullptr, ringOf(1000));
    bus.publish(frames(10));
    auto queue = newQueue();
    const Bus::Start start = bus.subscribeAfter(queue, 15, 0, {}, false, 5);
    CHECK_FALSE(start.recovered);
    CHECK(start.firstSeq == 11);
  }
}
