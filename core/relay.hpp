#pragma once
// Relay: the running service, wired from a Config — the bus, the writer
// threads, the listeners and the upstream source — with the start and stop
// order in one place.
//
// Threads: the source's thread (the only publisher); one thread per writer;
// each listener's TCPServer acceptor and its small hand-off pool; the plugin
// host's thread and one worker per plugin instance; the caller's thread, which
// calls start() and stop().

#include <memory>
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
  // queued (within shutdown_timeout_ms), closes them. Idempotent.
  void stop();

  // Thread safe: look for new, changed and removed plugins now (SIGHUP).
  void rescanPlugins();
  // Thread safe: the relay's figures as JSON (the plugin host API's stats).
  std::string statsJson() const;

  const Bus& bus() const { return bus_; }
  const UpstreamSource& source() const { return *source_; }
  const std::vector<std::unique_ptr<SubscriberListener>>& listeners() const { return listeners_; }

 private:
  const Config config_;
  Bus bus_;
  Histogram writeLatency_ = makeLatencyHistogram();  // receive-to-write, every subscriber
  // Declared before writers_: sessions report to their listener when the
  // writers close them, so listeners must be destroyed last.
  std::vector<std::unique_ptr<SubscriberListener>> listeners_;
  WriterPool writers_;
  std::unique_ptr<UpstreamSource> source_;
  std::unique_ptr<PluginHost> plugins_;  // null without plugins.directory
  bool stopped_ = false;
};

int defaultWriterThreads();

}  // namespace streamrelay
