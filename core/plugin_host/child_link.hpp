// SPDX-License-Identifier: Apache-2.0
#pragma once
// The child's end of the control channel (child_channel.hpp), in the child
// process of an isolated plugin instance: whole messages out from any thread,
// the relay's messages in on the control thread, stats_json as a request
// answered by the relay; a POCO channel that sends every log line of the
// child to the relay; and the plugin's counters, gauges and failures, sent
// as differences.
//
// Thread safe (ChildLink); MetricsReporter is used by one thread.

#include <Poco/Channel.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "child_channel.hpp"
#include "plugin_metrics.hpp"

namespace streamrelay {

// Ends the child now, without destructors: a plugin thread that outlives
// destroy() is not waited for.
[[noreturn]] void quitChild(int code);

class ChildLink {
 public:
  explicit ChildLink(int fd) : fd_(fd) {}
  ChildLink(const ChildLink&) = delete;
  ChildLink& operator=(const ChildLink&) = delete;

  // One whole message, whatever other threads send. The relay gone: quits.
  void send(const std::string& message);
  // One message from the relay (blocking); false once the relay is gone.
  // The control thread only.
  bool receive(ChildMessage& type, std::string& payload);
  // The host API's stats_json: asks the relay and waits for its answer
  // (which the control thread hands over with deliverStats), "{}" if none
  // comes within 5 s.
  std::string requestStats();
  void deliverStats(std::string json);

 private:
  bool readFully(char* data, std::size_t size);

  const int fd_;
  std::mutex sendMutex_;
  std::mutex requestMutex_;  // one stats request at a time
  std::mutex statsMutex_;
  std::condition_variable statsArrived_;
  std::optional<std::string> stats_;  // guarded by statsMutex_
};

// Every log line of the child goes to the relay, which logs it as its own.
class LinkChannel : public Poco::Channel {
 public:
  explicit LinkChannel(ChildLink& link) : link_(link) {}
  void log(const Poco::Message& message) override;

 private:
  ChildLink& link_;
};

// Sends what the plugin's counters, gauges and failures became since the last call.
class MetricsReporter {
 public:
  void report(ChildLink& link, const PluginMetrics& metrics);

 private:
  std::uint64_t failures_ = 0;
  std::map<std::string, std::uint64_t> counters_;
  std::map<std::string, double> gauges_;
};

}  // namespace streamrelay
