// SPDX-License-Identifier: Apache-2.0
// A source's provider position kept in its stream's log (position records,
// log_format.hpp): what a restart gives back, and that the log then holds
// no frame the provider sends again.
#include <catch2/catch.hpp>

#include <fstream>

#include "log_test_support.hpp"

using namespace streamrelay;
using namespace streamrelay::test;

namespace {

constexpr std::int64_t kT0 = 1700000000LL * 1000000000LL;

LogOptions options(const std::string& dir) {
  LogOptions o;
  o.dir = dir;
  o.fsync = FsyncPolicy::Never;
  return o;
}

// Appends `count` frames from `seq` as one batch whose provider position is `position` ("": none).
void appendBatch(StreamLog& log, std::uint64_t seq, std::size_t count, const std::string& position) {
  auto batch = makeFrames(seq, count, kT0);
  batch->setProviderPosition(position);
  log.seqGate().awaitReserved(seq + count - 1);
  log.append(*batch, 0, count);
  log.flush();
}

std::vector<std::uint64_t> seqsOf(const std::vector<LoggedFrame>& frames) {
  std::vector<std::uint64_t> seqs;
  for (const LoggedFrame& f : frames) seqs.push_back(f.seq);
  return seqs;
}

}  // namespace

TEST_CASE("the log keeps a batch's provider position with its last frame, and a restart gives back the last one",
          "[log][position]") {
  ScratchDir dir;
  {
    StreamLog log("s", options(dir.path));
    CHECK(log.providerPositionAtOpen().empty());
    appendBatch(log, 1, 3, "ev-3");
    appendBatch(log, 4, 3, "ev-6");
    appendBatch(log, 7, 2, "ev-8");
    log.close();
  }
  StreamLog log("s", options(dir.path));
  CHECK(log.providerPositionAtOpen() == "ev-8");
  CHECK(log.nextSeqAtOpen() == 9);
  // Readers see frames only, without a gap.
  CHECK(seqsOf(readAll(log)) == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(log.stats().framesWritten == 0);  // this run wrote nothing yet
}

TEST_CASE("frames after the last provider position kept are cut off at open: the provider sends them again",
          "[log][position]") {
  ScratchDir dir;
  {
    StreamLog log("s", options(dir.path));
    appendBatch(log, 1, 3, "ev-3");
    appendBatch(log, 4, 3, "");  // its position never reached the log (a write cut short)
    log.close();
  }
  StreamLog log("s", options(dir.path));
  CHECK(log.providerPositionAtOpen() == "ev-3");
  CHECK(seqsOf(readAll(log)) == std::vector<std::uint64_t>{1, 2, 3});
  CHECK(log.nextSeqAtOpen() == 7);  // seqs 4..6 were handed out: never again
}

TEST_CASE("a position record cut short is cut off with the frames before it back to the position before",
          "[log][position]") {
  ScratchDir dir;
  {
    StreamLog log("s", options(dir.path));
    appendBatch(log, 1, 3, "ev-3");
    appendBatch(log, 4, 3, "ev-6");
    log.close();
  }
  const std::string segment = segmentFiles(dir.path).back();
  std::filesystem::resize_file(segment, std::filesystem::file_size(segment) - 2);
  StreamLog log("s", options(dir.path));
  CHECK(log.providerPositionAtOpen() == "ev-3");
  CHECK(seqsOf(readAll(log)) == std::vector<std::uint64_t>{1, 2, 3});
}

TEST_CASE("a log of format version 1 (no positions) is still read", "[log][position]") {
  ScratchDir dir;
  {
    StreamLog log("s", options(dir.path));
    appendBatch(log, 1, 4, "");
    log.close();
  }
  const std::string segment = segmentFiles(dir.path).front();
  {
    std::fstream f(segment, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8);
    const char one[4] = {1, 0, 0, 0};  // the version is outside the header's checksum
    f.write(one, 4);
  }
  StreamLog log("s", options(dir.path));
  CHECK(log.nextSeqAtOpen() == 5);
  CHECK(log.providerPositionAtOpen().empty());
  CHECK(seqsOf(readAll(log)) == std::vector<std::uint64_t>{1, 2, 3, 4});
}

// The newest segment has frames but no position: a rollover came between the
// batch whose position was kept and frames whose position was lost. The
// provider, resumed after the kept one, sends those frames again.
TEST_CASE("frames of a newer segment without a position of its own are cut off at open", "[log][position]") {
  ScratchDir dir;
  LogOptions o = options(dir.path);
  o.segmentBytes = 1;  // every batch starts a segment of its own
  {
    StreamLog log("s", o);
    appendBatch(log, 1, 3, "ev-3");
    appendBatch(log, 4, 3, "");  // in the next segment; its position never reached the log
    REQUIRE(log.stats().segments >= 2);
    log.close();
  }
  StreamLog log("s", o);
  CHECK(log.providerPositionAtOpen() == "ev-3");
  CHECK(seqsOf(readAll(log)) == std::vector<std::uint64_t>{1, 2, 3});
}

// A position that did not change since the segment before is still kept in
// a new segment, so a restart does not cut that segment's frames.
TEST_CASE("each segment keeps its position, even one that did not change", "[log][position]") {
  ScratchDir dir;
  LogOptions o = options(dir.path);
  o.segmentBytes = 1;
  {
    StreamLog log("s", o);
    appendBatch(log, 1, 3, "ev-3");
    appendBatch(log, 4, 3, "ev-6");
    appendBatch(log, 7, 2, "ev-6");  // the same position, in a segment of its own
    log.close();
  }
  StreamLog log("s", o);
  CHECK(log.providerPositionAtOpen() == "ev-6");
  CHECK(seqsOf(readAll(log)) == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6, 7, 8});
}
