// SPDX-License-Identifier: Apache-2.0
#pragma once
// ConfigReader: a built-in plugin's `config:` mapping, read key by key with
// one-line errors that name the key ("config.batch_frames: must be 1..1000000").
// Header-only, yaml-cpp; shared by the plugins that take a config.

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

namespace streamrelay::plugins {

class ConfigReader {
 public:
  // Throws std::invalid_argument if the text is not a mapping or has a key
  // outside `known`.
  ConfigReader(const std::string& yaml, std::vector<std::string> known) : known_(std::move(known)) {
    try {
      config_ = YAML::Load(yaml);
    } catch (const YAML::Exception& e) {
      throw std::invalid_argument("config: not YAML: " + e.msg);
    }
    if (!config_.IsMap() && !config_.IsNull()) throw std::invalid_argument("config: expected a mapping of keys");
    for (const auto& entry : config_) {
      const std::string key = entry.first.as<std::string>("?");
      if (std::find(known_.begin(), known_.end(), key) == known_.end()) {
        std::string list;
        for (const std::string& k : known_) list += (list.empty() ? "" : ", ") + k;
        fail(key, "unknown key (expected " + list + ")");
      }
    }
  }

  bool has(const char* key) const { return static_cast<bool>(config_[key]); }

  template <class T>
  T read(const char* key, T fallback) const {
    if (!config_[key]) return fallback;
    try {
      return config_[key].as<T>();
    } catch (const YAML::Exception&) {
      fail(key, "has the wrong type ('" + config_[key].as<std::string>("?") + "')");
    }
  }

  long long readInt(const char* key, long long fallback, long long min, long long max) const {
    const long long value = read<long long>(key, fallback);
    if (value < min || value > max) fail(key, "must be " + std::to_string(min) + ".." + std::to_string(max));
    return value;
  }

  [[noreturn]] static void fail(const std::string& key, const std::string& what) {
    throw std::invalid_argument("config." + key + ": " + what);
  }

 private:
  std::vector<std::string> known_;
  YAML::Node config_;
};

}  // namespace streamrelay::plugins
