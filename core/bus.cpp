#include "bus.hpp"

#include <algorithm>

namespace streamrelay {

void Bus::subscribe(QueuePtr queue) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto next = std::make_shared<QueueList>(*queues_);
  // Non-blocking queues first: a `block` queue must not delay the others.
  auto isBlocking = [](const QueuePtr& q) { return q->limits().onFull == OverflowPolicy::Block; };
  if (isBlocking(queue)) next->push_back(std::move(queue));
  else next->insert(std::find_if(next->begin(), next->end(), isBlocking), std::move(queue));
  queues_ = std::move(next);
}

void Bus::unsubscribe(const SubscriptionQueue* queue) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto next = std::make_shared<QueueList>(*queues_);
  next->erase(std::remove_if(next->begin(), next->end(), [&](const QueuePtr& q) { return q.get() == queue; }),
              next->end());
  queues_ = std::move(next);
}

std::shared_ptr<const Bus::QueueList> Bus::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queues_;
}

std::size_t Bus::subscriberCount() const { return snapshot()->size(); }

void Bus::publish(std::unique_ptr<FrameBatch> batch) {
  const std::size_t count = batch->frameCount();
  if (count == 0) return;
  batch->assignFirstSeq(nextSeq_.fetch_add(count, std::memory_order_relaxed));
  frames_.fetch_add(count, std::memory_order_relaxed);
  bytes_.fetch_add(batch->totalWireBytes() - count * kWireHeaderBytes, std::memory_order_relaxed);
  FrameBatchPtr shared(std::move(batch));
  // Held for the loop: a subscribe() meanwhile replaces the list, not this copy.
  const std::shared_ptr<const QueueList> queues = snapshot();
  for (const QueuePtr& queue : *queues) queue->push(shared);
}

}  // namespace streamrelay
