// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the key rules (streams.NAME.key) over frames a provider
// may send. The input is cut at '\n' into the frames of one batch; every
// rule kind keys the batch. A key must be non-empty and at most 256 bytes;
// a bytes or regex key is part of the frame; and a frame keyed in its batch
// gets the same key as the same frame alone (the JSON parser reads past a
// frame's end: what lies there, or what the frames before left in its
// buffers, must not change a key). An exception or a crash is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "key_extractor.hpp"

namespace {

using streamrelay::KeyExtractor;
using streamrelay::KeyRule;

std::vector<std::unique_ptr<KeyExtractor>> makeExtractors() {
  std::vector<std::unique_ptr<KeyExtractor>> list;
  KeyRule json;
  json.kind = KeyRule::Kind::JsonPointer;
  for (const char* pointer : {"/symbol", "/a/0/b~1c~0"}) {
    json.pointer = pointer;
    list.push_back(std::make_unique<KeyExtractor>(json));
  }
  KeyRule regex;
  regex.kind = KeyRule::Kind::Regex;
  regex.pattern = R"re("symbol":\s*"([^"]*)")re";
  regex.group = 1;
  list.push_back(std::make_unique<KeyExtractor>(regex));
  regex.pattern = R"((\w+)+\.(x|y)*$)";  // backtracks: the match limit must end it
  regex.group = 2;
  list.push_back(std::make_unique<KeyExtractor>(regex));
  KeyRule bytes;
  bytes.kind = KeyRule::Kind::Bytes;
  bytes.offset = 2;
  bytes.length = 8;
  list.push_back(std::make_unique<KeyExtractor>(bytes));
  return list;
}

bool within(std::string_view part, std::string_view whole) {
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::vector<std::unique_ptr<KeyExtractor>> extractors = makeExtractors();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  for (auto& extractor : extractors) {
    streamrelay::FrameBatchBuilder builder;
    for (std::size_t start = 0; start <= input.size();) {
      std::size_t end = input.find('\n', start);
      if (end == std::string_view::npos) end = input.size();
      builder.add(input.data() + start, end - start);
      start = end + 1;
    }
    std::unique_ptr<streamrelay::FrameBatch> batch = builder.seal(0, 0);
    extractor->keyBatch(*batch);
    for (std::size_t i = 0; i < batch->frameCount(); ++i) {
      const std::string_view payload = batch->payload(i);
      const std::string inPlace = batch->hasKey(i) ? std::string(batch->key(i)) : std::string();
      if (batch->hasKey(i) && (inPlace.empty() || inPlace.size() > streamrelay::kMaxKeyBytes)) std::abort();
      const std::string alone(payload);
      const auto key = extractor->find(alone);
      if (key.has_value() != batch->hasKey(i) || (key && *key != inPlace)) std::abort();
      if (key && extractor->rule().kind != KeyRule::Kind::JsonPointer && !within(*key, alone)) std::abort();
    }
  }
  return 0;
}
