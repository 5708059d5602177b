// SPDX-License-Identifier: Apache-2.0
// LogReader beside a LogWriter fed by a bus: a reader that runs while the
// writer appends sees every frame, in order, and nothing half written.
#include <catch2/catch.hpp>

#include <thread>

#include "bus.hpp"
#include "log_test_support.hpp"
#include "log_writer.hpp"

using namespace streamrelay;
using namespace streamrelay::test;
using namespace std::chrono_literals;

TEST_CASE("a reader concurrent with the writer sees every frame in order", "[log]") {
  ScratchDir dir;
  const FsyncPolicy policy = GENERATE(FsyncPolicy::Never, FsyncPolicy::EveryMs, FsyncPolicy::Always);
  LogOptions options;
  options.dir = dir.path;
  options.segmentBytes = 16 << 10;  // the reader crosses segments while they are written
  options.fsync = policy;
  options.fsyncEveryMs = 5;
  auto log = std::make_unique<StreamLog>("s", options);
  const StreamLog& logged = *log;
  Bus bus(StreamId{"s", log->epoch()}, nullptr, [&] {
    BusOptions o;
    o.firstSeq = log->nextSeqAtOpen();
    return o;
  }());
  LogWriter writer(std::move(log), bus);
  writer.start();

  constexpr std::uint64_t kFrames = 3000;
  std::thread publisher([&] {
    bus.claimPublisher();
    for (std::uint64_t seq = 1; seq <= kFrames; seq += 30) {
      FrameBatchBuilder builder;
      for (std::uint64_t s = seq; s < seq + 30; ++s) {
        const std::string payload = "frame " + std::to_string(s);
        builder.add(payload.data(), payload.size(), "k." + std::to_string(s % 5));
      }
      bus.publish(builder.seal(unixNowNs()));
    }
  });

  LogReader reader(logged, 1);
  std::uint64_t expected = 1;
  logfmt::Record r;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  bool inOrder = true;
  while (expected <= kFrames && std::chrono::steady_clock::now() < deadline) {
    if (!reader.next(r)) {
      std::this_thread::yield();  // caught up with the writer: ask again
      continue;
    }
    inOrder = inOrder && r.seq == expected && r.payload == "frame " + std::to_string(expected) &&
              r.key == "k." + std::to_string(expected % 5);
    ++expected;
  }
  publisher.join();
  writer.stop();
  CHECK(reader.problem().empty());
  CHECK(inOrder);
  CHECK(expected == kFrames + 1);
  const LogStats stats = logged.stats();
  CHECK(stats.lastSeq == kFrames);
  if (policy != FsyncPolicy::Never) CHECK(stats.fsyncedSeq == kFrames);  // stop() syncs what it wrote
  CHECK(stats.segments > 2);
}
