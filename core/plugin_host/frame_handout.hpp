// SPDX-License-Identifier: Apache-2.0
#pragma once
// FrameHandout: the frames of one call into a plugin (on_frames, or on_frame
// one by one) as the plugin sees them — an array of streamrelay_frame
// pointing into the shared batches, never copies — and the batch each frame
// comes from, so that ABI 1.2 retain can keep that batch alive after the call.
//
// A retained frame holds a reference to its batch; frames of one batch
// retained during one call share a reference (one atomic increment each).
//
// Worker thread only, except release() and retainedBatches() (any thread).

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "streamrelay/plugin.h"
#include "subscription_queue.hpp"

namespace streamrelay {

class FrameHandout {
 public:
  // The most frames handed over in one call.
  static constexpr std::size_t kMaxFrames = 1024;

  FrameHandout();
  ~FrameHandout();
  FrameHandout(const FrameHandout&) = delete;
  FrameHandout& operator=(const FrameHandout&) = delete;

  // Adds the frames of `span` from index `first` on until the call is full;
  // returns the index after the last frame added. `span` must stay alive
  // until endCall().
  std::uint32_t add(const FrameSpan& span, std::uint32_t first);
  bool full() const { return frames_.size() >= kMaxFrames; }
  bool empty() const { return frames_.empty(); }
  const streamrelay_frame* frames() const { return frames_.data(); }
  std::size_t size() const { return frames_.size(); }

  // During the call: a reference to the batch of `frame`, which must be one
  // of frames() (else null).
  streamrelay_retained* retain(const streamrelay_frame* frame);
  static void release(streamrelay_retained* retained);
  // Ends the call: its frames are forgotten (their batches stay alive only
  // where retained).
  void endCall();
  // Batches retained and not yet released (a plugin that forgot some).
  std::int64_t retainedBatches() const { return outstanding_->load(std::memory_order_relaxed); }

 private:
  struct Retained;
  void dropCached();

  std::vector<streamrelay_frame> frames_;
  std::vector<const FrameBatchPtr*> batches_;  // the batch of each frame (in its span)
  Retained* cached_ = nullptr;                 // the batch last retained in this call
  const std::shared_ptr<std::atomic<std::int64_t>> outstanding_;
};

}  // namespace streamrelay
