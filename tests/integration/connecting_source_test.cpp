// SPDX-License-Identifier: Apache-2.0
// Integration tests of the tcp source as providers really serve it: over TLS
// (certificates made with the openssl CLI at test time, a TLS provider on
// Python's ssl module) and with failover between endpoints (real feeds that
// die and come back).

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

}  // namespace

TEST_CASE("tls: frames from a provider whose certificate the CA file vouches for", "[integration][tls]") {
  auto feed = startTlsFeed(500);
  const int port = tlsFeedPort(*feed);
  SECTION("by IP address") {
    RunningRelay relay = startRelay(tlsUpstream(port, "ca_file: '" + pki().path("ca.pem") + "'") + "listeners:\n" +
                                    listener("main"));
    Subscriber sub(relay.address());
    CHECK(readSequence(sub, 500) == 500);
    CHECK(relay.process->waitForLine("connected \\(TLSv1\\.[23], ").size() > 0);
  }
  SECTION("by name, checked against server_name") {
    RunningRelay relay = startRelay(tlsUpstream(port, "ca_file: '" + pki().path("ca.pem") + "', server_name: localhost") +
                                    "listeners:\n" + listener("main"));
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
                                    "listeners:\n" + listener("main"));
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
                                  "listeners:\n" + listener("main"));
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

// Failover: the primary dies mid-stream, the secondary takes over at once,
// and the primary is taken back when it answers again. Frames are told apart
// by size (primary 20 bytes, secondary 30); every frame arrives whole.
TEST_CASE("endpoints: fail over to the secondary when the primary dies, and back when it returns",
          "[integration][failover]") {
  auto primary = startFeed({"--listen", "127.0.0.1:0", "--generate", "--rate", "2000", "--size", "20"});
  const int primaryPort = feedPort(*primary);
  auto secondary = startFeed({"--listen", "127.0.0.1:0", "--generate", "--rate", "2000", "--size", "30"});
  const int secondaryPort = feedPort(*secondary);
  RunningRelay relay = startRelay(
      "upstream: {type: tcp, endpoints: ['127.0.0.1:" + std::to_string(primaryPort) + "', '127.0.0.1:" +
      std::to_string(secondaryPort) + "'], reconnect: {initial_delay_ms: 50, max_delay_ms: 400}}\n"
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
