// SPDX-License-Identifier: Apache-2.0
#pragma once
// PluginConfigKeys: the keys a plugin declares for its config (ABI 1.2
// config_keys) turned into a Schema of the config registry, so that the
// relay reads, checks, prints and lists a plugin's `config:` by the same
// rules and in the same words as its own keys: --check-config rejects what
// the table rejects (naming the key and its line), prints secrets as "(set)"
// and defaults filled in; --list-keys lists the keys.
//
// Everything is copied out of the plugin's table: it outlives the library.
// Immutable once read; thread safe.

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "schema.hpp"
#include "streamrelay/plugin.h"

namespace streamrelay {

class PluginConfigKeys {
 public:
  // Reads a table (NULL-name terminated). Throws std::runtime_error naming
  // the entry if it cannot be read: a key twice, a key of a group not
  // declared before it, a default of the wrong kind. Kinds and flags newer
  // than this host are taken as "any value", unchecked.
  static std::shared_ptr<const PluginConfigKeys> read(const streamrelay_config_key* table, const std::string& type);

  // `config:` of an instance of this plugin: its keys, and groups of keys.
  const Schema& schema() const { return schema_; }
  // The values of the keys declared secret (${ENV} expanded where the key
  // says so) in a config's text: what the relay masks in the plugin's log
  // lines. Empty if the text does not read.
  std::vector<std::string> secretValues(const std::string& configYaml) const;

 private:
  Schema schema_;
  std::deque<Schema> groups_;  // the Schemas of group keys (stable addresses)
};

}  // namespace streamrelay
