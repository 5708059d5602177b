// SPDX-License-Identifier: Apache-2.0
#pragma once
// Config: the relay's configuration, read from one YAML file and validated in
// full before anything starts. Every error names the key path and its line.

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <memory>
#include <string>
#include <vector>

#include "cidr.hpp"
#include "framing.hpp"
#include "key_extractor.hpp"
#include "log_options.hpp"
#include "replay_ring.hpp"
#include "schema.hpp"
#include "subscription_queue.hpp"

namespace streamrelay {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One source: it publishes the stream named after it. Its keys are those of
// its type (see sources/source_types.def), validated, defaults filled in.
struct SourceCounters;

struct SourceConfig {
  std::string name = "upstream";
  FramingSpec framing;
  Settings settings;
  // Set only for a source run by another (a leased source's provider and
  // follower): it counts into the other's counters, which outlive it.
  std::shared_ptr<SourceCounters> sharedCounters;
  // A type a plugin library provides (plugin_source_types.hpp): its mapping
  // without `type`, as flow YAML, for the plugin's create.
  bool fromPlugin = false;
  std::string pluginConfigYaml;
  // Its plugin says the provider replays after a position (its log then
  // follows the published seqs: LogOptions::mirror).
  bool pluginReplayable = false;
  const std::string& type() const { return settings.type(); }
};

// What a stream keeps, and how its frames' keys are found: `streams: {NAME: {replay: ..., key: ...}}`.
struct StreamConfig {
  std::string name;
  ReplayLimits replay;
  std::size_t lastValueKeys = 0;  // last_value.max_keys (0: none kept)
  std::optional<KeyRule> key;  // none: its frames have no key (unless a processor gives them one)
  std::optional<LogOptions> log;  // none: the stream is not kept on disk
  Settings settings;
};

struct ListenerConfig {
  std::string name;
  std::string bind;
  std::vector<std::string> inputs;  // the streams its subscribers get (resolved: never empty)
  FramingSpec framing;
  int maxClients = 64;           // admitted subscribers
  int maxPendingClients = 32;    // clients still in their TLS handshake or hello (not counted in maxClients)
  QueueLimits queue;
  CidrList allow;
  // SO_SNDBUF per subscriber: kSendBufferAuto caps a near peer's buffer (see
  // subscriber_listener.cpp) and leaves a far one to the kernel; 0 is always
  // the kernel's autotuning; > 0 is that many bytes for everyone.
  static constexpr int kSendBufferAuto = -1;
  int sendBufferBytes = kSendBufferAuto;
  int writeDeadlineMs = 10000;   // a socket that accepts no byte this long while frames wait is closed; 0 = never
  std::size_t replayFrames = 0;  // a new subscriber first gets up to this many frames of each input's ring
  std::vector<std::string> select;  // key patterns its subscribers get at most (empty: every frame)
  std::string protocol = "raw";  // a registered listener protocol (subscribers/listener_protocols.def); its own keys are in `settings`
  int helloTimeoutMs = 5000;     // protocols whose clients speak first: the set-up (hello, request) must be done by then
  int heartbeatMs = 5000;        // protocols with heartbeats: a subscriber sent nothing this long gets one; 0 = never
  struct Tls {
    bool enabled = false;
    std::string certFile, keyFile, clientCaFile;
    bool requireClientCert = false;
    int handshakeTimeoutMs = 5000;
  } tls;
  struct Auth {
    std::vector<std::string> tokens;
    std::string tokensFile;
    std::string jwtSecret;         // HS256
    std::string jwtPublicKeyFile;  // RS256
    std::string jwtAudience;
    std::string jwtInputsClaim = "inputs";
    std::string jwtSelectClaim = "select";
    int jwtLeewayS = 30;           // clock difference allowed when exp, nbf and iat are checked
    bool allowInsecure = false;    // read tokens_file and public_key_file even if others may write them
    bool enabled() const {
      return !tokens.empty() || !tokensFile.empty() || !jwtSecret.empty() || !jwtPublicKeyFile.empty();
    }
  } auth;
  std::string where;             // "FILE:LINE" of its bind key, for start-up errors
  Settings settings;             // what the fields above were read from (printed by --check-config)
};

// Where a plugin instance runs: on a worker thread of the relay, or in a
// child process of its own (plugin_host/isolated_instance.hpp).
enum class PluginIsolation { InProcess, Process };

// `isolation: process`: the limits of the instance's child process.
struct PluginProcessConfig {
  std::uint64_t memoryLimitBytes = 0;   // resident memory above which the child is killed; 0: no limit
  int watchdogMs = 10000;               // no frame acknowledged this long while frames wait: killed; 0: never
  int restartInitialDelayMs = 100;      // backoff before a restart, doubling while no frame is acknowledged
  int restartMaxDelayMs = 30000;
  std::size_t ringBytes = 4 << 20;      // the shared-memory ring that carries frames to the child
  bool seccomp = true;                  // the child's system calls are limited to an allow-list
};

// One plugin instance: `type` is the plugin's name, `configYaml` its own
// sub-tree, passed to the plugin as text.
// A YAML::Node held as a handle. yaml-cpp's Node::operator= writes through
// to the node it refers to, which every copy shares: assigning one config's
// node over another's changed the node a copy on another thread was reading
// (the plugin host's, during a reload; TSan saw it). reset() rebinds this
// handle alone.
struct YamlHandle {
  YAML::Node node;
  YamlHandle() = default;
  YamlHandle(const YAML::Node& n) : node(n) {}  // NOLINT: converting, as a Node is assigned
  YamlHandle(const YamlHandle&) = default;
  YamlHandle& operator=(const YamlHandle& other) {
    node.reset(other.node);
    return *this;
  }
};

struct PluginInstanceConfig {
  std::string name;
  std::string type;
  // The streams it gets. Empty until resolved with resolveInputs: in the
  // main config with exactly one source (or given), else when its plugin loads.
  std::vector<std::string> inputs;
  QueueLimits queue;
  std::string configYaml = "{}";
  int maxFailures = 10;          // consecutive on_frame failures before the instance is disabled
  std::size_t maxEmitBytes = 16 << 20;  // what one drain's emits may hold before they are published
  bool implicit = false;         // no config anywhere: the one default instance of a dropped-in plugin
  PluginIsolation isolation = PluginIsolation::InProcess;
  PluginProcessConfig process;   // isolation: process
  bool allowInsecureFiles = false;  // plugins.allow_insecure (set by the plugin host): check_file_trust trusts all
  Settings settings;
  // `config:` as read from the file, with its line marks, for checking it
  // against the keys its plugin declares (--check-config): the node, its
  // path ("plugins.instances[0].config") and the file's name.
  YamlHandle configNode;
  std::string configPath, configSource;
};

struct PluginsConfig {
  std::string directory;         // empty: no plugins
  bool allowInsecure = false;
  int rescanMs = 1000;
  std::vector<PluginInstanceConfig> instances;
  Settings settings;
};

struct Config {
  std::string path;
  std::vector<SourceConfig> sources;  // `upstream:` is one source named "upstream"
  std::vector<StreamConfig> streams;  // only the streams that keep something
  std::vector<ListenerConfig> listeners;
  PluginsConfig plugins;
  std::string logLevel = "information";
  int shutdownTimeoutMs = 5000;
  int writerThreads = 0;         // 0 = one per CPU core, at most 4
  bool watchConfig = false;      // reload when the file changes (read at start)
  Settings settings;             // the top level's own keys
};

// Reads and validates; throws ConfigError("FILE:LINE: key.path: what is wrong").
Config loadConfig(const std::string& path);
Config parseConfig(const std::string& yamlText, const std::string& sourceName);
// Reads a sidecar NAME.yaml for plugin type `type`: `instances:` as in
// plugins.instances, `type` implied. Throws ConfigError.
std::vector<PluginInstanceConfig> parsePluginSidecar(const std::string& yamlText, const std::string& sourceName,
                                                     const std::string& type);
// The one instance of a plugin that no config mentions: named after its
// type, every key at its default.
PluginInstanceConfig implicitPluginInstance(const std::string& type);
// Resolves a consumer's `inputs`: empty means the only source (an error with
// several); every name must be one of `streams` (sources and plugin
// instances), once. Returns "" or what is wrong (one line, no location).
std::string resolveInputs(std::vector<std::string>& inputs, const std::vector<std::string>& sources,
                          const std::vector<std::string>& streams);
// Every stream of a config: its sources, then its plugin instances.
std::vector<std::string> streamNames(const Config& config);

// The keys of `config:` of each plugin type that declares them (ABI 1.2
// config_keys), by type; their Schemas are owned elsewhere.
using PluginConfigSchemas = std::map<std::string, const Schema*>;

// Checks the `config:` of every plugin instance of the main config whose
// plugin declares its keys, as the relay's own keys are checked. Throws
// ConfigError ("FILE:LINE: plugins.instances[0].config.KEY: what is wrong").
void checkPluginConfigs(const Config& config, const PluginConfigSchemas& plugins);

// The effective configuration (defaults filled in) as YAML. A plugin
// instance's `config:` prints by its plugin's declared keys where `plugins`
// has them (defaults filled in, secrets "(set)"), else by the rule of
// secret_mask.hpp.
std::string effectiveConfigYaml(const Config& config, const PluginConfigSchemas& plugins = {});
// Every key the config file may hold, one per line (streamrelay --list-keys),
// with the keys of the plugins in `plugins`, and those of the source types
// plugin libraries provide (`pluginSources`, by type).
std::string configKeysReference(const PluginConfigSchemas& plugins = {}, const PluginConfigSchemas& pluginSources = {});
// The relay's keys as Markdown tables (--list-keys --format markdown):
// docs/configuration.md.
std::string configKeysMarkdown();

}  // namespace streamrelay
