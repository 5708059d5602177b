// SPDX-License-Identifier: Apache-2.0
// key_extraction_bench: frames/s of finding the key of 128-byte JSON frames
// (streams.NAME.key), one core, nothing else: the relay's rules (simdjson
// On-Demand for json_pointer, PCRE for regex, bytes) and what they were
// chosen over (POCO's JSON parser building the DOM, as the filter plugin
// does; std::regex; POCO's RegularExpression). Built and run by
// tests/bench/key-bench.sh; prints a Markdown table.
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/RegularExpression.h>
#include <simdjson.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <regex>
#include <string>
#include <vector>

#include "key_extractor.hpp"

using namespace streamrelay;

namespace {

constexpr int kFrames = 100000;
constexpr int kBatch = 100;  // frames per published batch
#define STRINGIFY2(x) #x
#define STRINGIFY(x) STRINGIFY2(x)
#define STRINGIFY_VERSION STRINGIFY(SIMDJSON_VERSION)
const char* kPattern = R"re("symbol":"([^"]*)")re";

// {"symbol":"md.eu.K0042","price":123.45,"size":7,...}, padded to 128 bytes.
std::vector<std::string> makeFrames() {
  std::vector<std::string> frames;
  for (int i = 0; i < kFrames; ++i) {
    char text[160];
    std::snprintf(text, sizeof text,
                  R"({"symbol":"md.eu.K%04d","price":%d.%02d,"size":%d,"side":"%s","venue":"XEUR","ts":17000000%08d,"n":")",
                  i % 5000, 100 + i % 900, i % 100, 1 + i % 50, i % 2 ? "buy" : "sell", i);
    std::string f = text;
    if (f.size() < 126) f.append(126 - f.size(), 'x');
    frames.push_back(f + "\"}");
  }
  return frames;
}

std::vector<std::unique_ptr<FrameBatch>> makeBatches(const std::vector<std::string>& frames) {
  std::vector<std::unique_ptr<FrameBatch>> batches;
  FrameBatchBuilder builder;
  for (const std::string& f : frames) {
    builder.add(f.data(), f.size());
    if (builder.frameCount() == kBatch) batches.push_back(builder.seal(0, 0));
  }
  return batches;
}

// Runs `pass` (one pass over every frame; returns the keys found) until a
// second has passed; prints frames/s.
void measure(const char* method, const std::function<long()>& pass) {
  using Clock = std::chrono::steady_clock;
  long keys = pass();  // warm up, and the keys a pass finds
  long frames = 0;
  const auto start = Clock::now();
  Clock::duration elapsed{};
  while (elapsed < std::chrono::seconds(1)) {
    pass();
    frames += kFrames;
    elapsed = Clock::now() - start;
  }
  const double seconds = std::chrono::duration<double>(elapsed).count();
  std::printf("| %-52s | %12.0f | %8.0f | %6ld |\n", method, frames / seconds, seconds * 1e9 / frames, keys);
}

KeyRule rule(KeyRule::Kind kind) {
  KeyRule r;
  r.kind = kind;
  r.pointer = "/symbol";
  r.pattern = kPattern;
  r.group = 1;
  r.offset = 11;
  r.length = 11;
  return r;
}

}  // namespace

int main() {
  const std::vector<std::string> frames = makeFrames();
  std::vector<std::unique_ptr<FrameBatch>> batches = makeBatches(frames);
  std::printf("%d frames of %zu bytes, batches of %d; simdjson %s, implementation %s\n\n", kFrames, frames[0].size(),
              kBatch, STRINGIFY_VERSION, simdjson::builtin_implementation()->name().c_str());
  std::printf("| %-52s | %12s | %8s | %6s |\n|---|---:|---:|---:|\n", "method", "frames/s", "ns/frame", "keys");

  auto keyBatches = [&](KeyExtractor& extractor) {
    return [&] {
      long keys = 0;
      for (auto& batch : batches) {
        batch->setKeys(FrameKeys());
        extractor.keyBatch(*batch);
        for (std::size_t i = 0; i < batch->frameCount(); ++i) keys += batch->hasKey(i);
      }
      return keys;
    };
  };
  KeyExtractor json(rule(KeyRule::Kind::JsonPointer));
  measure("json_pointer: simdjson On-Demand, keyBatch (the relay's)", keyBatches(json));
  measure("json_pointer: POCO JSON Parser (DOM), as the filter", [&] {
    long keys = 0;
    Poco::JSON::Parser parser;
    for (const std::string& f : frames) {
      try {
        parser.reset();
        Poco::JSON::Object::Ptr o = parser.parse(f).extract<Poco::JSON::Object::Ptr>();
        keys += !o->getValue<std::string>("symbol").empty();
      } catch (const Poco::Exception&) {
      }
    }
    return keys;
  });
  KeyExtractor pcre(rule(KeyRule::Kind::Regex));
  measure("regex: PCRE with its JIT, keyBatch (the relay's)", keyBatches(pcre));
  measure("regex: POCO RegularExpression (a copy per frame)", [&] {
    long keys = 0;
    Poco::RegularExpression re(kPattern);
    Poco::RegularExpression::MatchVec groups;
    std::string subject;
    for (auto& batch : batches)
      for (std::size_t i = 0; i < batch->frameCount(); ++i) {
        subject.assign(batch->payload(i));
        keys += re.match(subject, 0, groups) > 1 && groups[1].length > 0;
      }
    return keys;
  });
  measure("regex: std::regex (ECMAScript)", [&] {
    long keys = 0;
    const std::regex re(kPattern);
    std::cmatch m;
    for (auto& batch : batches)
      for (std::size_t i = 0; i < batch->frameCount(); ++i) {
        const std::string_view p = batch->payload(i);
        keys += std::regex_search(p.data(), p.data() + p.size(), m, re) && m[1].length() > 0;
      }
    return keys;
  });
  KeyExtractor bytes(rule(KeyRule::Kind::Bytes));
  measure("bytes: offset 11, length 11, keyBatch", keyBatches(bytes));
  return 0;
}
