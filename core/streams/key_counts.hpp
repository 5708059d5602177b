// SPDX-License-Identifier: Apache-2.0
#pragma once
// KeyCounts: how many frames of a stream had a key and how many had none,
// and how many distinct keys were seen (`/stats` streams[].keys).
//
// Distinct keys are counted by a hash of each (64 bits: two keys rarely
// share one) in a set of at most `maxDistinct` hashes; once it is full,
// keys not in it are no longer counted and capped() says so.
//
// count() is called only from the stream's publishing thread; the getters
// from any thread.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "frame_batch.hpp"

namespace streamrelay {

constexpr std::size_t kMaxDistinctKeysCounted = 100000;

class KeyCounts {
 public:
  explicit KeyCounts(std::size_t maxDistinct = kMaxDistinctKeysCounted);

  // Counts the frames of a batch whose keys were found (KeyExtractor::keyBatch).
  void count(const FrameBatch& batch);

  std::uint64_t keyed() const { return keyed_.load(std::memory_order_relaxed); }
  std::uint64_t withoutKey() const { return withoutKey_.load(std::memory_order_relaxed); }
  std::uint64_t distinct() const { return distinct_.load(std::memory_order_relaxed); }
  bool capped() const { return capped_.load(std::memory_order_relaxed); }

 private:
  void see(std::uint64_t hash);
  void grow();

  const std::size_t maxDistinct_;
  // Open addressing, linear probing; 0 marks a free slot (a hash of 0 is stored as 1).
  std::vector<std::uint64_t> slots_;
  std::size_t used_ = 0;
  std::atomic<std::uint64_t> keyed_{0};
  std::atomic<std::uint64_t> withoutKey_{0};
  std::atomic<std::uint64_t> distinct_{0};
  std::atomic<bool> capped_{false};
};

}  // namespace streamrelay
