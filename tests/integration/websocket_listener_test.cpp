// SPDX-License-Identifier: Apache-2.0
// Integration tests of the `websocket` listener protocol with the real relay
// and streamrelay-feed, and two clients that share no code with the relay:
// python3-websockets (tests/support/ws_subscriber.py) and the test's own
// byte-level client (web_client.hpp) for what libraries never send.
// Counters are read from /stats, never from log lines.

#include <catch2/catch.hpp>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <regex>
#include <string>

#include "pki.hpp"
#include "relay_fixture.hpp"
#include "subscriber_helpers.hpp"
#include "web_client.hpp"

using namespace streamrelay::test;
using streamrelay::wire::WsOpcode;

namespace {

// The python3-websockets subscriber: prints ANSWER, then TEXT/BINARY lines.
std::unique_ptr<ChildProcess> pythonSubscriber(const std::string& url, int count,
                                               const std::vector<std::string>& more = {}) {
  std::vector<std::string> args{STREAMRELAY_SOURCE_DIR "/tests/support/ws_subscriber.py", url, std::to_string(count)};
  args.insert(args.end(), more.begin(), more.end());
  return std::make_unique<ChildProcess>("/usr/bin/python3", args);
}

std::string url(const RunningRelay& relay, const std::string& listener, const std::string& target = "/") {
  return "ws://127.0.0.1:" + std::to_string(relay.ports.at(listener)) + target;
}

// The seq of each message, in order, as the test's client reads them with
// envelope header: 24-byte header + payload.
std::uint64_t seqOfHeadered(const std::string& message) {
  REQUIRE(message.size() >= streamrelay::wire::kFrameHeaderBytes);
  return streamrelay::wire::readFrameHeader(message.data()).seq;
}

std::string epochOf(const std::string& answer) {
  std::smatch m;
  REQUIRE(std::regex_search(answer, m, std::regex("\"epoch\":\"(\\d+)\"")));
  return m[1];
}

}  // namespace

TEST_CASE("websocket listener: python websockets gets the answer, then every frame in each envelope", "[integration][websocket]") {
  RunningRelay relay = startRelay(
      kListenUpstream + "listeners:\n" + listener("none", "protocol: websocket, message: text") +
          listener("header", "protocol: websocket, envelope: header") +
          listener("json", "protocol: websocket, envelope: json, message: text, path: /feed"),
      {"none", "header", "json"});
  auto byQuery = pythonSubscriber(url(relay, "none", "/?inputs=upstream"), 20);
  auto byMessage = pythonSubscriber(url(relay, "header"), 20, {"--hello", "{}"});
  auto json = pythonSubscriber(url(relay, "json", "/feed"), 20, {"--hello", R"({"inputs": ["upstream"]})"});
  for (auto* client : {byQuery.get(), byMessage.get(), json.get()}) {
    INFO(client->output());
    REQUIRE(client->waitForLine("^ANSWER \\{\"ok\":true,").size() > 0);
  }
  auto feed = publish(relay, 20, 0, 32);
  for (auto* client : {byQuery.get(), byMessage.get(), json.get()}) CHECK(client->waitForExit(20s) == 0);
  INFO(byQuery->output() << byMessage->output() << json->output());
  CHECK(byQuery->countLines("\"envelope\":\"none\"") == 1);
  // envelope none, message text: the payload, as text.
  CHECK(byQuery->countLines("^TEXT feed \\d+\\.+$") == 20);
  CHECK(byQuery->countLines("^TEXT feed 20\\.+$") == 1);
  // envelope header: binary, the 24-byte header (its seq) then the payload.
  CHECK(byMessage->countLines("^BINARY 00000020000000000000000000000014[0-9a-f]{16}" +
                              std::string("666565642032302e") /* "feed 20." */) == 1);
  CHECK(byMessage->countLines("^BINARY ") == 20);
  // envelope json: a payload that is not JSON is a string.
  CHECK(json->countLines("^TEXT \\{\"stream\":\"upstream\",\"seq\":\"1\",\"time_ns\":\"\\d+\",\"data\":\"feed 1\\.+\"\\}$") == 1);
  CHECK(json->countLines("^TEXT \\{\"stream\":\"upstream\",\"seq\":\"20\",") == 1);
}

TEST_CASE("websocket listener: malformed handshakes are answered with an HTTP error and counted", "[integration][websocket]") {
  RelayStats stats;
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" + listener("main", "protocol: websocket") + stats.section());
  stats.attach(relay);
  const int port = relay.ports.at("main");
  struct Case {
    std::string request;
    int status;
  };
  const std::string key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
  const std::vector<Case> cases{
      {"POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + key + "Sec-WebSocket-Version: 13\r\n\r\n", 405},
      {WebClient::upgradeRequest("/elsewhere"), 404},
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 426},                                          // not an upgrade
      {"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + key + "Sec-WebSocket-Version: 8\r\n\r\n", 426},
      {"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n", 400},  // no key
      {"hello relay\r\n\r\n", 400},                                                           // not HTTP
      {"GET / HTTP/1.1\r\nX-Big: " + std::string(20000, 'x') + "\r\n\r\n", 431},              // a head over 16 KiB
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO("case " << i);
    WebClient client(port);
    client.send(cases[i].request);
    CHECK(WebClient::statusOf(client.readHead()) == cases[i].status);
    CHECK(client.waitForEnd());
  }
  CHECK(pollUntil([&] { return stats.listener("main", "disconnects.bad_request") == static_cast<long>(cases.size()); }));
  CHECK(stats.listener("main", "clients") == 0);
  CHECK(stats.listener("main", "pending") == 0);
}

TEST_CASE("websocket listener: a refused request line never echoes its target, and an absolute-form target is served", "[integration][websocket]") {
  RelayStats stats;
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" +
                                      listener("absolute", "protocol: websocket, path: /feed, auth: {tokens: [sekrit-token]}") +
                                      listener("http2", "protocol: websocket") + listener("broken", "protocol: websocket") +
                                      stats.section(),
                                  {"absolute", "http2", "broken"});
  stats.attach(relay);
  // Refused: neither the answer nor the log shows the target (its token).
  auto refusal = [&](const std::string& listener, const std::string& request) {
    WebClient client(relay.ports.at(listener));
    client.send(request);
    const std::string head = client.readHead();
    const std::string body = client.readToEnd();
    INFO(head << body);
    CHECK(WebClient::statusOf(head) == 400);
    CHECK_FALSE(body.empty());
    CHECK(body.find("sekrit") == std::string::npos);
  };
  refusal("http2", "GET /?token=sekrit-token HTTP/2.0\r\nHost: x\r\n\r\n");
  refusal("broken", "GET /?token=sekrit-token\r\n\r\n");
  CHECK(pollUntil([&] {
    return stats.listener("http2", "disconnects.bad_request") == 1 && stats.listener("broken", "disconnects.bad_request") == 1;
  }));
  // The refusal lines (the first of each listener is logged) are out once counted.
  CHECK(pollUntil([&] { return relay.process->countLines("listener (http2|broken): refused") == 2; }));
  CHECK(relay.process->countLines("sekrit") == 0);
  // RFC 9112 3.2.2: a server must accept the absolute form; its path and query count.
  WebClient absolute(relay.ports.at("absolute"));
  REQUIRE(absolute.openWebSocket("http://127.0.0.1:" + std::to_string(relay.ports.at("absolute")) +
                                 "/feed?token=sekrit-token"));
  CHECK(absolute.readData().payload.rfind("{\"ok\":true", 0) == 0);
}

TEST_CASE("websocket and sse listeners: a refusal quotes what the peer sent without its control bytes, in the answer and the log", "[integration][websocket][sse]") {
  RelayStats stats;
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" + listener("ws", "protocol: websocket") +
                                      listener("sse", "protocol: sse") + listener("method", "protocol: sse") +
                                      stats.section(),
                                  {"ws", "sse", "method"});
  stats.attach(relay);
  // One line each, whatever the %-decoded path or the method holds.
  auto refusal = [&](const std::string& listener, const std::string& request, int status) {
    WebClient client(relay.ports.at(listener));
    client.send(request);
    const std::string head = client.readHead();
    const std::string body = client.readToEnd();
    INFO(head << body);
    CHECK(WebClient::statusOf(head) == status);
    CHECK(std::count(body.begin(), body.end(), '\n') == 1);
    CHECK(body.find_first_of("\r\x1b\x07") == std::string::npos);
  };
  refusal("ws", WebClient::upgradeRequest("/x%0aFORGED-LINE%0d%1b[31mred"), 404);
  refusal("sse", "GET /x%0aFORGED-LINE%1b[31m HTTP/1.1\r\nHost: x\r\n\r\n", 404);
  refusal("method", "G\x1b[31mET\x07 / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
  CHECK(pollUntil([&] { return relay.process->countLines("listener (ws|sse|method): refused") == 3; }));
  CHECK(relay.process->countLines("^FORGED-LINE") == 0);
  CHECK(relay.process->output().find('\x1b') == std::string::npos);
}

TEST_CASE("websocket and sse listeners: a client gone before it is admitted counts as peer_closed, not as a bad request or hello", "[integration][websocket][sse]") {
  RelayStats stats;
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" + listener("ws", "protocol: websocket") +
                                      listener("sse", "protocol: sse") + stats.section(),
                                  {"ws", "sse"});
  stats.attach(relay);
  {
    WebClient midRequest(relay.ports.at("ws"));
    midRequest.send("GET / HTTP/1.1\r\nUpgrade: webs");
    WebClient afterUpgrade(relay.ports.at("ws"));
    REQUIRE(afterUpgrade.openWebSocket("/"));  // and no hello
    WebClient sse(relay.ports.at("sse"));
    sse.send("GET / HTTP/1.1\r\nAcc");
    REQUIRE(pollUntil([&] { return stats.listener("ws", "pending") == 2 && stats.listener("sse", "pending") == 1; }));
  }  // all three close
  CHECK(pollUntil([&] {
    return stats.listener("ws", "disconnects.peer_closed") == 2 && stats.listener("sse", "disconnects.peer_closed") == 1;
  }));
  CHECK(stats.listener("ws", "disconnects.bad_request") == 0);
  CHECK(stats.listener("ws", "disconnects.bad_hello") == 0);
  CHECK(stats.listener("sse", "disconnects.bad_request") == 0);
  CHECK(stats.listener("ws", "pending") == 0);
}

TEST_CASE("websocket listener: allow_origins refuses pages from other sites, not clients without an Origin", "[integration][websocket]") {
  RelayStats stats;
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" +
                                      listener("main", "protocol: websocket, allow_origins: ['http://app.example:8080']") +
                                      listener("none", "protocol: websocket") +
                                      listener("any", "protocol: websocket, allow_origins: ['*']") + stats.section(),
                                  {"main", "none", "any"});
  stats.attach(relay);
  auto opens = [&](const std::string& listener, const std::string& origin) {
    WebClient client(relay.ports.at(listener));
    return client.openWebSocket("/?inputs=upstream", origin.empty() ? "" : "Origin: " + origin + "\r\n");
  };
  CHECK(opens("main", "http://app.example:8080"));
  CHECK(opens("main", "HTTP://APP.EXAMPLE:8080"));  // scheme and host compare without case
  CHECK_FALSE(opens("main", "http://evil.example"));
  CHECK(opens("main", ""));                        // not a browser
  CHECK_FALSE(opens("none", "http://app.example:8080"));  // no list: no browser page at all
  CHECK(opens("none", ""));
  CHECK(opens("any", "http://anything.example"));
  // python3-websockets sees the refusal as what it is.
  auto refused = pythonSubscriber(url(relay, "main"), 1, {"--origin", "http://evil.example"});
  CHECK(refused->waitForExit() == 0);
  CHECK(refused->countLines("^REFUSED 403$") == 1);
  CHECK(pollUntil([&] {
    return stats.listener("main", "disconnects.origin_refused") == 2 &&
           stats.listener("none", "disconnects.origin_refused") == 1;
  }));
}

TEST_CASE("websocket listener: a client that breaks the protocol after its hello is closed with the code that says why", "[integration][websocket]") {
  RelayStats stats;
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" +
                                  listener("main", "protocol: websocket, max_message_bytes: 200") + stats.section());
  stats.attach(relay);
  const int port = relay.ports.at("main");
  auto opened = [&](WebClient& client) {
    REQUIRE(client.openWebSocket("/?inputs=upstream"));
    const WebClient::Message answer = client.readData();
    REQUIRE(answer.opcode == static_cast<int>(WsOpcode::Text));
    REQUIRE(answer.payload.rfind("{\"ok\":true", 0) == 0);
  };
  SECTION("an unmasked frame: 1002") {
    WebClient client(port);
    opened(client);
    client.sendFrame(WsOpcode::Text, "hi", false);
    const WebClient::Message close = client.readData();
    CHECK(close.opcode == static_cast<int>(WsOpcode::Close));
    CHECK(close.closeCode() == 1002);
    CHECK(close.payload.find("unmasked") != std::string::npos);
    CHECK(client.waitForEnd());
    CHECK(pollUntil([&] { return stats.listener("main", "disconnects.protocol_error") == 1; }));
  }
  SECTION("garbage that is no frame: 1002") {
    WebClient client(port);
    opened(client);
    client.send("GET / HTTP/1.1\r\n\r\n");  // 'G' has reserved bits set
    const WebClient::Message close = client.readData();
    CHECK(close.opcode == static_cast<int>(WsOpcode::Close));
    CHECK(close.closeCode() == 1002);
    CHECK(client.waitForEnd());
    CHECK(pollUntil([&] { return stats.listener("main", "disconnects.protocol_error") == 1; }));
  }
  SECTION("a message over max_message_bytes: 1009, before its bytes are kept") {
    WebClient client(port);
    opened(client);
    client.sendFrame(WsOpcode::Binary, std::string(300, 'x'));
    const WebClient::Message close = client.readData();
    CHECK(close.closeCode() == 1009);
    CHECK(client.waitForEnd());
    CHECK(pollUntil([&] { return stats.listener("main", "disconnects.message_too_big") == 1; }));
  }
  SECTION("pings are answered, messages dropped, and a close is answered with its code") {
    WebClient client(port);
    opened(client);
    client.sendFrame(WsOpcode::Text, "whatever a client says after its hello");
    client.sendFrame(WsOpcode::Ping, "are you there");
    const WebClient::Message pong = client.readData();
    CHECK(pong.opcode == static_cast<int>(WsOpcode::Pong));
    CHECK(pong.payload == "are you there");
    client.sendFrame(WsOpcode::Close, streamrelay::wire::wsClosePayload(1000, "bye"));
    const WebClient::Message close = client.readData();
    CHECK(close.opcode == static_cast<int>(WsOpcode::Close));
    CHECK(close.closeCode() == 1000);
    CHECK(client.waitForEnd());
    CHECK(pollUntil([&] { return stats.listener("main", "disconnects.peer_closed") == 1; }));
  }
}

// The writer reads a client's bytes up to a cap per wake-up and its epoll is
// edge-triggered: what a client sent in one burst must all be read without
// waiting for it to send again.
TEST_CASE("websocket listener: everything a client sends in one burst is read, beyond one wake-up's reads", "[integration][websocket]") {
  RelayStats stats;
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" +
                                  listener("main", "protocol: websocket, max_message_bytes: 1048576") + stats.section());
  stats.attach(relay);
  const int port = relay.ports.at("main");
  SECTION("the upgrade, 1500 pings and the hello at once: 1500 pongs, then the answer") {
    // Made before it connects, so that it is all in the relay's socket when
    // the relay first reads (~200 KB: more than two wake-ups' reads).
    std::string burst = WebClient::upgradeRequest("/");
    for (int i = 0; i < 1500; ++i) burst += WebClient::clientFrame(WsOpcode::Ping, std::string(125, 'p'));
    burst += WebClient::clientFrame(WsOpcode::Text, "{}");
    WebClient client(port);
    REQUIRE(client.send(burst));
    REQUIRE(WebClient::statusOf(client.readHead()) == 101);
    int pongs = 0;
    WebClient::Message message = client.readData();
    for (; message.opcode == static_cast<int>(WsOpcode::Pong); message = client.readData()) ++pongs;
    CHECK(pongs == 1500);
    CHECK(message.payload.rfind("{\"ok\":true", 0) == 0);
  }
  auto opened = [&](WebClient& client) {
    REQUIRE(client.openWebSocket("/?inputs=upstream"));
    REQUIRE(client.readData().payload.rfind("{\"ok\":true", 0) == 0);
  };
  SECTION("a 300 KiB message and a ping at once: the pong") {
    WebClient client(port);
    opened(client);
    REQUIRE(client.send(WebClient::clientFrame(WsOpcode::Binary, std::string(300 * 1024, 'x')) +
                        WebClient::clientFrame(WsOpcode::Ping, "after")));
    const WebClient::Message pong = client.readData();
    CHECK(pong.opcode == static_cast<int>(WsOpcode::Pong));
    CHECK(pong.payload == "after");
  }
  SECTION("thirty 30000-byte messages and a close at once: the close is answered") {
    WebClient client(port);
    opened(client);
    std::string burst;
    for (int i = 0; i < 30; ++i) burst += WebClient::clientFrame(WsOpcode::Binary, std::string(30000, 'x'));
    REQUIRE(client.send(burst + WebClient::clientFrame(WsOpcode::Close, streamrelay::wire::wsClosePayload(1000, ""))));
    CHECK(client.readData().closeCode() == 1000);
    CHECK(client.waitForEnd());
    CHECK(pollUntil([&] { return stats.listener("main", "disconnects.peer_closed") == 1; }));
  }
}

TEST_CASE("websocket listener: close codes follow RFC 6455 7.4: an invalid one is answered with 1002, text that is not UTF-8 with 1007, a late hello with 1008", "[integration][websocket]") {
  RelayStats stats;
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" +
                                  listener("main", "protocol: websocket, hello_timeout_ms: 300") + stats.section());
  stats.attach(relay);
  const int port = relay.ports.at("main");
  auto opened = [&](WebClient& client) {
    REQUIRE(client.openWebSocket("/?inputs=upstream"));
    REQUIRE(client.readData().payload.rfind("{\"ok\":true", 0) == 0);
  };
  SECTION("a close with a code no peer may send: 1002, never the code back") {
    for (int code : {0, 999, 1004, 1006, 1015, 2999, 5000, 65535}) {
      INFO("code " << code);
      WebClient client(port);
      opened(client);
      client.sendFrame(WsOpcode::Close, streamrelay::wire::wsClosePayload(code, ""));
      const WebClient::Message close = client.readData();
      CHECK(close.opcode == static_cast<int>(WsOpcode::Close));
      CHECK(close.closeCode() == 1002);
      CHECK(client.waitForEnd());
    }
    CHECK(pollUntil([&] { return stats.listener("main", "disconnects.protocol_error") == 8; }));
  }
  SECTION("a close with an application's code is answered with it") {
    WebClient client(port);
    opened(client);
    client.sendFrame(WsOpcode::Close, streamrelay::wire::wsClosePayload(4000, "done"));
    CHECK(client.readData().closeCode() == 4000);
    CHECK(client.waitForEnd());
  }
  SECTION("a text message that is not UTF-8, as the hello or after it: 1007") {
    WebClient hello(port);
    REQUIRE(hello.openWebSocket("/"));
    hello.sendFrame(WsOpcode::Text, "{\"inputs\":[\"\xff\xfe\"]}");
    CHECK(hello.readData().closeCode() == 1007);
    WebClient later(port);
    opened(later);
    later.sendFrame(WsOpcode::Text, "caf\xc3");
    CHECK(later.readData().closeCode() == 1007);
    CHECK(later.waitForEnd());
  }
  SECTION("no hello within hello_timeout_ms after the 101: a close frame 1008 first") {
    WebClient client(port);
    REQUIRE(client.openWebSocket("/"));
    const WebClient::Message close = client.readData();
    CHECK(close.opcode == static_cast<int>(WsOpcode::Close));
    CHECK(close.closeCode() == 1008);
    CHECK(client.waitForEnd());
    CHECK(pollUntil([&] { return stats.listener("main", "disconnects.hello_timeout") == 1; }));
  }
}

TEST_CASE("websocket listener: the hello as first message, its refusals and its timeout", "[integration][websocket]") {
  RelayStats stats;
  RunningRelay relay = startRelay(
      kListenUpstream + "listeners:\n" +
      listener("main", "protocol: websocket, hello_timeout_ms: 300, auth: {tokens: [ws-token]}") + stats.section());
  stats.attach(relay);
  const int port = relay.ports.at("main");
  SECTION("a token in the first message, or in the query") {
    WebClient byMessage(port);
    REQUIRE(byMessage.openWebSocket("/"));
    byMessage.sendFrame(WsOpcode::Text, R"({"token": "ws-token"})");
    CHECK(byMessage.readData().payload.rfind("{\"ok\":true", 0) == 0);
    WebClient byQuery(port);
    REQUIRE(byQuery.openWebSocket("/?token=ws-token"));
    CHECK(byQuery.readData().payload.rfind("{\"ok\":true", 0) == 0);
    CHECK(pollUntil([&] { return stats.listener("main", "clients") == 2; }));
  }
  SECTION("a wrong token: the answer says why, then 1008") {
    WebClient client(port);
    REQUIRE(client.openWebSocket("/?token=wrong"));
    const WebClient::Message answer = client.readData();
    CHECK(answer.payload.rfind("{\"ok\":false,\"error\":\"not authorized", 0) == 0);
    CHECK(answer.payload.find("wrong") == std::string::npos);  // never the token
    CHECK(client.readData().closeCode() == 1008);
    CHECK(client.waitForEnd());
    CHECK(pollUntil([&] { return stats.listener("main", "disconnects.auth_failed") == 1; }));
  }
  SECTION("a hello that is not JSON, or binary: 1008") {
    WebClient text(port);
    REQUIRE(text.openWebSocket("/"));
    text.sendFrame(WsOpcode::Text, "{not json");
    CHECK(text.readData().payload.rfind("{\"ok\":false,\"error\":\"the hello is not JSON", 0) == 0);
    CHECK(text.readData().closeCode() == 1008);
    WebClient binary(port);
    REQUIRE(binary.openWebSocket("/"));
    binary.sendFrame(WsOpcode::Binary, "{}");
    CHECK(binary.readData().payload.find("text message") != std::string::npos);
    CHECK(pollUntil([&] { return stats.listener("main", "disconnects.bad_hello") == 2; }));
  }
  SECTION("a select pattern that is not one is refused in words") {
    WebClient client(port);
    REQUIRE(client.openWebSocket("/?token=ws-token&select=md.>.BTC"));
    CHECK(client.readData().payload.find("select pattern") != std::string::npos);
    CHECK(client.readData().closeCode() == 1008);
  }
  SECTION("no hello within hello_timeout_ms") {
    WebClient client(port);
    REQUIRE(client.openWebSocket("/"));
    CHECK(client.waitForEnd());
    CHECK(pollUntil([&] { return stats.listener("main", "disconnects.hello_timeout") == 1; }));
    CHECK(stats.listener("main", "pending") == 0);
  }
}

TEST_CASE("websocket listener: a subscriber that never reads is cut as a slow consumer and the others get every frame", "[integration][websocket][slow]") {
  RelayStats stats;
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" +
                                  listener("main", "protocol: websocket, queue: {max_frames: 0, max_bytes: 1048576}, "
                                                   "send_buffer_bytes: 16384") +
                                  stats.section());
  stats.attach(relay);
  WebClient stuck(relay.ports.at("main"), 4096);
  REQUIRE(stuck.openWebSocket("/?inputs=upstream"));
  auto reader = pythonSubscriber(url(relay, "main", "/?inputs=upstream"), 3000);
  REQUIRE(reader->waitForLine("^ANSWER ").size() > 0);
  REQUIRE(pollUntil([&] { return stats.listener("main", "clients") == 2; }));
  // 3 MB at 1,000 frames/s: three times what the stuck client's queue and
  // buffers hold, while the Python reader may fall a second behind (a loaded
  // machine stalls it) before its own queue of 1 MiB fills.
  auto feed = publish(relay, 3000, 1000, 1024);
  CHECK(reader->waitForExit(30s) == 0);
  INFO(reader->output());
  CHECK(reader->countLines("^BINARY ") == 3000);
  CHECK(pollUntil([&] { return stats.listener("main", "disconnects.slow_consumer") == 1; }));
}

TEST_CASE("websocket listener: a reconnect with resume=EPOCH-SEQ continues with no gap and no duplicate", "[integration][websocket][resume]") {
  RunningRelay relay = startRelay(kListenUpstream + "streams: {upstream: {replay: {frames: 1000}}}\nlisteners:\n" +
                                  listener("main", "protocol: websocket, envelope: header"));
  std::string epoch;
  {
    WebClient first(relay.ports.at("main"));
    REQUIRE(first.openWebSocket("/?inputs=upstream"));
    epoch = epochOf(first.readData().payload);
    auto feed = publish(relay, 100);
    for (std::uint64_t seq = 1; seq <= 40; ++seq) REQUIRE(seqOfHeadered(first.readData().payload) == seq);
    CHECK(feed->waitForExit() == 0);
  }  // gone after seq 40
  WebClient again(relay.ports.at("main"));
  REQUIRE(again.openWebSocket("/?resume=" + epoch + "-40"));
  const std::string answer = again.readData().payload;
  CHECK(answer.find("\"recovered\":true,\"first_seq\":41") != std::string::npos);
  for (std::uint64_t seq = 41; seq <= 100; ++seq) REQUIRE(seqOfHeadered(again.readData().payload) == seq);
}

TEST_CASE("websocket listener: pings when idle and a close frame 1001 at shutdown", "[integration][websocket][heartbeat]") {
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" +
                                  listener("main", "protocol: websocket, heartbeat_ms: 200"));
  WebClient client(relay.ports.at("main"));
  REQUIRE(client.openWebSocket("/?inputs=upstream"));
  REQUIRE(client.readData().opcode == static_cast<int>(WsOpcode::Text));
  // Two pings, and nothing else, while no frame comes.
  const WebClient::Message nothing = client.readData(700ms);
  CHECK(nothing.opcode == -1);
  CHECK(client.pingsSeen() >= 2);
  relay.process->terminate();
  const WebClient::Message close = client.readData();
  CHECK(close.opcode == static_cast<int>(WsOpcode::Close));
  CHECK(close.closeCode() == 1001);
  CHECK(relay.process->waitForExit() == 0);
}

TEST_CASE("websocket listener over TLS (wss): python websockets reads frames through the listener's certificate", "[integration][websocket][tls]") {
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" + listener("main", "protocol: websocket, " + tlsKeys()));
  auto client = pythonSubscriber("wss://localhost:" + std::to_string(relay.ports.at("main")) + "/?inputs=upstream", 10,
                                 {"--cafile", pki().path("ca.pem")});
  REQUIRE(client->waitForLine("^ANSWER \\{\"ok\":true").size() > 0);
  auto feed = publish(relay, 10);
  CHECK(client->waitForExit(20s) == 0);
  INFO(client->output());
  CHECK(client->countLines("^BINARY ") == 10);
}

TEST_CASE("client.hpp and streamrelay-sub speak websocket and sse, and resume across a listener restart with no gap", "[integration][websocket][sse][resume]") {
  const std::string base = kListenUpstream + "streams: {upstream: {replay: {frames: 100000}}}\nlisteners:\n";
  auto config = [&](const std::string& envelope, const std::string& encoding) {
    return base + "  - {name: ws, bind: '127.0.0.1:0', protocol: websocket, envelope: " + envelope + "}\n" +
           "  - {name: sse, bind: '127.0.0.1:0', protocol: sse, encoding: " + encoding + "}\n";
  };
  RunningRelay relay = startRelay(config("header", "text"), {"ws", "sse"});
  Subscriber::Options reconnecting;
  reconnecting.reconnect = true;
  Subscriber ws(url(relay, "ws"), reconnecting);
  Subscriber sse("http://127.0.0.1:" + std::to_string(relay.ports.at("sse")) + "/", reconnecting);
  REQUIRE(ws.awaitAnswer(10s));
  REQUIRE(sse.awaitAnswer(10s));
  CHECK(ws.protocol() == Subscriber::Protocol::WebSocket);
  CHECK(sse.protocol() == Subscriber::Protocol::Sse);
  // Its frames go to stdout: joined with stderr, which the test reads.
  auto printer = std::make_unique<ChildProcess>(
      "/bin/sh", std::vector<std::string>{"-c", "exec " STREAMRELAY_SUB_BIN " sse://127.0.0.1:" +
                                                    std::to_string(relay.ports.at("sse")) +
                                                    "/ --count 3000 --reconnect 1>&2"});
  REQUIRE(printer->waitForLine("connected: \\{\"ok\":true").size() > 0);
  auto firstThousand = publish(relay, 1000, 3000);
  CHECK(readSeqs(ws, 1, 1000) == 1000);
  CHECK(readSeqs(sse, 1, 1000) == 1000);
  // Other envelope and encoding: both listeners restart, their subscribers
  // are closed (1001) and come back, resuming where they were. The other
  // 2000 frames are published once the successors answer, over two seconds
  // while the predecessors close: a subscriber cannot read them all before
  // its connection ends, however long the reload took.
  relay.reload(config("json", "base64"));
  auto answersWith = [](const std::string& address, auto newSetting) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      Subscriber probe(address);
      if (probe.awaitAnswer(5s) && newSetting(probe.answer())) return true;
    }
    return false;
  };
  REQUIRE(answersWith(url(relay, "ws"), [](const auto& a) { return a.envelope == "json"; }));
  REQUIRE(answersWith("http://127.0.0.1:" + std::to_string(relay.ports.at("sse")) + "/",
                      [](const auto& a) { return a.encoding == "base64"; }));
  const std::string rest = relay.configPath + ".rest";
  {
    std::ofstream lines(rest);
    for (int n = 1001; n <= 3000; ++n) lines << "feed " << n << "\n";
  }
  auto otherTwoThousand = startFeed({"--connect", "127.0.0.1:" + std::to_string(relay.publisherPort), "--framing",
                                     "length-prefix", "--file", rest, "--rate", "1000"});
  CHECK(readSeqs(ws, 1001, 2000) == 3000);
  CHECK(readSeqs(sse, 1001, 2000) == 3000);
  CHECK(ws.answers() == 2);
  CHECK(ws.answer().recovery == streamrelay::client::Recovery::Recovered);
  CHECK(ws.answer().envelope == "json");
  CHECK(sse.answers() == 2);
  CHECK(sse.answer().recovery == streamrelay::client::Recovery::Recovered);
  CHECK(sse.answer().encoding == "base64");
  CHECK(printer->waitForExit(30s) == 0);
  INFO(printer->output());
  CHECK(printer->countLines("^upstream seq=\\d+ feed \\d+") == 3000);
  CHECK(printer->countLines("^upstream seq=3000 feed 3000") == 1);
}

TEST_CASE("client.hpp over wss:// and https:// reads frames through the listener's certificate and a wrong token is Refused", "[integration][websocket][sse][tls]") {
  RunningRelay relay = startRelay(
      kListenUpstream + "listeners:\n" +
          listener("ws", "protocol: websocket, envelope: header, auth: {tokens: [web-token]}, " + tlsKeys()) +
          listener("sse", "protocol: sse, auth: {tokens: [web-token]}, " + tlsKeys()),
      {"ws", "sse"});
  const std::string wss = "wss://localhost:" + std::to_string(relay.ports.at("ws")) + "/";
  const std::string https = "https://localhost:" + std::to_string(relay.ports.at("sse")) + "/";
  SECTION("the right token, in the options or in the URL's query") {
    Subscriber::Options options = tlsClient();
    options.token = "web-token";
    Subscriber ws(wss, options);
    Subscriber sse(https + "?token=web-token", tlsClient());
    REQUIRE(ws.awaitAnswer(10s));
    REQUIRE(sse.awaitAnswer(10s));
    auto feed = publish(relay, 10);
    CHECK(readSeqs(ws, 1, 10) == 10);
    CHECK(readSeqs(sse, 1, 10) == 10);
  }
  SECTION("a wrong token") {
    Subscriber::Options options = tlsClient();
    options.token = "guess";
    Subscriber ws(wss, options);
    Subscriber sse(https, options);
    CHECK_THROWS_AS(ws.awaitAnswer(10s), streamrelay::client::Refused);
    CHECK_THROWS_AS(sse.awaitAnswer(10s), streamrelay::client::Refused);
  }
}

TEST_CASE("websocket listener: python websockets sending after its hello, chatter is dropped and an oversized message closed with 1009", "[integration][websocket]") {
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" +
                                  listener("main", "protocol: websocket, message: text, max_message_bytes: 200"));
  auto chatty = pythonSubscriber(url(relay, "main", "/?inputs=upstream"), 20, {"--after", "not a hello: \x01\x02 {["});
  auto oversized = pythonSubscriber(url(relay, "main", "/?inputs=upstream"), 20, {"--after", std::string(300, 'x')});
  REQUIRE(chatty->waitForLine("^ANSWER \\{\"ok\":true").size() > 0);
  CHECK(oversized->waitForExit(20s) == 0);
  INFO(oversized->output());
  CHECK(oversized->countLines("^CLOSED 1009 ") == 1);
  auto feed = publish(relay, 20);
  CHECK(chatty->waitForExit(20s) == 0);
  INFO(chatty->output());
  CHECK(chatty->countLines("^TEXT feed \\d+") == 20);
  CHECK(chatty->countLines("^DONE$") == 1);
}

TEST_CASE("client.hpp and streamrelay-sub refuse a URL they cannot use in one line, before connecting", "[integration][websocket][sse]") {
  auto errorOf = [](const std::string& address) {
    try {
      Subscriber sub(address);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  // Port 1: nothing listens there, so only an error before connecting is an invalid_argument.
  CHECK(errorOf("gopher://127.0.0.1:1/") == "unknown scheme 'gopher' (ws, wss, http, https, sse, sses)");
  CHECK(errorOf("ws://127.0.0.1:1/?tokn=x") == "unknown query parameter 'tokn' (token, inputs, select, snapshot, resume)");
  CHECK(errorOf("ws://127.0.0.1:1/?resume=12") == "resume: '12' is not EPOCH-SEQ or EPOCH-STREAM-SEQ");
  CHECK(errorOf("http://127.0.0.1:1/?token=%zz") == "a URL's query has a % not followed by two hex digits");
  ChildProcess sub(STREAMRELAY_SUB_BIN, {"ws://127.0.0.1:1/?token=%4"});
  CHECK(sub.waitForExit() == 2);
  CHECK(sub.countLines("^streamrelay-sub: a URL's query has a % not followed by two hex digits$") == 1);
}
