// SPDX-License-Identifier: Apache-2.0
// Integration tests of the websocket source against a real WebSocket server
// on loopback (tests/support/ws_feed.py, the `websockets` library): text,
// binary and fragmented messages after a subscribe message, the server's
// ping answered, an oversize message refused before it is kept, a close code
// logged and the connection made again, and wss with a CA made at test time.

#include <catch2/catch.hpp>

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
  RunningRelay relay = startRelay(wsUpstream(feed.url("ws", "/oversize"), "max_frame_bytes: 65536"));
  auto m = relay.process->waitForLine("(a message of at least \\d+ bytes is larger than max_frame_bytes \\(65536\\)); "
                                      "reconnecting in");
  INFO(relay.process->output());
  REQUIRE(m.size() == 2);
  Subscriber sub(relay.address());
  CHECK(readSequence(sub, 1) == 1);  // what came before it was delivered
  CHECK(feed.process->waitForLines("connection to /oversize", 2));  // and the relay came back
}

TEST_CASE("websocket: a close code is logged and the connection made again", "[integration][websocket]") {
  WsFeed feed;
  RunningRelay relay = startRelay(wsUpstream(feed.url("ws", "/close")));
  INFO(relay.process->output());
  CHECK(relay.process->waitForLines("closed by the provider with code 4001 \\(maintenance\\); reconnecting in", 2));
}

TEST_CASE("websocket: an invalid frame closes that connection with one line, then a retry",
          "[integration][websocket]") {
  WsFeed feed;
  RunningRelay relay = startRelay(wsUpstream(feed.url("ws", "/invalid")));
  Subscriber sub(relay.address());
  CHECK(readSequence(sub, 1) == 1);
  INFO(relay.process->output());
  CHECK(relay.process->waitForLines("upstream ws://.*/invalid: .*; reconnecting in \\d+ ms", 2));
  CHECK(feed.process->waitForLines("connection to /invalid", 2));
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

// Failover: the primary dies mid-stream, the secondary takes over at once,
// and the primary is taken back when it serves again. Every frame is whole.
TEST_CASE("websocket endpoints: fail over when the primary dies, and back when it returns",
          "[integration][websocket][failover]") {
  auto primary = std::make_unique<WsFeed>();
  const int primaryPort = primary->port;
  WsFeed secondary;
  const std::string path = "/feed?n=100000&rate=1000";
  RunningRelay relay = startRelay(
      "upstream: {type: websocket, endpoints: ['" + primary->url("ws", path) + "', '" + secondary.url("ws", path) +
      "'], reconnect: {initial_delay_ms: 50, max_delay_ms: 400}}\nlisteners:\n" + listener("main"));
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
