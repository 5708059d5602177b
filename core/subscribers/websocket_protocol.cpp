// SPDX-License-Identifier: Apache-2.0
// The `websocket` listener protocol (RFC 6455, ws and, with `tls`, wss), for
// browsers and any language's WebSocket client.
//
//   client -> relay  GET `path` with an Upgrade (its Origin checked against
//                    allow_origins); the hello as query parameters, or, with
//                    none, as the first text message (`{}`: the defaults)
//   relay -> client  101; the answer as one text message (hello.hpp; plus
//                    "envelope"); then one message per frame:
//                      envelope none    the payload (text if `message: text`
//                                       and the payload is UTF-8, else binary)
//                      envelope header  binary: the 24-byte header (wire.hpp) + the payload
//                      envelope json    {"stream":"s","seq":"N","time_ns":"T","data":...}:
//                                       data verbatim if the payload is JSON, else a
//                                       string (base64 with "encoding":"base64" if
//                                       it is not UTF-8)
//                    a ping every heartbeat_ms without a frame; a close frame
//                    that says why: 1008 not authorized, bad hello or no
//                    hello in time, 1009 a client message over
//                    max_message_bytes, 1002 a protocol error (or a client's
//                    close with a code RFC 6455 7.4 forbids), 1007 a text
//                    message that is not UTF-8, 1013 slow consumer or
//                    max_clients, 1001 shutdown.
//
// A frame's WebSocket header (and envelope) is written once per listener
// and batch (FrameCodec); the payload goes from the batch. Client messages
// after the hello are read and dropped; pings are answered.
#include <algorithm>
#include <cstring>
#include <optional>

#include "config.hpp"
#include "http_request.hpp"
#include "listener_protocol.hpp"
#include "streamrelay/wire.hpp"
#include "text_encoding.hpp"
#include "websocket_frames.hpp"
#include "yaml_map.hpp"

namespace streamrelay {

namespace {

enum class Envelope { None, Header, Json };

// The keys read for each new client (they reload in place).
struct WebSocketOptions {
  std::string path;
  std::vector<std::string> allowOrigins;
  std::size_t maxMessageBytes = 0;

  explicit WebSocketOptions(const Settings& s)
      : path(s.string("path")),
        allowOrigins(s.strings("allow_origins")),
        maxMessageBytes(static_cast<std::size_t>(s.integer("max_message_bytes"))) {}
};

class WebSocketCodec : public FrameCodec {
 public:
  WebSocketCodec(Envelope envelope, bool text, std::vector<const StreamId*> inputs)
      : envelope_(envelope), text_(text), inputs_(std::move(inputs)) {}

  void encodeFrame(const FrameBatch& batch, std::size_t i, FrameWriter& out) const override {
    const std::string_view payload = batch.payload(i);
    if (envelope_ == Envelope::None) {
      const bool text = text_ && text::isUtf8(payload);
      out.put(wire::wsHeader(text ? wire::WsOpcode::Text : wire::WsOpcode::Binary, payload.size()));
      out.payload(payload);
    } else if (envelope_ == Envelope::Header) {
      char header[wire::kFrameHeaderBytes];
      wire::writeFrameHeader(header, {static_cast<std::uint32_t>(payload.size()), streamIdOf(batch.stream()),
                                      out.flags(), batch.seq(i), batch.receivedUnixNs()});
      out.put(wire::wsHeader(wire::WsOpcode::Binary, sizeof header + payload.size()));
      out.put(std::string_view(header, sizeof header));
      out.payload(payload);
    } else {
      encodeJson(batch, i, payload, out);
    }
  }

 private:
  // {"stream":"s","seq":"N","time_ns":"T","data":...}: the payload itself
  // when it is JSON (written from the batch), else a string made here.
  void encodeJson(const FrameBatch& batch, std::size_t i, std::string_view payload, FrameWriter& out) const {
    std::string head = "{\"stream\":";
    text::appendJsonString(head, batch.stream() ? batch.stream()->name : std::string());
    head += ",\"seq\":\"" + std::to_string(batch.seq(i)) + "\",\"time_ns\":\"" +
            std::to_string(batch.receivedUnixNs()) + "\",";
    if (out.flags() & wire::kFlagSnapshot) head += "\"snapshot\":true,";
    if (out.flags() & wire::kFlagConflated) head += "\"conflated\":true,";
    head += "\"data\":";
    const bool verbatim = text::isJson(payload);
    std::string body;
    const char* tail = "}";
    if (!verbatim && text::isUtf8(payload)) {
      text::appendJsonString(body, payload);
    } else if (!verbatim) {
      body += '"';
      text::appendBase64(body, payload);
      body += '"';
      tail = ",\"encoding\":\"base64\"}";
    }
    const std::size_t size = head.size() + (verbatim ? payload.size() : body.size()) + std::strlen(tail);
    out.put(wire::wsHeader(text_ ? wire::WsOpcode::Text : wire::WsOpcode::Binary, size));
    out.put(head);
    if (verbatim) out.payload(payload);
    else out.put(body);
    out.put(tail);
  }

  std::uint16_t streamIdOf(const StreamId* stream) const {
    const auto it = std::find(inputs_.begin(), inputs_.end(), stream);
    return it == inputs_.end() ? 0 : static_cast<std::uint16_t>(it - inputs_.begin());
  }

  const Envelope envelope_;
  const bool text_;
  const std::vector<const StreamId*> inputs_;
};

std::string textMessage(std::string_view text) { return encodeServerFrame(wire::WsOpcode::Text, text); }
std::string closeFrame(int code, std::string_view why) {
  return encodeServerFrame(wire::WsOpcode::Close, wire::wsClosePayload(code, protocol::printable(why, 120)));
}

// The close code that tells a client why the relay closes.
int closeCodeOf(CloseReason reason) {
  switch (reason) {
    case CloseReason::Shutdown:
    case CloseReason::Removed: return 1001;
    case CloseReason::EpochChanged: return 1012;  // service restart: reconnect and resume
    case CloseReason::SlowConsumer:
    case CloseReason::MaxClients: return 1013;
    case CloseReason::AuthFailed:
    case CloseReason::BadHello:
    case CloseReason::HelloTimeout: return 1008;
    case CloseReason::MessageTooBig: return 1009;
    case CloseReason::ProtocolError: return 1002;
    default: return 1011;
  }
}

class WebSocketConversation : public Conversation {
 public:
  WebSocketConversation(WebSocketOptions options, const std::string& envelope)
      : options_(std::move(options)),
        envelope_(envelope),
        decoder_(options_.maxMessageBytes, WebSocketDecoder::Reader::Server) {}

  Step setupInput(std::string_view bytes) override {
    if (upgraded_) return readHello(bytes);
    switch (request_.add(bytes)) {
      case HttpRequestReader::Result::More:
        return {};
      case HttpRequestReader::Result::Bad:
        return refuseRequest(request_.status(), CloseReason::BadRequest, request_.error());
      case HttpRequestReader::Result::Done:
        break;
    }
    return upgrade();
  }

  std::string endedDuringSetup() const override {
    return upgraded_ ? "closed the connection before its hello" : "closed the connection before its request";
  }

  std::string answer(const AdmissionResult& result) override {
    if (result.refused == CloseReason::None)
      return textMessage(protocol::okAnswerJson(result.epoch, result.starts, result.heartbeatMs,
                                                {{"envelope", envelope_}}));
    closed_ = true;
    return textMessage(protocol::errorAnswerJson(result.error)) + closeFrame(closeCodeOf(result.refused), result.error);
  }

  Input input(std::string_view bytes, std::string& reply) override {
    Input input;
    if (closed_) return input;  // after our close frame: nothing it sends matters
    const bool good = decoder_.decode(bytes.data(), bytes.size(), messages_);
    const bool utf8 = textIsUtf8(*messages_.seal(0));  // messages after the hello are read and dropped
    answerPings(reply);
    if (!good) return protocolError(reply);
    if (!utf8) return invalidText(reply);
    if (decoder_.closed()) {
      closed_ = true;  // the close handshake: its code back, then the relay closes
      input.close = CloseReason::PeerClosed;
      const int code = decoder_.closeCode();
      if (code == 1005) {  // none
        reply += encodeServerFrame(wire::WsOpcode::Close, std::string());
      } else if (!validCloseCode(code)) {
        input.close = CloseReason::ProtocolError;
        input.detail = "a close frame with the invalid code " + std::to_string(code);
        reply += closeFrame(1002, "invalid close code " + std::to_string(code));
      } else {
        reply += encodeServerFrame(wire::WsOpcode::Close, wire::wsClosePayload(code, ""));
      }
    }
    return input;
  }

  std::string farewell(CloseReason reason) override {
    if (closed_ || !upgraded_ || reason == CloseReason::PeerClosed || reason == CloseReason::WriteError) return {};
    closed_ = true;
    return closeFrame(closeCodeOf(reason), reason == CloseReason::SlowConsumer ? "slow consumer"
                                           : reason == CloseReason::HelloTimeout ? "no hello within hello_timeout_ms"
                                                                                 : toString(reason));
  }

 private:
  Step refuseRequest(int status, CloseReason reason, const std::string& why, const std::string& headers = "") {
    Step step;
    step.next = Step::Next::Refuse;
    step.refused = reason;
    step.detail = why;
    step.reply = httpResponse(status, headers, why);
    return step;
  }

  Step upgrade() {
    const HttpRequest& r = request_.request();
    if (r.method != "GET") return refuseRequest(405, CloseReason::BadRequest, "method " + r.method + " (a WebSocket opens with GET)");
    if (r.path != options_.path)
      return refuseRequest(404, CloseReason::BadRequest, "path '" + r.path + "' (this listener serves '" + options_.path + "')");
    if (!r.headerHas("upgrade", "websocket") || !r.headerHas("connection", "upgrade"))
      return refuseRequest(426, CloseReason::BadRequest, "not a WebSocket upgrade (Upgrade: websocket, Connection: Upgrade)",
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n");
    const std::string* version = r.header("sec-websocket-version");
    if (!version || *version != "13")
      return refuseRequest(426, CloseReason::BadRequest, "Sec-WebSocket-Version must be 13", "Sec-WebSocket-Version: 13\r\n");
    const std::string* key = r.header("sec-websocket-key");
    if (!key || key->size() != 24 || key->compare(22, 2, "==") != 0)
      return refuseRequest(400, CloseReason::BadRequest, "a missing or malformed Sec-WebSocket-Key");
    const std::string* origin = r.header("origin");
    if (!originAllowed(options_.allowOrigins, origin))
      return refuseRequest(403, CloseReason::OriginRefused,
                           "origin '" + protocol::printable(*origin, 100) + "' is not in allow_origins");
    upgraded_ = true;
    const std::string accepted = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                 "Sec-WebSocket-Accept: " + webSocketAccept(*key) + "\r\n\r\n";
    Step step;
    if (!r.query.empty()) {  // the query is the hello
      try {
        step.hello = protocol::helloFromQuery(r.query);
        step.next = Step::Next::Admit;
      } catch (const protocol::HelloError& e) {
        step = refuseHello(e.what());
      }
    } else if (!request_.rest().empty()) {  // a client that sent its hello without waiting for the 101
      const std::string rest = std::move(request_.rest());
      step = readHello(rest);
    }
    step.reply = accepted + step.reply;
    return step;
  }

  // Waits for the hello: the first message, text.
  Step readHello(std::string_view bytes) {
    Step step;
    const bool good = decoder_.decode(bytes.data(), bytes.size(), messages_);
    answerPings(step.reply);
    if (!good) {
      Input error = protocolError(step.reply);
      step.next = Step::Next::Refuse;
      step.refused = error.close;
      step.detail = error.detail;
      return step;
    }
    if (decoder_.closed()) {
      step.next = Step::Next::Refuse;
      step.refused = CloseReason::BadHello;
      step.detail = "closed the WebSocket before its hello";
      step.reply += closeFrame(1000, "");
      closed_ = true;
      return step;
    }
    const auto messages = messages_.seal(0);
    if (messages->frameCount() == 0) return step;
    const bool text = decoder_.textMessages().front();
    if (!textIsUtf8(*messages)) {
      const Input error = invalidText(step.reply);
      step.next = Step::Next::Refuse;
      step.refused = error.close;
      step.detail = error.detail;
      return step;
    }
    const std::string_view hello = messages->payload(0);
    if (!text) return withReply(refuseHello("the hello must be a text message (JSON)"), step.reply);
    if (hello.size() > wire::kMaxHelloBytes)
      return withReply(refuseHello("hello longer than " + std::to_string(wire::kMaxHelloBytes) + " bytes"), step.reply);
    try {
      step.hello = protocol::parseHello(hello);
      step.next = Step::Next::Admit;
    } catch (const protocol::HelloError& e) {
      return withReply(refuseHello(e.what()), step.reply);
    }
    return step;
  }

  static Step withReply(Step step, const std::string& before) {
    step.reply = before + step.reply;
    return step;
  }

  Step refuseHello(const std::string& error) {
    Step step;
    step.next = Step::Next::Refuse;
    step.refused = CloseReason::BadHello;
    step.detail = error;
    step.reply = textMessage(protocol::errorAnswerJson(error)) + closeFrame(1008, error);
    closed_ = true;
    return step;
  }

  // Whether every text message of `messages` is UTF-8, as RFC 6455 8.1
  // requires; clears the decoder's list of which are text.
  bool textIsUtf8(const FrameBatch& messages) {
    bool good = true;
    const std::vector<bool>& text = decoder_.textMessages();
    for (std::size_t i = 0; i < messages.frameCount() && i < text.size(); ++i)
      if (text[i] && !text::isUtf8(messages.payload(i))) good = false;
    decoder_.textMessages().clear();
    return good;
  }

  // A text message that is not UTF-8: close 1007 (RFC 6455 7.4.1).
  Input invalidText(std::string& reply) {
    Input input;
    input.close = CloseReason::ProtocolError;
    input.detail = "a text message that is not UTF-8";
    reply += closeFrame(1007, input.detail);
    closed_ = true;
    return input;
  }

  // RFC 6455 7.4: the codes a peer may send (1005, 1006 and 1015 never go
  // on the wire; 1016-2999 are reserved; 3000-4999 are for applications).
  static bool validCloseCode(int code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
  }

  void answerPings(std::string& reply) {
    for (const std::string& ping : decoder_.pings()) reply += encodeServerFrame(wire::WsOpcode::Pong, ping);
    decoder_.pings().clear();
  }

  // A client that broke the protocol (unmasked, reserved bits) or sent a
  // message over max_message_bytes: a close frame says which, then the relay closes.
  Input protocolError(std::string& reply) {
    Input input;
    const int code = decoder_.errorCloseCode();
    input.close = code == 1009 ? CloseReason::MessageTooBig : CloseReason::ProtocolError;
    input.detail = decoder_.error().message;
    reply += closeFrame(code, input.detail);
    closed_ = true;
    return input;
  }

  const WebSocketOptions options_;
  const std::string envelope_;
  HttpRequestReader request_;
  bool upgraded_ = false;
  bool closed_ = false;  // a close frame was sent (or answered): nothing more is
  WebSocketDecoder decoder_;
  FrameBatchBuilder messages_;  // what the client sends, held only until it is read
};

Envelope envelopeOf(const std::string& name) {
  return name == "header" ? Envelope::Header : name == "json" ? Envelope::Json : Envelope::None;
}

class WebSocketProtocol : public ListenerProtocol {
 public:
  WebSocketProtocol(const ListenerConfig& config, std::vector<const StreamId*> inputs)
      : envelope_(config.settings.string("envelope")),
        message_(config.settings.string("message")),
        codec_(envelopeOf(envelope_), message_ == "text", std::move(inputs)) {}
  bool hasSetup() const override { return true; }
  std::unique_ptr<Conversation> open(const ListenerConfig& now) const override {
    return std::make_unique<WebSocketConversation>(WebSocketOptions(now.settings), envelope_);
  }
  const FrameCodec& codec() const override { return codec_; }
  std::string_view heartbeat() const override {
    static const std::string ping = encodeServerFrame(wire::WsOpcode::Ping, "");
    return ping;
  }
  std::string describe() const override { return "websocket, envelope " + envelope_ + ", " + message_ + " messages"; }

 private:
  const std::string envelope_;
  const std::string message_;
  WebSocketCodec codec_;
};

}  // namespace

ListenerProtocolType websocket_listener_protocol() {
  ListenerProtocolType type;
  type.spec.name = "websocket";
  type.spec.summary = "WebSocket (RFC 6455): browsers and any language; the hello as query parameters or first message";
  type.spec.keys = {
      key("path").def("/").applies(Reload::InPlace).doc("websocket: the path clients open"),
      key("envelope").def("none").oneOf({"none", "header", "json"})
          .doc("websocket: none, the payload; header, the 24-byte streamrelay header first; json, "
               "{\"stream\",\"seq\",\"time_ns\",\"data\"}"),
      key("message").def("binary").oneOf({"binary", "text"})
          .doc("websocket: the message type of frames (text: payloads that are not UTF-8 still go as binary)"),
      key("allow_origins", KeyKind::Strings).applies(Reload::InPlace)
          .doc("websocket, sse: the Origins of web pages allowed ([\"*\"]: any; none: only clients without an Origin)"),
      key("max_message_bytes", KeyKind::Int).def("65536").range(125, 1 << 30).applies(Reload::InPlace)
          .doc("websocket: the largest message a client may send (its hello too); one larger is closed with 1009"),
  };
  type.spec.check = [](const Settings& l, const YamlMap& m) {
    if (l.string("path").empty() || l.string("path")[0] != '/') m.fail("path", "must start with /");
    if (framingGiven(l)) m.fail("framing", "applies to protocol raw only (websocket frames its messages itself)");
    if (l.string("envelope") == "header" && l.string("message") == "text")
      m.fail("message", "envelope header is binary (a 24-byte header): message text cannot carry it");
  };
  type.readsHello = true;
  type.create = [](const ListenerConfig& config, std::vector<const StreamId*> inputs) {
    return std::make_unique<WebSocketProtocol>(config, std::move(inputs));
  };
  return type;
}

}  // namespace streamrelay
