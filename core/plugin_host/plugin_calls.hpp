// SPDX-License-Identifier: Apache-2.0
#pragma once
// PluginCalls: the calls into one plugin instance's code — create, then
// frames (on_frames when the plugin has it, else on_frame one by one), flush,
// destroy — with plugin.h's rules: an error buffer of kErrorBytes for each
// call, failures counted per frame, a handled frame ending a run of failures,
// on_frames resumed after the frame that failed.
//
// One place for these rules, whichever way the instance runs (on a worker
// thread of the relay, or in a process of its own).
//
// Not thread safe: create() on one thread, then the rest on the instance's
// worker thread (or after it ended).

#include <atomic>
#include <cstddef>
#include <functional>
#include <string>

#include "plugin_library.hpp"

namespace streamrelay {

class PluginCalls {
 public:
  // The size of the error buffer of every call (plugin.h promises at least
  // STREAMRELAY_MIN_ERROR_SIZE).
  static constexpr std::size_t kErrorBytes = 512;

  // Told of each failure: which call ("on_frame", "on_frames", "flush"), the
  // plugin's own words (may be empty), and the failures in a row so far.
  using OnFailure = std::function<void(const char* call, const char* message, int inARow)>;

  // The callbacks' code (their library) must stay loaded while this lives.
  PluginCalls(const PluginCallbacks& callbacks, OnFailure onFailure);
  PluginCalls(const PluginCalls&) = delete;
  PluginCalls& operator=(const PluginCalls&) = delete;

  // Told, after each call into the plugin that frames were handed to (each
  // on_frame; each on_frames), how many frames that call took off the array,
  // OK or failed (the child of an isolated instance acknowledges by it). Set
  // before the first deliver(); none by default.
  using OnReturned = std::function<void(std::size_t frames)>;
  void setOnReturned(OnReturned onReturned) { onReturned_ = std::move(onReturned); }

  // create(); false with the plugin's reason (unmasked) in `error`.
  bool create(const streamrelay_host_api* api, const std::string& configYaml, std::string& error);
  bool created() const { return self_ != nullptr; }
  // Hands frames[0, count) over, in order, until `disabled` turns true;
  // returns how many the plugin handled.
  std::size_t deliver(const streamrelay_frame* frames, std::size_t count, const std::atomic<bool>& disabled);
  // The plugin's flush, if it has one: a failure is counted.
  void flush();
  // Before destroy: a failure is only returned (the run is over).
  bool finalFlush(std::string& error);
  void destroy();

 private:
  std::size_t deliverOneByOne(const streamrelay_frame* frames, std::size_t count, const std::atomic<bool>& disabled);
  void handled() { inARow_ = 0; }
  void failed(const char* call, const char* message);
  void returned(std::size_t frames) {
    if (onReturned_) onReturned_(frames);
  }

  const PluginCallbacks callbacks_;
  const OnFailure onFailure_;
  OnReturned onReturned_;
  void* self_ = nullptr;
  int inARow_ = 0;
};

}  // namespace streamrelay
