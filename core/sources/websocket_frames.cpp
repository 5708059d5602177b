// SPDX-License-Identifier: Apache-2.0
#include "websocket_frames.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstring>

namespace streamrelay {

namespace {

bool isControl(int opcode) { return (opcode & 0x8) != 0; }

std::string base64(const unsigned char* data, std::size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

void randomBytes(unsigned char* out, std::size_t size) {
  if (RAND_bytes(out, static_cast<int>(size)) != 1)
    for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<unsigned char>(std::rand());  // never in practice
}

}  // namespace

bool WebSocketDecoder::protocolError(std::string what, int closeCode) {
  errorCloseCode_ = closeCode;
  return fail(frameStart_, remaining_, std::move(what));
}

bool WebSocketDecoder::decode(const char* data, std::size_t size, FrameBatchBuilder& out) {
  std::size_t at = 0;
  while (at < size && !closed_) {
    if (!inPayload_) {
      while (headerHave_ < headerNeed_ && at < size) {
        header_[headerHave_++] = static_cast<unsigned char>(data[at++]);
        ++offset_;
        if (headerHave_ == 2) {  // now the header's full length is known
          const unsigned length7 = header_[1] & 0x7f;
          headerNeed_ = 2 + (length7 == 126 ? 2 : length7 == 127 ? 8 : 0) + ((header_[1] & 0x80) ? 4 : 0);
        }
      }
      if (headerHave_ < headerNeed_) break;
      if (!parseHeader(out)) return false;
      if (remaining_ == 0 && !finishFrame(out)) return false;
      continue;
    }
    const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, size - at));
    if (isControl(opcode_)) control_.append(data + at, take);
    else out.appendToFrame(data + at, take);
    at += take;
    offset_ += take;
    remaining_ -= take;
    if (remaining_ == 0 && !finishFrame(out)) return false;
  }
  return true;
}

bool WebSocketDecoder::parseHeader(FrameBatchBuilder& out) {
  fin_ = (header_[0] & 0x80) != 0;
  opcode_ = header_[0] & 0x0f;
  std::uint64_t length = header_[1] & 0x7f;
  if (length == 126) length = (std::uint64_t{header_[2]} << 8) | header_[3];
  if (length == 127) {
    length = 0;
    for (int i = 2; i < 10; ++i) length = (length << 8) | header_[i];
  }
  remaining_ = length;
  if (header_[0] & 0x70) return protocolError("a frame with reserved bits set (no extension was negotiated)");
  if (header_[1] & 0x80) return protocolError("a masked frame (a server must not mask)");
  if (length >> 63) return protocolError("a frame length with its top bit set");
  if (isControl(opcode_)) {
    if (opcode_ > 10) return protocolError("a frame with the reserved opcode " + std::to_string(opcode_));
    if (!fin_) return protocolError("a fragmented control frame");
    if (length > 125) return protocolError("a control frame of " + std::to_string(length) + " bytes (at most 125)");
    control_.clear();
  } else {
    if (opcode_ > 2) return protocolError("a frame with the reserved opcode " + std::to_string(opcode_));
    if (opcode_ == 0 && !inMessage_) return protocolError("a continuation frame outside a message");
    if (opcode_ != 0 && inMessage_) return protocolError("a new message before the last one ended");
    const std::uint64_t announced = messageBytes_ + length;
    if (announced > maxMessageBytes_)
      return protocolError("a message of at least " + std::to_string(announced) + " bytes is larger than "
                           "max_frame_bytes (" + std::to_string(maxMessageBytes_) + ")", 1009);
    if (opcode_ != 0) out.beginFrame();
    inMessage_ = true;
    messageBytes_ = announced;
  }
  inPayload_ = true;
  return true;
}

bool WebSocketDecoder::finishFrame(FrameBatchBuilder& out) {
  inPayload_ = false;
  headerHave_ = 0;
  headerNeed_ = 2;
  frameStart_ = offset_;
  if (!isControl(opcode_)) {
    if (fin_) {
      out.endFrame();
      inMessage_ = false;
      messageBytes_ = 0;
    }
    return true;
  }
  if (opcode_ == 9) {
    pings_.push_back(control_);
  } else if (opcode_ == 10) {
    pong_ = true;
  } else {  // CLOSE
    if (control_.size() == 1) return protocolError("a close frame of 1 byte (a code takes 2)");
    closed_ = true;
    closeCode_ = control_.size() >= 2
                     ? (static_cast<unsigned char>(control_[0]) << 8) | static_cast<unsigned char>(control_[1])
                     : 1005;
    closeReason_ = control_.size() > 2 ? control_.substr(2) : "";
  }
  return true;
}

bool WebSocketDecoder::takePong() {
  const bool seen = pong_;
  pong_ = false;
  return seen;
}

void WebSocketDecoder::reset() {
  headerHave_ = 0;
  headerNeed_ = 2;
  inPayload_ = false;
  remaining_ = 0;
  inMessage_ = false;
  messageBytes_ = 0;
  control_.clear();
  pings_.clear();
  pong_ = false;
  closed_ = false;
  closeCode_ = 0;
  closeReason_.clear();
  errorCloseCode_ = 1002;
  offset_ = frameStart_ = 0;
}

std::string encodeClientFrame(WsOpcode opcode, std::string_view payload) {
  std::string frame;
  frame.reserve(payload.size() + 14);
  frame.push_back(static_cast<char>(0x80 | static_cast<std::uint8_t>(opcode)));
  const std::uint64_t n = payload.size();
  if (n < 126) {
    frame.push_back(static_cast<char>(0x80 | n));
  } else if (n <= 0xffff) {
    frame.push_back(static_cast<char>(0x80 | 126));
    frame.push_back(static_cast<char>(n >> 8));
    frame.push_back(static_cast<char>(n));
  } else {
    frame.push_back(static_cast<char>(0x80 | 127));
    for (int shift = 56; shift >= 0; shift -= 8) frame.push_back(static_cast<char>(n >> shift));
  }
  unsigned char mask[4];
  randomBytes(mask, sizeof mask);
  frame.append(reinterpret_cast<const char*>(mask), sizeof mask);
  for (std::size_t i = 0; i < payload.size(); ++i) frame.push_back(static_cast<char>(payload[i] ^ mask[i % 4]));
  return frame;
}

std::string closePayload(int code, std::string_view reason) {
  std::string payload{static_cast<char>(code >> 8), static_cast<char>(code & 0xff)};
  payload.append(reason.substr(0, 123));
  return payload;
}

std::string newWebSocketKey() {
  unsigned char nonce[16];
  randomBytes(nonce, sizeof nonce);
  return base64(nonce, sizeof nonce);
}

std::string webSocketAccept(const std::string& key) {
  const std::string text = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";  // RFC 6455 4.2.2
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return base64(digest, sizeof digest);
}

bool isPlannedClose(int code) { return code == 1000 || code == 1001 || code == 1012; }

const char* closeCodeName(int code) {
  switch (code) {
    case 1000: return "normal closure";
    case 1001: return "going away";
    case 1002: return "protocol error";
    case 1003: return "unsupported data";
    case 1005: return "no code";
    case 1007: return "invalid data";
    case 1008: return "policy violation";
    case 1009: return "message too big";
    case 1010: return "extension required";
    case 1011: return "internal error";
    case 1012: return "service restart";
    case 1013: return "try again later";
    case 1014: return "bad gateway";
    default: return "";
  }
}

}  // namespace streamrelay
