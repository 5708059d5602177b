// SPDX-License-Identifier: Apache-2.0
#include "plugin_source_types.hpp"

#include <yaml-cpp/yaml.h>

#include <deque>
#include <memory>
#include <mutex>

#include "config.hpp"
#include "keys.hpp"
#include "logging.hpp"
#include "plugin_catalog.hpp"
#include "plugin_library.hpp"
#include "source_type.hpp"
#include "yaml_map.hpp"

namespace streamrelay {

namespace {

struct Registry {
  std::mutex mutex;
  std::deque<PluginSourceType> types;  // stable addresses
  std::deque<Schema> schemas;
  std::vector<std::shared_ptr<const PluginConfigKeys>> keys;  // the group Schemas the keys point to

  const PluginSourceType* find(const std::string& name) const {
    for (const PluginSourceType& t : types)
      if (t.name == name) return &t;
    return nullptr;
  }
};

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: Settings point into it until the process ends
  return *r;
}

}  // namespace

const PluginSourceType* knownPluginSourceType(const std::string& name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.find(name);
}

const PluginSourceType* findPluginSourceType(const std::string& name, const std::string& directory,
                                             bool allowInsecure, std::vector<std::string>* notes) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (const PluginSourceType* known = r.find(name)) return known;
  if (directory.empty()) return nullptr;
  const PluginCatalog catalog = PluginCatalog::read(directory, allowInsecure);
  if (notes) *notes = catalog.notes();
  for (const auto& [typeName, found] : catalog.sourceTypes()) {
    if (r.find(typeName)) continue;
    Schema& schema = r.schemas.emplace_back();
    schema.what = "source";
    schema.keys = {key("type").doc("where the frames come from")};
    schema.types.push_back(TypeSpec{typeName, found.description, found.keys->schema().keys, {}});
    schema.reload = Reload::Component;
    r.keys.push_back(found.keys);
    r.types.push_back(PluginSourceType{typeName, found.path, &schema, found.library, allowInsecure});
  }
  return r.find(name);
}

PluginSourceCheck checkPluginSource(const PluginSourceType& type, const std::string& configYaml) {
  PluginSourceCheck result;
  const PluginLibrary::SourceCheck check = type.library ? type.library->sourceCheck() : nullptr;
  if (!check) return result;
  std::uint32_t properties = 0;
  char error[STREAMRELAY_MIN_ERROR_SIZE * 4] = "";
  if (check(configYaml.c_str(), &properties, error, sizeof error) != STREAMRELAY_OK) {
    error[sizeof error - 1] = '\0';
    result.refused = *error ? error : "refused by the plugin (no reason given)";
    return result;
  }
  result.replayable = (properties & STREAMRELAY_SOURCE_REPLAYABLE) != 0;
  return result;
}

// Read by the type's keys; the mapping without `type` goes to the plugin.
bool readPluginSource(const YamlMap& m, SourceConfig& source, const Settings& plugins) {
  if (!m.has("type") || !m.node("type").IsScalar()) return false;
  const std::string type = m.getString("type", "");
  if (sourceSchema().findType(type)) return false;
  std::vector<std::string> notes;
  const std::string directory = plugins.string("directory");
  const PluginSourceType* found = findPluginSourceType(type, directory, plugins.boolean("allow_insecure"), &notes);
  if (!found) {
    std::vector<std::string> names;
    for (const TypeSpec& t : sourceSchema().types) names.push_back(t.name);
    std::string known;
    for (const std::string& n : names) known += (known.empty() ? "" : ", ") + n;
    m.fail("type", "'" + type + "' is not a source type (" + known + ")" +
                       (directory.empty() ? std::string(", and no plugins directory is set to provide one")
                                          : ", nor one a plugin in " + directory + " provides") +
                       (notes.empty() ? std::string() : " (" + notes.front() + ")"));
  }
  source.settings = readSettings(m, *found->schema);
  source.fromPlugin = true;
  YAML::Node config(YAML::NodeType::Map);
  for (const std::string& k : m.keys())
    if (k != "type") config[k] = m.node(k.c_str());
  YAML::Emitter out;
  out << YAML::Flow << config;
  source.pluginConfigYaml = out.c_str();
  const PluginSourceCheck check = checkPluginSource(*found, source.pluginConfigYaml);
  if (!check.refused.empty()) m.failHere(oneLine(check.refused));
  source.pluginReplayable = check.replayable;
  return true;
}

}  // namespace streamrelay
