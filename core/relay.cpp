#include "relay.hpp"

#include <Poco/Logger.h>

#include <algorithm>
#include <thread>

namespace streamrelay {

int defaultWriterThreads() {
  return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
}

Relay::Relay(const Config& config)
    : config_(config),
      writers_(config.writerThreads > 0 ? config.writerThreads : defaultWriterThreads()),
      source_(UpstreamSource::create(config.upstream, bus_)) {
  for (const ListenerConfig& l : config_.listeners)
    listeners_.push_back(std::make_unique<SubscriberListener>(l, bus_, writers_));
  source_->prepare();
}

Relay::~Relay() { stop(); }

void Relay::start() {
  writers_.start();
  for (auto& listener : listeners_) listener->start();
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
  for (auto& listener : listeners_) listener->stopAccepting();
  source_->stop();
  writers_.drain(std::chrono::steady_clock::now() + std::chrono::milliseconds(config_.shutdownTimeoutMs));
  logger.information("relay stopped after %?u frames received", static_cast<unsigned long long>(bus_.framesPublished()));
}

}  // namespace streamrelay
