// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "subscription_queue.hpp"

using namespace streamrelay;

namespace {

// A batch of `count` frames of `size` bytes numbered from `firstSeq`.
FrameBatchPtr makeBatch(std::size_t count, std::size_t size, std::uint64_t firstSeq) {
  FrameBatchBuilder builder;
  std::string payload(size, 'x');
  for (std::size_t i = 0; i < count; ++i) builder.add(payload.data(), payload.size());
  auto batch = builder.seal(0);
  batch->assignFirstSeq(firstSeq);
  return FrameBatchPtr(std::move(batch));
}

std::vector<std::uint64_t> drainSeqs(SubscriptionQueue& q) {
  std::deque<FrameSpan> spans;
  q.takeAll(spans);
  std::vector<std::uint64_t> seqs;
  for (const auto& s : spans)
    for (std::uint32_t i = s.first; i < s.end; ++i) seqs.push_back(s.batch->seq(i));
  return seqs;
}

QueueLimits limits(std::size_t frames, std::size_t bytes, OverflowPolicy policy) {
  QueueLimits l;
  l.maxFrames = frames;
  l.maxBytes = bytes;
  l.onFull = policy;
  return l;
}

}  // namespace

TEST_CASE("a queue wakes its consumer only when it becomes non-empty", "[queue]") {
  int wakes = 0;
  SubscriptionQueue q("q", limits(100, 0, OverflowPolicy::Disconnect), [&] { ++wakes; });
  q.push(makeBatch(3, 10, 1));
  q.push(makeBatch(3, 10, 4));
  CHECK(wakes == 1);
  CHECK(q.queuedFrames() == 6);
  CHECK(q.queuedBytes() == 6 * (10 + kWireHeaderBytes));
  CHECK(drainSeqs(q) == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6});
  q.push(makeBatch(1, 10, 7));
  CHECK(wakes == 2);
}

TEST_CASE("disconnect policy closes the queue and releases its frames", "[queue]") {
  int wakes = 0;
  SubscriptionQueue q("q", limits(5, 0, OverflowPolicy::Disconnect), [&] { ++wakes; });
  q.push(makeBatch(5, 10, 1));
  q.push(makeBatch(2, 10, 6));
  CHECK(q.closeReason() == CloseReason::SlowConsumer);
  CHECK(q.queuedFrames() == 0);
  CHECK(q.counters().dropped == 7);
  CHECK(wakes == 2);  // became readable, then closed
  q.push(makeBatch(1, 10, 8));
  CHECK(q.queuedFrames() == 0);
}

// Defect: one upstream read of more frames than max_frames cut every fast
// subscriber off with an empty queue. The limits judge what waits.
TEST_CASE("a burst larger than max_frames reaches a consumer that keeps up", "[queue]") {
  for (OverflowPolicy policy : {OverflowPolicy::Disconnect, OverflowPolicy::DropNewest, OverflowPolicy::DropOldest,
                                OverflowPolicy::Block}) {
    INFO(toString(policy));
    SubscriptionQueue q("q", limits(600, 16 << 20, policy), [] {});
    std::uint64_t seq = 1;
    for (int read = 0; read < 10; ++read) {  // the consumer takes every batch before the next read
      q.push(makeBatch(4096, 100, seq));
      auto seqs = drainSeqs(q);
      REQUIRE(seqs.size() == 4096);
      CHECK(seqs.front() == seq);
      seq += 4096;
    }
    CHECK(q.closeReason() == CloseReason::None);
    CHECK(q.counters().dropped == 0);
  }
}

TEST_CASE("drop_newest drops whole batches that arrive while the queue is full", "[queue]") {
  SubscriptionQueue q("q", limits(5, 0, OverflowPolicy::DropNewest), [] {});
  q.push(makeBatch(4, 10, 1));
  q.push(makeBatch(3, 10, 5));  // 4 waiting, below the limit: admitted whole
  q.push(makeBatch(2, 10, 8));  // 7 waiting: full
  CHECK(q.counters().dropped == 2);
  CHECK(drainSeqs(q) == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6, 7});
}

TEST_CASE("drop_oldest drops the oldest batches until the newest one fits", "[queue]") {
  SubscriptionQueue q("q", limits(5, 0, OverflowPolicy::DropOldest), [] {});
  q.push(makeBatch(4, 10, 1));
  q.push(makeBatch(3, 10, 5));
  q.push(makeBatch(2, 10, 8));  // full: batch 1..4 goes, then 5..7 is still 3 < 5
  CHECK(q.counters().dropped == 4);
  CHECK(drainSeqs(q) == std::vector<std::uint64_t>{5, 6, 7, 8, 9});
}

TEST_CASE("max_bytes bounds a queue as well as max_frames", "[queue]") {
  const std::size_t frameBytes = 100 + kWireHeaderBytes;
  SubscriptionQueue q("q", limits(0, 3 * frameBytes, OverflowPolicy::DropNewest), [] {});
  q.push(makeBatch(2, 100, 1));
  q.push(makeBatch(2, 100, 3));
  q.push(makeBatch(2, 100, 5));
  CHECK(q.queuedBytes() == 4 * frameBytes);
  CHECK(q.counters().dropped == 2);
}

// Defect: a queue that admitted only the head of a batch kept the whole batch
// alive while counting a few bytes: one tiny plus one 200 KiB frame per read
// took a stalled 16 MiB drop_newest subscriber far past its bound.
TEST_CASE("a stalled queue keeps alive no more than its limits plus one batch", "[queue]") {
  const std::size_t maxBytes = 1 << 20;
  for (OverflowPolicy policy : {OverflowPolicy::DropNewest, OverflowPolicy::DropOldest}) {
    INFO(toString(policy));
    SubscriptionQueue q("q", limits(100000, maxBytes, policy), [] {});
    std::vector<std::weak_ptr<const FrameBatch>> pushed;
    for (std::uint64_t read = 0; read < 200; ++read) {
      FrameBatchBuilder builder;
      builder.add("t", 1);
      std::string big(200 << 10, 'b');
      builder.add(big.data(), big.size());
      FrameBatchPtr batch(builder.seal(0));
      pushed.push_back(batch);
      q.push(batch);
    }
    std::size_t retained = 0, oneBatch = 0;
    for (const auto& weak : pushed)
      if (auto batch = weak.lock()) {
        retained += batch->totalWireBytes();
        oneBatch = batch->totalWireBytes();
      }
    CHECK(retained <= maxBytes + oneBatch);
    CHECK(q.queuedBytes() == retained);  // what it counts is what it keeps
  }
}

TEST_CASE("block policy makes the publisher wait and loses nothing", "[queue]") {
  SubscriptionQueue q("q", limits(4, 0, OverflowPolicy::Block), [] {});
  std::atomic<bool> published{false};
  std::thread publisher([&] {
    for (std::uint64_t seq = 1; seq <= 40; seq += 4) q.push(makeBatch(4, 10, seq));
    published = true;
  });
  std::vector<std::uint64_t> received;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (received.size() < 40 && std::chrono::steady_clock::now() < deadline) {
    q.waitForFrames(deadline);
    CHECK(q.queuedFrames() <= 4);
    for (auto seq : drainSeqs(q)) received.push_back(seq);
  }
  publisher.join();
  CHECK(published);
  REQUIRE(received.size() == 40);
  for (std::size_t i = 0; i < received.size(); ++i) CHECK(received[i] == i + 1);
  CHECK(q.counters().dropped == 0);
}

TEST_CASE("closing a queue releases a blocked publisher", "[queue]") {
  SubscriptionQueue q("q", limits(1, 0, OverflowPolicy::Block), [] {});
  q.push(makeBatch(1, 10, 1));
  std::thread publisher([&] { q.push(makeBatch(1, 10, 2)); });
  q.close(CloseReason::Shutdown);
  publisher.join();
  CHECK(q.closeReason() == CloseReason::Shutdown);
  CHECK(drainSeqs(q) == std::vector<std::uint64_t>{1});  // kept for the final drain
}

// Defect: a queue closed from outside (a listener removed by a reload) did
// not wake its writer, so the subscriber stayed connected until something
// else woke it.
TEST_CASE("closing a queue wakes its consumer once", "[queue]") {
  int wakes = 0;
  SubscriptionQueue q("q", limits(100, 0, OverflowPolicy::Disconnect), [&] { ++wakes; });
  q.close(CloseReason::Removed);
  CHECK(wakes == 1);
  q.close(CloseReason::Shutdown);  // already closed: nothing more
  CHECK(wakes == 1);
  CHECK(q.closeReason() == CloseReason::Removed);
}
