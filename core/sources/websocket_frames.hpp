// SPDX-License-Identifier: Apache-2.0
#pragma once
// WebSocket (RFC 6455) frames as either end reads and writes them: the
// websocket source reads a provider's frames as a client; a websocket
// listener reads its subscribers' frames as a server. The header layout is
// wire.hpp's, shared with the client library.
//
// WebSocketDecoder is a FrameDecoder: each message (text or binary, its
// fragments joined; a client's unmasked) is one frame. Control frames are kept for the connection
// to act on: PINGs to answer, a PONG seen, the CLOSE that ends the stream
// (nothing after it is read). Bounded like every decoder: a message whose
// frame headers announce more than max_frame_bytes is a protocol error
// before any byte of that frame is kept; a control frame holds at most 125
// bytes. What breaks the protocol (a masked frame, reserved bits or opcodes,
// a fragmented control frame, a continuation out of place) is an error that
// names it, with the close code to send back (1002, or 1009 for a message too big).
//
// Not thread safe: one per connection, used by its thread.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "framing.hpp"
#include "streamrelay/wire.hpp"

namespace streamrelay {

class WebSocketDecoder : public FrameDecoder {
 public:
  // Which end reads: a client reads a server's frames (never masked), a
  // server a client's (always masked).
  enum class Reader { Client, Server };
  explicit WebSocketDecoder(std::size_t maxMessageBytes, Reader reader = Reader::Client)
      : maxMessageBytes_(maxMessageBytes), reader_(reader) {}
  bool decode(const char* data, std::size_t size, FrameBatchBuilder& out) override;
  void reset() override;

  // Reader::Server: whether each message begun since the last call was
  // text (else binary), in order (the caller clears the list).
  std::vector<bool>& textMessages() { return textMessages_; }

  // Payloads of the PINGs received, in order, for the connection to answer
  // (it clears the list).
  std::vector<std::string>& pings() { return pings_; }
  // A PONG arrived since the last call.
  bool takePong();
  // A CLOSE arrived: its code (1005 when it carried none) and reason.
  bool closed() const { return closed_; }
  int closeCode() const { return closeCode_; }
  const std::string& closeReason() const { return closeReason_; }
  // After a protocol error: the close code that tells the provider why.
  int errorCloseCode() const { return errorCloseCode_; }

 private:
  bool parseHeader(FrameBatchBuilder& out);
  bool finishFrame(FrameBatchBuilder& out);
  bool protocolError(std::string what, int closeCode = 1002);
  void takePayload(const char* data, std::size_t size, FrameBatchBuilder& out);

  const std::size_t maxMessageBytes_;
  const Reader reader_;
  unsigned char header_[wire::kMaxWsHeaderBytes] = {};
  bool masked_ = false;
  unsigned char mask_[4] = {};
  std::uint64_t frameBytes_ = 0;  // the current frame's payload length
  std::size_t headerHave_ = 0;
  std::size_t headerNeed_ = 2;
  bool inPayload_ = false;
  bool fin_ = false;
  int opcode_ = 0;
  std::uint64_t remaining_ = 0;   // payload bytes of the current frame still to come
  bool inMessage_ = false;        // a data message has begun and not ended
  std::uint64_t messageBytes_ = 0;
  std::string control_;           // the control frame's payload
  std::vector<std::string> pings_;
  std::vector<bool> textMessages_;
  bool pong_ = false;
  bool closed_ = false;
  int closeCode_ = 0;
  std::string closeReason_;
  int errorCloseCode_ = 1002;
  std::uint64_t offset_ = 0;      // stream bytes consumed
  std::uint64_t frameStart_ = 0;  // stream offset of the current frame's header
};

using WsOpcode = wire::WsOpcode;
// One frame from a client: FIN set, the payload masked with a fresh random key.
std::string encodeClientFrame(WsOpcode opcode, std::string_view payload);
// One frame from a server: FIN set, not masked.
std::string encodeServerFrame(WsOpcode opcode, std::string_view payload);
// A CLOSE frame's payload: the code, then the reason (cut to fit 125 bytes).
inline std::string closePayload(int code, std::string_view reason) { return wire::wsClosePayload(code, reason); }

// The handshake: a fresh Sec-WebSocket-Key, and the Sec-WebSocket-Accept a
// server must answer it with.
std::string newWebSocketKey();
std::string webSocketAccept(const std::string& key);

// Closes a provider means (normal, going away, service restart): not failures.
bool isPlannedClose(int code);
// What a close code means ("service restart"), "" if it is not a registered one.
const char* closeCodeName(int code);

}  // namespace streamrelay
