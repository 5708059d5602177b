// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: whatever a delimiter listener agrees to send, a delimiter
// decoder reads back exactly (frames split or merged would corrupt a
// subscriber's stream).
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "framing.hpp"

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
  FrameEncoder encoder(spec);
  std::string stream;
  std::vector<std::string> sent;
  for (const std::string& p : payloads) {
    if (!encoder.canEncode(p)) continue;
    char header[8];
    iovec iov[3];
    int n = encoder.encode(p, 0, header, iov);
    for (int i = 0; i < n; ++i) stream.append(static_cast<char*>(iov[i].iov_base), iov[i].iov_len);
    sent.push_back(p);
  }
  auto decoder = FrameDecoder::create(spec);
  FrameBatchBuilder builder;
  if (!decoder->decode(stream.data(), stream.size(), builder)) std::abort();
  auto batch = builder.seal(0, 0);
  if (batch->frameCount() != sent.size()) std::abort();
  for (std::size_t i = 0; i < sent.size(); ++i)
    if (batch->payload(i) != sent[i]) std::abort();
  return 0;
}
