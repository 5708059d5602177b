// SPDX-License-Identifier: Apache-2.0
#pragma once
// MirrorPosition: where a mirroring source stands in its writer's numbering
// (the `streamrelay` source following another relay, the `redis` source
// reading entries a relay's sink wrote), and what a frame at (epoch, seq)
// means for it: one it had already (read again after a reconnect or a
// restart: dropped), the next one, one after a gap (counted and logged), or
// the first of another epoch (counted and logged). The source thread's.

#include <cstdint>
#include <string>

namespace streamrelay {

struct SourceCounters;

class MirrorPosition {
 public:
  // `label`: the source's name in log lines; `writer`: whose stream it
  // follows, as a log line says it ("the upstream's", "the writer's").
  MirrorPosition(SourceCounters& counters, std::string label, std::string writer);

  // The (epoch, seq) of the last frame published (0, 0: none yet). A source
  // started on a stream that already has frames (a reload, a log) begins
  // there: never a seq twice.
  std::uint64_t epoch() const { return epoch_; }
  std::uint64_t seq() const { return seq_; }
  void set(std::uint64_t epoch, std::uint64_t seq) {
    epoch_ = epoch;
    seq_ = seq;
  }

  // A frame at (epoch, seq) came: false if it is one had already (drop it);
  // otherwise counts a gap or a new epoch before it, and it becomes the
  // position.
  bool take(std::uint64_t epoch, std::uint64_t seq);

 private:
  SourceCounters& counters_;
  const std::string label_;
  const std::string writer_;
  std::uint64_t epoch_ = 0;
  std::uint64_t seq_ = 0;
};

}  // namespace streamrelay
