// SPDX-License-Identifier: Apache-2.0
#include "log_retention.hpp"

namespace streamrelay {

std::size_t segmentsToDelete(const std::vector<SegmentIndex>& segments, const RetainLimits& limits,
                             std::int64_t nowUnixNs) {
  std::uint64_t bytes = 0, frames = 0;
  for (const SegmentIndex& s : segments) {
    bytes += s.endOffset;
    frames += s.frames;
  }
  const std::int64_t oldestKept = nowUnixNs - limits.ageS * 1000000000LL;
  std::size_t count = 0;
  for (; count + 1 < segments.size(); ++count) {  // the newest stays
    const SegmentIndex& s = segments[count];
    const bool overBytes = limits.bytes > 0 && bytes - s.endOffset >= limits.bytes;
    const bool overFrames = limits.frames > 0 && frames - s.frames >= limits.frames;
    const bool tooOld = limits.ageS > 0 && (s.empty() || s.lastUnixNs < oldestKept);
    if (!overBytes && !overFrames && !tooOld) break;
    bytes -= s.endOffset;
    frames -= s.frames;
  }
  return count;
}

}  // namespace streamrelay
