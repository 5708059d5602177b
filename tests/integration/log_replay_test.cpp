// SPDX-License-Identifier: Apache-2.0
// Integration test of reading a stream's log for subscribers (streams.NAME.log
// with the real relay): a resume older than the memory ring, or across a
// restart, is served from disk and then live, without gap or duplicate;
// resume {from_seq} and {from_time}; a reader that waits for its subscriber
// holds a bounded window and does not slow a live subscriber beside it.

#include <catch2/catch.hpp>

#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include "relay_fixture.hpp"
#include "scratch_dir.hpp"
#include "subscriber_helpers.hpp"

using namespace streamrelay::test;
using streamrelay::client::FrameInfo;
using streamrelay::client::Recovery;
using streamrelay::client::ResumePoint;

namespace {

Poco::JSON::Object::Ptr upstreamStats(const RelayStats& stats) {
  Poco::JSON::Object::Ptr upstream = stats.stream("upstream");
  REQUIRE(upstream);
  return upstream;
}

std::uint64_t logFigure(const RelayStats& stats, const std::string& key) {
  return upstreamStats(stats)->getObject("log")->getValue<std::uint64_t>(key);
}

std::uint64_t lastSeq(const RelayStats& stats) { return upstreamStats(stats)->getValue<std::uint64_t>("last_seq"); }

// A stream from `source` with a log and a memory ring of only `ringFrames` frames.
std::string relayConfig(const std::string& dir, const std::string& source, const RelayStats& stats,
                        int ringFrames = 100, const std::string& fsync = "never",
                        const std::string& listenerKeys = "protocol: streamrelay",
                        const std::string& moreListeners = "") {
  return "upstream: " + source + "\n"
         "streams:\n  upstream:\n    replay: {frames: " + std::to_string(ringFrames) + "}\n"
         "    log: {dir: '" + dir + "', fsync: " + fsync + ", segment_bytes: 1048576}\n"
         "listeners:\n" + listener("main", listenerKeys) + moreListeners + stats.section();
}

Subscriber::Options resumeAfter(std::uint64_t epoch, std::uint64_t seq) {
  Subscriber::Options o = protocolClient();
  ResumePoint point;
  point.epoch = epoch;
  point.afterSeq["upstream"] = seq;
  o.resume = point;
  return o;
}

// Reads frames until seq `until`: every frame must come once, in order, from
// `from` on, with the payload `seen` has for its seq (where it has one).
void readGapless(Subscriber& sub, std::uint64_t from, std::uint64_t until,
                 const std::map<std::uint64_t, std::string>& seen) {
  std::string frame;
  FrameInfo info;
  std::uint64_t expected = from;
  std::size_t compared = 0;
  while (expected <= until) {
    REQUIRE(sub.next(frame, info, 20s));
    REQUIRE(info.seq == expected);
    auto it = seen.find(info.seq);
    if (it != seen.end()) {
      REQUIRE(frame == it->second);
      ++compared;
    }
    ++expected;
  }
  if (!seen.empty()) CHECK(compared > 0);
}

// A live subscriber that keeps every payload by seq.
std::uint64_t record(Subscriber& sub, std::map<std::uint64_t, std::string>& seen, std::uint64_t until) {
  std::string frame;
  FrameInfo info;
  std::uint64_t last = 0;
  while (last < until) {
    REQUIRE(sub.next(frame, info, 20s));
    if (last != 0) REQUIRE(info.seq == last + 1);
    seen[info.seq] = frame;
    last = info.seq;
  }
  return last;
}

}  // namespace

TEST_CASE("a resume older than the ring is read from the log, then live: no gap, no duplicate, the same payloads",
          "[integration][log][replay]") {
  ScratchDir dir;
  RelayStats stats;
  // Frames of 2000 B: a logged stream's ring keeps at least its newest 8 MiB (to hand a reader over to the
  // live frames), about 4200 of them. 2000 f/s: the resumed client catches up with the feed (and its reader is
  // handed over) even at a sanitizer's pace.
  RunningRelay relay = startRelay(relayConfig(dir.path, "{type: generator, size: 2000, rate: 2000}", stats));
  stats.attach(relay);
  Subscriber live(relay.address(), protocolClient());
  REQUIRE(live.awaitAnswer(10s));
  const std::uint64_t epoch = live.answer().epoch;
  std::map<std::uint64_t, std::string> seen;
  const std::uint64_t first = live.answer().streams.at("upstream").firstSeq;
  record(live, seen, first + 8000);  // well past what the ring holds
  REQUIRE(seen.count(first + 10));

  Subscriber resumed(relay.address(), resumeAfter(epoch, first + 10));
  REQUIRE(resumed.awaitAnswer(10s));
  CHECK(resumed.answer().recovery == Recovery::Recovered);
  CHECK(resumed.answer().streams.at("upstream").firstSeq == first + 11);
  // From disk, then (the reader having caught up) from the ring and live.
  const std::uint64_t until = lastSeq(stats) + 2000;
  record(live, seen, until);
  readGapless(resumed, first + 11, until, seen);
  CHECK(logFigure(stats, "frames_read") >= 3000);
  // Handed over to the live stream once the reader has caught up: the
  // client reads on meanwhile (a reader waits while its client's queue is
  // full), gapless.
  std::uint64_t next = until + 1;
  CHECK(pollUntil(
      [&] {
        std::string frame;
        FrameInfo info;
        // At most a few seconds' frames between looks: the feed never pauses
        // long enough for next() to time out.
        for (int i = 0; i < 5000 && resumed.next(frame, info, 10ms); ++i) REQUIRE(info.seq == next++);
        return logFigure(stats, "readers") == 0;
      },
      60s));

  SECTION("resume.from_seq replays from that seq") {
    Subscriber::Options o = protocolClient();
    o.fromSeq = first + 5;
    Subscriber from(relay.address(), o);
    REQUIRE(from.awaitAnswer(10s));
    CHECK(from.answer().recovery == Recovery::Recovered);
    readGapless(from, first + 5, first + 9000, seen);
  }
  SECTION("resume.from_time (client.hpp since) replays from the first frame received at or after that time") {
    const std::uint64_t before = lastSeq(stats);  // received before `at`
    const auto at = std::chrono::system_clock::now();
    REQUIRE(pollUntil([&] { return lastSeq(stats) > before + 500; }));
    Subscriber::Options o = protocolClient();
    // Whole milliseconds, rounded down: the time the client asks for is `at` or a little later.
    o.since = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now() - at);
    Subscriber from(relay.address(), o);
    REQUIRE(from.awaitAnswer(10s));
    const std::uint64_t answered = lastSeq(stats);
    CHECK(from.answer().recovery == Recovery::Recovered);
    std::string frame;
    FrameInfo info;
    REQUIRE(from.next(frame, info, 20s));
    CHECK(info.seq > before);
    CHECK(info.seq <= answered);
    CHECK(from.answer().streams.at("upstream").firstSeq <= info.seq);  // where the search began
    readGapless(from, info.seq + 1, answered + 1000, {});
  }
}

namespace {

// Runs the relay on `dir` until a live subscriber has seen `frames` frames
// (keeping their payloads), then stops it: SIGTERM, or SIGKILL. Returns the
// stream's epoch and the newest seq the log had fsynced before the stop.
struct FirstRun {
  std::uint64_t epoch = 0;
  std::uint64_t fsynced = 0;
  std::uint64_t seenUpTo = 0;
};
FirstRun runAndStop(const std::string& dir, const std::string& generator, std::uint64_t frames, bool kill,
                    std::map<std::uint64_t, std::string>& seen) {
  FirstRun run;
  RelayStats stats;
  RunningRelay relay = startRelay(relayConfig(dir, "{type: generator, " + generator + "}", stats, 100, "{every_ms: 100}"));
  stats.attach(relay);
  Subscriber live(relay.address(), protocolClient());
  REQUIRE(live.awaitAnswer(10s));
  run.epoch = live.answer().epoch;
  run.seenUpTo = record(live, seen, live.answer().streams.at("upstream").firstSeq + frames - 1);
  run.fsynced = logFigure(stats, "fsynced_seq");
  if (kill) {
    relay.process->kill();
    relay.process->waitForExit();
  } else {
    relay.process->terminate();
    REQUIRE(relay.process->waitForExit() == 0);
  }
  return run;
}

}  // namespace

TEST_CASE("a subscriber resumes across a restart of the relay from the log: every frame once, then live",
          "[integration][log][replay]") {
  ScratchDir dir;
  std::map<std::uint64_t, std::string> seen;
  const bool kill = GENERATE(false, true);
  INFO((kill ? "kill -9 under a 20000 f/s feed" : "a clean stop"));
  const FirstRun first = runAndStop(dir.path, kill ? "size: 100, rate: 20000" : "size: 100, rate: 5000",
                                    kill ? 60000 : 10000, kill, seen);
  // A seq the log is sure to hold: fsynced before the stop (a kill keeps the
  // page cache too, but what had not been written at all is lost).
  REQUIRE(first.fsynced > 1000);
  const std::uint64_t after = first.fsynced - 1000;

  // Started again on the log, with a source that publishes only when told.
  RelayStats stats;
  RunningRelay relay = startRelay(relayConfig(dir.path, "{type: listen, bind: '127.0.0.1:0'}", stats));
  stats.attach(relay);
  const auto restarted = upstreamStats(stats);
  REQUIRE(restarted->getValue<std::string>("epoch") == std::to_string(first.epoch));
  // What the log held at start, and where this run numbers on: right after
  // it after a clean stop; after a crash, above every seq the first run may
  // have handed out (its reservation), so seqs it lost are a gap, never
  // given to another frame.
  const std::uint64_t logged = logFigure(stats, "last_seq");
  const std::uint64_t liveFrom = restarted->getValue<std::uint64_t>("last_seq") + 1;
  REQUIRE(logged >= first.fsynced);
  if (kill) CHECK(liveFrom > first.seenUpTo);
  else CHECK(liveFrom == logged + 1);
  // The first run's frames the log kept have its payloads.
  std::map<std::uint64_t, std::string> kept(seen.begin(), seen.upper_bound(logged));

  if (kill) {  // a resume inside the crash's lost seqs: nothing holds what followed it
    Subscriber lost(relay.address(), resumeAfter(first.epoch, logged + 1));
    REQUIRE(lost.awaitAnswer(10s));
    CHECK(lost.answer().recovery == Recovery::NotRecovered);
  }
  Subscriber resumed(relay.address(), resumeAfter(first.epoch, after));
  REQUIRE(resumed.awaitAnswer(10s));
  CHECK(resumed.answer().recovery == Recovery::Recovered);
  // The first run's frames from disk...
  readGapless(resumed, after + 1, logged, kept);
  CHECK(logFigure(stats, "frames_read") >= logged - after);
  // ...then this run's, live (after a crash, the lost seqs skipped).
  auto feed = publish(relay, 3000, 20000, 100);
  readGapless(resumed, liveFrom, liveFrom + 2999, {});
  CHECK(pollUntil([&] { return logFigure(stats, "readers") == 0; }));
}

TEST_CASE("a subscriber that replays slowly holds a bounded window and does not slow a live one beside it",
          "[integration][log][replay]") {
  ScratchDir dir;
  RelayStats stats;
  // About 40 MiB of log in 2 s.
  // write_deadline_ms 0: a client that reads nothing stays connected.
  RunningRelay relay = startRelay(relayConfig(dir.path, "{type: generator, size: 1000, rate: 20000}", stats, 100, "never",
                                              "protocol: streamrelay, write_deadline_ms: 0"));
  stats.attach(relay);
  REQUIRE(pollUntil([&] { return logFigure(stats, "bytes") > (40u << 20); }, 30s));

  // A replay from seq 1 to a client that reads nothing (its socket buffers fill).
  const int quiet = connectLoopback(relay.ports.at("main"), 4096);
  REQUIRE(quiet >= 0);
  const std::string hello = "{\"resume\":{\"from_seq\":1}}\n";
  REQUIRE(::send(quiet, hello.data(), hello.size(), 0) == static_cast<ssize_t>(hello.size()));
  REQUIRE(pollUntil([&] { return logFigure(stats, "readers") == 1 && logFigure(stats, "frames_read") > 0; }));

  // A live subscriber beside it keeps up with the feed.
  Subscriber live(relay.address(), protocolClient());
  REQUIRE(live.awaitAnswer(10s));
  std::map<std::uint64_t, std::string> ignored;
  const std::uint64_t target = lastSeq(stats) + 20000;
  record(live, ignored, target);
  // ...less than a second of the feed behind it (the feed was not held up either).
  CHECK(lastSeq(stats) < target + 20000);

  // The reader waits for its client: what it read is its window plus the
  // sockets' buffers, not the 40 MiB the log holds; it is still reading.
  const std::uint64_t read = logFigure(stats, "frames_read");
  CHECK(read * 1000 < (20u << 20));
  CHECK(logFigure(stats, "readers") == 1);
  CHECK(logFigure(stats, "read_ahead_bytes") <= (5u << 20) + (64u << 10));
  CHECK(logFigure(stats, "read_ahead_bytes") > 0);
  ::close(quiet);
  CHECK(pollUntil([&] { return logFigure(stats, "readers") == 0; }));  // its client gone, the reader ends
}

TEST_CASE("from_seq and from_time in every protocol with a hello: streamrelay, websocket and sse, and streamrelay-sub",
          "[integration][log][replay][websocket][sse]") {
  ScratchDir dir;
  RelayStats stats;
  RunningRelay relay = startRelay(
      relayConfig(dir.path, "{type: listen, bind: '127.0.0.1:0'}", stats, 100, "never", "protocol: streamrelay",
                  "  - {name: ws, bind: '127.0.0.1:0', protocol: websocket, envelope: header}\n"
                  "  - {name: sse, bind: '127.0.0.1:0', protocol: sse}\n"),
      {"main", "ws", "sse"});
  stats.attach(relay);
  auto feed = publish(relay, 3000, 20000);
  REQUIRE(feed->waitForExit() == 0);
  REQUIRE(pollUntil([&] { return logFigure(stats, "last_seq") == 3000; }));

  // Older than the ring (100 frames): from the log.
  Subscriber::Options o;
  o.fromSeq = 10;
  Subscriber ws("ws://127.0.0.1:" + std::to_string(relay.ports.at("ws")) + "/", o);
  Subscriber sse("http://127.0.0.1:" + std::to_string(relay.ports.at("sse")) + "/", o);
  for (Subscriber* sub : {&ws, &sse}) {
    REQUIRE(sub->awaitAnswer(10s));
    CHECK(sub->answer().recovery == Recovery::Recovered);
    CHECK(readSeqs(*sub, 10, 2991) == 3000);
  }

  // streamrelay-sub --from-seq and --since; its frames go to stdout: joined with stderr, which the test reads.
  auto sub = [&](const std::string& args) {
    return std::make_unique<ChildProcess>(
        "/bin/sh", std::vector<std::string>{"-c", "exec " STREAMRELAY_SUB_BIN " " + relay.address() +
                                                      " --protocol streamrelay " + args + " 1>&2"});
  };
  auto fromSeqProcess = sub("--from-seq 2001 --count 1000");
  ChildProcess& fromSeq = *fromSeqProcess;
  CHECK(fromSeq.waitForExit(20s) == 0);
  INFO(fromSeq.output());
  CHECK(fromSeq.countLines("\"recovered\":true") == 1);
  CHECK(fromSeq.countLines("^upstream seq=2001 ") == 1);
  CHECK(fromSeq.countLines("^upstream seq=3000 ") == 1);
  CHECK(fromSeq.countLines("^upstream seq=") == 1000);
  auto sinceProcess = sub("--since 1h --count 3000");
  ChildProcess& since = *sinceProcess;
  CHECK(since.waitForExit(20s) == 0);
  INFO(since.output());
  CHECK(since.countLines("^upstream seq=1 ") == 1);
  CHECK(since.countLines("^upstream seq=") == 3000);

  // A bad value: a one-line refusal.
  ChildProcess zero(STREAMRELAY_SUB_BIN, {relay.address(), "--protocol", "streamrelay", "--from-seq", "0"});
  CHECK(zero.waitForExit(10s) == 2);
  CHECK(zero.countLines("--from-seq expects a seq from 1 on, not '0'") == 1);
  ChildProcess badSince(STREAMRELAY_SUB_BIN, {relay.address(), "--protocol", "streamrelay", "--since", "10d"});
  CHECK(badSince.waitForExit(10s) == 2);
  CHECK(badSince.countLines("--since expects a duration such as 30s, 10m or 2h, not '10d'") == 1);
  const int fd = connectLoopback(relay.ports.at("main"));
  const std::string hello = "{\"resume\":{\"from_time\":\"yesterday\"}}\n";
  REQUIRE(::send(fd, hello.data(), hello.size(), 0) == static_cast<ssize_t>(hello.size()));
  std::string answer;
  char buffer[4096];
  for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) answer.append(buffer, static_cast<std::size_t>(n));
  ::close(fd);
  CHECK(answer.find("{\"ok\":false,\"error\":\"resume.from_time: expected an RFC 3339 time such as "
                    "2026-12-03T14:05:00Z, not 'yesterday'\"}") != std::string::npos);
}
