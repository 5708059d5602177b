// SPDX-License-Identifier: Apache-2.0
#pragma once
// SeqGate: what a stream asks before it hands out a seq. A logged stream's
// log (SeqReservation) answers once the seq is durably reserved, so that a
// relay restarted after a crash never numbers a new frame with a seq that an
// earlier frame may already have carried to a subscriber.
//
// Threads: awaitReserved() only from the stream's publishing thread.

#include <cstdint>

namespace streamrelay {

class SeqGate {
 public:
  virtual ~SeqGate() = default;
  // Returns once every seq up to `lastSeq` may be handed out. Normally at
  // once: it waits only while the reservation is that far behind.
  virtual void awaitReserved(std::uint64_t lastSeq) = 0;
};

}  // namespace streamrelay
