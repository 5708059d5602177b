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

struct UpstreamConfig {
  UpstreamType type = UpstreamType::Generator;
  std::string host;              // tcp
  int port = 0;                  // tcp
  std::string sendOnConnect;     // tcp, ${ENV} already expanded
  std::string bind;              // listen
  int maxPublishers = 16;        // listen
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
  FramingSpec framing;
  int maxClients = 64;
  QueueLimits queue;
  CidrList allow;
  int sendBufferBytes = 0;       // 0 = the kernel's default
  std::string where;             // "FILE:LINE" of its bind key, for start-up errors
};

struct Config {
  std::string path;
  UpstreamConfig upstream;
  std::vector<ListenerConfig> listeners;
  std::string logLevel = "information";
  int shutdownTimeoutMs = 5000;
  int writerThreads = 0;         // 0 = one per CPU core, at most 4
};

// Reads and validates; throws ConfigError("FILE:LINE: key.path: what is wrong").
Config loadConfig(const std::string& path);
Config parseConfig(const std::string& yamlText, const std::string& sourceName);
// The effective configuration (defaults filled in) as YAML.
std::string effectiveConfigYaml(const Config& config);

}  // namespace streamrelay
