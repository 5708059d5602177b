// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: every frame decoder (server-sent events included), fed a stream cut at fuzzer-chosen
// points. A decoder must never crash, never hand out a frame over
// max_frame_bytes, and never allocate what a length prefix announces (the run
// uses -malloc_limit_mb to catch that).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "framing.hpp"

using namespace streamrelay;

namespace {

// The first bytes of the input choose the framing; the rest is the stream.
FramingSpec pickSpec(const std::uint8_t*& data, std::size_t& size) {
  FramingSpec spec;
  if (size < 2) return spec;
  const std::uint8_t kind = data[0] % 5, param = data[1];
  data += 2;
  size -= 2;
  spec.maxFrameBytes = 1 + (param % 64) * 97;  // small caps exercise the limit checks
  switch (kind) {
    case 0:
      spec.type = FramingType::LengthPrefix;
      spec.width = 1 << (param % 4);
      spec.byteOrder = param & 0x10 ? ByteOrder::Little : ByteOrder::Big;
      break;
    case 1: {
      spec.type = FramingType::Delimiter;
      std::size_t length = 1 + param % 4;
      spec.delimiter.clear();
      for (std::size_t i = 0; i < length && size > 0; ++i, ++data, --size) spec.delimiter += static_cast<char>(*data);
      if (spec.delimiter.empty()) spec.delimiter = "\n";
      spec.strip = param & 0x20;
      break;
    }
    case 2:
      spec.type = FramingType::Fixed;
      spec.fixedSize = 1 + param % 32;
      spec.maxFrameBytes = std::max(spec.maxFrameBytes, spec.fixedSize);
      break;
    case 3:
      spec.type = FramingType::Sse;
      break;
    default:
      break;  // the default wire framing
  }
  return spec;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FramingSpec spec = pickSpec(data, size);
  auto decoder = FrameDecoder::create(spec);
  FrameBatchBuilder builder;
  // Cut the stream into reads whose lengths come from the data itself.
  std::size_t offset = 0, step = 1;
  while (offset < size) {
    std::size_t take = std::min(size - offset, step);
    if (!decoder->decode(reinterpret_cast<const char*>(data) + offset, take, builder)) break;
    offset += take;
    step = 1 + (data[offset - 1] % 61);
  }
  auto batch = builder.seal(0, 0);
  for (std::size_t i = 0; i < batch->frameCount(); ++i) {
    std::size_t frame = batch->payload(i).size();
    if (frame > spec.maxFrameBytes + spec.delimiter.size()) std::abort();  // strip: false keeps the delimiter
  }
  return 0;
}
