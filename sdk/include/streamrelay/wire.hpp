// SPDX-License-Identifier: Apache-2.0
#pragma once
// The bytes between a relay and its subscribers, written once and used by
// both ends: the relay (core/subscribers) includes this file, and so does
// the client library (client.hpp).
//
//   - integers of 1, 2, 4 or 8 bytes in either byte order (length prefixes);
//   - the delimiter framing's rule for what a frame may hold;
//   - the `streamrelay` protocol's 24-byte frame header and its control frames;
//   - WebSocket (RFC 6455) frame headers and close payloads;
//   - Server-Sent Event ids: EPOCH-SEQ, or EPOCH-STREAM-SEQ where a listener
//     serves several streams; base64 (an sse listener's encoding: base64).
//
// Header-only, the standard library only; nothing here allocates more than
// what it returns.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace streamrelay {
namespace wire {

// ---- integers ----------------------------------------------------------

inline void putUnsigned(char* out, std::uint64_t value, int width, bool bigEndian = true) {
  for (int i = 0; i < width; ++i) {
    const int index = bigEndian ? width - 1 - i : i;
    out[index] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
}

inline std::uint64_t getUnsigned(const char* in, int width, bool bigEndian = true) {
  std::uint64_t value = 0;
  for (int i = 0; i < width; ++i)
    value = (value << 8) | static_cast<unsigned char>(in[bigEndian ? i : width - 1 - i]);
  return value;
}

// ---- the delimiter framing ----------------------------------------------

// A reader cuts at the first delimiter after a frame starts, so payload +
// delimiter must hold its first delimiter exactly at its end: the payload
// must not contain the delimiter, nor end with the start of one that the
// delimiter completes early ("abc\n" + "\n\n" would be read as "abc").
inline bool delimiterEndsFrameExactly(std::string_view payload, std::string_view delimiter) {
  if (payload.find(delimiter) != std::string_view::npos) return false;
  const std::size_t tailBytes = payload.size() < delimiter.size() - 1 ? payload.size() : delimiter.size() - 1;
  std::string seam(payload.substr(payload.size() - tailBytes));
  seam += delimiter;
  return seam.find(delimiter) == tailBytes;
}

// ---- the `streamrelay` protocol ------------------------------------------
//
// Every frame, control frames included, is this header and its payload:
//   u32 payload bytes | u16 stream id | u16 flags | u64 seq | i64 receive time (ns since the Unix epoch)
// big-endian. Control frames (the answer to a hello, heartbeats) have stream
// id kControlStream and seq 0; their payload is JSON, and a client skips
// those whose `type` it does not know.

constexpr std::size_t kFrameHeaderBytes = 24;
// Flags of a frame header (a client ignores bits it does not know):
constexpr std::uint16_t kFlagSnapshot = 1;   // the newest frame of its key, sent before live frames (hello snapshot)
constexpr std::uint16_t kFlagConflated = 2;  // older frames of its key were skipped for it (on_full: conflate, max_rate_per_key)
constexpr std::uint16_t kControlStream = 0xFFFF;
constexpr std::size_t kMaxHelloBytes = 16 * 1024;  // a hello line or message, at most
constexpr const char* kHeartbeatJson = R"({"type":"heartbeat"})";

struct FrameHeader {
  std::uint32_t payloadBytes = 0;
  std::uint16_t stream = 0;
  std::uint16_t flags = 0;
  std::uint64_t seq = 0;
  std::int64_t receivedUnixNs = 0;
};

inline void writeFrameHeader(char* out, const FrameHeader& h) {
  putUnsigned(out, h.payloadBytes, 4);
  putUnsigned(out + 4, h.stream, 2);
  putUnsigned(out + 6, h.flags, 2);
  putUnsigned(out + 8, h.seq, 8);
  putUnsigned(out + 16, static_cast<std::uint64_t>(h.receivedUnixNs), 8);
}

// `in` holds kFrameHeaderBytes bytes.
inline FrameHeader readFrameHeader(const char* in) {
  FrameHeader h;
  h.payloadBytes = static_cast<std::uint32_t>(getUnsigned(in, 4));
  h.stream = static_cast<std::uint16_t>(getUnsigned(in + 4, 2));
  h.flags = static_cast<std::uint16_t>(getUnsigned(in + 6, 2));
  h.seq = getUnsigned(in + 8, 8);
  h.receivedUnixNs = static_cast<std::int64_t>(getUnsigned(in + 16, 8));
  return h;
}

// A control frame: the header (stream kControlStream, seq 0) and the JSON.
inline std::string controlFrame(std::string_view json) {
  std::string out(kFrameHeaderBytes, '\0');
  FrameHeader h;
  h.payloadBytes = static_cast<std::uint32_t>(json.size());
  h.stream = kControlStream;
  writeFrameHeader(&out[0], h);
  out.append(json.data(), json.size());
  return out;
}

// ---- WebSocket (RFC 6455) -----------------------------------------------

enum class WsOpcode : std::uint8_t { Continuation = 0, Text = 1, Binary = 2, Close = 8, Ping = 9, Pong = 10 };

constexpr std::size_t kMaxWsHeaderBytes = 14;
constexpr std::size_t kMaxWsControlPayload = 125;

// Writes a frame header (FIN set unless `fin` is false) into `out`
// (kMaxWsHeaderBytes of room); returns its size. A client masks every frame
// (`mask`: 4 bytes; the payload must then be masked with them); a server never does.
inline std::size_t writeWsHeader(char* out, WsOpcode opcode, std::uint64_t payloadBytes,
                                 const unsigned char* mask = nullptr, bool fin = true) {
  std::size_t n = 0;
  out[n++] = static_cast<char>((fin ? 0x80 : 0) | static_cast<std::uint8_t>(opcode));
  const char maskBit = mask ? static_cast<char>(0x80) : 0;
  if (payloadBytes < 126) {
    out[n++] = static_cast<char>(maskBit | static_cast<char>(payloadBytes));
  } else if (payloadBytes <= 0xffff) {
    out[n++] = static_cast<char>(maskBit | 126);
    putUnsigned(out + n, payloadBytes, 2);
    n += 2;
  } else {
    out[n++] = static_cast<char>(maskBit | 127);
    putUnsigned(out + n, payloadBytes, 8);
    n += 8;
  }
  if (mask)
    for (int i = 0; i < 4; ++i) out[n++] = static_cast<char>(mask[i]);
  return n;
}

inline std::string wsHeader(WsOpcode opcode, std::uint64_t payloadBytes) {
  char header[kMaxWsHeaderBytes];
  return std::string(header, writeWsHeader(header, opcode, payloadBytes));
}

// The size of a frame header whose first two bytes are b0 and b1.
inline std::size_t wsHeaderBytes(unsigned char /*b0*/, unsigned char b1) {
  const unsigned length7 = b1 & 0x7f;
  return 2 + (length7 == 126 ? 2 : length7 == 127 ? 8 : 0) + ((b1 & 0x80) ? 4 : 0);
}

struct WsHeader {
  bool fin = false;
  std::uint8_t reserved = 0;  // RSV1-3 (no extension: must be 0)
  std::uint8_t opcode = 0;
  bool masked = false;
  std::uint64_t payloadBytes = 0;
  unsigned char mask[4] = {0, 0, 0, 0};
};

// `in` holds wsHeaderBytes(in[0], in[1]) bytes.
inline WsHeader readWsHeader(const unsigned char* in) {
  WsHeader h;
  h.fin = (in[0] & 0x80) != 0;
  h.reserved = static_cast<std::uint8_t>((in[0] >> 4) & 0x7);
  h.opcode = in[0] & 0x0f;
  h.masked = (in[1] & 0x80) != 0;
  std::size_t at = 2;
  h.payloadBytes = in[1] & 0x7f;
  if (h.payloadBytes == 126) {
    h.payloadBytes = getUnsigned(reinterpret_cast<const char*>(in + 2), 2);
    at = 4;
  } else if (h.payloadBytes == 127) {
    h.payloadBytes = getUnsigned(reinterpret_cast<const char*>(in + 2), 8);
    at = 10;
  }
  if (h.masked)
    for (int i = 0; i < 4; ++i) h.mask[i] = in[at + i];
  return h;
}

// Masks or unmasks `size` bytes that start `offset` bytes into a payload.
inline void applyWsMask(char* data, std::size_t size, const unsigned char mask[4], std::uint64_t offset = 0) {
  for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<char>(data[i] ^ mask[(offset + i) % 4]);
}

inline bool isWsControl(std::uint8_t opcode) { return (opcode & 0x8) != 0; }

// A CLOSE frame's payload: the code, then the reason (cut to fit 125 bytes).
inline std::string wsClosePayload(int code, std::string_view reason) {
  std::string payload{static_cast<char>((code >> 8) & 0xff), static_cast<char>(code & 0xff)};
  payload.append(reason.substr(0, kMaxWsControlPayload - 2));
  return payload;
}

// ---- Server-Sent Event ids ----------------------------------------------
//
// A relay's event id says where the event's frame lies: EPOCH-SEQ, or
// EPOCH-STREAM-SEQ when its listener serves several streams. EventSource
// sends the last one back (Last-Event-ID) when it reconnects; the relay
// resumes after it, as a hello's `resume` asks.

struct EventId {
  std::uint64_t epoch = 0;
  std::string stream;  // empty: the listener's only stream
  std::uint64_t seq = 0;
};

inline std::string formatEventId(std::uint64_t epoch, std::string_view stream, std::uint64_t seq) {
  std::string id = std::to_string(epoch);
  id += '-';
  if (!stream.empty()) {
    id.append(stream.data(), stream.size());
    id += '-';
  }
  return id + std::to_string(seq);
}

namespace detail {
inline std::optional<std::uint64_t> decimal(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const std::uint64_t digit = static_cast<std::uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}
}  // namespace detail

// EPOCH-SEQ or EPOCH-STREAM-SEQ (a stream name may hold '-'); none if malformed.
inline std::optional<EventId> parseEventId(std::string_view text) {
  const std::size_t first = text.find('-');
  const std::size_t last = text.rfind('-');
  if (first == std::string_view::npos) return std::nullopt;
  const auto epoch = detail::decimal(text.substr(0, first));
  const auto seq = detail::decimal(text.substr(last + 1));
  if (!epoch || !seq) return std::nullopt;
  EventId id;
  id.epoch = *epoch;
  id.seq = *seq;
  if (last > first) {
    id.stream = std::string(text.substr(first + 1, last - first - 1));
    if (id.stream.empty()) return std::nullopt;
  }
  return id;
}

// Standard base64 (RFC 4648) back to bytes; false if `text` is not base64.
inline bool decodeBase64(std::string_view text, std::string& out) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
  };
  out.clear();
  if (text.size() % 4 != 0) return false;
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const int pad = last ? (text[i + 3] == '=') + (text[i + 2] == '=') : 0;
    std::uint32_t v = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const int d = k >= 4 - static_cast<std::size_t>(pad) ? 0 : value(text[i + k]);
      if (d < 0) return false;
      v = (v << 6) | static_cast<std::uint32_t>(d);
    }
    out += static_cast<char>(v >> 16);
    if (pad < 2) out += static_cast<char>((v >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(v & 0xff);
  }
  return true;
}

}  // namespace wire
}  // namespace streamrelay
