// SPDX-License-Identifier: Apache-2.0
// The `sse` listener protocol: Server-Sent Events (text/event-stream), what
// a browser's EventSource reads; any HTTP client can.
//
//   client -> relay  GET `path`; the hello as query parameters (hello.hpp),
//                    the token also as `Authorization: Bearer T`, and on a
//                    reconnect `Last-Event-ID`, which resumes as the hello's
//                    resume does (it wins over the query's)
//   relay -> client  200, text/event-stream (CORS by allow_origins), `retry:`,
//                    the answer as an event of type streamrelay-answer, then
//                    one event per frame:
//                      id: EPOCH-SEQ      (EPOCH-STREAM-SEQ if the listener has several inputs)
//                      event: STREAM      (only then)
//                      data: the payload  (encoding text: one data line per line of it;
//                                          base64: its base64)
//                    and a comment line after heartbeat_ms without an event;
//                    or a 4xx/503 answer that says why it is refused.
//
// EventSource reconnects by itself with the last id it saw: a browser gets
// a lossless resume from the stream's replay ring for free. With encoding
// text a payload that is not UTF-8 cannot be carried: it is skipped and
// counted (base64 carries anything).
#include <algorithm>

#include <Poco/String.h>

#include "config.hpp"
#include "http_request.hpp"
#include "keys.hpp"
#include "listener_protocol.hpp"
#include "streamrelay/wire.hpp"
#include "text_encoding.hpp"
#include "yaml_map.hpp"

namespace streamrelay {

namespace {

constexpr const char* kAnswerEvent = "streamrelay-answer";

class SseCodec : public FrameCodec {
 public:
  SseCodec(bool base64, bool severalStreams) : base64_(base64), severalStreams_(severalStreams) {}

  void encodeFrame(const FrameBatch& batch, std::size_t i, FrameWriter& out) const override {
    const std::string_view payload = batch.payload(i);
    const bool text = !base64_;
    if (text && !text::isUtf8(payload)) return out.skip();
    const std::string stream = batch.stream() ? batch.stream()->name : std::string();
    const std::uint64_t epoch = batch.stream() ? batch.stream()->epoch : 0;
    std::string fields = "id: " + wire::formatEventId(epoch, severalStreams_ ? stream : std::string(), batch.seq(i)) + "\n";
    if (severalStreams_) fields += "event: " + stream + "\n";
    if (base64_) {
      fields += "data: ";
      text::appendBase64(fields, payload);
      fields += "\n\n";
      out.put(fields);
      return;
    }
    if (payload.find_first_of("\r\n") == std::string_view::npos) {  // one line: written from the batch
      out.put(fields + "data: ");
      out.payload(payload);
      out.put("\n\n");
      return;
    }
    // Several lines: one data field each (CR, LF and CRLF all end a line;
    // EventSource joins them with LF).
    for (std::size_t at = 0;;) {
      const std::size_t end = payload.find_first_of("\r\n", at);
      fields += "data: ";
      fields.append(payload.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at));
      fields += '\n';
      if (end == std::string_view::npos) break;
      at = end + (payload[end] == '\r' && end + 1 < payload.size() && payload[end + 1] == '\n' ? 2 : 1);
    }
    fields += '\n';
    out.put(fields);
  }

 private:
  const bool base64_;
  const bool severalStreams_;
};

// The keys read for each new client (they reload in place).
struct SseOptions {
  std::string path;
  std::vector<std::string> allowOrigins;
  int retryMs = 0;

  explicit SseOptions(const Settings& s)
      : path(s.string("path")), allowOrigins(s.strings("allow_origins")), retryMs(static_cast<int>(s.integer("retry_ms"))) {}
};

int statusOf(CloseReason reason) {
  switch (reason) {
    case CloseReason::AuthFailed: return 401;
    case CloseReason::BadHello: return 400;
    case CloseReason::MaxClients: return 503;
    default: return 403;
  }
}

class SseConversation : public Conversation {
 public:
  SseConversation(SseOptions options, const std::string& encoding)
      : options_(std::move(options)), encoding_(encoding) {}

  Step setupInput(std::string_view bytes) override {
    switch (request_.add(bytes)) {
      case HttpRequestReader::Result::More:
        return {};
      case HttpRequestReader::Result::Bad:
        return refuse(request_.status(), CloseReason::BadRequest, request_.error());
      case HttpRequestReader::Result::Done:
        break;
    }
    const HttpRequest& r = request_.request();
    if (r.method != "GET") return refuse(405, CloseReason::BadRequest, "method " + r.method + " (events are a GET)");
    if (r.path != options_.path)
      return refuse(404, CloseReason::BadRequest, "path '" + r.path + "' (this listener serves '" + options_.path + "')");
    const std::string* origin = r.header("origin");
    if (!originAllowed(options_.allowOrigins, origin))
      return refuse(403, CloseReason::OriginRefused,
                    "origin '" + protocol::printable(*origin, 100) + "' is not in allow_origins");
    if (origin) cors_ = "Access-Control-Allow-Origin: " + *origin + "\r\nVary: Origin\r\n";
    Step step;
    try {
      step.hello = protocol::helloFromQuery(r.query);
      if (const std::string* authorization = r.header("authorization")) {
        // The scheme is case-insensitive (RFC 9110 11.1).
        if (authorization->size() < 7 || Poco::icompare(authorization->substr(0, 7), std::string("bearer ")) != 0)
          throw protocol::HelloError("Authorization: expected Bearer TOKEN");
        step.hello.token = authorization->substr(7);
      }
      if (const std::string* last = r.header("last-event-id"); last && !last->empty())
        step.hello.resume = protocol::resumeFromEventIds(*last, "Last-Event-ID");
    } catch (const protocol::HelloError& e) {
      return refuse(400, CloseReason::BadHello, e.what());
    }
    step.next = Step::Next::Admit;
    return step;
  }

  std::string endedDuringSetup() const override { return "closed the connection before its request"; }

  std::string answer(const AdmissionResult& result) override {
    if (result.refused != CloseReason::None)
      return httpResponse(statusOf(result.refused),
                          cors_ + (result.refused == CloseReason::MaxClients ? "Retry-After: 1\r\n" : ""), result.error);
    std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\n"
        "Connection: close\r\nX-Accel-Buffering: no\r\n" + cors_ + "\r\n";
    if (options_.retryMs > 0) head += "retry: " + std::to_string(options_.retryMs) + "\n";
    return head + "event: " + kAnswerEvent + "\ndata: " +
           protocol::okAnswerJson(result.epoch, result.starts, result.heartbeatMs, {{"encoding", encoding_}}) + "\n\n";
  }

 private:
  Step refuse(int status, CloseReason reason, const std::string& why) {
    Step step;
    step.next = Step::Next::Refuse;
    step.refused = reason;
    step.detail = why;
    step.reply = httpResponse(status, cors_, why);
    return step;
  }

  const SseOptions options_;
  const std::string encoding_;
  HttpRequestReader request_;
  std::string cors_;  // the CORS headers of every answer, once the Origin is allowed
};

class SseProtocol : public ListenerProtocol {
 public:
  explicit SseProtocol(const ListenerConfig& config)
      : encoding_(config.settings.string("encoding")),
        codec_(encoding_ == "base64", config.inputs.size() > 1) {}
  bool hasSetup() const override { return true; }
  std::unique_ptr<Conversation> open(const ListenerConfig& now) const override {
    return std::make_unique<SseConversation>(SseOptions(now.settings), encoding_);
  }
  const FrameCodec& codec() const override { return codec_; }
  std::string_view heartbeat() const override { return ": heartbeat\n"; }
  std::string describe() const override { return "server-sent events, encoding " + encoding_; }

 private:
  const std::string encoding_;
  SseCodec codec_;
};

}  // namespace

ListenerProtocolType sse_listener_protocol() {
  ListenerProtocolType type;
  type.spec.name = "sse";
  type.spec.summary = "Server-Sent Events (text/event-stream): EventSource resumes by itself with Last-Event-ID";
  type.spec.keys = {
      key("path").def("/").applies(Reload::InPlace).doc("sse: the path clients GET"),
      key("encoding").def("text").oneOf({"text", "base64"})
          .doc("sse: text, the payload as data lines (UTF-8 only; others are skipped and counted); base64"),
      key("allow_origins", KeyKind::Strings).applies(Reload::InPlace)
          .doc("websocket, sse: the Origins of web pages allowed ([\"*\"]: any; none: only clients without an Origin)"),
      key("retry_ms", KeyKind::Int).def("2000").range(0, kIntMax).applies(Reload::InPlace)
          .doc("sse: how long EventSource waits before it reconnects (sent as retry:; 0: its own default)"),
  };
  type.spec.check = [](const Settings& l, const YamlMap& m) {
    if (l.string("path").empty() || l.string("path")[0] != '/') m.fail("path", "must start with /");
    if (framingGiven(l)) m.fail("framing", "applies to protocol raw only (sse writes events)");
  };
  type.readsHello = true;
  type.create = [](const ListenerConfig& config, std::vector<const StreamId*>) {
    return std::make_unique<SseProtocol>(config);
  };
  return type;
}

}  // namespace streamrelay
