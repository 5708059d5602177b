#include "config.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "logging.hpp"
#include "yaml_map.hpp"

namespace streamrelay {

// The parsers proper; parseConfig and parsePluginSidecar wrap them (oneLineErrors).
static Config parseConfigUnchecked(const std::string& yamlText, const std::string& sourceName);
static std::vector<PluginInstanceConfig> parsePluginSidecarUnchecked(const std::string& yamlText,
                                                                     const std::string& sourceName,
                                                                     const std::string& type);

namespace {

constexpr std::int64_t kMaxFrameBytesLimit = 1LL << 30;  // frames are stored with a 32-bit length
constexpr std::int64_t kIntMax = 2147483647;

FramingSpec readFraming(const YamlMap& m) {
  m.allowOnly({"type", "width", "byte_order", "delimiter", "strip", "size", "max_frame_bytes"});
  FramingSpec spec;
  std::string type = m.getString("type", "length-prefix");
  if (type == "length-prefix") spec.type = FramingType::LengthPrefix;
  else if (type == "delimiter") spec.type = FramingType::Delimiter;
  else if (type == "fixed") spec.type = FramingType::Fixed;
  else m.fail("type", "'" + type + "' is not a framing (length-prefix, delimiter, fixed)");

  spec.maxFrameBytes = m.getInt("max_frame_bytes", 1 << 20, 1, kMaxFrameBytesLimit);
  spec.width = static_cast<int>(m.getInt("width", 4, 1, 8));
  if (spec.width != 1 && spec.width != 2 && spec.width != 4 && spec.width != 8)
    m.fail("width", "must be 1, 2, 4 or 8, got " + std::to_string(spec.width));
  std::string order = m.getString("byte_order", "big");
  if (order == "big") spec.byteOrder = ByteOrder::Big;
  else if (order == "little") spec.byteOrder = ByteOrder::Little;
  else m.fail("byte_order", "must be big or little, got '" + order + "'");
  spec.delimiter = m.getString("delimiter", "\n");
  if (spec.delimiter.empty()) m.fail("delimiter", "must not be empty");
  spec.strip = m.getBool("strip", true);
  spec.fixedSize = m.getInt("size", 0, 0, kMaxFrameBytesLimit);

  auto onlyFor = [&](const char* key, const char* framing) {
    if (m.has(key) && type != framing) m.fail(key, "applies only to framing type " + std::string(framing));
  };
  onlyFor("width", "length-prefix");
  onlyFor("byte_order", "length-prefix");
  onlyFor("delimiter", "delimiter");
  onlyFor("strip", "delimiter");
  onlyFor("size", "fixed");
  if (spec.type == FramingType::Fixed) {
    if (spec.fixedSize == 0) m.fail("size", "fixed framing needs size >= 1");
    if (spec.fixedSize > spec.maxFrameBytes) m.fail("size", "is larger than max_frame_bytes");
  }
  return spec;
}

QueueLimits readQueue(const YamlMap& m, QueueLimits defaults) {
  m.allowOnly({"max_frames", "max_bytes", "on_full"});
  QueueLimits q = defaults;
  q.maxFrames = m.getInt("max_frames", q.maxFrames, 0, 1LL << 40);
  q.maxBytes = m.getInt("max_bytes", q.maxBytes, 0, 1LL << 40);
  if (q.maxFrames == 0 && q.maxBytes == 0) m.failHere("max_frames and max_bytes cannot both be 0 (unbounded)");
  std::string policy = m.getString("on_full", toString(q.onFull));
  if (policy == "disconnect") q.onFull = OverflowPolicy::Disconnect;
  else if (policy == "drop_oldest") q.onFull = OverflowPolicy::DropOldest;
  else if (policy == "drop_newest") q.onFull = OverflowPolicy::DropNewest;
  else if (policy == "block") q.onFull = OverflowPolicy::Block;
  else m.fail("on_full", "'" + policy + "' is not a policy (disconnect, drop_oldest, drop_newest, block)");
  return q;
}

CidrList readAllowList(const YamlMap& m) {
  std::vector<Cidr> rules;
  for (const std::string& text : m.stringList("allow")) {
    try {
      rules.push_back(Cidr::parse(text));
    } catch (const std::invalid_argument& e) {
      m.fail("allow", e.what());
    }
  }
  return CidrList(std::move(rules));
}

// Expands ${NAME} from the environment; an unset variable is an error.
std::string expandEnv(const YamlMap& m, const char* key, const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    if (text.compare(i, 2, "${") != 0) {
      out += text[i++];
      continue;
    }
    auto close = text.find('}', i);
    if (close == std::string::npos) m.fail(key, "unterminated ${ in '" + text + "'");
    std::string name = text.substr(i + 2, close - i - 2);
    const char* value = std::getenv(name.c_str());
    if (!value) m.fail(key, "environment variable " + name + " is not set");
    out += value;
    i = close + 1;
  }
  return out;
}

void checkEndpoint(const YamlMap& m, const char* key, const std::string& text) {
  auto colon = text.rfind(':');
  bool bracketsOk = text.empty() || text[0] != '[' || (colon != std::string::npos && colon > 0 && text[colon - 1] == ']');
  std::string port = colon == std::string::npos ? "" : text.substr(colon + 1);
  if (colon == std::string::npos || colon == 0 || !bracketsOk || port.empty() ||
      port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 || std::stoi(port) > 65535)
    m.fail(key, "expected HOST:PORT or [IPv6]:PORT, got '" + text + "'");
}

UpstreamConfig readUpstream(const YamlMap& m, const std::string& name) {
  m.allowOnly({"type", "host", "port", "send_on_connect", "bind", "max_publishers", "allow", "rate", "size", "count",
               "framing", "reconnect", "idle_timeout_ms"});
  UpstreamConfig u;
  u.name = name;
  std::string type = m.getString("type", "generator");
  if (type == "tcp") u.type = UpstreamType::Tcp;
  else if (type == "listen") u.type = UpstreamType::Listen;
  else if (type == "stdin") u.type = UpstreamType::Stdin;
  else if (type == "generator") u.type = UpstreamType::Generator;
  else m.fail("type", "'" + type + "' is not an upstream type (tcp, listen, stdin, generator)");

  if (u.type == UpstreamType::Tcp) {
    u.host = m.requireString("host");
    if (!u.host.empty() && u.host.front() == '[' && u.host.back() == ']') u.host = u.host.substr(1, u.host.size() - 2);
    u.port = static_cast<int>(m.getInt("port", 0, 1, 65535));
    if (!m.has("port")) m.failHere("missing required key 'port'");
  }
  u.sendOnConnect = expandEnv(m, "send_on_connect", m.getString("send_on_connect", ""));
  if (u.type == UpstreamType::Listen) {
    u.bind = m.requireString("bind");
    checkEndpoint(m, "bind", u.bind);
  }
  u.maxPublishers = static_cast<int>(m.getInt("max_publishers", 16, 1, 4096));
  if (m.has("allow") && u.type != UpstreamType::Listen) m.fail("allow", "applies only to upstream type listen");
  u.allow = readAllowList(m);
  u.rate = m.getDouble("rate", 5, 0.001, 10e6);
  u.size = m.getInt("size", 64, 1, kMaxFrameBytesLimit);
  u.count = m.getInt("count", 0, 0, 1LL << 62);
  u.framing = readFraming(m.map("framing"));
  YamlMap reconnect = m.map("reconnect");
  reconnect.allowOnly({"initial_delay_ms", "max_delay_ms"});
  u.reconnect.initialDelayMs = static_cast<int>(reconnect.getInt("initial_delay_ms", 100, 1, kIntMax));
  u.reconnect.maxDelayMs = static_cast<int>(reconnect.getInt("max_delay_ms", 30000, 1, kIntMax));
  if (u.reconnect.maxDelayMs < u.reconnect.initialDelayMs)
    reconnect.fail("max_delay_ms", "must be >= initial_delay_ms");
  u.idleTimeoutMs = static_cast<int>(m.getInt("idle_timeout_ms", 0, 0, kIntMax));
  if (u.type == UpstreamType::Generator && u.size > u.framing.maxFrameBytes)
    m.fail("size", "is larger than framing.max_frame_bytes");
  return u;
}

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

ListenerConfig readListener(const YamlMap& m, const StreamNames& streams) {
  m.allowOnly({"name", "bind", "inputs", "framing", "max_clients", "queue", "allow", "send_buffer_bytes",
               "write_deadline_ms"});
  ListenerConfig l;
  l.name = m.requireString("name");
  l.inputs = readInputs(m, streams);
  l.bind = m.requireString("bind");
  checkEndpoint(m, "bind", l.bind);
  l.where = m.where("bind");
  l.framing = readFraming(m.map("framing"));
  l.maxClients = static_cast<int>(m.getInt("max_clients", 64, 1, 100000));
  l.queue = readQueue(m.map("queue"), QueueLimits{});
  l.allow = readAllowList(m);
  if (m.getString("send_buffer_bytes", "auto") != "auto")
    l.sendBufferBytes = static_cast<int>(m.getInt("send_buffer_bytes", 0, 0, 1 << 30));
  l.writeDeadlineMs = static_cast<int>(m.getInt("write_deadline_ms", l.writeDeadlineMs, 0, kIntMax));
  return l;
}

YAML::Node loadYaml(const std::string& text, const std::string& sourceName) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(sourceName + ":" + std::to_string(e.mark.line + 1) + ": YAML syntax error: " + e.msg);
  }
}

// `streams`: resolve `inputs` now (the main config); null: keep them as
// written, resolved when the plugin loads (a sidecar file).
PluginInstanceConfig readPluginInstance(const YamlMap& m, const std::string& impliedType,
                                        const StreamNames* streams) {
  m.allowOnly(impliedType.empty()
                  ? std::initializer_list<const char*>{"name", "type", "inputs", "queue", "config", "max_failures"}
                  : std::initializer_list<const char*>{"name", "inputs", "queue", "config", "max_failures"});
  PluginInstanceConfig p;
  p.type = impliedType.empty() ? m.requireString("type") : impliedType;
  p.name = m.getString("name", p.type);
  p.inputs = streams ? readInputs(m, *streams) : m.stringList("inputs");
  p.queue = readQueue(m.map("queue"), defaultPluginQueue());
  p.maxFailures = static_cast<int>(m.getInt("max_failures", 10, 1, 1000000));
  if (m.has("config")) {
    YAML::Emitter out;
    out << YAML::Flow << m.node("config");
    p.configYaml = out.c_str();
  }
  return p;
}

void checkUniqueNames(const std::vector<PluginInstanceConfig>& instances, const YamlMap& item) {
  for (std::size_t i = 0; i + 1 < instances.size(); ++i)
    if (instances[i].name == instances.back().name)
      item.fail("name", "'" + instances.back().name + "' is used by another plugin instance");
}

// `upstream:` is one source named "upstream"; `sources:` maps names to sources.
std::vector<UpstreamConfig> readSources(const YamlMap& top) {
  const std::string file = top.source();
  if (top.has("upstream") && top.has("sources"))
    top.fail("sources", "use either `upstream:` (one source) or `sources:`, not both");
  if (top.has("upstream")) return {readUpstream(top.map("upstream"), "upstream")};
  if (!top.has("sources"))
    throw ConfigError(file + ": sources: missing (every relay needs a source: `upstream:` or `sources:`)");
  YamlMap sources = top.map("sources");
  std::vector<UpstreamConfig> list;
  for (const std::string& name : sources.keys()) {
    if (name.empty() || name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") !=
                            std::string::npos)
      sources.fail(name.c_str(), "a source name is letters, digits, '_', '-' and '.'");
    list.push_back(readUpstream(sources.map(name.c_str()), name));
  }
  if (list.empty()) sources.failHere("needs at least one source");
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
PluginsConfig readPlugins(const YamlMap& m, const std::vector<std::string>& sources) {
  m.allowOnly({"directory", "allow_insecure", "rescan_ms", "instances"});
  PluginsConfig p;
  p.directory = m.getString("directory", "");
  p.allowInsecure = m.getBool("allow_insecure", false);
  p.rescanMs = static_cast<int>(m.getInt("rescan_ms", 1000, 50, 3600000));
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
  for (const UpstreamConfig& source : config.sources) names.push_back(source.name);
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

QueueLimits defaultPluginQueue() {
  QueueLimits q;
  q.maxFrames = 100000;
  q.maxBytes = 64 << 20;
  q.onFull = OverflowPolicy::DropNewest;
  return q;
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

const char* toString(UpstreamType type) {
  switch (type) {
    case UpstreamType::Tcp: return "tcp";
    case UpstreamType::Listen: return "listen";
    case UpstreamType::Stdin: return "stdin";
    case UpstreamType::Generator: return "generator";
  }
  return "?";
}

Config parseConfigUnchecked(const std::string& yamlText, const std::string& sourceName) {
  YamlMap top(loadYaml(yamlText, sourceName), "", sourceName);
  top.allowOnly({"upstream", "sources", "listeners", "plugins", "log", "shutdown_timeout_ms", "writer_threads"});
  Config c;
  c.path = sourceName;
  c.sources = readSources(top);
  const std::vector<std::string> sources = streamNames(c);  // no plugins read yet: the sources
  c.plugins = readPlugins(top.map("plugins"), sources);
  const StreamNames streams{sources, streamNames(c)};
  for (const YamlMap& item : top.mapList("listeners")) {
    c.listeners.push_back(readListener(item, streams));
    for (std::size_t i = 0; i + 1 < c.listeners.size(); ++i)
      if (c.listeners[i].name == c.listeners.back().name)
        item.fail("name", "'" + c.listeners.back().name + "' is used by another listener");
  }
  YamlMap log = top.map("log");
  log.allowOnly({"level"});
  c.logLevel = log.getString("level", "information");
  static const char* levels[] = {"none", "fatal", "critical", "error", "warning", "notice", "information", "debug", "trace"};
  bool known = false;
  for (const char* l : levels) known = known || c.logLevel == l;
  if (!known) log.fail("level", "'" + c.logLevel + "' is not a level (error, warning, notice, information, debug, trace)");
  c.shutdownTimeoutMs = static_cast<int>(top.getInt("shutdown_timeout_ms", 5000, 0, 3600000));
  c.writerThreads = static_cast<int>(top.getInt("writer_threads", 0, 0, 64));
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
