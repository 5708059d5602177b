// SPDX-License-Identifier: Apache-2.0
#include "bus.hpp"

#include <algorithm>

namespace streamrelay {

namespace {
// Non-blocking queues first: a `block` queue must not delay the others.
void insertOrdered(std::vector<QueuePtr>& list, QueuePtr queue) {
  auto isBlocking = [](const QueuePtr& q) { return q->limits().onFull == OverflowPolicy::Block; };
  if (isBlocking(queue)) list.push_back(std::move(queue));
  else list.insert(std::find_if(list.begin(), list.end(), isBlocking), std::move(queue));
}

void eraseQueue(std::vector<QueuePtr>& list, const SubscriptionQueue* queue) {
  list.erase(std::remove_if(list.begin(), list.end(), [&](const QueuePtr& q) { return q.get() == queue; }),
             list.end());
}
}  // namespace

Bus::Bus(StreamId stream, Histogram* receivedSizes, ReplayLimits replay, std::unique_ptr<KeyExtractor> keys)
    : stream_(std::move(stream)),
      receivedSizes_(receivedSizes),
      replayLimits_(replay),
      ring_(replay.enabled() ? std::make_unique<ReplayRing>(replay) : nullptr),
      keyExtractor_(std::move(keys)),
      keyCounts_(keyExtractor_ ? std::make_unique<KeyCounts>() : nullptr) {}

void Bus::subscribe(QueuePtr queue, std::size_t replayFrames) {
  subscribeAfter(std::move(queue), std::nullopt, replayFrames);
}

Bus::Start Bus::subscribeAfter(QueuePtr queue, std::optional<std::uint64_t> afterSeq, std::size_t replayFrames) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::uint64_t nextLive = pushedSeq_ + 1;
  Start start;
  std::vector<FrameSpan> replay;
  if (afterSeq && *afterSeq + 1 == nextLive) {
    start.recovered = true;
  } else if (afterSeq && *afterSeq < pushedSeq_ && ring_) {
    if (auto spans = ring_->after(*afterSeq)) {
      start.recovered = true;
      replay = std::move(*spans);
    }
  }
  if (!start.recovered && ring_ && replayFrames > 0) replay = ring_->newest(replayFrames);
  start.firstSeq = replay.empty() ? nextLive : replay.front().batch->seq(replay.front().first);
  if (!replay.empty()) queue->preload(replay);
  auto next = std::make_shared<QueueList>(*queues_);
  insertOrdered(*next, std::move(queue));
  queues_ = std::move(next);
  return start;
}

void Bus::unsubscribe(const SubscriptionQueue* queue) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto next = std::make_shared<QueueList>(*queues_);
  eraseQueue(*next, queue);
  queues_ = std::move(next);
}

void Bus::replace(const SubscriptionQueue* old, QueuePtr replacement) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto next = std::make_shared<QueueList>(*queues_);
  eraseQueue(*next, old);
  insertOrdered(*next, std::move(replacement));
  queues_ = std::move(next);
}

std::vector<QueuePtr> Bus::queues() const { return *snapshot(); }

std::pair<std::size_t, std::size_t> Bus::replayHeld() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return ring_ ? std::make_pair(ring_->frames(), ring_->bytes()) : std::make_pair(std::size_t{0}, std::size_t{0});
}

std::shared_ptr<const Bus::QueueList> Bus::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queues_;
}

void Bus::publish(std::unique_ptr<FrameBatch> batch) {
  publisher_.assertOwned();
  const std::size_t count = batch->frameCount();
  if (count == 0) return;
  if (keyExtractor_) {
    keyExtractor_->keyBatch(*batch);
    keyCounts_->count(*batch);
  }
  batch->assignFirstSeq(nextSeq_.fetch_add(count, std::memory_order_relaxed), &stream_);
  frames_.fetch_add(count, std::memory_order_relaxed);
  bytes_.fetch_add(batch->totalWireBytes() - count * kWireHeaderBytes, std::memory_order_relaxed);
  if (receivedSizes_)
    receivedSizes_->recordEach(count, [&](std::size_t i) { return static_cast<double>(batch->payload(i).size()); });
  FrameBatchPtr shared(std::move(batch));
  // Held for the loop: a subscribe() meanwhile replaces the list, not this copy.
  std::shared_ptr<const QueueList> queues;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (ring_) ring_->append(shared, evicted_);
    pushedSeq_ = shared->seq(count - 1);
    queues = queues_;
  }
  evicted_.clear();
  for (const QueuePtr& queue : *queues) queue->push(shared);
}

}  // namespace streamrelay
