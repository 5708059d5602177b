// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "config.hpp"
#include "framing.hpp"
#include "listener_protocol.hpp"

using namespace streamrelay;

namespace {

std::string prefix(std::uint64_t size, int width, ByteOrder order) {
  std::string out(width, '\0');
  for (int i = 0; i < width; ++i) {
    int index = order == ByteOrder::Big ? width - 1 - i : i;
    out[index] = static_cast<char>((size >> (8 * i)) & 0xff);
  }
  return out;
}

// Feeds `stream` in pieces of `piece` bytes; returns the decoded payloads.
std::vector<std::string> decodeAll(FrameDecoder& decoder, const std::string& stream, std::size_t piece, bool* ok = nullptr) {
  FrameBatchBuilder builder;
  std::vector<std::string> frames;
  bool good = true;
  for (std::size_t at = 0; at < stream.size() && good; at += piece) {
    good = decoder.decode(stream.data() + at, std::min(piece, stream.size() - at), builder);
    auto batch = builder.seal(0);
    for (std::size_t i = 0; i < batch->frameCount(); ++i) frames.emplace_back(batch->payload(i));
  }
  if (ok) *ok = good;
  return frames;
}

// What a raw listener with this framing writes for these payloads, back to
// back (its codec, as its subscribers' sessions send it); `accepted` gets
// the payloads it can carry.
std::string encodeAll(const FramingSpec& spec, const std::vector<std::string>& payloads,
                      std::vector<std::string>& accepted) {
  ListenerConfig config;
  config.framing = spec;
  const auto raw = listenerProtocol("raw").create(config, {});
  FrameBatchBuilder builder;
  for (const std::string& p : payloads) builder.add(p.data(), p.size());
  const auto batch = builder.seal(0);
  const FrameCodec& codec = raw->codec();
  std::string stream;
  if (codec.wireForm()) {
    accepted = payloads;
    return std::string(batch->wireBegin(0), batch->wireBytes(0, batch->frameCount()));
  }
  const EncodedBatch& encoded = codec.encoded(*batch);
  for (std::size_t i = 0; i < batch->frameCount(); ++i) {
    const EncodedFrame& f = encoded.frame(i);
    if (f.total == 0) continue;
    stream.append(encoded.bytes() + f.offset, f.headBytes);
    if (f.payloadByReference) stream.append(batch->payload(i));
    stream.append(encoded.bytes() + f.offset + f.headBytes, f.tailBytes);
    accepted.push_back(payloads[i]);
  }
  return stream;
}

bool canEncode(const FramingSpec& spec, const std::string& payload) {
  std::vector<std::string> accepted;
  encodeAll(spec, {payload}, accepted);
  return !accepted.empty();
}

const std::vector<std::string> kPayloads = {"a", "", "hello world", std::string(300, 'x'), std::string("\0\n\0", 3)};

}  // namespace

TEST_CASE("length-prefix decodes every width and byte order split or batched", "[framing]") {
  for (int width : {1, 2, 4, 8}) {
    for (ByteOrder order : {ByteOrder::Big, ByteOrder::Little}) {
      FramingSpec spec;
      spec.width = width;
      spec.byteOrder = order;
      std::string stream;
      std::vector<std::string> expected;
      for (const auto& p : kPayloads) {
        if (p.size() > spec.largestEncodable()) continue;
        stream += prefix(p.size(), width, order) + p;
        expected.push_back(p);
      }
      for (std::size_t piece : {std::size_t{1}, std::size_t{3}, std::size_t{7}, stream.size()}) {
        INFO("width " << width << " order " << (order == ByteOrder::Big ? "big" : "little") << " piece " << piece);
        auto decoder = FrameDecoder::create(spec);
        CHECK(decodeAll(*decoder, stream, piece) == expected);
      }
    }
  }
}

TEST_CASE("an oversize length prefix is a protocol error before anything is stored", "[framing]") {
  FramingSpec spec;
  spec.maxFrameBytes = 1000;
  auto decoder = FrameDecoder::create(spec);
  std::string stream = prefix(3, 4, ByteOrder::Big) + "abc" + prefix(0xFFFFFFF0u, 4, ByteOrder::Big) + "tail";
  FrameBatchBuilder builder;
  REQUIRE_FALSE(decoder->decode(stream.data(), stream.size(), builder));
  CHECK(decoder->error().offset == 7);
  CHECK(decoder->error().announced == 0xFFFFFFF0u);
  auto batch = builder.seal(0);
  REQUIRE(batch->frameCount() == 1);  // the good frame before the bad one survives
  CHECK(batch->payload(0) == "abc");
  CHECK(batch->totalWireBytes() == kWireHeaderBytes + 3);  // nothing kept of the bad frame
}

TEST_CASE("an 8-byte prefix announcing 2^63 bytes is refused", "[framing]") {
  FramingSpec spec;
  spec.width = 8;
  auto decoder = FrameDecoder::create(spec);
  std::string stream = prefix(1ULL << 63, 8, ByteOrder::Big);
  FrameBatchBuilder builder;
  CHECK_FALSE(decoder->decode(stream.data(), stream.size(), builder));
  CHECK(decoder->error().announced == (1ULL << 63));
}

TEST_CASE("delimiter framing finds multi-byte delimiters across reads", "[framing]") {
  FramingSpec spec;
  spec.type = FramingType::Delimiter;
  SECTION("CRLF, stripped") {
    spec.delimiter = "\r\n";
    std::string stream = "one\r\ntwo\r\r\n\r\nthree\r\n";
    for (std::size_t piece : {std::size_t{1}, std::size_t{2}, std::size_t{5}, stream.size()}) {
      auto decoder = FrameDecoder::create(spec);
      CHECK(decodeAll(*decoder, stream, piece) == std::vector<std::string>{"one", "two\r", "", "three"});
    }
  }
  SECTION("NUL delimiter, kept") {
    spec.delimiter = std::string(1, '\0');
    spec.strip = false;
    std::string stream("a\0bc\0", 5);
    auto decoder = FrameDecoder::create(spec);
    CHECK(decodeAll(*decoder, stream, 1) == std::vector<std::string>{std::string("a\0", 2), std::string("bc\0", 3)});
  }
  SECTION("overlapping prefix of the delimiter") {
    spec.delimiter = "aab";
    auto decoder = FrameDecoder::create(spec);
    CHECK(decodeAll(*decoder, "xaaabyaab", 1) == std::vector<std::string>{"xa", "y"});
  }
  SECTION("no delimiter within max_frame_bytes") {
    spec.maxFrameBytes = 10;
    auto decoder = FrameDecoder::create(spec);
    bool ok = true;
    decodeAll(*decoder, "short\n" + std::string(50, 'z'), 4, &ok);
    CHECK_FALSE(ok);
    CHECK(decoder->error().offset == 6);
  }
}

TEST_CASE("fixed framing cuts equal frames", "[framing]") {
  FramingSpec spec;
  spec.type = FramingType::Fixed;
  spec.fixedSize = 3;
  auto decoder = FrameDecoder::create(spec);
  CHECK(decodeAll(*decoder, "abcdefgh", 2) == std::vector<std::string>{"abc", "def"});
}

TEST_CASE("encoders round-trip through the matching decoder", "[framing]") {
  std::vector<FramingSpec> specs(5);
  specs[1].width = 2;
  specs[1].byteOrder = ByteOrder::Little;
  specs[2].width = 8;
  specs[3].type = FramingType::Delimiter;
  specs[3].delimiter = "||";
  specs[4].type = FramingType::Fixed;
  specs[4].fixedSize = 11;
  for (const FramingSpec& spec : specs) {
    INFO(spec.describe());
    std::vector<std::string> expected;
    const std::string stream = encodeAll(spec, kPayloads, expected);
    REQUIRE_FALSE(expected.empty());
    auto decoder = FrameDecoder::create(spec);
    CHECK(decodeAll(*decoder, stream, 5) == expected);
  }
}

TEST_CASE("an encoder refuses frames its framing cannot carry", "[framing]") {
  FramingSpec narrow;
  narrow.width = 1;
  CHECK(canEncode(narrow, std::string(255, 'x')));
  CHECK_FALSE(canEncode(narrow, std::string(256, 'x')));
  FramingSpec lines;
  lines.type = FramingType::Delimiter;
  CHECK_FALSE(canEncode(lines, "two\nlines"));
}

// Defect: with a delimiter that overlaps itself, "abc\n" + "\n\n" was read as
// "abc" and the next frame gained a leading "\n".
TEST_CASE("a delimiter that overlaps itself: every frame accepted is decoded exactly", "[framing]") {
  for (const std::string& delimiter : {std::string("\n\n"), std::string("\r\n\r\n"), std::string(2, '\0'),
                                       std::string("aba"), std::string("||")}) {
    INFO("delimiter of " << delimiter.size() << " bytes");
    FramingSpec spec;
    spec.type = FramingType::Delimiter;
    spec.delimiter = delimiter;
    const std::string alphabet = delimiter + "xa\n";
    // Every payload of up to 4 bytes over the delimiter's own bytes and two others.
    std::vector<std::string> payloads{""};
    for (std::size_t length = 1, from = 0; length <= 4; ++length) {
      std::size_t to = payloads.size();
      for (std::size_t i = from; i < to; ++i)
        for (char c : alphabet) payloads.push_back(payloads[i] + c);
      from = to;
    }
    std::vector<std::string> accepted;
    const std::string stream = encodeAll(spec, payloads, accepted);
    auto decoder = FrameDecoder::create(spec);
    CHECK(decodeAll(*decoder, stream, 7) == accepted);
  }
  FramingSpec blank;
  blank.type = FramingType::Delimiter;
  blank.delimiter = "\n\n";
  CHECK_FALSE(canEncode(blank, "abc\n"));
  CHECK(canEncode(blank, "abc"));
  blank.delimiter = "\r\n\r\n";
  CHECK_FALSE(canEncode(blank, "x\r\n"));
  CHECK(canEncode(blank, "x\r"));
}

TEST_CASE("a listener encodes a batch once: small payloads copied in, large ones written from the batch", "[framing]") {
  FramingSpec spec;
  spec.width = 2;
  ListenerConfig config;
  config.framing = spec;
  const auto raw = listenerProtocol("raw").create(config, {});
  FrameBatchBuilder builder;
  const std::string large(4096, 'L');
  for (const std::string& p : {std::string("ab"), large, std::string("cd")}) builder.add(p.data(), p.size());
  const auto batch = builder.seal(0);
  const EncodedBatch& encoded = raw->codec().encoded(*batch);
  CHECK(&raw->codec().encoded(*batch) == &encoded);  // the second subscriber finds the first one's
  CHECK_FALSE(encoded.frame(0).payloadByReference);
  CHECK(encoded.frame(0).total == 4);
  CHECK(encoded.frame(1).payloadByReference);
  CHECK(encoded.frame(1).headBytes == 2);
  CHECK(encoded.frame(1).total == 2 + large.size());
  // Frames lie back to back in the side buffer: only the large payload is elsewhere.
  CHECK(encoded.sideBytes() == 4 + 2 + 4);
  CHECK(std::string(encoded.bytes(), 4) == std::string("\0\2ab", 4));
  const auto other = listenerProtocol("raw").create(config, {});
  CHECK(&other->codec().encoded(*batch) != &encoded);  // another listener has its own
}
