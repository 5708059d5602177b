// SPDX-License-Identifier: Apache-2.0
// Integration tests of the websocket source against a real WebSocket server
// on loopback (tests/support/ws_feed.py, the `websockets` library): text,
// binary and fragmented messages after a subscribe message, the server's
// ping answered, an oversize message refused before it is kept, a close code
// logged as sent and the connection made again (1012 a planned close), the
// relay's own close frames, and wss with a CA made at test time.

#include <catch2/catch.hpp>

#include <regex>
#include <string>

#include "pki.hpp"
#include "relay_fixture.hpp"

using namespace streamrelay::test;

namespace {

struct WsFeed {
  std::unique_ptr<ChildProcess> process;
  int port = 0;
  explicit WsFeed(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{STREAMRELAY_SOURCE_DIR "/tests/support/ws_feed.py"};
    args.insert(args.end(), extra.begin(), extra.end());
    process = std::make_unique<ChildProcess>("/usr/bin/python3", args);
    auto m = process->waitForLine("listening on 127.0.0.1:(\\d+)");
    INFO(process->output());
    REQUIRE(m.size() == 2);
    port = std::stoi(m[1]);
  }
  std::string url(const std::string& scheme, const std::string& path) const {
    return scheme + "://127.0.0.1:" + std::to_string(port) + path;
  }
};

// A replay ring gives the subscriber, which connects after the source, every
// frame from the first.
std::string wsUpstream(const std::string& url, const std::string& extra = "") {
  return "upstream: {type: websocket, url: '" + url + "', reconnect: {initial_delay_ms: 50, max_delay_ms: 400}" +
         (extra.empty() ? "" : ", " + extra) + "}\nstreams: {upstream: {replay: {frames: 10000}}}\nlisteners:\n" +
         listener("main", "replay: {frames: 10000}");
}

}  // namespace

TEST_CASE("websocket: text, binary and fragmented messages after a subscribe message, one frame each",
          "[integration][websocket]") {
  WsFeed feed;
  RunningRelay relay = startRelay(
      wsUpstream(feed.url("ws", "/feed?n=3000&expect=1"), "send_on_connect: ['{\"op\": \"subscribe\"}']"));
  Subscriber sub(relay.address());
  CHECK(readSequence(sub, 3000) == 3000);
  CHECK(feed.process->waitForLine("received '\\{\"op\": \"subscribe\"\\}'").size() > 0);
  CHECK(feed.process->waitForLine("pong received").size() > 0);  // the server's PING was answered
}

TEST_CASE("websocket: a message over max_frame_bytes closes the connection before it is kept",
          "[integration][websocket]") {
  WsFeed feed;
  RelayStats stats;
  RunningRelay relay =
      startRelay(wsUpstream(feed.url("ws", "/oversize"), "max_frame_bytes: 65536") + stats.section());
  stats.attach(relay);
  auto m = relay.process->waitForLine("(a message of at least \\d+ bytes is larger than max_frame_bytes \\(65536\\)); "
                                      "reconnecting in");
  INFO(relay.process->output());
  REQUIRE(m.size() == 2);
  Subscriber sub(relay.address());
  CHECK(readSequence(sub, 1) == 1);  // what came before it was delivered
  CHECK(feed.process->waitForLines("connection to /oversize$", 2));  // and the relay came back
  CHECK(feed.process->waitForLine("connection to /oversize closed by the client with code 1009").size() > 0);
  CHECK(stats.counter("protocol_errors") >= 1);
}

TEST_CASE("websocket: a close code is logged and the connection made again", "[integration][websocket]") {
  WsFeed feed;
  RelayStats stats;
  RunningRelay relay = startRelay(wsUpstream(feed.url("ws", "/close")) + stats.section());
  stats.attach(relay);
  INFO(relay.process->output());
  CHECK(relay.process->waitForLines("closed by the provider with code 4001 \\(maintenance\\); reconnecting in", 2));
  CHECK(stats.endpointFailures(0) >= 2);  // 4001 is the provider's own code: not a planned close
}

// A provider restarting says 1012 "service restart": the log names that
// code, and the close is planned (no endpoint failure). libwebsockets 4.1
// rewrote 1012-1014 into 1002 before anyone saw them.
TEST_CASE("websocket: a provider's 1012 (service restart) is logged as sent, and is a planned close",
          "[integration][websocket]") {
  WsFeed feed;
  RelayStats stats;
  RunningRelay relay = startRelay(wsUpstream(feed.url("ws", "/close?code=1012")) + stats.section());
  stats.attach(relay);
  INFO(relay.process->output());
  CHECK(relay.process->waitForLines("closed by the provider with code 1012 \\(service restart\\); reconnecting in", 2));
  CHECK(relay.process->countLines("code 1002") == 0);
  CHECK(pollUntil([&] { return stats.counter("connects") >= 2; }));
  CHECK(stats.endpointFailures(0) == 0);
}

// The relay says goodbye with a close frame: 1001 (going away) when it stops,
// 1000 when the source restarts with a changed config; never a dropped
// connection (1006 at the provider).
TEST_CASE("websocket: the relay closes with a close frame, 1001 at shutdown and 1000 on a restart",
          "[integration][websocket]") {
  WsFeed feed;
  const std::string source = wsUpstream(feed.url("ws", "/feed?n=10"));
  RunningRelay relay = startRelay(source);
  Subscriber sub(relay.address());
  REQUIRE(readSequence(sub, 10) == 10);
  INFO(feed.process->output());
  SECTION("restart") {
    relay.reload(std::regex_replace(source, std::regex("max_delay_ms: 400"), "max_delay_ms: 500"));
    CHECK(feed.process->waitForLine("connection to /feed closed by the client with code 1000").size() > 0);
    CHECK(feed.process->waitForLines("connection to /feed$", 2));
  }
  SECTION("shutdown") {
    relay.process->terminate();
    CHECK(relay.process->waitForExit() == 0);
    CHECK(feed.process->waitForLine("connection to /feed closed by the client with code 1001").size() > 0);
  }
  CHECK(feed.process->countLines("code 1006") == 0);
}

TEST_CASE("websocket: an invalid frame closes that connection with one line, then a retry",
          "[integration][websocket]") {
  WsFeed feed;
  RunningRelay relay = startRelay(wsUpstream(feed.url("ws", "/invalid")));
  Subscriber sub(relay.address());
  CHECK(readSequence(sub, 1) == 1);
  INFO(relay.process->output());
  CHECK(relay.process->waitForLines("upstream ws://.*/invalid: .*; reconnecting in \\d+ ms", 2));
  CHECK(feed.process->waitForLines("connection to /invalid$", 2));
}

TEST_CASE("websocket: wss with the provider's CA, and an untrusted one refused", "[integration][websocket][tls]") {
  WsFeed feed({"--cert", pki().path("server.pem"), "--key", pki().path("server.key")});
  SECTION("trusted") {
    RunningRelay relay = startRelay(
        wsUpstream(feed.url("wss", "/feed?n=500"), "tls: {ca_file: '" + pki().path("ca.pem") + "'}"));
    Subscriber sub(relay.address());
    CHECK(readSequence(sub, 500) == 500);
  }
  SECTION("untrusted") {
    RunningRelay relay = startRelay(
        wsUpstream(feed.url("wss", "/feed?n=500"), "tls: {ca_file: '" + pki().path("other-ca.pem") + "'}"));
    INFO(relay.process->output());
    CHECK(relay.process->waitForLine("upstream wss://.*: .*; reconnecting in").size() > 0);
    CHECK(relay.process->countLines(": connected") == 0);
  }
}

// Failover with `return_to_primary: probe`: the primary dies mid-stream, the
// secondary takes over at once, and the primary is taken back when it serves
// again. Every frame is whole. (The default policy is tested in connecting_source_test.)
TEST_CASE("websocket endpoints, probe: fail over when the primary dies, and back when it answers",
          "[integration][websocket][failover]") {
  auto primary = std::make_unique<WsFeed>();
  const int primaryPort = primary->port;
  WsFeed secondary;
  const std::string path = "/feed?n=100000&rate=1000";
  RunningRelay relay = startRelay(
      "upstream: {type: websocket, endpoints: ['" + primary->url("ws", path) + "', '" + secondary.url("ws", path) +
      "'], reconnect: {initial_delay_ms: 50, max_delay_ms: 400}, failover: {return_to_primary: probe}}\nlisteners:\n" +
      listener("main"));
  Subscriber sub(relay.address());
  REQUIRE(relay.process->waitForLine("\\(endpoint 1 of 2\\): connected").size() > 0);
  CHECK(readWholeFeedFrames(sub, 50) == 50);
  primary->process->kill();
  primary->process->waitForExit();
  CHECK(relay.process->waitForLine("\\(endpoint 2 of 2\\): connected").size() > 0);
  CHECK(readWholeFeedFrames(sub, 50) == 50);
  WsFeed back({"--port", std::to_string(primaryPort)});
  CHECK(relay.process->waitForLine("the primary .* answers again: switching back").size() > 0);
  CHECK(relay.process->waitForLines("\\(endpoint 1 of 2\\): connected", 2));
  CHECK(readWholeFeedFrames(sub, 50) == 50);
}
