// SPDX-License-Identifier: Apache-2.0
// The listener protocols' encodings (what their codecs write for a batch,
// once per listener) and the pieces they are built from: the HTTP request
// reader, text encodings, the hello as query parameters and event ids.
#include <catch2/catch.hpp>

#include <yaml-cpp/yaml.h>

#include "config.hpp"
#include "hello.hpp"
#include "http_request.hpp"
#include "listener_protocol.hpp"
#include "streamrelay/wire.hpp"
#include "text_encoding.hpp"

using namespace streamrelay;

namespace {

// A listener of `yaml` (its keys beside name and bind; inputs a and b unless
// it names its own) serving `inputs`.
std::unique_ptr<ListenerProtocol> protocolOf(const std::string& yaml,
                                             const std::vector<const StreamId*>& inputs) {
  const std::string inputsKey = yaml.find("inputs:") == std::string::npos ? "inputs: [a, b], " : "";
  const Config config = parseConfig(
      "sources: {a: {type: generator}, b: {type: generator}}\nlisteners:\n"
      "  - {name: l, bind: '127.0.0.1:0', " + inputsKey + yaml + "}\n", "test.yaml");
  return listenerProtocol(config.listeners.front().protocol).create(config.listeners.front(), inputs);
}

// Every frame of `batch` as the listener's subscribers receive it.
std::vector<std::string> encodeAll(const ListenerProtocol& protocol, const FrameBatch& batch) {
  const EncodedBatch& encoded = protocol.codec().encoded(batch);
  std::vector<std::string> frames;
  for (std::size_t i = 0; i < batch.frameCount(); ++i) {
    const EncodedFrame& f = encoded.frame(i);
    if (f.total == 0) {
      frames.push_back("(skipped)");
      continue;
    }
    std::string frame(encoded.bytes() + f.offset, f.headBytes);
    if (f.payloadByReference) frame += batch.payload(i);
    frame.append(encoded.bytes() + f.offset + f.headBytes, f.tailBytes);
    CHECK(frame.size() == f.total);
    frames.push_back(frame);
  }
  return frames;
}

std::unique_ptr<FrameBatch> batchOf(const std::vector<std::string>& payloads, const StreamId* stream,
                                    std::uint64_t firstSeq = 1) {
  FrameBatchBuilder builder;
  for (const std::string& p : payloads) builder.add(p.data(), p.size());
  auto batch = builder.seal(1700000000123456789);
  batch->assignFirstSeq(firstSeq, stream);
  return batch;
}

// A server frame's payload, checked to be one whole frame of `opcode`.
std::string wsPayload(const std::string& frame, wire::WsOpcode opcode) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(frame.data());
  const std::size_t headerBytes = wire::wsHeaderBytes(bytes[0], bytes[1]);
  const wire::WsHeader h = wire::readWsHeader(bytes);
  CHECK(h.fin);
  CHECK_FALSE(h.masked);
  CHECK(h.opcode == static_cast<int>(opcode));
  CHECK(h.payloadBytes == frame.size() - headerBytes);
  return frame.substr(headerBytes);
}

const StreamId kTrades{"trades", 42};
const StreamId kQuotes{"quotes", 42};

}  // namespace

TEST_CASE("websocket envelopes: none, header and json, text or binary messages", "[protocols][websocket]") {
  const std::string large(5000, 'L');  // written from the batch, not copied
  const std::string notUtf8("\xff\xfe", 2);
  auto batch = batchOf({"plain text", R"({"px": 1.5, "sym": "BTC"})", notUtf8, large}, &kQuotes, 7);
  SECTION("none, text: UTF-8 payloads as text messages, others binary") {
    auto frames = encodeAll(*protocolOf("protocol: websocket, message: text", {&kTrades, &kQuotes}), *batch);
    CHECK(wsPayload(frames[0], wire::WsOpcode::Text) == "plain text");
    CHECK(wsPayload(frames[2], wire::WsOpcode::Binary) == notUtf8);
    CHECK(wsPayload(frames[3], wire::WsOpcode::Text) == large);
  }
  SECTION("header: binary, the streamrelay header with the stream's id in the listener") {
    auto frames = encodeAll(*protocolOf("protocol: websocket, envelope: header", {&kTrades, &kQuotes}), *batch);
    const std::string message = wsPayload(frames[1], wire::WsOpcode::Binary);
    const wire::FrameHeader h = wire::readFrameHeader(message.data());
    CHECK(h.stream == 1);
    CHECK(h.seq == 8);
    CHECK(h.receivedUnixNs == 1700000000123456789);
    CHECK(h.payloadBytes == message.size() - wire::kFrameHeaderBytes);
    CHECK(message.substr(wire::kFrameHeaderBytes) == R"({"px": 1.5, "sym": "BTC"})");
  }
  SECTION("json: JSON verbatim, text as a string, other bytes as base64") {
    auto frames = encodeAll(*protocolOf("protocol: websocket, envelope: json, message: text", {&kTrades, &kQuotes}), *batch);
    CHECK(wsPayload(frames[0], wire::WsOpcode::Text) ==
          R"({"stream":"quotes","seq":"7","time_ns":"1700000000123456789","data":"plain text"})");
    CHECK(wsPayload(frames[1], wire::WsOpcode::Text) ==
          R"({"stream":"quotes","seq":"8","time_ns":"1700000000123456789","data":{"px": 1.5, "sym": "BTC"}})");
    CHECK(wsPayload(frames[2], wire::WsOpcode::Text) ==
          R"({"stream":"quotes","seq":"9","time_ns":"1700000000123456789","data":"//4=","encoding":"base64"})");
    CHECK(wsPayload(frames[3], wire::WsOpcode::Text).find("\"data\":\"LLLL") != std::string::npos);
  }
}

TEST_CASE("sse events: ids, event types with several inputs, lines, base64", "[protocols][sse]") {
  const std::string notUtf8("\xff", 1);
  auto batch = batchOf({"one line", "two\nlines\r\nand\rthree", notUtf8, std::string(600, 'L'), ""}, &kTrades, 41);
  SECTION("text, one input: id EPOCH-SEQ, one data line per line, what is not UTF-8 skipped") {
    auto frames = encodeAll(*protocolOf("protocol: sse, inputs: [a]", {&kTrades}), *batch);
    CHECK(frames[0] == "id: 42-41\ndata: one line\n\n");
    CHECK(frames[1] == "id: 42-42\ndata: two\ndata: lines\ndata: and\ndata: three\n\n");
    CHECK(frames[2] == "(skipped)");
    CHECK(frames[3] == "id: 42-44\ndata: " + std::string(600, 'L') + "\n\n");
    CHECK(frames[4] == "id: 42-45\ndata: \n\n");
  }
  SECTION("base64, several inputs: id EPOCH-STREAM-SEQ and the stream as the event type") {
    auto frames = encodeAll(*protocolOf("protocol: sse, encoding: base64", {&kTrades, &kQuotes}), *batch);
    CHECK(frames[0] == "id: 42-trades-41\nevent: trades\ndata: b25lIGxpbmU=\n\n");
    CHECK(frames[2] == "id: 42-trades-43\nevent: trades\ndata: /w==\n\n");
  }
}

TEST_CASE("listener protocol keys are checked against the protocol", "[protocols][config]") {
  auto errorOf = [](const std::string& keys) {
    try {
      parseConfig("sources: {a: {type: generator}}\nlisteners:\n  - {name: l, bind: '127.0.0.1:0', " + keys + "}\n",
                  "t.yaml");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  CHECK(errorOf("protocol: websocket, envelope: json") == "(accepted)");
  CHECK(errorOf("protocol: gopher").find("'gopher' is not a listener protocol (raw, streamrelay, websocket") !=
        std::string::npos);
  CHECK(errorOf("envelope: json").find("envelope: belongs to listener protocol websocket, not raw") != std::string::npos);
  CHECK(errorOf("protocol: websocket, path: feed").find("path: must start with /") != std::string::npos);
  CHECK(errorOf("protocol: websocket, framing: {type: delimiter}").find("applies to protocol raw only") !=
        std::string::npos);
  CHECK(errorOf("protocol: websocket, envelope: header, message: text").find("message:") != std::string::npos);
  CHECK(errorOf("auth: {tokens: [t]}").find("tokens need a protocol whose clients send a hello") != std::string::npos);
  CHECK(errorOf("protocol: websocket, auth: {tokens: [t]}") == "(accepted)");
  CHECK(errorOf("protocol: sse, allow_origins: ['*'], encoding: base64, retry_ms: 0") == "(accepted)");
  CHECK(errorOf("protocol: sse, envelope: json").find("belongs to listener protocol websocket, not sse") !=
        std::string::npos);
}

TEST_CASE("an HTTP request head is read in pieces, bounded, and bad ones are a status", "[protocols][http]") {
  HttpRequestReader reader;
  const std::string request =
      "GET /feed%20x?token=a%2Bb&inputs=x,y&flag HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
      "Upgrade: WebSocket\r\nX-Twice: 1\r\nx-twice: 2\r\n\r\nleft";
  for (std::size_t i = 0; i + 1 < request.size() - 4; ++i)
    REQUIRE(reader.add(request.substr(i, 1)) == HttpRequestReader::Result::More);
  REQUIRE(reader.add(request.substr(request.size() - 5)) == HttpRequestReader::Result::Done);
  const HttpRequest& r = reader.request();
  CHECK(r.method == "GET");
  CHECK(r.path == "/feed x");
  CHECK(r.query == std::vector<std::pair<std::string, std::string>>{{"token", "a+b"}, {"inputs", "x,y"}, {"flag", ""}});
  CHECK(r.headerHas("connection", "upgrade"));
  CHECK(r.headerHas("upgrade", "websocket"));
  CHECK(*r.header("x-twice") == "2");
  CHECK(reader.rest() == "left");

  auto statusOf = [](const std::string& bytes) {
    HttpRequestReader bad;
    return bad.add(bytes) == HttpRequestReader::Result::Bad ? bad.status() : 0;
  };
  CHECK(statusOf("hello\r\n\r\n") == 400);
  CHECK(statusOf("GET x.example:80 HTTP/1.1\r\n\r\n") == 400);  // authority form
  CHECK(statusOf("GET * HTTP/1.1\r\n\r\n") == 400);               // asterisk form
  CHECK(statusOf("GET ftp://x/ HTTP/1.1\r\n\r\n") == 400);
  CHECK(statusOf("GET http:///feed HTTP/1.1\r\n\r\n") == 400);    // no authority
  CHECK(statusOf("G\x1b""ET / HTTP/1.1\r\n\r\n") == 400);         // a method that is no token
  CHECK(statusOf("GET / HTTP/1.1\r\nOrigin: a\rb\r\n\r\n") == 400);
  // The absolute form (RFC 9112 3.2.2): its path and query.
  for (const auto& [target, path] : std::vector<std::pair<std::string, std::string>>{
           {"http://x.example:8080/feed?token=t", "/feed"}, {"HTTPS://x.example?token=t", "/"}, {"ws://x", "/"}}) {
    HttpRequestReader absolute;
    REQUIRE(absolute.add("GET " + target + " HTTP/1.1\r\n\r\n") == HttpRequestReader::Result::Done);
    CHECK(absolute.request().path == path);
    CHECK(absolute.request().query.size() == (path == "/feed" || target.find('?') != std::string::npos ? 1u : 0u));
  }
  CHECK(statusOf("GET /%zz HTTP/1.1\r\n\r\n") == 400);
  CHECK(statusOf("GET / HTTP/1.1\r\nno colon\r\n\r\n") == 400);
  CHECK(statusOf("GET / HTTP/1.1\r\n" + std::string(20000, 'x')) == 431);
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 101; ++i) many += "h" + std::to_string(i) + ": v\r\n";
  CHECK(statusOf(many + "\r\n") == 431);

  CHECK(originAllowed({}, nullptr));
  const std::string origin = "https://App.example";
  CHECK_FALSE(originAllowed({}, &origin));
  CHECK(originAllowed({"https://app.example"}, &origin));
  CHECK(originAllowed({"*"}, &origin));
  CHECK_FALSE(originAllowed({"https://app.example:8443"}, &origin));
}

TEST_CASE("text encodings: UTF-8, JSON values, JSON strings, base64", "[protocols][text]") {
  CHECK(text::isUtf8("plain ascii"));
  CHECK(text::isUtf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));  // é € 😀
  for (const char* bad : {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "\xff", "\x80"})
    CHECK_FALSE(text::isUtf8(bad));
  for (const char* good : {"1", "-0.5e+3", "\"a\\u00e9\\n\"", " {\"a\": [1, true, null, {}], \"b\": []} ", "[[[]]]"})
    CHECK(text::isJson(good));
  for (const char* bad : {"", "01", "1.", "{\"a\" 1}", "[1,]", "{\"a\":1,}", "\"\\x\"", "tru", "1 2", "[", "{}}",
                          "\"a\nb\"", "NaN"})
    CHECK_FALSE(text::isJson(bad));
  CHECK_FALSE(text::isJson(std::string(600, '[') + std::string(600, ']')));  // deeper than 512
  CHECK(text::isJson(std::string(500, '[') + std::string(500, ']')));
  std::string out;
  text::appendJsonString(out, "a\"b\\c\n\x01");
  CHECK(out == "\"a\\\"b\\\\c\\n\\u0001\"");
  for (const auto& [in, expected] : std::vector<std::pair<std::string, std::string>>{
           {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foobar", "Zm9vYmFy"}}) {
    std::string b64;
    text::appendBase64(b64, in);
    CHECK(b64 == expected);
  }
}

TEST_CASE("the hello as query parameters, and positions as event ids", "[protocols][hello]") {
  const protocol::Hello h =
      protocol::helloFromQuery({{"token", "t"}, {"inputs", "a,b"}, {"resume", "7-a-10,7-b-20"}});
  CHECK(h.token == "t");
  CHECK(h.inputs == std::vector<std::string>{"a", "b"});
  REQUIRE(h.resume);
  CHECK(h.resume->epoch == 7);
  CHECK(h.resume->byStream == std::map<std::string, std::uint64_t>{{"a", 10}, {"b", 20}});
  const protocol::Hello::Resume one = protocol::resumeFromEventIds("18446744073709551615-5", "Last-Event-ID");
  CHECK(one.epoch == 18446744073709551615ull);
  CHECK(one.afterSeq == 5u);
  CHECK(protocol::resumeFromEventIds("1-my-stream-3", "x").byStream.at("my-stream") == 3);
  auto errorOf = [](const std::vector<std::pair<std::string, std::string>>& query) {
    try {
      protocol::helloFromQuery(query);
    } catch (const protocol::HelloError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  CHECK(errorOf({{"resume", "x-1"}}) == "resume: 'x-1' is not EPOCH-SEQ or EPOCH-STREAM-SEQ");
  // Each stream's position in its own epoch (a logged stream keeps its own).
  const protocol::Hello twoEpochs = protocol::helloFromQuery({{"resume", "1-a-1,2-b-1"}});
  CHECK(twoEpochs.resume->epochFor("a") == 1);
  CHECK(twoEpochs.resume->epochFor("b") == 2);
  CHECK(errorOf({{"resume", "1-1,1-2"}}).find("each names its stream") != std::string::npos);
  CHECK(errorOf({{"tokn", "t"}}) == "unknown query parameter 'tokn' (token, inputs, select, snapshot, max_rate_per_key, resume, from_seq, from_time)");
  CHECK(wire::formatEventId(7, "", 3) == "7-3");
  CHECK(wire::formatEventId(7, "s", 3) == "7-s-3");
  CHECK_FALSE(wire::parseEventId("7--3"));
  CHECK_FALSE(wire::parseEventId("7"));
}
