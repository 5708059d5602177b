// SPDX-License-Identifier: Apache-2.0
#pragma once
// ReplayRing: the newest frames of one stream, kept for subscribers that join
// late (listeners[].replay) and, later, for resumes. It holds the published
// batches themselves (shared, never copied), so keeping N frames costs the
// batches they live in, nothing more.
//
// Bounded three ways: at most `maxFrames` frames are kept beyond what is
// needed to cover them in whole batches, at most `maxBytes` wire bytes, and
// nothing older than `maxAge`. A limit of 0 is no limit (at least one is set).
//
// Not thread safe: the stream's Bus calls it under its own lock, which is what
// makes a replay and the live frames that follow meet without gap or overlap.

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "frame_batch.hpp"
#include "subscription_queue.hpp"

namespace streamrelay {

struct ReplayLimits {
  std::size_t maxFrames = 0;
  std::size_t maxBytes = 0;
  std::chrono::milliseconds maxAge{0};
  bool enabled() const { return maxFrames != 0 || maxBytes != 0 || maxAge.count() != 0; }
};

class ReplayRing {
 public:
  // `keepBytes`: whatever the frame and byte limits say, the newest batches
  // of at least this many wire bytes are kept (a logged stream's hand-over
  // from its log to the live frames needs what its log has not written).
  explicit ReplayRing(ReplayLimits limits, std::size_t keepBytes = 0) : limits_(limits), keepBytes_(keepBytes) {}

  // Adds a numbered batch; moves the batches it no longer keeps into
  // `evicted`, for the caller to release outside its lock.
  void append(const FrameBatchPtr& batch, std::vector<FrameBatchPtr>& evicted);
  // The newest `frames` frames it holds (fewer if it holds fewer), oldest
  // first, as spans of its batches.
  std::vector<FrameSpan> newest(std::size_t frames) const;
  // Every frame it holds after seq `after`, oldest first; nothing if the
  // frame right after it is no longer (or not yet) held, or a gap in seq (a
  // mirror's, Bus::publishAt) lies between it and the newest.
  std::optional<std::vector<FrameSpan>> after(std::uint64_t after) const;

  // Drops every batch (a mirror's stream starts a new epoch) into `evicted`.
  void clear(std::vector<FrameBatchPtr>& evicted);
  // The seq of the first frame held received at or after `unixNs` (Unix
  // ns; a batch's frames share their time), and whether the oldest held was
  // received at or before it; no seq if none was received since.
  struct TimeStart {
    std::optional<std::uint64_t> seq;
    bool covered = false;
  };
  TimeStart receivedSince(std::int64_t unixNs) const;

  std::size_t frames() const { return frames_; }
  std::size_t bytes() const { return bytes_; }
  const ReplayLimits& limits() const { return limits_; }

 private:
  bool tooOld(const FrameBatch& batch, std::int64_t nowSteadyNs) const;
  void evictFront(std::vector<FrameBatchPtr>& evicted);

  // Whether dropping the oldest batch still keeps keepBytes_.
  bool aboveFloor() const { return bytes_ - batches_.front()->totalWireBytes() >= keepBytes_; }

  const ReplayLimits limits_;
  const std::size_t keepBytes_;
  std::deque<FrameBatchPtr> batches_;
  std::size_t frames_ = 0;
  std::size_t bytes_ = 0;
};

}  // namespace streamrelay
