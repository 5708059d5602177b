// SPDX-License-Identifier: Apache-2.0
// Integration tests of the `streamrelay` source: relay trees on loopback
// (root -> middle -> leaf), the middle killed with SIGKILL and started again,
// a gap the root's ring cannot fill, mirror: false, and bad config.

#include <catch2/catch.hpp>

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "free_port.hpp"
#include "joined_thread.hpp"
#include "relay_fixture.hpp"
#include "subscriber_helpers.hpp"

using namespace streamrelay::test;
using streamrelay::client::FrameInfo;
using streamrelay::client::Recovery;
using streamrelay::client::ResumePoint;

namespace {

std::string loopback(int port) { return "127.0.0.1:" + std::to_string(port); }

// A relay whose one stream `upstream` keeps `ring` frames and whose
// streamrelay listener `main` (on `port`, 0: any) gives a new subscriber up
// to `replay` of them; its source is `source` (a YAML flow mapping).
std::string treeNode(const std::string& source, int ring, int replay, const RelayStats& stats, int port = 0) {
  return "upstream: " + source + "\n" + "streams:\n  upstream: {replay: {frames: " + std::to_string(ring) + "}}\n" +
         "listeners:\n  - {name: main, bind: '127.0.0.1:" + std::to_string(port) +
         "', protocol: streamrelay, replay: {frames: " + std::to_string(replay) + "}}\n" + stats.section();
}

std::string follow(int port, const std::string& more = "") {
  return "{type: streamrelay, endpoints: ['" + loopback(port) + "']" + more + "}";
}

}  // namespace

TEST_CASE("a mirror tree at 20,000 frames/s: the middle killed and restarted, the leaf's subscribers see the root's (epoch, seq, payload), no gap, no repeat", "[integration][fleet]") {
  constexpr int kRing = 1000000;
  constexpr int kReplay = 100000;  // what a relay restarted below gets (at most a queue's max_frames)
  RelayStats rootStats, middleStats, leafStats;
  RunningRelay root = startRelay(treeNode(kListenUpstream.substr(10, kListenUpstream.size() - 11), kRing, kReplay, rootStats));
  rootStats.attach(root);
  const int middlePort = freePort();
  const std::string middleYaml = treeNode(follow(root.ports.at("main")), kRing, kReplay, middleStats, middlePort);
  RunningRelay middle = startRelay(middleYaml);
  middleStats.attach(middle);
  RunningRelay leaf = startRelay(treeNode(follow(middlePort), kRing, kReplay, leafStats));
  leafStats.attach(leaf);

  Subscriber atRoot(root.address(), protocolClient());
  REQUIRE(atRoot.awaitAnswer(10s));
  const std::uint64_t epoch = atRoot.answer().epoch;
  FeedFrames fromRoot, fromLeaf;
  JoinedThread rootReader;  // ended by the feed's "end", or by its silence once it is gone
  rootReader.thread = std::thread([&] { fromRoot = readToEnd(atRoot, 30s, &rootReader.stopping); });
  LineFeed feed(root, 20000);
  // Once the leaf mirrors the root's epoch, a subscriber resumes there from the start.
  REQUIRE(pollUntil([&] { return leafStats.sourceText("upstream_epoch") == std::to_string(epoch); }, 20s));
  Subscriber::Options options = protocolClient();
  options.reconnect = true;
  options.resume = ResumePoint{epoch, {{"upstream", 0}}, {}};
  Subscriber atLeaf(leaf.address(), options);
  REQUIRE(atLeaf.awaitAnswer(10s));
  CHECK(atLeaf.answer().epoch == epoch);
  CHECK(atLeaf.answer().recovery == Recovery::Recovered);
  JoinedThread leafReader;  // after atLeaf: joined before the subscriber it reads goes
  leafReader.thread = std::thread([&] { fromLeaf = readToEnd(atLeaf, 30s, &leafReader.stopping); });

  // The middle dies mid-stream, and comes back on the same port with an empty ring.
  REQUIRE(pollUntil([&] { return leafStats.sourceNumber("upstream_seq") > 20000; }, 30s));
  const std::uint64_t leafConnects = leafStats.sourceNumber("connects");
  middle.process->kill();
  REQUIRE(middle.process->waitForExit() != -1000);
  middle.process.reset();
  RunningRelay again = startRelay(middleYaml);
  // The leaf connected again (a generous deadline: the leaf's reconnect backoff and a sanitizer build's start).
  // Not necessarily "resumed": a leaf that asks before the middle's refill has reached its seq is answered
  // from the refilled ring and drops the frames it has (docs/fleet.md); the checks below see it gapless.
  REQUIRE(pollUntil([&] { return leafStats.sourceNumber("connects") > leafConnects; }, 60s));
  const std::uint64_t beforeStop = leafStats.sourceNumber("upstream_seq");
  REQUIRE(pollUntil([&] { return leafStats.sourceNumber("upstream_seq") > beforeStop + 20000; }, 30s));
  const long sent = feed.stop();
  REQUIRE(sent > 40000);

  rootReader.thread.join();
  leafReader.thread.join();
  CHECK(isWholeFeed(fromRoot, 1));
  CHECK(isWholeFeed(fromLeaf, 1));
  CHECK(difference(fromLeaf, fromRoot) == "");
  CHECK(fromLeaf.size() == static_cast<std::size_t>(sent) + 1);
  CHECK(atLeaf.answers() == 1);  // the leaf relay's subscriber never noticed
  CHECK(leafStats.sourceNumber("gaps") == 0);
  CHECK(leafStats.sourceText("upstream_epoch") == std::to_string(epoch));
  CHECK(leafStats.source()->getValue<double>("lag_ms") >= 0);  // since the root received its newest frame
  CHECK(leafStats.source()->getValue<std::string>("endpoint") == loopback(middlePort));  // the relay it follows
}

TEST_CASE("a mirror whose upstream's ring cannot cover an outage counts the gap and passes it down: recovered false", "[integration][fleet]") {
  RelayStats leafStats;
  RelayStats unused1, unused2;
  RunningRelay root = startRelay(treeNode(kListenUpstream.substr(10, kListenUpstream.size() - 11), 1000, 1000, unused1));
  const int middlePort = freePort();
  const std::string middleYaml = treeNode(follow(root.ports.at("main")), 1000, 0, unused2, middlePort);
  RunningRelay middle = startRelay(middleYaml);
  RunningRelay leaf = startRelay(treeNode(follow(middlePort), 100000, 0, leafStats));
  leafStats.attach(leaf);

  Subscriber atRoot(root.address(), protocolClient());
  REQUIRE(atRoot.awaitAnswer(10s));
  const std::uint64_t epoch = atRoot.answer().epoch;
  LineFeed feed(root, 20000);
  REQUIRE(pollUntil([&] { return leafStats.sourceNumber("upstream_seq") > 2000; }, 30s));
  middle.process->kill();
  REQUIRE(middle.process->waitForExit() != -1000);
  middle.process.reset();
  const std::uint64_t leafHad = leafStats.sourceNumber("upstream_seq");
  // The root goes on far past what its ring of 1000 frames holds.
  readSeqs(atRoot, 1, static_cast<long>(leafHad) + 5000);
  RunningRelay again = startRelay(middleYaml);
  REQUIRE(pollUntil([&] { return leafStats.sourceNumber("gaps") == 1; }, 30s));
  CHECK(leafStats.sourceNumber("frames_missed") >= 4000);
  CHECK(leafStats.sourceNumber("upstream_seq") > leafHad + 4000);
  feed.stop();
  // The same figures on /metrics, and the status page's table of mirrors.
  const std::string page = leafStats.text("/metrics");
  const std::string upstream = "{source=\"upstream\"}";
  CHECK(sampleValue(page, "streamrelay_mirror_gaps_total" + upstream) == 1);
  CHECK(sampleValue(page, "streamrelay_mirror_frames_missed_total" + upstream) ==
        static_cast<double>(leafStats.sourceNumber("frames_missed")));
  CHECK(sampleValue(page, "streamrelay_mirror_upstream_seq" + upstream) > static_cast<double>(leafHad + 4000));
  CHECK(sampleValue(page, "streamrelay_mirror_new_epochs_total" + upstream) == 0);
  CHECK(sampleValue(page, "streamrelay_mirror_lag_seconds" + upstream) >= 0);
  const std::string home = leafStats.text("/");
  CHECK(home.find("<table id=\"mirrors\">") != std::string::npos);
  CHECK(home.find("u.frames_missed") != std::string::npos);

  // A subscriber of the leaf resuming from before the gap is told it missed frames.
  Subscriber::Options options = protocolClient();
  options.resume = ResumePoint{epoch, {{"upstream", leafHad - 10}}, {}};
  Subscriber resumed(leaf.address(), options);
  REQUIRE(resumed.awaitAnswer(10s));
  CHECK(resumed.answer().epoch == epoch);
  CHECK(resumed.answer().recovery == Recovery::NotRecovered);
  // One resuming after it is not.
  options.resume = ResumePoint{epoch, {{"upstream", leafStats.sourceNumber("upstream_seq") - 10}}, {}};
  Subscriber after(leaf.address(), options);
  REQUIRE(after.awaitAnswer(10s));
  CHECK(after.answer().recovery == Recovery::Recovered);
}

TEST_CASE("a streamrelay source with mirror: false numbers the frames itself", "[integration][fleet]") {
  RelayStats stats, unused;
  RunningRelay root = startRelay(treeNode(kListenUpstream.substr(10, kListenUpstream.size() - 11), 1000, 0, unused));
  Subscriber atRoot(root.address(), protocolClient());
  REQUIRE(atRoot.awaitAnswer(10s));
  auto first = publish(root, 50);
  REQUIRE(readSeqs(atRoot, 1, 50) == 50);
  RunningRelay copy = startRelay(treeNode(follow(root.ports.at("main"), ", mirror: false"), 1000, 0, stats));
  stats.attach(copy);
  REQUIRE(pollUntil([&] { return stats.sourceNumber("connects") == 1; }, 20s));
  Subscriber atCopy(copy.address(), protocolClient());
  REQUIRE(atCopy.awaitAnswer(10s));
  CHECK(atCopy.answer().epoch != atRoot.answer().epoch);
  auto second = publish(root, 50);
  std::string frame;
  FrameInfo info;
  REQUIRE(atCopy.next(frame, info, 20s));
  CHECK(info.seq == 1);  // the root's seq 51
  CHECK(readSeqs(atCopy, 2, 49) == 50);
  // Where it stands in the root's numbering.
  CHECK(pollUntil([&] { return stats.sourceNumber("upstream_seq") == 100; }));
}

TEST_CASE("a streamrelay source with a bad key is refused with one line", "[integration][fleet][config]") {
  const std::string base = "listeners:\n" + listener("main", "protocol: streamrelay");
  const auto [source, error] = GENERATE(table<std::string, std::string>({
      {"{type: streamrelay}", "upstream: missing required key 'endpoints'"},
      {"{type: streamrelay, endpoints: ['127.0.0.1:1'], inputs: [a, b]}",
       "upstream.inputs: a streamrelay source follows one stream"},
      {"{type: streamrelay, endpoints: ['127.0.0.1:1'], mirror: sometimes}",
       "upstream.mirror: expected true or false, got 'sometimes'"},
      {"{type: streamrelay, endpoints: ['nowhere']}", "upstream.endpoints: expected HOST:PORT"},
      {"{type: streamrelay, endpoints: ['127.0.0.1:1']}\nstreams: {upstream: {log: {dir: /nonexistent/log}}}",
       "streams.upstream.log: a mirrored stream \\(source type streamrelay, mirror: true\\) cannot have a log"},
  }));
  ChildProcess check(STREAMRELAY_BIN, {"--check-config", writeTempFile("bad-mirror.yaml", "upstream: " + source + "\n" + base)});
  CHECK(check.waitForExit() == 1);
  INFO(check.output());
  CHECK(check.countLines("config error: .*" + error) == 1);
  CHECK(check.countLines(".") == 1);
}

TEST_CASE("a streamrelay source presents its token: the right one is served, a wrong one is a failed try", "[integration][fleet]") {
  RunningRelay root = startRelay(kListenUpstream + "listeners:\n" +
                                 listener("main", "protocol: streamrelay, auth: {tokens: [right]}"));
  RelayStats good, bad;
  RunningRelay served = startRelay(treeNode(follow(root.ports.at("main"), ", token: right"), 1000, 0, good));
  good.attach(served);
  RunningRelay refused = startRelay(treeNode(follow(root.ports.at("main"), ", token: wrong"), 1000, 0, bad));
  bad.attach(refused);
  REQUIRE(pollUntil([&] { return good.sourceNumber("connects") == 1; }, 20s));
  auto feed = publish(root, 20);
  CHECK(pollUntil([&] { return good.sourceNumber("upstream_seq") == 20; }, 20s));
  CHECK(pollUntil([&] { return bad.endpointFailures(0) >= 2; }, 20s));
  CHECK(bad.sourceNumber("connects") == 0);
  CHECK(bad.sourceNumber("upstream_seq") == 0);
  INFO(refused.process->output());
  CHECK(refused.process->countLines("the relay refused the hello: not authorized: unknown token") >= 1);
  CHECK(refused.process->countLines("wrong") == 0);  // the token is never logged
}
