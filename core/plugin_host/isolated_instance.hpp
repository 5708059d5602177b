// SPDX-License-Identifier: Apache-2.0
#pragma once
// IsolatedInstance: a plugin instance with `isolation: process`. Its plugin
// runs in a child process (plugin_child.hpp) — the same .so, the same ABI,
// the same host-API code — so that a crash, a hang or a leak in it is its own
// problem: the relay, its subscribers and the other plugins go on.
//
// Frames go from the instance's queue into a shared-memory FrameRing; the
// child acknowledges them by ring seq once its plugin has finished with them
// (see docs/plugin-isolation.md for what that means per callback). The
// relay keeps every frame until it is acknowledged (InFlightFrames). When the
// child dies — a crash, a kill by the watchdog (no acknowledgement for
// watchdog_ms while frames wait), by the memory limit (resident memory over
// memory_limit_bytes), or a broken protocol — one line names the instance,
// the file and how it ended; it is counted; and a new child starts after a
// backoff (doubling while no child acknowledges a frame), getting again every
// frame after the last acknowledged one. So with on_full: block nothing is
// lost, and nothing is handed twice to a plugin that returns from its call
// only once its work is done, or retains the frames until it is. While no child runs, frames wait in the queue,
// under its limits and on_full policy as ever.
//
// After max_failures deaths in a row without an acknowledgement the instance
// is disabled, as an in-process one after max_failures failed callbacks.
//
// Threads: one supervisor thread per instance (start() to its end) owns the
// child, the ring and the frames in flight; create() does the same work on
// the caller's thread before start(). The rest is thread safe as
// HostedInstance says. The instance's stream is published by the supervisor
// only, which claims it when it starts (after the version it replaces ended
// or was abandoned); once abandoned, what the child emits is dropped.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bus.hpp"
#include "child_session.hpp"
#include "frame_ring.hpp"
#include "hosted_instance.hpp"
#include "in_flight_frames.hpp"
#include "plugin_library.hpp"

namespace streamrelay {

class IsolatedInstance : public HostedInstance, private ChildSession::Listener {
 public:
  // As PluginInstance's: `metrics` belongs to the instance name; `output` is
  // the bus of the stream it emits on (null: it cannot emit).
  IsolatedInstance(std::shared_ptr<PluginLibrary> library, PluginInstanceConfig config,
                   std::shared_ptr<PluginMetrics> metrics, Bus* output, StatsJson stats, OnDisabled onDisabled);
  ~IsolatedInstance() override;
  IsolatedInstance(const IsolatedInstance&) = delete;
  IsolatedInstance& operator=(const IsolatedInstance&) = delete;

  // Starts the first child and waits for its plugin's create().
  bool create(std::string& error) override;
  void start() override;
  void beginStop(CloseReason reason, std::chrono::steady_clock::time_point deadline) override;
  // A child still running at the deadline is killed: an isolated instance
  // always ends, and is never abandoned.
  bool join(std::chrono::steady_clock::time_point deadline) override;
  void abandon() override;
  bool ended() const override;

  const std::string& description() const override { return description_; }
  const std::string& name() const override { return config_.name; }
  const PluginInstanceConfig& config() const override { return config_; }
  const std::string& type() const override { return library_->name(); }
  const QueuePtr& queue() const override { return queue_; }
  bool disabled() const override { return disabled_.load(); }
  const PluginMetrics& metrics() const override { return *metrics_; }
  IsolationStatus isolation() const override;

 private:
  using Clock = std::chrono::steady_clock;
  enum class Kill { None, Watchdog, MemoryLimit, Other };

  // ChildSession::Listener (the supervisor thread, or create()'s)
  void childReady() override;
  void childRefused(const std::string& why) override;
  void childMetrics(std::uint64_t failures, const std::vector<std::pair<std::string, std::uint64_t>>& counters,
                    const std::vector<std::pair<std::string, double>>& gauges) override;
  void childEmitted(std::uint64_t acknowledged, std::string_view frames) override;
  std::string childWantsStats() override;
  void childDisabled() override;
  void childEnded() override;

  void run();
  void startChild();
  // Waits for an event of the child, the queue or the ring, at most `timeout`.
  void waitForEvents(std::chrono::milliseconds timeout);
  void serviceChild();
  void childGone();
  void scheduleRestart(const std::string& how);
  void checkAcknowledgements();
  void acknowledged(std::uint64_t ringSeq);
  void feed();
  void sendStopWhenDone();
  void checkLimits(Clock::time_point now);
  void kill(Kill kind, const std::string& why);
  void disable();
  bool stopRequested() const { return stopping_.load() || queue_->closed(); }
  bool pastDeadline() const;
  bool finished() const;
  std::chrono::milliseconds nextWait(Clock::time_point now) const;
  void skipUnhanded();
  void publish(std::unique_ptr<FrameBatch> batch);
  void signalEnded();

  std::shared_ptr<PluginLibrary> library_;  // its code goes to every child; unloaded after the last one
  const PluginInstanceConfig config_;
  const std::shared_ptr<PluginMetrics> metrics_;
  Bus* const output_;
  StatsJson stats_;
  OnDisabled onDisabled_;
  const std::string description_;
  const int wakeBell_;  // eventfd: the queue has frames or closed; beginStop; join's kill
  QueuePtr queue_;
  FrameRingWriter ring_;

  // Owned by the supervisor (create()'s thread before start()).
  InFlightFrames inFlight_;
  std::unique_ptr<ChildSession> child_;
  std::vector<pollfd> polled_;     // the last wait's descriptors and what they said
  bool ready_ = false;             // the current child's create() returned
  bool refused_ = false;           // ... or refused: refusal_
  std::string refusal_;
  bool stopSent_ = false;
  bool ringFull_ = false;          // waiting for the child to make room
  Kill killed_ = Kill::None;
  int deathsInARow_ = 0;           // children that died without acknowledging a frame
  std::uint64_t ackedAtStart_ = 0; // of the current child
  Clock::time_point restartAt_{};
  Clock::time_point lastProgress_{};   // an acknowledgement, or frames began to wait
  Clock::time_point nextSample_{};     // of the child's resident memory
  std::uint64_t skipped_ = 0;          // frames not handed to the plugin by the stop deadline
  std::vector<std::pair<std::uint64_t, std::string>> stashedEmits_;  // before start(): published first by the supervisor
  std::uint64_t ringAcked_ = 0;    // what the current child wrote into the ring's control page
  bool supervising_ = false;
  bool publishing_ = false;        // the supervisor started: it is its stream's publisher
  bool done_ = false;              // no child will be started again
  std::string lastDeath_;          // how the last child that died ended, for create()'s error

  std::atomic<bool> disabled_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> killNow_{false};   // join() gave up waiting
  std::atomic<bool> abandoned_{false};
  std::atomic<std::int64_t> deadlineNs_{INT64_MAX};
  std::atomic<int> stopReason_{static_cast<int>(CloseReason::Shutdown)};
  std::atomic<long> pid_{0};
  std::atomic<std::uint64_t> framesInFlight_{0};
  std::thread supervisor_;
  mutable std::mutex endMutex_;
  std::condition_variable endChanged_;
  bool ended_ = true;  // guarded by endMutex_: false from start() until the supervisor's last step
};

}  // namespace streamrelay
