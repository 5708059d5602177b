// SPDX-License-Identifier: Apache-2.0
#include "key_counts.hpp"

#include <functional>
#include <string_view>

namespace streamrelay {

KeyCounts::KeyCounts(std::size_t maxDistinct) : maxDistinct_(maxDistinct), slots_(1024, 0) {}

void KeyCounts::count(const FrameBatch& batch) {
  std::uint64_t keyed = 0;
  const std::size_t count = batch.frameCount();
  for (std::size_t i = 0; i < count; ++i) {
    if (!batch.hasKey(i)) continue;
    ++keyed;
    see(std::hash<std::string_view>{}(batch.key(i)));
  }
  keyed_.fetch_add(keyed, std::memory_order_relaxed);
  withoutKey_.fetch_add(count - keyed, std::memory_order_relaxed);
}

void KeyCounts::see(std::uint64_t hash) {
  if (hash == 0) hash = 1;
  const std::size_t mask = slots_.size() - 1;
  // Fibonacci hashing spreads a weak hash's low bits over the table.
  for (std::size_t i = (hash * 0x9E3779B97F4A7C15ull) >> 20 & mask;; i = (i + 1) & mask) {
    if (slots_[i] == hash) return;
    if (slots_[i] != 0) continue;
    if (used_ == maxDistinct_) {
      capped_.store(true, std::memory_order_relaxed);
      return;
    }
    slots_[i] = hash;
    ++used_;
    distinct_.store(used_, std::memory_order_relaxed);
    if (2 * used_ > slots_.size()) grow();
    return;
  }
}

void KeyCounts::grow() {
  std::vector<std::uint64_t> old(slots_.size() * 2, 0);
  old.swap(slots_);
  used_ = 0;
  for (std::uint64_t hash : old)
    if (hash != 0) see(hash);
}

}  // namespace streamrelay
