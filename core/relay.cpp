#include "relay.hpp"

#include <Poco/Logger.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <thread>

namespace streamrelay {

int defaultWriterThreads() {
  return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
}

namespace {
// A random, non-zero 64-bit id for this run of the relay.
std::uint64_t newEpoch() {
  std::random_device random;
  std::uint64_t epoch = 0;
  while (epoch == 0) epoch = (std::uint64_t{random()} << 32) ^ random();
  return epoch;
}
}  // namespace

Relay::Relay(const Config& config)
    : config_(config),
      bus_(StreamId{"upstream", newEpoch()}),
      writers_(config.writerThreads > 0 ? config.writerThreads : defaultWriterThreads()),
      source_(UpstreamSource::create(config.upstream, bus_)) {
  for (const ListenerConfig& l : config_.listeners)
    listeners_.push_back(std::make_unique<SubscriberListener>(l, bus_, writers_, writeLatency_));
  source_->prepare();
  if (!config_.plugins.directory.empty())
    plugins_ = std::make_unique<PluginHost>(config_.plugins, bus_, [this] { return statsJson(); },
                                            config_.shutdownTimeoutMs);
}

Relay::~Relay() { stop(); }

void Relay::rescanPlugins() {
  if (plugins_) plugins_->requestRescan();
}

void Relay::start() {
  writers_.start();
  for (auto& listener : listeners_) listener->start();
  if (plugins_) plugins_->start();  // before the source: instances see the first frame
  source_->start();
  Poco::Logger::get("streamrelay").information("relay started: upstream %s, %z listener(s), %z writer thread(s)",
                                               std::string(toString(config_.upstream.type)), listeners_.size(),
                                               writers_.size());
}

void Relay::stop() {
  if (stopped_) return;
  stopped_ = true;
  Poco::Logger& logger = Poco::Logger::get("streamrelay");
  logger.information("relay stopping: no new subscribers, upstream closing, flushing queued frames");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(config_.shutdownTimeoutMs);
  for (auto& listener : listeners_) listener->stopAccepting();
  source_->requestStop();
  if (!source_->waitStopped(deadline)) {
    // The source is stuck pushing to a full `block` queue whose consumer does
    // not keep up (a stalled subscriber, a database that stays down): release it.
    logger.warning("relay stopping: a full `block` queue still holds the upstream at the deadline; closing every queue");
    if (plugins_) plugins_->closeQueues();  // also tells the plugins to stop retrying
    for (const QueuePtr& queue : bus_.queues()) queue->close(CloseReason::Shutdown);
  }
  source_->stop();
  // Subscribers and plugins drain side by side, within the same deadline.
  writers_.beginDrain(deadline);
  if (plugins_) plugins_->stop(deadline);  // drains, destroys instances, unloads libraries last
  writers_.join();
  logger.information("relay stopped after %?u frames received", bus_.framesPublished());
}

}  // namespace streamrelay
