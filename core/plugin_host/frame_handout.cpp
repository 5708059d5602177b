// SPDX-License-Identifier: Apache-2.0
#include "frame_handout.hpp"

#include <functional>

namespace streamrelay {

// What a streamrelay_retained* points to. `refs` counts the plugin's
// retains not yet released, plus one while it is the call's cached entry.
// With State::ordered each retain has an entry of its own (a shared one
// could not tell which of its frames were released), and `index`, the
// frame's, is in the state's multiset while it lives.
struct FrameHandout::Retained {
  FrameBatchPtr batch;
  std::atomic<std::uint32_t> refs;
  std::shared_ptr<State> state;
  const std::uint64_t index;  // with State::ordered; else UINT64_MAX

  Retained(FrameBatchPtr b, std::shared_ptr<State> s, std::uint64_t frameIndex = UINT64_MAX)
      : batch(std::move(b)), refs(1), state(std::move(s)), index(frameIndex) {
    state->outstanding.fetch_add(1, std::memory_order_relaxed);
    if (index == UINT64_MAX) return;
    std::lock_guard<std::mutex> lock(state->mutex);
    state->lowest.insert(index);
  }
  ~Retained() {
    if (index != UINT64_MAX) {
      std::lock_guard<std::mutex> lock(state->mutex);
      state->lowest.erase(state->lowest.find(index));
    }
    state->outstanding.fetch_sub(1, std::memory_order_relaxed);
  }
};

FrameHandout::FrameHandout() : state_(std::make_shared<State>()) {
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
    const std::string_view key = span.batch->key(i);  // empty: none (so is an empty key)
    frame.key = key.empty() ? nullptr : key.data();
    frame.key_size = key.size();
    frames_.push_back(frame);
    batches_.push_back(&span.batch);
  }
  return i;
}

streamrelay_retained* FrameHandout::retain(const streamrelay_frame* frame) {
  const std::less<const streamrelay_frame*> before;
  if (frames_.empty() || before(frame, frames_.data()) || !before(frame, frames_.data() + frames_.size()))
    return nullptr;
  // Only the address of a frame handed out: a plugin that steps through the
  // array by another struct size points between them.
  const auto offset = reinterpret_cast<const char*>(frame) - reinterpret_cast<const char*>(frames_.data());
  if (offset % static_cast<std::ptrdiff_t>(sizeof(streamrelay_frame)) != 0) return nullptr;
  const auto at = static_cast<std::size_t>(offset) / sizeof(streamrelay_frame);
  const FrameBatchPtr& batch = *batches_[at];
  if (state_->ordered) return reinterpret_cast<streamrelay_retained*>(new Retained(batch, state_, firstIndex_ + at));
  if (!cached_ || cached_->batch != batch) {
    dropCached();
    cached_ = new Retained(batch, state_);
  }
  cached_->refs.fetch_add(1, std::memory_order_relaxed);
  return reinterpret_cast<streamrelay_retained*>(cached_);
}

void FrameHandout::release(streamrelay_retained* retained) {
  auto* r = reinterpret_cast<Retained*>(retained);
  if (r->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete r;
}

std::uint64_t FrameHandout::lowestRetained() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->lowest.empty() ? UINT64_MAX : *state_->lowest.begin();
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
