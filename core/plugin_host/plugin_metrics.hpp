// SPDX-License-Identifier: Apache-2.0
#pragma once
// PluginMetrics: the figures of one plugin instance *name*. The plugin host
// keeps one per instance name and hands it to every version of that instance,
// so a hot replace continues the same counters: a Prometheus `_total` never
// goes backwards. The queue counters are shared too: the old version's final
// drain and the new version count into the same totals.
//
// Each counter and gauge is a cell at a fixed address, created at its first
// use and kept for the life of the metrics: a plugin looks a name up once
// (ABI 1.2 counter/gauge handles) and then adds or sets with one atomic
// operation, no lock and no lookup.
//
// Thread safe.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "subscription_queue.hpp"

namespace streamrelay {

// isolation: process — what happened to the instance's child processes.
struct ChildProcessCounters {
  std::atomic<std::uint64_t> restarts{0};          // children started again after one died or was killed
  std::atomic<std::uint64_t> watchdogKills{0};     // killed: no frame acknowledged for watchdog_ms
  std::atomic<std::uint64_t> memoryLimitKills{0};  // killed: resident memory over memory_limit_bytes
  void setLastExit(std::string how) {
    std::lock_guard<std::mutex> lock(mutex_);
    lastExit_ = std::move(how);
  }
  std::string lastExit() const {  // "" if none has ended yet
    std::lock_guard<std::mutex> lock(mutex_);
    return lastExit_;
  }

 private:
  mutable std::mutex mutex_;
  std::string lastExit_;
};

class PluginMetrics {
 public:
  using Counter = std::atomic<std::uint64_t>;
  using Gauge = std::atomic<double>;
  static_assert(Counter::is_always_lock_free && Gauge::is_always_lock_free, "a handle's add must not lock");

  // The cell of `name`, created (0) at first use; its address never changes.
  Counter& counter(const std::string& name) {
    std::lock_guard<std::mutex> lock(mutex_);
    return counters_.try_emplace(name, 0).first->second;
  }
  Gauge& gauge(const std::string& name) {
    std::lock_guard<std::mutex> lock(mutex_);
    return gauges_.try_emplace(name, 0.0).first->second;
  }
  void addCounter(const std::string& name, std::uint64_t delta) {
    counter(name).fetch_add(delta, std::memory_order_relaxed);
  }
  void setGauge(const std::string& name, double value) { gauge(name).store(value, std::memory_order_relaxed); }
  // Snapshots, by name.
  std::map<std::string, std::uint64_t> counters() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::map<std::string, std::uint64_t> out;
    for (const auto& c : counters_) out.emplace(c.first, c.second.load(std::memory_order_relaxed));
    return out;
  }
  std::map<std::string, double> gauges() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::map<std::string, double> out;
    for (const auto& g : gauges_) out.emplace(g.first, g.second.load(std::memory_order_relaxed));
    return out;
  }
  void countFailure() { failures_.fetch_add(1, std::memory_order_relaxed); }
  std::uint64_t failures() const { return failures_.load(std::memory_order_relaxed); }
  const std::shared_ptr<QueueCounters>& queueCounters() const { return queueCounters_; }
  ChildProcessCounters& childProcesses() { return childProcesses_; }
  const ChildProcessCounters& childProcesses() const { return childProcesses_; }

 private:
  mutable std::mutex mutex_;                  // guards the maps' structure, not the cells
  std::map<std::string, Counter> counters_;   // node-based: a cell never moves
  std::map<std::string, Gauge> gauges_;
  std::atomic<std::uint64_t> failures_{0};
  const std::shared_ptr<QueueCounters> queueCounters_ = std::make_shared<QueueCounters>();
  ChildProcessCounters childProcesses_;
};

}  // namespace streamrelay
