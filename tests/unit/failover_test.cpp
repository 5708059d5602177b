// SPDX-License-Identifier: Apache-2.0
// Failover, the policy of the connecting sources, driven step by step with a
// clock and a jitter of the test's own.
#include <catch2/catch.hpp>

#include "config.hpp"
#include "failover.hpp"

using namespace streamrelay;
using namespace std::chrono_literals;

namespace {

FailoverPolicy policy(FailoverPolicy::Return mode = FailoverPolicy::Return::OnDisconnect) {
  FailoverPolicy p;
  p.returnToPrimary = mode;
  p.initialDelayMs = 100;
  p.maxDelayMs = 800;
  p.quietMs = 50;
  return p;
}

// A Failover over three endpoints with a clock the test moves and a jitter
// that always picks the top of its range.
struct Harness {
  explicit Harness(FailoverPolicy p = policy())
      : failover({"a:1", "b:2", "c:3"}, p, counters, [this] { return now; }, [this](int lo, int hi) {
          lastRange = {lo, hi};
          return hi;
        }) {}
  void advance(std::chrono::milliseconds ms) { now += ms; }
  std::uint64_t failures(std::size_t endpoint) {
    std::lock_guard<std::mutex> lock(counters.endpointsMutex);
    return counters.endpoints.at(endpoint).failures;
  }

  SourceCounters counters;
  Failover::Clock::time_point now{};
  std::pair<int, int> lastRange;
  Failover failover;
};

}  // namespace

TEST_CASE("failover: a failed try moves to the next endpoint at once, and a round ends at the last", "[failover]") {
  Harness h;
  Failover& f = h.failover;
  CHECK(f.next() == 0);
  CHECK(f.failed(0));
  CHECK(f.next() == 1);
  CHECK(f.failed(1));
  CHECK(f.next() == 2);
  CHECK_FALSE(f.failed(2));  // the round is over: wait
  CHECK(f.next() == 0);      // and the next one starts at the primary
  CHECK(h.failures(0) == 1);
  CHECK(h.failures(1) == 1);
  CHECK(h.failures(2) == 1);
  CHECK(f.describe(1) == "b:2 (endpoint 2 of 3)");
}

TEST_CASE("failover: after a lost connection the next try is the primary, and /stats shows the live endpoint",
          "[failover]") {
  Harness h;
  Failover& f = h.failover;
  CHECK(f.failed(0));
  f.connected(1);
  CHECK(f.live() == 1);
  {
    std::lock_guard<std::mutex> lock(h.counters.endpointsMutex);
    CHECK(h.counters.liveEndpoint == "b:2");
  }
  f.ended(false, true);
  CHECK(f.next() == 0);
  CHECK(f.live() == SIZE_MAX);
  CHECK(h.failures(1) == 1);  // lost unplanned: a failure
  std::lock_guard<std::mutex> lock(h.counters.endpointsMutex);
  CHECK(h.counters.liveEndpoint.empty());
}

TEST_CASE("failover: a planned close is not a failure", "[failover]") {
  Harness h;
  h.failover.connected(0);
  h.failover.ended(true, true);
  CHECK(h.failures(0) == 0);
  h.failover.connected(0);
  h.failover.ended(false, false);
  CHECK(h.failures(0) == 1);
}

TEST_CASE("failover: the backoff doubles up to the maximum, drawn from its upper half, and resets after frames",
          "[failover]") {
  Harness h;
  Failover& f = h.failover;
  CHECK(f.nextWaitMs() == 100);
  CHECK(h.lastRange == std::make_pair(50, 100));
  CHECK(f.nextWaitMs() == 200);
  CHECK(f.nextWaitMs() == 400);
  CHECK(f.nextWaitMs() == 800);
  CHECK(f.nextWaitMs() == 800);
  CHECK(h.lastRange == std::make_pair(400, 800));
  f.connected(0);
  f.ended(false, false);  // no frames: the backoff goes on growing
  CHECK(f.nextWaitMs() == 800);
  f.connected(0);
  f.ended(true, true);  // frames flowed: from the start again
  CHECK(f.nextWaitMs() == 100);
}

TEST_CASE("failover on_disconnect (the default): never a second connection while a secondary is live",
          "[failover]") {
  Harness h;
  Failover& f = h.failover;
  CHECK(f.policy().returnToPrimary == FailoverPolicy::Return::OnDisconnect);
  CHECK(f.failed(0));
  f.connected(1);
  for (int i = 0; i < 10; ++i) {
    h.advance(1h);
    CHECK(f.primaryAction(h.now - 1h) == Failover::Action::Stay);  // however long and quiet
    CHECK(f.msUntilAction(h.now) == -1);
  }
  f.ended(true, true);  // the secondary's connection ends: the primary first
  CHECK(f.next() == 0);
}

TEST_CASE("failover probe: the primary is probed after the initial delay, doubling after each failed probe",
          "[failover]") {
  Harness h(policy(FailoverPolicy::Return::Probe));
  Failover& f = h.failover;
  f.connected(0);
  h.advance(1h);
  CHECK(f.primaryAction(h.now) == Failover::Action::Stay);  // on the primary: nothing to do
  CHECK(f.msUntilAction(h.now) == -1);
  f.ended(false, false);
  CHECK(f.failed(0));
  f.connected(1);
  CHECK(f.msUntilAction(h.now) == 100);
  h.advance(99ms);
  CHECK(f.primaryAction(h.now) == Failover::Action::Stay);
  h.advance(1ms);
  CHECK(f.primaryAction(h.now) == Failover::Action::Probe);
  for (int delay : {200, 400, 800, 800}) {  // each failed probe waits twice as long, up to max_delay_ms
    f.probeFailed();
    CHECK(f.msUntilAction(h.now) == delay);
    h.advance(std::chrono::milliseconds(delay));
    CHECK(f.primaryAction(h.now) == Failover::Action::Probe);
  }
  CHECK(h.failures(0) == 6);  // the lost connection, the failed try, four failed probes
  // The primary answers: the secondary is left, and the schedule starts again.
  f.ended(true, true);
  f.connected(0);
  f.ended(false, true);
  CHECK(f.failed(0));
  f.connected(1);
  CHECK(f.msUntilAction(h.now) == 100);
}

TEST_CASE("failover when_quiet: the secondary is closed first, when it has been quiet and a return is due",
          "[failover]") {
  Harness h(policy(FailoverPolicy::Return::WhenQuiet));
  Failover& f = h.failover;
  CHECK(f.failed(0));
  const auto connectedAt = h.now;
  f.connected(1);
  h.advance(100ms);  // a return is due
  auto lastByte = h.now - 10ms;
  CHECK(f.primaryAction(lastByte) == Failover::Action::Stay);  // but the secondary spoke 10 ms ago
  CHECK(f.msUntilAction(lastByte) == 40);
  h.advance(40ms);
  CHECK(f.primaryAction(lastByte) == Failover::Action::CloseAndReturn);
  CHECK(f.primaryAction(connectedAt) == Failover::Action::CloseAndReturn);
  // Never a probe: the secondary is closed, then the primary tried.
  f.returning();
  f.ended(true, false);
  CHECK(h.failures(1) == 0);  // leaving it is planned
  CHECK(f.next() == 0);
  CHECK(f.failed(0));  // the primary does not answer yet: back to the secondary at once
  CHECK(f.next() == 1);
  f.connected(1);
  h.advance(199ms);
  CHECK(f.primaryAction(h.now - 1h) == Failover::Action::Stay);  // the next return waits twice as long
  h.advance(1ms);
  CHECK(f.primaryAction(h.now - 1h) == Failover::Action::CloseAndReturn);
  // A failed try of the primary that was no return does not stretch it further...
  f.ended(false, true);
  CHECK(f.failed(0));
  f.connected(1);
  CHECK(f.msUntilAction(h.now - 1h) == 200);
  // ...and a live primary starts the schedule again.
  f.ended(false, true);
  f.connected(0);
  f.ended(false, true);
  CHECK(f.failed(0));
  f.connected(1);
  CHECK(f.msUntilAction(h.now - 1h) == 100);
}

TEST_CASE("failover keys: the policy read from the config, and its mistakes on one line", "[failover][config]") {
  auto errorOf = [](const std::string& yaml) {
    try {
      parseConfig(yaml, "test.yaml");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  Config c = parseConfig("upstream: {type: websocket, endpoints: ['ws://a/', 'ws://b/'], reconnect: {initial_delay_ms: 7}, "
                         "failover: {return_to_primary: when_quiet, quiet_ms: 250}}\n", "t");
  FailoverPolicy p = FailoverPolicy::from(c.sources[0].settings);
  CHECK(p.returnToPrimary == FailoverPolicy::Return::WhenQuiet);
  CHECK(p.quietMs == 250);
  CHECK(p.initialDelayMs == 7);
  CHECK(FailoverPolicy::from(parseConfig("upstream: {type: tcp, host: h, port: 1}\n", "t").sources[0].settings)
            .returnToPrimary == FailoverPolicy::Return::OnDisconnect);
  CHECK(errorOf("upstream: {type: websocket, url: 'ws://a/', failover: {return_to_primary: probe}}\n") ==
        "test.yaml:1: upstream.failover: needs endpoints (at least two): there is nothing to fail over to");
  CHECK(errorOf("upstream: {type: tcp, endpoints: ['a:1', 'b:2'], failover: {return_to_primary: sometimes}}\n") ==
        "test.yaml:1: upstream.failover.return_to_primary: 'sometimes' is not one of: on_disconnect, when_quiet, probe");
  CHECK(errorOf("upstream: {type: http, endpoints: ['http://a/', 'http://b/'], failover: {return_to_primary: probe, "
                "quiet_ms: 5}}\n") ==
        "test.yaml:1: upstream.failover.quiet_ms: applies only with return_to_primary: when_quiet");
  CHECK(errorOf("upstream: {type: stdin, failover: {}}\n") ==
        "test.yaml:1: upstream.failover: belongs to source types tcp, http, websocket, streamrelay, redis, not stdin");
  CHECK(errorOf("upstream: {type: websocket, url: 'ws://a/', headers_on_redirect: true}\n") ==
        "test.yaml:1: upstream.headers_on_redirect: belongs to source type http, not websocket");
}
