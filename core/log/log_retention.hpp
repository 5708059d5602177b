// SPDX-License-Identifier: Apache-2.0
#pragma once
// Which segments retention deletes: how many of the oldest, never the
// newest (the one written to), only whole segments. Pure; thread safe.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "log_options.hpp"
#include "segment_index.hpp"

namespace streamrelay {

// The number of segments, from the front of `segments` (oldest first),
// that `limits` let go at `nowUnixNs`.
std::size_t segmentsToDelete(const std::vector<SegmentIndex>& segments, const RetainLimits& limits,
                             std::int64_t nowUnixNs);

}  // namespace streamrelay
