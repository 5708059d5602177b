// SPDX-License-Identifier: Apache-2.0
// Integration tests of clients given several relays (HOST:PORT,HOST:PORT):
// client.hpp and streamrelay-sub connect to the first relay that takes the
// connection, and a reconnect goes to the next one, with real relays on
// loopback, one of them killed.

#include <catch2/catch.hpp>

#include <string>

#include "free_port.hpp"
#include "relay_fixture.hpp"
#include "subscriber_helpers.hpp"

using namespace streamrelay::test;
using streamrelay::client::FrameInfo;

namespace {

const std::string kProtocolListener = kListenUpstream + "listeners:\n" + listener("main", "protocol: streamrelay");

std::string loopback(int port) { return "127.0.0.1:" + std::to_string(port); }

}  // namespace

TEST_CASE("client.hpp with several relays: the first that takes the connection serves it, none gives the last error", "[integration][protocol][failover]") {
  RunningRelay relay = startRelay(kProtocolListener);
  const int nobody = freePort();  // nothing listens there

  Subscriber sub(loopback(nobody) + "," + relay.address(), protocolClient());
  REQUIRE(sub.awaitAnswer(10s));
  CHECK(sub.endpoint().port == std::to_string(relay.ports.at("main")));
  auto feed = publish(relay, 3);
  CHECK(readSeqs(sub, 1, 3) == 3);

  const std::vector<int> closed = freePorts(2);
  CHECK_THROWS_AS(Subscriber(loopback(closed[0]) + "," + loopback(closed[1]), protocolClient()), std::runtime_error);
  CHECK_THROWS_AS(Subscriber(relay.address() + ",127.0.0.1", protocolClient()), std::invalid_argument);
}

TEST_CASE("streamrelay-sub and the Python example with two relays: the relay they read is killed, they go on at the other", "[integration][protocol][failover]") {
  RunningRelay first = startRelay(kProtocolListener);
  RunningRelay second = startRelay(kProtocolListener);
  const std::string both = first.address() + "," + second.address();
  const bool python = GENERATE(false, true);
  // stdout joined to stderr, which the test reads.
  ChildProcess client("/bin/sh", {"-c", python ? "exec /usr/bin/python3 " STREAMRELAY_SOURCE_DIR
                                                  "/sdk/examples/python_client/streamrelay_client.py " + both + " 1>&2"
                                               : "exec " STREAMRELAY_SUB_BIN " " + both +
                                                     " --protocol streamrelay --reconnect 1>&2"});
  REQUIRE(client.waitForLine("connected: .*\\(" + first.address() + "\\)$").size() > 0);
  auto feed = publish(first, 5);
  REQUIRE(client.waitForLine("^upstream seq=5 lag_ms=").size() > 0);

  first.process->kill();
  REQUIRE(first.process->waitForExit() != -1000);
  // The relays are not a fleet (each has its own epoch): the answer says
  // where the second one's stream starts.
  REQUIRE(client.waitForLine("connected: .*\"recovered\":false.*\\(" + second.address() + "\\)$").size() > 0);
  auto more = publish(second, 5);
  CHECK(client.waitForLines("^upstream seq=\\d+ lag_ms=[0-9.]+ feed \\d+", 10, 30s));
  INFO(client.output());
  CHECK(client.countLines("connected: ") == 2);
  CHECK(client.waitForExit(0ms) == -1000);  // still running
}
