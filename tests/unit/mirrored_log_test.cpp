// SPDX-License-Identifier: Apache-2.0
// A mirrored log (LogOptions::mirror: a redis source's stream): it takes
// its writer's epoch and seqs, gaps included, moves an old epoch's segments
// aside when another comes, and a restart goes on right after the last
// frame written (not after the seq reservation).
#include <catch2/catch.hpp>

#include <filesystem>

#include "log_test_support.hpp"

using namespace streamrelay;
using namespace streamrelay::test;

namespace {

constexpr std::int64_t kT0 = 1700000000LL * 1000000000LL;

LogOptions mirrored(const std::string& dir) {
  LogOptions o;
  o.dir = dir;
  o.fsync = FsyncPolicy::Never;
  o.mirror = true;
  return o;
}

// `count` frames from `seq` in `stream`'s epoch, as Bus::publishAt numbers them.
void appendAt(StreamLog& log, const StreamId& stream, std::uint64_t seq, std::size_t count, const std::string& position) {
  auto batch = makeFrames(seq, count, kT0);
  batch->assignFirstSeq(seq, &stream);
  batch->setProviderPosition(position);
  log.append(*batch, 0, count);
  log.flush();
}

std::vector<std::uint64_t> seqsOf(const std::vector<LoggedFrame>& frames) {
  std::vector<std::uint64_t> seqs;
  for (const LoggedFrame& f : frames) seqs.push_back(f.seq);
  return seqs;
}

int asideFolders(const std::string& dir) {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    if (entry.is_directory() && entry.path().filename().string().rfind("aside-", 0) == 0) ++n;
  return n;
}

}  // namespace

TEST_CASE("a mirrored log takes its writer's epoch and seqs, and a restart goes on after its last frame", "[log][mirror]") {
  ScratchDir dir;
  const StreamId e77{"s", 77}, e78{"s", 78};
  {
    StreamLog log("s", mirrored(dir.path));
    CHECK(log.epoch() != 77);  // its own until the first frame
    appendAt(log, e77, 5, 3, "1-3");
    appendAt(log, e77, 10, 2, "1-5");  // the writer's gap: 8 and 9 never came
    log.close();
  }
  {
    StreamLog log("s", mirrored(dir.path));
    CHECK(log.epoch() == 77);
    CHECK(log.nextSeqAtOpen() == 12);
    CHECK_FALSE(log.lostAtOpen().has_value());
    CHECK(log.providerPositionAtOpen() == "1-5");
    CHECK(seqsOf(readAll(log)) == std::vector<std::uint64_t>{5, 6, 7, 10, 11});
    CHECK(asideFolders(dir.path) == 0);  // the first epoch only replaced the log's own (empty) one
    appendAt(log, e78, 1, 2, "2-2");  // the writer started anew
    CHECK(seqsOf(readAll(log)) == std::vector<std::uint64_t>{1, 2});
    CHECK(asideFolders(dir.path) == 1);  // epoch 77's segments, not deleted
    log.close();
  }
  StreamLog log("s", mirrored(dir.path));
  CHECK(log.epoch() == 78);
  CHECK(log.nextSeqAtOpen() == 3);
  CHECK(log.providerPositionAtOpen() == "2-2");
}

TEST_CASE("a mirrored log not closed (a crash) goes on after its last frame, with no hole for the reservation", "[log][mirror]") {
  ScratchDir dir;
  const StreamId e9{"s", 9};
  {
    StreamLog log("s", mirrored(dir.path));
    appendAt(log, e9, 1, 100, "1-100");
    // Seqs handed out by the bus under the reservation, never written: a
    // stream numbered here would skip them; a mirror reads them again.
    log.seqGate().awaitReserved(5000);
  }  // not closed
  StreamLog log("s", mirrored(dir.path));
  CHECK(log.epoch() == 9);
  CHECK(log.nextSeqAtOpen() == 101);
  CHECK_FALSE(log.lostAtOpen().has_value());
}
