// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: whatever a raw listener with a delimiter framing agrees
// to send (its codec, as its subscribers' sessions write it), a delimiter
// decoder reads back exactly (frames split or merged would corrupt a
// subscriber's stream).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "config.hpp"
#include "framing.hpp"
#include "listener_protocol.hpp"

using namespace streamrelay;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  FramingSpec spec;
  spec.type = FramingType::Delimiter;
  spec.maxFrameBytes = 1 << 20;
  const std::size_t delimiterBytes = 1 + data[0] % 4;
  if (size < 1 + delimiterBytes) return 0;
  spec.delimiter.assign(reinterpret_cast<const char*>(data) + 1, delimiterBytes);
  data += 1 + delimiterBytes;
  size -= 1 + delimiterBytes;
  // The rest: payloads separated by 0xff (so payloads may hold any other byte).
  std::vector<std::string> payloads(1);
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == 0xff) payloads.emplace_back();
    else payloads.back() += static_cast<char>(data[i]);
  }
  ListenerConfig config;
  config.framing = spec;
  const auto raw = listenerProtocol("raw").create(config, {});
  FrameBatchBuilder frames;
  for (const std::string& p : payloads) frames.add(p.data(), p.size());
  const auto out = frames.seal(0);
  const EncodedBatch& encoded = raw->codec().encoded(*out);
  std::string stream;
  std::vector<std::string> sent;
  for (std::size_t i = 0; i < out->frameCount(); ++i) {
    const EncodedFrame& f = encoded.frame(i);
    if (f.total == 0) continue;  // a payload the framing cannot carry (it holds the delimiter): skipped
    stream.append(encoded.bytes() + f.offset, f.headBytes);
    if (f.payloadByReference) stream.append(out->payload(i));
    stream.append(encoded.bytes() + f.offset + f.headBytes, f.tailBytes);
    sent.push_back(payloads[i]);
  }
  auto decoder = FrameDecoder::create(spec);
  FrameBatchBuilder builder;
  if (!decoder->decode(stream.data(), stream.size(), builder)) std::abort();
  auto batch = builder.seal(0);
  if (batch->frameCount() != sent.size()) std::abort();
  for (std::size_t i = 0; i < sent.size(); ++i)
    if (batch->payload(i) != sent[i]) std::abort();
  return 0;
}
