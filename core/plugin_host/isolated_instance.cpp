// SPDX-License-Identifier: Apache-2.0
#include "isolated_instance.hpp"

#include <Poco/Logger.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>

namespace streamrelay {

namespace {

Poco::Logger& logger() { return Poco::Logger::get("streamrelay.plugin"); }

// While a child runs: how often its memory is sampled and the watchdog looks.
constexpr std::chrono::milliseconds kTick(100);
// create(): the first child's create() gets at least this long.
constexpr std::chrono::milliseconds kMinStartTimeout(10000);
// After join() gave up and killed the child, the supervisor ends within this.
constexpr std::chrono::seconds kKillGrace(5);

std::int64_t toNs(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

int newBell() {
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) throw std::runtime_error(std::string("cannot create an eventfd: ") + std::strerror(errno));
  return fd;
}

void ring(int bell) {
  const std::uint64_t one = 1;
  if (::write(bell, &one, sizeof one) < 0) {
    // EAGAIN: already rung
  }
}

std::string mebibytes(std::uint64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

}  // namespace

IsolatedInstance::IsolatedInstance(std::shared_ptr<PluginLibrary> library, PluginInstanceConfig config,
                                   std::shared_ptr<PluginMetrics> metrics, Bus* output, StatsJson stats,
                                   OnDisabled onDisabled)
    : library_(std::move(library)),
      config_(std::move(config)),
      metrics_(std::move(metrics)),
      output_(output),
      stats_(std::move(stats)),
      onDisabled_(std::move(onDisabled)),
      description_(config_.name + " (type " + library_->name() + ", file " + library_->path() + ")"),
      wakeBell_(newBell()),
      queue_(std::make_shared<SubscriptionQueue>("plugin " + config_.name, config_.queue,
                                                 [bell = wakeBell_] { ring(bell); }, metrics_->queueCounters())),
      ring_(config_.process.ringBytes),
      inFlight_(ring_, config_.inputs) {}

IsolatedInstance::~IsolatedInstance() {
  if (supervisor_.joinable()) {
    beginStop(CloseReason::Shutdown, Clock::now());
    join(Clock::now());
  } else if (child_ && ready_) {
    // Created, never started (a reload that was refused as a whole): its
    // plugin is destroyed as it would be after a stop with nothing to do.
    beginStop(CloseReason::Removed, Clock::now() + std::chrono::seconds(1));
    supervising_ = true;
    sendStopWhenDone();
    const auto giveUp = Clock::now() + std::chrono::seconds(2);
    while (child_ && Clock::now() < giveUp) {
      waitForEvents(kTick);
      serviceChild();
    }
  }
  child_.reset();  // kills and reaps one still running
  ::close(wakeBell_);
}

bool IsolatedInstance::create(std::string& error) {
  if (library_->codeFd() < 0) {
    error = "isolation: process: the plugin's code could not be kept open for its child process";
    return false;
  }
  try {
    startChild();
  } catch (const std::exception& e) {
    error = e.what();
    return false;
  }
  const auto deadline =
      Clock::now() + std::max(kMinStartTimeout, std::chrono::milliseconds(config_.process.watchdogMs));
  while (child_ && !ready_ && !refused_ && Clock::now() < deadline) {
    waitForEvents(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    serviceChild();
  }
  if (ready_) return true;
  if (refused_) error = refusal_;
  else if (child_) error = "its child process did not finish create() within " +
                           std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::max(kMinStartTimeout, std::chrono::milliseconds(config_.process.watchdogMs)))
                                              .count()) + " ms";
  else error = lastDeath_ + " before its create() returned";
  child_.reset();
  return false;
}

void IsolatedInstance::start() {
  {
    std::lock_guard<std::mutex> lock(endMutex_);
    ended_ = false;
  }
  supervisor_ = std::thread([this] { run(); });
}

void IsolatedInstance::beginStop(CloseReason reason, Clock::time_point deadline) {
  deadlineNs_ = toNs(deadline);
  stopReason_ = static_cast<int>(reason);
  stopping_ = true;
  queue_->close(reason);  // rings the bell
}

bool IsolatedInstance::join(Clock::time_point deadline) {
  {
    std::unique_lock<std::mutex> lock(endMutex_);
    if (!endChanged_.wait_until(lock, deadline, [&] { return ended_; })) {
      killNow_ = true;
      ring(wakeBell_);
      endChanged_.wait_for(lock, kKillGrace, [&] { return ended_; });
    }
    if (!ended_) return false;
  }
  if (supervisor_.joinable()) supervisor_.join();
  return true;
}

void IsolatedInstance::abandon() {
  abandoned_ = true;  // before its replacement starts publishing (PluginHost::stopInstances)
  if (supervisor_.joinable()) supervisor_.detach();
}

bool IsolatedInstance::ended() const {
  std::lock_guard<std::mutex> lock(endMutex_);
  return ended_;
}

void IsolatedInstance::signalEnded() {
  std::lock_guard<std::mutex> lock(endMutex_);
  ended_ = true;
  endChanged_.notify_all();
}

IsolationStatus IsolatedInstance::isolation() const {
  const ChildProcessCounters& c = metrics_->childProcesses();
  IsolationStatus s;
  s.isolated = true;
  s.pid = pid_.load();
  s.framesInFlight = framesInFlight_.load();
  s.restarts = c.restarts.load();
  s.watchdogKills = c.watchdogKills.load();
  s.memoryLimitKills = c.memoryLimitKills.load();
  s.lastExit = c.lastExit();
  return s;
}

// The supervisor: one loop over the child, the queue and the ring.
void IsolatedInstance::run() {
  if (output_) output_->claimPublisher();  // the version it replaces has ended or was abandoned
  publishing_ = true;
  supervising_ = true;
  for (const auto& [acknowledged, frames] : stashedEmits_) childEmitted(acknowledged, frames);
  stashedEmits_.clear();
  lastProgress_ = Clock::now();
  while (!finished()) {
    if (killNow_ && child_) kill(Kill::Other, "the relay stopped waiting for it (shutdown_timeout_ms)");
    if (child_) serviceChild();
    const Clock::time_point now = Clock::now();
    if (child_ && killed_ == Kill::None) {
      checkAcknowledgements();
      feed();
      sendStopWhenDone();
      checkLimits(now);
    } else if (!child_ && !disabled_ && !killNow_ && now >= restartAt_) {
      if (stopRequested() && (pastDeadline() || (queue_->queuedFrames() == 0 && inFlight_.held() == 0))) {
        skipUnhanded();
        break;
      }
      try {
        startChild();
        metrics_->childProcesses().restarts.fetch_add(1);
      } catch (const std::exception& e) {
        ++deathsInARow_;
        scheduleRestart(std::string("its child process could not be started: ") + e.what());
      }
      continue;
    }
    framesInFlight_ = inFlight_.held();
    waitForEvents(nextWait(Clock::now()));
  }
  skipUnhanded();
  if (queue_->closeReason() == CloseReason::SlowConsumer && !disabled_) {
    logger().error("plugin %s: disabled: its queue is full (max_frames %z, max_bytes %z, on_full disconnect)",
                   config_.name, config_.queue.maxFrames, config_.queue.maxBytes);
    disabled_ = true;
    if (onDisabled_) onDisabled_(*this);
  }
  pid_ = 0;
  framesInFlight_ = 0;
  signalEnded();
}

bool IsolatedInstance::pastDeadline() const { return toNs(Clock::now()) > deadlineNs_.load(); }

// Nothing more to do: no child, and none will be started.
bool IsolatedInstance::finished() const {
  if (child_) return false;
  return done_ || disabled_ || killNow_;
}

std::chrono::milliseconds IsolatedInstance::nextWait(Clock::time_point now) const {
  if (child_) return kTick;
  if (restartAt_ > now) return std::chrono::duration_cast<std::chrono::milliseconds>(restartAt_ - now) + std::chrono::milliseconds(1);
  return std::chrono::milliseconds(0);
}

void IsolatedInstance::startChild() {
  ring_.reset(inFlight_.acked());
  inFlight_.rewind();
  ChildStart s;
  s.name = config_.name;
  s.type = library_->name();
  s.libraryPath = library_->path();
  s.configYaml = config_.configYaml;
  s.maxFailures = static_cast<std::uint32_t>(config_.maxFailures);
  s.maxEmitBytes = config_.maxEmitBytes;
  s.allowInsecureFiles = config_.allowInsecureFiles;
  s.queueMaxFrames = config_.queue.maxFrames;
  s.queueMaxBytes = config_.queue.maxBytes;
  s.inputs = config_.inputs;
  s.hasOutput = output_ != nullptr;
  s.ringCapacity = ring_.capacity();
  s.firstRingSeq = inFlight_.acked() + 1;
  s.logLevel = Poco::Logger::root().getLevel();
  s.seccomp = config_.process.seccomp;
  s.memoryLimitBytes = config_.process.memoryLimitBytes;
  child_ = std::make_unique<ChildSession>(s, std::vector<int>{ring_.memfd(), ring_.readerBell(), ring_.writerBell()},
                                          library_->codeFd());
  ready_ = refused_ = stopSent_ = ringFull_ = false;
  killed_ = Kill::None;
  refusal_.clear();
  ackedAtStart_ = ringAcked_ = inFlight_.acked();
  lastProgress_ = nextSample_ = Clock::now();
  pid_ = child_->pid();
}

void IsolatedInstance::waitForEvents(std::chrono::milliseconds timeout) {
  polled_.clear();
  polled_.push_back({wakeBell_, POLLIN, 0});
  if (child_) child_->pollFds(polled_);
  if (ringFull_ && child_) {
    if (ring_.prepareToSleep()) polled_.push_back({ring_.writerBell(), POLLIN, 0});
    else timeout = std::chrono::milliseconds(0);
  }
  const int rc = ::poll(polled_.data(), polled_.size(), static_cast<int>(std::max<std::int64_t>(0, timeout.count())));
  if (ringFull_) ring_.wokeUp();
  ringFull_ = false;
  if (rc > 0 && polled_[0].revents) {
    std::uint64_t count;
    if (::read(wakeBell_, &count, sizeof count) < 0) {
      // EAGAIN: another read took it
    }
  }
}

void IsolatedInstance::serviceChild() {
  if (child_->service(*this, child_->exitSignalled(polled_))) return;
  childGone();
}

// The child exited (it was reaped). Supervisor thread (or create()'s).
void IsolatedInstance::childGone() {
  checkAcknowledgements();  // what it finished before it went
  const int status = child_->exitStatus();
  const bool clean = child_->endedCleanly() && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  const bool madeProgress = inFlight_.acked() > ackedAtStart_;
  std::string how;
  if (!child_->killedBecause().empty()) how = "killed: " + child_->killedBecause();
  else if (refused_) how = "its create() failed: " + refusal_;
  else how = "died of " + describeExit(status);
  const Kill killed = killed_;
  const long pid = child_->pid();
  child_.reset();
  pid_ = 0;
  ChildProcessCounters& counters = metrics_->childProcesses();
  if (clean && !refused_ && (stopSent_ || disabled_)) {  // it did what it was asked
    counters.setLastExit("exit code 0");
    if (!disabled_) skipped_ += inFlight_.dropAll();  // frames it was told of but did not reach by the deadline
    done_ = true;
    return;
  }
  if (killed == Kill::Watchdog) counters.watchdogKills.fetch_add(1);
  if (killed == Kill::MemoryLimit) counters.memoryLimitKills.fetch_add(1);
  counters.setLastExit(killed == Kill::Watchdog      ? "watchdog"
                       : killed == Kill::MemoryLimit ? "memory_limit"
                       : refused_                    ? "create failed"
                                                     : describeExit(status));
  metrics_->countFailure();
  deathsInARow_ = madeProgress ? 1 : deathsInARow_ + 1;
  lastDeath_ = "child process " + std::to_string(pid) + " " + how;
  if (!supervising_) return;  // create() says why in its error
  scheduleRestart("child process " + std::to_string(pid) + " " + how);
}

// One line per death: what happened, and what comes next.
void IsolatedInstance::scheduleRestart(const std::string& what) {
  if (killNow_ || (stopRequested() && pastDeadline())) {
    logger().error("plugin instance %s: %s; not restarted: the instance is stopping", description_, what);
    done_ = true;
    return;
  }
  if (deathsInARow_ >= config_.maxFailures) {
    logger().error("plugin instance %s: %s; disabled after %d deaths in a row without a frame acknowledged "
                   "(max_failures); the relay goes on without it",
                   description_, what, deathsInARow_);
    disable();
    return;
  }
  const std::int64_t initial = config_.process.restartInitialDelayMs;
  const std::int64_t delay =
      std::min<std::int64_t>(config_.process.restartMaxDelayMs, initial << std::min(deathsInARow_ - 1, 30));
  restartAt_ = Clock::now() + std::chrono::milliseconds(delay);
  logger().error("plugin instance %s: %s; restarting in %s ms (restart %?u)", description_, what,
                 std::to_string(delay), metrics_->childProcesses().restarts.load() + 1);
}

void IsolatedInstance::disable() {
  disabled_ = true;
  queue_->close(CloseReason::Failed);
  metrics_->queueCounters()->dropped.fetch_add(inFlight_.dropAll() + queue_->queuedFrames());
  if (onDisabled_) onDisabled_(*this);
}

void IsolatedInstance::checkAcknowledgements() {
  if (!ring_.readerProgress(inFlight_.lastWritten(), ringAcked_)) {
    kill(Kill::Other, "it wrote nonsense into the frame ring's control page");
    return;
  }
  acknowledged(ringAcked_);
}

// The child acknowledged up to `ringSeq` (in the ring, or with emitted frames).
void IsolatedInstance::acknowledged(std::uint64_t ringSeq) {
  if (ringSeq <= inFlight_.acked()) return;
  if (ringSeq > inFlight_.lastWritten()) {
    kill(Kill::Other, "it acknowledged frames it was never given");
    return;
  }
  queue_->countDelivered(inFlight_.release(ringSeq));
  lastProgress_ = Clock::now();
}

// Takes frames from the queue once all taken before are in the ring, and
// writes what fits. What does not fit waits: the queue fills, and its
// on_full policy applies, as for an in-process instance that falls behind.
void IsolatedInstance::feed() {
  if (stopRequested() && pastDeadline()) return;
  bool wrote = false;
  std::deque<FrameSpan> spans;
  for (;;) {
    if (inFlight_.allWritten()) {
      if (queue_->takeAll(spans) == 0) break;
      for (const FrameSpan& span : spans) inFlight_.add(span);
      spans.clear();
    }
    if (inFlight_.acked() == inFlight_.lastWritten()) lastProgress_ = Clock::now();  // frames begin to wait now
    if (!inFlight_.writeSome()) {
      ringFull_ = true;
      break;
    }
    wrote = true;
  }
  if (wrote) ring_.publish();
}

// Once stopping and everything is in the ring (or the deadline passed), the
// child is told where the frames end; it hands them to the plugin, flushes
// and destroys it, says Ended and exits.
void IsolatedInstance::sendStopWhenDone() {
  if (stopSent_ || !ready_ || !stopRequested()) return;
  const bool allIn = queue_->closed() && queue_->queuedFrames() == 0 && inFlight_.allWritten();
  if (!allIn && !pastDeadline()) return;
  skipped_ += inFlight_.dropUnwritten();
  child_->sendStop(inFlight_.lastWritten(), deadlineNs_.load(),
                   stopping_ ? stopReason_.load() : static_cast<int>(queue_->closeReason()));
  stopSent_ = true;
}

void IsolatedInstance::checkLimits(Clock::time_point now) {
  const PluginProcessConfig& limits = config_.process;
  const std::uint64_t waiting = inFlight_.lastWritten() - inFlight_.acked();
  if (limits.watchdogMs > 0 && waiting > 0 && now - lastProgress_ > std::chrono::milliseconds(limits.watchdogMs))
    return kill(Kill::Watchdog, "no frame acknowledged for " + std::to_string(limits.watchdogMs) +
                                    " ms (watchdog_ms) while " + std::to_string(waiting) + " waited");
  if (limits.memoryLimitBytes == 0 || now < nextSample_) return;
  nextSample_ = now + kTick;
  const std::uint64_t resident = child_->residentBytes();
  if (resident > limits.memoryLimitBytes)
    kill(Kill::MemoryLimit, "resident memory " + mebibytes(resident) + " over memory_limit_bytes (" +
                                mebibytes(limits.memoryLimitBytes) + ")");
}

void IsolatedInstance::kill(Kill kind, const std::string& why) {
  if (killed_ == Kill::None) killed_ = kind;
  child_->kill(why);
}

// Frames that will never reach the plugin now: counted, and said once.
void IsolatedInstance::skipUnhanded() {
  std::deque<FrameSpan> spans;
  const std::uint64_t queued = queue_->takeAll(spans);
  skipped_ += queued + (disabled_ ? 0 : inFlight_.dropAll());
  if (skipped_ == 0) return;
  if (!disabled_)
    logger().warning("plugin %s: stop deadline reached with %?u frames not handed to the plugin", config_.name,
                     skipped_);
  metrics_->queueCounters()->dropped.fetch_add(skipped_);
  skipped_ = 0;
}

void IsolatedInstance::childReady() { ready_ = true; }

void IsolatedInstance::childRefused(const std::string& why) {
  refused_ = true;
  refusal_ = why;
  if (supervising_) logger().error("plugin %s (type %s): create failed in its new child process: %s", config_.name,
                                   library_->name(), why);
}

void IsolatedInstance::childMetrics(std::uint64_t failures,
                                    const std::vector<std::pair<std::string, std::uint64_t>>& counters,
                                    const std::vector<std::pair<std::string, double>>& gauges) {
  for (std::uint64_t i = 0; i < failures; ++i) metrics_->countFailure();
  for (const auto& [name, delta] : counters) metrics_->addCounter(name, delta);
  for (const auto& [name, value] : gauges) metrics_->setGauge(name, value);
}

void IsolatedInstance::childEmitted(std::uint64_t acknowledgedSeq, std::string_view frames) {
  if (!supervising_) {  // only the supervisor publishes on the instance's stream, after its predecessor ended
    stashedEmits_.emplace_back(acknowledgedSeq, std::string(frames));
    return;
  }
  if (acknowledgedSeq > 0) acknowledged(acknowledgedSeq);  // first: the frames are on their way
  if (!output_) return;
  FrameBatchBuilder builder;
  EmittedFrames emitted(frames);  // checked whole by the session
  std::string_view payload, key;
  while (emitted.next(payload, key)) builder.add(payload.data(), payload.size(), key);
  if (!builder.empty()) publish(builder.seal(unixNowNs()));
}

void IsolatedInstance::publish(std::unique_ptr<FrameBatch> batch) {
  if (!publishing_ || abandoned_) {
    logger().warning("plugin %s: %z emitted frame(s) dropped: %s", config_.name, batch->frameCount(),
                     std::string(publishing_ ? "the instance was abandoned (its replacement publishes its stream)"
                                             : "the instance never started"));
    return;
  }
  output_->publish(std::move(batch));  // may wait for a consumer with on_full: block
  lastProgress_ = Clock::now();  // the child could not acknowledge meanwhile: not its fault
}

std::string IsolatedInstance::childWantsStats() { return stats_ ? stats_() : "{}"; }

void IsolatedInstance::childDisabled() {
  // The child's instance logged why; like an in-process one, it is disabled.
  if (disabled_) return;
  disabled_ = true;
  queue_->close(CloseReason::Failed);
  if (onDisabled_) onDisabled_(*this);
}

void IsolatedInstance::childEnded() {}

}  // namespace streamrelay
