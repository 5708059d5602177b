// SPDX-License-Identifier: Apache-2.0
// LogReplays: a subscriber's queue is preloaded from the log within its
// window, then handed over to the ring and the live frames while a
// publisher runs: every frame once, in order.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <functional>
#include <thread>

#include "bus.hpp"
#include "log_replays.hpp"
#include "log_test_support.hpp"
#include "log_writer.hpp"

using namespace streamrelay;
using namespace streamrelay::test;
using namespace std::chrono_literals;

namespace {

// Checks `condition` until it holds or 10 s pass.
bool pollUntilTrue(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);  // a poll's interval, not synchronisation
  }
  return true;
}

struct LoggedBus {
  ScratchDir dir;
  std::unique_ptr<Bus> bus;
  std::unique_ptr<LogWriter> writer;
  std::unique_ptr<LogReplays> replays;
  LoggedBus() {
    LogOptions options;
    options.dir = dir.path;
    options.segmentBytes = 64 << 10;
    options.fsync = FsyncPolicy::Never;
    auto log = std::make_unique<StreamLog>("s", options);
    BusOptions o(ReplayLimits{100, 0, 0ms});  // a small ring: a resume soon needs the log
    o.firstSeq = log->nextSeqAtOpen();
    o.handOverBytes = 64 << 10;
    bus = std::make_unique<Bus>(StreamId{"s", log->epoch()}, nullptr, o);
    writer = std::make_unique<LogWriter>(std::move(log), *bus);
    replays = std::make_unique<LogReplays>(writer->log(), *bus);
    bus->setBackfill(replays.get());
    writer->start();
  }
  ~LoggedBus() {
    replays->stop();
    writer->stop();
  }
  void publish(std::uint64_t frames, std::size_t payloadBytes = 20) {
    for (std::uint64_t done = 0; done < frames; done += 10) {
      FrameBatchBuilder builder;
      for (int i = 0; i < 10; ++i) builder.add(std::string(payloadBytes, 'x').data(), payloadBytes);
      bus->publish(builder.seal(unixNowNs()));
    }
  }
};

// Takes frames until seq `until`, checking they come once each in order from `first`.
void takeInOrder(SubscriptionQueue& queue, std::uint64_t first, std::uint64_t until) {
  std::uint64_t expected = first;
  std::deque<FrameSpan> spans;
  while (expected <= until) {
    REQUIRE(queue.waitForFrames(std::chrono::steady_clock::now() + 10s));
    spans.clear();
    queue.takeAll(spans);
    for (const FrameSpan& s : spans)
      for (std::uint32_t i = s.first; i < s.end; ++i, ++expected)
        if (s.batch->seq(i) != expected) FAIL("seq " << s.batch->seq(i) << " where " << expected << " was due");
  }
}

}  // namespace

TEST_CASE("a replay from the log keeps to its window while its consumer takes nothing", "[log][replay]") {
  LoggedBus logged;
  logged.publish(20000, 200);  // about 4.5 MiB of log
  REQUIRE(pollUntilTrue([&] { return logged.writer->log().stats().lastSeq == 20000; }));
  QueueLimits limits;
  limits.maxFrames = 1000;  // the window: half of it
  auto queue = std::make_shared<SubscriptionQueue>("q", limits, [] {});
  const Bus::Start start = logged.bus->subscribeAfter(queue, 0, 0);
  CHECK(start.recovered);
  CHECK(start.firstSeq == 1);
  // It reads one chunk while the queue is below its window, then waits.
  REQUIRE(pollUntilTrue([&] { return queue->queuedFrames() >= 500; }));
  CHECK(logged.replays->readers() == 1);
  CHECK(queue->queuedFrames() < 500 + LogReplays::kChunkFrames);
  CHECK(logged.replays->framesRead() == queue->queuedFrames());
  CHECK(logged.bus->queues().size() == 1);  // only the log's writer: not subscribed yet
  takeInOrder(*queue, 1, 20000);
  REQUIRE(pollUntilTrue([&] { return logged.replays->readers() == 0; }));  // handed over
  CHECK(logged.bus->queues().size() == 2);
}

TEST_CASE("a replay from the log meets the live frames with no gap or duplicate while a publisher runs",
          "[log][replay]") {
  LoggedBus logged;
  constexpr std::uint64_t kTotal = 200000;  // then the publisher ends: the last rounds replay a quiet stream
  std::atomic<bool> stop{false};
  std::thread publisher([&] {
    logged.bus->claimPublisher();
    while (!stop.load() && logged.bus->lastSeq() < kTotal) logged.publish(10);
  });
  struct Join {  // also when a REQUIRE ends the test
    std::atomic<bool>& stop;
    std::thread& thread;
    ~Join() {
      stop = true;
      thread.join();
    }
  } join{stop, publisher};
  REQUIRE(pollUntilTrue([&] { return logged.bus->lastSeq() > 5000; }));
  for (int round = 0; round < 8; ++round) {
    QueueLimits unbounded;
    unbounded.maxFrames = 0;
    unbounded.maxBytes = std::size_t{1} << 34;
    auto queue = std::make_shared<SubscriptionQueue>("q", unbounded, [] {});
    const std::uint64_t from = 1 + static_cast<std::uint64_t>(round) * 20000;
    REQUIRE(pollUntilTrue([&] { return logged.bus->lastSeq() >= from; }));
    const Bus::Start start = logged.bus->subscribeAfter(queue, from - 1, 0);
    INFO("round " << round);
    REQUIRE(start.recovered);
    takeInOrder(*queue, from, std::min(logged.bus->lastSeq() + 2000, kTotal));
    logged.bus->unsubscribe(queue.get());
    queue->close(CloseReason::PeerClosed);
  }
}
