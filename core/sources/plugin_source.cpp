// SPDX-License-Identifier: Apache-2.0
#include "plugin_source.hpp"

#include <Poco/Logger.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "file_trust.hpp"
#include "logging.hpp"
#include "plugin_library.hpp"

namespace streamrelay {

namespace {

Poco::Logger& logger() { return Poco::Logger::get("streamrelay.upstream"); }

constexpr int kPumpMs = 200;                        // a stop is seen at least this often
constexpr std::uint64_t kMaxSeq = std::uint64_t{1} << 62;  // as the streamrelay source: far below a wrap
constexpr std::size_t kMaxFrame = std::size_t{1} << 30;    // as a plugin's emit
constexpr std::size_t kErrorSize = 512;
constexpr std::size_t kMaxHeldFrames = 1000000;               // frames held for a reorder window at most
constexpr std::size_t kMaxHeldBytes = std::size_t{256} << 20;  // and their bytes
constexpr std::uint64_t kMaxJump = std::uint64_t{1} << 20;     // a seq further ahead waits for its next (plugin_source.hpp)
constexpr double kEpochBurst = 10;                             // new epochs taken at once at most
constexpr double kEpochsPerSecond = 1.0 / 60;                  // and then one a minute

PluginSource* of(void* host) { return static_cast<PluginSource*>(host); }

}  // namespace

PluginSource::PluginSource(const SourceConfig& config, Bus& bus, const PluginSourceType& type)
    : UpstreamSource(config, bus),
      type_(type),
      mirror_(counters_, label(), "the writer's"),
      epochTokens_(kEpochBurst),
      epochTokensAt_(std::chrono::steady_clock::now()) {
  // Restarted by a reload, or on a log: goes on from what its stream has, never a seq twice.
  if (bus.lastSeq() > 0) mirror_.set(bus.stream().epoch, bus.lastSeq());
  api_.struct_size = sizeof api_;
  api_.abi_version = STREAMRELAY_ABI_VERSION;
  api_.host = this;
  api_.log = &PluginSource::apiLog;
  api_.stopping = &PluginSource::apiStopping;
  api_.publish = &PluginSource::apiPublish;
  api_.publish_mirrored = &PluginSource::apiPublishMirrored;
  api_.set_connected = &PluginSource::apiSetConnected;
  api_.provider_position = &PluginSource::apiProviderPosition;
  api_.add_counter = &PluginSource::apiAddCounter;
  api_.protocol_error = &PluginSource::apiProtocolError;
  api_.set_reorder_window = &PluginSource::apiSetReorderWindow;
  api_.refuse_mark = &PluginSource::apiRefuseMark;
}

PluginSource::~PluginSource() {
  stop();
  close();  // one created but never run (the relay did not start)
}

void PluginSource::resumeProviderAfter(const std::string& position) {
  logger().information("%s: going on after provider position %s (kept with the stream)", label(), oneLine(position));
  resumeAfter_ = position;
  std::lock_guard<std::mutex> lock(counters_.endpointsMutex);
  counters_.providerPosition = position;
}

void PluginSource::prepare() {
  std::string why;
  if (!open(why)) throw std::runtime_error(label() + ": " + why);
}

bool PluginSource::open(std::string& why) {
  if (self_) return true;
  try {
    if (!library_) {
      const char* tmpdir = ::getenv("TMPDIR");
      std::string dir = std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/streamrelay-source.XXXXXX";
      if (!::mkdtemp(&dir[0])) throw std::runtime_error("cannot create a directory for the library's private copy");
      std::shared_ptr<PluginLibrary> library;
      try {
        // Loaded again from its path: held to PluginCatalog's rule (the file
        // may have changed since the catalog read it).
        struct stat st {};
        if (::stat(type_.path.c_str(), &st) != 0) throw std::runtime_error(type_.path + " does not exist");
        if (const std::string unsafe = type_.allowInsecure ? std::string() : untrustedBecause(type_.path, st);
            !unsafe.empty())
          throw std::runtime_error("refusing to load: " + unsafe + " (plugins.allow_insecure: true overrides)");
        library = PluginLibrary::load(type_.path, dir);
      } catch (...) {
        ::rmdir(dir.c_str());
        throw;
      }
      ::rmdir(dir.c_str());  // the copy is removed once mapped
      const streamrelay_source_plugin* d = library->sourceDescriptor();
      if (!d || type_.name != d->name)
        throw std::runtime_error(type_.path + " no longer provides source type " + type_.name);
      library_ = std::move(library);
      descriptor_ = d;
    }
  } catch (const std::exception& e) {
    why = "plugin " + type_.path + ": " + e.what();
    return false;
  }
  char error[kErrorSize] = "";
  self_ = descriptor_->create(&api_, config_.pluginConfigYaml.c_str(), error, sizeof error);
  if (!self_) {
    error[sizeof error - 1] = '\0';
    why = "source type " + type_.name + ": " + oneLine(*error ? error : "create failed (no reason given)");
    return false;
  }
  return true;
}

void PluginSource::close() {
  if (!self_) return;
  descriptor_->destroy(self_);
  self_ = nullptr;
  counters_.connected.store(false);
}

void PluginSource::run() {
  std::string why;
  while (!stop_.requested() && !open(why)) {  // a reload's restart: not started yet
    logger().error("%s: %s; trying again in 5 s", label(), why);
    stop_.waitFor(std::chrono::seconds(5));
  }
  std::string lastError;
  while (!stop_.requested()) {
    char error[kErrorSize] = "";
    const int rc = descriptor_->pump(self_, kPumpMs, error, sizeof error);
    releaseHeldIfDue();
    flush();
    if (rc == STREAMRELAY_OK) {
      lastError.clear();
      continue;
    }
    error[sizeof error - 1] = '\0';
    const std::string text = oneLine(*error ? error : "pump failed (no reason given)");
    if (text != lastError) logger().warning("%s: %s", label(), text);  // once per change, not once a second
    lastError = text;
    stop_.waitFor(std::chrono::seconds(1));
  }
  dropHeld();  // not delivered: the stream keeps the position before them
  flush();
  close();
}

int PluginSource::publish(const uint8_t* data, std::size_t size, std::string_view key, std::string_view position) {
  if ((!data && size > 0) || size > kMaxFrame) return STREAMRELAY_ERROR;
  static const char none = 0;
  if (!data) data = reinterpret_cast<const uint8_t*>(&none);
  if (key.size() > STREAMRELAY_MAX_KEY_SIZE) key = {};
  if (suspect_) refuse(suspect_->epoch, suspect_->seq, "its writer's next seq did not follow");
  releaseHeld();  // a frame numbered here goes after the writer's frames waited for: they are not
  if (marked_) flush();
  if (builder_.empty()) batchTime_ = unixNowNs();
  marked_ = false;
  counters_.bytesRead.fetch_add(size, std::memory_order_relaxed);
  builder_.add(reinterpret_cast<const char*>(data), size, key);
  advancePosition(position);  // nothing is held now: the batch's position too
  return STREAMRELAY_OK;
}

int PluginSource::publishMirrored(std::uint64_t epoch, std::uint64_t seq, const uint8_t* data, std::size_t size,
                                  std::string_view key, std::string_view position) {
  if ((!data && size > 0) || size > kMaxFrame) return STREAMRELAY_ERROR;
  static const char none = 0;
  if (!data) data = reinterpret_cast<const uint8_t*>(&none);
  if (epoch == 0 || seq == 0 || seq > kMaxSeq) return publish(data, size, key, position);  // no marks: numbered here
  if (key.size() > STREAMRELAY_MAX_KEY_SIZE) key = {};
  // Frames numbered here and not yet published hold seqs after the
  // position: they are numbered (published) first, so that it counts them.
  if (!marked_ && !builder_.empty()) flush();
  counters_.bytesRead.fetch_add(size, std::memory_order_relaxed);
  if (suspect_) {
    if (epoch == suspect_->epoch && seq == suspect_->seq + 1) {  // confirmed: the writer's stream did jump
      const std::unique_ptr<Suspect> s = std::move(suspect_);
      releaseHeld();
      take(s->epoch, s->seq, s->data.data(), s->data.size(), s->key);
      advancePosition(s->position);
    } else {
      refuse(suspect_->epoch, suspect_->seq, "its writer's next seq did not follow");
    }
  }
  if (epoch == mirror_.epoch() && seq <= mirror_.seq()) {  // had already (read again after a restart): the provider went past it
    counters_.repeats.fetch_add(1, std::memory_order_relaxed);
    advancePosition(position);
    return STREAMRELAY_MIRROR_REPEAT;
  }
  if (mirror_.epoch() != 0 && epoch == mirror_.epoch() && seq - mirror_.seq() > kMaxJump) {
    // Far ahead: taken once the writer's next seq follows it (above).
    suspect_ = std::make_unique<Suspect>(Suspect{epoch, seq, std::string(reinterpret_cast<const char*>(data), size),
                                                 std::string(key), std::string(position)});
    return STREAMRELAY_MIRROR_PUBLISHED;
  }
  if (mirror_.epoch() != 0 && epoch != mirror_.epoch() && !newEpochAllowed()) {
    refuse(epoch, seq, "the writer's epoch changed more often than a relay restarts");
    advancePosition(position);
    return STREAMRELAY_MIRROR_REPEAT;
  }
  if (epoch == mirror_.epoch() && seq > mirror_.seq() + 1 && reorderWindowMs_ > 0) {
    // Ahead of the next seq: the writer's frames may be stored out of order
    // (a sink's retry after a failover); held until the ones between come,
    // or the window ends (then they are a gap).
    if (held_.empty()) holdSince_ = std::chrono::steady_clock::now();
    if (held_.find(seq) == held_.end()) {
      heldBytes_ += size;
      held_.emplace(seq, Held{std::string(reinterpret_cast<const char*>(data), size), std::string(key)});
    }
    advancePosition(position);
    if (held_.size() > kMaxHeldFrames || heldBytes_ > kMaxHeldBytes) releaseHeld();
    return STREAMRELAY_MIRROR_PUBLISHED;
  }
  if (mirror_.epoch() != 0 && mirror_.epoch() != epoch) releaseHeld();  // the old epoch's frames: before the new one's
  take(epoch, seq, reinterpret_cast<const char*>(data), size, key);
  advancePosition(position);
  // The next ones may be held already.
  for (auto next = held_.find(mirror_.seq() + 1); next != held_.end(); next = held_.find(mirror_.seq() + 1)) {
    take(mirror_.epoch(), next->first, next->second.data.data(), next->second.data.size(), next->second.key);
    heldBytes_ -= next->second.data.size();
    held_.erase(next);
  }
  // Seqs below the next one can no longer be taken (came some other way): dropped.
  while (!held_.empty() && held_.begin()->first <= mirror_.seq()) {
    heldBytes_ -= held_.begin()->second.data.size();
    held_.erase(held_.begin());
  }
  if (held_.empty()) position_ = latestPosition_;
  return STREAMRELAY_MIRROR_PUBLISHED;
}

// A frame after the position (never one had already: the callers see to
// it): a gap or a new epoch before it is counted (MirrorPosition).
void PluginSource::take(std::uint64_t epoch, std::uint64_t seq, const char* data, std::size_t size, std::string_view key) {
  if (!mirror_.take(epoch, seq)) return;
  if (!builder_.empty() && (!marked_ || epoch != batchEpoch_ || seq != batchFirst_ + builder_.frameCount())) flush();
  if (builder_.empty()) {
    marked_ = true;
    batchEpoch_ = epoch;
    batchFirst_ = seq;
    batchTime_ = unixNowNs();
  }
  builder_.add(data, size, key);
}

// The provider's position after a frame handed over. While frames are held
// the batches keep the one before the first held frame: a relay restarted
// on its log reads the held ones again.
void PluginSource::advancePosition(std::string_view position) {
  if (position.empty()) return;
  latestPosition_.assign(position);
  if (held_.empty() && !suspect_) position_.assign(position);
}

// Stopping: the held frames (and a suspect) are not published; the batches
// published keep the position before the first of them.
void PluginSource::dropHeld() {
  if (held_.empty() && !suspect_) return;
  logger().information("%s: %s frame(s) waiting for the writer's frames before them not published: a restart reads "
                       "them again after provider position %s",
                       label(), std::to_string(held_.size() + (suspect_ ? 1 : 0)),
                       position_.empty() ? std::string("(none)") : oneLine(position_));
  held_.clear();
  heldBytes_ = 0;
  suspect_.reset();
}

bool PluginSource::newEpochAllowed() {
  const auto now = std::chrono::steady_clock::now();
  epochTokens_ = std::min(kEpochBurst, epochTokens_ + std::chrono::duration<double>(now - epochTokensAt_).count() *
                                                          kEpochsPerSecond);
  epochTokensAt_ = now;
  if (epochTokens_ < 1) return false;
  epochTokens_ -= 1;
  return true;
}

void PluginSource::refuse(std::uint64_t epoch, std::uint64_t seq, const char* why) {
  const std::uint64_t n = counters_.refused.fetch_add(1, std::memory_order_relaxed) + 1;
  if (suspect_ && suspect_->epoch == epoch && suspect_->seq == seq) {
    const std::string position = std::move(suspect_->position);
    suspect_.reset();
    advancePosition(position);
  }
  if (n == 1 || n % 1000 == 0)  // a flood of them is not a flood of lines
    logger().warning("%s: a frame marked (%s, %s) refused: %s (%s refused so far)", label(), std::to_string(epoch),
                     std::to_string(seq), std::string(why), std::to_string(n));
}

void PluginSource::releaseHeld() {
  if (held_.empty()) return;
  for (auto& [seq, frame] : held_) take(mirror_.epoch(), seq, frame.data.data(), frame.data.size(), frame.key);
  held_.clear();
  heldBytes_ = 0;
  position_ = latestPosition_;
}

void PluginSource::releaseHeldIfDue() {
  if (!held_.empty() &&
      std::chrono::steady_clock::now() - holdSince_ >= std::chrono::milliseconds(reorderWindowMs_))
    releaseHeld();
}

void PluginSource::flush() {
  if (!builder_.empty()) {
    std::unique_ptr<FrameBatch> batch = builder_.seal(batchTime_);
    if (!position_.empty()) batch->setProviderPosition(position_);
    if (marked_) {
      const std::uint64_t last = batchFirst_ + batch->frameCount() - 1;
      bus_.publishAt(std::move(batch), batchEpoch_, batchFirst_);
      counters_.upstreamEpoch.store(batchEpoch_, std::memory_order_relaxed);
      counters_.upstreamSeq.store(last, std::memory_order_relaxed);
      counters_.lagNs.store(unixNowNs() - batchTime_, std::memory_order_relaxed);
    } else {
      bus_.publish(std::move(batch));
      // Numbered here, after the writer's last: a marked frame at or below it is one had already.
      mirror_.set(bus_.stream().epoch, bus_.lastSeq());
    }
  }
  if (!position_.empty()) {
    std::lock_guard<std::mutex> lock(counters_.endpointsMutex);
    counters_.providerPosition = position_;
  }
}

// The host API is C: no exception may leave it (a cnats thread calling log
// would end the process). Publishing reports one as STREAMRELAY_ERROR; a log
// line or a counter that cannot be made (no memory, a failing log channel)
// has nowhere to be told, and is left out.

void PluginSource::apiLog(void* host, int level, const char* message) {
  if (!host || !message) return;
  try {
    const std::string text = of(host)->label() + ": " + oneLine(message);
    switch (level) {
      case STREAMRELAY_LOG_ERROR: logger().error(text); break;
      case STREAMRELAY_LOG_WARNING: logger().warning(text); break;
      case STREAMRELAY_LOG_INFO: logger().information(text); break;
      default: logger().debug(text); break;
    }
  } catch (...) {  // see above: nowhere to tell it
  }
}

int PluginSource::apiStopping(void* host) { return host && of(host)->stop_.requested() ? 1 : 0; }

int PluginSource::apiPublish(void* host, const uint8_t* data, size_t size, const char* key, size_t keySize,
                             const char* position, size_t positionSize) {
  if (!host) return STREAMRELAY_ERROR;
  try {
    return of(host)->publish(data, size, key ? std::string_view(key, keySize) : std::string_view(),
                             position ? std::string_view(position, positionSize) : std::string_view());
  } catch (const std::exception&) {
    return STREAMRELAY_ERROR;
  }
}

int PluginSource::apiPublishMirrored(void* host, uint64_t epoch, uint64_t seq, const uint8_t* data, size_t size,
                                     const char* key, size_t keySize, const char* position, size_t positionSize) {
  if (!host) return STREAMRELAY_ERROR;
  try {
    return of(host)->publishMirrored(epoch, seq, data, size,
                                     key ? std::string_view(key, keySize) : std::string_view(),
                                     position ? std::string_view(position, positionSize) : std::string_view());
  } catch (const std::exception&) {
    return STREAMRELAY_ERROR;
  }
}

void PluginSource::apiSetConnected(void* host, int connected) {
  if (!host) return;
  SourceCounters& c = of(host)->counters_;
  if (!c.connected.exchange(connected != 0) && connected) c.connects.fetch_add(1, std::memory_order_relaxed);
}

size_t PluginSource::apiProviderPosition(void* host, char* buffer, size_t capacity) {
  if (!host) return 0;
  const std::string& position = of(host)->resumeAfter_;
  if (buffer && capacity > position.size()) {
    std::memcpy(buffer, position.data(), position.size());
    buffer[position.size()] = '\0';
  }
  return position.size();
}

void PluginSource::apiAddCounter(void* host, const char* name, uint64_t delta) {
  if (!host || !name) return;
  SourceCounters& c = of(host)->counters_;
  std::lock_guard<std::mutex> lock(c.endpointsMutex);
  try {
    c.pluginCounters[name] += delta;
  } catch (const std::exception&) {  // see above: no memory for a new counter's name
  }
}

void PluginSource::apiSetReorderWindow(void* host, uint32_t milliseconds) {
  if (host) of(host)->reorderWindowMs_ = std::min<std::uint32_t>(milliseconds, 600000);
}

void PluginSource::apiRefuseMark(void* host, uint64_t epoch, uint64_t seq, const char* why) {
  if (!host) return;
  try {
    of(host)->refuse(epoch, seq, why ? why : "refused by the source");
  } catch (...) {  // see above: a log line that cannot be made is left out (counted before it)
  }
}

void PluginSource::apiProtocolError(void* host) {
  if (host) of(host)->counters_.protocolErrors.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace streamrelay
