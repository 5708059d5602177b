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
// The plugin is given this instance's HostApi (host_api.hpp), whose services
// this class provides: counters in the instance name's PluginMetrics, emits
// gathered per drain and published on the instance's stream (in several
// batches when a drain emits more than max_emit_bytes), retain through the
// FrameHandout of the call.
//
// The same class runs the plugin in the child process of an isolated
// instance (plugin_child.cpp), with a progress hook through which the child
// acknowledges the frames handled: one mechanism for calling a plugin,
// wherever it runs.
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
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "bus.hpp"
#include "config.hpp"
#include "frame_handout.hpp"
#include "host_api.hpp"
#include "hosted_instance.hpp"
#include "plugin_calls.hpp"
#include "plugin_library.hpp"
#include "plugin_metrics.hpp"
#include "subscription_queue.hpp"
#include "thread_owner.hpp"

namespace streamrelay {

class PluginInstance : public HostedInstance, private HostServices {
 public:

  // `metrics` belongs to the instance name and outlives this version of it.
  // `output`: the bus of the stream it emits on (null: it cannot emit).
  PluginInstance(std::shared_ptr<PluginLibrary> library, PluginInstanceConfig config,
                 std::shared_ptr<PluginMetrics> metrics, Bus* output, StatsJson stats, OnDisabled onDisabled);
  // Destroys the plugin's instance. The worker must have ended (joined) or
  // never started: an abandoned instance is never destroyed.
  ~PluginInstance() override;
  PluginInstance(const PluginInstance&) = delete;
  PluginInstance& operator=(const PluginInstance&) = delete;

  // Calls the plugin's create(); false with `error` set if it refused.
  bool create(std::string& error) override;
  void start() override;
  // Closes the queue; the worker hands what is queued to the plugin until the
  // deadline, then flushes and destroys it.
  void beginStop(CloseReason reason, std::chrono::steady_clock::time_point deadline) override;
  // Waits until the worker has ended, at most until `deadline`; true if it
  // ended (and was joined) or never started.
  bool join(std::chrono::steady_clock::time_point deadline) override;
  // Lets a worker that did not end run on unowned: the caller must keep this
  // instance alive for as long as the process runs. From now on it never
  // publishes on its stream (its replacement may start).
  void abandon() override;
  // True once the worker has ended (or never started).
  bool ended() const override;
  // "NAME (type TYPE, file PATH)": how log lines name this instance.
  const std::string& description() const override { return description_; }

  const std::string& name() const override { return config_.name; }
  const PluginInstanceConfig& config() const override { return config_; }
  const std::string& type() const override { return library_->name(); }
  const QueuePtr& queue() const override { return queue_; }
  bool disabled() const override { return disabled_.load(); }
  // Failures, and the counters and gauges the plugin keeps through the host API.
  const PluginMetrics& metrics() const override { return *metrics_; }

  // How far the plugin has got, for the child process of an isolated
  // instance, which acknowledges frames by it: called on the worker thread
  // after each call into the plugin returns (each frame for a plugin without
  // on_frames, each batch for one with it), and at the end of each drain and
  // each idle tick, with the number of frames handed to the plugin so far
  // whose call has returned (OK or not), counted up to the first frame the
  // plugin still retains (ABI 1.2 retain: a sink keeping frames until its
  // commit has not done with them); what the calls emitted has been
  // published on the output by then (with a hook set, what a call emits is
  // published as soon as it returns). Set before start().
  using Progress = std::function<void(std::uint64_t framesHandled)>;
  void setProgress(Progress progress);

 private:
  void run();
  // Hands the spans' frames to the plugin, at most FrameHandout::kMaxFrames a call.
  void deliver(const std::deque<FrameSpan>& spans, std::uint64_t& skipped);
  void recordFailure(const char* what, const char* message, int inARow);
  void finish();
  void signalEnded();
  void publishEmitted();
  void publish(std::unique_ptr<FrameBatch> batch);
  void returned(std::size_t frames);
  std::uint64_t handledAndReleased() const;
  void reportProgress();

  // HostServices: what the plugin's host API calls do for this instance.
  void log(int level, const std::string& line) override;
  PluginMetrics& metrics() override { return *metrics_; }
  std::string statsJson() override { return stats_ ? stats_() : "{}"; }
  const std::string& instanceName() const override { return config_.name; }
  bool stopping() const override { return stopping_.load(); }
  bool emit(std::string_view data, std::string_view key) override;
  streamrelay_retained* retain(const streamrelay_frame* frame) override { return handout_.retain(frame); }
  void release(streamrelay_retained* retained) override { FrameHandout::release(retained); }
  bool trustsAnyFile() const override { return config_.allowInsecureFiles; }

  std::shared_ptr<PluginLibrary> library_;  // outlives the plugin's instance: unloaded after destroy()
  const PluginInstanceConfig config_;
  const std::shared_ptr<PluginMetrics> metrics_;
  Bus* const output_;
  std::mutex emitMutex_;         // guards emitted_, emittedBytes_: emit() may come from any thread
  FrameBatchBuilder emitted_;    // frames emitted since the last publish
  std::size_t emittedBytes_ = 0;
  StatsJson stats_;
  OnDisabled onDisabled_;
  HostApi api_;
  PluginCalls calls_;
  FrameHandout handout_;         // the worker's: the frames of the current call
  std::atomic<std::thread::id> workerId_{};  // the one thread that publishes what was emitted
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
  ThreadOwner owner_;            // see the class comment
  bool publishing_ = false;      // owner only: its worker started, so it is its stream's publisher
  std::atomic<bool> abandoned_{false};
  Progress progress_;
  std::uint64_t handled_ = 0;  // worker thread only: frames whose call has returned
};

}  // namespace streamrelay
