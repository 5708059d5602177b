// SPDX-License-Identifier: Apache-2.0
#pragma once
// The source types that plugin libraries provide (source_plugin.h), beside
// the relay's own (source_types.def). The config is read before any plugin
// runs, so a source whose `type` is none of the relay's is looked up here:
// the libraries of the config's plugins directory are read as --check-config
// reads them (PluginCatalog: the relay's file trust rule, nothing created),
// and each source type found is kept for the life of the process, with a
// source Schema of its own (its `type` and the keys of its config_keys
// table): Settings read by it point into it, so it never goes away. A type
// found once stays where it was found (a library replaced at that path is
// what runs next).
//
// Thread safe.

#include <memory>
#include <string>
#include <vector>

#include "schema.hpp"

namespace streamrelay {

class PluginLibrary;

struct PluginSourceType {
  std::string name;
  std::string path;     // the library that provides it
  const Schema* schema; // a source's keys of this type: `type` and the plugin's table
  std::shared_ptr<PluginLibrary> library;  // loaded while the process lives: its check is called with each config
  bool allowInsecure = false;  // plugins.allow_insecure when the type was found: a source loads `path` again
};

// What the type's check (source_plugin.h) says of a source's config (its
// mapping without `type`, as YAML): the plugin's own reason if it refuses
// it (empty: accepted), and whether the provider can replay after a
// position (STREAMRELAY_SOURCE_REPLAYABLE). A type without a check accepts
// every config its key table does, and is not replayable.
struct PluginSourceCheck {
  std::string refused;
  bool replayable = false;
};
PluginSourceCheck checkPluginSource(const PluginSourceType& type, const std::string& configYaml);

// The type `name`, looked up in the libraries of `directory` unless found
// before; null if no library there provides it (`notes`: the files skipped
// and why, one line each).
const PluginSourceType* findPluginSourceType(const std::string& name, const std::string& directory,
                                             bool allowInsecure, std::vector<std::string>* notes = nullptr);
// A type found before (by the config that names it), or null.
const PluginSourceType* knownPluginSourceType(const std::string& name);

}  // namespace streamrelay
