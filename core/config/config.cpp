// SPDX-License-Identifier: Apache-2.0
#include "config.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "keys.hpp"
#include "logging.hpp"
#include "source_type.hpp"
#include "yaml_map.hpp"

namespace streamrelay {

// The parsers proper; parseConfig and parsePluginSidecar wrap them (oneLineErrors).
static Config parseConfigUnchecked(const std::string& yamlText, const std::string& sourceName);
static std::vector<PluginInstanceConfig> parsePluginSidecarUnchecked(const std::string& yamlText,
                                                                     const std::string& sourceName,
                                                                     const std::string& type);

namespace {

// The names of the streams a config has: its sources, then its plugin
// instances (each may emit a stream named after it).
struct StreamNames {
  std::vector<std::string> sources;
  std::vector<std::string> all;
};

// Reads `inputs` and resolves it (see resolveInputs).
std::vector<std::string> readInputs(const YamlMap& m, const StreamNames& streams) {
  std::vector<std::string> inputs = m.stringList("inputs");
  std::string problem = resolveInputs(inputs, streams.sources, streams.all);
  if (!problem.empty()) m.fail("inputs", problem);
  return inputs;
}

// A listener's replay needs a ring on each of its inputs, deep enough, and
// room in its queue.
void checkReplay(const YamlMap& m, const ListenerConfig& l, const std::vector<StreamConfig>& kept) {
  if (l.replayFrames == 0) return;
  const YamlMap replay = m.map("replay");
  const std::string n = std::to_string(l.replayFrames);
  if (l.queue.maxFrames != 0 && l.replayFrames > l.queue.maxFrames)
    replay.fail("frames", n + " is more than queue.max_frames (" + std::to_string(l.queue.maxFrames) + ")");
  for (const std::string& input : l.inputs) {
    auto it = std::find_if(kept.begin(), kept.end(), [&](const StreamConfig& s) { return s.name == input; });
    if (it == kept.end())
      replay.fail("frames", "input '" + input + "' keeps no replay ring (set streams." + input + ".replay)");
    if (it->replay.maxFrames != 0 && l.replayFrames > it->replay.maxFrames)
      replay.fail("frames", n + " is more than streams." + input + ".replay.frames (" +
                                std::to_string(it->replay.maxFrames) + ")");
  }
}

ListenerConfig readListener(const YamlMap& m, const StreamNames& streams, const std::vector<StreamConfig>& kept) {
  ListenerConfig l;
  l.settings = readSettings(m, listenerSchema());
  const Settings& s = l.settings;
  l.name = s.string("name");
  l.inputs = readInputs(m, streams);
  l.settings.setStrings("inputs", l.inputs);
  l.bind = s.string("bind");
  l.where = m.where("bind");
  l.framing = framingFrom(s.group("framing"));
  l.maxClients = static_cast<int>(s.integer("max_clients"));
  l.maxPendingClients = static_cast<int>(s.integer("max_pending_clients"));
  l.queue = queueFrom(s.group("queue"));
  std::vector<Cidr> rules;
  for (const std::string& text : s.strings("allow")) rules.push_back(Cidr::parse(text));
  l.allow = CidrList(std::move(rules));
  l.sendBufferBytes = static_cast<int>(s.integer("send_buffer_bytes"));  // -1: auto
  l.writeDeadlineMs = static_cast<int>(s.integer("write_deadline_ms"));
  l.replayFrames = static_cast<std::size_t>(s.group("replay").integer("frames"));
  l.select = s.strings("select");
  l.protocol = s.string("protocol");
  l.helloTimeoutMs = static_cast<int>(s.integer("hello_timeout_ms"));
  l.heartbeatMs = static_cast<int>(s.integer("heartbeat_ms"));
  const Settings& tls = s.group("tls");
  l.tls = {tls.boolean("enabled"),        tls.string("cert_file"),
           tls.string("key_file"),        tls.string("client_ca_file"),
           tls.boolean("require_client_cert"), static_cast<int>(tls.integer("handshake_timeout_ms"))};
  const Settings& auth = s.group("auth");
  const Settings& jwt = auth.group("jwt");
  l.auth = {auth.strings("tokens"), auth.string("tokens_file"), jwt.string("secret"),
            jwt.string("public_key_file"), jwt.string("audience"), jwt.string("inputs_claim"), jwt.string("select_claim"),
            static_cast<int>(jwt.integer("leeway_s")), auth.boolean("allow_insecure")};
  checkReplay(m, l, kept);
  return l;
}

YAML::Node loadYaml(const std::string& text, const std::string& sourceName) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(sourceName + ":" + std::to_string(e.mark.line + 1) + ": YAML syntax error: " + e.msg);
  }
}

// A plugin instance's `inputs`: as a consumer's, except that with several
// sources and none given they stay empty, to be resolved when its plugin
// loads: a plugin that reads no frames (metrics) needs none, one that does is
// refused then with the reason.
std::vector<std::string> readInstanceInputs(const YamlMap& m, const StreamNames& streams) {
  if (!m.has("inputs") && streams.sources.size() != 1) return {};
  return readInputs(m, streams);
}

// `streams`: resolve `inputs` now (the main config); null: keep them as
// written, resolved when the plugin loads (a sidecar file, whose `type` is
// implied by its file name).
PluginInstanceConfig readPluginInstance(const YamlMap& m, const std::string& impliedType,
                                        const StreamNames* streams) {
  if (!impliedType.empty() && m.has("type")) m.fail("type", "is implied by the file name (" + impliedType + ")");
  PluginInstanceConfig p;
  p.settings = readSettings(m, impliedType.empty() ? instanceSchema() : sidecarInstanceSchema());
  const Settings& s = p.settings;
  p.type = impliedType.empty() ? s.string("type") : impliedType;
  p.name = s.given("name") ? s.string("name") : p.type;
  p.settings.setString("name", p.name);
  p.inputs = streams ? readInstanceInputs(m, *streams) : s.strings("inputs");
  p.settings.setStrings("inputs", p.inputs);
  p.queue = queueFrom(s.group("queue"));
  p.maxFailures = static_cast<int>(s.integer("max_failures"));
  p.maxEmitBytes = static_cast<std::size_t>(s.integer("max_emit_bytes"));
  p.configYaml = s.string("config");
  p.isolation = s.string("isolation") == "process" ? PluginIsolation::Process : PluginIsolation::InProcess;
  p.process = pluginProcessFrom(s.group("process"));
  if (m.has("config")) p.configNode = m.node("config");
  p.configPath = m.path("config");
  p.configSource = m.source();
  return p;
}

void checkUniqueNames(const std::vector<PluginInstanceConfig>& instances, const YamlMap& item) {
  for (std::size_t i = 0; i + 1 < instances.size(); ++i)
    if (instances[i].name == instances.back().name)
      item.fail("name", "'" + instances.back().name + "' is used by another plugin instance");
}

SourceConfig readSource(const YamlMap& m, const std::string& name, const Settings& plugins) {
  SourceConfig source;
  source.name = name;
  if (readPluginSource(m, source, plugins)) return source;
  source.settings = readSettings(m, sourceSchema());
  if (source.settings.has("framing")) source.framing = framingFrom(source.settings.group("framing"));
  else source.framing.maxFrameBytes = static_cast<std::size_t>(source.settings.integer("max_frame_bytes"));  // messages
  return source;
}

// `upstream:` is one source named "upstream"; `sources:` maps names to sources.
std::vector<SourceConfig> readSources(const YamlMap& top, const Settings& plugins) {
  const std::string file = top.source();
  if (top.has("upstream") && top.has("sources"))
    top.fail("sources", "use either `upstream:` (one source) or `sources:`, not both");
  if (top.has("upstream")) return {readSource(top.map("upstream"), "upstream", plugins)};
  if (!top.has("sources"))
    throw ConfigError(file + ": sources: missing (every relay needs a source: `upstream:` or `sources:`)");
  YamlMap sources = top.map("sources");
  std::vector<SourceConfig> list;
  for (const std::string& name : sources.keys()) {
    if (name.empty() || name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") !=
                            std::string::npos)
      sources.fail(name.c_str(), "a source name is letters, digits, '_', '-' and '.'");
    list.push_back(readSource(sources.map(name.c_str()), name, plugins));
  }
  if (list.empty()) sources.failHere("needs at least one source");
  return list;
}

// `streams: {NAME: {...}}`: only streams that exist.
std::vector<StreamConfig> readStreams(const YamlMap& top, const std::vector<std::string>& names) {
  std::vector<StreamConfig> list;
  const YamlMap streams = top.map("streams");
  for (const std::string& name : streams.keys()) {
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      std::string known;
      for (const std::string& n : names) known += (known.empty() ? "" : ", ") + n;
      streams.fail(name.c_str(), "unknown stream '" + name + "' (streams: " + known + ")");
    }
    StreamConfig stream;
    stream.name = name;
    stream.settings = readSettings(streams.map(name.c_str()), streamSchema());
    stream.replay = replayFrom(stream.settings.group("replay"));
    stream.lastValueKeys = static_cast<std::size_t>(stream.settings.group("last_value").integer("max_keys"));
    if (stream.settings.given("key")) stream.key = keyRuleFrom(stream.settings.group("key"));
    if (stream.settings.given("log")) {
      stream.log = logOptionsFrom(stream.settings.group("log"));
      for (const StreamConfig& other : list)
        if (other.log && (std::filesystem::path(other.log->dir) / "").lexically_normal() ==
                             (std::filesystem::path(stream.log->dir) / "").lexically_normal())
          streams.map(name.c_str()).map("log").fail("dir", "'" + stream.log->dir + "' is stream " + other.name +
                                                               "'s log already (one stream per directory)");
    }
    list.push_back(std::move(stream));
  }
  return list;
}

// Fails at the first instance whose inputs lead back to itself.
void checkNoCycle(const std::vector<PluginInstanceConfig>& instances, const std::vector<YamlMap>& items) {
  std::map<std::string, const PluginInstanceConfig*> byName;
  for (const auto& i : instances) byName[i.name] = &i;
  for (std::size_t start = 0; start < instances.size(); ++start) {
    std::vector<std::string> path{instances[start].name};
    std::vector<std::string> todo = instances[start].inputs;
    std::set<std::string> seen;
    while (!todo.empty()) {
      std::string name = todo.back();
      todo.pop_back();
      if (name == instances[start].name)
        items[start].fail("inputs", "'" + name + "' reads its own output (a cycle through the inputs of plugin instances)");
      auto it = byName.find(name);
      if (it == byName.end() || !seen.insert(name).second) continue;
      todo.insert(todo.end(), it->second->inputs.begin(), it->second->inputs.end());
    }
  }
}

// `sources`: the source names. Every instance is a stream too (it publishes
// the stream named after it when it emits), so inputs may name instances.
PluginsConfig readPlugins(const YamlMap& m, const Settings& settings, const std::vector<std::string>& sources) {
  PluginsConfig p;
  p.settings = settings;
  p.directory = settings.string("directory");
  p.allowInsecure = settings.boolean("allow_insecure");
  p.rescanMs = static_cast<int>(settings.integer("rescan_ms"));
  const std::vector<YamlMap> items = m.mapList("instances");
  StreamNames streams{sources, sources};
  for (const YamlMap& item : items) {
    std::string name = item.getString("name", item.getString("type", ""));
    if (std::find(sources.begin(), sources.end(), name) != sources.end())
      item.fail(item.has("name") ? "name" : "type",
                "'" + name + "' is also a source: a stream name must be unique");
    streams.all.push_back(name);
  }
  for (const YamlMap& item : items) {
    p.instances.push_back(readPluginInstance(item, "", &streams));
    checkUniqueNames(p.instances, item);
  }
  checkNoCycle(p.instances, items);
  if (p.directory.empty() && !p.instances.empty()) m.failHere("instances need a plugins directory");
  return p;
}

}  // namespace

std::vector<std::string> streamNames(const Config& config) {
  std::vector<std::string> names;
  for (const SourceConfig& source : config.sources) names.push_back(source.name);
  for (const PluginInstanceConfig& instance : config.plugins.instances) names.push_back(instance.name);
  return names;
}

std::string resolveInputs(std::vector<std::string>& inputs, const std::vector<std::string>& sources,
                          const std::vector<std::string>& streams) {
  auto list = [](const std::vector<std::string>& names) {
    std::string text;
    for (const std::string& s : names) text += (text.empty() ? "" : ", ") + s;
    return text;
  };
  if (inputs.empty()) {
    if (sources.size() != 1) return "required when there are several sources (" + list(sources) + ")";
    inputs = sources;
    return "";
  }
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (std::find(streams.begin(), streams.end(), inputs[i]) == streams.end())
      return "unknown input '" + inputs[i] + "' (streams: " + list(streams) + ")";
    if (std::find(inputs.begin(), inputs.begin() + i, inputs[i]) != inputs.begin() + i)
      return "input '" + inputs[i] + "' is listed twice";
  }
  return "";
}

PluginInstanceConfig implicitPluginInstance(const std::string& type) {
  PluginInstanceConfig p = readPluginInstance(YamlMap(YAML::Node(), "", type), type, nullptr);
  p.implicit = true;
  return p;
}

// Runs `parse`, so that whatever the file holds, the caller gets one
// ConfigError of one line: yaml-cpp's own exceptions (a conversion that fails
// on an odd node) become one too, and values echoed from the file cannot break
// the line.
namespace {
template <class Parse>
auto oneLineErrors(const std::string& sourceName, Parse&& parse) -> decltype(parse()) {
  try {
    return parse();
  } catch (const ConfigError& e) {
    throw ConfigError(oneLine(e.what()));
  } catch (const YAML::Exception& e) {
    throw ConfigError(sourceName + ":" + (e.mark.is_null() ? std::string("?") : std::to_string(e.mark.line + 1)) +
                      ": " + oneLine(e.msg));
  }
}
}  // namespace

std::vector<PluginInstanceConfig> parsePluginSidecar(const std::string& yamlText, const std::string& sourceName,
                                                     const std::string& type) {
  return oneLineErrors(sourceName, [&] { return parsePluginSidecarUnchecked(yamlText, sourceName, type); });
}

Config parseConfig(const std::string& yamlText, const std::string& sourceName) {
  return oneLineErrors(sourceName, [&] { return parseConfigUnchecked(yamlText, sourceName); });
}

std::vector<PluginInstanceConfig> parsePluginSidecarUnchecked(const std::string& yamlText,
                                                              const std::string& sourceName, const std::string& type) {
  YamlMap top(loadYaml(yamlText, sourceName), "", sourceName);
  top.allowOnly({"instances"});
  std::vector<PluginInstanceConfig> instances;
  for (const YamlMap& item : top.mapList("instances")) {
    instances.push_back(readPluginInstance(item, type, nullptr));
    checkUniqueNames(instances, item);
  }
  return instances;
}

Config parseConfigUnchecked(const std::string& yamlText, const std::string& sourceName) {
  YamlMap top(loadYaml(yamlText, sourceName), "", sourceName);
  Config c;
  c.path = sourceName;
  c.settings = readSettings(top, topSchema());
  c.sources = readSources(top, c.settings.group("plugins"));
  const std::vector<std::string> sources = streamNames(c);  // no plugins read yet: the sources
  c.plugins = readPlugins(top.map("plugins"), c.settings.group("plugins"), sources);
  const StreamNames streams{sources, streamNames(c)};
  c.streams = readStreams(top, streams.all);
  // A mirror's seqs are its upstream's, with gaps and new epochs: the log
  // numbers (and reserves) seqs itself, so the two do not go together yet.
  for (const StreamConfig& stream : c.streams)
    for (const SourceConfig& source : c.sources)
      if (stream.log && source.name == stream.name && source.type() == "streamrelay" &&
          source.settings.boolean("mirror"))
        top.map("streams").map(stream.name.c_str()).fail(
            "log", "a mirrored stream (source type streamrelay, mirror: true) cannot have a log yet");
  // A redis source's seqs are its writer's: the log follows them (LogOptions::mirror).
  for (StreamConfig& stream : c.streams)
    for (const SourceConfig& source : c.sources)
      if (stream.log && source.name == stream.name && (source.type() == "redis" || source.pluginReplayable))
        stream.log->mirror = true;  // a source that reads again after its kept position (publish_mirrored too)
  for (const YamlMap& item : top.mapList("listeners")) {
    c.listeners.push_back(readListener(item, streams, c.streams));
    for (std::size_t i = 0; i + 1 < c.listeners.size(); ++i)
      if (c.listeners[i].name == c.listeners.back().name)
        item.fail("name", "'" + c.listeners.back().name + "' is used by another listener");
  }
  c.logLevel = c.settings.group("log").string("level");
  c.shutdownTimeoutMs = static_cast<int>(c.settings.integer("shutdown_timeout_ms"));
  c.writerThreads = static_cast<int>(c.settings.integer("writer_threads"));
  c.watchConfig = c.settings.boolean("watch_config");
  return c;
}

Config loadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot read the config file");
  std::stringstream text;
  text << in.rdbuf();
  return parseConfig(text.str(), path);
}

}  // namespace streamrelay
