// SPDX-License-Identifier: Apache-2.0
#pragma once
// InFlightFrames: the frames an isolated plugin instance has taken from its
// queue and its child has not yet acknowledged, in order, each with its ring
// seq (numbered from 1 for the life of the instance); and their writing into
// the FrameRing. A frame leaves when it is acknowledged. After a restart,
// rewind() writes every frame still here again, from the first: the new child
// resumes at the first unacknowledged frame. The frames are the relay's own
// shared batches, held by reference: nothing is copied but into the ring.
//
// Supervisor thread only (or the thread that owns the instance before it
// starts).

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "frame_ring.hpp"
#include "subscription_queue.hpp"

namespace streamrelay {

class InFlightFrames {
 public:
  // `inputs`: the instance's input streams, in the order the child knows them.
  InFlightFrames(FrameRingWriter& ring, std::vector<std::string> inputs);

  void add(const FrameSpan& span);
  // Writes what fits into the ring; true if anything was written (publish it).
  bool writeSome();
  bool allWritten() const { return writeIndex_ == held_.size(); }
  // The child acknowledged up to ring seq `acked`: those frames leave.
  // Returns how many left.
  std::uint64_t release(std::uint64_t acked);
  // For a new child, in an emptied ring: everything held is to be written again.
  void rewind();
  // Drops what is not yet written (the stop deadline passed); returns how many frames.
  std::uint64_t dropUnwritten();
  // Drops everything (the instance is disabled); returns how many frames.
  std::uint64_t dropAll();

  std::uint64_t lastWritten() const { return lastWritten_; }  // ring seq of the last frame written whole
  std::uint64_t acked() const { return acked_; }
  std::uint64_t lastAdded() const { return nextRingSeq_ - 1; }
  std::uint64_t held() const { return lastAdded() - acked_; }

 private:
  struct Held {
    FrameSpan span;
    std::uint32_t input;
    std::uint64_t firstRingSeq;
  };
  std::uint32_t inputOf(const FrameBatch& batch);

  FrameRingWriter& ring_;
  const std::vector<std::string> inputs_;
  std::deque<Held> held_;
  std::size_t writeIndex_ = 0;        // held_[writeIndex_] is being written (or is next)
  FrameRingWriter::Cursor cursor_;
  bool writing_ = false;              // cursor_ is within held_[writeIndex_]
  std::uint64_t nextRingSeq_ = 1;
  std::uint64_t lastWritten_ = 0;
  std::uint64_t acked_ = 0;
};

}  // namespace streamrelay
