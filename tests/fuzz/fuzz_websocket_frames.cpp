// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the websocket source's frame decoder (websocket_frames.hpp)
// fed a provider's byte stream cut at fuzzer-chosen points. It must never
// crash, never hand out a message over max_frame_bytes, never allocate what a
// frame header announces (the run uses -malloc_limit_mb to catch that), and
// read nothing after a CLOSE.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "websocket_frames.hpp"

using namespace streamrelay;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t maxBytes = 1 + (data[0] % 64) * 97;  // small caps exercise the limit checks
  ++data;
  --size;
  WebSocketDecoder decoder(maxBytes);
  FrameBatchBuilder builder;
  std::size_t offset = 0, step = 1, framesAtClose = 0;
  bool wasClosed = false;
  while (offset < size) {
    const std::size_t take = std::min(size - offset, step);
    if (!decoder.decode(reinterpret_cast<const char*>(data) + offset, take, builder)) break;
    if (wasClosed && builder.frameCount() != framesAtClose) std::abort();  // a frame after the CLOSE
    if (decoder.closed() && !wasClosed) {
      wasClosed = true;
      framesAtClose = builder.frameCount();
    }
    for (const std::string& ping : decoder.pings())
      if (ping.size() > 125) std::abort();
    decoder.pings().clear();
    offset += take;
    step = 1 + (data[offset - 1] % 61);
  }
  auto batch = builder.seal(0, 0);
  for (std::size_t i = 0; i < batch->frameCount(); ++i)
    if (batch->payload(i).size() > maxBytes) std::abort();
  return 0;
}
