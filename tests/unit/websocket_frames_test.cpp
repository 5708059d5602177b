// SPDX-License-Identifier: Apache-2.0
// WebSocket frames as the websocket source reads and writes them, cut at
// every byte; and every way a provider can break RFC 6455.
#include <catch2/catch.hpp>

#include "websocket_frames.hpp"

using namespace streamrelay;

namespace {

// A frame as a server sends it (not masked).
std::string serverFrame(int opcode, const std::string& payload, bool fin = true, unsigned char extraBits = 0) {
  std::string f{static_cast<char>((fin ? 0x80 : 0) | extraBits | opcode)};
  if (payload.size() < 126) {
    f.push_back(static_cast<char>(payload.size()));
  } else if (payload.size() <= 0xffff) {
    f.push_back(126);
    f.push_back(static_cast<char>(payload.size() >> 8));
    f.push_back(static_cast<char>(payload.size()));
  } else {
    f.push_back(127);
    for (int shift = 56; shift >= 0; shift -= 8) f.push_back(static_cast<char>(static_cast<std::uint64_t>(payload.size()) >> shift));
  }
  return f + payload;
}

std::vector<std::string> payloads(FrameBatchBuilder& builder) {
  std::vector<std::string> out;
  if (builder.empty()) return out;
  auto batch = builder.seal(0);
  for (std::size_t i = 0; i < batch->frameCount(); ++i) out.emplace_back(batch->payload(i));
  return out;
}

}  // namespace

TEST_CASE("websocket frames: messages whole, fragments joined, PINGs kept, a CLOSE ends it, cut at every byte",
          "[websocket_frames]") {
  const std::string big(70000, 'b');
  const std::string stream = serverFrame(1, "feed 1") + serverFrame(2, std::string("\0\1\2", 3)) +
                             serverFrame(9, "are you there") + serverFrame(1, "fe", false) + serverFrame(10, "") +
                             serverFrame(0, "ed ", false) + serverFrame(0, "3") + serverFrame(2, big) +
                             serverFrame(1, "") + serverFrame(8, closePayload(1012, "restarting")) +
                             serverFrame(1, "after the close: never read");
  for (std::size_t step : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{7}, std::size_t{1000}, stream.size()}) {
    INFO("pieces of " << step);
    WebSocketDecoder decoder(1 << 20);
    FrameBatchBuilder builder;
    std::vector<std::string> got;
    for (std::size_t i = 0; i < stream.size(); i += step) {
      REQUIRE(decoder.decode(stream.data() + i, std::min(step, stream.size() - i), builder));
      for (std::string& p : payloads(builder)) got.push_back(std::move(p));
    }
    REQUIRE(got.size() == 5);
    CHECK(got[0] == "feed 1");
    CHECK(got[1] == std::string("\0\1\2", 3));
    CHECK(got[2] == "feed 3");
    CHECK(got[3] == big);
    CHECK(got[4].empty());
    CHECK(decoder.pings() == std::vector<std::string>{"are you there"});
    CHECK(decoder.takePong());
    CHECK_FALSE(decoder.takePong());
    CHECK(decoder.closed());
    CHECK(decoder.closeCode() == 1012);  // as sent: a service restart, not a protocol error
    CHECK(decoder.closeReason() == "restarting");
  }
}

TEST_CASE("websocket frames: a close without a code is 1005, and planned closes are 1000, 1001 and 1012",
          "[websocket_frames]") {
  WebSocketDecoder decoder(100);
  FrameBatchBuilder builder;
  const std::string close = serverFrame(8, "");
  REQUIRE(decoder.decode(close.data(), close.size(), builder));
  CHECK(decoder.closeCode() == 1005);
  CHECK(isPlannedClose(1000));
  CHECK(isPlannedClose(1001));
  CHECK(isPlannedClose(1012));
  CHECK_FALSE(isPlannedClose(1002));
  CHECK_FALSE(isPlannedClose(4029));
  CHECK(std::string(closeCodeName(1012)) == "service restart");
  CHECK(std::string(closeCodeName(4001)).empty());
  decoder.reset();
  CHECK_FALSE(decoder.closed());
}

TEST_CASE("websocket frames: a message over max_frame_bytes is refused from its header, before any byte is kept",
          "[websocket_frames]") {
  WebSocketDecoder decoder(1000);
  FrameBatchBuilder builder;
  // 600 bytes, then a continuation that announces 600 more: 1200 in all.
  const std::string first = serverFrame(1, std::string(600, 'x'), false);
  REQUIRE(decoder.decode(first.data(), first.size(), builder));
  const std::string header = serverFrame(0, std::string(600, 'y')).substr(0, 4);  // the header alone
  CHECK_FALSE(decoder.decode(header.data(), header.size(), builder));
  CHECK(decoder.error().message == "a message of at least 1200 bytes is larger than max_frame_bytes (1000)");
  CHECK(decoder.error().announced == 600);
  CHECK(decoder.errorCloseCode() == 1009);
  // A 64-bit length that claims the moon is refused as well, and nothing is allocated for it.
  WebSocketDecoder fresh(1000);
  const std::string moon = std::string("\x82\x7f\x00\x00\x01\x00\x00\x00\x00\x00", 10);
  CHECK_FALSE(fresh.decode(moon.data(), moon.size(), builder));
  CHECK(fresh.error().message == "a message of at least 1099511627776 bytes is larger than max_frame_bytes (1000)");
}

TEST_CASE("websocket frames: what breaks RFC 6455 is a protocol error that names it", "[websocket_frames]") {
  auto errorOf = [](const std::string& bytes) {
    WebSocketDecoder decoder(1 << 20);
    FrameBatchBuilder builder;
    if (decoder.decode(bytes.data(), bytes.size(), builder)) return std::string("accepted");
    CHECK(decoder.errorCloseCode() == 1002);
    return decoder.error().message;
  };
  CHECK(errorOf(std::string("\x81\x83" "abcd" "xyz", 9)) == "a masked frame (a server must not mask)");
  CHECK(errorOf(serverFrame(1, "x", true, 0x40)) == "a frame with reserved bits set (no extension was negotiated)");
  CHECK(errorOf(serverFrame(0xB, "hello")) == "a frame with the reserved opcode 11");
  CHECK(errorOf(serverFrame(3, "x")) == "a frame with the reserved opcode 3");
  CHECK(errorOf(serverFrame(9, "x", false)) == "a fragmented control frame");
  CHECK(errorOf(serverFrame(9, std::string(126, 'p'))) == "a control frame of 126 bytes (at most 125)");
  CHECK(errorOf(serverFrame(0, "x")) == "a continuation frame outside a message");
  CHECK(errorOf(serverFrame(1, "a", false) + serverFrame(1, "b")) == "a new message before the last one ended");
  CHECK(errorOf(serverFrame(8, "x")) == "a close frame of 1 byte (a code takes 2)");
  CHECK(errorOf(std::string("\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00", 10)) == "a frame length with its top bit set");
}

TEST_CASE("websocket frames: the client masks what it sends, and the handshake key and accept of RFC 6455",
          "[websocket_frames]") {
  for (std::size_t size : {std::size_t{0}, std::size_t{125}, std::size_t{126}, std::size_t{70000}}) {
    const std::string payload(size, 'q');
    const std::string frame = encodeClientFrame(WsOpcode::Text, payload);
    REQUIRE(static_cast<unsigned char>(frame[0]) == 0x81);
    REQUIRE((static_cast<unsigned char>(frame[1]) & 0x80) != 0);  // masked
    const std::size_t lengthBytes = size < 126 ? 0 : size <= 0xffff ? 2 : 8;
    const std::size_t maskAt = 2 + lengthBytes;
    REQUIRE(frame.size() == maskAt + 4 + size);
    std::string unmasked;
    for (std::size_t i = 0; i < size; ++i) unmasked.push_back(static_cast<char>(frame[maskAt + 4 + i] ^ frame[maskAt + i % 4]));
    CHECK(unmasked == payload);
  }
  CHECK(closePayload(1001, "shutdown") == std::string("\x03\xe9shutdown", 10));
  CHECK(closePayload(1000, std::string(200, 'r')).size() == 125);
  CHECK(webSocketAccept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  const std::string key = newWebSocketKey();
  CHECK(key.size() == 24);
  CHECK(key != newWebSocketKey());
}
