// SPDX-License-Identifier: Apache-2.0
// Integration test of streams.NAME.log with the real relay: a logged stream
// keeps its epoch and goes on with its seq after the relay is killed
// (SIGKILL) and started again on the same directory.

#include <catch2/catch.hpp>

#include <Poco/JSON/Parser.h>

#include <stdlib.h>

#include <filesystem>
#include <map>

#include "relay_fixture.hpp"
#include "scratch_dir.hpp"
#include "subscriber_helpers.hpp"

using namespace streamrelay::test;
using streamrelay::client::FrameInfo;

namespace {

Poco::JSON::Object::Ptr upstreamStats(const RelayStats& stats) {
  Poco::JSON::Object::Ptr upstream = stats.stream("upstream");
  REQUIRE(upstream);
  return upstream;
}

std::uint64_t logFigure(const Poco::JSON::Object::Ptr& stream, const std::string& key) {
  REQUIRE(stream->has("log"));
  return stream->getObject("log")->getValue<std::uint64_t>(key);
}

std::string relayConfig(const std::string& dir, const std::string& generator, const RelayStats& stats,
                        const std::string& fsync = "always") {
  return "upstream: {type: generator, size: 40, " + generator + "}\n"
         "streams:\n  upstream:\n    log: {dir: '" + dir + "', fsync: " + fsync + ", segment_bytes: 8192}\n"
         "listeners:\n" + listener("main", "protocol: streamrelay") + stats.section();
}

}  // namespace

TEST_CASE("a logged stream keeps its epoch and goes on after its last fsynced seq when the relay is killed",
          "[integration][log]") {
  ScratchDir dir;
  std::string epoch;
  std::uint64_t fsynced = 0;
  {
    RelayStats stats;
    RunningRelay relay = startRelay(relayConfig(dir.path, "rate: 2000", stats));
    stats.attach(relay);
    REQUIRE(pollUntil([&] { return logFigure(upstreamStats(stats), "fsynced_seq") >= 500; }));
    // With fsync: always, a seq the log reports fsynced is on the disk: a kill loses none of them.
    const Poco::JSON::Object::Ptr before = upstreamStats(stats);
    fsynced = logFigure(before, "fsynced_seq");
    epoch = before->getValue<std::string>("epoch");
    CHECK(logFigure(before, "write_errors") == 0);
    CHECK(epoch != stats.get()->getValue<std::string>("epoch"));  // the stream's own, not the run's
    relay.process->kill();
    relay.process->waitForExit();
  }
  // Started again on the same directory, with a source that publishes 100 frames and stops.
  RelayStats stats;
  RunningRelay relay = startRelay(relayConfig(dir.path, "rate: 200, count: 100", stats));
  stats.attach(relay);
  Subscriber sub(relay.address(), protocolClient());
  REQUIRE(sub.awaitAnswer(10s));
  REQUIRE(pollUntil([&] { return upstreamStats(stats)->getValue<std::uint64_t>("frames") == 100; }));
  const Poco::JSON::Object::Ptr after = upstreamStats(stats);
  CHECK(after->getValue<std::string>("epoch") == epoch);
  // This run's frames are numbered on from where the log ended: after every
  // frame fsynced before the kill (and those written after it that the
  // kernel kept: a kill loses no page cache, a power cut would).
  const std::uint64_t last = after->getValue<std::uint64_t>("last_seq");
  const std::uint64_t resumedAfter = last - 100;
  CHECK(resumedAfter >= fsynced);
  CHECK(pollUntil([&] { return logFigure(upstreamStats(stats), "fsynced_seq") == last; }));
  const Poco::JSON::Object::Ptr logged = upstreamStats(stats);
  CHECK(logFigure(logged, "first_seq") == 1);
  CHECK(logFigure(logged, "last_seq") == last);
  CHECK(logFigure(logged, "segments") > 1);
  CHECK(logFigure(logged, "write_errors") == 0);

  // A streamrelay-protocol subscriber's answer carries the stream's epoch
  // (at the top level too: its one input has it).
  Poco::JSON::Object::Ptr answer = Poco::JSON::Parser().parse(sub.answer().json).extract<Poco::JSON::Object::Ptr>();
  CHECK(answer->getValue<std::string>("epoch") == epoch);
  CHECK(answer->getObject("streams")->getObject("upstream")->getValue<std::string>("epoch") == epoch);
  CHECK(std::to_string(sub.answer().epoch) == epoch);
  std::string frame;
  streamrelay::client::FrameInfo info;
  REQUIRE(sub.next(frame, info, 10s));
  CHECK(info.seq > resumedAfter);
}

TEST_CASE("client.hpp resumes streams of different epochs (a logged one beside another) each in its own",
          "[integration][log][protocol]") {
  ScratchDir dir;
  RunningRelay relay = startRelay(
      "sources:\n  logged: {type: generator, size: 40, rate: 2000}\n  plain: {type: generator, size: 40, rate: 2000}\n"
      "streams:\n  logged: {replay: {frames: 100000}, log: {dir: '" + dir.path + "'}}\n"
      "  plain: {replay: {frames: 100000}}\n"
      "listeners:\n" + listener("main", "protocol: streamrelay, inputs: [logged, plain]"));
  Subscriber first(relay.address(), protocolClient());
  std::string frame;
  FrameInfo info;
  std::map<std::string, std::uint64_t> seen;
  while (seen.size() < 2 || seen["logged"] < 10 || seen["plain"] < 10) {
    REQUIRE(first.next(frame, info, 10s));
    seen[info.stream] = info.seq;
  }
  const auto& streams = first.answer().streams;
  REQUIRE(streams.at("logged").epoch != streams.at("plain").epoch);
  CHECK(first.answer().json.find("{\"ok\":true,\"epoch\"") == std::string::npos);  // no shared epoch to give

  // A second client resumes where the first stopped: each position in its stream's epoch.
  Subscriber::Options o = protocolClient();
  o.resume = first.position();
  Subscriber second(relay.address(), o);
  std::map<std::string, std::uint64_t> firstSeq;
  while (firstSeq.size() < 2) {
    REQUIRE(second.next(frame, info, 10s));
    firstSeq.emplace(info.stream, info.seq);
  }
  INFO(second.answer().json);
  CHECK(second.answer().recovery == streamrelay::client::Recovery::Recovered);
  CHECK(firstSeq["logged"] == seen["logged"] + 1);
  CHECK(firstSeq["plain"] == seen["plain"] + 1);
}

TEST_CASE("killed under a steady feed, a logged stream goes on above every seq a subscriber had, in the same epoch",
          "[integration][log]") {
  const std::string fsync = GENERATE(std::string("never"), std::string("{every_ms: 100}"), std::string("always"));
  INFO("fsync: " << fsync);
  ScratchDir dir;
  std::string epoch;
  std::uint64_t maxSeen = 0;
  {
    RelayStats stats;
    RunningRelay relay = startRelay(relayConfig(dir.path, "rate: 20000", stats, fsync));
    stats.attach(relay);
    Subscriber sub(relay.address(), protocolClient());
    REQUIRE(sub.awaitAnswer(10s));
    epoch = std::to_string(sub.answer().epoch);
    std::string frame;
    FrameInfo info;
    for (int i = 0; i < 2000; ++i) {
      REQUIRE(sub.next(frame, info, 10s));
      maxSeen = std::max(maxSeen, info.seq);
    }
    relay.process->kill();
    relay.process->waitForExit();
    // Whatever reached the subscriber before the kill counts too.
    while (sub.next(frame, info, 5s)) maxSeen = std::max(maxSeen, info.seq);
  }
  RelayStats stats;
  RunningRelay relay = startRelay(relayConfig(dir.path, "rate: 500, count: 50", stats, fsync));
  stats.attach(relay);
  REQUIRE(pollUntil([&] { return upstreamStats(stats)->getValue<std::uint64_t>("frames") == 50; }));
  const Poco::JSON::Object::Ptr after = upstreamStats(stats);
  CHECK(after->getValue<std::string>("epoch") == epoch);
  const std::uint64_t firstNew = after->getValue<std::uint64_t>("last_seq") - 49;
  CHECK(firstNew > maxSeen);  // no (epoch, seq) a subscriber had is given to another frame
  CHECK(pollUntil([&] { return logFigure(upstreamStats(stats), "last_seq") == firstNew + 49; }));
}

TEST_CASE("a logged stream stopped cleanly goes on at its last seq + 1, without a hole", "[integration][log]") {
  ScratchDir dir;
  for (int run = 1; run <= 2; ++run) {
    INFO("run " << run);
    RelayStats stats;
    RunningRelay relay = startRelay(relayConfig(dir.path, "rate: 1000, count: 50", stats, "never"));
    stats.attach(relay);
    REQUIRE(pollUntil([&] { return logFigure(upstreamStats(stats), "last_seq") == 50u * run; }));
    CHECK(upstreamStats(stats)->getValue<std::uint64_t>("last_seq") == 50u * run);
    relay.process->terminate();
    CHECK(relay.process->waitForExit() == 0);
  }
}

TEST_CASE("a logged stream's log is on /metrics and the status page", "[integration][log][metrics]") {
  ScratchDir dir;
  RelayStats stats;
  RunningRelay relay = startRelay(relayConfig(dir.path, "rate: 1000, count: 100", stats));
  stats.attach(relay);
  REQUIRE(pollUntil([&] { return logFigure(upstreamStats(stats), "fsynced_seq") == 100; }));
  const Poco::JSON::Object::Ptr log = upstreamStats(stats)->getObject("log");
  CHECK(log->getValue<std::uint64_t>("frames_written") == 100);
  CHECK(log->getValue<std::uint64_t>("bytes_written") == 100 * (40 + 32));  // a record: 32 bytes + payload
  CHECK(log->getValue<std::uint64_t>("reserved_seq") >= 100);

  const std::string page = stats.text("/metrics");
  const std::string upstream = "{stream=\"upstream\"}";
  CHECK(sampleValue(page, "streamrelay_stream_log_first_seq" + upstream) == 1);
  CHECK(sampleValue(page, "streamrelay_stream_log_last_seq" + upstream) == 100);
  CHECK(sampleValue(page, "streamrelay_stream_log_fsynced_seq" + upstream) == 100);
  CHECK(sampleValue(page, "streamrelay_stream_log_reserved_seq" + upstream) >= 100);
  CHECK(sampleValue(page, "streamrelay_stream_log_frames_written_total" + upstream) == 100);
  CHECK(sampleValue(page, "streamrelay_stream_log_bytes_written_total" + upstream) == 100 * (40 + 32));
  CHECK(sampleValue(page, "streamrelay_stream_log_write_errors_total" + upstream) == 0);
  CHECK(sampleValue(page, "streamrelay_stream_log_segments" + upstream) >= 1);
  CHECK(sampleValue(page, "streamrelay_stream_log_readers" + upstream) == 0);  // nobody reads from the log here
  CHECK(sampleValue(page, "streamrelay_stream_log_frames_read_total" + upstream) == 0);
  CHECK(sampleValue(page, "streamrelay_stream_log_bytes" + upstream) == log->getValue<double>("bytes"));
  CHECK(page.find("# TYPE streamrelay_stream_log_write_errors_total counter") != std::string::npos);

  const std::string home = stats.text("/");
  CHECK(home.find("<th>fsynced seq</th>") != std::string::npos);
  CHECK(home.find("t.log.write_errors") != std::string::npos);
}
