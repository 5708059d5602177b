// SPDX-License-Identifier: Apache-2.0
#include "log_writer.hpp"

#include <Poco/Logger.h>

#include <deque>

namespace streamrelay {

LogWriter::LogWriter(std::unique_ptr<StreamLog> log, Bus& bus)
    : log_(std::move(log)),
      bus_(bus),
      queue_(std::make_shared<SubscriptionQueue>("log " + bus.stream().name, queueLimits(), [] {})) {
  bus_.subscribe(queue_);
}

LogWriter::~LogWriter() { stop(); }

void LogWriter::start() {
  if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
}

void LogWriter::stop() {
  bus_.unsubscribe(queue_.get());
  queue_->close(CloseReason::Shutdown);
  if (thread_.joinable()) thread_.join();
}

void LogWriter::run() {
  std::deque<FrameSpan> spans;
  auto due = std::chrono::steady_clock::now();
  for (;;) {
    queue_->waitForFrames(due);
    const bool closed = queue_->closed();  // read before taking: nothing arrives after close
    const std::size_t frames = queue_->takeAll(spans);
    for (const FrameSpan& span : spans) log_->append(*span.batch, span.first, span.end);
    spans.clear();
    log_->flush();
    queue_->countDelivered(frames);
    due = log_->tick(std::chrono::steady_clock::now());
    if (closed && frames == 0) break;
  }
  log_->close();
}

}  // namespace streamrelay
