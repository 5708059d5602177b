// SPDX-License-Identifier: Apache-2.0
#pragma once
// HostedInstance: what the plugin host and the stats see of one configured
// plugin instance, wherever its plugin runs: on a worker thread of the relay
// (PluginInstance, `isolation: in_process`) or in a child process of its own
// (IsolatedInstance, `isolation: process`). Both own a queue on the bus and
// follow the same life: create, start, beginStop, join (or abandon).
//
// Thread safe, as each implementation says.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "config.hpp"
#include "plugin_metrics.hpp"
#include "subscription_queue.hpp"

namespace streamrelay {

// isolation: process — how the instance's child processes are doing.
struct IsolationStatus {
  bool isolated = false;        // false: the plugin runs in the relay's process
  long pid = 0;                 // of the running child (0: none now)
  std::uint64_t framesInFlight = 0;  // taken from the queue for the child, not yet acknowledged
  std::uint64_t restarts = 0, watchdogKills = 0, memoryLimitKills = 0;  // since the instance name first ran
  std::string lastExit;         // how the last child ended ("signal SIGSEGV", "watchdog", ...); "" if none has
};

class HostedInstance {
 public:
  using StatsJson = std::function<std::string()>;
  // Called (from the instance's own thread) when the instance disables itself.
  using OnDisabled = std::function<void(HostedInstance&)>;

  virtual ~HostedInstance() = default;

  // Creates the plugin's instance (its create()); false with `error` set if it
  // refused. Called once, before start().
  virtual bool create(std::string& error) = 0;
  virtual void start() = 0;
  // Closes the queue; what is queued is handed to the plugin until the
  // deadline, then it is flushed and destroyed.
  virtual void beginStop(CloseReason reason, std::chrono::steady_clock::time_point deadline) = 0;
  // Waits until the instance has ended, at most until `deadline`; true if it
  // ended (or never started).
  virtual bool join(std::chrono::steady_clock::time_point deadline) = 0;
  // Lets an instance that did not end run on unowned: the caller keeps it
  // alive for as long as the process runs.
  virtual void abandon() = 0;
  virtual bool ended() const = 0;

  // "NAME (type TYPE, file PATH)": how log lines name this instance.
  virtual const std::string& description() const = 0;
  virtual const std::string& name() const = 0;
  virtual const PluginInstanceConfig& config() const = 0;
  virtual const std::string& type() const = 0;
  virtual const QueuePtr& queue() const = 0;
  virtual bool disabled() const = 0;
  // Failures, and the counters and gauges the plugin keeps through the host API.
  virtual const PluginMetrics& metrics() const = 0;
  virtual IsolationStatus isolation() const { return {}; }
};

}  // namespace streamrelay
