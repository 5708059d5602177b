// SPDX-License-Identifier: Apache-2.0
#pragma once
// FrameRing: the shared memory that carries an isolated plugin instance's
// frames from the relay (the one writer) to its child process (the one
// reader), with the child's acknowledgements coming back.
//
// One memfd holds a control page and then `capacity` bytes of records (a
// power of two). The records are mapped twice, back to back, so a record that
// wraps round the end reads and writes as one contiguous range. A record is a
// RingRecord header and its bytes, 8-byte aligned:
//  - Span: `frames` whole frames of one batch in wire form (a 4-byte
//    big-endian length, then the payload: FrameBatch's own layout, so a span
//    is written with one copy), the first of them with ring seq `ringSeq`.
//  - FramePart: a piece of the payload of one frame too large for a record of
//    its own (more than half the ring); `last` marks its final piece.
// The frames' keys, if its batch has any, are the last `keyBytes` of a
// record's bytes: per frame a u16 size (0: no key) and the key (at most
// STREAMRELAY_MAX_KEY_SIZE); a FramePart carries its frame's in its first
// piece. A record of a batch without keys has none (keyBytes 0).
// Ring seqs number the frames written for the instance, from 1, gapless and
// kept across restarts of the child: they are what the child acknowledges.
//
// The reader copies a record out, then moves readPos on, which frees its
// space. Separately it moves `acked` on: the ring seq up to which the plugin
// has finished with the frames. The relay keeps every frame it wrote until it
// is acknowledged, so a restarted child gets them again in a ring emptied by
// reset(). What the child writes into the control page is never trusted: the
// writer checks it (monotonic, never past what was written).
//
// Doorbells: two eventfds. A side that is about to sleep says so in the
// control page, checks once more, then waits on its eventfd; the other side
// rings only when the flag is set, so a busy pair makes no system call. The
// writer is woken for room only; acknowledgements it reads on its next turn.
//
// Thread rules: one thread writes (FrameRingWriter), one thread reads
// (FrameRingReader::next/consume), any one thread acknowledges. Not copyable.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "subscription_queue.hpp"

namespace streamrelay {

struct RingRecord {
  static constexpr std::uint32_t kSpan = 1;
  static constexpr std::uint32_t kFramePart = 2;
  static constexpr std::uint32_t kNoInput = 0xffffffffu;
  std::uint32_t kind;
  std::uint32_t input;          // index into the instance's inputs, or kNoInput
  std::uint64_t ringSeq;        // of its first frame
  std::uint64_t streamSeq;      // of its first frame, on that frame's stream
  std::uint64_t epoch;          // of that stream
  std::int64_t receivedUnixNs;
  std::uint32_t frames;         // Span: frames in it; FramePart: 1
  std::uint32_t bytes;          // bytes after the header: frames (or a piece), then keys
  std::uint32_t last;           // FramePart: 1 on the final piece
  std::uint32_t keyBytes;       // of `bytes`, the keys at the end (0: none)
  const char* data() const { return reinterpret_cast<const char*>(this + 1); }
  std::uint32_t frameBytes() const { return bytes - keyBytes; }
  const char* keys() const { return data() + frameBytes(); }
};

// The shared part. Writer-owned and reader-owned fields sit on separate cache lines.
struct RingControl {
  std::atomic<std::uint64_t> writePos;   // bytes written (the writer's; the reader reads it)
  std::atomic<std::uint32_t> writerSleeping;
  char pad0[64 - 12];
  std::atomic<std::uint64_t> readPos;    // bytes consumed (the reader's)
  std::atomic<std::uint64_t> acked;      // ring seq acknowledged (the reader's)
  std::atomic<std::uint32_t> readerSleeping;
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "ring positions are shared between processes");

// The memory and the doorbells, mapped in one process.
class RingMapping {
 public:
  // Maps a ring of `capacity` bytes from `memfd` (writable: the writer; else
  // the records read-only and the control page writable: the reader).
  RingMapping(int memfd, std::size_t capacity, bool writable);
  ~RingMapping();
  RingMapping(const RingMapping&) = delete;
  RingMapping& operator=(const RingMapping&) = delete;

  RingControl& control() const { return *control_; }
  char* at(std::uint64_t pos) const { return records_ + (pos & (capacity_ - 1)); }
  std::size_t capacity() const { return capacity_; }

 private:
  std::size_t capacity_;
  RingControl* control_ = nullptr;
  char* records_ = nullptr;  // 2 x capacity_ of address space: the records, twice
};

// The relay's side: creates the ring. Called by one thread.
class FrameRingWriter {
 public:
  // `capacity` is rounded up to a power of two (at least 64 KiB). Throws
  // std::runtime_error if the memory or the eventfds cannot be had.
  explicit FrameRingWriter(std::size_t capacity);
  ~FrameRingWriter();
  FrameRingWriter(const FrameRingWriter&) = delete;
  FrameRingWriter& operator=(const FrameRingWriter&) = delete;

  // What a child needs: the memory, its doorbell (rung by the relay) and the
  // relay's doorbell (rung by the child).
  int memfd() const { return memfd_; }
  int readerBell() const { return readerBell_; }
  int writerBell() const { return writerBell_; }
  std::size_t capacity() const { return mapping_.capacity(); }

  // Where the next frame to write is: a span, and how much of its first
  // frame's payload went out already in FramePart records.
  struct Cursor {
    FrameSpan span;
    std::uint32_t input = RingRecord::kNoInput;
    std::uint64_t ringSeq = 0;     // of span.first
    std::size_t partOffset = 0;    // payload bytes of span.first already written as parts
  };
  // Writes as much of `cursor` as fits now (one record) and moves it on.
  // Returns false if nothing fit (wait for the reader).
  bool write(Cursor& cursor);
  // Lets the reader see what was written, ringing its bell if it sleeps.
  void publish();

  // What the reader says, checked: the ring seq it acknowledged (never
  // beyond `written`) and whether its positions make sense. False: the child
  // wrote nonsense into the control page.
  bool readerProgress(std::uint64_t written, std::uint64_t& acked);
  // Before sleeping on writerBell() for room: sets the flag; if it returns
  // false, the reader moved meanwhile: do not sleep.
  bool prepareToSleep();
  void wokeUp();
  // Empties the ring for a new reader (none may be attached). `acked` is the
  // ring seq acknowledged so far.
  void reset(std::uint64_t acked);

 private:
  std::size_t freeBytes() const;

  int memfd_ = -1;
  int readerBell_ = -1;
  int writerBell_ = -1;
  RingMapping mapping_;
  std::uint64_t writePos_ = 0;       // what this side wrote (the control page's copy is the reader's to see)
  std::uint64_t readPosSeen_ = 0;    // the reader's position, as last checked
};

// The child's side. next/consume from one thread; acknowledge from any one.
class FrameRingReader {
 public:
  FrameRingReader(int memfd, std::size_t capacity, int readerBell, int writerBell);
  FrameRingReader(const FrameRingReader&) = delete;
  FrameRingReader& operator=(const FrameRingReader&) = delete;

  // The next complete record, or null if none is there now. Valid until consume().
  const RingRecord* next();
  void consume(const RingRecord* record);
  // Waits until a record is there or the bell rings for another reason
  // (`timeoutMs`; -1: no limit). Wake it from another thread with ring().
  void wait(int timeoutMs);
  void ring();
  // The plugin has finished with every frame up to this ring seq.
  void acknowledge(std::uint64_t ringSeq);

 private:
  void wakeWriter();

  RingMapping mapping_;
  int readerBell_;
  int writerBell_;
  std::uint64_t readPos_ = 0;
};

// Reads the keys of a record (RingRecord::keys(), keyBytes of them), one per
// frame in order, bounds-checked.
class RingKeys {
 public:
  explicit RingKeys(const RingRecord& record) : rest_(record.keys(), record.keyBytes) {}
  // The next frame's key ("": none); false if the keys end or are malformed here.
  bool next(std::string_view& key);
  bool done() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

// Bytes a record with `bytes` after its header takes in the ring.
std::size_t ringRecordSize(std::size_t bytes);

}  // namespace streamrelay
