// SPDX-License-Identifier: Apache-2.0
#include "plugin_instance.hpp"

#include <Poco/Logger.h>

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <deque>

#include "fatal_signal.hpp"
#include "logging.hpp"
#include "secret_mask.hpp"

namespace streamrelay {

namespace {
Poco::Logger& logger() { return Poco::Logger::get("streamrelay.plugin"); }
constexpr std::size_t kErrorBytes = 512;
static_assert(kErrorBytes >= STREAMRELAY_MIN_ERROR_SIZE, "plugin.h promises at least this much room");
// While its queue is empty, an instance that has had frames is flushed this often.
constexpr std::chrono::milliseconds kIdleFlush(100);

std::int64_t steadyNs(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// What a plugin says (a log line, an error), as the relay logs it: one line,
// and no URL's password or token (secret_mask.hpp), whatever the plugin wrote.
std::string fromPlugin(const char* message) { return oneLine(maskUrlSecrets(message ? message : "")); }
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
      queue_(std::make_shared<SubscriptionQueue>("plugin " + config_.name, config_.queue, [] {},
                                                 metrics_->queueCounters())),
      description_(config_.name + " (type " + library_->name() + ", file " + library_->path() + ")"),
      crashNote_("plugin instance " + description_) {
  api_.struct_size = sizeof(api_);
  api_.abi_version = STREAMRELAY_ABI_VERSION;
  api_.host = this;
  api_.log = &PluginInstance::apiLog;
  api_.add_counter = &PluginInstance::apiAddCounter;
  api_.stats_json = &PluginInstance::apiStatsJson;
  api_.instance_name = &PluginInstance::apiInstanceName;
  api_.stopping = &PluginInstance::apiStopping;
  api_.set_gauge = &PluginInstance::apiSetGauge;
  api_.supports = &PluginInstance::apiSupports;
  api_.emit = &PluginInstance::apiEmit;
}

PluginInstance::~PluginInstance() {
  beginStop(CloseReason::Shutdown, std::chrono::steady_clock::now());
  if (worker_.joinable()) worker_.join();  // it has ended: see the contract in the header
  owner_.claim();  // the worker has ended or never started: this thread takes the last step
  FatalSignalNote note(crashNote_);
  finish();
}

bool PluginInstance::create(std::string& error) {
  owner_.assertOwned();
  char message[kErrorBytes] = "";
  FatalSignalNote note(crashNote_);
  self_ = library_->descriptor().create(&api_, config_.configYaml.c_str(), message, sizeof message);
  if (!self_) error = *message ? fromPlugin(message) : "create() failed without a reason";
  return self_ != nullptr;
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
  std::deque<FrameSpan> spans;
  std::uint64_t skipped = 0;  // frames still queued at the stop deadline
  bool fed = false;  // once frames came, idle ticks flush: a plugin's own interval is honoured
  for (;;) {
    queue_->waitForFrames(std::chrono::steady_clock::now() + kIdleFlush);
    bool closed = queue_->closed();  // read before taking: nothing arrives after close
    if (queue_->takeAll(spans) == 0) {
      if (closed) break;
      if (fed) callFlush();
      publishEmitted();
      continue;
    }
    fed = true;
    for (const FrameSpan& span : spans) {
      if (disabled_) break;
      if (steadyNs(std::chrono::steady_clock::now()) > deadlineNs_) skipped += span.frameCount();
      else deliver(span);
    }
    spans.clear();
    callFlush();
    publishEmitted();  // what this drain emitted: one batch, one publish
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

void PluginInstance::callFlush() {
  owner_.assertOwned();
  if (!library_->flush() || disabled_) return;
  char message[kErrorBytes] = "";
  if (library_->flush()(self_, message, sizeof message) != STREAMRELAY_OK) recordFailure("flush", message);
}

// Hands one span's frames to the plugin. Worker thread only.
void PluginInstance::deliver(const FrameSpan& span) {
  owner_.assertOwned();
  char message[kErrorBytes];
  streamrelay_frame frame{};
  frame.struct_size = sizeof frame;
  frame.received_unix_ns = span.batch->receivedUnixNs();
  if (const StreamId* stream = span.batch->stream()) {
    frame.stream = stream->name.c_str();
    frame.epoch = stream->epoch;
  }
  std::uint64_t delivered = 0;
  for (std::uint32_t i = span.first; i < span.end && !disabled_; ++i) {
    std::string_view payload = span.batch->payload(i);
    frame.data = reinterpret_cast<const std::uint8_t*>(payload.data());
    frame.size = payload.size();
    frame.seq = span.batch->seq(i);
    message[0] = '\0';
    if (library_->descriptor().on_frame(self_, &frame, message, sizeof message) == STREAMRELAY_OK) {
      consecutiveFailures_ = 0;
      ++delivered;
    } else {
      recordFailure("on_frame", message);
    }
  }
  queue_->countDelivered(delivered);
}

void PluginInstance::recordFailure(const char* what, const char* message) {
  owner_.assertOwned();
  metrics_->countFailure();
  ++consecutiveFailures_;
  logger().warning("plugin %s: %s failed (%d in a row): %s", config_.name, std::string(what), consecutiveFailures_,
                   *message ? fromPlugin(message) : std::string("no reason given"));
  if (consecutiveFailures_ < config_.maxFailures || disabled_) return;
  disabled_ = true;
  queue_->close(CloseReason::Failed);
  logger().error("plugin %s: disabled after %d failures in a row; the relay goes on without it", config_.name,
                 consecutiveFailures_);
  if (onDisabled_) onDisabled_(*this);
}

// Flushes and destroys the plugin's instance once. Worker thread, or the
// destructor after the worker has ended (or when it never started): the
// owner either way.
void PluginInstance::finish() {
  owner_.assertOwned();
  if (!self_) return;
  if (library_->flush() && !disabled_) {
    char message[kErrorBytes] = "";
    if (library_->flush()(self_, message, sizeof message) != STREAMRELAY_OK)
      logger().warning("plugin %s: final flush failed: %s", config_.name, fromPlugin(message));
  }
  publishEmitted();
  library_->descriptor().destroy(self_);
  self_ = nullptr;
}

void PluginInstance::apiLog(void* host, int level, const char* message) {
  auto* self = static_cast<PluginInstance*>(host);
  auto priority = level <= STREAMRELAY_LOG_ERROR     ? Poco::Message::PRIO_ERROR
                  : level == STREAMRELAY_LOG_WARNING ? Poco::Message::PRIO_WARNING
                  : level >= STREAMRELAY_LOG_DEBUG   ? Poco::Message::PRIO_DEBUG
                                                     : Poco::Message::PRIO_INFORMATION;
  logger().log(Poco::Message(logger().name(), "plugin " + self->config_.name + ": " + fromPlugin(message),
                             priority));
}

void PluginInstance::apiAddCounter(void* host, const char* name, std::uint64_t delta) {
  if (name) static_cast<PluginInstance*>(host)->metrics_->addCounter(name, delta);
}

void PluginInstance::apiSetGauge(void* host, const char* name, double value) {
  if (name) static_cast<PluginInstance*>(host)->metrics_->setGauge(name, value);
}

int PluginInstance::apiEmit(void* host, const std::uint8_t* data, std::size_t size) {
  auto* self = static_cast<PluginInstance*>(host);
  if (!self->output_ || size > (std::size_t{1} << 30) || (!data && size > 0)) return STREAMRELAY_ERROR;
  std::lock_guard<std::mutex> lock(self->emitMutex_);
  self->emitted_.add(reinterpret_cast<const char*>(data), size);
  return STREAMRELAY_OK;
}

// Publishes what was emitted since the last call as one batch on the
// instance's stream. The owner only; published only by a worker that is its
// stream's publisher (see the class comment), else dropped with a line.
// (A worker abandoned while blocked inside publish() itself, on a full
// `block` queue, still completes that one call.)
void PluginInstance::publishEmitted() {
  owner_.assertOwned();
  if (!output_) return;
  std::unique_ptr<FrameBatch> batch;
  {
    std::lock_guard<std::mutex> lock(emitMutex_);
    if (emitted_.empty()) return;
    batch = emitted_.seal(unixNowNs());
  }
  if (!publishing_ || abandoned_) {
    logger().warning("plugin %s: %z emitted frame(s) dropped: %s", config_.name, batch->frameCount(),
                     std::string(publishing_ ? "the instance was abandoned (its replacement publishes its stream)"
                                             : "the instance never started"));
    return;
  }
  output_->publish(std::move(batch));
}

int PluginInstance::apiSupports(void* host, std::size_t offset) {
  auto* self = static_cast<PluginInstance*>(host);
  if (offset == offsetof(streamrelay_host_api, emit) && !self->output_) return 0;  // no stream of its own
  const streamrelay_host_api& api = self->api_;
  if (offset % alignof(void (*)()) != 0 || offset + sizeof(void (*)()) > api.struct_size) return 0;
  void (*function)();
  std::memcpy(&function, reinterpret_cast<const char*>(&api) + offset, sizeof function);
  return function != nullptr && offset >= offsetof(streamrelay_host_api, log) ? 1 : 0;
}

std::size_t PluginInstance::apiStatsJson(void* host, char* buffer, std::size_t capacity) {
  auto* self = static_cast<PluginInstance*>(host);
  std::string json = self->stats_ ? self->stats_() : "{}";
  if (buffer && capacity > json.size()) std::memcpy(buffer, json.c_str(), json.size() + 1);
  return json.size();
}

const char* PluginInstance::apiInstanceName(void* host) {
  return static_cast<PluginInstance*>(host)->config_.name.c_str();
}

int PluginInstance::apiStopping(void* host) { return static_cast<PluginInstance*>(host)->stopping_ ? 1 : 0; }

}  // namespace streamrelay
