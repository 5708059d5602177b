// SPDX-License-Identifier: Apache-2.0
// Integration tests of the connecting sources as providers really serve
// them: the tcp source over TLS (certificates made with the openssl CLI at
// test time, a TLS provider on Python's ssl module); failover between
// endpoints with real feeds that die and come back, and with a provider that
// lets an account hold one connection (tests/support/account_feed.py), for
// tcp, websocket and http alike.

#include <catch2/catch.hpp>

#include <string>

#include "pki.hpp"
#include "relay_fixture.hpp"

using namespace streamrelay::test;

namespace {

// A TLS provider serving `frames` frames "feed N" to each client.
std::unique_ptr<ChildProcess> startTlsFeed(int frames, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args{STREAMRELAY_SOURCE_DIR "/tests/support/tls_feed.py", "--cert",
                                pki().path("server.pem"), "--key", pki().path("server.key"), "--frames",
                                std::to_string(frames)};
  args.insert(args.end(), extra.begin(), extra.end());
  return std::make_unique<ChildProcess>("/usr/bin/python3", args);
}

int tlsFeedPort(ChildProcess& feed) {
  auto m = feed.waitForLine("listening on 127.0.0.1:(\\d+)");
  INFO(feed.output());
  REQUIRE(m.size() == 2);
  return std::stoi(m[1]);
}

std::string tlsUpstream(int port, const std::string& tls, const std::string& host = "127.0.0.1") {
  return "upstream: {type: tcp, host: '" + host + "', port: " + std::to_string(port) +
         ", reconnect: {initial_delay_ms: 50, max_delay_ms: 200}, tls: {enabled: true, " + tls + "}}\n";
}

// The provider sends its frames as soon as the relay connects, which may be
// before the subscriber is subscribed: a replay ring gives it every frame
// from the first.
std::string replayedListener() {
  return "streams: {upstream: {replay: {frames: 10000}}}\nlisteners:\n" + listener("main", "replay: {frames: 10000}");
}

}  // namespace

TEST_CASE("tls: frames from a provider whose certificate the CA file vouches for", "[integration][tls]") {
  auto feed = startTlsFeed(500);
  const int port = tlsFeedPort(*feed);
  SECTION("by IP address") {
    RunningRelay relay = startRelay(tlsUpstream(port, "ca_file: '" + pki().path("ca.pem") + "'") + replayedListener());
    Subscriber sub(relay.address());
    CHECK(readSequence(sub, 500) == 500);
    CHECK(relay.process->waitForLine("connected \\(TLSv1\\.[23], ").size() > 0);
  }
  SECTION("by name, checked against server_name") {
    RunningRelay relay = startRelay(tlsUpstream(port, "ca_file: '" + pki().path("ca.pem") + "', server_name: localhost") +
                                    replayedListener());
    Subscriber sub(relay.address());
    CHECK(readSequence(sub, 500) == 500);
  }
}

TEST_CASE("tls: an untrusted CA and a name mismatch are refused with one clear line", "[integration][tls]") {
  auto feed = startTlsFeed(10);
  const int port = tlsFeedPort(*feed);
  SECTION("untrusted CA") {
    RunningRelay relay = startRelay(tlsUpstream(port, "ca_file: '" + pki().path("other-ca.pem") + "'") +
                                    "listeners:\n" + listener("main"));
    auto m = relay.process->waitForLine("upstream 127\\.0\\.0\\.1:\\d+: (TLS handshake: certificate rejected: .*); "
                                        "reconnecting in");
    INFO(relay.process->output());
    REQUIRE(m.size() == 2);
    CHECK(m[1].str().find("unable to get local issuer certificate") != std::string::npos);
    CHECK(relay.process->countLines("upstream .*: connected") == 0);
  }
  SECTION("the certificate is for another name") {
    RunningRelay relay = startRelay(
        tlsUpstream(port, "ca_file: '" + pki().path("ca.pem") + "', server_name: feed.example.com") +
        "listeners:\n" + listener("main"));
    auto m = relay.process->waitForLine("(TLS handshake: certificate rejected: .*); reconnecting in");
    INFO(relay.process->output());
    REQUIRE(m.size() == 2);
    CHECK(m[1] == "TLS handshake: certificate rejected: hostname mismatch (for 'feed.example.com')");
  }
  SECTION("verify: false connects, and says at start that nothing is checked") {
    RunningRelay relay = startRelay(tlsUpstream(port, "ca_file: '" + pki().path("other-ca.pem") + "', verify: false") +
                                    replayedListener());
    CHECK(relay.process->waitForLine("tls.verify is false: the provider's certificate is NOT checked").size() > 0);
    Subscriber sub(relay.address());
    CHECK(readSequence(sub, 10) == 10);
  }
}

TEST_CASE("tls: a provider that requires a client certificate gets the relay's", "[integration][tls]") {
  auto feed = startTlsFeed(200, {"--client-ca", pki().path("ca.pem")});
  const int port = tlsFeedPort(*feed);
  RunningRelay relay = startRelay(tlsUpstream(port, "ca_file: '" + pki().path("ca.pem") + "', cert_file: '" +
                                                        pki().path("client.pem") + "', key_file: '" +
                                                        pki().path("client.key") + "'") +
                                  replayedListener());
  Subscriber sub(relay.address());
  CHECK(readSequence(sub, 200) == 200);
}

TEST_CASE("tls: a plain TCP peer or garbage instead of TLS is one line, then a retry", "[integration][tls]") {
  // The streamrelay-feed speaks plain length-prefixed frames: not TLS.
  auto feed = startFeed({"--listen", "127.0.0.1:0", "--generate", "--rate", "100", "--hold"});
  const int port = feedPort(*feed);
  RunningRelay relay = startRelay(tlsUpstream(port, "ca_file: '" + pki().path("ca.pem") + "'") + "listeners:\n" +
                                  listener("main"));
  auto m = relay.process->waitForLine("(TLS handshake: [^;]*); reconnecting in");
  INFO(relay.process->output());
  REQUIRE(m.size() == 2);
}

// Failover with `return_to_primary: probe`: the primary dies mid-stream, the
// secondary takes over at once, and the primary is taken back as soon as it
// answers a probe. Frames are told apart by size (primary 20 bytes,
// secondary 30); every frame arrives whole.
TEST_CASE("endpoints, probe: fail over to the secondary when the primary dies, and back when it answers",
          "[integration][failover]") {
  auto primary = startFeed({"--listen", "127.0.0.1:0", "--generate", "--rate", "2000", "--size", "20"});
  const int primaryPort = feedPort(*primary);
  auto secondary = startFeed({"--listen", "127.0.0.1:0", "--generate", "--rate", "2000", "--size", "30"});
  const int secondaryPort = feedPort(*secondary);
  RunningRelay relay = startRelay(
      "upstream: {type: tcp, endpoints: ['127.0.0.1:" + std::to_string(primaryPort) + "', '127.0.0.1:" +
      std::to_string(secondaryPort) + "'], reconnect: {initial_delay_ms: 50, max_delay_ms: 400}, "
      "failover: {return_to_primary: probe}}\n"
      "listeners:\n" + listener("main"));
  Subscriber sub(relay.address());
  // Reads until `count` frames of `size` bytes arrived; every frame must be
  // whole: "feed N" padded to 20 or 30 bytes.
  auto readFrom = [&](std::size_t size, int count) {
    std::string frame;
    int got = 0;
    while (got < count && sub.next(frame, 10s)) {
      INFO("frame '" << frame << "'");
      REQUIRE((frame.size() == 20 || frame.size() == 30));
      REQUIRE(frame.compare(0, 5, "feed ") == 0);
      if (frame.size() == size) ++got;
    }
    return got;
  };
  REQUIRE(readFrom(20, 200) == 200);
  CHECK(relay.process->countLines("of 2\\): connected") == 1);
  CHECK(relay.process->waitForLine("127\\.0\\.0\\.1:" + std::to_string(primaryPort) +
                                   " \\(endpoint 1 of 2\\): connected").size() > 0);

  primary->kill();
  primary->waitForExit();
  CHECK(readFrom(30, 200) == 200);
  CHECK(relay.process->waitForLine(" \\(endpoint 2 of 2\\): connected").size() > 0);

  // The primary comes back on its port: the relay probes it and switches.
  auto back = startFeed({"--listen", "127.0.0.1:" + std::to_string(primaryPort), "--generate", "--rate", "2000",
                         "--size", "20"});
  CHECK(readFrom(20, 200) == 200);
  CHECK(relay.process->waitForLine("answers again: switching back").size() > 0);
}

TEST_CASE("tls: the relay leaves with close_notify, at shutdown and when the source restarts", "[integration][tls]") {
  auto feed = startTlsFeed(50);
  const int port = tlsFeedPort(*feed);
  const std::string upstream = tlsUpstream(port, "ca_file: '" + pki().path("ca.pem") + "'");
  RunningRelay relay = startRelay(upstream + replayedListener());
  Subscriber sub(relay.address());
  REQUIRE(readSequence(sub, 50) == 50);
  SECTION("restart: a changed source reconnects, its old connection closed in order") {
    relay.reload(upstream.substr(0, upstream.size() - 2) + ", idle_timeout_ms: 60000}\n" + replayedListener());
    CHECK(feed->waitForLine("client sent close_notify").size() > 0);
    CHECK(feed->waitForLines("client connected", 2));
  }
  SECTION("shutdown") {
    relay.process->terminate();
    CHECK(relay.process->waitForExit() == 0);
    CHECK(feed->waitForLine("client sent close_notify").size() > 0);
  }
  INFO(feed->output());
  CHECK(feed->countLines("without close_notify") == 0);
}

namespace {

// A provider that lets an account hold one connection, on two ports (the
// primary first), in one protocol: it counts the connections open at once.
struct AccountFeed {
  std::string protocol;
  std::unique_ptr<ChildProcess> process;
  int ports[2] = {0, 0};

  explicit AccountFeed(std::string which) : protocol(std::move(which)) {
    process = std::make_unique<ChildProcess>(
        "/usr/bin/python3",
        std::vector<std::string>{STREAMRELAY_SOURCE_DIR "/tests/support/account_feed.py", "--protocol",
                                 protocol == "websocket" ? "ws" : protocol});
    auto m = process->waitForLine("listening on 127.0.0.1:(\\d+),(\\d+)");
    INFO(process->output());
    REQUIRE(m.size() == 3);
    ports[0] = std::stoi(m[1]);
    ports[1] = std::stoi(m[2]);
  }
  // Sends a command (down, up, end, quiet, talk) and waits until it is done.
  void command(const std::string& verb, int index) {
    const std::string done = verb + " " + std::to_string(index) + " done";
    const int before = process->countLines(done);
    process->writeStdin(verb + " " + std::to_string(index) + "\n");
    INFO(process->output());
    REQUIRE(process->waitForLines(done, before + 1));
  }
  int opened(int index) { return process->countLines("port " + std::to_string(index) + ": connection opened"); }
  // The relay's source, with `extra` keys.
  std::string upstream(const std::string& extra) const {
    auto address = [&](int i) {
      const std::string hostPort = "127.0.0.1:" + std::to_string(ports[i]);
      if (protocol == "tcp") return hostPort;
      return (protocol == "websocket" ? "ws://" : "http://") + hostPort + "/";
    };
    return "upstream: {type: " + protocol + ", endpoints: ['" + address(0) + "', '" + address(1) +
           "'], reconnect: {initial_delay_ms: 50, max_delay_ms: 400}" + (extra.empty() ? "" : ", " + extra) + "}\n";
  }
};

}  // namespace

// The default failover policy never holds two provider connections: a
// provider that allows one per account (and refuses or cuts a second) keeps
// serving through a primary failure and its return.
TEST_CASE("failover (default): never two provider connections at once, across a primary failure and its return",
          "[integration][failover]") {
  const std::string protocol = GENERATE(as<std::string>{}, "tcp", "websocket", "http");
  INFO(protocol);
  AccountFeed feed(protocol);
  RelayStats stats;
  RunningRelay relay = startRelay(feed.upstream("") + "listeners:\n" + listener("main") + stats.section());
  stats.attach(relay);
  Subscriber sub(relay.address());
  CHECK(readWholeFeedFrames(sub, 100) == 100);
  // The feed prints its line on its own: frames may reach us before we read it.
  REQUIRE(feed.process->waitForLines("port 0: connection opened", 1));
  CHECK(feed.opened(0) == 1);
  feed.command("down", 0);  // the primary fails
  REQUIRE(feed.process->waitForLine("port 1: connection opened").size() > 0);
  CHECK(readWholeFeedFrames(sub, 100) == 100);
  feed.command("up", 0);  // and comes back
  // The secondary streams on for longer than the probe policy takes to try
  // the primary (max_delay_ms 400): the primary is not connected meanwhile.
  CHECK(readWholeFeedFrames(sub, 2000) == 2000);
  CHECK(feed.opened(0) == 1);
  // The secondary's connection ends as its provider planned it: the primary is next.
  feed.command("end", 1);
  REQUIRE(feed.process->waitForLines("port 0: connection opened", 2));
  CHECK(readWholeFeedFrames(sub, 100) == 100);
  INFO(feed.process->output());
  INFO(relay.process->output());
  CHECK(feed.process->countLines("peak [2-9]") == 0);
  CHECK(stats.counter("connects") == 3);
  CHECK(stats.endpointFailures(0) >= 1);  // the drop
  CHECK(stats.endpointFailures(1) == 0);  // a planned end is no failure
}

// quiet_ms is 200 times the feed's 5 ms between writes: a loaded machine
// holding the provider back a moment does not make it quiet.
TEST_CASE("failover when_quiet: the secondary is closed when it goes quiet, then the primary connected",
          "[integration][failover]") {
  const std::string protocol = GENERATE(as<std::string>{}, "tcp", "websocket");
  INFO(protocol);
  AccountFeed feed(protocol);
  RelayStats stats;
  RunningRelay relay = startRelay(feed.upstream("failover: {return_to_primary: when_quiet, quiet_ms: 1000}") +
                                  "listeners:\n" + listener("main") + stats.section());
  stats.attach(relay);
  Subscriber sub(relay.address());
  CHECK(readWholeFeedFrames(sub, 100) == 100);
  feed.command("down", 0);
  REQUIRE(feed.process->waitForLine("port 1: connection opened").size() > 0);
  feed.command("up", 0);
  CHECK(readWholeFeedFrames(sub, 2000) == 2000);  // while the secondary talks, it stays
  CHECK(feed.opened(0) == 1);
  feed.command("quiet", 1);
  REQUIRE(feed.process->waitForLines("port 0: connection opened", 2));
  CHECK(readWholeFeedFrames(sub, 100) == 100);
  INFO(feed.process->output());
  CHECK(feed.process->countLines("peak [2-9]") == 0);
  if (protocol == "websocket") {  // the provider logs the close frame as it reads it
    CHECK(feed.process->waitForLine("port 1: connection closed by the client with code 1000").size() > 0);
    CHECK(feed.process->countLines("port 1: connection closed by the client") == 1);
  }
  CHECK(stats.endpointFailures(1) == 0);  // leaving it was planned
}

TEST_CASE("failover probe: the primary is connected while the secondary still streams (two connections)",
          "[integration][failover]") {
  AccountFeed feed("websocket");
  RunningRelay relay =
      startRelay(feed.upstream("failover: {return_to_primary: probe}") + "listeners:\n" + listener("main"));
  Subscriber sub(relay.address());
  CHECK(readWholeFeedFrames(sub, 100) == 100);
  feed.command("down", 0);
  REQUIRE(feed.process->waitForLine("port 1: connection opened").size() > 0);
  feed.command("up", 0);
  REQUIRE(feed.process->waitForLines("port 0: connection opened", 2));
  CHECK(relay.process->waitForLine("answers again: switching back").size() > 0);
  CHECK(readWholeFeedFrames(sub, 100) == 100);
  CHECK(feed.process->countLines("peak 2") > 0);
  CHECK(feed.process->waitForLine("port 1: connection closed by the client with code 1000").size() > 0);
}
