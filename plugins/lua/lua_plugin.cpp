// SPDX-License-Identifier: Apache-2.0
// lua: a processor whose work is a Lua script (LuaJIT). For each frame of its
// inputs the script's on_frame(frame) returns what to emit on the stream
// named after the instance: nothing (the frame is dropped), the frame, a new
// payload, or several frames, each with a key if it likes (docs/lua.md).
//
// Every call runs under an instruction budget and a memory limit
// (lua_script.hpp): a runaway script is stopped, counted (over_budget,
// over_memory) and reported as the failure of that frame, as any plugin's
// failure is; the relay goes on, and after max_failures in a row the
// instance is disabled.
//
// The script file is held to the relay's file trust rule (it is code), and
// reloaded when it changes: looked at every half second, loaded once it has
// kept the same size and time for a quarter second; a version that does not
// load is logged once and the one before goes on.
//
// Counters: emitted, dropped, errors, over_budget, over_memory, reloads,
// reload_errors; gauge: memory_bytes (the script's state).

#include <streamrelay/plugin.hpp>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>

#include "common/config_reader.hpp"
#include "lua_script.hpp"

namespace streamrelay::plugins {

const ConfigKeys& luaConfigKeys() {
  static const ConfigKeys keys{
      stringKey("script").needed().doc("the Lua file that defines on_frame(frame); reloaded when it changes"),
      intKey("instruction_limit", 1000000, 1000, 1000000000)
          .doc("virtual machine instructions one call of the script may run"),
      intKey("memory_limit_mb", 64, 1, 4096).doc("memory the script's state may hold, garbage included"),
  };
  return keys;
}

}  // namespace streamrelay::plugins

namespace {

using Clock = std::chrono::steady_clock;
using streamrelay::plugins::LuaScript;

constexpr std::chrono::milliseconds kLookEvery(500);   // how often the script file is looked at
constexpr std::chrono::milliseconds kSettle(250);      // a new version must keep still this long
constexpr std::size_t kMaxScriptBytes = 4u << 20;
constexpr int kLogLinesPerSecond = 10;                 // lines a script may log; more are counted

// What identifies one version of a file.
struct FileVersion {
  std::uint64_t inode = 0, size = 0;
  std::int64_t mtimeNs = 0;
  bool operator==(const FileVersion& o) const { return inode == o.inode && size == o.size && mtimeNs == o.mtimeNs; }
  bool operator!=(const FileVersion& o) const { return !(*this == o); }
};

bool versionOf(const std::string& path, FileVersion& version) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  version = {static_cast<std::uint64_t>(st.st_ino), static_cast<std::uint64_t>(st.st_size),
             static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
  return true;
}

class LuaProcessor : public streamrelay::Plugin {
 public:
  LuaProcessor(streamrelay::Host& host, const std::string& configYaml)
      : host_(host),
        emitted_(host.counter("emitted")), dropped_(host.counter("dropped")), errors_(host.counter("errors")),
        overBudget_(host.counter("over_budget")), overMemory_(host.counter("over_memory")),
        reloads_(host.counter("reloads")), reloadErrors_(host.counter("reload_errors")),
        memory_(host.gauge("memory_bytes")) {
    const streamrelay::plugins::ConfigReader config(configYaml, streamrelay::plugins::luaConfigKeys());
    path_ = config.string("script");
    limits_.instructions = static_cast<std::uint64_t>(config.integer("instruction_limit"));
    limits_.memoryBytes = static_cast<std::size_t>(config.integer("memory_limit_mb")) << 20;
    host_.requireEmit();
    if (!versionOf(path_, loaded_)) throw std::runtime_error("config.script: cannot read " + path_);
    script_ = load();
    emit_ = [this](std::string_view data, std::string_view key, std::string& error) {
      try {
        host_.emit(data, key);
      } catch (const std::exception& e) {
        error = e.what();
        return false;
      }
      emitted_.add(1);
      ++emits_;
      return true;
    };
    memory_.set(static_cast<double>(script_->memoryInUse()));
    lastLook_ = Clock::now();
  }

  void onFrame(const streamrelay::Frame& frame) override {
    std::string error;
    const std::uint64_t before = emittedCount();
    switch (script_->onFrame(frame, emit_, error)) {
      case LuaScript::Outcome::Done:
        if (emittedCount() == before) dropped_.add(1);
        return;
      case LuaScript::Outcome::OverBudget: overBudget_.add(1); break;
      case LuaScript::Outcome::OverMemory: overMemory_.add(1); break;
      case LuaScript::Outcome::Failed: errors_.add(1); break;
    }
    throw std::runtime_error("script " + path_ + ": " + error);
  }

  // After each drain and while idle: the gauge, and a changed script.
  void flush() override {
    memory_.set(static_cast<double>(script_->memoryInUse()));
    const auto now = Clock::now();
    if (now - lastLook_ < kLookEvery && !settling_) return;
    lastLook_ = now;
    FileVersion version;
    if (!versionOf(path_, version) || version == loaded_ || version == refused_) {
      settling_ = false;
      return;
    }
    if (!settling_ || version != seen_) {  // new, or still changing: look again once it has kept still
      seen_ = version;
      seenSince_ = now;
      settling_ = true;
      return;
    }
    if (now - seenSince_ < kSettle) return;
    settling_ = false;
    reload(version);
  }

 private:
  std::uint64_t emittedCount() const { return emits_; }

  std::string read(FileVersion& version) const {
    std::string why;
    if (!host_.fileTrusted(path_, why)) throw std::runtime_error("refusing the script: " + why);
    std::ifstream in(path_, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read the script " + path_);
    std::ostringstream text;
    text << in.rdbuf();
    if (text.str().size() > kMaxScriptBytes) throw std::runtime_error("the script " + path_ + " is over 4 MiB");
    versionOf(path_, version);
    return text.str();
  }

  std::unique_ptr<LuaScript> load() {
    const std::string source = read(loaded_);
    LuaScript::Services services{[this](const std::string& line) { scriptLog(line); },
                                 [this](const std::string& name, std::uint64_t delta) { scriptCount(name, delta); }};
    return std::make_unique<LuaScript>(source, path_, limits_, std::move(services));
  }

  void reload(const FileVersion& version) {
    const FileVersion before = loaded_;
    try {
      script_ = load();
    } catch (const std::exception& e) {
      loaded_ = before;
      refused_ = version;
      reloadErrors_.add(1);
      host_.error("script " + path_ + " not reloaded: " + e.what() + "; the version loaded before goes on");
      return;
    }
    reloads_.add(1);
    host_.info("script " + path_ + " reloaded");
  }

  // relay.log and print: at most kLogLinesPerSecond lines a second.
  void scriptLog(const std::string& line) {
    const auto now = Clock::now();
    if (now - logSecond_ >= std::chrono::seconds(1)) {
      logSecond_ = now;
      logLines_ = 0;
    }
    if (++logLines_ > kLogLinesPerSecond) {
      ++suppressed_;
      return;
    }
    const std::string note =
        suppressed_ > 0 ? " (" + std::to_string(suppressed_) + " lines of the script suppressed before)" : "";
    suppressed_ = 0;
    host_.info("script: " + line + note);
  }

  void scriptCount(const std::string& name, std::uint64_t delta) {
    auto it = scriptCounters_.find(name);
    if (it == scriptCounters_.end()) it = scriptCounters_.emplace(name, host_.counter(name.c_str())).first;
    it->second.add(delta);
  }

  streamrelay::Host& host_;
  std::string path_;
  LuaScript::Limits limits_;
  std::unique_ptr<LuaScript> script_;
  LuaScript::Emit emit_;
  streamrelay::Counter emitted_, dropped_, errors_, overBudget_, overMemory_, reloads_, reloadErrors_;
  streamrelay::Gauge memory_;
  std::uint64_t emits_ = 0;
  std::map<std::string, streamrelay::Counter> scriptCounters_;  // relay.count's, by name
  FileVersion loaded_, refused_, seen_;
  bool settling_ = false;
  Clock::time_point lastLook_, seenSince_;
  Clock::time_point logSecond_;
  int logLines_ = 0;
  std::uint64_t suppressed_ = 0;
};

}  // namespace

STREAMRELAY_EXPORT_PLUGIN_WITH_KEYS(LuaProcessor, "lua", "runs each frame through a Lua script (filter, reshape, split)",
                                    0, streamrelay::plugins::luaConfigKeys())
