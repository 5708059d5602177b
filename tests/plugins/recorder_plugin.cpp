// SPDX-License-Identifier: Apache-2.0
// recorder: a test plugin that appends "BUILD SEQ PAYLOAD" per frame to a file,
// so integration tests can see exactly which frames an instance handled and
// which build of the plugin handled them (RECORDER_BUILD: 1 or 2).
// Config: {path: FILE, delay_ms: N (a slow consumer), fail: true (every frame
// throws), refuse_build: N (create fails in build N: a replacement that
// refuses), greeting: TEXT (logged at create), emit: true (a processor: emits
// "vBUILD PAYLOAD" for every frame on its own stream), emit_on_create: TEXT
// (emits "TEXT by build BUILD" from create), hold_until: FILE (each frame
// waits in on_frame until FILE exists, after a line "holding frame SEQ": a
// callback stuck for as long as the test wants), emit_key: PREFIX (with
// emit: each frame emitted with the key PREFIX + its payload), record_key:
// true (each line is "BUILD SEQ KEY PAYLOAD", KEY "(none)" for a frame
// without one)}. Counts "recorded" and sets the gauge "last_seq".

#include <streamrelay/plugin.hpp>
#include <yaml-cpp/yaml.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <thread>

namespace {

class Recorder : public streamrelay::Plugin {
 public:
  Recorder(streamrelay::Host& host, const std::string& configYaml) : host_(host) {
    YAML::Node config = YAML::Load(configYaml);
    for (const auto& entry : config) {
      std::string key = entry.first.as<std::string>();
      if (key != "path" && key != "delay_ms" && key != "fail" && key != "refuse_build" && key != "greeting" &&
          key != "emit" && key != "emit_on_create" && key != "hold_until" && key != "emit_key" &&
          key != "record_key")
        throw std::invalid_argument("unknown key '" + key + "'");
    }
    if (config["refuse_build"] && config["refuse_build"].as<int>() == RECORDER_BUILD)
      throw std::invalid_argument("build " + std::to_string(RECORDER_BUILD) + " refuses this config");
    if (config["greeting"]) host_.info(config["greeting"].as<std::string>());
    emit_ = config["emit"] && config["emit"].as<bool>();
    if (emit_) host_.requireEmit();
    if (!config["path"]) throw std::invalid_argument("path is required");
    delayMs_ = config["delay_ms"] ? config["delay_ms"].as<int>() : 0;
    if (config["hold_until"]) holdUntil_ = config["hold_until"].as<std::string>();
    fail_ = config["fail"] && config["fail"].as<bool>();
    if (config["emit_key"]) emitKey_ = config["emit_key"].as<std::string>();
    recordKey_ = config["record_key"] && config["record_key"].as<bool>();
    file_ = std::fopen(config["path"].as<std::string>().c_str(), "a");
    if (!file_) throw std::runtime_error("cannot open " + config["path"].as<std::string>());
    if (config["emit_on_create"])
      host_.emit(config["emit_on_create"].as<std::string>() + " by build " + std::to_string(RECORDER_BUILD));
    host_.info("recorder build " + std::to_string(RECORDER_BUILD) + " ready");
  }
  ~Recorder() override { std::fclose(file_); }

  void onFrame(const streamrelay::Frame& frame) override {
    if (fail_) throw std::runtime_error("told to fail on frame " + std::to_string(frame.seq));
    // Simulates a consumer slower than the feed; not synchronisation.
    if (delayMs_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delayMs_));
    if (!holdUntil_.empty() && ::access(holdUntil_.c_str(), F_OK) != 0) {
      host_.info("holding frame " + std::to_string(frame.seq));
      // Polls for the file the test creates, under a deadline: a test that
      // never creates it fails on this frame instead of hanging the relay.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (::access(holdUntil_.c_str(), F_OK) != 0) {
        if (std::chrono::steady_clock::now() >= deadline)
          throw std::runtime_error("hold_until: " + holdUntil_ + " did not appear within 60 s");
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    std::fprintf(file_, "%d %llu ", RECORDER_BUILD, static_cast<unsigned long long>(frame.seq));
    if (recordKey_) {
      const std::string_view key = frame.key.empty() ? std::string_view("(none)") : frame.key;
      std::fprintf(file_, "%.*s ", static_cast<int>(key.size()), key.data());
    }
    std::fprintf(file_, "%.*s\n", static_cast<int>(frame.data.size()), frame.data.data());
    host_.addCounter("recorded", 1);
    if (emit_) {
      const std::string key = emitKey_.empty() ? "" : emitKey_ + std::string(frame.data);
      host_.emit("v" + std::to_string(RECORDER_BUILD) + " " + std::string(frame.data), key);
    }
    host_.setGauge("last_seq", static_cast<double>(frame.seq));
  }

  void flush() override { std::fflush(file_); }

 private:
  streamrelay::Host& host_;
  int delayMs_ = 0;
  std::string holdUntil_;
  bool fail_ = false;
  bool emit_ = false;
  std::string emitKey_;
  bool recordKey_ = false;
  std::FILE* file_ = nullptr;
};

}  // namespace

STREAMRELAY_EXPORT_PLUGIN(Recorder, "recorder", "writes every frame to a file (tests)")
