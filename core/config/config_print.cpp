// SPDX-License-Identifier: Apache-2.0
// effectiveConfigYaml: the configuration as the relay will run it, defaults
// filled in (what --check-config prints), and configKeysReference (what
// --list-keys prints). Both read the key tables (keys.hpp).
//
// Secrets: keys marked secret (KeySpec::hidden) print as "(set)" (schema.cpp);
// besides, every value here goes through the rule of secret_mask.hpp: every
// string by the URLs in it (a source's url with user:password@ or ?token=),
// and a plugin's `config:` by the keys its plugin declares secret (ABI 1.2
// config_keys), or by the names of its keys for a plugin that declares none.
#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "config.hpp"
#include "keys.hpp"
#include "secret_mask.hpp"
#include "yaml_map.hpp"

namespace streamrelay {

namespace {

bool hasCustomKeys(const Schema& schema) {
  auto custom = [](const std::vector<KeySpec>& keys) {
    return std::any_of(keys.begin(), keys.end(), [](const KeySpec& k) { return k.kind == KeyKind::Custom; });
  };
  return custom(schema.keys) ||
         std::any_of(schema.types.begin(), schema.types.end(), [&](const TypeSpec& t) { return custom(t.keys); });
}

bool emitMasked(YAML::Emitter& out, const Settings::Entry& e);

// An entry whose printed value the secret rule changes, printed masked;
// false to leave it to emitSettings. Applied at every level (groups too).
bool emitMasked(YAML::Emitter& out, const Settings::Entry& e) {
  const KeySpec& k = *e.spec;
  const Settings::Value& v = e.value;
  if (k.secret) return false;  // "(set)" already
  switch (k.kind) {
    case KeyKind::String:
    case KeyKind::Endpoint: {
      const std::string masked = maskUrlSecrets(v.text);
      if (masked == v.text) return false;
      out << YAML::Key << k.name << YAML::Value << YAML::DoubleQuoted << masked;
      return true;
    }
    case KeyKind::Strings:
    case KeyKind::Endpoints: {
      if (std::all_of(v.list.begin(), v.list.end(), [](const std::string& s) { return maskUrlSecrets(s) == s; }))
        return false;
      out << YAML::Key << k.name << YAML::Value << YAML::Flow << YAML::BeginSeq;
      for (const std::string& item : v.list) out << YAML::DoubleQuoted << maskUrlSecrets(item);
      out << YAML::EndSeq;
      return true;
    }
    case KeyKind::Yaml:
      out << YAML::Key << k.name << YAML::Value << maskedPluginConfig(v.text);
      return true;
    case KeyKind::Group:
      out << YAML::Key << k.name << YAML::Value;
      if (!hasCustomKeys(*k.group)) out << YAML::Flow;
      out << YAML::BeginMap;
      emitSettings(out, *v.group, &emitMasked);
      out << YAML::EndMap;
      return true;
    default:
      return false;
  }
}

void emitBlock(YAML::Emitter& out, const Settings& settings) {
  out << YAML::BeginMap;
  emitSettings(out, settings, &emitMasked);
  out << YAML::EndMap;
}

// streams.NAME: what it sets, nothing more (a replay or key block it leaves
// out is no ring and no rule, not a block of defaults); of its key rule, the
// keys written (the others belong to the other kinds of rule).
void emitStream(YAML::Emitter& out, const Settings& settings) {
  out << YAML::BeginMap;
  emitSettings(out, settings, [](YAML::Emitter& out, const Settings::Entry& e) {
    if (!e.value.given) return true;
    if (e.spec->name != "key") return false;
    out << YAML::Key << "key" << YAML::Value << YAML::Flow << YAML::BeginMap;
    emitSettings(out, *e.value.group, [](YAML::Emitter&, const Settings::Entry& k) { return !k.value.given; });
    out << YAML::EndMap;
    return true;
  });
  out << YAML::EndMap;
}

// One source. A type of a plugin library: a group it leaves out is not
// printed, as a plugin instance's (its presence may be what turns a feature
// on: nats' jetstream:, tls:).
void emitSource(YAML::Emitter& out, const SourceConfig& source) {
  if (!source.fromPlugin) return emitBlock(out, source.settings);
  out << YAML::BeginMap;
  emitSettings(out, source.settings, [](YAML::Emitter& out, const Settings::Entry& entry) {
    return (entry.spec->kind == KeyKind::Group && !entry.value.given) || emitMasked(out, entry);
  });
  out << YAML::EndMap;
}

// The top level's keys that code reads (Custom in topSchema), in its order.
void emitSources(YAML::Emitter& out, const std::vector<SourceConfig>& sources, bool shorthand) {
  if (shorthand) {
    out << YAML::Key << "upstream" << YAML::Value;
    emitSource(out, sources.front());
    return;
  }
  out << YAML::Key << "sources" << YAML::Value << YAML::BeginMap;
  for (const SourceConfig& source : sources) {
    out << YAML::Key << source.name << YAML::Value;
    emitSource(out, source);
  }
  out << YAML::EndMap;
}

// A plugin instance's `config:` read by its plugin's declared keys.
Settings readPluginConfig(const PluginInstanceConfig& i, const Schema& schema) {
  return readSettings(YamlMap(i.configNode.node, i.configPath, i.configSource), schema);
}

void emitInstance(YAML::Emitter& out, const PluginInstanceConfig& i, const PluginConfigSchemas& plugins) {
  auto declared = plugins.find(i.type);
  out << YAML::BeginMap;
  emitSettings(out, i.settings, [&](YAML::Emitter& out, const Settings::Entry& e) {
    if (e.spec->name != "config" || declared == plugins.end()) return emitMasked(out, e);
    out << YAML::Key << "config" << YAML::Value << YAML::BeginMap;
    // A plugin's group that is absent is not printed: its presence may be
    // what turns a feature on (nats' jetstream:), whatever its defaults.
    emitSettings(out, readPluginConfig(i, *declared->second), [](YAML::Emitter& out, const Settings::Entry& entry) {
      return (entry.spec->kind == KeyKind::Group && !entry.value.given) || emitMasked(out, entry);
    });
    out << YAML::EndMap;
    return true;
  });
  out << YAML::EndMap;
}

}  // namespace

void checkPluginConfigs(const Config& config, const PluginConfigSchemas& plugins) {
  for (const PluginInstanceConfig& i : config.plugins.instances) {
    auto declared = plugins.find(i.type);
    if (declared != plugins.end()) readPluginConfig(i, *declared->second);
  }
}

std::string effectiveConfigYaml(const Config& c, const PluginConfigSchemas& plugins) {
  // One source named "upstream" prints as the `upstream:` shorthand.
  const bool shorthand = c.sources.size() == 1 && c.sources.front().name == "upstream";
  YAML::Emitter out;
  out << YAML::BeginMap;
  emitSettings(out, c.settings, [&](YAML::Emitter& out, const Settings::Entry& e) {
    const std::string& name = e.spec->name;
    if (name == "upstream" && shorthand) emitSources(out, c.sources, true);
    else if (name == "sources" && !shorthand) emitSources(out, c.sources, false);
    else if (name == "streams" && !c.streams.empty()) {
      out << YAML::Key << "streams" << YAML::Value << YAML::BeginMap;
      for (const StreamConfig& stream : c.streams) {
        out << YAML::Key << stream.name << YAML::Value;
        emitStream(out, stream.settings);
      }
      out << YAML::EndMap;
    } else if (name == "listeners") {
      out << YAML::Key << "listeners" << YAML::Value << YAML::BeginSeq;
      for (const ListenerConfig& l : c.listeners) emitBlock(out, l.settings);
      out << YAML::EndSeq;
    } else if (name == "plugins") {
      out << YAML::Key << "plugins" << YAML::Value << YAML::BeginMap;
      emitSettings(out, c.plugins.settings, &emitMasked);
      out << YAML::Key << "instances" << YAML::Value << YAML::BeginSeq;
      for (const PluginInstanceConfig& i : c.plugins.instances) emitInstance(out, i, plugins);
      out << YAML::EndSeq << YAML::EndMap;
    } else {
      return emitMasked(out, e);
    }
    return true;
  });
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::string configKeysReference(const PluginConfigSchemas& plugins, const PluginConfigSchemas& pluginSources) {
  std::string text = describeSchema(topSchema(), "") + describeSchema(sourceSchema(), "sources.NAME") +
                     describeSchema(streamSchema(), "streams.NAME") + describeSchema(listenerSchema(), "listeners[]") +
                     describeSchema(instanceSchema(), "plugins.instances[]");
  // As the keys of a source type: one line each, saying the plugin type they belong to.
  Schema byType;
  byType.what = "plugin";
  for (const auto& [type, schema] : plugins) byType.types.push_back({type, "", schema->keys, {}});
  text += describeSchema(byType, "plugins.instances[].config", "plugin instance", Reload::Component);
  // The source types of plugin libraries (source_plugin.h), as the relay's own types' keys.
  if (!pluginSources.empty()) {
    Schema sources;
    sources.what = "plugin source";
    for (const auto& [type, schema] : pluginSources) sources.types.push_back({type, "", schema->keys, {}});
    text += describeSchema(sources, "sources.NAME", "source", Reload::Component);
  }
  return text;
}

}  // namespace streamrelay
