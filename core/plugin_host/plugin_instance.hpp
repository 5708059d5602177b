// SPDX-License-Identifier: Apache-2.0
#pragma once
// PluginInstance: one configured instance of a plugin — its bounded queue on
// the bus and the worker thread that feeds it frames.
//
// A callback that fails (returns an error, or throws inside a C++ plugin) is
// logged and counted; after max_failures in a row the instance is disabled:
// its queue closes and the relay goes on without it. A worker that does not
// end by its stop deadline (a plugin stuck in on_frame) is abandoned: the
// host keeps the instance, and so its library, alive for as long as the
// process runs (see PluginHost::stopInstances). A fatal signal on the worker
// names the instance (fatal_signal.hpp).
//
// Thread safe: start(), beginStop(), join(), abandon(), ended(), counters. The
// plugin's callbacks run on the worker thread only (create on the caller's,
// before start()). Its owner (thread_owner.hpp): the thread that made it,
// then the worker from its start; the destructor's thread once the worker
// has ended (or if it never started).
//
// The instance's stream (output) is published by its worker only: the worker
// claims the stream when it starts, which is after the version it replaces
// has ended or been abandoned. An instance that never started (a refused
// replacement) or that was abandoned publishes nothing more: what it emits is
// dropped, with a line.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "bus.hpp"
#include "config.hpp"
#include "plugin_library.hpp"
#include "plugin_metrics.hpp"
#include "subscription_queue.hpp"
#include "thread_owner.hpp"

namespace streamrelay {

class PluginInstance {
 public:
  using StatsJson = std::function<std::string()>;
  // Called (from the worker) when the instance disables itself.
  using OnDisabled = std::function<void(PluginInstance&)>;

  // `metrics` belongs to the instance name and outlives this version of it.
  // `output`: the bus of the stream it emits on (null: it cannot emit).
  PluginInstance(std::shared_ptr<PluginLibrary> library, PluginInstanceConfig config,
                 std::shared_ptr<PluginMetrics> metrics, Bus* output, StatsJson stats, OnDisabled onDisabled);
  // Destroys the plugin's instance. The worker must have ended (joined) or
  // never started: an abandoned instance is never destroyed.
  ~PluginInstance();
  PluginInstance(const PluginInstance&) = delete;
  PluginInstance& operator=(const PluginInstance&) = delete;

  // Calls the plugin's create(); false with `error` set if it refused.
  bool create(std::string& error);
  void start();
  // Closes the queue; the worker hands what is queued to the plugin until the
  // deadline, then flushes and destroys it.
  void beginStop(CloseReason reason, std::chrono::steady_clock::time_point deadline);
  // Waits until the worker has ended, at most until `deadline`; true if it
  // ended (and was joined) or never started.
  bool join(std::chrono::steady_clock::time_point deadline);
  // Lets a worker that did not end run on unowned: the caller must keep this
  // instance alive for as long as the process runs. From now on it never
  // publishes on its stream (its replacement may start).
  void abandon();
  // True once the worker has ended (or never started).
  bool ended() const;
  // "NAME (type TYPE, file PATH)": how log lines name this instance.
  const std::string& description() const { return description_; }

  const std::string& name() const { return config_.name; }
  const PluginInstanceConfig& config() const { return config_; }
  const std::string& type() const { return library_->name(); }
  const QueuePtr& queue() const { return queue_; }
  bool disabled() const { return disabled_.load(); }
  // Failures, and the counters and gauges the plugin keeps through the host API.
  const PluginMetrics& metrics() const { return *metrics_; }

 private:
  void run();
  void deliver(const FrameSpan& span);
  void recordFailure(const char* what, const char* message);
  void callFlush();
  void finish();
  void signalEnded();

  // The host API table's functions; `host` is this instance.
  static void apiLog(void* host, int level, const char* message);
  static void apiAddCounter(void* host, const char* name, std::uint64_t delta);
  static std::size_t apiStatsJson(void* host, char* buffer, std::size_t capacity);
  static const char* apiInstanceName(void* host);
  static int apiStopping(void* host);
  static void apiSetGauge(void* host, const char* name, double value);
  static int apiSupports(void* host, std::size_t offset);
  static int apiEmit(void* host, const std::uint8_t* data, std::size_t size);
  void publishEmitted();

  std::shared_ptr<PluginLibrary> library_;  // outlives self_: unloaded after destroy()
  const PluginInstanceConfig config_;
  const std::shared_ptr<PluginMetrics> metrics_;
  Bus* const output_;
  std::mutex emitMutex_;         // guards emitted_: emit() may come from any thread
  FrameBatchBuilder emitted_;    // frames emitted since the last publish
  StatsJson stats_;
  OnDisabled onDisabled_;
  streamrelay_host_api api_{};
  void* self_ = nullptr;
  QueuePtr queue_;
  const std::string description_;
  const std::string crashNote_;  // what a fatal signal in the plugin's code prints
  std::thread worker_;
  mutable std::mutex endMutex_;
  std::condition_variable endChanged_;
  bool ended_ = true;  // guarded by endMutex_: false from start() until the worker's last step
  std::atomic<std::int64_t> deadlineNs_{INT64_MAX};  // steady clock; frames left after it are dropped
  std::atomic<bool> disabled_{false};
  std::atomic<bool> stopping_{false};
  int consecutiveFailures_ = 0;  // worker thread only
  ThreadOwner owner_;            // see the class comment
  bool publishing_ = false;      // owner only: its worker started, so it is its stream's publisher
  std::atomic<bool> abandoned_{false};
};

}  // namespace streamrelay
