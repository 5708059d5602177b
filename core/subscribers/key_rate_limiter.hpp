// SPDX-License-Identifier: Apache-2.0
#pragma once
// KeyRateLimiter: a subscriber's hello `max_rate_per_key`. At most one frame
// of each key goes to it per interval: the first frame of a key goes at
// once and opens an interval; frames of that key arriving within it are held,
// the newest replacing the one held (the frames replaced are counted,
// rate_skipped), and the one held goes when the interval ends, flagged
// conflated if it replaced others, opening the next interval. So the last
// frame of a key always arrives, at most one interval late. Frames without a
// key are not limited.
//
// Frames are applied as the session takes them from its queue, not on the
// bus: only sessions that asked for a rate pay for it. Time is given by the
// caller (steady clock, ns), so the session's writer decides when to call
// again (nextReleaseNs()), and a test need not sleep.
//
// Memory: one entry per key seen within the last interval (older entries are
// pruned as the map grows) and at most one frame held per key (which keeps
// its batch alive). Not thread safe: owned by one session's writer thread.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "subscription_queue.hpp"

namespace streamrelay {

class KeyRateLimiter {
 public:
  explicit KeyRateLimiter(std::chrono::milliseconds interval);

  // Takes the frames of `taken` (in order; it is left empty): those that may
  // go at `nowNs` are appended to `out`, the others held. Returns the number
  // of frames skipped (replaced by a newer one of their key).
  std::uint64_t admit(std::deque<FrameSpan>& taken, std::deque<FrameSpan>& out, std::int64_t nowNs);
  // Appends to `out` the held frames whose interval ended by `nowNs`.
  void release(std::deque<FrameSpan>& out, std::int64_t nowNs);
  // Appends every held frame to `out` now (the session drains at shutdown).
  void releaseAll(std::deque<FrameSpan>& out);
  // When the soonest held frame may go (steady clock, ns); 0: none is held.
  std::int64_t nextReleaseNs() const { return due_.empty() ? 0 : due_.top().ns; }
  std::size_t heldFrames() const { return due_.size(); }
  std::size_t keysTracked() const { return keys_.size(); }

 private:
  struct KeyState {
    std::int64_t intervalEndNs = 0;  // no frame of the key may go before
    FrameSpan held;                  // batch null: none held
    std::uint32_t replaced = 0;      // frames the held one replaced
  };
  void send(KeyState& key, std::deque<FrameSpan>& out, std::int64_t nowNs);
  void prune(std::int64_t nowNs);

  const std::int64_t intervalNs_;
  // Node-based: a KeyState's address is stable until it is erased, and
  // only states holding nothing (so not in due_) are erased.
  std::unordered_map<std::string, KeyState> keys_;
  std::size_t pruneAt_ = 1024;
  std::string lookup_;  // the key looked up, reused: no allocation per frame
  // One entry per key holding a frame: when its interval ends, soonest on
  // top; keys due together go in the order they began holding.
  struct Due {
    std::int64_t ns;
    std::uint64_t order;
    KeyState* key;
    bool operator>(const Due& o) const { return ns != o.ns ? ns > o.ns : order > o.order; }
  };
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> due_;
  std::uint64_t holds_ = 0;  // the next Due's order
};

}  // namespace streamrelay
