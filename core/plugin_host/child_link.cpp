// SPDX-License-Identifier: Apache-2.0
#include "child_link.hpp"

#include <Poco/Message.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace streamrelay {

namespace {
constexpr std::chrono::seconds kStatsTimeout(5);
}

void quitChild(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(code);
}

void ChildLink::send(const std::string& message) {
  std::lock_guard<std::mutex> lock(sendMutex_);
  for (std::size_t sent = 0; sent < message.size();) {
    const ssize_t n = ::send(fd_, message.data() + sent, message.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) quitChild(0);
    sent += static_cast<std::size_t>(n);
  }
}

bool ChildLink::receive(ChildMessage& type, std::string& payload) {
  char header[kMessageHeaderBytes];
  if (!readFully(header, sizeof header)) return false;
  std::uint32_t kind = 0, length = 0;
  std::memcpy(&kind, header, 4);
  std::memcpy(&length, header + 4, 4);
  type = static_cast<ChildMessage>(kind);
  payload.resize(length);
  return readFully(payload.data(), length);
}

bool ChildLink::readFully(char* data, std::size_t size) {
  for (std::size_t got = 0; got < size;) {
    const ssize_t n = ::read(fd_, data + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    got += static_cast<std::size_t>(n);
  }
  return true;
}

std::string ChildLink::requestStats() {
  std::lock_guard<std::mutex> one(requestMutex_);
  {
    std::lock_guard<std::mutex> lock(statsMutex_);
    stats_.reset();
  }
  send(MessageBuilder(ChildMessage::StatsRequest).finish());
  std::unique_lock<std::mutex> lock(statsMutex_);
  if (!statsArrived_.wait_for(lock, kStatsTimeout, [&] { return stats_.has_value(); })) return "{}";
  return *stats_;
}

void ChildLink::deliverStats(std::string json) {
  std::lock_guard<std::mutex> lock(statsMutex_);
  stats_ = std::move(json);
  statsArrived_.notify_all();
}

void LinkChannel::log(const Poco::Message& message) {
  link_.send(MessageBuilder(ChildMessage::Log)
                 .u32(static_cast<std::uint32_t>(message.getPriority()))
                 .str(message.getSource())
                 .str(message.getText())
                 .finish());
}

void MetricsReporter::report(ChildLink& link, const PluginMetrics& metrics) {
  const std::uint64_t failures = metrics.failures();
  std::vector<std::pair<std::string, std::uint64_t>> added;
  for (const auto& [name, value] : metrics.counters()) {
    std::uint64_t& seen = counters_[name];
    if (value != seen) added.emplace_back(name, value - seen);
    seen = value;
  }
  std::vector<std::pair<std::string, double>> set;
  for (const auto& [name, value] : metrics.gauges()) {
    auto it = gauges_.find(name);
    if (it == gauges_.end() || it->second != value) set.emplace_back(name, value);
    gauges_[name] = value;
  }
  if (failures == failures_ && added.empty() && set.empty()) return;
  MessageBuilder m(ChildMessage::Metrics);
  m.u64(failures - failures_).u32(static_cast<std::uint32_t>(added.size()));
  for (const auto& [name, delta] : added) m.str(name).u64(delta);
  m.u32(static_cast<std::uint32_t>(set.size()));
  for (const auto& [name, value] : set) m.str(name).f64(value);
  failures_ = failures;
  link.send(m.finish());
}

}  // namespace streamrelay
