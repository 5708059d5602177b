// SPDX-License-Identifier: Apache-2.0
#include "plugin_host.hpp"

#include <Poco/Delegate.h>
#include <Poco/DirectoryIterator.h>
#include <Poco/File.h>
#include <Poco/Logger.h>
#include <Poco/Path.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "file_trust.hpp"

namespace streamrelay {

namespace {

Poco::Logger& logger() { return Poco::Logger::get("streamrelay.plugin"); }

// A file whose size or mtime changed less than this long ago may still be being written.
constexpr std::chrono::milliseconds kSettleTime(250);

// After its drain deadline (the frames still queued are skipped), how long an
// instance has for its final flush and destroy before it counts as stuck.
constexpr std::chrono::seconds kStopGrace(1);

std::int64_t mtimeNs(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

std::string sidecarOf(const std::string& soPath) { return soPath.substr(0, soPath.size() - 3) + ".yaml"; }

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

namespace {

const char* const kPrivatePrefix = "streamrelay-plugins.";

// Removes private directories "streamrelay-plugins.PID.*" of relays that no
// longer run (a crash leaves its loaded copies behind), if they are ours.
void removeStaleCopies(const std::string& tempDir) {
  try {
    for (Poco::DirectoryIterator it(tempDir), end; it != end; ++it) {
      const std::string name = it.name();
      if (name.rfind(kPrivatePrefix, 0) != 0) continue;
      const long pid = std::strtol(name.c_str() + std::strlen(kPrivatePrefix), nullptr, 10);
      if (pid <= 0) continue;
      const bool running = ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
      struct stat st {};
      if (running || ::lstat(it.path().toString().c_str(), &st) != 0 || !S_ISDIR(st.st_mode) ||
          st.st_uid != ::geteuid())
        continue;
      Poco::File(it.path()).remove(true);
      logger().information("plugins: removed %s, left by relay %ld that is gone", it.path().toString(), pid);
    }
  } catch (const Poco::Exception& e) {
    logger().warning("plugins: cannot clean stale copies in %s: %s", tempDir, e.displayText());
  }
}

// The instances whose worker did not stop by its deadline, for the rest of
// the process: never destroyed, so their plugin's code stays mapped for the
// thread that may still run it. Process-wide and never freed (a static
// destructor at exit would destroy them under that thread).
class AbandonedInstances {
 public:
  void add(std::shared_ptr<PluginInstance> instance) {
    std::lock_guard<std::mutex> lock(mutex_);
    instances_.push_back(std::move(instance));
  }
  // How log lines name those whose worker still runs.
  std::vector<std::string> stillRunning() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::string> running;
    for (const auto& instance : instances_)
      if (!instance->ended()) running.push_back(instance->description());
    return running;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<PluginInstance>> instances_;
};

AbandonedInstances& abandonedInstances() {
  static AbandonedInstances* const instances = new AbandonedInstances;
  return *instances;
}

}  // namespace

PluginHost::PluginHost(const PluginsConfig& config, std::map<std::string, Bus*> streams,
                       std::vector<std::string> sources, PluginInstance::StatsJson stats, int shutdownTimeoutMs)
    : config_(config),
      streams_(std::move(streams)),
      sources_(std::move(sources)),
      stats_(std::move(stats)),
      drainTimeout_(shutdownTimeoutMs) {
  for (const auto& stream : streams_) streamNames_.push_back(stream.first);
  requested_ = config_.instances;
  const char* tmpdir = std::getenv("TMPDIR");
  const std::string tempDir = tmpdir && *tmpdir ? tmpdir : "/tmp";
  removeStaleCopies(tempDir);
  std::string pattern = tempDir + "/" + kPrivatePrefix + std::to_string(::getpid()) + ".XXXXXX";
  if (!::mkdtemp(&pattern[0])) throw std::runtime_error("plugins: cannot create a private directory in " + tempDir);
  privateDir_ = pattern;
}

PluginHost::~PluginHost() {
  stop(std::chrono::steady_clock::now());
  ::rmdir(privateDir_.c_str());
}

void PluginHost::start() {
  if (config_.allowInsecure)
    logger().warning("plugins: allow_insecure is set: loading code that other users may have written");
  std::chrono::milliseconds firstWait = scan(ScanMoment::AtStart);
  std::set<std::string> types;
  {
    std::lock_guard<std::mutex> lock(filesMutex_);
    for (const auto& f : files_) types.insert(f.second.type);
  }
  for (const PluginInstanceConfig& instance : config_.instances)
    if (!types.count(instance.type))
      logger().warning("plugin %s: no plugin of type %s in %s yet; it starts when one is dropped in", instance.name,
                       instance.type, config_.directory);
  thread_ = std::thread([this, firstWait] { run(firstWait); });
}

namespace {
// Whether plugin `type` has the same instances in both lists, compared by
// value as a config reload compares settings (secrets by digest).
bool sameInstances(const std::vector<PluginInstanceConfig>& a, const std::vector<PluginInstanceConfig>& b,
                   const std::string& type) {
  std::vector<const PluginInstanceConfig*> before, after;
  for (const PluginInstanceConfig& i : a)
    if (i.type == type) before.push_back(&i);
  for (const PluginInstanceConfig& i : b)
    if (i.type == type) after.push_back(&i);
  if (before.size() != after.size()) return false;
  for (std::size_t i = 0; i < before.size(); ++i)
    if (!sameSettings(before[i]->settings, after[i]->settings)) return false;
  return true;
}
}  // namespace

std::vector<std::string> PluginHost::reconfigure(std::vector<PluginInstanceConfig> instances,
                                                 std::map<std::string, Bus*> streams) {
  std::vector<std::string> changed;
  Reconfiguration r;
  {
    std::lock_guard<std::mutex> lock(pendingMutex_);
    // Compared with what was last asked for (the host thread may not have applied it yet).
    const std::vector<PluginInstanceConfig>& before = pending_.empty() ? requested_ : pending_.back().instances;
    std::set<std::string> types;
    for (const auto& i : before) types.insert(i.type);
    for (const auto& i : instances) types.insert(i.type);
    for (const std::string& type : types)
      if (!sameInstances(before, instances, type)) r.types.insert(type);
    auto has = [](const std::vector<PluginInstanceConfig>& list, const PluginInstanceConfig& i) {
      return std::any_of(list.begin(), list.end(), [&](const PluginInstanceConfig& j) { return j.name == i.name; });
    };
    for (const auto& i : instances)
      if (r.types.count(i.type) || !has(before, i)) changed.push_back(i.name);
    for (const auto& i : before)
      if (!has(instances, i)) changed.push_back(i.name);
    if (r.types.empty()) return {};
    r.instances = std::move(instances);
    r.streams = std::move(streams);
    pending_.push_back(std::move(r));
  }
  requestRescan();
  return changed;
}

// Host thread: the reconfigurations asked for since the last scan.
void PluginHost::applyReconfigurations() {
  owner_.assertOwned();
  std::vector<Reconfiguration> todo;
  {
    std::lock_guard<std::mutex> lock(pendingMutex_);
    todo.swap(pending_);
    if (!todo.empty()) requested_ = todo.back().instances;
  }
  for (Reconfiguration& r : todo) {
    config_.instances = std::move(r.instances);
    {
      std::lock_guard<std::mutex> lock(streamsMutex_);
      streams_ = std::move(r.streams);
      streamNames_.clear();
      for (const auto& stream : streams_) streamNames_.push_back(stream.first);
    }
    std::lock_guard<std::mutex> lock(filesMutex_);
    for (const auto& f : files_)
      if (r.types.count(f.second.type)) reloadNow_.insert(f.first);
  }
}

void PluginHost::requestRescan() {
  std::lock_guard<std::mutex> lock(wakeMutex_);
  rescanRequested_ = true;
  wake_.notify_all();
}

void PluginHost::run(std::chrono::milliseconds firstWait) {
  owner_.claim();  // start() scanned on its caller's thread; that thread goes on elsewhere
  for (std::chrono::milliseconds wait = firstWait;;) {
    {
      std::unique_lock<std::mutex> lock(wakeMutex_);
      wake_.wait_for(lock, wait, [&] { return stopping_ || rescanRequested_; });
      if (stopping_) return;
      rescanRequested_ = false;
    }
    try {
      wait = scan(ScanMoment::WhileRunning);
    } catch (const std::exception& e) {  // e.g. the directory vanished mid-scan: try again later
      logger().warning("plugins: scanning %s failed: %s", config_.directory, std::string(e.what()));
      wait = std::chrono::milliseconds(config_.rescanMs);
    }
  }
}

std::vector<std::string> PluginHost::stop(std::chrono::steady_clock::time_point deadline) {
  {
    std::lock_guard<std::mutex> lock(wakeMutex_);
    stopping_ = true;
    wake_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  owner_.claim();  // the host thread has ended (or never started): its state is this thread's now
  watcher_.reset();
  std::vector<std::shared_ptr<PluginInstance>> all;
  {
    std::lock_guard<std::mutex> lock(filesMutex_);
    for (auto& f : files_)
      for (auto& instance : f.second.instances) all.push_back(instance);
  }
  stopInstances(all, CloseReason::Shutdown, deadline);
  {
    std::lock_guard<std::mutex> lock(filesMutex_);
    files_.clear();  // the last references: libraries unload here (but an abandoned instance's)
  }
  return abandonedInstances().stillRunning();
}

void PluginHost::closeQueues() {
  for (auto& instance : instances()) instance->beginStop(CloseReason::Shutdown, std::chrono::steady_clock::now());
}

std::vector<std::shared_ptr<PluginInstance>> PluginHost::instances() const {
  std::lock_guard<std::mutex> lock(filesMutex_);
  std::vector<std::shared_ptr<PluginInstance>> all;
  for (const auto& f : files_) all.insert(all.end(), f.second.instances.begin(), f.second.instances.end());
  return all;
}

bool PluginHost::directoryIsSafe() {
  struct stat st {};
  std::string problem;
  if (::stat(config_.directory.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    problem = "plugins directory " + config_.directory + " does not exist (yet)";
  else if (!config_.allowInsecure && !(problem = untrustedBecause(config_.directory, st)).empty())
    problem = "refusing to load plugins: " + problem + " (plugins.allow_insecure: true overrides)";
  if (problem != lastDirectoryProblem_ && !problem.empty()) logger().warning(problem);
  lastDirectoryProblem_ = problem;
  return problem.empty();
}

void PluginHost::onDirectoryEvent(const void*, const Poco::DirectoryWatcher::DirectoryEvent&) { requestRescan(); }

void PluginHost::watchDirectory() {
  if (watcher_) return;
  try {
    watcher_ = std::make_unique<Poco::DirectoryWatcher>(config_.directory);
    for (auto* event : {&watcher_->itemAdded, &watcher_->itemRemoved, &watcher_->itemModified,
                        &watcher_->itemMovedFrom, &watcher_->itemMovedTo})
      *event += Poco::delegate(this, &PluginHost::onDirectoryEvent);
  } catch (const Poco::Exception& e) {
    logger().warning("plugins: cannot watch %s (%s); rescanning every %d ms", config_.directory, e.displayText(),
                     config_.rescanMs);
  }
}

// One pass over the directory: load new and changed files, unload removed ones.
// Host thread (or start(), before the thread exists).
// Returns how soon the next scan should be.
std::chrono::milliseconds PluginHost::scan(ScanMoment moment) {
  owner_.assertOwned();
  applyReconfigurations();
  std::chrono::milliseconds nextScan(config_.rescanMs);
  std::set<std::string> present;
  if (directoryIsSafe()) {
    watchDirectory();
    bool settling = false;
    for (Poco::DirectoryIterator it(config_.directory), end; it != end; ++it) {
      const std::string path = it.path().toString();
      struct stat st {};
      if (path.size() < 4 || path.compare(path.size() - 3, 3, ".so") != 0 || ::stat(path.c_str(), &st) != 0 ||
          !S_ISREG(st.st_mode))
        continue;
      present.insert(path);
      Signature signature{st.st_ino, static_cast<std::uint64_t>(st.st_size), mtimeNs(st), 0};
      struct stat side {};
      if (::stat(sidecarOf(path).c_str(), &side) == 0) signature.sidecarMtimeNs = mtimeNs(side);
      auto loaded = files_.find(path);
      if (reloadNow_.erase(path)) {  // its instances changed (a config reload): the file did not
        load(path, signature);
        continue;
      }
      if (loaded != files_.end() && loaded->second.signature == signature) continue;
      auto failed = failed_.find(path);
      if (failed != failed_.end() && failed->second == signature) continue;
      // At start, load at once: nothing is being copied in yet.
      if (moment == ScanMoment::WhileRunning && !settled(path, signature)) {
        settling = true;  // maybe still being written: look again shortly
        continue;
      }
      settling_.erase(path);
      load(path, signature);
    }
    if (settling) nextScan = kSettleTime;
  }
  std::vector<std::string> gone;
  for (const auto& f : files_)
    if (!present.count(f.first)) gone.push_back(f.first);
  for (const std::string& path : gone) unload(path, CloseReason::Removed);
  for (auto it = failed_.begin(); it != failed_.end();) it = present.count(it->first) ? std::next(it) : failed_.erase(it);
  {
    std::lock_guard<std::mutex> lock(filesMutex_);
    for (auto it = loadFailures_.begin(); it != loadFailures_.end();)
      it = present.count(it->first) ? std::next(it) : loadFailures_.erase(it);
  }
  for (auto it = settling_.begin(); it != settling_.end();)
    it = present.count(it->first) ? std::next(it) : settling_.erase(it);
  return nextScan;
}

// True once `path` has kept this exact signature (inode, size, mtimes) for the
// settle time: a file still being written, however slowly, keeps changing.
bool PluginHost::settled(const std::string& path, const Signature& signature) {
  const auto now = std::chrono::steady_clock::now();
  auto it = settling_.find(path);
  if (it == settling_.end() || !(it->second.signature == signature)) {
    settling_[path] = {signature, now};
    return false;
  }
  return now - it->second.since >= kSettleTime;
}

std::vector<PluginInstanceConfig> PluginHost::instanceConfigs(const std::string& type, const std::string& path) {
  std::vector<PluginInstanceConfig> configs;
  for (const PluginInstanceConfig& c : config_.instances)
    if (c.type == type) configs.push_back(c);  // inputs resolved with the config
  if (!configs.empty()) return configs;
  std::string sidecar = sidecarOf(path);
  if (Poco::File(sidecar).exists()) {
    configs = parsePluginSidecar(readFile(sidecar), sidecar, type);
  } else {
    configs.push_back(implicitPluginInstance(type));
  }
  return configs;
}

// Resolves the inputs of an instance of `library` (a sidecar's as written,
// the main config's that were left for now); returns "" or what is wrong.
std::string PluginHost::resolveInstanceInputs(const PluginLibrary& library, PluginInstanceConfig& c) const {
  if (library.readsNoFrames()) {
    if (c.settings.has("inputs") && c.settings.given("inputs"))
      logger().information("plugin %s: inputs ignored: plugin %s reads no frames", c.name, library.name());
    c.inputs.clear();
    return "";
  }
  std::lock_guard<std::mutex> lock(streamsMutex_);
  return resolveInputs(c.inputs, sources_, streamNames_);
}

std::map<std::string, std::string> PluginHost::loadFailures() const {
  std::lock_guard<std::mutex> lock(filesMutex_);
  return loadFailures_;
}

// Logs why this version of `path` is not loaded, shows it in the stats, and
// remembers the version so that it is tried again only once it changes.
void PluginHost::refuse(const std::string& path, const Signature& signature, const std::string& why) {
  logger().warning("plugin file %s skipped: %s", path, why);
  failed_[path] = signature;
  std::lock_guard<std::mutex> lock(filesMutex_);
  loadFailures_[path] = why;
}

void PluginHost::load(const std::string& path, const Signature& signature) {
  owner_.assertOwned();
  // The sidecar is held to the same rules as the code: it chooses where the
  // plugin writes and what it serves.
  for (const std::string& file : {path, sidecarOf(path)}) {
    struct stat st {};
    std::string unsafe;
    if (::stat(file.c_str(), &st) == 0 && !config_.allowInsecure && !(unsafe = untrustedBecause(file, st)).empty())
      return refuse(path, signature, "refusing to load: " + unsafe + " (plugins.allow_insecure: true overrides)");
  }
  std::shared_ptr<PluginLibrary> library;
  std::vector<PluginInstanceConfig> configs;
  try {
    library = PluginLibrary::load(path, privateDir_);
    configs = instanceConfigs(library->name(), path);
  } catch (const std::exception& e) {
    return refuse(path, signature, e.what());
  }
  for (const auto& f : files_)
    if (f.first != path && f.second.type == library->name())
      return refuse(path, signature, "plugin type " + library->name() + " is already loaded from " + f.first);

  const bool reloading = files_.count(path) > 0;
  std::string refusals;
  LoadedFile next{signature, library->name(), createInstances(library, configs, refusals)};
  if (reloading && !refusals.empty()) {
    // All or nothing: the instances already created are destroyed unstarted
    // (next goes out of scope) and the old version keeps every instance.
    return refuse(path, signature, "the replacement was not loaded (" + refusals + "); the old version keeps running");
  }
  const std::size_t count = next.instances.size();
  const std::vector<std::shared_ptr<PluginInstance>> started = next.instances;
  std::vector<std::shared_ptr<PluginInstance>> old = swapIn(path, std::move(next));
  failed_.erase(path);
  {
    std::lock_guard<std::mutex> lock(filesMutex_);
    if (refusals.empty()) loadFailures_.erase(path);
    else loadFailures_[path] = refusals;  // a first load keeps the instances that started
  }
  logger().information("plugin %s %s from %s: %z instance(s)", library->name(),
                       std::string(reloading ? "reloaded" : "loaded"), path, count);
  // The new version starts once the old one has handled what it had queued:
  // an instance's frames are handled in order across the replace (what arrives
  // meanwhile waits in the new queue, under its limits).
  stopInstances(old, CloseReason::Removed, std::chrono::steady_clock::now() + drainTimeout_);
  for (const auto& instance : started) instance->start();
}

std::vector<std::shared_ptr<PluginInstance>> PluginHost::createInstances(
    const std::shared_ptr<PluginLibrary>& library, const std::vector<PluginInstanceConfig>& configs,
    std::string& refusals) {
  std::vector<std::shared_ptr<PluginInstance>> instances;
  for (PluginInstanceConfig c : configs) {
    const std::string inputsProblem = resolveInstanceInputs(*library, c);
    std::shared_ptr<PluginMetrics>& metrics = metrics_[c.name];
    if (!metrics) metrics = std::make_shared<PluginMetrics>();
    Bus* outputBus = nullptr;  // the stream it emits on (configured instances)
    {
      std::lock_guard<std::mutex> lock(streamsMutex_);
      auto output = streams_.find(c.name);
      if (output != streams_.end()) outputBus = output->second;
    }
    auto instance = std::make_shared<PluginInstance>(library, c, metrics,
                                                     outputBus, stats_,
                                                     [this](PluginInstance& i) { onDisabled(i); });
    // Created first: a dropped-in plugin that cannot start without a config
    // says so, whatever its inputs would have been.
    std::string error;
    if (!instance->create(error)) {
      if (c.implicit) {  // e.g. a processor or a sink, which need a config: not a failure of the file
        logger().information("plugin %s: not started: it needs a config of its own (an instance in plugins.instances "
                             "or in %s.yaml beside the file): %s",
                             c.name, library->name(), error);
        continue;
      }
      logger().error("plugin %s (type %s): create failed: %s", c.name, library->name(), error);
      refusals += (refusals.empty() ? "" : "; ") + c.name + ": create failed: " + error;
      continue;
    }
    if (inputsProblem.empty()) {
      instances.push_back(std::move(instance));
      continue;
    }
    if (c.implicit) {
      logger().information("plugin %s: not started: it reads frames and there are several sources: configure an "
                           "instance with inputs (plugins.instances or %s.yaml beside the file)",
                           c.name, library->name());
      continue;
    }
    logger().error("plugin %s (type %s): inputs: %s", c.name, library->name(), inputsProblem);
    refusals += (refusals.empty() ? "" : "; ") + c.name + ": inputs: " + inputsProblem;
  }
  return instances;
}

// Puts `next` on the bus in place of what `path` had; returns the instances it
// replaced. An old instance with a new one of the same name is swapped in one
// step, so the pair sees every frame exactly once; others just come and go.
std::vector<std::shared_ptr<PluginInstance>> PluginHost::swapIn(const std::string& path, LoadedFile next) {
  owner_.assertOwned();
  std::vector<std::shared_ptr<PluginInstance>> old;
  auto previous = files_.find(path);
  if (previous != files_.end()) old = previous->second.instances;
  for (auto& instance : next.instances) {
    auto same = std::find_if(old.begin(), old.end(), [&](const auto& o) { return o->name() == instance->name(); });
    // Per stream, the swap is one step: each of its batches goes to exactly
    // one of old and new.
    for (Bus* bus : inputsOf(*instance)) {
      if (same != old.end() && !(*same)->disabled()) bus->replace((*same)->queue().get(), instance->queue());
      else bus->subscribe(instance->queue());
    }
  }
  for (auto& o : old) unsubscribe(*o);
  std::lock_guard<std::mutex> lock(filesMutex_);
  files_[path] = std::move(next);
  return old;
}

void PluginHost::unload(const std::string& path, CloseReason reason) {
  owner_.assertOwned();
  std::vector<std::shared_ptr<PluginInstance>> instances;
  std::string type;
  {
    std::lock_guard<std::mutex> lock(filesMutex_);
    auto it = files_.find(path);
    if (it == files_.end()) return;
    instances = std::move(it->second.instances);
    type = it->second.type;
    files_.erase(it);
  }
  for (auto& instance : instances) unsubscribe(*instance);
  stopInstances(instances, reason, std::chrono::steady_clock::now() + drainTimeout_);
  logger().information("plugin %s unloaded: %s is gone", type, path);
}

// Drains (until the deadline) and destroys instances; their library unloads
// with the last reference. A worker still running kStopGrace after the
// deadline (a plugin stuck in a callback) is abandoned, never waited for: its
// queue is closed, it is unsubscribed, and the instance with its library is
// kept for the rest of the process (code a stuck thread may still run is
// never unmapped).
void PluginHost::stopInstances(std::vector<std::shared_ptr<PluginInstance>>& instances, CloseReason reason,
                               std::chrono::steady_clock::time_point deadline) {
  owner_.assertOwned();
  for (auto& instance : instances) instance->beginStop(reason, deadline);
  for (auto& instance : instances) {
    if (instance->join(deadline + kStopGrace)) continue;
    logger().error("plugin instance %s did not stop within shutdown_timeout_ms (%s ms, and 1 s for its final flush; "
                   "stuck in a callback?): abandoned with its queue closed; its library stays loaded",
                   instance->description(), std::to_string(drainTimeout_.count()));
    unsubscribe(*instance);
    instance->abandon();
    abandonedInstances().add(std::move(instance));
  }
  instances.clear();
}

void PluginHost::onDisabled(PluginInstance& instance) { unsubscribe(instance); }

std::vector<Bus*> PluginHost::inputsOf(const PluginInstance& instance) const {
  std::vector<Bus*> buses;
  std::lock_guard<std::mutex> lock(streamsMutex_);
  for (const std::string& name : instance.config().inputs) buses.push_back(streams_.at(name));
  return buses;
}

// From every stream (a bus that does not hold the queue ignores it).
void PluginHost::unsubscribe(const PluginInstance& instance) {
  std::lock_guard<std::mutex> lock(streamsMutex_);
  for (const auto& stream : streams_) stream.second->unsubscribe(instance.queue().get());
}

}  // namespace streamrelay
