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
#include "subscriber_helpers.hpp"

using namespace streamrelay::test;
using streamrelay::client::FrameInfo;

namespace {

// A directory removed with what it holds when the test ends.
struct ScratchDir {
  std::string path;
  ScratchDir() {
    char pattern[] = "/tmp/streamrelay-durable-XXXXXX";
    REQUIRE(::mkdtemp(pattern) != nullptr);
    path = pattern;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
};

Poco::JSON::Object::Ptr upstreamStats(const RelayStats& stats) {
  Poco::JSON::Array::Ptr streams = stats.get()->getArray("streams");
  for (std::size_t i = 0; i < streams->size(); ++i) {
    Poco::JSON::Object::Ptr s = streams->getObject(static_cast<unsigned>(i));
    if (s->getValue<std::string>("name") == "upstream") return s;
  }
  FAIL("no stream upstream in /stats");
  return nullptr;
}

std::uint64_t logFigure(const Poco::JSON::Object::Ptr& stream, const std::string& key) {
  REQUIRE(stream->has("log"));
  return stream->getObject("log")->getValue<std::uint64_t>(key);
}

std::string relayConfig(const std::string& dir, const std::string& generator, const RelayStats& stats) {
  return "upstream: {type: generator, size: 40, " + generator + "}\n"
         "streams:\n  upstream:\n    log: {dir: '" + dir + "', fsync: always, segment_bytes: 8192}\n"
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
