// SPDX-License-Identifier: Apache-2.0
#include "subscription_queue.hpp"

#include <chrono>

#include "streamrelay/wire.hpp"

namespace streamrelay {

const char* toString(OverflowPolicy policy) {
  switch (policy) {
    case OverflowPolicy::Disconnect: return "disconnect";
    case OverflowPolicy::DropOldest: return "drop_oldest";
    case OverflowPolicy::DropNewest: return "drop_newest";
    case OverflowPolicy::Block: return "block";
    case OverflowPolicy::Conflate: return "conflate";
  }
  return "?";
}

const char* toString(CloseReason reason) {
  switch (reason) {
#define CLOSE_REASON(NAME, TEXT) \
  case CloseReason::NAME:        \
    return TEXT;
#include "close_reasons.def"
#undef CLOSE_REASON
  }
  return "?";
}

SubscriptionQueue::SubscriptionQueue(std::string name, QueueLimits limits, std::function<void()> wake,
                                     std::shared_ptr<QueueCounters> counters)
    : name_(std::move(name)), limits_(limits), wake_(std::move(wake)), counters_(std::move(counters)) {}

bool SubscriptionQueue::full() const {
  return (limits_.maxFrames != 0 && frames_ >= limits_.maxFrames) ||
         (limits_.maxBytes != 0 && bytes_ >= limits_.maxBytes);
}

void SubscriptionQueue::append(FrameSpan span) {
  frames_ += span.frameCount();
  bytes_ += span.wireBytes();
  counters_->enqueued.fetch_add(span.frameCount(), std::memory_order_relaxed);
  spans_.push_back(std::move(span));
}

// Drops whole batches, oldest first: a queue never keeps part of a batch alive
// for a few frames, so the bytes it counts are the bytes it retains.
void SubscriptionQueue::dropOldestWhileFull() {
  std::uint64_t dropped = 0;
  while (!spans_.empty() && full()) {
    const FrameSpan& front = spans_.front();
    frames_ -= front.frameCount();
    bytes_ -= front.wireBytes();
    dropped += front.frameCount();
    spans_.pop_front();
  }
  counters_->dropped.fetch_add(dropped, std::memory_order_relaxed);
}

// Of the frames waiting (the new ones included), keeps the newest of each
// key, flagged conflated if it replaces older ones, and drops frames without
// a key, oldest first, while the queue is over its limits. The frames kept
// keep their order. Costs a pass over what waits and a hash map of its keys
// (views into the batches, which spans_ holds meanwhile).
void SubscriptionQueue::conflate() {
  waiting_.clear();
  for (std::uint32_t s = 0; s < spans_.size(); ++s)
    for (std::uint32_t i = spans_[s].first; i < spans_[s].end; ++i) waiting_.push_back({s, i, 0, true});
  auto bytesOf = [&](const WaitingFrame& frame) { return spans_[frame.span].batch->wireBytes(frame.frame, frame.frame + 1); };
  auto keyed = [&](const WaitingFrame& frame) { return spans_[frame.span].batch->hasKey(frame.frame); };

  // Newest first: the first frame of a key met is the one kept.
  std::uint64_t conflated = 0;
  newestOfKey_.clear();
  for (std::size_t w = waiting_.size(); w-- > 0;) {
    WaitingFrame& frame = waiting_[w];
    if (!keyed(frame)) continue;
    const auto found = newestOfKey_.emplace(spans_[frame.span].batch->key(frame.frame), static_cast<std::uint32_t>(w));
    if (found.second) continue;
    frame.kept = false;
    ++waiting_[found.first->second].replaced;
    ++conflated;
  }
  newestOfKey_.clear();

  frames_ = bytes_ = 0;
  for (const WaitingFrame& frame : waiting_)
    if (frame.kept) {
      ++frames_;
      bytes_ += bytesOf(frame);
    }
  auto over = [&] {
    return (limits_.maxFrames != 0 && frames_ > limits_.maxFrames) || (limits_.maxBytes != 0 && bytes_ > limits_.maxBytes);
  };
  std::uint64_t dropped = 0;
  for (std::size_t w = 0; w < waiting_.size() && over(); ++w) {
    WaitingFrame& frame = waiting_[w];
    if (!frame.kept || keyed(frame)) continue;
    frame.kept = false;
    --frames_;
    bytes_ -= bytesOf(frame);
    ++dropped;
  }

  std::deque<FrameSpan> kept;
  for (const WaitingFrame& frame : waiting_) {
    if (!frame.kept) continue;
    const FrameSpan& from = spans_[frame.span];
    const std::uint16_t flags = from.flags | (frame.replaced > 0 ? wire::kFlagConflated : 0);
    if (!kept.empty() && kept.back().batch == from.batch && kept.back().end == frame.frame && kept.back().flags == flags)
      ++kept.back().end;
    else
      kept.push_back(FrameSpan{from.batch, frame.frame, frame.frame + 1, flags});
  }
  spans_.swap(kept);
  counters_->conflated.fetch_add(conflated, std::memory_order_relaxed);
  counters_->dropped.fetch_add(dropped, std::memory_order_relaxed);
}

void SubscriptionQueue::push(const FrameBatchPtr& batch) {
  const FrameRange whole{0, static_cast<std::uint32_t>(batch->frameCount())};
  pushSpans(batch, &whole, 1);
}

void SubscriptionQueue::push(const FrameBatchPtr& batch, const std::vector<FrameRange>& ranges) {
  pushSpans(batch, ranges.data(), ranges.size());
}

void SubscriptionQueue::pushSpans(const FrameBatchPtr& batch, const FrameRange* ranges, std::size_t count) {
  std::size_t pushed = 0;
  for (std::size_t r = 0; r < count; ++r) pushed += ranges[r].end - ranges[r].first;
  if (pushed == 0) return;
  std::unique_lock<std::mutex> lock(mutex_);
  if (closeReason_ != CloseReason::None) return;
  bool closedNow = false;
  bool conflating = false;
  if (full()) {
    switch (limits_.onFull) {
      case OverflowPolicy::DropNewest:
        counters_->dropped.fetch_add(pushed, std::memory_order_relaxed);
        return;
      case OverflowPolicy::DropOldest:
        dropOldestWhileFull();
        break;
      case OverflowPolicy::Disconnect:
        // The consumer is cut off: release what it had queued right away.
        counters_->dropped.fetch_add(frames_ + pushed, std::memory_order_relaxed);
        spans_.clear();
        frames_ = bytes_ = 0;
        closeReason_ = CloseReason::SlowConsumer;
        closedNow = true;
        break;
      case OverflowPolicy::Block:
        closedNow = !waitUntilNotFull(lock);
        break;
      case OverflowPolicy::Conflate:
        conflating = true;  // once the new frames are in
        break;
    }
  }
  bool wake = closedNow;
  if (!closedNow) {
    wake = frames_ == 0;  // the consumer is woken when its queue becomes non-empty
    for (std::size_t r = 0; r < count; ++r)
      if (ranges[r].end > ranges[r].first) append(FrameSpan{batch, ranges[r].first, ranges[r].end});
    if (conflating) conflate();
    // Distinct keys alone past twice the limits: conflating can no longer
    // bound what this consumer holds (nor what each push costs the
    // publisher); it is cut off as a slow consumer.
    if (conflating && ((limits_.maxFrames != 0 && frames_ > 2 * limits_.maxFrames) ||
                       (limits_.maxBytes != 0 && bytes_ > 2 * limits_.maxBytes))) {
      counters_->dropped.fetch_add(frames_, std::memory_order_relaxed);
      spans_.clear();
      frames_ = bytes_ = 0;
      closeReason_ = CloseReason::SlowConsumer;
      wake = true;
    }
  }
  lock.unlock();
  if (wake) {
    framesAvailable_.notify_all();
    wake_();
  }
}

void SubscriptionQueue::preload(const std::vector<FrameSpan>& spans) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closeReason_ != CloseReason::None) return;
    wake = frames_ == 0;
    std::size_t before = frames_;
    for (const FrameSpan& span : spans)
      if (span.frameCount() != 0) append(span);
    wake = wake && frames_ != before;
  }
  if (wake) {
    framesAvailable_.notify_all();
    wake_();
  }
}

// Lossless push: waits until the consumer has taken enough that the queue is
// no longer full. Returns false if the queue was closed meanwhile.
bool SubscriptionQueue::waitUntilNotFull(std::unique_lock<std::mutex>& lock) {
  const auto start = std::chrono::steady_clock::now();
  counters_->holdingPublisher.store(true, std::memory_order_relaxed);
  roomAvailable_.wait(lock, [&] { return closeReason_ != CloseReason::None || !full(); });
  counters_->holdingPublisher.store(false, std::memory_order_relaxed);
  auto waited = std::chrono::steady_clock::now() - start;
  counters_->blockedNs.fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(waited).count(),
                                std::memory_order_relaxed);
  return closeReason_ == CloseReason::None;
}

std::size_t SubscriptionQueue::takeAll(std::deque<FrameSpan>& out) {
  std::size_t taken;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    taken = frames_;
    for (auto& span : spans_) out.push_back(std::move(span));
    spans_.clear();
    frames_ = bytes_ = 0;
  }
  if (taken > 0 && (limits_.onFull == OverflowPolicy::Block || roomWaiters_.load(std::memory_order_acquire) > 0))
    roomAvailable_.notify_all();
  return taken;
}

bool SubscriptionQueue::waitForRoom(std::size_t frames, std::size_t bytes,
                                    std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mutex_);
  roomWaiters_.fetch_add(1, std::memory_order_acq_rel);
  const bool room = roomAvailable_.wait_until(lock, deadline, [&] {
    return closeReason_ != CloseReason::None || (frames_ < frames && bytes_ < bytes);
  });
  roomWaiters_.fetch_sub(1, std::memory_order_acq_rel);
  return room && closeReason_ == CloseReason::None;
}

bool SubscriptionQueue::waitForFrames(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mutex_);
  return framesAvailable_.wait_until(lock, deadline, [&] { return frames_ > 0 || closeReason_ != CloseReason::None; });
}

void SubscriptionQueue::close(CloseReason reason) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closeReason_ != CloseReason::None) return;
    closeReason_ = reason;
  }
  roomAvailable_.notify_all();
  framesAvailable_.notify_all();
  wake_();  // a consumer that waits on its writer (a subscriber) learns of it now
}

void SubscriptionQueue::setSelection(std::vector<std::string> patterns) {
  std::lock_guard<std::mutex> lock(mutex_);
  selection_ = std::move(patterns);
}

std::vector<std::string> SubscriptionQueue::selection() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return selection_;
}

bool SubscriptionQueue::closed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return closeReason_ != CloseReason::None;
}

CloseReason SubscriptionQueue::closeReason() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return closeReason_;
}

std::int64_t SubscriptionQueue::oldestWaitingSteadyNs() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return spans_.empty() ? 0 : spans_.front().batch->receivedSteadyNs();
}

std::size_t SubscriptionQueue::queuedFrames() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return frames_;
}

std::size_t SubscriptionQueue::queuedBytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return bytes_;
}

}  // namespace streamrelay
