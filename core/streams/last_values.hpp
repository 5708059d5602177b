// SPDX-License-Identifier: Apache-2.0
#pragma once
// LastValues: the newest frame of each key of a stream
// (streams.NAME.last_value), for subscribers that ask for a snapshot before
// live frames (hello `snapshot: true`).
//
// Bounded by max_keys: a new key beyond it evicts the key updated least
// recently (counted). It keeps references to the batches that hold the
// newest frames, never copies: at most max_keys batches stay alive for it.
//
// Not thread safe: the bus calls it under its lock (the publisher updates it
// in the same step as it hands a batch to the queues, so that a snapshot and
// the live frames after it meet with no gap and no duplicate per key).

#include <cstdint>
#include <list>
#include <string>
#include <unordered_map>
#include <vector>

#include "subscription_queue.hpp"

namespace streamrelay {

class LastValues {
 public:
  explicit LastValues(std::size_t maxKeys) : maxKeys_(maxKeys) {}

  // Takes the newest frame of each key of `batch` (a published batch).
  void update(const FrameBatchPtr& batch);
  // The newest frame of every key that matches one of `select` (every key if
  // empty), older than `beforeSeq`, in seq order, as spans flagged snapshot.
  std::vector<FrameSpan> snapshot(const std::vector<std::string>& select, std::uint64_t beforeSeq) const;

  std::size_t keys() const { return byKey_.size(); }
  std::size_t maxKeys() const { return maxKeys_; }
  std::uint64_t evictions() const { return evictions_; }

 private:
  struct Entry {
    FrameBatchPtr batch;
    std::uint32_t index = 0;
    std::list<std::string>::iterator age;  // its place in updated_
  };
  const std::size_t maxKeys_;
  std::unordered_map<std::string, Entry> byKey_;
  std::list<std::string> updated_;  // keys, least recently updated first
  std::uint64_t evictions_ = 0;
  std::string lookup_;  // the key looked up, reused: no allocation per frame for a key seen before
};

}  // namespace streamrelay
