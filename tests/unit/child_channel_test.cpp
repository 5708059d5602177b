// SPDX-License-Identifier: Apache-2.0
// The control channel between the relay and an isolated instance's child:
// messages round-trip, and what a child sends cannot make the relay read past
// a message or buffer what a length claims before the bytes arrive.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>

#include "child_channel.hpp"

using namespace streamrelay;

TEST_CASE("child channel: the start message round-trips, secrets and all", "[child_channel]") {
  ChildStart start;
  start.name = "db";
  start.type = "sqlite_writer";
  start.libraryPath = "/srv/plugins.d/sqlite_writer.so";
  start.configYaml = "{path: x.db, password: s3cret}";
  start.inputs = {"a", "b"};
  start.hasOutput = true;
  start.ringCapacity = 1 << 20;
  start.firstRingSeq = 42;
  start.memoryLimitBytes = 1 << 30;
  const std::string message = encodeStart(start);
  MessageParser header(message.data(), 8);
  std::uint32_t type = 0, length = 0;
  REQUIRE(header.u32(type));
  REQUIRE(header.u32(length));
  CHECK(type == static_cast<std::uint32_t>(ChildMessage::Start));
  REQUIRE(length == message.size() - 8);
  MessageParser p(message.data() + 8, length);
  ChildStart back;
  REQUIRE(decodeStart(p, back));
  CHECK(back.configYaml == start.configYaml);
  CHECK(back.inputs == start.inputs);
  CHECK(back.firstRingSeq == 42);
  CHECK(back.hasOutput);
  // Cut anywhere, it is refused rather than read past its end.
  for (std::size_t cut = 0; cut < length; ++cut) {
    MessageParser shorter(message.data() + 8, cut);
    ChildStart partial;
    CHECK_FALSE(decodeStart(shorter, partial));
  }
}

TEST_CASE("child channel: the relay's stream cuts messages apart however the bytes arrive", "[child_channel]") {
  std::string bytes = MessageBuilder(ChildMessage::Log).u32(6).str("streamrelay.plugin").str("hello").finish();
  bytes += MessageBuilder(ChildMessage::Ready).finish();
  MessageStream stream;
  ChildMessage type{};
  std::string_view payload;
  std::string error;
  std::vector<ChildMessage> seen;
  for (char c : bytes) {  // one byte at a time
    stream.append(&c, 1);
    while (stream.next(type, payload, error)) seen.push_back(type);
    REQUIRE(error.empty());
  }
  CHECK(seen == std::vector<ChildMessage>{ChildMessage::Log, ChildMessage::Ready});
}

TEST_CASE("child channel: a length over the cap or an unknown type is an error, never an allocation",
          "[child_channel]") {
  ChildMessage type{};
  std::string_view payload;
  std::string error;
  SECTION("a log line that claims 4 GiB") {
    std::string bytes = MessageBuilder(ChildMessage::Log).finish();
    const std::uint32_t huge = 0xffffffffu;
    std::memcpy(&bytes[4], &huge, 4);
    MessageStream stream;
    stream.append(bytes.data(), bytes.size());
    CHECK_FALSE(stream.next(type, payload, error));
    CHECK(error == "message of 4294967295 bytes (at most 1048576)");
    CHECK(stream.buffered() == 8);
  }
  SECTION("a message only the relay sends") {
    std::string bytes = MessageBuilder(ChildMessage::Stop).finish();
    MessageStream stream;
    stream.append(bytes.data(), bytes.size());
    CHECK_FALSE(stream.next(type, payload, error));
    CHECK(error == "unknown message type 2");
  }
}

TEST_CASE("child channel: emitted frames cross with their keys, a key over 256 bytes or a cut frame is refused",
          "[child_channel]") {
  const std::string wire1("\0\0\0\3BTC", 7), wire2("\0\0\0\0", 4);
  std::string frames;
  appendEmittedFrame(frames, wire1, "md.BTC");
  appendEmittedFrame(frames, wire2, "");
  SECTION("read back") {
    EmittedFrames reader(frames);
    std::string_view payload, key;
    REQUIRE(reader.next(payload, key));
    CHECK(payload == "BTC");
    CHECK(key == "md.BTC");
    REQUIRE(reader.next(payload, key));
    CHECK(payload.empty());
    CHECK(key.empty());
    CHECK_FALSE(reader.next(payload, key));
    CHECK_FALSE(reader.malformed());
    CHECK(EmittedFrames::wellFormed(frames));
  }
  SECTION("every cut short of the whole is malformed") {
    for (std::size_t size = 1; size < frames.size(); ++size) {
      INFO(size);
      const bool boundary = size == wire1.size() + 2 + 6;  // after the first frame and its key
      CHECK(EmittedFrames::wellFormed(std::string_view(frames.data(), size)) == boundary);
    }
  }
  SECTION("a key that claims more than 256 bytes, though the bytes are there") {
    std::string bad(wire1);
    const std::uint16_t keySize = 257;
    bad.append(reinterpret_cast<const char*>(&keySize), sizeof keySize);
    bad.append(257, 'k');
    CHECK_FALSE(EmittedFrames::wellFormed(bad));
  }
  SECTION("a frame that claims 4 GiB") {
    CHECK_FALSE(EmittedFrames::wellFormed(std::string("\xff\xff\xff\xff", 4)));
  }
}
