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
// With trackOrder() (the child process of an isolated instance, which must
// not acknowledge a frame the plugin still holds), it also knows the lowest
// frame still retained, counted in frames handed over since the start (the
// `firstIndex` of each call): each retain is then an entry of its own;
// without it, retain costs no lock and no allocation but once per batch.
//
// Worker thread only, except release(), retainedBatches() and
// lowestRetained() (any thread).

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
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

  // Keep the lowest retained frame from now on. Before the first call.
  void trackOrder() { state_->ordered = true; }
  // Starts a call whose first frame is the `firstIndex`-th handed over (from 0).
  void startCall(std::uint64_t firstIndex) { firstIndex_ = firstIndex; }

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
  std::int64_t retainedBatches() const { return state_->outstanding.load(std::memory_order_relaxed); }
  // With trackOrder(): the index of the lowest frame retained and not yet
  // released (UINT64_MAX: none).
  std::uint64_t lowestRetained() const;

 private:
  struct Retained;
  // Shared with every Retained: a retained batch may outlive the handout.
  struct State {
    std::atomic<std::int64_t> outstanding{0};
    bool ordered = false;              // set before the first call
    std::mutex mutex;                  // guards lowest (only used when ordered)
    std::multiset<std::uint64_t> lowest;  // each Retained's lowest frame index
  };
  void dropCached();

  std::vector<streamrelay_frame> frames_;
  std::vector<const FrameBatchPtr*> batches_;  // the batch of each frame (in its span)
  Retained* cached_ = nullptr;                 // the batch last retained in this call
  std::uint64_t firstIndex_ = 0;               // of frames_[0], with trackOrder()
  const std::shared_ptr<State> state_;
};

}  // namespace streamrelay
