// SPDX-License-Identifier: Apache-2.0
#pragma once
// Framing: how a byte stream is cut into frames (decoders, for sources) and how
// frames are put back on a stream (encoders, for listeners).
//
// Decoders are incremental: a frame may arrive split over many reads and one
// read may carry many frames. They check max_frame_bytes before keeping any
// byte of a frame, and never allocate what a length prefix announces: a frame's
// bytes are stored only as they arrive.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <sys/uio.h>

#include "frame_batch.hpp"

namespace streamrelay {

enum class FramingType { LengthPrefix, Delimiter, Fixed, Sse };  // Sse: sources only
enum class ByteOrder { Big, Little };

struct FramingSpec {
  FramingType type = FramingType::LengthPrefix;
  int width = 4;                       // length-prefix: 1, 2, 4 or 8
  ByteOrder byteOrder = ByteOrder::Big;
  std::string delimiter = "\n";        // delimiter: any non-empty byte string
  bool strip = true;                   // delimiter: drop the delimiter from the payload
  std::size_t fixedSize = 0;           // fixed: bytes per frame
  std::size_t maxFrameBytes = 1 << 20;

  // Largest frame this framing can carry at all (e.g. 255 for width 1).
  std::size_t largestEncodable() const;
  // The stored wire form (4-byte big-endian prefix) is already this framing.
  bool isWireForm() const;
  std::string describe() const;
};

// Why a decoder gave up on a stream. `offset` is the stream offset where the bad
// frame starts; `announced` is the size its header claimed (or the bytes seen
// without a delimiter).
struct ProtocolError {
  std::uint64_t offset = 0;
  std::uint64_t announced = 0;
  std::string message;
};

class FrameDecoder {
 public:
  virtual ~FrameDecoder() = default;
  // Appends every frame completed by these bytes to `out` (a partial frame stays
  // pending). Returns false on a protocol error: see error(); the stream must be
  // dropped, the decoder is then unusable.
  virtual bool decode(const char* data, std::size_t size, FrameBatchBuilder& out) = 0;
  const ProtocolError& error() const { return error_; }
  // Forget any partial frame (a new connection starts).
  virtual void reset() = 0;
  // Where the stream can resume (SSE's last event id); "" if the framing has none.
  virtual std::string lastEventId() const { return ""; }

  static std::unique_ptr<FrameDecoder> create(const FramingSpec& spec);

 protected:
  bool fail(std::uint64_t offset, std::uint64_t announced, std::string message);
  ProtocolError error_;
};

// Puts one frame on a listener's stream: header, payload, trailer, as iovecs
// pointing into the frame (no copy). Not thread safe: one per session.
class FrameEncoder {
 public:
  explicit FrameEncoder(const FramingSpec& spec);
  // False if this framing cannot carry the payload: too big for the prefix width
  // or max_frame_bytes, not the fixed size, or one the subscriber would cut
  // elsewhere (it contains the delimiter, or its end and the delimiter overlap
  // into an earlier delimiter).
  bool canEncode(std::string_view payload) const;
  // Encoded size of a payload of this size.
  std::size_t encodedSize(std::size_t payloadSize) const;
  // Writes up to 3 iovecs for the frame's encoding, skipping its first `skip`
  // bytes. `header` must stay valid until the iovecs are written (8 bytes).
  int encode(std::string_view payload, std::size_t skip, char* header, iovec* out) const;
  bool isWireForm() const { return wireForm_; }

 private:
  bool delimiterEndsFrameExactly(std::string_view payload) const;

  FramingSpec spec_;
  bool wireForm_;
  std::size_t headerBytes_;
  std::size_t trailerBytes_;
};

}  // namespace streamrelay
