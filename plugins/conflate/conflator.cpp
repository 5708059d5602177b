// SPDX-License-Identifier: Apache-2.0
#include "conflator.hpp"

#include <stdexcept>

#include "common/config_reader.hpp"

namespace streamrelay::plugins {

const ConfigKeys& conflateConfigKeys() {
  static const ConfigKeys keys{
      stringKey("key").needed().doc("a JSON pointer to each frame's key, such as /sym"),
      intKey("interval_ms", 1000, 1, 3600000).doc("at most one frame per key per interval"),
      intKey("max_keys", 10000, 1, 10000000).doc("keys held at most; a new one beyond evicts the oldest"),
  };
  return keys;
}

ConflateConfig parseConflateConfig(const std::string& yaml) {
  const ConfigReader config(yaml, conflateConfigKeys());
  ConflateConfig c;
  c.key = config.string("key");
  try {
    JsonPointer check(c.key);
  } catch (const std::invalid_argument& e) {
    ConfigReader::fail("key", e.what());
  }
  c.interval = std::chrono::milliseconds(config.integer("interval_ms"));
  c.maxKeys = static_cast<std::size_t>(config.integer("max_keys"));
  return c;
}

Conflator::Conflator(const ConflateConfig& config) : config_(config), pointer_(config.key) {}

Conflator::Taken Conflator::take(std::string_view payload) {
  std::optional<Poco::Dynamic::Var> root = parseJson(payload);
  if (!root) return Taken::Unparsable;
  std::optional<Poco::Dynamic::Var> value = pointer_.resolve(*root);
  std::optional<std::string> key = value ? scalarText(*value) : std::nullopt;
  if (!key) return Taken::NoKey;
  auto found = index_.find(*key);
  if (found == index_.end()) {
    if (index_.size() >= config_.maxKeys) {  // the oldest key makes room
      index_.erase(entries_.front().key);
      entries_.pop_front();
      ++evicted_;
    }
    entries_.push_back(Entry{*key, {}, false, {}});
    found = index_.emplace(*key, std::prev(entries_.end())).first;
  }
  Entry& entry = *found->second;
  entry.latest.assign(payload.data(), payload.size());
  entry.pending = true;
  return Taken::Kept;
}

void Conflator::release(Clock::time_point now, const std::function<void(std::string_view)>& emit) {
  for (Entry& entry : entries_) {
    if (!entry.pending || now - entry.lastEmit < config_.interval) continue;
    emit(entry.latest);
    entry.pending = false;
    entry.lastEmit = now;
  }
}

}  // namespace streamrelay::plugins
