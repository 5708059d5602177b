#pragma once
// Config: the relay's configuration, read from one YAML file and validated in
// full before anything starts. Every error names the key path and its line.

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "cidr.hpp"
#include "framing.hpp"
#include "subscription_queue.hpp"

namespace streamrelay {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ReconnectConfig {
  int initialDelayMs = 100;
  int maxDelayMs = 30000;
};

enum class UpstreamType { Tcp, Listen, Stdin, Generator };
const char* toString(UpstreamType type);

// One source: it publishes the stream named after it.
struct UpstreamConfig {
  std::string name = "upstream";
  UpstreamType type = UpstreamType::Generator;
  std::string host;              // tcp
  int port = 0;                  // tcp
  std::string sendOnConnect;     // tcp, ${ENV} already expanded
  std::string bind;              // listen
  int maxPublishers = 16;        // listen
  CidrList allow;                // listen: publishers admitted (empty: everyone)
  double rate = 5;               // generator: frames per second
  std::size_t size = 64;         // generator: payload bytes
  std::uint64_t count = 0;       // generator: 0 = endless
  FramingSpec framing;
  ReconnectConfig reconnect;
  int idleTimeoutMs = 0;
};

struct ListenerConfig {
  std::string name;
  std::string bind;
  std::vector<std::string> inputs;  // the streams its subscribers get (resolved: never empty)
  FramingSpec framing;
  int maxClients = 64;
  QueueLimits queue;
  CidrList allow;
  // SO_SNDBUF per subscriber: kSendBufferAuto caps a near peer's buffer (see
  // subscriber_listener.cpp) and leaves a far one to the kernel; 0 is always
  // the kernel's autotuning; > 0 is that many bytes for everyone.
  static constexpr int kSendBufferAuto = -1;
  int sendBufferBytes = kSendBufferAuto;
  int writeDeadlineMs = 10000;   // a socket that accepts no byte this long while frames wait is closed; 0 = never
  std::string where;             // "FILE:LINE" of its bind key, for start-up errors
};

// One plugin instance: `type` is the plugin's name, `configYaml` its own
// sub-tree, passed to the plugin as text.
struct PluginInstanceConfig {
  std::string name;
  std::string type;
  std::vector<std::string> inputs;  // the streams it gets (empty until resolved with resolveInputs)
  QueueLimits queue;
  std::string configYaml = "{}";
  int maxFailures = 10;          // consecutive on_frame failures before the instance is disabled
  bool implicit = false;         // no config anywhere: the one default instance of a dropped-in plugin
};

struct PluginsConfig {
  std::string directory;         // empty: no plugins
  bool allowInsecure = false;
  int rescanMs = 1000;
  std::vector<PluginInstanceConfig> instances;
};

// Queue defaults for plugin instances: a plugin that falls behind loses the
// newest frames (counted) rather than slowing the relay; `block` is opt-in.
QueueLimits defaultPluginQueue();

struct Config {
  std::string path;
  std::vector<UpstreamConfig> sources;  // `upstream:` is one source named "upstream"
  std::vector<ListenerConfig> listeners;
  PluginsConfig plugins;
  std::string logLevel = "information";
  int shutdownTimeoutMs = 5000;
  int writerThreads = 0;         // 0 = one per CPU core, at most 4
};

// Reads and validates; throws ConfigError("FILE:LINE: key.path: what is wrong").
Config loadConfig(const std::string& path);
Config parseConfig(const std::string& yamlText, const std::string& sourceName);
// Reads a sidecar NAME.yaml for plugin type `type`: `instances:` as in
// plugins.instances, `type` implied. Throws ConfigError.
std::vector<PluginInstanceConfig> parsePluginSidecar(const std::string& yamlText, const std::string& sourceName,
                                                     const std::string& type);
// Resolves a consumer's `inputs`: empty means the only source (an error with
// several); every name must be one of `streams` (sources and plugin
// instances), once. Returns "" or what is wrong (one line, no location).
std::string resolveInputs(std::vector<std::string>& inputs, const std::vector<std::string>& sources,
                          const std::vector<std::string>& streams);
// Every stream of a config: its sources, then its plugin instances.
std::vector<std::string> streamNames(const Config& config);

// The effective configuration (defaults filled in) as YAML.
std::string effectiveConfigYaml(const Config& config);

}  // namespace streamrelay
