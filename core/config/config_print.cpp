// SPDX-License-Identifier: Apache-2.0
// effectiveConfigYaml: the configuration as the relay will run it, defaults
// filled in (what --check-config prints), and configKeysReference (what
// --list-keys prints). Both read the key tables (keys.hpp).
#include <yaml-cpp/yaml.h>

#include "config.hpp"
#include "keys.hpp"

namespace streamrelay {

namespace {

void emitBlock(YAML::Emitter& out, const Settings& settings) {
  out << YAML::BeginMap;
  emitSettings(out, settings);
  out << YAML::EndMap;
}

// The top level's keys that code reads (Custom in topSchema), in its order.
void emitSources(YAML::Emitter& out, const std::vector<SourceConfig>& sources, bool shorthand) {
  if (shorthand) {
    out << YAML::Key << "upstream" << YAML::Value;
    emitBlock(out, sources.front().settings);
    return;
  }
  out << YAML::Key << "sources" << YAML::Value << YAML::BeginMap;
  for (const SourceConfig& source : sources) {
    out << YAML::Key << source.name << YAML::Value;
    emitBlock(out, source.settings);
  }
  out << YAML::EndMap;
}

}  // namespace

std::string effectiveConfigYaml(const Config& c) {
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
        emitBlock(out, stream.settings);
      }
      out << YAML::EndMap;
    } else if (name == "listeners") {
      out << YAML::Key << "listeners" << YAML::Value << YAML::BeginSeq;
      for (const ListenerConfig& l : c.listeners) emitBlock(out, l.settings);
      out << YAML::EndSeq;
    } else if (name == "plugins") {
      out << YAML::Key << "plugins" << YAML::Value << YAML::BeginMap;
      emitSettings(out, c.plugins.settings);
      out << YAML::Key << "instances" << YAML::Value << YAML::BeginSeq;
      for (const PluginInstanceConfig& i : c.plugins.instances) emitBlock(out, i.settings);
      out << YAML::EndSeq << YAML::EndMap;
    } else {
      return false;
    }
    return true;
  });
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::string configKeysReference() {
  return describeSchema(topSchema(), "") + describeSchema(sourceSchema(), "sources.NAME") +
         describeSchema(streamSchema(), "streams.NAME") +
         describeSchema(listenerSchema(), "listeners[]") + describeSchema(instanceSchema(), "plugins.instances[]");
}

}  // namespace streamrelay
