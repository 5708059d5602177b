// SPDX-License-Identifier: Apache-2.0
#include "plugin_instance.hpp"

#include <Poco/Logger.h>

#include <algorithm>
#include <vector>

#include "fatal_signal.hpp"

namespace streamrelay {

namespace {
Poco::Logger& logger() { return Poco::Logger::get("streamrelay.plugin"); }
// While its queue is empty, an instance that has had frames is flushed this often.
constexpr std::chrono::milliseconds kIdleFlush(100);

std::int64_t steadyNs(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

std::vector<std::string> secretsOf(const PluginLibrary& library, const std::string& configYaml) {
  return library.configKeys() ? library.configKeys()->secretValues(configYaml) : std::vector<std::string>{};
}
}  // namespace

PluginInstance::PluginInstance(std::shared_ptr<PluginLibrary> library, PluginInstanceConfig config,
                               std::shared_ptr<PluginMetrics> metrics, Bus* output, StatsJson stats,
                               OnDisabled onDisabled)
    : library_(std::move(library)),
      config_(std::move(config)),
      metrics_(std::move(metrics)),
      output_(output),
      stats_(std::move(stats)),
      onDisabled_(std::move(onDisabled)),
      api_(*this, HostApi::Offers{output_ != nullptr, true}, secretsOf(*library_, config_.configYaml)),
      calls_(library_->callbacks(), [this](const char* call, const char* message, int inARow) {
        recordFailure(call, message, inARow);
      }),
      queue_(std::make_shared<SubscriptionQueue>("plugin " + config_.name, config_.queue, [] {},
                                                 metrics_->queueCounters())),
      description_(config_.name + " (type " + library_->name() + ", file " + library_->path() + ")"),
      crashNote_("plugin instance " + description_) {}

PluginInstance::~PluginInstance() {
  beginStop(CloseReason::Shutdown, std::chrono::steady_clock::now());
  if (worker_.joinable()) worker_.join();  // it has ended: see the contract in the header
  owner_.claim();  // the worker has ended or never started: this thread takes the last step
  FatalSignalNote note(crashNote_);
  finish();
}

bool PluginInstance::create(std::string& error) {
  owner_.assertOwned();
  FatalSignalNote note(crashNote_);
  const bool created = calls_.create(api_.table(), config_.configYaml, error);
  if (!created) error = api_.fromPlugin(error.c_str());
  return created;
}

void PluginInstance::setProgress(Progress progress) {
  progress_ = std::move(progress);
  handout_.trackOrder();
  calls_.setOnReturned([this](std::size_t frames) { returned(frames); });
}

void PluginInstance::start() {
  {
    std::lock_guard<std::mutex> lock(endMutex_);
    ended_ = false;
  }
  worker_ = std::thread([this] { run(); });
}

void PluginInstance::beginStop(CloseReason reason, std::chrono::steady_clock::time_point deadline) {
  deadlineNs_ = steadyNs(deadline);
  stopping_ = true;
  queue_->close(reason);
}

bool PluginInstance::join(std::chrono::steady_clock::time_point deadline) {
  {
    std::unique_lock<std::mutex> lock(endMutex_);
    if (!endChanged_.wait_until(lock, deadline, [&] { return ended_; })) return false;
  }
  if (worker_.joinable()) worker_.join();  // returns at once: the worker's last step is signalEnded()
  return true;
}

void PluginInstance::abandon() {
  abandoned_ = true;  // before its replacement starts publishing (PluginHost::stopInstances)
  if (worker_.joinable()) worker_.detach();
}

bool PluginInstance::ended() const {
  std::lock_guard<std::mutex> lock(endMutex_);
  return ended_;
}

void PluginInstance::signalEnded() {
  std::lock_guard<std::mutex> lock(endMutex_);
  ended_ = true;
  endChanged_.notify_all();
}

void PluginInstance::run() {
  owner_.claim();
  if (output_) output_->claimPublisher();  // the version it replaces has ended or was abandoned
  publishing_ = true;
  // A crash in the plugin's code on this thread names the instance, even
  // when the plugin overflowed its stack.
  AlternateSignalStack altStack;
  FatalSignalNote note(crashNote_);
  workerId_ = std::this_thread::get_id();
  std::deque<FrameSpan> spans;
  std::uint64_t skipped = 0;  // frames still queued at the stop deadline
  bool fed = false;  // once frames came, idle ticks flush: a plugin's own interval is honoured
  for (;;) {
    queue_->waitForFrames(std::chrono::steady_clock::now() + kIdleFlush);
    bool closed = queue_->closed();  // read before taking: nothing arrives after close
    if (queue_->takeAll(spans) == 0) {
      if (closed) break;
      if (fed && !disabled_) calls_.flush();
      publishEmitted();
      reportProgress();  // a flush may have released what the plugin retained
      continue;
    }
    fed = true;
    deliver(spans, skipped);
    spans.clear();
    if (!disabled_) calls_.flush();
    publishEmitted();  // what this drain emitted: one batch, one publish (or more, over max_emit_bytes)
    reportProgress();
    if (disabled_) break;
  }
  if (queue_->closeReason() == CloseReason::SlowConsumer) {
    logger().error("plugin %s: disabled: its queue is full (max_frames %z, max_bytes %z, on_full disconnect)",
                   config_.name, config_.queue.maxFrames, config_.queue.maxBytes);
    disabled_ = true;
    if (onDisabled_) onDisabled_(*this);
  }
  if (skipped > 0)
    logger().warning("plugin %s: stop deadline reached with %?u frames not handed to the plugin", config_.name,
                     skipped);
  finish();
  signalEnded();
}

// Worker thread only. Frames of several spans go in one call (a plugin with
// on_frames gets up to FrameHandout::kMaxFrames at once); spans reached after
// the stop deadline are skipped.
void PluginInstance::deliver(const std::deque<FrameSpan>& spans, std::uint64_t& skipped) {
  owner_.assertOwned();
  std::uint64_t delivered = 0;
  auto call = [&] {
    if (handout_.empty()) return;
    handout_.startCall(handled_);
    delivered += calls_.deliver(handout_.frames(), handout_.size(), disabled_);
    handout_.endCall();
  };
  for (const FrameSpan& span : spans) {
    if (disabled_) break;
    if (steadyNs(std::chrono::steady_clock::now()) > deadlineNs_) {
      skipped += span.frameCount();
      continue;
    }
    for (std::uint32_t next = span.first; next < span.end && !disabled_;) {
      next = handout_.add(span, next);
      if (handout_.full()) call();
    }
  }
  call();
  queue_->countDelivered(delivered);
}

// After each call into the plugin (worker thread), with a progress hook:
// what the call emitted is published now, so that the progress reported
// covers it.
void PluginInstance::returned(std::size_t frames) {
  handled_ += frames;
  publishEmitted();
  reportProgress();
}

void PluginInstance::reportProgress() {
  if (progress_) progress_(handledAndReleased());
}

// Frames whose call has returned, up to the first one the plugin still
// retains: a frame it keeps (a sink until its commit) is not done with.
std::uint64_t PluginInstance::handledAndReleased() const {
  return std::min(handled_, handout_.lowestRetained());
}

void PluginInstance::recordFailure(const char* what, const char* message, int inARow) {
  owner_.assertOwned();
  metrics_->countFailure();
  logger().warning("plugin %s: %s failed (%d in a row): %s", config_.name, std::string(what), inARow,
                   *message ? api_.fromPlugin(message) : std::string("no reason given"));
  if (inARow < config_.maxFailures || disabled_) return;
  disabled_ = true;
  queue_->close(CloseReason::Failed);
  logger().error("plugin %s: disabled after %d failures in a row; the relay goes on without it", config_.name,
                 inARow);
  if (onDisabled_) onDisabled_(*this);
}

// Flushes and destroys the plugin's instance once. Worker thread, or the
// destructor after the worker has ended (or when it never started): the
// owner either way.
void PluginInstance::finish() {
  owner_.assertOwned();
  if (!calls_.created()) return;
  std::string error;
  if (!disabled_ && !calls_.finalFlush(error))
    logger().warning("plugin %s: final flush failed: %s", config_.name, api_.fromPlugin(error.c_str()));
  publishEmitted();
  calls_.destroy();
  reportProgress();  // what destroy() released
  if (const std::int64_t kept = handout_.retainedBatches(); kept > 0)
    logger().warning("plugin %s: %?d batches of frames still retained after destroy (never released): their "
                     "memory stays",
                     config_.name, kept);
}

void PluginInstance::log(int level, const std::string& line) {
  auto priority = level <= STREAMRELAY_LOG_ERROR     ? Poco::Message::PRIO_ERROR
                  : level == STREAMRELAY_LOG_WARNING ? Poco::Message::PRIO_WARNING
                  : level >= STREAMRELAY_LOG_DEBUG   ? Poco::Message::PRIO_DEBUG
                                                     : Poco::Message::PRIO_INFORMATION;
  logger().log(Poco::Message(logger().name(), line, priority));
}

// Any thread. A drain's emits wait in emitted_ for publishEmitted(); when
// they would hold more than max_emit_bytes, the worker publishes them first
// (another thread cannot: the worker is the stream's one publisher, so that
// emit fails).
bool PluginInstance::emit(std::string_view data, std::string_view key) {
  if (!output_) return false;
  std::unique_ptr<FrameBatch> full;
  {
    std::lock_guard<std::mutex> lock(emitMutex_);
    const std::size_t bytes = data.size() + kWireHeaderBytes + key.size();
    if (!emitted_.empty() && emittedBytes_ + bytes > config_.maxEmitBytes) {
      if (std::this_thread::get_id() != workerId_.load()) return false;
      full = emitted_.seal(unixNowNs());
      emittedBytes_ = 0;
    }
    emitted_.add(data.data(), data.size(), key);
    emittedBytes_ += bytes;
  }
  if (full) publish(std::move(full));  // before anything emitted after it: this is the worker
  return true;
}

// Publishes what was emitted since the last call as one batch on the
// instance's stream. The owner only.
void PluginInstance::publishEmitted() {
  owner_.assertOwned();
  if (!output_) return;
  std::unique_ptr<FrameBatch> batch;
  {
    std::lock_guard<std::mutex> lock(emitMutex_);
    if (!emitted_.empty()) {
      batch = emitted_.seal(unixNowNs());
      emittedBytes_ = 0;
    }
  }
  if (batch) publish(std::move(batch));
}

// Published only by a worker that is its stream's publisher (see the class
// comment), else dropped with a line. (A worker abandoned while blocked
// inside publish() itself, on a full `block` queue, still completes that one
// call.) The owner only.
void PluginInstance::publish(std::unique_ptr<FrameBatch> batch) {
  if (!publishing_ || abandoned_) {
    logger().warning("plugin %s: %z emitted frame(s) dropped: %s", config_.name, batch->frameCount(),
                     std::string(publishing_ ? "the instance was abandoned (its replacement publishes its stream)"
                                             : "the instance never started"));
    return;
  }
  output_->publish(std::move(batch));
}

}  // namespace streamrelay
