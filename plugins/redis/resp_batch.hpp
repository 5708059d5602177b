// SPDX-License-Identifier: Apache-2.0
#pragma once
// RespBatch: the Redis commands of the frames the redis sink holds until
// Redis acknowledges them, in RESP, encoded once as the frames arrive:
// `XADD KEY [MAXLEN ~ N] * seq S epoch E received_ns T payload P` or
// `PUBLISH KEY P`.
//
// A payload is not copied when the frame could be retained (ABI 1.2): the
// batch points at the relay's own bytes and hands them to writev beside the
// encoded words, until the reply comes. Small payloads are copied anyway:
// a copy of a few hundred bytes costs less than an iovec and a reference.
// The words around a payload that change rarely (the key, the stream's
// epoch, a batch's receive time) are encoded once and copied.
//
// Not thread safe: the plugin's worker only.

#include <streamrelay/plugin.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

namespace streamrelay::plugins {

class RespBatch {
 public:
  enum class Mode { Xadd, Publish };
  // Payloads up to this many bytes are copied into the batch.
  static constexpr std::size_t kCopyBelow = 1024;

  RespBatch(Mode mode, long long maxlen);

  // Appends the command for `frame` to `key`. `retained` keeps the payload's
  // bytes (or is empty: then the payload is copied).
  void add(const Frame& frame, const std::string& key, Retained retained);

  std::size_t frames() const { return frames_.size(); }
  std::size_t written() const { return written_; }
  std::size_t unwritten() const { return frames_.size() - written_; }

  // Writes the frames not written yet, `limit` at most, to the socket `fd`
  // (blocking; its send timeout ends a stalled write). False with the
  // reason on an error.
  bool writeUnwritten(int fd, std::string& error, std::size_t limit = static_cast<std::size_t>(-1));
  // The first `count` frames were acknowledged: they leave the batch and
  // their payloads are released.
  void dropAcknowledged(std::size_t count);
  // A new connection has been sent nothing: every frame is written again.
  void rewind() { written_ = 0; }
  // The bytes that writeUnwritten() would write (for tests).
  std::string unwrittenBytes() const;

 private:
  // One frame's command: heads_[start, split) + payload + heads_[split, end),
  // or heads_[start, end) when the payload was copied.
  struct Command {
    std::size_t split;  // npos: copied
    std::size_t end;
    std::string_view payload;
    Retained retained;
  };
  static constexpr std::size_t kCopied = static_cast<std::size_t>(-1);

  std::size_t startOf(std::size_t index) const { return index == 0 ? base_ : frames_[index - 1].end; }
  const std::string& prefixFor(const std::string& key);

  const Mode mode_;
  const long long maxlen_;
  std::string heads_;             // the encoded words (and copied payloads), frame after frame
  std::size_t base_ = 0;          // where the first frame held starts in heads_
  std::deque<Command> frames_;
  std::size_t written_ = 0;       // frames at the front written, replies not yet read
  // Cached encodings: the command up to "seq" for the last key, the words
  // from "epoch" to "received_ns" for the last stream, the last receive time.
  std::string prefixKey_, prefix_;
  std::string epochStream_ = "\x01", epochWords_;
  std::uint64_t epoch_ = 0;
  std::int64_t lastReceived_ = -1;
  std::string receivedWords_;
};

}  // namespace streamrelay::plugins
