// SPDX-License-Identifier: Apache-2.0
#include "relay.hpp"

#include <Poco/Logger.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <thread>

namespace streamrelay {

namespace {
// What a logged stream's ring keeps at least, to hand a subscriber over from
// its log to the live frames (BusOptions::handOverBytes): the frames its log
// has not written yet must be in it, normally a few milliseconds of them.
constexpr std::size_t kLogHandOverBytes = 8 << 20;
}  // namespace

int defaultWriterThreads() {
  return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
}

Relay::Relay(const Config& config)
    : config_(config),
      epoch_(newEpoch()),
      writers_(config.writerThreads > 0 ? config.writerThreads : defaultWriterThreads()) {
  for (const SourceConfig& source : config_.sources) {
    auto bus = openStream(source.name, &frameSizes_);
    sources_.push_back(UpstreamSource::create(source, *bus));
    if (const std::string position = bus->providerPosition(); !position.empty())
      sources_.back()->resumeProviderAfter(position);
    streams_.emplace(source.name, std::move(bus));
  }
  // Every configured plugin instance has a stream, published when it emits.
  for (const PluginInstanceConfig& instance : config_.plugins.instances)
    streams_.emplace(instance.name, openStream(instance.name, nullptr));
  for (const ListenerConfig& l : config_.listeners)
    listeners_.push_back(std::make_unique<SubscriberListener>(l, buses(l.inputs), writers_, writeLatency_));
  for (auto& source : sources_) source->prepare();
  if (!config_.plugins.directory.empty()) {
    std::map<std::string, Bus*> streams;
    for (auto& entry : streams_) streams.emplace(entry.first, entry.second.get());
    std::vector<std::string> sources;
    for (const SourceConfig& source : config_.sources) sources.push_back(source.name);
    plugins_ = std::make_unique<PluginHost>(config_.plugins, std::move(streams), std::move(sources),
                                            [this] { return statsJson(); }, config_.shutdownTimeoutMs);
  }
}

std::unique_ptr<Bus> Relay::openStream(const std::string& name, Histogram* receivedSizes) {
  auto kept = std::find_if(config_.streams.begin(), config_.streams.end(),
                           [&](const StreamConfig& s) { return s.name == name; });
  if (kept == config_.streams.end() || !kept->log) return newBus(config_, name, receivedSizes);
  auto log = std::make_unique<StreamLog>(name, *kept->log);  // throws: a start-up error
  auto bus = newBus(config_, name, receivedSizes, log.get());
  auto writer = std::make_unique<LogWriter>(std::move(log), *bus);
  auto replays = std::make_unique<LogReplays>(writer->log(), *bus);
  bus->setBackfill(replays.get());
  logs_.emplace(name, std::move(writer));
  replays_.emplace(name, std::move(replays));
  return bus;
}

std::unique_ptr<Bus> Relay::newBus(const Config& config, const std::string& name, Histogram* receivedSizes,
                                   const StreamLog* log) const {
  const StreamId id{name, log ? log->epoch() : epoch_};
  auto kept = std::find_if(config.streams.begin(), config.streams.end(),
                           [&](const StreamConfig& s) { return s.name == name; });
  if (kept == config.streams.end()) return std::make_unique<Bus>(id, receivedSizes);
  if (kept->log && !log)
    Poco::Logger::get("streamrelay").warning("streams.%s.log: the stream was added by a reload: it keeps no log "
                                             "until the relay restarts", name);
  BusOptions options(kept->replay);
  options.lastValueKeys = kept->lastValueKeys;
  if (log) {
    options.firstSeq = log->nextSeqAtOpen();
    options.seqGate = &log->seqGate();
    options.providerPosition = log->providerPositionAtOpen();
    options.handOverBytes = kLogHandOverBytes;
  }
  return std::make_unique<Bus>(id, receivedSizes, options,
                               kept->key ? std::make_unique<KeyExtractor>(*kept->key) : nullptr);
}

std::vector<Bus*> Relay::buses(const std::vector<std::string>& names) const {
  std::vector<Bus*> list;
  for (const std::string& name : names) list.push_back(streams_.at(name).get());
  return list;
}

Relay::~Relay() { stop(); }

void Relay::rescanPlugins() {
  if (plugins_) plugins_->requestRescan();
}

void Relay::start() {
  writers_.start();
  for (auto& entry : logs_) entry.second->start();
  for (auto& listener : listeners_) listener->start();
  if (plugins_) plugins_->start();  // before the sources: instances see the first frame
  for (auto& source : sources_) source->start();
  std::string sources;
  for (const SourceConfig& source : config_.sources)
    sources += (sources.empty() ? "" : ", ") + source.name + " (" + source.type() + ")";
  Poco::Logger::get("streamrelay").information("relay started: source%s %s, %z listener(s), %z writer thread(s)",
                                               std::string(sources_.size() > 1 ? "s" : ""), sources,
                                               listeners_.size(), writers_.size());
}

std::uint64_t Relay::framesReceived() const {
  std::uint64_t frames = 0;
  for (const SourceConfig& source : config_.sources) frames += streams_.at(source.name)->framesPublished();
  return frames;
}

std::vector<std::string> Relay::stop() {
  if (stopped_) return {};
  stopped_ = true;
  Poco::Logger& logger = Poco::Logger::get("streamrelay");
  logger.information("relay stopping: no new subscribers, sources closing, flushing queued frames");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(config_.shutdownTimeoutMs);
  for (auto& listener : listeners_) listener->stopAccepting();
  for (auto& entry : replays_) entry.second->stop();  // their subscribers close: the relay stops
  for (auto& source : sources_) source->requestStop(StopReason::Shutdown, deadline);
  bool stuck = false;
  for (auto& source : sources_) stuck = !source->waitStopped(deadline) || stuck;
  if (stuck) {
    // A source is stuck pushing to a full `block` queue whose consumer does
    // not keep up (a stalled subscriber, a database that stays down): release it.
    logger.warning("relay stopping: a full `block` queue still holds a source at the deadline; closing every queue");
    if (plugins_) plugins_->closeQueues();  // also tells the plugins to stop retrying
    for (auto& entry : logs_) entry.second->releasePublisher();  // or waiting for a disk that refuses the reservation
    for (const auto& entry : streams_)
      for (const QueuePtr& queue : entry.second->queues()) queue->close(CloseReason::Shutdown);
  }
  for (auto& source : sources_) source->stop();
  // Plugin instances may still publish on their streams while they drain:
  // their logs stop after them, the sources' logs now.
  for (const SourceConfig& source : config_.sources)
    if (auto log = logs_.find(source.name); log != logs_.end()) log->second->stop();
  writers_.beginDrain(deadline);
  std::vector<std::string> stillRunning;
  if (plugins_) stillRunning = plugins_->stop(deadline);  // drains, destroys instances, unloads libraries last
  if (stillRunning.empty())
    for (auto& entry : logs_) entry.second->stop();  // writes what is queued, syncs (idempotent)
  writers_.join();
  logger.information("relay stopped after %?u frames received", framesReceived());
  return stillRunning;
}

}  // namespace streamrelay
