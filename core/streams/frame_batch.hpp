// SPDX-License-Identifier: Apache-2.0
#pragma once
// FrameBatch: the frames decoded from one upstream read, stored once and shared
// by every consumer.
//
// Each frame is kept in "wire form": a 4-byte big-endian length followed by the
// payload, back to back. A listener using the default framing can therefore send
// a run of frames with one iovec straight from this buffer; no consumer ever
// copies a frame. A batch is immutable once published (FrameBatchPtr is const).

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace streamrelay {

constexpr std::size_t kWireHeaderBytes = 4;

// Which stream a batch belongs to: its name and its epoch (a random 64-bit
// id, so that a seq of one numbering is never mistaken for the same seq of
// another): the relay run's, or, for a stream with a log, the log's, kept
// across restarts. Owned by the stream's bus, which outlives its batches'
// consumers.
struct StreamId {
  std::string name;
  std::uint64_t epoch = 0;
};

// A random, non-zero 64-bit epoch. Thread safe.
std::uint64_t newEpoch();

std::int64_t steadyNowNs();

// Something derived from a batch once and shared by its consumers, such as
// a listener protocol's encoding of its frames (subscribers/frame_codec.hpp):
// whichever consumer needs it first builds it and adds it to the batch; the
// others find it there; it lives as long as the batch. Immutable once added.
class BatchAnnex {
 public:
  virtual ~BatchAnnex() = default;

 private:
  friend class FrameBatch;
  std::uint64_t key_ = 0;
  const BatchAnnex* next_ = nullptr;
};

// The keys of a batch's frames (streams.NAME.key, or a processor's
// emit_keyed), one per frame in order; a frame may have none. Kept in one
// buffer: a key costs its bytes and 8 more, not an allocation.
class FrameKeys {
 public:
  void add(std::string_view key) {
    refs_.push_back({static_cast<std::uint32_t>(bytes_.size()), static_cast<std::uint32_t>(key.size()), true});
    bytes_.append(key.data(), key.size());
  }
  void addNone() { refs_.push_back({0, 0, false}); }
  void clear() {
    refs_.clear();
    bytes_.clear();
  }
  std::size_t size() const { return refs_.size(); }
  bool has(std::size_t i) const { return refs_[i].present; }
  // Valid while the keys live; empty for a frame without a key (has() tells).
  std::string_view key(std::size_t i) const { return {bytes_.data() + refs_[i].offset, refs_[i].size}; }

 private:
  struct Ref {
    std::uint32_t offset;
    std::uint32_t size : 31;
    bool present : 1;
  };
  std::vector<Ref> refs_;
  std::string bytes_;
};

class FrameBatch {
 public:
  struct Record {
    std::uint32_t offset;  // of the wire header inside bytes_
    std::uint32_t size;    // payload bytes
  };

  FrameBatch(std::vector<char> bytes, std::vector<Record> records, std::int64_t receivedUnixNs,
             std::int64_t receivedSteadyNs);
  FrameBatch(const FrameBatch&) = delete;
  FrameBatch& operator=(const FrameBatch&) = delete;
  ~FrameBatch();

  std::size_t frameCount() const { return records_.size(); }
  std::uint64_t firstSeq() const { return firstSeq_; }
  // Where the provider resumes after this batch's last frame (an SSE
  // source's last event id; "" if its framing has none): a stream's log
  // keeps it with the frame. Set by the source before it publishes.
  const std::string& providerPosition() const { return providerPosition_; }
  void setProviderPosition(std::string position) { providerPosition_ = std::move(position); }
  std::uint64_t seq(std::size_t i) const { return firstSeq_ + i; }
  // When the frames were read: wall clock (shown to plugins and users) and
  // steady clock (for durations such as write latency, immune to clock steps).
  std::int64_t receivedUnixNs() const { return receivedUnixNs_; }
  std::int64_t receivedSteadyNs() const { return receivedSteadyNs_; }

  std::string_view payload(std::size_t i) const {
    return {bytes_.data() + records_[i].offset + kWireHeaderBytes, records_[i].size};
  }
  // Wire form (header + payload) of frames [first, end): one contiguous range.
  const char* wireBegin(std::size_t first) const { return bytes_.data() + records_[first].offset; }
  std::size_t wireBytes(std::size_t first, std::size_t end) const {
    return wireOffset(end) - records_[first].offset;
  }
  // Bytes a queue accounts for: payload plus header, as sent by default framing.
  std::size_t totalWireBytes() const { return bytes_.size(); }

  // Frame `i`'s key: none if the stream has no key rule, or the frame had
  // no key to find.
  bool keyed() const { return keys_.size() != 0; }
  bool hasKey(std::size_t i) const { return keyed() && keys_.has(i); }
  std::string_view key(std::size_t i) const { return hasKey(i) ? keys_.key(i) : std::string_view(); }
  // Called once, by whoever publishes the batch, before it is shared: one key (or none) per frame.
  void setKeys(FrameKeys keys) { keys_ = std::move(keys); }

  // The stream it was published on (null until published).
  const StreamId* stream() const { return stream_; }

  // Thread safe. The annex added under `key`, or null. Keys are unique per
  // kind of annex and owner (newAnnexKey()).
  const BatchAnnex* annex(std::uint64_t key) const;
  // Thread safe. Adds `annex` under `key` unless one is there already (built
  // meanwhile by another thread); returns the one the batch keeps.
  const BatchAnnex& addAnnex(std::uint64_t key, std::unique_ptr<BatchAnnex> annex) const;
  static std::uint64_t newAnnexKey();

  // Called once, by the bus, before the batch is shared.
  void assignFirstSeq(std::uint64_t seq, const StreamId* stream = nullptr) {
    firstSeq_ = seq;
    stream_ = stream;
  }

 private:
  std::size_t wireOffset(std::size_t i) const {
    return i == records_.size() ? bytes_.size() : records_[i].offset;
  }

  std::vector<char> bytes_;
  std::vector<Record> records_;
  std::int64_t receivedUnixNs_;
  std::int64_t receivedSteadyNs_;
  std::uint64_t firstSeq_ = 0;
  const StreamId* stream_ = nullptr;
  std::string providerPosition_;
  FrameKeys keys_;
  // A list that only grows (at its head, by compare-and-swap) until the
  // batch is destroyed: readers need no lock.
  mutable std::atomic<const BatchAnnex*> annexes_{nullptr};
};

using FrameBatchPtr = std::shared_ptr<const FrameBatch>;

// Collects decoded frames in wire form until the batch is sealed, with
// their keys where a frame has one (a processor's emit_keyed): a batch none
// of whose frames has a key gets no FrameKeys at all.
// Not thread safe: owned by one source thread.
class FrameBatchBuilder {
 public:
  void add(const char* payload, std::size_t size);
  // A frame with its key (empty: none).
  void add(const char* payload, std::size_t size, std::string_view key);
  // Makes room for `more` bytes without reallocating (call before decoding a read).
  void reserve(std::size_t more) {
    std::size_t needed = bytes_.size() + more;
    if (needed > bytes_.capacity()) bytes_.reserve(std::max(needed, 2 * bytes_.capacity()));
  }
  // Start a frame whose payload will be appended in pieces (large frames).
  void beginFrame();
  void appendToFrame(const char* data, std::size_t size);
  void endFrame();
  // Removes the last `size` bytes of the frame in progress (a delimiter).
  void truncateFrame(std::size_t size);
  // Drops a frame begun but not ended (the connection broke mid-frame).
  void abandonFrame();

  std::size_t frameCount() const { return records_.size(); }
  bool empty() const { return records_.empty(); }
  // Hands over the complete frames; a frame in progress stays in the builder.
  std::unique_ptr<FrameBatch> seal(std::int64_t receivedUnixNs, std::int64_t receivedSteadyNs = steadyNowNs());

 private:
  std::vector<char> bytes_;
  std::vector<FrameBatch::Record> records_;
  FrameKeys keys_;  // empty until a frame has a key; then one entry per frame
  bool inFrame_ = false;
  std::size_t frameStart_ = 0;
};

std::int64_t unixNowNs();

}  // namespace streamrelay
