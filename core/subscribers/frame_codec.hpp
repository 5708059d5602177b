// SPDX-License-Identifier: Apache-2.0
#pragma once
// FrameCodec: how a listener's protocol puts frames on the wire, encoded
// once per listener and shared by every one of its subscribers.
//
// Either the batch's own wire form (a raw listener with the default
// framing: a run of frames goes out as one iovec straight from the batch),
// or an EncodedBatch: the first subscriber of the listener to reach a batch
// has the codec write every frame of it (FrameWriter) into one side buffer
// that the batch keeps as an annex (frame_batch.hpp) and the listener's
// other subscribers, on any writer thread, find there. A frame is then its
// protocol bytes (a length prefix, a 24-byte header, a WebSocket frame
// header, an SSE event's fields) around its payload. A small payload is
// copied into the side buffer, so that a run of small frames is one
// contiguous range (one iovec); a larger one is written from the batch
// itself. Either way no byte is copied per subscriber.
//
// Thread safe: a codec is immutable; encoded() may be called from any writer.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "frame_batch.hpp"

namespace streamrelay {

// One frame of an EncodedBatch: headBytes at `offset` of its bytes, then
// the payload from the batch (if payloadByReference), then tailBytes.
struct EncodedFrame {
  std::size_t offset = 0;
  std::size_t headBytes = 0;  // all of the frame, when its payload was copied in
  std::size_t tailBytes = 0;
  std::size_t total = 0;      // bytes on the wire; 0: the protocol cannot carry this frame (skipped)
  bool payloadByReference = false;
};

class EncodedBatch : public BatchAnnex {
 public:
  const EncodedFrame& frame(std::size_t i) const { return frames_[i]; }
  const char* bytes() const { return bytes_.data(); }
  std::size_t sideBytes() const { return bytes_.size(); }

 private:
  friend class FrameWriter;
  std::string bytes_;
  std::vector<EncodedFrame> frames_;
};

// What a codec writes one frame with: its bytes, and the payload once.
class FrameWriter {
 public:
  // Payloads up to this size are copied into the side buffer (see above).
  static constexpr std::size_t kCopiedPayloadBytes = 512;

  FrameWriter(EncodedBatch& out, std::uint16_t flags) : out_(out), flags_(flags) {}
  // The flags of the frames written (wire.hpp: snapshot, conflated), for a
  // protocol that can carry them.
  std::uint16_t flags() const { return flags_; }
  void put(std::string_view bytes) { out_.bytes_.append(bytes.data(), bytes.size()); }
  void put(char c) { out_.bytes_.push_back(c); }
  // The payload, verbatim. At most once per frame.
  void payload(std::string_view payload);
  // This frame cannot be carried by the protocol: it is skipped (and counted).
  void skip() { skipped_ = true; }

  void beginFrame();
  void endFrame();

 private:
  EncodedBatch& out_;
  const std::uint16_t flags_;
  EncodedFrame frame_;
  std::size_t referenced_ = 0;  // payload bytes written from the batch
  bool skipped_ = false;
};

class FrameCodec {
 public:
  FrameCodec() {
    for (std::uint64_t& key : keys_) key = FrameBatch::newAnnexKey();
  }
  virtual ~FrameCodec() = default;
  FrameCodec(const FrameCodec&) = delete;
  FrameCodec& operator=(const FrameCodec&) = delete;

  // True: frames go out exactly as the batch holds them (a 4-byte
  // big-endian length and the payload); encodeFrame() is never called.
  virtual bool wireForm() const { return false; }
  // Writes frame `i` of `batch`. Called for every frame of a batch at once,
  // on the writer thread of the first subscriber to reach it: it must not
  // depend on the subscriber.
  virtual void encodeFrame(const FrameBatch& batch, std::size_t i, FrameWriter& out) const = 0;

  // The encoding of `batch` (built now if no subscriber of this listener
  // built it yet), with `flags` in each frame (FrameSpan::flags: another
  // encoding, kept beside the plain one, for the few frames that have them).
  const EncodedBatch& encoded(const FrameBatch& batch, std::uint16_t flags = 0) const;

  static constexpr std::uint16_t kFlagsKnown = 3;

 private:
  // This codec's annexes, one per flags value, never another codec's (even
  // one at the same address later).
  std::uint64_t keys_[kFlagsKnown + 1];
};

}  // namespace streamrelay
