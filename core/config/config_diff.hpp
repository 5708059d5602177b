// SPDX-License-Identifier: Apache-2.0
#pragma once
// ConfigDiff: what differs between the running config and a reloaded one,
// per component (the relay's own keys, each source, stream, listener and
// plugin instance), and how each change applies (the keys' `reload`, see
// schema.hpp). A config reload is driven by it alone (Relay::reload), as
// NATS' reload.go drives one from its list of changed options.

#include <string>
#include <vector>

#include "config.hpp"

namespace streamrelay {

struct ComponentChange {
  enum class Kind { Relay, Source, Stream, Listener, PluginInstance };
  enum class What { Added, Removed, Changed };
  Kind kind;
  std::string name;              // "" for the relay's own keys
  What what;
  std::vector<KeyChange> keys;   // Changed: the keys whose values differ

  // How the change applies: added and removed components start and stop
  // (Component); a changed one as its most demanding key says.
  Reload how() const;
  // The changed keys that apply `how`, as "allow, queue.max_frames".
  std::string keysApplying(Reload how) const;
  std::string keyList() const;
};

struct ConfigDiff {
  std::vector<ComponentChange> changes;  // the relay's keys, sources, streams, plugin instances, listeners

  bool empty() const { return changes.empty(); }
  std::vector<const ComponentChange*> of(ComponentChange::Kind kind) const;
  const ComponentChange* find(ComponentChange::Kind kind, const std::string& name) const;
};

// Compares `running` with `next`, both validated. A `streams:` entry counts
// only for a stream both configs have (a new stream gets its settings when
// it is made; a removed one's are moot).
ConfigDiff diffConfigs(const Config& running, const Config& next);

}  // namespace streamrelay
