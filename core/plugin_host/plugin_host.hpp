// SPDX-License-Identifier: Apache-2.0
#pragma once
// PluginHost: loads every .so in plugins.directory, creates the configured
// instances, and follows the directory while the relay runs: a file dropped in
// is loaded, a replaced file is reloaded, a removed file is unloaded — while
// frames flow and other consumers see nothing of it.
//
// Discovery: POCO's DirectoryWatcher (inotify) asks for a rescan on any change;
// a periodic rescan (rescan_ms) and SIGHUP cover missed events. A file seen
// for the first time is given a moment to settle (a copy in progress); a file
// that fails to load is logged once and tried again when it changes.
//
// Threads: one host thread does every scan, load and unload; instances run on
// their own workers. Thread safe: start(), requestRescan(), closeQueues(), stop(),
// instances(). The host's own state is owned (thread_owner.hpp) by the thread
// that made it, which calls start() (the first scan), then by the host
// thread, then by the thread that calls stop() once the host thread ended.

#include <Poco/DirectoryWatcher.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bus.hpp"
#include "config.hpp"
#include "plugin_instance.hpp"
#include "thread_owner.hpp"

namespace streamrelay {

class PluginHost {
 public:
  // `streams`: every stream's bus by name (sources and configured instances);
  // an instance subscribes to its inputs and emits on the stream of its name.
  // `sources`: the source names (the default input with exactly one).
  PluginHost(const PluginsConfig& config, std::map<std::string, Bus*> streams, std::vector<std::string> sources,
             PluginInstance::StatsJson stats, int shutdownTimeoutMs);
  ~PluginHost();
  PluginHost(const PluginHost&) = delete;
  PluginHost& operator=(const PluginHost&) = delete;

  // Loads what is there now, then follows the directory on the host thread.
  void start();
  void requestRescan();
  // Closes every instance's queue now and tells the plugins they are
  // stopping: releases a publisher blocked on a `block` queue.
  void closeQueues();
  // Ends the host thread, drains every instance (until the deadline), destroys
  // them and unloads the libraries. Returns how log lines name the instances
  // whose worker is still running (stuck in the plugin's code): abandoned now
  // or earlier, with their libraries still loaded.
  std::vector<std::string> stop(std::chrono::steady_clock::time_point deadline);
  std::vector<std::shared_ptr<PluginInstance>> instances() const;
  // Thread safe: the plugin instances of a reloaded config, and every stream's
  // bus (those of instances added now included). The host thread applies it at
  // its next scan: each loaded plugin whose instances changed is reloaded
  // through the hot-replace path (gapless, all or nothing). Returns the names
  // of the instances added, removed or changed.
  std::vector<std::string> reconfigure(std::vector<PluginInstanceConfig> instances,
                                       std::map<std::string, Bus*> streams);
  // Plugin files whose current version did not load, with the reason, by path.
  std::map<std::string, std::string> loadFailures() const;

 private:
  // What identifies one version of a plugin file (and its sidecar).
  struct Signature {
    std::uint64_t inode = 0, size = 0;
    std::int64_t mtimeNs = 0, sidecarMtimeNs = 0;
    bool operator==(const Signature& o) const {
      return inode == o.inode && size == o.size && mtimeNs == o.mtimeNs && sidecarMtimeNs == o.sidecarMtimeNs;
    }
  };
  struct LoadedFile {
    Signature signature;
    std::string type;
    std::vector<std::shared_ptr<PluginInstance>> instances;
  };

  void run(std::chrono::milliseconds firstWait);
  enum class ScanMoment { AtStart, WhileRunning };
  std::chrono::milliseconds scan(ScanMoment moment);
  bool directoryIsSafe();
  bool settled(const std::string& path, const Signature& signature);
  void watchDirectory();
  void load(const std::string& path, const Signature& signature);
  // Creates every configured instance; `refusals` collects one line per
  // instance whose create() refused.
  std::vector<std::shared_ptr<PluginInstance>> createInstances(const std::shared_ptr<PluginLibrary>& library,
                                                               const std::vector<PluginInstanceConfig>& configs,
                                                               std::string& refusals);
  void refuse(const std::string& path, const Signature& signature, const std::string& why);
  std::vector<std::shared_ptr<PluginInstance>> swapIn(const std::string& path, LoadedFile next);
  void unload(const std::string& path, CloseReason reason);
  std::vector<PluginInstanceConfig> instanceConfigs(const std::string& type, const std::string& path);
  std::string resolveInstanceInputs(const PluginLibrary& library, PluginInstanceConfig& c) const;
  void stopInstances(std::vector<std::shared_ptr<PluginInstance>>& instances, CloseReason reason,
                     std::chrono::steady_clock::time_point deadline);
  void onDisabled(PluginInstance& instance);
  // The buses an instance reads (its resolved inputs).
  std::vector<Bus*> inputsOf(const PluginInstance& instance) const;
  void unsubscribe(const PluginInstance& instance);
  void onDirectoryEvent(const void* sender, const Poco::DirectoryWatcher::DirectoryEvent& event);

  // Host thread (and construction, start, stop): config_.instances is
  // replaced by a reconfigure. streams_ and streamNames_ grow then too, under
  // streamsMutex_ (instance workers read streams_ when they unsubscribe).
  PluginsConfig config_;
  std::map<std::string, Bus*> streams_;
  mutable std::mutex streamsMutex_;
  const std::vector<std::string> sources_;
  std::vector<std::string> streamNames_;  // the keys of streams_
  struct Reconfiguration {
    std::vector<PluginInstanceConfig> instances;
    std::map<std::string, Bus*> streams;
    std::set<std::string> types;  // whose instances changed
  };
  std::mutex pendingMutex_;
  std::vector<Reconfiguration> pending_;  // applied in order by the host thread
  std::vector<PluginInstanceConfig> requested_;  // the instances last applied (under pendingMutex_)
  std::set<std::string> reloadNow_;       // host thread only: paths to load again at once
  void applyReconfigurations();
  PluginInstance::StatsJson stats_;
  const std::chrono::milliseconds drainTimeout_;
  std::string privateDir_;
  std::thread thread_;
  std::unique_ptr<Poco::DirectoryWatcher> watcher_;

  std::mutex wakeMutex_;
  std::condition_variable wake_;
  bool rescanRequested_ = false;
  bool stopping_ = false;

  mutable std::mutex filesMutex_;           // guards files_, loadFailures_ (read by stats)
  std::map<std::string, LoadedFile> files_;  // by path; changed on the host thread only
  std::map<std::string, std::string> loadFailures_;  // by path: why its current version did not load
  std::map<std::string, std::shared_ptr<PluginMetrics>> metrics_;  // host thread only: by instance name
  struct Settling {
    Signature signature;
    std::chrono::steady_clock::time_point since;
  };
  std::map<std::string, Signature> failed_;  // host thread only: versions that did not load
  std::map<std::string, Settling> settling_; // host thread only: versions seen, not yet loaded
  std::string lastDirectoryProblem_;         // host thread only: logged once
  ThreadOwner owner_;                        // of everything marked "host thread" (see the class comment)
};

}  // namespace streamrelay
