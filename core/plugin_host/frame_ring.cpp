// SPDX-License-Identifier: Apache-2.0
#include "frame_ring.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "streamrelay/plugin.h"

namespace streamrelay {

namespace {

constexpr std::size_t kControlBytes = 4096;
constexpr std::size_t kMinCapacity = 64 * 1024;
// A FramePart smaller than this waits for more room, unless it ends its frame:
// a large frame goes out in few pieces.
constexpr std::size_t kMinPartBytes = 16 * 1024;

static_assert(sizeof(RingControl) <= kControlBytes, "the control block fits its page");
static_assert(sizeof(RingRecord) % 8 == 0, "records stay 8-byte aligned");

std::runtime_error systemError(const std::string& what) {
  return std::runtime_error(what + ": " + std::strerror(errno));
}

std::size_t roundUpToPowerOfTwo(std::size_t n) {
  std::size_t p = kMinCapacity;
  while (p < n) p <<= 1;
  return p;
}

void ringBell(int fd) {
  const std::uint64_t one = 1;
  // EAGAIN: the counter is full, so the bell is already rung.
  while (::write(fd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

void silenceBell(int fd) {
  std::uint64_t count = 0;
  while (::read(fd, &count, sizeof count) < 0 && errno == EINTR) {
  }
}

void waitForBell(int fd, int timeoutMs) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, timeoutMs) > 0) silenceBell(fd);
}

// A frame's key in a record: a u16 size (0: none), then the key.
std::size_t keyEntryBytes(std::string_view key) { return sizeof(std::uint16_t) + key.size(); }

// Keys are at most STREAMRELAY_MAX_KEY_SIZE where they are made (emit_keyed,
// the streams' key rules); the reader refuses a longer one.
char* putKeyEntry(char* at, std::string_view key) {
  assert(key.size() <= STREAMRELAY_MAX_KEY_SIZE);
  const auto size = static_cast<std::uint16_t>(key.size());
  std::memcpy(at, &size, sizeof size);
  if (!key.empty()) std::memcpy(at + sizeof size, key.data(), key.size());  // an empty view's data() may be null
  return at + sizeof size + key.size();
}

}  // namespace

bool RingKeys::next(std::string_view& key) {
  std::uint16_t size = 0;
  if (rest_.size() < sizeof size) return false;
  std::memcpy(&size, rest_.data(), sizeof size);
  if (size > STREAMRELAY_MAX_KEY_SIZE || rest_.size() - sizeof size < size) return false;
  key = rest_.substr(sizeof size, size);
  rest_.remove_prefix(sizeof size + size);
  return true;
}

std::size_t ringRecordSize(std::size_t bytes) { return (sizeof(RingRecord) + bytes + 7) & ~std::size_t{7}; }

RingMapping::RingMapping(int memfd, std::size_t capacity, bool writable) : capacity_(capacity) {
  void* control = ::mmap(nullptr, kControlBytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  if (control == MAP_FAILED) throw systemError("cannot map the frame ring's control page");
  control_ = static_cast<RingControl*>(control);
  void* space = ::mmap(nullptr, 2 * capacity_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (space == MAP_FAILED) {
    ::munmap(control, kControlBytes);
    throw systemError("cannot reserve address space for the frame ring");
  }
  records_ = static_cast<char*>(space);
  const int protection = writable ? PROT_READ | PROT_WRITE : PROT_READ;
  for (int copy = 0; copy < 2; ++copy) {
    if (::mmap(records_ + copy * capacity_, capacity_, protection, MAP_SHARED | MAP_FIXED, memfd, kControlBytes) ==
        MAP_FAILED) {
      const std::runtime_error error = systemError("cannot map the frame ring");
      ::munmap(records_, 2 * capacity_);
      ::munmap(control, kControlBytes);
      throw error;
    }
  }
}

RingMapping::~RingMapping() {
  ::munmap(records_, 2 * capacity_);
  ::munmap(control_, kControlBytes);
}

namespace {
int createMemory(std::size_t capacity) {
  const int fd = ::memfd_create("streamrelay-frame-ring", MFD_CLOEXEC);
  if (fd < 0) throw systemError("cannot create the frame ring (memfd_create)");
  if (::ftruncate(fd, static_cast<off_t>(kControlBytes + capacity)) != 0) {
    const std::runtime_error error = systemError("cannot size the frame ring");
    ::close(fd);
    throw error;
  }
  return fd;
}

int createBell() {
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) throw systemError("cannot create an eventfd for the frame ring");
  return fd;
}
}  // namespace

FrameRingWriter::FrameRingWriter(std::size_t capacity)
    : memfd_(createMemory(roundUpToPowerOfTwo(capacity))),
      readerBell_(createBell()),
      writerBell_(createBell()),
      mapping_(memfd_, roundUpToPowerOfTwo(capacity), true) {
  reset(0);
}

FrameRingWriter::~FrameRingWriter() {
  ::close(memfd_);
  ::close(readerBell_);
  ::close(writerBell_);
}

void FrameRingWriter::reset(std::uint64_t acked) {
  RingControl& c = mapping_.control();
  writePos_ = readPosSeen_ = 0;
  c.writePos.store(0);
  c.readPos.store(0);
  c.acked.store(acked);
  c.readerSleeping.store(0);
  c.writerSleeping.store(0);
  silenceBell(readerBell_);
  silenceBell(writerBell_);
}

std::size_t FrameRingWriter::freeBytes() const { return capacity() - (writePos_ - readPosSeen_); }

bool FrameRingWriter::write(Cursor& cursor) {
  // The reader's position, clamped: a child that writes nonsense there only
  // spoils its own frames.
  const std::uint64_t readPos = mapping_.control().readPos.load(std::memory_order_acquire);
  if (readPos > readPosSeen_ && readPos <= writePos_) readPosSeen_ = readPos;
  const FrameBatch& batch = *cursor.span.batch;
  const std::size_t maxBytes = capacity() / 2 - sizeof(RingRecord);  // after the header
  const std::size_t room = std::min(freeBytes(), capacity() / 2);
  if (room <= sizeof(RingRecord)) return false;
  RingRecord header{};
  header.input = cursor.input;
  header.ringSeq = cursor.ringSeq;
  header.streamSeq = batch.seq(cursor.span.first);
  header.epoch = batch.stream() ? batch.stream()->epoch : 0;
  header.receivedUnixNs = batch.receivedUnixNs();
  const bool keyed = batch.keyed();
  const std::size_t firstKey = keyed ? keyEntryBytes(batch.key(cursor.span.first)) : 0;
  const std::size_t firstWire = batch.wireBytes(cursor.span.first, cursor.span.first + 1);
  const char* bytes = nullptr;
  std::size_t frameBytes = 0;
  if (cursor.partOffset == 0 && firstWire + firstKey <= maxBytes) {
    std::uint32_t frames = 0;
    std::size_t wire = 0, keys = 0;
    for (std::uint32_t i = cursor.span.first; i < cursor.span.end; ++i) {
      const std::size_t next = wire + kWireHeaderBytes + batch.payload(i).size();
      const std::size_t nextKeys = keyed ? keys + keyEntryBytes(batch.key(i)) : 0;
      if (ringRecordSize(next + nextKeys) > room) break;
      wire = next;
      keys = nextKeys;
      ++frames;
    }
    if (frames == 0) return false;
    header.kind = RingRecord::kSpan;
    header.frames = frames;
    header.keyBytes = static_cast<std::uint32_t>(keys);
    frameBytes = wire;
    bytes = batch.wireBegin(cursor.span.first);
  } else {
    const std::string_view payload = batch.payload(cursor.span.first);
    const std::size_t keyEntry = cursor.partOffset == 0 ? firstKey : 0;  // the key goes with the first piece
    const std::size_t space = std::min(maxBytes, (room - sizeof(RingRecord)) & ~std::size_t{7});
    if (space <= keyEntry) return false;
    const std::size_t left = payload.size() - cursor.partOffset;
    const std::size_t piece = std::min(left, space - keyEntry);
    if (piece < left && piece < kMinPartBytes) return false;
    header.kind = RingRecord::kFramePart;
    header.frames = 1;
    header.keyBytes = static_cast<std::uint32_t>(keyEntry);
    header.last = piece == left ? 1 : 0;
    frameBytes = piece;
    bytes = payload.data() + cursor.partOffset;
  }
  header.bytes = static_cast<std::uint32_t>(frameBytes + header.keyBytes);
  char* at = mapping_.at(writePos_);
  std::memcpy(at, &header, sizeof header);
  std::memcpy(at + sizeof header, bytes, frameBytes);
  if (header.keyBytes > 0) {
    char* key = at + sizeof header + frameBytes;
    for (std::uint32_t i = cursor.span.first; i < cursor.span.first + header.frames; ++i)
      key = putKeyEntry(key, batch.key(i));
  }
  writePos_ += ringRecordSize(header.bytes);
  if (header.kind == RingRecord::kFramePart && !header.last) {
    cursor.partOffset += frameBytes;
  } else {
    cursor.partOffset = 0;
    cursor.span.first += header.frames;
    cursor.ringSeq += header.frames;
  }
  return true;
}

void FrameRingWriter::publish() {
  RingControl& c = mapping_.control();
  c.writePos.store(writePos_, std::memory_order_release);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (c.readerSleeping.load(std::memory_order_relaxed)) ringBell(readerBell_);
}

bool FrameRingWriter::readerProgress(std::uint64_t written, std::uint64_t& acked) {
  const RingControl& c = mapping_.control();
  const std::uint64_t readPos = c.readPos.load(std::memory_order_acquire);
  const std::uint64_t ack = c.acked.load(std::memory_order_acquire);
  if (readPos < readPosSeen_ || readPos > writePos_ || ack < acked || ack > written) return false;
  readPosSeen_ = readPos;
  acked = ack;
  return true;
}

bool FrameRingWriter::prepareToSleep() {
  RingControl& c = mapping_.control();
  c.writerSleeping.store(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (c.readPos.load(std::memory_order_relaxed) != readPosSeen_) {
    c.writerSleeping.store(0, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void FrameRingWriter::wokeUp() {
  mapping_.control().writerSleeping.store(0, std::memory_order_relaxed);
  silenceBell(writerBell_);
}

FrameRingReader::FrameRingReader(int memfd, std::size_t capacity, int readerBell, int writerBell)
    : mapping_(memfd, capacity, false), readerBell_(readerBell), writerBell_(writerBell) {
  readPos_ = mapping_.control().readPos.load();
}

const RingRecord* FrameRingReader::next() {
  const std::uint64_t writePos = mapping_.control().writePos.load(std::memory_order_acquire);
  if (writePos == readPos_) return nullptr;
  const auto* record = reinterpret_cast<const RingRecord*>(mapping_.at(readPos_));
  // The relay wrote it; a record that does not fit what was written is a bug
  // on that side, and reading on would read garbage.
  if (record->bytes > mapping_.capacity() / 2 || readPos_ + ringRecordSize(record->bytes) > writePos ||
      record->keyBytes > record->bytes ||
      (record->kind != RingRecord::kSpan && record->kind != RingRecord::kFramePart))
    throw std::runtime_error("the frame ring holds a malformed record");
  return record;
}

void FrameRingReader::consume(const RingRecord* record) {
  readPos_ += ringRecordSize(record->bytes);
  mapping_.control().readPos.store(readPos_, std::memory_order_release);
  wakeWriter();
}

void FrameRingReader::wait(int timeoutMs) {
  RingControl& c = mapping_.control();
  c.readerSleeping.store(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (c.writePos.load(std::memory_order_relaxed) == readPos_) waitForBell(readerBell_, timeoutMs);
  c.readerSleeping.store(0, std::memory_order_relaxed);
}

void FrameRingReader::ring() { ringBell(readerBell_); }

// No bell: the writer waits for room (readPos), never for acknowledgements,
// which it reads on its next turn. A sink acknowledges every frame: ringing
// here would cost a system call per frame while the writer waits for room.
void FrameRingReader::acknowledge(std::uint64_t ringSeq) {
  mapping_.control().acked.store(ringSeq, std::memory_order_release);
}

void FrameRingReader::wakeWriter() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (mapping_.control().writerSleeping.load(std::memory_order_relaxed)) ringBell(writerBell_);
}

}  // namespace streamrelay
