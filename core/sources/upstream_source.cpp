// SPDX-License-Identifier: Apache-2.0
#include "upstream_source.hpp"

#include <errno.h>
#include <unistd.h>

#include "leased_source.hpp"
#include "plugin_source.hpp"
#include "source_type.hpp"

namespace streamrelay {

std::unique_ptr<UpstreamSource> UpstreamSource::create(const SourceConfig& config, Bus& bus) {
  if (LeasedSource::wanted(config)) return std::make_unique<LeasedSource>(config, bus);
  for (const SourceType& type : sourceTypes())
    if (type.spec.name == config.type()) return type.create(config, bus);
  if (const PluginSourceType* type = knownPluginSourceType(config.type()); type && config.fromPlugin)
    return std::make_unique<PluginSource>(config, bus, *type);
  throw std::logic_error("source type '" + config.type() + "' is not registered");
}

UpstreamSource::~UpstreamSource() { stop(); }

void UpstreamSource::start() {
  finished_ = false;
  thread_ = std::thread([this] {
    bus_.claimPublisher();  // its predecessor on the stream (a reload's restart) has ended
    run();
    std::lock_guard<std::mutex> lock(finishedMutex_);
    finished_ = true;
    finishedChanged_.notify_all();
  });
}

void UpstreamSource::requestStop(StopReason reason, std::chrono::steady_clock::time_point closeBy) {
  if (stopRequested_.exchange(true)) return;
  stopReason_ = static_cast<int>(reason);
  closeBy_ = closeBy.time_since_epoch().count();
  stop_.request();  // after the reason and deadline: the thread reads them once it sees this
}

bool UpstreamSource::waitStopped(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(finishedMutex_);
  return finishedChanged_.wait_until(lock, deadline, [&] { return finished_; });
}

void UpstreamSource::stop(StopReason reason) {
  requestStop(reason);
  if (thread_.joinable()) thread_.join();
}

FrameReader::FrameReader(const FramingSpec& framing, Bus& bus, SourceCounters& counters)
    : FrameReader(FrameDecoder::create(framing), bus, counters) {}

FrameReader::FrameReader(std::unique_ptr<FrameDecoder> decoder, Bus& bus, SourceCounters& counters)
    : decoder_(std::move(decoder)), bus_(bus), counters_(counters), buffer_(kSourceReadBytes) {}

FrameReader::Result FrameReader::readOnce(int fd) {
  ssize_t n;
  do {
    n = ::read(fd, buffer_.data(), buffer_.size());
  } while (n < 0 && errno == EINTR);
  if (n == 0) return Result::Eof;
  if (n < 0) {
    errno_ = errno;
    return (errno == EAGAIN || errno == EWOULDBLOCK) ? Result::WouldBlock : Result::Error;
  }
  return decode(buffer_.data(), static_cast<std::size_t>(n));
}

FrameReader::Result FrameReader::decode(const char* data, std::size_t n) {
  const std::int64_t receivedAt = unixNowNs();
  const std::int64_t receivedSteady = steadyNowNs();
  counters_.bytesRead.fetch_add(static_cast<std::uint64_t>(n), std::memory_order_relaxed);
  builder_.reserve(n + kWireHeaderBytes * 8);
  bool ok = decoder_->decode(data, n, builder_);
  // Frames completed before a protocol error are good: publish them.
  if (!builder_.empty()) {
    std::unique_ptr<FrameBatch> batch = builder_.seal(receivedAt, receivedSteady);
    if (std::string position = decoder_->lastEventId(); !position.empty())
      batch->setProviderPosition(std::move(position));
    bus_.publish(std::move(batch));
  }
  if (ok) return Result::Frames;
  counters_.protocolErrors.fetch_add(1, std::memory_order_relaxed);
  return Result::ProtocolError;
}

void FrameReader::reset() {
  decoder_->reset();
  builder_.abandonFrame();
}

}  // namespace streamrelay
