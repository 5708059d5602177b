#include "subscription_queue.hpp"

#include <chrono>

namespace streamrelay {

const char* toString(OverflowPolicy policy) {
  switch (policy) {
    case OverflowPolicy::Disconnect: return "disconnect";
    case OverflowPolicy::DropOldest: return "drop_oldest";
    case OverflowPolicy::DropNewest: return "drop_newest";
    case OverflowPolicy::Block: return "block";
  }
  return "?";
}

const char* toString(CloseReason reason) {
  switch (reason) {
    case CloseReason::None: return "none";
    case CloseReason::SlowConsumer: return "slow_consumer";
    case CloseReason::PeerClosed: return "peer_closed";
    case CloseReason::WriteError: return "write_error";
    case CloseReason::Shutdown: return "shutdown";
    case CloseReason::Removed: return "removed";
    case CloseReason::Failed: return "failed";
  }
  return "?";
}

SubscriptionQueue::SubscriptionQueue(std::string name, QueueLimits limits, std::function<void()> wake)
    : name_(std::move(name)), limits_(limits), wake_(std::move(wake)) {}

bool SubscriptionQueue::fits(std::size_t frames, std::size_t bytes) const {
  return (limits_.maxFrames == 0 || frames_ + frames <= limits_.maxFrames) &&
         (limits_.maxBytes == 0 || bytes_ + bytes <= limits_.maxBytes);
}

void SubscriptionQueue::append(FrameSpan span) {
  frames_ += span.frameCount();
  bytes_ += span.wireBytes();
  counters_.enqueued.fetch_add(span.frameCount(), std::memory_order_relaxed);
  spans_.push_back(std::move(span));
}

FrameSpan SubscriptionQueue::prefixThatFits(const FrameSpan& span) const {
  std::size_t room = span.frameCount();
  if (limits_.maxFrames != 0) room = std::min(room, limits_.maxFrames - std::min(frames_, limits_.maxFrames));
  std::size_t lo = 0, hi = room;  // largest k in [0, room] whose bytes fit
  while (lo < hi) {
    std::size_t mid = (lo + hi + 1) / 2;
    if (fits(0, span.batch->wireBytes(span.first, span.first + mid))) lo = mid;
    else hi = mid - 1;
  }
  return {span.batch, span.first, static_cast<std::uint32_t>(span.first + lo)};
}

void SubscriptionQueue::dropOldestUntilFits(std::size_t frames, std::size_t bytes) {
  std::uint64_t dropped = 0;
  while (!spans_.empty() && !fits(frames, bytes)) {
    FrameSpan& front = spans_.front();
    std::size_t frameBytes = front.batch->wireBytes(front.first, front.first + 1);
    ++front.first;
    --frames_;
    bytes_ -= frameBytes;
    ++dropped;
    if (front.first == front.end) spans_.pop_front();
  }
  counters_.dropped.fetch_add(dropped, std::memory_order_relaxed);
}

void SubscriptionQueue::push(const FrameBatchPtr& batch) {
  FrameSpan span{batch, 0, static_cast<std::uint32_t>(batch->frameCount())};
  if (span.frameCount() == 0) return;
  std::unique_lock<std::mutex> lock(mutex_);
  if (closeReason_ != CloseReason::None) return;
  const bool wasEmpty = frames_ == 0;
  bool closedNow = false;
  if (fits(span.frameCount(), span.wireBytes())) {
    append(std::move(span));
  } else {
    switch (limits_.onFull) {
      case OverflowPolicy::DropNewest: {
        FrameSpan head = prefixThatFits(span);
        counters_.dropped.fetch_add(span.frameCount() - head.frameCount(), std::memory_order_relaxed);
        if (head.frameCount() > 0) append(std::move(head));
        break;
      }
      case OverflowPolicy::DropOldest: {
        // Keep the newest frames of this batch that fit an empty queue.
        std::size_t keepFrom = span.first;
        while (keepFrom < span.end &&
               ((limits_.maxFrames != 0 && span.end - keepFrom > limits_.maxFrames) ||
                (limits_.maxBytes != 0 && span.batch->wireBytes(keepFrom, span.end) > limits_.maxBytes)))
          ++keepFrom;
        counters_.dropped.fetch_add(keepFrom - span.first, std::memory_order_relaxed);
        span.first = static_cast<std::uint32_t>(keepFrom);
        dropOldestUntilFits(span.frameCount(), span.frameCount() ? span.wireBytes() : 0);
        if (span.frameCount() > 0) append(std::move(span));
        break;
      }
      case OverflowPolicy::Disconnect:
        // The consumer is cut off: release what it had queued right away.
        counters_.dropped.fetch_add(frames_ + span.frameCount(), std::memory_order_relaxed);
        spans_.clear();
        frames_ = bytes_ = 0;
        closeReason_ = CloseReason::SlowConsumer;
        closedNow = true;
        break;
      case OverflowPolicy::Block:
        closedNow = !pushBlocking(lock, std::move(span));
        break;
    }
  }
  const bool becameReadable = wasEmpty && frames_ > 0;
  lock.unlock();
  if (becameReadable || closedNow) {
    framesAvailable_.notify_all();
    wake_();
  }
}

// Lossless push: admits the span piece by piece as the consumer makes room.
// Returns false if the queue was closed while waiting. Lock should be held.
bool SubscriptionQueue::pushBlocking(std::unique_lock<std::mutex>& lock, FrameSpan span) {
  const auto start = std::chrono::steady_clock::now();
  while (span.frameCount() > 0) {
    FrameSpan head = prefixThatFits(span);
    // A single frame larger than max_bytes still passes through an empty queue.
    if (head.frameCount() == 0 && frames_ == 0) head.end = head.first + 1;
    if (head.frameCount() > 0) {
      const bool wasEmpty = frames_ == 0;
      span.first = head.end;
      append(std::move(head));
      if (wasEmpty) {
        lock.unlock();
        framesAvailable_.notify_all();
        wake_();
        lock.lock();
      }
      continue;
    }
    roomAvailable_.wait(lock, [&] { return closeReason_ != CloseReason::None || frames_ == 0 ||
                                           fits(1, span.batch->wireBytes(span.first, span.first + 1)); });
    if (closeReason_ != CloseReason::None) break;
  }
  auto waited = std::chrono::steady_clock::now() - start;
  counters_.blockedNs.fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(waited).count(),
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
  if (taken > 0 && limits_.onFull == OverflowPolicy::Block) roomAvailable_.notify_all();
  return taken;
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
}

bool SubscriptionQueue::closed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return closeReason_ != CloseReason::None;
}

CloseReason SubscriptionQueue::closeReason() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return closeReason_;
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
