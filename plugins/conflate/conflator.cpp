// SPDX-License-Identifier: Apache-2.0
#include "conflator.hpp"

#include <yaml-cpp/yaml.h>

#include <stdexcept>

namespace streamrelay::plugins {

namespace {
[[noreturn]] void fail(const std::string& key, const std::string& what) {
  throw std::invalid_argument("config." + key + ": " + what);
}
}  // namespace

ConflateConfig parseConflateConfig(const std::string& yaml) {
  YAML::Node config = YAML::Load(yaml);
  if (!config.IsMap()) throw std::invalid_argument("config: expected a mapping with key, interval_ms, max_keys");
  for (const auto& entry : config) {
    const std::string key = entry.first.as<std::string>();
    if (key != "key" && key != "interval_ms" && key != "max_keys")
      fail(key, "unknown key (expected key, interval_ms, max_keys)");
  }
  ConflateConfig c;
  if (!config["key"]) fail("key", "is required (a JSON pointer such as /sym)");
  c.key = config["key"].as<std::string>();
  try {
    JsonPointer check(c.key);
  } catch (const std::invalid_argument& e) {
    fail("key", e.what());
  }
  try {
    long long interval = config["interval_ms"] ? config["interval_ms"].as<long long>() : 1000;
    long long maxKeys = config["max_keys"] ? config["max_keys"].as<long long>() : 10000;
    if (interval < 1 || interval > 3600000) fail("interval_ms", "must be 1..3600000");
    if (maxKeys < 1 || maxKeys > 10000000) fail("max_keys", "must be 1..10000000");
    c.interval = std::chrono::milliseconds(interval);
    c.maxKeys = static_cast<std::size_t>(maxKeys);
  } catch (const YAML::Exception&) {
    throw std::invalid_argument("config: interval_ms and max_keys are integers");
  }
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
