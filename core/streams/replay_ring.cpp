// SPDX-License-Identifier: Apache-2.0
#include "replay_ring.hpp"

#include <iterator>

namespace streamrelay {

bool ReplayRing::tooOld(const FrameBatch& batch, std::int64_t nowSteadyNs) const {
  return limits_.maxAge.count() != 0 &&
         nowSteadyNs - batch.receivedSteadyNs() > std::chrono::nanoseconds(limits_.maxAge).count();
}

void ReplayRing::evictFront(std::vector<FrameBatchPtr>& evicted) {
  frames_ -= batches_.front()->frameCount();
  bytes_ -= batches_.front()->totalWireBytes();
  evicted.push_back(std::move(batches_.front()));
  batches_.pop_front();
}

void ReplayRing::append(const FrameBatchPtr& batch, std::vector<FrameBatchPtr>& evicted) {
  batches_.push_back(batch);
  frames_ += batch->frameCount();
  bytes_ += batch->totalWireBytes();
  // Frames: drop the oldest batch while the rest still covers max_frames.
  while (limits_.maxFrames != 0 && batches_.size() > 1 &&
         frames_ - batches_.front()->frameCount() >= limits_.maxFrames && aboveFloor())
    evictFront(evicted);
  // Bytes: a hard bound (the newest batch alone may exceed it: then nothing
  // is kept), but for keepBytes_.
  while (limits_.maxBytes != 0 && !batches_.empty() && bytes_ > limits_.maxBytes && aboveFloor())
    evictFront(evicted);
  const std::int64_t now = steadyNowNs();
  while (!batches_.empty() && tooOld(*batches_.front(), now)) evictFront(evicted);
}

void ReplayRing::clear(std::vector<FrameBatchPtr>& evicted) {
  while (!batches_.empty()) evictFront(evicted);
}

std::vector<FrameSpan> ReplayRing::newest(std::size_t frames) const {
  std::vector<FrameSpan> spans;
  // Walk back from the newest batch until `frames` are covered (or the rest
  // is past max_age: a stream that went quiet keeps its ring until the next
  // append), then forward.
  const std::int64_t now = steadyNowNs();
  std::size_t covered = 0;
  auto it = batches_.end();
  while (it != batches_.begin() && covered < frames && !tooOld(**std::prev(it), now)) {
    --it;
    covered += (*it)->frameCount();
  }
  for (; it != batches_.end(); ++it) {
    std::uint32_t first = 0;
    if (covered > frames) {  // the oldest batch: only its newest frames
      first = static_cast<std::uint32_t>(covered - frames);
      covered = frames;
    }
    spans.push_back({*it, first, static_cast<std::uint32_t>((*it)->frameCount())});
  }
  return spans;
}

std::optional<std::vector<FrameSpan>> ReplayRing::after(std::uint64_t after) const {
  // A batch past max_age is as good as gone (see newest()).
  const std::int64_t now = steadyNowNs();
  auto it = batches_.begin();
  while (it != batches_.end() && tooOld(**it, now)) ++it;
  if (it == batches_.end()) return std::nullopt;
  const std::uint64_t wanted = after + 1;
  const FrameBatch& newestBatch = *batches_.back();
  if (wanted < (*it)->firstSeq() || wanted > newestBatch.seq(newestBatch.frameCount() - 1)) return std::nullopt;
  std::vector<FrameSpan> spans;
  std::uint64_t expected = wanted;  // the seq the next span must start at: no gap is replayed over
  for (; it != batches_.end(); ++it) {
    const FrameBatch& batch = **it;
    if (batch.seq(batch.frameCount() - 1) < wanted) continue;
    const std::uint64_t first = wanted > batch.firstSeq() ? wanted - batch.firstSeq() : 0;
    if (batch.seq(first) != expected) return std::nullopt;
    spans.push_back({*it, static_cast<std::uint32_t>(first), static_cast<std::uint32_t>(batch.frameCount())});
    expected = batch.seq(batch.frameCount() - 1) + 1;
  }
  return spans;
}

ReplayRing::TimeStart ReplayRing::receivedSince(std::int64_t unixNs) const {
  const std::int64_t now = steadyNowNs();
  TimeStart start;
  bool first = true;
  for (const FrameBatchPtr& batch : batches_) {
    if (tooOld(*batch, now)) continue;
    if (first) start.covered = batch->receivedUnixNs() <= unixNs;
    first = false;
    if (batch->receivedUnixNs() >= unixNs) {
      start.seq = batch->firstSeq();
      break;
    }
  }
  return start;
}

}  // namespace streamrelay
