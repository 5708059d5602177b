// SPDX-License-Identifier: Apache-2.0
#include "frame_handout.hpp"

#include <functional>

namespace streamrelay {

// What a streamrelay_retained* points to. `refs` counts the plugin's
// retains not yet released, plus one while it is the call's cached entry.
struct FrameHandout::Retained {
  FrameBatchPtr batch;
  std::atomic<std::uint32_t> refs;
  std::shared_ptr<std::atomic<std::int64_t>> outstanding;

  Retained(FrameBatchPtr b, std::shared_ptr<std::atomic<std::int64_t>> count)
      : batch(std::move(b)), refs(1), outstanding(std::move(count)) {
    outstanding->fetch_add(1, std::memory_order_relaxed);
  }
  ~Retained() { outstanding->fetch_sub(1, std::memory_order_relaxed); }
};

FrameHandout::FrameHandout() : outstanding_(std::make_shared<std::atomic<std::int64_t>>(0)) {
  frames_.reserve(kMaxFrames);
  batches_.reserve(kMaxFrames);
}

FrameHandout::~FrameHandout() { endCall(); }

std::uint32_t FrameHandout::add(const FrameSpan& span, std::uint32_t first) {
  streamrelay_frame frame{};
  frame.struct_size = sizeof frame;
  frame.received_unix_ns = span.batch->receivedUnixNs();
  if (const StreamId* stream = span.batch->stream()) {
    frame.stream = stream->name.c_str();
    frame.epoch = stream->epoch;
  }
  std::uint32_t i = first;
  for (; i < span.end && !full(); ++i) {
    const std::string_view payload = span.batch->payload(i);
    frame.data = reinterpret_cast<const std::uint8_t*>(payload.data());
    frame.size = payload.size();
    frame.seq = span.batch->seq(i);
    frames_.push_back(frame);
    batches_.push_back(&span.batch);
  }
  return i;
}

streamrelay_retained* FrameHandout::retain(const streamrelay_frame* frame) {
  const std::less<const streamrelay_frame*> before;
  if (frames_.empty() || before(frame, frames_.data()) || !before(frame, frames_.data() + frames_.size()))
    return nullptr;
  const FrameBatchPtr& batch = *batches_[static_cast<std::size_t>(frame - frames_.data())];
  if (!cached_ || cached_->batch != batch) {
    dropCached();
    cached_ = new Retained(batch, outstanding_);
  }
  cached_->refs.fetch_add(1, std::memory_order_relaxed);
  return reinterpret_cast<streamrelay_retained*>(cached_);
}

void FrameHandout::release(streamrelay_retained* retained) {
  auto* r = reinterpret_cast<Retained*>(retained);
  if (r->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete r;
}

void FrameHandout::dropCached() {
  if (cached_) release(reinterpret_cast<streamrelay_retained*>(cached_));
  cached_ = nullptr;
}

void FrameHandout::endCall() {
  dropCached();
  frames_.clear();
  batches_.clear();
}

}  // namespace streamrelay
