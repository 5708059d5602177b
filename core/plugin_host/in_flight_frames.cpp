// SPDX-License-Identifier: Apache-2.0
#include "in_flight_frames.hpp"

namespace streamrelay {

InFlightFrames::InFlightFrames(FrameRingWriter& ring, std::vector<std::string> inputs)
    : ring_(ring), inputs_(std::move(inputs)) {}

std::uint32_t InFlightFrames::inputOf(const FrameBatch& batch) {
  if (const StreamId* stream = batch.stream())
    for (std::size_t i = 0; i < inputs_.size(); ++i)
      if (inputs_[i] == stream->name) return static_cast<std::uint32_t>(i);
  return RingRecord::kNoInput;
}

void InFlightFrames::add(const FrameSpan& span) {
  if (span.frameCount() == 0) return;
  held_.push_back({span, inputOf(*span.batch), nextRingSeq_});
  nextRingSeq_ += span.frameCount();
}

bool InFlightFrames::writeSome() {
  bool wrote = false;
  while (writeIndex_ < held_.size()) {
    if (!writing_) {
      const Held& h = held_[writeIndex_];
      cursor_ = {h.span, h.input, h.firstRingSeq, 0};
      writing_ = true;
    }
    if (!ring_.write(cursor_)) break;
    wrote = true;
    if (cursor_.partOffset == 0) lastWritten_ = cursor_.ringSeq - 1;
    if (cursor_.span.first == cursor_.span.end) {
      ++writeIndex_;
      writing_ = false;
    }
  }
  return wrote;
}

std::uint64_t InFlightFrames::release(std::uint64_t acked) {
  if (acked <= acked_) return 0;
  const std::uint64_t released = acked - acked_;
  acked_ = acked;
  while (!held_.empty()) {
    Held& front = held_.front();
    const std::uint64_t last = front.firstRingSeq + front.span.frameCount() - 1;
    if (last > acked) {  // partly acknowledged: what is left of it stays
      if (front.firstRingSeq <= acked) {
        front.span.first += static_cast<std::uint32_t>(acked + 1 - front.firstRingSeq);
        front.firstRingSeq = acked + 1;
      }
      break;
    }
    held_.pop_front();
    if (writeIndex_ > 0) --writeIndex_;
    else writing_ = false;  // never: only written frames are acknowledged
  }
  return released;
}

void InFlightFrames::rewind() {
  writeIndex_ = 0;
  writing_ = false;
  lastWritten_ = acked_;
}

std::uint64_t InFlightFrames::dropUnwritten() {
  std::uint64_t dropped = 0;
  while (held_.size() > writeIndex_) {
    const Held& back = held_.back();
    if (writing_ && held_.size() == writeIndex_ + 1) {  // the one being written: keep what went out
      dropped += back.span.frameCount() - (cursor_.ringSeq - back.firstRingSeq);
      held_.back().span.end = static_cast<std::uint32_t>(back.span.first + (cursor_.ringSeq - back.firstRingSeq));
      if (held_.back().span.frameCount() == 0) held_.pop_back();
      else ++writeIndex_;
      writing_ = false;
      break;
    }
    dropped += back.span.frameCount();
    held_.pop_back();
  }
  nextRingSeq_ = lastWritten_ + 1;
  return dropped;
}

std::uint64_t InFlightFrames::dropAll() {
  const std::uint64_t dropped = held();
  held_.clear();
  writeIndex_ = 0;
  writing_ = false;
  acked_ = lastWritten_ = nextRingSeq_ - 1;
  return dropped;
}

}  // namespace streamrelay
