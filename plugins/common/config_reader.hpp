// SPDX-License-Identifier: Apache-2.0
#pragma once
// ConfigReader: a built-in plugin's `config:` mapping, read by the keys the
// plugin declares (streamrelay::ConfigKeys, plugin.hpp) with the rules of the
// relay's config registry (core/config/schema.hpp): unknown keys, values of
// the wrong kind, values out of range or not among the choices, and missing
// required keys are errors of one line naming the key, in the relay's words
// ("config.batch_frames: 0 is out of range 1..1000000"). Defaults come from
// the declaration; ${NAME} expands where a key says so.
//
// The same declaration is the descriptor's config_keys table: the relay
// checks (--check-config), prints (secrets as "(set)") and lists
// (--list-keys) a plugin's config by it without running the plugin. A unit
// test holds the two readings to the same verdicts.
//
// Errors never echo the value of a key declared secret. Header-only
// (yaml-cpp). Not thread safe; read once, in the plugin's constructor.

#include <streamrelay/plugin.hpp>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace streamrelay::plugins {

class ConfigReader {
 public:
  // Throws std::invalid_argument ("config.KEY: what is wrong") on anything
  // the declared keys do not allow.
  ConfigReader(const std::string& yaml, const ConfigKeys& keys) : keys_(keys) {
    try {
      config_ = YAML::Load(yaml);
    } catch (const YAML::Exception& e) {
      throw std::invalid_argument("config: not YAML: " + e.msg);
    }
    if (config_.IsDefined() && !config_.IsNull() && !config_.IsMap())
      throw std::invalid_argument("config: expected a mapping of keys");
    checkMapping(config_, "");
  }

  // Written in the config (not null), as opposed to its default.
  bool given(const std::string& key) const { return present(node(key)); }

  std::string string(const std::string& key) const {
    const ConfigKey& k = declared(key, STREAMRELAY_KEY_STRING);
    const YAML::Node n = node(key);
    return expanded(k, present(n) ? n.Scalar() : k.fallback);
  }
  long long integer(const std::string& key) const {
    const ConfigKey& k = declared(key, STREAMRELAY_KEY_INT);
    const YAML::Node n = node(key);
    return present(n) ? parseInt(k, n.Scalar()) : std::stoll(k.hasFallback ? k.fallback : "0");
  }
  double number(const std::string& key) const {
    const ConfigKey& k = declared(key, STREAMRELAY_KEY_NUMBER);
    const YAML::Node n = node(key);
    return present(n) ? parseNumber(k, n.Scalar()) : std::stod(k.hasFallback ? k.fallback : "0");
  }
  bool boolean(const std::string& key) const {
    const ConfigKey& k = declared(key, STREAMRELAY_KEY_BOOL);
    const YAML::Node n = node(key);
    return present(n) ? parseBool(k, n.Scalar()) : k.fallback == "true";
  }
  std::vector<std::string> strings(const std::string& key) const {
    const ConfigKey& k = declared(key, STREAMRELAY_KEY_STRINGS);
    std::vector<std::string> out;
    const YAML::Node n = node(key);
    if (present(n))
      for (const YAML::Node& item : n) out.push_back(expanded(k, item.Scalar()));
    return out;
  }
  std::vector<std::pair<std::string, std::string>> map(const std::string& key) const {
    const ConfigKey& k = declared(key, STREAMRELAY_KEY_MAP);
    std::vector<std::pair<std::string, std::string>> out;
    const YAML::Node n = node(key);
    if (present(n))
      for (const auto& entry : n) out.emplace_back(entry.first.Scalar(), expanded(k, entry.second.Scalar()));
    return out;
  }

  [[noreturn]] static void fail(const std::string& key, const std::string& what) {
    throw std::invalid_argument("config." + key + ": " + what);
  }

 private:
  static bool present(const YAML::Node& n) { return n.IsDefined() && !n.IsNull(); }
  static std::string join(const std::vector<std::string>& names) {
    std::string text;
    for (const std::string& name : names) text += (text.empty() ? "" : ", ") + name;
    return text;
  }
  static std::vector<std::string> split(const std::string& text) {
    std::vector<std::string> parts(1);
    for (char c : text) {
      if (c == '|') parts.emplace_back();
      else parts.back() += c;
    }
    return parts;
  }
  // The value as an error may quote it: never a secret's.
  static std::string quoted(const ConfigKey& k, const std::string& text) {
    return k.has(STREAMRELAY_KEY_SECRET) ? "" : " '" + text + "'";
  }

  // The node of a declared key ("tls.ca_file": ca_file inside tls);
  // undefined if absent. Looked up through const nodes only: yaml-cpp's
  // non-const operator[] would insert, and assigning a node assigns its value.
  YAML::Node node(const std::string& key) const {
    YAML::Node at;
    at.reset(config_);
    std::size_t from = 0;
    for (std::size_t dot = key.find('.'); ; dot = key.find('.', from)) {
      const YAML::Node& parent = at;
      if (!parent.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
      const YAML::Node child = parent[key.substr(from, dot == std::string::npos ? std::string::npos : dot - from)];
      if (!child.IsDefined()) return YAML::Node(YAML::NodeType::Undefined);
      at.reset(child);
      if (dot == std::string::npos) return at;
      from = dot + 1;
    }
  }

  const ConfigKey& declared(const std::string& key, std::uint32_t kind) const {
    const ConfigKey* k = keys_.find(key);
    if (!k || k->kind != kind) throw std::logic_error("config key " + key + " is not declared with this kind");
    return *k;
  }

  // The keys declared directly inside `group` ("" for the top level).
  std::vector<const ConfigKey*> membersOf(const std::string& group) const {
    std::vector<const ConfigKey*> members;
    for (const ConfigKey& k : keys_.keys()) {
      const std::size_t dot = k.name.rfind('.');
      if ((dot == std::string::npos ? std::string() : k.name.substr(0, dot)) == group) members.push_back(&k);
    }
    return members;
  }

  void checkMapping(const YAML::Node& mapping, const std::string& group) const {
    const std::vector<const ConfigKey*> members = membersOf(group);
    const std::string prefix = group.empty() ? "" : group + ".";
    if (present(mapping)) {
      for (const auto& entry : mapping) {
        if (!entry.first.IsScalar()) fail(group.empty() ? "?" : group, "a key must be a plain name, not a list or mapping");
        const std::string name = entry.first.Scalar();
        bool known = false;
        for (const ConfigKey* k : members) known = known || k->name == prefix + name;
        if (known) continue;
        std::vector<std::string> expected;
        for (const ConfigKey* k : members) expected.push_back(k->name.substr(prefix.size()));
        fail(prefix + name, "unknown key (expected one of: " + join(expected) + ")");
      }
    }
    for (const ConfigKey* k : members) checkValue(*k, present(mapping) ? mapping[k->name.substr(prefix.size())] : YAML::Node());
  }

  void checkValue(const ConfigKey& k, const YAML::Node& n) const {
    if (!present(n)) {
      if (k.has(STREAMRELAY_KEY_REQUIRED)) {
        const std::size_t dot = k.name.rfind('.');
        throw std::invalid_argument((dot == std::string::npos ? "config" : "config." + k.name.substr(0, dot)) +
                                    ": missing required key '" + k.name.substr(dot + 1) + "'");
      }
      if (k.kind == STREAMRELAY_KEY_GROUP) checkMapping(YAML::Node(), k.name);  // its own required keys
      return;
    }
    switch (k.kind) {
      case STREAMRELAY_KEY_STRING: {
        const std::string text = expanded(k, scalar(k, n));
        if (!k.choices.empty()) {
          const std::vector<std::string> choices = split(k.choices);
          bool known = false;
          for (const std::string& c : choices) known = known || c == text;
          if (!known) fail(k.name, "'" + text + "' is not one of: " + join(choices));
        }
        break;
      }
      case STREAMRELAY_KEY_INT: parseInt(k, scalar(k, n)); break;
      case STREAMRELAY_KEY_NUMBER: parseNumber(k, scalar(k, n)); break;
      case STREAMRELAY_KEY_BOOL: parseBool(k, scalar(k, n)); break;
      case STREAMRELAY_KEY_STRINGS:
        if (!n.IsSequence()) fail(k.name, "expected a list");
        for (const YAML::Node& item : n) {
          if (!item.IsScalar()) fail(k.name, "expected a list of strings");
          expanded(k, item.Scalar());
        }
        break;
      case STREAMRELAY_KEY_MAP:
        if (!n.IsMap()) fail(k.name, "expected a mapping of keys");
        for (const auto& entry : n) {
          if (!entry.second.IsScalar()) fail(k.name + "." + entry.first.as<std::string>("?"), "expected a single value, not a list or mapping");
          expanded(k, entry.second.Scalar());
        }
        break;
      case STREAMRELAY_KEY_GROUP:
        if (!n.IsMap()) fail(k.name, "expected a mapping of keys");
        checkMapping(n, k.name);
        break;
      default: break;
    }
  }

  static std::string scalar(const ConfigKey& k, const YAML::Node& n) {
    if (!n.IsScalar()) fail(k.name, "expected a single value, not a list or mapping");
    return n.Scalar();
  }

  static long long parseInt(const ConfigKey& k, const std::string& text) {
    long long value = 0;
    try {
      std::size_t used = 0;
      value = std::stoll(text, &used, 10);
      if (used != text.size()) throw std::invalid_argument(text);
    } catch (const std::exception&) {
      fail(k.name, "expected an integer, got" + quoted(k, text));
    }
    if (k.min != 0 || k.max != 0)
      if (static_cast<double>(value) < k.min || static_cast<double>(value) > k.max)
        fail(k.name, std::to_string(value) + " is out of range " + std::to_string(static_cast<long long>(k.min)) +
                         ".." + std::to_string(static_cast<long long>(k.max)));
    return value;
  }

  static double parseNumber(const ConfigKey& k, const std::string& text) {
    double value = 0;
    try {
      std::size_t used = 0;
      value = std::stod(text, &used);
      if (used != text.size() || !std::isfinite(value)) throw std::invalid_argument(text);
    } catch (const std::exception&) {
      fail(k.name, "expected a number, got" + quoted(k, text));
    }
    if ((k.min != 0 || k.max != 0) && (value < k.min || value > k.max))
      fail(k.name, text + " is out of range " + std::to_string(k.min) + ".." + std::to_string(k.max));
    return value;
  }

  static bool parseBool(const ConfigKey& k, const std::string& text) {
    if (text == "true" || text == "yes" || text == "on") return true;
    if (text == "false" || text == "no" || text == "off") return false;
    fail(k.name, "expected true or false, got" + quoted(k, text));
  }

  // ${NAME} from the environment where the key says so; unset is an error.
  static std::string expanded(const ConfigKey& k, const std::string& text) {
    if (!k.has(STREAMRELAY_KEY_ENV)) return text;
    std::string out;
    for (std::size_t i = 0; i < text.size();) {
      if (text.compare(i, 2, "${") != 0) {
        out += text[i++];
        continue;
      }
      const std::size_t close = text.find('}', i);
      if (close == std::string::npos) fail(k.name, "unterminated ${ in" + quoted(k, text));
      const std::string name = text.substr(i + 2, close - i - 2);
      const char* value = std::getenv(name.c_str());
      if (!value) fail(k.name, "environment variable " + name + " is not set");
      out += value;
      i = close + 1;
    }
    return out;
  }

  const ConfigKeys& keys_;
  YAML::Node config_;
};

}  // namespace streamrelay::plugins
