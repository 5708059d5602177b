// SPDX-License-Identifier: Apache-2.0
#pragma once
// HostApi: the host API table a plugin instance is given (plugin.h's
// streamrelay_host_api), one for each instance. Its C functions check and
// shape what the plugin passes (NULLs, sizes, one-line messages, secrets
// masked), then call the instance's HostServices.
//
// It is the one implementation of the host API: however an instance runs (in
// the relay's process, or in a process of its own), it implements
// HostServices and hands the plugin this table, so the plugin sees the same
// host, function for function, and `supports` answers the same.
//
// Thread safe as the ABI promises (any thread), provided the services are.
// Built before create(), kept until destroy() has returned.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "plugin_metrics.hpp"
#include "streamrelay/plugin.h"

namespace streamrelay {

// What an instance's host does for its plugin. Called from any thread the
// plugin calls from, unless a function says otherwise.
class HostServices {
 public:
  virtual ~HostServices() = default;
  // `line` is one line, masked, prefixed with "plugin NAME: ".
  virtual void log(int level, const std::string& line) = 0;
  // The figures of the instance's name (counters, gauges).
  virtual PluginMetrics& metrics() = 0;
  virtual std::string statsJson() = 0;
  virtual const std::string& instanceName() const = 0;
  virtual bool stopping() const = 0;
  // Publishes one frame on the instance's stream (`key` may be empty); false
  // if it cannot (no stream, or over the emit cap from another thread).
  virtual bool emit(std::string_view data, std::string_view key) = 0;
  // ABI retain/release: null if `frame` is not one of the current call's.
  virtual streamrelay_retained* retain(const streamrelay_frame* frame) = 0;
  virtual void release(streamrelay_retained* retained) = 0;
  // plugins.allow_insecure: check_file_trust trusts every file.
  virtual bool trustsAnyFile() const = 0;
};

class HostApi {
 public:
  // What this host offers besides the functions every host has.
  struct Offers {
    bool emit = false;    // the instance has a stream of its own
    bool retain = false;  // the frames handed over can be retained
  };
  // `secrets`: values the plugin's config declares secret; masked in every
  // line the plugin has logged (besides the userinfo of URLs, always masked).
  HostApi(HostServices& services, Offers offers, std::vector<std::string> secrets = {});
  HostApi(const HostApi&) = delete;
  HostApi& operator=(const HostApi&) = delete;

  const streamrelay_host_api* table() const { return &api_; }
  // What a plugin wrote (a log line, an error), as the relay prints it: one
  // line, without URL credentials or the config's secret values.
  std::string fromPlugin(const char* message) const;

 private:
  static HostApi& self(void* host) { return *static_cast<HostApi*>(host); }
  static void log(void* host, int level, const char* message);
  static void addCounter(void* host, const char* name, std::uint64_t delta);
  static std::size_t statsJson(void* host, char* buffer, std::size_t capacity);
  static const char* instanceName(void* host);
  static int stopping(void* host);
  static void setGauge(void* host, const char* name, double value);
  static int supports(void* host, std::size_t offset);
  static int emit(void* host, const std::uint8_t* data, std::size_t size);
  static streamrelay_counter* counter(void* host, const char* name);
  static void counterAdd(void* host, streamrelay_counter* counter, std::uint64_t delta);
  static streamrelay_gauge* gauge(void* host, const char* name);
  static void gaugeSet(void* host, streamrelay_gauge* gauge, double value);
  static streamrelay_retained* retain(void* host, const streamrelay_frame* frame);
  static void release(void* host, streamrelay_retained* retained);
  static int emitKeyed(void* host, const std::uint8_t* data, std::size_t size, const char* key, std::size_t keySize);
  static int checkFileTrust(void* host, const char* path, char* error, std::size_t errorSize);

  HostServices& services_;
  const Offers offers_;
  const std::vector<std::string> secrets_;
  streamrelay_host_api api_{};
};

}  // namespace streamrelay
