// SPDX-License-Identifier: Apache-2.0
#pragma once
// ConfigReader: a built-in plugin's `config:` mapping, read key by key with
// one-line errors that name the key ("config.batch_frames: must be 1..1000000").
// Header-only, yaml-cpp; shared by the plugins that take a config.
//
// Each plugin declares its keys, and which of them hold a secret: the relay
// prints a plugin's config (--check-config) masked by one rule of its own
// (core/config/secret_mask.hpp: keys named password, token, ...; the userinfo
// of URLs), and a unit test checks that the rule masks every key declared
// here as secret, and no other. Errors never echo such a key's value.

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

namespace streamrelay::plugins {

struct ConfigKey {
  enum class Holds {
    Value,   // nothing secret
    Secret,  // the value is a secret (a password, a token)
    Url,     // a URL, or a list of them, whose userinfo may be a secret (redis://:PASSWORD@host)
  };
  ConfigKey(const char* keyName, Holds what = Holds::Value) : name(keyName), holds(what) {}  // NOLINT: a plain key by name
  std::string name;
  Holds holds;
};

inline ConfigKey secretKey(const char* name) { return {name, ConfigKey::Holds::Secret}; }
inline ConfigKey urlKey(const char* name) { return {name, ConfigKey::Holds::Url}; }

class ConfigReader {
 public:
  // Throws std::invalid_argument if the text is not a mapping or has a key
  // outside `keys`.
  ConfigReader(const std::string& yaml, std::vector<ConfigKey> keys) : keys_(std::move(keys)) {
    try {
      config_ = YAML::Load(yaml);
    } catch (const YAML::Exception& e) {
      throw std::invalid_argument("config: not YAML: " + e.msg);
    }
    if (!config_.IsMap() && !config_.IsNull()) throw std::invalid_argument("config: expected a mapping of keys");
    for (const auto& entry : config_) {
      const std::string key = entry.first.as<std::string>("?");
      if (!find(key)) {
        std::string list;
        for (const ConfigKey& k : keys_) list += (list.empty() ? "" : ", ") + k.name;
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
      const ConfigKey* k = find(key);
      if (k && k->holds != ConfigKey::Holds::Value) fail(key, "has the wrong type");
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
  const ConfigKey* find(const std::string& key) const {
    auto it = std::find_if(keys_.begin(), keys_.end(), [&](const ConfigKey& k) { return k.name == key; });
    return it == keys_.end() ? nullptr : &*it;
  }

  std::vector<ConfigKey> keys_;
  YAML::Node config_;
};

}  // namespace streamrelay::plugins
