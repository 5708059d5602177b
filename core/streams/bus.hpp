#pragma once
// Bus: hands every published FrameBatch to every subscribed queue.
//
// The subscriber list is copy-on-write: publish() takes a snapshot under a short
// lock and pushes outside it, so subscribing never waits for a slow push.
// Queues with the `block` policy are pushed last, so a consumer that blocks the
// publisher delays only itself and what is published after it.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "frame_batch.hpp"
#include "histogram.hpp"
#include "subscription_queue.hpp"

namespace streamrelay {

class Bus {
 public:
  // The bus of one stream. `receivedSizes` (shared by the sources' streams)
  // records the size of every frame published; null for a processor's stream,
  // whose frames were not received.
  Bus(StreamId stream, Histogram* receivedSizes) : stream_(std::move(stream)), receivedSizes_(receivedSizes) {}
  Bus(const Bus&) = delete;
  Bus& operator=(const Bus&) = delete;

  // Thread safe. The queue receives every batch published from now on.
  void subscribe(QueuePtr queue);
  // Thread safe. After it returns, no further batch is pushed to the queue by a
  // publish() that starts later.
  void unsubscribe(const SubscriptionQueue* queue);

  // Thread safe. Swaps `old` for `replacement` in one step: every batch goes to
  // exactly one of them (a reloaded plugin neither misses nor repeats a frame).
  void replace(const SubscriptionQueue* old, QueuePtr replacement);
  // Thread safe. The queues subscribed now.
  std::vector<QueuePtr> queues() const;

  // Called only from the stream's publishing thread: numbers the frames, then
  // pushes the batch to every queue.
  void publish(std::unique_ptr<FrameBatch> batch);

  const StreamId& stream() const { return stream_; }
  // The seq of the newest frame published (0: none yet).
  std::uint64_t lastSeq() const { return nextSeq_.load(std::memory_order_relaxed) - 1; }
  std::uint64_t framesPublished() const { return frames_.load(std::memory_order_relaxed); }
  std::uint64_t bytesPublished() const { return bytes_.load(std::memory_order_relaxed); }

 private:
  using QueueList = std::vector<QueuePtr>;
  std::shared_ptr<const QueueList> snapshot() const;

  const StreamId stream_;
  mutable std::mutex mutex_;
  std::shared_ptr<const QueueList> queues_ = std::make_shared<QueueList>();
  std::atomic<std::uint64_t> nextSeq_{1};
  std::atomic<std::uint64_t> frames_{0};
  std::atomic<std::uint64_t> bytes_{0};
  Histogram* const receivedSizes_;
};

}  // namespace streamrelay
