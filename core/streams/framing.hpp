// SPDX-License-Identifier: Apache-2.0
#pragma once
// Framing: how a byte stream is cut into frames (decoders, for sources); a
// raw listener puts frames back on a stream in its framing (raw_protocol.cpp).
//
// Decoders are incremental: a frame may arrive split over many reads and one
// read may carry many frames. They check max_frame_bytes before keeping any
// byte of a frame, and never allocate what a length prefix announces: a frame's
// bytes are stored only as they arrive.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

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
  // Resume after `position` (a lastEventId() kept from an earlier run); ignored by framings without one.
  virtual void resumeAfter(const std::string& position) { (void)position; }

  static std::unique_ptr<FrameDecoder> create(const FramingSpec& spec);

 protected:
  bool fail(std::uint64_t offset, std::uint64_t announced, std::string message);
  ProtocolError error_;
};

}  // namespace streamrelay
