// SPDX-License-Identifier: Apache-2.0
#include "yaml_map.hpp"

#include <cmath>
#include <cstring>

namespace streamrelay {

namespace {
std::string lineOf(const YAML::Node& node) {
  return node.Mark().line >= 0 ? std::to_string(node.Mark().line + 1) : "?";
}
}  // namespace

YamlMap::YamlMap(YAML::Node node, std::string path, std::string source)
    : node_(std::move(node)), path_(std::move(path)), source_(std::move(source)) {
  if (node_.IsDefined() && !node_.IsNull() && !node_.IsMap())
    throw ConfigError(source_ + ":" + lineOf(node_) + ": " + (path_.empty() ? "(top level)" : path_) +
                      ": expected a mapping of keys");
}

std::string YamlMap::path(const char* key) const { return path_.empty() ? key : path_ + "." + key; }

// The line of the key itself: its value may start on a later line (a mapping
// or list under it), and the error names the key.
std::string YamlMap::where(const char* key) const {
  if (node_.IsMap())
    for (const auto& entry : node_)
      if (entry.first.IsScalar() && entry.first.Scalar() == key) return source_ + ":" + lineOf(entry.first);
  return source_ + ":" + lineOf(node_);
}

void YamlMap::fail(const char* key, const std::string& what) const {
  throw ConfigError(where(key) + ": " + path(key) + ": " + what);
}

void YamlMap::failHere(const std::string& what) const {
  throw ConfigError(source_ + ":" + lineOf(node_) + ": " + path_ + ": " + what);
}

void YamlMap::allowOnly(std::initializer_list<const char*> keys) const {
  if (!node_.IsMap()) return;
  for (const auto& entry : node_) {
    if (!entry.first.IsScalar())
      throw ConfigError(source_ + ":" + lineOf(entry.first) + ": " + (path_.empty() ? "(top level)" : path_) +
                        ": a key must be a plain name, not a list or mapping");
    auto name = entry.first.as<std::string>();
    bool known = false;
    for (const char* k : keys) known = known || name == k;
    if (!known) {
      std::string list;
      for (const char* k : keys) list += (list.empty() ? "" : ", ") + std::string(k);
      throw ConfigError(source_ + ":" + lineOf(entry.first) + ": " + path(name.c_str()) +
                        ": unknown key (expected one of: " + list + ")");
    }
  }
}

std::vector<std::string> YamlMap::keys() const {
  std::vector<std::string> names;
  if (!node_.IsMap()) return names;
  for (const auto& entry : node_) {
    if (!entry.first.IsScalar())
      throw ConfigError(source_ + ":" + lineOf(entry.first) + ": " + (path_.empty() ? "(top level)" : path_) +
                        ": a key must be a plain name, not a list or mapping");
    names.push_back(entry.first.as<std::string>());
  }
  return names;
}

bool YamlMap::has(const char* key) const {
  return node_.IsMap() && node_[key].IsDefined() && !node_[key].IsNull();
}

YAML::Node YamlMap::scalar(const char* key) const {
  YAML::Node n = node_[key];
  if (!n.IsScalar()) fail(key, "expected a single value, not a list or mapping");
  return n;
}

std::string YamlMap::getString(const char* key, const std::string& fallback) const {
  return has(key) ? scalar(key).as<std::string>() : fallback;
}

std::string YamlMap::requireString(const char* key) const {
  if (!has(key)) failHere("missing required key '" + std::string(key) + "'");
  return getString(key, "");
}

std::int64_t YamlMap::getInt(const char* key, std::int64_t fallback, std::int64_t min, std::int64_t max) const {
  if (!has(key)) return fallback;
  std::string text = scalar(key).as<std::string>();
  std::int64_t value;
  try {
    std::size_t used = 0;
    value = std::stoll(text, &used, 10);
    if (used != text.size()) throw std::invalid_argument(text);
  } catch (const std::exception&) {
    fail(key, "expected an integer, got '" + text + "'");
  }
  if (value < min || value > max)
    fail(key, std::to_string(value) + " is out of range " + std::to_string(min) + ".." + std::to_string(max));
  return value;
}

double YamlMap::getDouble(const char* key, double fallback, double min, double max) const {
  if (!has(key)) return fallback;
  std::string text = scalar(key).as<std::string>();
  double value;
  try {
    std::size_t used = 0;
    value = std::stod(text, &used);
    if (used != text.size() || !std::isfinite(value)) throw std::invalid_argument(text);
  } catch (const std::exception&) {
    fail(key, "expected a number, got '" + text + "'");
  }
  if (value < min || value > max)
    fail(key, text + " is out of range " + std::to_string(min) + ".." + std::to_string(max));
  return value;
}

bool YamlMap::getBool(const char* key, bool fallback) const {
  if (!has(key)) return fallback;
  std::string text = scalar(key).as<std::string>();
  if (text == "true" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "no" || text == "off") return false;
  fail(key, "expected true or false, got '" + text + "'");
}

YamlMap YamlMap::map(const char* key) const {
  if (has(key) && !node_[key].IsMap()) fail(key, "expected a mapping of keys");
  return YamlMap(has(key) ? node_[key] : YAML::Node(), path(key), source_);
}

std::vector<YamlMap> YamlMap::mapList(const char* key) const {
  std::vector<YamlMap> items;
  if (!has(key)) return items;
  YAML::Node list = node_[key];
  if (!list.IsSequence()) fail(key, "expected a list");
  for (std::size_t i = 0; i < list.size(); ++i) {
    std::string itemPath = path(key) + "[" + std::to_string(i) + "]";
    if (!list[i].IsMap())
      throw ConfigError(source_ + ":" + lineOf(list[i]) + ": " + itemPath + ": expected a mapping of keys");
    items.emplace_back(list[i], itemPath, source_);
  }
  return items;
}

std::vector<std::string> YamlMap::stringList(const char* key) const {
  std::vector<std::string> items;
  if (!has(key)) return items;
  YAML::Node list = node_[key];
  if (!list.IsSequence()) fail(key, "expected a list");
  for (const auto& item : list) {
    if (!item.IsScalar()) fail(key, "expected a list of strings");
    items.push_back(item.as<std::string>());
  }
  return items;
}

}  // namespace streamrelay
