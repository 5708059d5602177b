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
#include "config_diff.hpp"
#include "log_replays.hpp"
#include "log_writer.hpp"
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
  // Applies a new, already validated config while running (SIGHUP), as the
  // diff of the running config and `next` says (config_diff.hpp; how each
  // key applies is in the key tables): the log level and shutdown_timeout_ms
  // at once; a source added starts, removed stops, changed is restarted alone
  // (its stream goes on); plugin instances added, removed or changed go
  // through the plugins' hot replace; a listener added starts, removed stops
  // (every session closed, the port freed), changed takes its in-place keys
  // or, for the others, is restarted on the same listening socket when its
  // address did not change (no port gap). What only a restart of the relay
  // applies is said in one line. One log line per change; what did not
  // change is not touched. Called from the thread that calls start()/stop().
  void reload(const Config& next);
  // Thread safe: the relay's figures as JSON (the plugin host API's stats).
  std::string statsJson() const;

  std::uint64_t epoch() const { return epoch_; }
  std::uint64_t framesReceived() const;

 private:
  std::vector<Bus*> buses(const std::vector<std::string>& names) const;
  // The bus of stream `name` as `config` says (its replay ring, its key rule).
  // `receivedSizes`: &frameSizes_ for a source's stream, null for a processor's.
  // `log`: the stream's opened log, whose epoch and next seq it goes on with
  // (null: a new epoch, the run's).
  std::unique_ptr<Bus> newBus(const Config& config, const std::string& name, Histogram* receivedSizes,
                              const StreamLog* log = nullptr) const;
  // The bus of stream `name` and, if it keeps a log (streams.NAME.log), its
  // log opened and its writer subscribed. Only at construction: a log key
  // applies at the next restart.
  std::unique_ptr<Bus> openStream(const std::string& name, Histogram* receivedSizes);
  // reload()'s parts, in this order (relay_reload.cpp).
  void reloadRelayKeys(const ComponentChange& change, const Config& next);
  void reloadSource(const ComponentChange& change, const Config& next);
  bool launchSource(const SourceConfig& config, const Config& next);
  void reloadPluginInstances(const Config& next);
  void reloadListener(const ComponentChange& change, const Config& next);
  void addListener(const ListenerConfig& config);
  void restartListener(const ComponentChange& change, const ListenerConfig& config);
  std::unique_ptr<SubscriberListener> takeListener(const std::string& name);
  // Closes a stopped listener's sessions; keeps it, not listed, if writers
  // still hold some at the deadline. Returns how many were closed (-1: not all).
  int retireListener(std::unique_ptr<SubscriberListener> listener);

  Config config_;  // what runs: reload() changes what it applies
  const std::uint64_t epoch_;  // random id of this run, shared by every stream without a log of its own
  Histogram frameSizes_ = makeFrameSizeHistogram();  // every frame received, all sources
  Histogram writeLatency_ = makeLatencyHistogram();  // receive-to-write, every subscriber
  // One bus per stream, by name: declared before the sources that publish on
  // them and the listeners and plugins that subscribe.
  // Guarded by streamsMutex_ where it can grow (a reload adds the streams of
  // new plugin instances) while statsJson reads it.
  std::map<std::string, std::unique_ptr<Bus>> streams_;
  mutable std::mutex streamsMutex_;
  // The writers of the streams that keep a log, by stream: after streams_,
  // whose buses they are subscribed to. Fixed at construction.
  std::map<std::string, std::unique_ptr<LogWriter>> logs_;
  // Their readers for subscribers (the buses' backfills): after logs_ and
  // streams_, whose log and bus they read and subscribe to.
  std::map<std::string, std::unique_ptr<LogReplays>> replays_;
  // Index-aligned with config_.sources; both change under streamsMutex_ (a reload).
  std::vector<std::unique_ptr<UpstreamSource>> sources_;
  // Declared before writers_: sessions report to their listener when the
  // writers close them, so listeners must be destroyed last. Guarded by
  // listenersMutex_ (reload changes it while statsJson reads it).
  std::vector<std::unique_ptr<SubscriberListener>> listeners_;
  mutable std::mutex listenersMutex_;
  // Listeners a reload removed whose sessions writers still held at the
  // deadline: not accepting, not listed, destroyed after the writers.
  std::vector<std::unique_ptr<SubscriberListener>> retiredListeners_;
  WriterPool writers_;
  std::unique_ptr<PluginHost> plugins_;  // null without plugins.directory
  bool stopped_ = false;
};

int defaultWriterThreads();

}  // namespace streamrelay
