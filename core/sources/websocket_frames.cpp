// SPDX-License-Identifier: Apache-2.0
#include "websocket_frames.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstring>

namespace streamrelay {

namespace {

bool isControl(int opcode) { return wire::isWsControl(static_cast<std::uint8_t>(opcode)); }

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
        if (headerHave_ == 2) headerNeed_ = wire::wsHeaderBytes(header_[0], header_[1]);  // now its length is known
      }
      if (headerHave_ < headerNeed_) break;
      if (!parseHeader(out)) return false;
      if (remaining_ == 0 && !finishFrame(out)) return false;
      continue;
    }
    const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, size - at));
    takePayload(data + at, take, out);
    at += take;
    offset_ += take;
    remaining_ -= take;
    if (remaining_ == 0 && !finishFrame(out)) return false;
  }
  return true;
}

// Payload bytes of the current frame, unmasked if they are.
void WebSocketDecoder::takePayload(const char* data, std::size_t size, FrameBatchBuilder& out) {
  char plain[4096];
  for (std::size_t done = 0; done < size;) {
    const char* piece = data + done;
    const std::size_t n = masked_ ? std::min(size - done, sizeof plain) : size - done;
    if (masked_) {
      std::memcpy(plain, piece, n);
      wire::applyWsMask(plain, n, mask_, frameBytes_ - remaining_ + done);
      piece = plain;
    }
    if (isControl(opcode_)) control_.append(piece, n);
    else out.appendToFrame(piece, n);
    done += n;
  }
}

bool WebSocketDecoder::parseHeader(FrameBatchBuilder& out) {
  const wire::WsHeader header = wire::readWsHeader(header_);
  fin_ = header.fin;
  opcode_ = header.opcode;
  masked_ = header.masked;
  std::memcpy(mask_, header.mask, sizeof mask_);
  const std::uint64_t length = header.payloadBytes;
  remaining_ = frameBytes_ = length;
  if (header.reserved) return protocolError("a frame with reserved bits set (no extension was negotiated)");
  if (reader_ == Reader::Client && masked_) return protocolError("a masked frame (a server must not mask)");
  if (reader_ == Reader::Server && !masked_) return protocolError("an unmasked frame (a client must mask)");
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
      return protocolError("a message of at least " + std::to_string(announced) + " bytes is larger than " +
                           (reader_ == Reader::Client ? "max_frame_bytes" : "max_message_bytes") + " (" +
                           std::to_string(maxMessageBytes_) + ")", 1009);
    if (opcode_ != 0) {
      out.beginFrame();
      if (reader_ == Reader::Server) textMessages_.push_back(opcode_ == 1);
    }
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
  textMessages_.clear();
  pong_ = false;
  closed_ = false;
  closeCode_ = 0;
  closeReason_.clear();
  errorCloseCode_ = 1002;
  offset_ = frameStart_ = 0;
}

std::string encodeClientFrame(WsOpcode opcode, std::string_view payload) {
  unsigned char mask[4];
  randomBytes(mask, sizeof mask);
  char header[wire::kMaxWsHeaderBytes];
  std::string frame(header, wire::writeWsHeader(header, opcode, payload.size(), mask));
  const std::size_t at = frame.size();
  frame.append(payload.data(), payload.size());
  wire::applyWsMask(&frame[at], payload.size(), mask);
  return frame;
}

std::string encodeServerFrame(WsOpcode opcode, std::string_view payload) {
  return wire::wsHeader(opcode, payload.size()) + std::string(payload);
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
