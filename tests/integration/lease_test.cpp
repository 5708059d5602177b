// SPDX-License-Identifier: Apache-2.0
// Integration tests of the standby for the one provider connection
// (`lease:` and `follow:` on a source, docs/fleet.md): two relays P and S, a
// lease in a real redis-server, and a provider that refuses a second
// connection while one is open (tests/support/account_feed.py --exclusive).
// P is killed with SIGKILL under a 20,000 frames/s feed: S takes the lease
// and the provider within 2 x ttl, the provider never sees two connections,
// and S's subscribers see one epoch with no gap. P comes back and follows S.

#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "free_port.hpp"
#include "relay_fixture.hpp"
#include "subscriber_helpers.hpp"

using namespace streamrelay::test;
using streamrelay::client::FrameInfo;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kTtlMs = 1000;

// redis-server on a loopback port, nothing on disk.
struct Redis {
  int port = freePort();
  std::unique_ptr<ChildProcess> process;
  Redis() {
    process = std::make_unique<ChildProcess>(
        "/usr/bin/redis-server", std::vector<std::string>{"--port", std::to_string(port), "--bind", "127.0.0.1",
                                                           "--save", "", "--appendonly", "no", "--logfile", "/dev/null"});
    REQUIRE(pollUntil([&] { return cli({"PING"}) == "PONG"; }, 20s));
  }
  ~Redis() {
    process->kill();
    process->waitForExit();
  }
  // One command (plain words) through redis-cli: its output's first line
  // (written to stderr, which ChildProcess collects).
  std::string cli(const std::vector<std::string>& args) const {
    std::string command = "exec /usr/bin/redis-cli -h 127.0.0.1 -p " + std::to_string(port);
    for (const std::string& a : args) command += " " + a;
    ChildProcess c("/bin/sh", {"-c", command + " 1>&2"});
    c.waitForExit();
    std::string out = c.output();
    return out.substr(0, out.find('\n'));
  }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port); }
};

// The provider: one tcp port, frames at `rate`, a second connection refused.
struct ExclusiveFeed {
  std::unique_ptr<ChildProcess> process;
  int port = 0;
  explicit ExclusiveFeed(int rate) {
    process = std::make_unique<ChildProcess>(
        "/usr/bin/python3",
        std::vector<std::string>{STREAMRELAY_SOURCE_DIR "/tests/support/account_feed.py", "--protocol", "tcp",
                                 "--ports", "1", "--rate", std::to_string(rate), "--exclusive", "--max-seconds", "300"});
    auto m = process->waitForLine("listening on 127.0.0.1:(\\d+)");
    INFO(process->output());
    REQUIRE(m.size() == 2);
    port = std::stoi(m[1]);
  }
  int opened() { return process->countLines("connection opened"); }
};

// A relay whose source takes the feed under the lease and follows the other
// relay (its streamrelay listener on `otherPort`) meanwhile.
std::string leasedRelay(const Redis& redis, const ExclusiveFeed& feed, int myPort, int otherPort,
                        const RelayStats& stats) {
  return "upstream: {type: tcp, endpoints: ['127.0.0.1:" + std::to_string(feed.port) +
         "'], reconnect: {initial_delay_ms: 50, max_delay_ms: 200}, lease: {url: '" + redis.url() +
         "', key: 'feed-lease', ttl_ms: " + std::to_string(kTtlMs) + "}, follow: {endpoints: ['127.0.0.1:" +
         std::to_string(otherPort) + "']}}\n" + "streams:\n  upstream: {replay: {frames: 1000000}}\n" +
         "listeners:\n  - {name: main, bind: '127.0.0.1:" + std::to_string(myPort) +
         "', protocol: streamrelay, replay: {frames: 100000}}\n" + stats.section();
}

Poco::JSON::Object::Ptr leaseOf(const RelayStats& stats) {
  auto source = stats.source();
  return source && source->has("lease") ? source->getObject("lease") : nullptr;
}

bool holding(const RelayStats& stats) {
  auto lease = leaseOf(stats);
  return lease && lease->getValue<bool>("holding");
}

std::uint64_t leaseNumber(const RelayStats& stats, const std::string& key) {
  auto lease = leaseOf(stats);
  return lease ? lease->getValue<std::uint64_t>(key) : 0;
}

// Reads seqs (and payloads) on its own thread until stopped.
struct SeqReader {
  Subscriber& sub;
  std::vector<std::uint64_t> seqs;  // the thread's until joined
  std::vector<std::string> payloads;
  std::atomic<std::uint64_t> last{0};
  std::atomic<bool> stop{false};
  std::thread thread;
  explicit SeqReader(Subscriber& s) : sub(s) {
    thread = std::thread([this] {
      std::string frame;
      FrameInfo info;
      while (!stop) {
        if (!sub.next(frame, info, 200ms)) continue;  // the wait lets the thread see `stop`
        seqs.push_back(info.seq);
        payloads.push_back(frame);
        last = info.seq;
      }
    });
  }
  void join() {
    stop = true;
    if (thread.joinable()) thread.join();
  }
  ~SeqReader() { join(); }
};

}  // namespace

TEST_CASE("lease: the holder killed at 20000 frames/s: the standby takes the provider within 2 x ttl with never two provider connections and one epoch with no gap - the holder comes back and follows",
          "[integration][fleet][lease]") {
  Redis redis;
  ExclusiveFeed feed(20000);
  const std::vector<int> ports = freePorts(2);
  const int pPort = ports[0], sPort = ports[1];
  RelayStats pStats, sStats;
  const std::string pYaml = leasedRelay(redis, feed, pPort, sPort, pStats);
  RunningRelay p = startRelay(pYaml);
  pStats.attach(p);
  REQUIRE(pollUntil([&] { return holding(pStats); }, 20s));
  CHECK(redis.cli({"PTTL", "feed-lease"}) != "-2");
  RunningRelay s = startRelay(leasedRelay(redis, feed, sPort, pPort, sStats));
  sStats.attach(s);

  Subscriber atP(p.address(), protocolClient());
  REQUIRE(atP.awaitAnswer(10s));
  const std::uint64_t epoch = atP.answer().epoch;
  // S follows P: its stream has P's epoch.
  REQUIRE(pollUntil([&] { return sStats.sourceText("upstream_epoch") == std::to_string(epoch); }, 20s));
  CHECK_FALSE(holding(sStats));
  Subscriber atS(s.address(), protocolClient());
  REQUIRE(atS.awaitAnswer(10s));
  CHECK(atS.answer().epoch == epoch);
  SeqReader reader(atS);
  REQUIRE(pollUntil([&] { return reader.last.load() > 20000; }, 30s));

  // P dies: its provider connection closes with it, its lease expires.
  p.process->kill();
  const Clock::time_point killed = Clock::now();
  REQUIRE(p.process->waitForExit() != -1000);
  p.process.reset();
  const std::uint64_t atKill = reader.last.load();
  REQUIRE(pollUntil([&] { return holding(sStats) && sStats.source()->getValue<bool>("connected"); }, 10s));
  const auto takeover = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed);
  INFO("takeover in " << takeover.count() << " ms");
  CHECK(takeover.count() <= 2 * kTtlMs);
  REQUIRE(feed.process->waitForLines("connection opened", 2));
  // S goes on in the same epoch, after the last seq it had.
  REQUIRE(pollUntil([&] { return reader.last.load() > atKill + 20000; }, 30s));
  CHECK(sStats.sourceText("upstream_epoch") == std::to_string(epoch));

  // P comes back (an empty ring, the same port) and follows S.
  RunningRelay again = startRelay(pYaml);
  RelayStats& againStats = pStats;
  againStats.attach(again);
  REQUIRE(pollUntil([&] { return againStats.sourceText("upstream_epoch") == std::to_string(epoch); }, 20s));
  CHECK_FALSE(holding(againStats));
  CHECK(leaseNumber(againStats, "acquisitions") == 0);
  const std::uint64_t sNow = reader.last.load();
  REQUIRE(pollUntil([&] { return againStats.counter("upstream_seq") > sNow; }, 20s));

  reader.join();
  INFO(feed.process->output());
  INFO(s.process->output());
  CHECK(atS.answers() == 1);  // S's subscriber never noticed
  REQUIRE(!reader.seqs.empty());
  bool contiguous = true;
  for (std::size_t i = 1; i < reader.seqs.size(); ++i)
    if (reader.seqs[i] != reader.seqs[i - 1] + 1) {
      UNSCOPED_INFO("seq " << reader.seqs[i] << " after " << reader.seqs[i - 1]);
      contiguous = false;
      break;
    }
  CHECK(contiguous);
  CHECK(reader.seqs.back() > atKill + 20000);
  CHECK(feed.process->countLines("second connection refused") == 0);
  CHECK(feed.process->countLines("peak [2-9]") == 0);
  CHECK(feed.opened() == 2);
  CHECK(leaseNumber(sStats, "acquisitions") == 1);
  CHECK(leaseNumber(sStats, "losses") == 0);
  const std::string metrics = sStats.text("/metrics");
  CHECK(metrics.find("streamrelay_upstream_lease_holding{source=\"upstream\"} 1") != std::string::npos);
  CHECK(metrics.find("streamrelay_upstream_lease_acquisitions_total{source=\"upstream\"} 1") != std::string::npos);
  CHECK(sStats.text("/").find("u.lease.holding") != std::string::npos);  // the status page shows who holds it
  CHECK(sStats.source()->getObject("lease")->getValue<std::string>("key") == "feed-lease");
  CHECK(sStats.source()->getObject("lease")->getValue<std::int64_t>("holder_since_unix_ms") > 0);
  CHECK(againStats.source()->getObject("lease")->isNull("holder_since_unix_ms"));

  // A clean stop of S gives the lease back: P takes it before the ttl could expire.
  const std::uint64_t pHad = againStats.counter("upstream_seq");
  s.process->terminate();
  const Clock::time_point stopped = Clock::now();
  CHECK(s.process->waitForExit() == 0);
  s.process.reset();
  REQUIRE(pollUntil([&] { return holding(againStats); }, 10s));
  CHECK(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - stopped).count() < kTtlMs);
  REQUIRE(feed.process->waitForLines("connection opened", 3));
  CHECK(feed.process->countLines("second connection refused") == 0);
  // P goes on in S's epoch.
  Subscriber atAgain(again.address(), protocolClient());
  REQUIRE(atAgain.awaitAnswer(10s));
  CHECK(atAgain.answer().epoch == epoch);
  CHECK(againStats.counter("upstream_seq") >= pHad);
}

TEST_CASE("lease: bad values are one-line errors naming the key", "[integration][fleet][lease]") {
  struct Case {
    const char* source;
    const char* error;
  };
  const Case cases[] = {
      {"lease: {url: 'http://h:1', key: k}, follow: {endpoints: ['127.0.0.1:2']}", "upstream.lease.url: must be redis://HOST:PORT"},
      {"lease: {url: 'redis://h:1'}, follow: {endpoints: ['127.0.0.1:2']}", "upstream.lease.key: must not be empty"},
      {"lease: {url: 'redis://h:1', key: k, ttl_ms: 10}, follow: {endpoints: ['127.0.0.1:2']}", "upstream.lease.ttl_ms"},
      {"lease: {url: 'redis://h:1', key: k}", "upstream.lease: needs follow"},
      {"follow: {endpoints: ['127.0.0.1:2']}", "upstream.follow: is only for a source with a lease"},
      {"lease: {url: 'redis://h:1', key: k}, follow: {}", "upstream.follow.endpoints: must list"},
  };
  for (const Case& c : cases) {
    const std::string yaml = std::string("upstream: {type: tcp, endpoints: ['127.0.0.1:1'], ") + c.source + "}\n";
    const std::string path = writeTempFile("lease.yaml", yaml);
    ChildProcess check(STREAMRELAY_BIN, {"--check-config", path});
    INFO(yaml << check.output());
    CHECK(check.waitForExit() == 1);
    CHECK(check.output().find(c.error) != std::string::npos);
    CHECK(check.countLines("error") == 1);
  }
}

namespace {

// An SSE provider (tests/support/http_feed.py): events "id: i / data: feed i",
// resumed after Last-Event-ID.
struct SseFeed {
  std::unique_ptr<ChildProcess> process;
  int port = 0;
  SseFeed() {
    process = std::make_unique<ChildProcess>(
        "/usr/bin/python3", std::vector<std::string>{STREAMRELAY_SOURCE_DIR "/tests/support/http_feed.py", "--port", "0",
                                                     "--max-seconds", "300"});
    auto m = process->waitForLine("listening on 127.0.0.1:(\\d+)");
    INFO(process->output());
    REQUIRE(m.size() == 2);
    port = std::stoi(m[1]);
  }
};

std::string leasedSseRelay(const Redis& redis, const SseFeed& feed, int myPort, int otherPort, const RelayStats& stats) {
  return "upstream: {type: http, url: 'http://127.0.0.1:" + std::to_string(feed.port) +
         "/sse?n=10000000&rate=2000', framing: {type: sse}, reconnect: {initial_delay_ms: 50, max_delay_ms: 200}, "
         "lease: {url: '" + redis.url() + "', key: 'sse-lease', ttl_ms: " + std::to_string(kTtlMs) +
         "}, follow: {endpoints: ['127.0.0.1:" + std::to_string(otherPort) + "']}}\n" +
         "streams:\n  upstream: {replay: {frames: 100000}}\n" + "listeners:\n  - {name: main, bind: '127.0.0.1:" +
         std::to_string(myPort) + "', protocol: streamrelay, replay: {frames: 100000}}\n" + stats.section();
}

}  // namespace

TEST_CASE("lease: an SSE provider taken over resumes after the followed event id: every event once with seqs and event ids in step",
          "[integration][fleet][lease]") {
  Redis redis;
  SseFeed feed;
  const std::vector<int> ports = freePorts(2);
  RelayStats pStats, sStats;
  RunningRelay p = startRelay(leasedSseRelay(redis, feed, ports[0], ports[1], pStats));
  pStats.attach(p);
  REQUIRE(pollUntil([&] { return holding(pStats); }, 20s));
  RunningRelay s = startRelay(leasedSseRelay(redis, feed, ports[1], ports[0], sStats));
  sStats.attach(s);
  Subscriber atP(p.address(), protocolClient());
  REQUIRE(atP.awaitAnswer(10s));
  const std::uint64_t epoch = atP.answer().epoch;
  REQUIRE(pollUntil([&] { return sStats.sourceText("upstream_epoch") == std::to_string(epoch); }, 20s));
  Subscriber atS(s.address(), protocolClient());
  REQUIRE(atS.awaitAnswer(10s));
  CHECK(atS.answer().epoch == epoch);
  SeqReader reader(atS);
  REQUIRE(pollUntil([&] { return reader.last.load() > 1000; }, 30s));

  p.process->kill();
  REQUIRE(p.process->waitForExit() != -1000);
  p.process.reset();
  const std::uint64_t atKill = reader.last.load();
  REQUIRE(pollUntil([&] { return holding(sStats); }, 10s));
  // S asked the provider to resume after the event it followed last.
  auto resumed = feed.process->waitForLine("GET /sse\\?n=10000000&rate=2000 Last-Event-ID=(\\d+)");
  INFO(feed.process->output());
  INFO(s.process->output());
  REQUIRE(resumed.size() == 2);
  REQUIRE(pollUntil([&] { return reader.last.load() > atKill + 1000; }, 30s));
  reader.join();
  CHECK(atS.answers() == 1);
  REQUIRE(reader.seqs.size() > 2000);
  // Event i is seq i + offset throughout: nothing lost, nothing twice across the takeover.
  const std::int64_t offset = std::stoll(reader.payloads.front().substr(5)) - static_cast<std::int64_t>(reader.seqs.front());
  bool inStep = true;
  for (std::size_t i = 0; i < reader.seqs.size() && inStep; ++i)
    if (reader.payloads[i] != "feed " + std::to_string(static_cast<std::int64_t>(reader.seqs[i]) + offset)) {
      UNSCOPED_INFO("seq " << reader.seqs[i] << ": " << reader.payloads[i] << " (offset " << offset << ")");
      inStep = false;
    }
  CHECK(inStep);
  CHECK(std::stoll(resumed[1].str()) - offset >= static_cast<std::int64_t>(atKill));  // resumed at S's last seq, not before
}

TEST_CASE("lease: a renewal refused closes the provider connection at once and the relay takes the lease again once it is free",
          "[integration][fleet][lease]") {
  Redis redis;
  ExclusiveFeed feed(2000);
  const std::vector<int> ports = freePorts(2);  // the second: a relay to follow that is not there
  RelayStats stats;
  RunningRelay relay = startRelay(leasedRelay(redis, feed, ports[0], ports[1], stats));
  stats.attach(relay);
  REQUIRE(pollUntil([&] { return holding(stats); }, 20s));
  REQUIRE(feed.process->waitForLines("connection opened", 1));
  // Another takes the key (as after an expiry the holder did not notice): the next renewal is refused.
  const Clock::time_point stolen = Clock::now();
  REQUIRE(redis.cli({"SET", "feed-lease", "intruder", "PX", "3000"}) == "OK");
  REQUIRE(feed.process->waitForLines("connection closed by the client", 1, 5s));
  const auto closedAfter = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - stolen);
  INFO("closed " << closedAfter.count() << " ms after the key was taken");
  CHECK(closedAfter.count() < kTtlMs);  // a renewal every ttl/3, and the close at once
  REQUIRE(pollUntil([&] { return leaseNumber(stats, "losses") == 1; }));
  CHECK_FALSE(holding(stats));
  CHECK(relay.process->countLines("lost the lease feed-lease: the key no longer holds our token") == 1);
  // Once the intruder's key expires, the relay takes the lease and the provider again.
  REQUIRE(pollUntil([&] { return holding(stats) && leaseNumber(stats, "acquisitions") == 2; }, 10s));
  REQUIRE(feed.process->waitForLines("connection opened", 2));
  CHECK(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - stolen).count() >= 3000);
  CHECK(feed.process->countLines("second connection refused") == 0);
  CHECK(feed.process->countLines("peak [2-9]") == 0);
}
