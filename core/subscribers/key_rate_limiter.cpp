// SPDX-License-Identifier: Apache-2.0
#include "key_rate_limiter.hpp"

#include <algorithm>
#include <limits>

#include "streamrelay/wire.hpp"

namespace streamrelay {

namespace {

// Appends frame `i` of `span`'s batch to `out`, extending its last span when
// the frame follows it in the same batch with the same flags.
void appendFrame(std::deque<FrameSpan>& out, const FrameSpan& span, std::uint32_t i, std::uint16_t flags) {
  if (!out.empty() && out.back().batch == span.batch && out.back().end == i && out.back().flags == flags) {
    ++out.back().end;
    return;
  }
  out.push_back(FrameSpan{span.batch, i, i + 1, flags});
}

}  // namespace

KeyRateLimiter::KeyRateLimiter(std::chrono::milliseconds interval)
    : intervalNs_(std::chrono::duration_cast<std::chrono::nanoseconds>(interval).count()) {}

void KeyRateLimiter::send(KeyState& key, std::deque<FrameSpan>& out, std::int64_t nowNs) {
  const std::uint16_t flags = key.held.flags | (key.replaced > 0 ? wire::kFlagConflated : 0);
  appendFrame(out, key.held, key.held.first, flags);
  key.held = FrameSpan{};
  key.replaced = 0;
  key.intervalEndNs = nowNs + intervalNs_;
}

std::uint64_t KeyRateLimiter::admit(std::deque<FrameSpan>& taken, std::deque<FrameSpan>& out, std::int64_t nowNs) {
  if (keys_.size() >= pruneAt_) prune(nowNs);
  std::uint64_t skipped = 0;
  for (const FrameSpan& span : taken) {
    const FrameBatch& batch = *span.batch;
    for (std::uint32_t i = span.first; i < span.end; ++i) {
      if (!batch.hasKey(i)) {
        appendFrame(out, span, i, span.flags);
        continue;
      }
      const std::string_view name = batch.key(i);
      lookup_.assign(name.data(), name.size());
      KeyState& key = keys_[lookup_];
      if (!key.held.batch && nowNs >= key.intervalEndNs) {
        appendFrame(out, span, i, span.flags);
        key.intervalEndNs = nowNs + intervalNs_;
        continue;
      }
      if (key.held.batch) {
        ++key.replaced;
        ++skipped;
      } else {
        due_.push({key.intervalEndNs, holds_++, &key});
      }
      key.held = FrameSpan{span.batch, i, i + 1, span.flags};
    }
  }
  taken.clear();
  return skipped;
}

void KeyRateLimiter::release(std::deque<FrameSpan>& out, std::int64_t nowNs) {
  while (!due_.empty() && due_.top().ns <= nowNs) {
    KeyState& key = *due_.top().key;
    due_.pop();
    send(key, out, nowNs);
  }
}

void KeyRateLimiter::releaseAll(std::deque<FrameSpan>& out) {
  release(out, std::numeric_limits<std::int64_t>::max() - intervalNs_);
}

// Forgets keys whose interval is over and which hold nothing: the map holds
// the keys seen within the last interval, plus at most as many again before
// the next prune (amortised: a prune at least doubles the room).
void KeyRateLimiter::prune(std::int64_t nowNs) {
  for (auto it = keys_.begin(); it != keys_.end();) {
    if (!it->second.held.batch && it->second.intervalEndNs <= nowNs) it = keys_.erase(it);
    else ++it;
  }
  pruneAt_ = std::max<std::size_t>(1024, 2 * keys_.size());
}

}  // namespace streamrelay
