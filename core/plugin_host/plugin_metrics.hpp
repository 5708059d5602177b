// SPDX-License-Identifier: Apache-2.0
#pragma once
// PluginMetrics: the figures of one plugin instance *name*. The plugin host
// keeps one per instance name and hands it to every version of that instance,
// so a hot replace continues the same counters: a Prometheus `_total` never
// goes backwards. The queue counters are shared too: the old version's final
// drain and the new version count into the same totals.
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
  void addCounter(const std::string& name, std::uint64_t delta) {
    std::lock_guard<std::mutex> lock(mutex_);
    counters_[name] += delta;
  }
  void setGauge(const std::string& name, double value) {
    std::lock_guard<std::mutex> lock(mutex_);
    gauges_[name] = value;
  }
  std::map<std::string, std::uint64_t> counters() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return counters_;
  }
  std::map<std::string, double> gauges() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return gauges_;
  }
  void countFailure() { failures_.fetch_add(1, std::memory_order_relaxed); }
  std::uint64_t failures() const { return failures_.load(std::memory_order_relaxed); }
  const std::shared_ptr<QueueCounters>& queueCounters() const { return queueCounters_; }
  ChildProcessCounters& childProcesses() { return childProcesses_; }
  const ChildProcessCounters& childProcesses() const { return childProcesses_; }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::uint64_t> counters_;
  std::map<std::string, double> gauges_;
  std::atomic<std::uint64_t> failures_{0};
  const std::shared_ptr<QueueCounters> queueCounters_ = std::make_shared<QueueCounters>();
  ChildProcessCounters childProcesses_;
};

}  // namespace streamrelay
