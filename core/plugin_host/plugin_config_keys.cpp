// SPDX-License-Identifier: Apache-2.0
#include "plugin_config_keys.hpp"

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstring>
#include <map>
#include <stdexcept>

#include "config.hpp"
#include "yaml_map.hpp"

namespace streamrelay {

namespace {

// A table longer than this is taken as one without its terminating entry.
constexpr std::size_t kMaxKeys = 1000;
// "No range" for an INT: every integer a double holds exactly.
constexpr double kIntLimit = 9007199254740992.0;  // 2^53
constexpr double kNumberLimit = 1e300;

#define KEY_FIELD_END(field) (offsetof(streamrelay_config_key, field) + sizeof(streamrelay_config_key::field))

// One entry, with the fields its struct_size does not cover left zero.
streamrelay_config_key entryAt(const streamrelay_config_key* table, std::size_t stride, std::size_t index) {
  const auto* at = reinterpret_cast<const streamrelay_config_key*>(reinterpret_cast<const char*>(table) + index * stride);
  streamrelay_config_key e{};
  std::memcpy(&e, at, std::min(stride, sizeof e));
  return e;
}

KeyKind kindOf(std::uint32_t kind) {
  switch (kind) {
    case STREAMRELAY_KEY_STRING: return KeyKind::String;
    case STREAMRELAY_KEY_INT: return KeyKind::Int;
    case STREAMRELAY_KEY_NUMBER: return KeyKind::Number;
    case STREAMRELAY_KEY_BOOL: return KeyKind::Bool;
    case STREAMRELAY_KEY_STRINGS: return KeyKind::Strings;
    case STREAMRELAY_KEY_MAP: return KeyKind::StringMap;
    case STREAMRELAY_KEY_GROUP: return KeyKind::Group;
    default: return KeyKind::Yaml;  // a kind newer than this host: any value, the plugin checks it
  }
}

std::vector<std::string> split(const std::string& text, char by) {
  std::vector<std::string> parts(1);
  for (char c : text) {
    if (c == by) parts.emplace_back();
    else parts.back() += c;
  }
  return parts;
}

bool isName(const std::string& part) {
  if (part.empty()) return false;
  for (char c : part)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  return true;
}

void checkDefault(const KeySpec& k, const std::string& where) {
  try {
    std::size_t used = 0;
    if (k.kind == KeyKind::Int) (void)std::stoll(k.fallback, &used);
    else if (k.kind == KeyKind::Number) (void)std::stod(k.fallback, &used);
    else return;
    if (used != k.fallback.size()) throw std::invalid_argument(k.fallback);
  } catch (const std::exception&) {
    throw std::runtime_error(where + ": default '" + k.fallback + "' is not a number");
  }
}

}  // namespace

std::shared_ptr<const PluginConfigKeys> PluginConfigKeys::read(const streamrelay_config_key* table,
                                                               const std::string& type) {
  auto keys = std::make_shared<PluginConfigKeys>();
  keys->schema_.what = type + " config";
  if (!table) return keys;
  const std::size_t stride = table->struct_size;
  if (stride < KEY_FIELD_END(name))
    throw std::runtime_error("config_keys: entries too small (" + std::to_string(stride) + " bytes)");
  std::map<std::string, Schema*> groups{{"", &keys->schema_}};
  for (std::size_t i = 0;; ++i) {
    if (i == kMaxKeys) throw std::runtime_error("config_keys: no terminating entry (name NULL) within 1000 keys");
    const streamrelay_config_key e = entryAt(table, stride, i);
    if (!e.name) break;
    const std::string name = e.name;
    const std::string where = "config_keys[" + std::to_string(i) + "] '" + name + "'";
    std::vector<std::string> parts = split(name, '.');
    for (const std::string& part : parts)
      if (!isName(part)) throw std::runtime_error(where + ": not a key name (letters, digits, _ and -, '.' between groups)");
    const std::string leaf = parts.back();
    parts.pop_back();
    std::string parent;
    for (const std::string& part : parts) parent += (parent.empty() ? "" : ".") + part;
    auto group = groups.find(parent);
    if (group == groups.end()) throw std::runtime_error(where + ": its group '" + parent + "' is not declared before it");
    for (const KeySpec& k : group->second->keys)
      if (k.name == leaf) throw std::runtime_error(where + ": declared twice");
    KeySpec k = key(leaf, kindOf(e.kind));
    if (e.flags & STREAMRELAY_KEY_REQUIRED) k.needed();
    if (e.flags & STREAMRELAY_KEY_SECRET) k.hidden();
    if (e.flags & STREAMRELAY_KEY_ENV) k.env();
    if (e.default_value) k.def(e.default_value);
    if (e.help) k.doc(e.help);
    if (k.kind == KeyKind::Int || k.kind == KeyKind::Number) {
      const double limit = k.kind == KeyKind::Int ? kIntLimit : kNumberLimit;
      if (e.min == 0 && e.max == 0) k.range(-limit, limit);
      else if (e.min > e.max) throw std::runtime_error(where + ": min is above max");
      else k.range(std::max(e.min, -limit), std::min(e.max, limit));
      if (k.fallback.empty()) k.def("0");
      checkDefault(k, where);
    }
    if (k.kind == KeyKind::String && e.choices) k.oneOf(split(e.choices, '|'));
    if (k.kind == KeyKind::Group) {
      Schema& inner = keys->groups_.emplace_back();
      inner.what = keys->schema_.what;
      k.group = &inner;
      k.fallback.clear();
      groups[name] = &inner;
    }
    group->second->keys.push_back(std::move(k));
  }
  return keys;
}

namespace {
void collectSecrets(const Settings& settings, std::vector<std::string>& out) {
  for (const Settings::Entry& e : settings.entries()) {
    if (e.spec->kind == KeyKind::Group && e.value.group) collectSecrets(*e.value.group, out);
    if (!e.spec->secret) continue;
    if (!e.value.text.empty()) out.push_back(e.value.text);
    for (const std::string& item : e.value.list) out.push_back(item);
    for (const auto& entry : e.value.map) out.push_back(entry.second);
  }
}
}  // namespace

std::vector<std::string> PluginConfigKeys::secretValues(const std::string& configYaml) const {
  std::vector<std::string> out;
  try {
    const Settings settings = readSettings(YamlMap(YAML::Load(configYaml), "config", "config"), schema_);
    collectSecrets(settings, out);
  } catch (const std::exception&) {
    // A config the table rejects: the plugin refuses it too; nothing runs to log.
  }
  return out;
}

}  // namespace streamrelay
