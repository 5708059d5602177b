// SPDX-License-Identifier: Apache-2.0
#pragma once
// SubscriptionQueue: the bounded queue between the bus and one consumer (a
// subscriber session or a plugin worker).
//
// It holds shared FrameBatches, never copies of frames, and is bounded by
// max_frames and max_bytes (wire bytes). The limits judge what waits, not the
// size of one upstream read: a batch is admitted whole while the queue is below
// both limits, so a fast consumer with an empty queue is never cut off by a
// burst of more frames than max_frames. When the queue is at or over a limit,
// the consumer's overflow policy applies to the incoming batch, counted per
// queue. A queue therefore holds at most its limits plus one batch, and the
// bytes it counts are the bytes it keeps alive (it never keeps part of a batch).
//
// One policy, `conflate` (subscribers only), keeps what a consumer of
// "the current value per key" needs: when the queue is full, of the frames
// waiting and the new ones only the newest of each key stays (flagged
// conflated if it replaced older ones), and frames without a key are dropped
// oldest first down to the limits. Such a queue is bounded by the number of
// distinct keys waiting rather than by its limits, and a frame kept may keep
// its whole batch alive.
//
// Thread safe. push() is called by the publisher (the bus) only; take*() by the
// consumer only; close() and counters by anyone.

#include <atomic>
#include <chrono>
#include <memory>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "frame_batch.hpp"

namespace streamrelay {

enum class OverflowPolicy { Disconnect, DropOldest, DropNewest, Block, Conflate };

const char* toString(OverflowPolicy policy);

// A listener's default: bounded by bytes, as NATS' and Redis' client buffers
// are. A frame count of 600 (the seed's) cut every subscriber of a fast feed
// of small frames while it was less than one socket buffer behind.
struct QueueLimits {
  std::size_t maxFrames = 100000;
  std::size_t maxBytes = 16 << 20;
  OverflowPolicy onFull = OverflowPolicy::Disconnect;
};

// Why a consumer's queue was closed: close_reasons.def lists them.
enum class CloseReason {
#define CLOSE_REASON(NAME, TEXT) NAME,
#include "close_reasons.def"
#undef CLOSE_REASON
};
constexpr int kCloseReasonCount = 0
#define CLOSE_REASON(NAME, TEXT) +1
#include "close_reasons.def"
#undef CLOSE_REASON
    ;

const char* toString(CloseReason reason);

// A run of consecutive frames [first, end) of one batch. `flags` (the
// frame header's, wire.hpp) say how they reach this consumer: the newest of
// their key before live frames (a snapshot), or in place of older ones.
struct FrameSpan {
  FrameBatchPtr batch;
  std::uint32_t first = 0;
  std::uint32_t end = 0;
  std::uint16_t flags = 0;

  std::size_t frameCount() const { return end - first; }
  std::size_t wireBytes() const { return batch->wireBytes(first, end); }
};

// Frames [first, end) of a batch: what a selecting subscriber gets of it.
struct FrameRange {
  std::uint32_t first = 0;
  std::uint32_t end = 0;
};

struct QueueCounters {
  std::atomic<std::uint64_t> enqueued{0};  // frames accepted into the queue
  std::atomic<std::uint64_t> delivered{0}; // frames the consumer has handled (written, or given to a plugin)
  std::atomic<std::uint64_t> dropped{0};   // frames lost to drop_oldest / drop_newest / disconnect (and keyless ones to conflate)
  std::atomic<std::uint64_t> conflated{0};   // frames replaced by a newer one of their key while waiting (conflate)
  std::atomic<std::uint64_t> rateSkipped{0}; // frames replaced by a newer one of their key within its interval (max_rate_per_key)
  std::atomic<std::uint64_t> blockedNs{0}; // time the publisher waited (block policy)
  std::atomic<bool> holdingPublisher{false};  // the publisher waits for room now (block policy)
};

class SubscriptionQueue {
 public:
  // `wake` is called (by the publisher, outside the lock) when the queue goes
  // from empty to non-empty or is closed; it must not block. `counters` may be
  // shared with the queue this one replaces (a plugin's next version), so
  // totals carry on.
  SubscriptionQueue(std::string name, QueueLimits limits, std::function<void()> wake,
                    std::shared_ptr<QueueCounters> counters = std::make_shared<QueueCounters>());
  SubscriptionQueue(const SubscriptionQueue&) = delete;
  SubscriptionQueue& operator=(const SubscriptionQueue&) = delete;

  // Called only by the publisher. Applies the overflow policy; with `block` it
  // waits until the consumer makes room or the queue is closed.
  void push(const FrameBatchPtr& batch);
  // The same for some frames of the batch (a subscriber that selects by
  // key): the policy judges them together, as one push. The queue keeps the
  // batch alive but counts only these frames' bytes.
  void push(const FrameBatchPtr& batch, const std::vector<FrameRange>& ranges);
  // Frames the consumer gets first (a replay), before the queue is
  // subscribed; they count against the limits but are admitted whole.
  void preload(const std::vector<FrameSpan>& spans);

  // Called only by the consumer: moves every queued span to the back of `out`.
  // Returns the number of frames moved.
  std::size_t takeAll(std::deque<FrameSpan>& out);
  // Waits until frames are queued, the queue is closed, or the deadline.
  bool waitForFrames(std::chrono::steady_clock::time_point deadline);
  // Called by whoever preloads it (a disk replay, before it is subscribed):
  // waits until it holds fewer than `frames` frames and `bytes` bytes, the
  // queue is closed, or the deadline. True if there is room.
  bool waitForRoom(std::size_t frames, std::size_t bytes, std::chrono::steady_clock::time_point deadline);

  // Closes the queue: pushes become no-ops, a blocked publisher is released and
  // queued frames are kept for a final drain. The first reason wins.
  void close(CloseReason reason);
  bool closed() const;
  CloseReason closeReason() const;

  const std::string& name() const { return name_; }
  // The key patterns its consumer selects (empty: every frame), for /stats.
  // Set once admitted, before it is subscribed.
  void setSelection(std::vector<std::string> patterns);
  std::vector<std::string> selection() const;
  const QueueLimits& limits() const { return limits_; }
  std::size_t queuedFrames() const;
  // When the oldest frame waiting here was received (steady clock, ns); 0 if none waits.
  std::int64_t oldestWaitingSteadyNs() const;
  std::size_t queuedBytes() const;
  const QueueCounters& counters() const { return *counters_; }
  // Called by the consumer.
  void countDelivered(std::uint64_t frames) { counters_->delivered.fetch_add(frames, std::memory_order_relaxed); }
  void countRateSkipped(std::uint64_t frames) { counters_->rateSkipped.fetch_add(frames, std::memory_order_relaxed); }

 private:
  void pushSpans(const FrameBatchPtr& batch, const FrameRange* ranges, std::size_t count);
  bool full() const;                                       // Lock should be held.
  void append(FrameSpan span);                             // Lock should be held.
  void dropOldestWhileFull();                              // Lock should be held.
  void conflate();                                         // Lock should be held.
  bool waitUntilNotFull(std::unique_lock<std::mutex>& lock);

  const std::string name_;
  const QueueLimits limits_;
  const std::function<void()> wake_;

  mutable std::mutex mutex_;
  std::condition_variable roomAvailable_;
  std::condition_variable framesAvailable_;
  std::atomic<int> roomWaiters_{0};  // waitForRoom() callers: takeAll() wakes them
  std::deque<FrameSpan> spans_;
  std::size_t frames_ = 0;
  std::size_t bytes_ = 0;
  CloseReason closeReason_ = CloseReason::None;
  std::vector<std::string> selection_;
  const std::shared_ptr<QueueCounters> counters_;

  // conflate()'s scratch, kept between pushes for its capacity. The views
  // point into batches that spans_ holds while they are used.
  struct WaitingFrame {
    std::uint32_t span;      // index in spans_
    std::uint32_t frame;     // in its batch
    std::uint32_t replaced;  // older frames of its key it replaces
    bool kept;
  };
  std::vector<WaitingFrame> waiting_;
  std::unordered_map<std::string_view, std::uint32_t> newestOfKey_;  // key -> index in waiting_
};

using QueuePtr = std::shared_ptr<SubscriptionQueue>;

}  // namespace streamrelay
