// SPDX-License-Identifier: Apache-2.0
#pragma once
// What a stream's log is told (streams.NAME.log in the config).

#include <cstdint>
#include <string>

namespace streamrelay {

// When written records are forced to the disk (fdatasync): after every
// write, at most every_ms after a record was written, or never (the
// kernel writes back when it will; a clean shutdown still syncs).
enum class FsyncPolicy { Always, EveryMs, Never };

// What the log keeps. Each limit is a cap (0: none): whole sealed
// segments, oldest first, are deleted while the log without the segment
// still holds at least `bytes`, or at least `frames`, or while every record
// the segment holds is older than `ageS`. The log therefore never holds
// less than a limit asks, and at most one segment more.
struct RetainLimits {
  std::uint64_t bytes = 0;
  std::int64_t ageS = 0;
  std::uint64_t frames = 0;
};

struct LogOptions {
  std::string dir;
  std::uint64_t segmentBytes = 64 << 20;
  FsyncPolicy fsync = FsyncPolicy::EveryMs;
  int fsyncEveryMs = 100;
  RetainLimits retain;
  // The stream mirrors another's numbering (a redis source: Bus::publishAt):
  // the log takes the epoch of the frames it is given (another epoch: the
  // old one's segments are moved aside), and a restart goes on right after
  // the last frame written, not after the seq reservation (the seqs are the
  // writer's; what was published and not written is read again from it).
  bool mirror = false;
};

}  // namespace streamrelay
