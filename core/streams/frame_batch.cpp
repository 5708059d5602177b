// SPDX-License-Identifier: Apache-2.0
#include "frame_batch.hpp"

#include <cassert>
#include <chrono>
#include <cstring>
#include <random>

namespace streamrelay {

namespace {
void putBigEndian32(char* out, std::uint32_t v) {
  out[0] = static_cast<char>(v >> 24);
  out[1] = static_cast<char>(v >> 16);
  out[2] = static_cast<char>(v >> 8);
  out[3] = static_cast<char>(v);
}
}  // namespace

FrameBatch::FrameBatch(std::vector<char> bytes, std::vector<Record> records, std::int64_t receivedUnixNs,
                       std::int64_t receivedSteadyNs)
    : bytes_(std::move(bytes)),
      records_(std::move(records)),
      receivedUnixNs_(receivedUnixNs),
      receivedSteadyNs_(receivedSteadyNs) {}

FrameBatch::~FrameBatch() {
  for (const BatchAnnex* a = annexes_.load(std::memory_order_acquire); a;) {
    const BatchAnnex* next = a->next_;
    delete a;
    a = next;
  }
}

const BatchAnnex* FrameBatch::annex(std::uint64_t key) const {
  for (const BatchAnnex* a = annexes_.load(std::memory_order_acquire); a; a = a->next_)
    if (a->key_ == key) return a;
  return nullptr;
}

const BatchAnnex& FrameBatch::addAnnex(std::uint64_t key, std::unique_ptr<BatchAnnex> annex) const {
  annex->key_ = key;
  const BatchAnnex* head = annexes_.load(std::memory_order_acquire);
  for (;;) {
    for (const BatchAnnex* a = head; a; a = a->next_)
      if (a->key_ == key) return *a;  // built meanwhile by another consumer: ours goes
    annex->next_ = head;
    if (annexes_.compare_exchange_weak(head, annex.get(), std::memory_order_acq_rel, std::memory_order_acquire))
      return *annex.release();
  }
}

std::uint64_t FrameBatch::newAnnexKey() {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

void FrameBatchBuilder::add(const char* payload, std::size_t size) {
  beginFrame();
  appendToFrame(payload, size);
  endFrame();
}

void FrameBatchBuilder::add(const char* payload, std::size_t size, std::string_view key) {
  if (key.empty()) return add(payload, size);
  while (keys_.size() < records_.size()) keys_.addNone();  // the frames before the first key
  keys_.add(key);
  add(payload, size);
}

void FrameBatchBuilder::beginFrame() {
  assert(!inFrame_);
  inFrame_ = true;
  frameStart_ = bytes_.size();
  bytes_.insert(bytes_.end(), kWireHeaderBytes, '\0');
}

void FrameBatchBuilder::appendToFrame(const char* data, std::size_t size) {
  assert(inFrame_);
  bytes_.insert(bytes_.end(), data, data + size);
}

void FrameBatchBuilder::endFrame() {
  assert(inFrame_);
  inFrame_ = false;
  auto size = static_cast<std::uint32_t>(bytes_.size() - frameStart_ - kWireHeaderBytes);
  putBigEndian32(bytes_.data() + frameStart_, size);
  records_.push_back({static_cast<std::uint32_t>(frameStart_), size});
  if (keys_.size() != 0 && keys_.size() < records_.size()) keys_.addNone();
}

void FrameBatchBuilder::truncateFrame(std::size_t size) {
  assert(inFrame_ && bytes_.size() - frameStart_ - kWireHeaderBytes >= size);
  bytes_.resize(bytes_.size() - size);
}

void FrameBatchBuilder::abandonFrame() {
  if (!inFrame_) return;
  bytes_.resize(frameStart_);
  inFrame_ = false;
}

std::unique_ptr<FrameBatch> FrameBatchBuilder::seal(std::int64_t receivedUnixNs, std::int64_t receivedSteadyNs) {
  std::vector<char> partial;
  if (inFrame_) {
    partial.assign(bytes_.begin() + static_cast<std::ptrdiff_t>(frameStart_), bytes_.end());
    bytes_.resize(frameStart_);
  }
  auto batch = std::make_unique<FrameBatch>(std::move(bytes_), std::move(records_), receivedUnixNs,
                                            receivedSteadyNs);
  if (keys_.size() != 0) {
    batch->setKeys(std::move(keys_));
    keys_.clear();
  }
  bytes_ = std::move(partial);
  records_.clear();
  frameStart_ = 0;
  return batch;
}

std::int64_t unixNowNs() {
  using namespace std::chrono;
  return duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count();
}

std::int64_t steadyNowNs() {
  using namespace std::chrono;
  return duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count();
}

std::uint64_t newEpoch() {
  std::random_device random;
  std::uint64_t epoch = 0;
  while (epoch == 0) epoch = (std::uint64_t{random()} << 32) ^ random();
  return epoch;
}

}  // namespace streamrelay
