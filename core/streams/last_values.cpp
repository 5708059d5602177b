// SPDX-License-Identifier: Apache-2.0
#include "last_values.hpp"

#include <algorithm>

#include "streamrelay/wire.hpp"
#include "subject.hpp"

namespace streamrelay {

void LastValues::update(const FrameBatchPtr& batch) {
  if (!batch->keyed()) return;
  const auto count = static_cast<std::uint32_t>(batch->frameCount());
  for (std::uint32_t i = 0; i < count; ++i) {
    if (!batch->hasKey(i)) continue;
    const std::string_view key = batch->key(i);
    lookup_.assign(key.data(), key.size());
    auto found = byKey_.find(lookup_);
    if (found != byKey_.end()) {
      found->second.batch = batch;
      found->second.index = i;
      updated_.splice(updated_.end(), updated_, found->second.age);
      continue;
    }
    if (byKey_.size() >= maxKeys_) {
      byKey_.erase(updated_.front());
      updated_.pop_front();
      ++evictions_;
    }
    updated_.emplace_back(key);
    byKey_.emplace(updated_.back(), Entry{batch, i, std::prev(updated_.end())});
  }
}

std::vector<FrameSpan> LastValues::snapshot(const std::vector<std::string>& select, std::uint64_t beforeSeq) const {
  std::vector<const Entry*> chosen;
  for (const auto& item : byKey_) {
    const std::string& key = item.first;  // (a structured binding cannot be captured in C++17)
    const Entry& entry = item.second;
    if (entry.batch->seq(entry.index) >= beforeSeq) continue;
    if (!select.empty() && std::none_of(select.begin(), select.end(),
                                        [&](const std::string& p) { return subject::matches(p, key); }))
      continue;
    chosen.push_back(&entry);
  }
  std::sort(chosen.begin(), chosen.end(), [](const Entry* a, const Entry* b) {
    return a->batch->seq(a->index) < b->batch->seq(b->index);
  });
  std::vector<FrameSpan> spans;
  for (const Entry* e : chosen) {
    if (!spans.empty() && spans.back().batch == e->batch && spans.back().end == e->index) ++spans.back().end;
    else spans.push_back(FrameSpan{e->batch, e->index, e->index + 1, wire::kFlagSnapshot});
  }
  return spans;
}

}  // namespace streamrelay
