// SPDX-License-Identifier: Apache-2.0
#include "config_diff.hpp"

#include <algorithm>

#include "keys.hpp"

namespace streamrelay {

using Kind = ComponentChange::Kind;
using What = ComponentChange::What;

Reload ComponentChange::how() const {
  if (what != What::Changed) return Reload::Component;
  Reload strongest = Reload::InPlace;
  for (const KeyChange& k : keys) strongest = std::max(strongest, k.how);
  return strongest;
}

std::string ComponentChange::keysApplying(Reload how) const {
  std::string list;
  for (const KeyChange& k : keys)
    if (k.how == how) list += (list.empty() ? "" : ", ") + k.key;
  return list;
}

std::string ComponentChange::keyList() const {
  std::string list;
  for (const KeyChange& k : keys) list += (list.empty() ? "" : ", ") + k.key;
  return list;
}

std::vector<const ComponentChange*> ConfigDiff::of(Kind kind) const {
  std::vector<const ComponentChange*> list;
  for (const ComponentChange& c : changes)
    if (c.kind == kind) list.push_back(&c);
  return list;
}

const ComponentChange* ConfigDiff::find(Kind kind, const std::string& name) const {
  for (const ComponentChange& c : changes)
    if (c.kind == kind && c.name == name) return &c;
  return nullptr;
}

namespace {

template <class Item>
const Item* named(const std::vector<Item>& items, const std::string& name) {
  auto it = std::find_if(items.begin(), items.end(), [&](const Item& i) { return i.name == name; });
  return it == items.end() ? nullptr : &*it;
}

// Components identified by name: those removed or changed, then those added,
// in config order.
template <class Item>
void diffNamed(ConfigDiff& diff, Kind kind, const std::vector<Item>& before, const std::vector<Item>& after) {
  for (const Item& old : before) {
    const Item* now = named(after, old.name);
    if (!now) {
      diff.changes.push_back({kind, old.name, What::Removed, {}});
      continue;
    }
    // Another schema: a source type of a plugin (plugin_source_types.hpp) for or instead of another type.
    std::vector<KeyChange> keys = old.settings.schema() == now->settings.schema()
                                      ? diffSettings(old.settings, now->settings)
                                      : std::vector<KeyChange>{{"type", Reload::Component}};
    if (!keys.empty()) diff.changes.push_back({kind, old.name, What::Changed, std::move(keys)});
  }
  for (const Item& item : after)
    if (!named(before, item.name)) diff.changes.push_back({kind, item.name, What::Added, {}});
}

// `streams:` entries of the streams both configs have. An entry written on
// one side only changes what that stream keeps.
void diffStreams(ConfigDiff& diff, const Config& running, const Config& next) {
  const std::vector<std::string> before = streamNames(running), after = streamNames(next);
  for (const std::string& name : before) {
    if (std::find(after.begin(), after.end(), name) == after.end()) continue;
    const StreamConfig* old = named(running.streams, name);
    const StreamConfig* now = named(next.streams, name);
    if (!old && !now) continue;
    std::vector<KeyChange> keys;
    if (old && now) keys = diffSettings(old->settings, now->settings);
    else
      for (const char* key : {"replay", "key", "last_value", "log"})
        if ((old ? old : now)->settings.given(key)) keys.push_back({key, streamSchema().reload});
    if (!keys.empty()) diff.changes.push_back({Kind::Stream, name, What::Changed, std::move(keys)});
  }
}

}  // namespace

ConfigDiff diffConfigs(const Config& running, const Config& next) {
  ConfigDiff diff;
  std::vector<KeyChange> own = diffSettings(running.settings, next.settings);
  if (!own.empty()) diff.changes.push_back({Kind::Relay, "", What::Changed, std::move(own)});
  diffNamed(diff, Kind::Source, running.sources, next.sources);
  diffStreams(diff, running, next);
  diffNamed(diff, Kind::PluginInstance, running.plugins.instances, next.plugins.instances);
  diffNamed(diff, Kind::Listener, running.listeners, next.listeners);
  return diff;
}

}  // namespace streamrelay
