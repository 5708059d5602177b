// SPDX-License-Identifier: Apache-2.0
#pragma once
// Backfill: where a stream's bus finds, for a resume, the frames its replay
// ring no longer holds: the stream's log, read from disk (log_replays.hpp).
// The bus asks it outside its lock, on the thread that subscribes (a
// listener's writer thread): nothing here may wait for the disk.

#include <cstdint>
#include <string>
#include <vector>

#include "subscription_queue.hpp"

namespace streamrelay {

class Backfill {
 public:
  virtual ~Backfill() = default;
  // Thread safe. Whether the frame `seq` and those after it are held (the
  // oldest frame held is at or before `seq`).
  virtual bool holdsFrom(std::uint64_t seq) const = 0;
  // Thread safe; returns at once. Gives `queue`, not subscribed yet, the
  // frames from `seq` on (only those whose key matches `select`, if any;
  // none received before `fromUnixNs`), then subscribes it to the bus
  // right after the last one given (Bus::continueAfter): no gap, no frame
  // twice.
  virtual void replay(QueuePtr queue, std::uint64_t seq, std::vector<std::string> select,
                      std::int64_t fromUnixNs = 0) = 0;
  // Thread safe, without reading frames: a seq at or before that of the
  // first frame held received at or after `unixNs` (Unix ns), to replay
  // from with `fromUnixNs`; the next seq to be written if none is.
  struct TimeStart {
    std::uint64_t seq = 0;
    bool covered = false;  // the oldest frame held was received at or before `unixNs`
  };
  virtual TimeStart searchStartFor(std::int64_t unixNs) const = 0;
};

}  // namespace streamrelay
