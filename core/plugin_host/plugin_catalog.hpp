// SPDX-License-Identifier: Apache-2.0
#pragma once
// PluginCatalog: the plugin types of a plugins directory and the config keys
// each declares (ABI 1.2 config_keys), read without running the plugins:
// each file is loaded as the relay loads it (a private copy, checked as a
// complete ELF shared object, dlopen), its entry function asked for the
// descriptor, and unloaded; no instance is created. For --check-config and
// --list-keys.
//
// Loading a library runs its initialisers, as starting the relay would, so
// the relay's rule decides what is loaded (file_trust.hpp): the directory and
// each file must be owned by this user or root and writable by no one else,
// unless plugins.allow_insecure. A file that may not be loaded or does not
// load is skipped with a note; the configs of its instances then print by the
// name rule of secret_mask.hpp, unchecked, as those of a plugin that declares
// no keys.
//
// Immutable once read.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config.hpp"
#include "plugin_config_keys.hpp"

namespace streamrelay {

class PluginLibrary;

class PluginCatalog {
 public:
  // An empty `directory` (no plugins) reads as an empty catalog.
  static PluginCatalog read(const std::string& directory, bool allowInsecure);

  // The keys of every plugin type that declares them, by type.
  PluginConfigSchemas schemas() const;
  // A source type a library provides (source_plugin.h): its file and keys.
  struct SourceType {
    std::string path;
    std::string description;
    std::shared_ptr<const PluginConfigKeys> keys;
    std::shared_ptr<PluginLibrary> library;  // kept loaded: its check is called as configs are read
  };
  // By type name.
  const std::map<std::string, SourceType>& sourceTypes() const { return sourceTypes_; }
  // The keys of each of those source types, by type.
  PluginConfigSchemas sourceSchemas() const;
  // One line per file skipped, or about the directory.
  const std::vector<std::string>& notes() const { return notes_; }

 private:
  std::map<std::string, std::shared_ptr<const PluginConfigKeys>> keys_;  // by type; null: declares none
  std::map<std::string, SourceType> sourceTypes_;
  std::vector<std::string> notes_;
};

}  // namespace streamrelay
