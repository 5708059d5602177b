// SPDX-License-Identifier: Apache-2.0
#pragma once
// Relay: the running service, wired from a Config — one bus per stream, the
// sources that publish on them, the writer threads, the listeners and the
// plugin host — with the start and stop order in one place.
//
// Threads: one per source (each the only publisher on its stream); one per writer;
// each listener's TCPServer acceptor and its small hand-off pool; the plugin
// host's thread and one worker per plugin instance; the caller's thread, which
// calls start() and stop().

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bus.hpp"
#include "config.hpp"
#include "plugin_host.hpp"
#include "subscriber_listener.hpp"
#include "subscriber_writer.hpp"
#include "upstream_source.hpp"

namespace streamrelay {

class Relay {
 public:
  // Binds every listener (and a listen source); throws std::runtime_error with
  // one line naming what could not be set up. Nothing runs yet.
  explicit Relay(const Config& config);
  ~Relay();
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  void start();
  // Stops accepting, stops the upstream, sends subscribers what they have
  // queued (within shutdown_timeout_ms), closes them. Idempotent. Returns how
  // log lines name the plugin instances that did not stop (stuck in a
  // plugin's code, still running): the caller must then end the process
  // without destroying the relay, which those threads may still call.
  std::vector<std::string> stop();

  // Thread safe: look for new, changed and removed plugins now (SIGHUP).
  void rescanPlugins();
  // Applies a new, already validated config while running (SIGHUP): plugin
  // instances added, removed or reconfigured (through the plugins' hot
  // replace), listeners added, removed or changed (a changed one is replaced:
  // its subscribers are closed with reason `removed`) and the log level; one
  // log line per change; a source whose keys changed is restarted alone (its
  // stream goes on), sources added start and removed ones stop. What it
  // cannot apply yet (streams, the plugins directory, writer threads) is
  // logged as needing a restart. Unchanged listeners and the
  // sources are not touched. Called from the thread that calls start()/stop().
  void reload(const Config& next);
  // Thread safe: the relay's figures as JSON (the plugin host API's stats).
  std::string statsJson() const;

  std::uint64_t epoch() const { return epoch_; }
  std::uint64_t framesReceived() const;

 private:
  std::vector<Bus*> buses(const std::vector<std::string>& names) const;
  int reloadSources(const Config& next);  // reload()'s part for sources; returns the changes made

  Config config_;  // what runs: reload() changes its listeners and log level
  const std::uint64_t epoch_;  // random id of this run, shared by every stream
  Histogram frameSizes_ = makeFrameSizeHistogram();  // every frame received, all sources
  Histogram writeLatency_ = makeLatencyHistogram();  // receive-to-write, every subscriber
  // One bus per stream, by name: declared before the sources that publish on
  // them and the listeners and plugins that subscribe.
  // Guarded by streamsMutex_ where it can grow (a reload adds the streams of
  // new plugin instances) while statsJson reads it.
  std::map<std::string, std::unique_ptr<Bus>> streams_;
  mutable std::mutex streamsMutex_;
  // Index-aligned with config_.sources; both change under streamsMutex_ (a reload).
  std::vector<std::unique_ptr<UpstreamSource>> sources_;
  // Declared before writers_: sessions report to their listener when the
  // writers close them, so listeners must be destroyed last. Guarded by
  // listenersMutex_ (reload changes it while statsJson reads it).
  std::vector<std::unique_ptr<SubscriberListener>> listeners_;
  mutable std::mutex listenersMutex_;
  WriterPool writers_;
  std::unique_ptr<PluginHost> plugins_;  // null without plugins.directory
  bool stopped_ = false;
};

int defaultWriterThreads();

}  // namespace streamrelay
