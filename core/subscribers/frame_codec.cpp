// SPDX-License-Identifier: Apache-2.0
#include "frame_codec.hpp"

#include <memory>

namespace streamrelay {

void FrameWriter::beginFrame() {
  frame_ = EncodedFrame{};
  frame_.offset = out_.bytes_.size();
  referenced_ = 0;
  skipped_ = false;
}

void FrameWriter::payload(std::string_view payload) {
  if (payload.size() <= kCopiedPayloadBytes) {
    put(payload);
    return;
  }
  frame_.headBytes = out_.bytes_.size() - frame_.offset;
  frame_.payloadByReference = true;
  referenced_ = payload.size();
}

void FrameWriter::endFrame() {
  const std::size_t written = out_.bytes_.size() - frame_.offset;
  if (skipped_) {
    out_.bytes_.resize(frame_.offset);
    frame_ = EncodedFrame{};
    frame_.offset = out_.bytes_.size();
  } else if (frame_.payloadByReference) {
    frame_.tailBytes = written - frame_.headBytes;
    frame_.total = written + referenced_;
  } else {
    frame_.headBytes = written;
    frame_.total = frame_.headBytes;
  }
  out_.frames_.push_back(frame_);
}

const EncodedBatch& FrameCodec::encoded(const FrameBatch& batch, std::uint16_t flags) const {
  flags &= kFlagsKnown;
  const std::uint64_t key = keys_[flags];
  if (const BatchAnnex* found = batch.annex(key)) return static_cast<const EncodedBatch&>(*found);
  auto encoding = std::make_unique<EncodedBatch>();
  FrameWriter writer(*encoding, flags);
  for (std::size_t i = 0; i < batch.frameCount(); ++i) {
    writer.beginFrame();
    encodeFrame(batch, i, writer);
    writer.endFrame();
  }
  return static_cast<const EncodedBatch&>(batch.addAnnex(key, std::move(encoding)));
}

}  // namespace streamrelay
