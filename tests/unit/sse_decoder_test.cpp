// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "sse_decoder.hpp"

using namespace streamrelay;

namespace {

FramingSpec sse(std::size_t maxFrameBytes = 1 << 20) {
  FramingSpec spec;
  spec.type = FramingType::Sse;
  spec.maxFrameBytes = maxFrameBytes;
  return spec;
}

// Decodes `text` cut into pieces of `step` bytes; returns the frames.
std::vector<std::string> decodeAll(FrameDecoder& decoder, const std::string& text, std::size_t step) {
  FrameBatchBuilder builder;
  for (std::size_t i = 0; i < text.size(); i += step)
    REQUIRE(decoder.decode(text.data() + i, std::min(step, text.size() - i), builder));
  std::vector<std::string> frames;
  if (builder.empty()) return frames;
  auto batch = builder.seal(0);
  for (std::size_t i = 0; i < batch->frameCount(); ++i) frames.emplace_back(batch->payload(i));
  return frames;
}

}  // namespace

TEST_CASE("sse: each event's data is a frame, however the stream is cut", "[sse]") {
  const std::string stream =
      ": a comment, as heartbeats are\n"
      "id: 1\n"
      "event: trade\n"
      "data: {\"p\": 1}\n"
      "\n"
      "data: first line\r\n"
      "data: second line\r\n"
      "\r\n"
      "retry: 500\r"
      "data:no space\r"
      "\r"
      "id: 7\n"
      "\n"             // an event with no data: nothing
      "data\n"         // a field name alone: empty data
      "\n"
      "data: unfinished";  // no blank line yet: not an event
  const std::vector<std::string> expected{"{\"p\": 1}", "first line\nsecond line", "no space", ""};
  for (std::size_t step : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{7}, stream.size()}) {
    INFO("pieces of " << step << " bytes");
    SseDecoder decoder(sse());
    CHECK(decodeAll(decoder, stream, step) == expected);
    CHECK(decoder.lastEventId() == "7");
  }
}

TEST_CASE("sse: a new connection drops the event in progress and resumes after the last whole one", "[sse]") {
  SseDecoder decoder(sse());
  CHECK(decodeAll(decoder, "id: 41\ndata: a\n\nid: 42\ndata: cut in ha", 5) == std::vector<std::string>{"a"});
  CHECK(decoder.lastEventId() == "41");  // 42 was never complete
  decoder.reset();
  CHECK(decoder.lastEventId() == "41");
  CHECK(decodeAll(decoder, "lf\n\ndata: b\n\n", 4) == std::vector<std::string>{"b"});
}

TEST_CASE("sse: data or a line longer than max_frame_bytes is a protocol error before it is kept", "[sse]") {
  SECTION("one long data line") {
    SseDecoder decoder(sse(16));
    FrameBatchBuilder builder;
    const std::string text = "data: " + std::string(40, 'x');
    CHECK_FALSE(decoder.decode(text.data(), text.size(), builder));
    CHECK(decoder.error().message == "a line longer than max_frame_bytes");
  }
  SECTION("many short data lines") {
    SseDecoder decoder(sse(16));
    FrameBatchBuilder builder;
    const std::string text = "data: 0123456789\ndata: 0123456789\n";
    CHECK_FALSE(decoder.decode(text.data(), text.size(), builder));
    CHECK(decoder.error().message == "an event's data is longer than max_frame_bytes");
  }
}
