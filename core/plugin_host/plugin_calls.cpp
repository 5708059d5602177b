// SPDX-License-Identifier: Apache-2.0
#include "plugin_calls.hpp"

namespace streamrelay {

static_assert(PluginCalls::kErrorBytes >= STREAMRELAY_MIN_ERROR_SIZE, "plugin.h promises at least this much room");

PluginCalls::PluginCalls(const PluginCallbacks& callbacks, OnFailure onFailure)
    : callbacks_(callbacks), onFailure_(std::move(onFailure)) {}

bool PluginCalls::create(const streamrelay_host_api* api, const std::string& configYaml, std::string& error) {
  char message[kErrorBytes] = "";
  self_ = callbacks_.create(api, configYaml.c_str(), message, sizeof message);
  if (!self_) error = *message ? message : "create() failed without a reason";
  return self_ != nullptr;
}

void PluginCalls::failed(const char* call, const char* message) {
  ++inARow_;
  onFailure_(call, message, inARow_);
}

std::size_t PluginCalls::deliver(const streamrelay_frame* frames, std::size_t count,
                                 const std::atomic<bool>& disabled) {
  if (!callbacks_.onFrames) return deliverOneByOne(frames, count, disabled);
  char message[kErrorBytes];
  std::size_t delivered = 0;
  for (std::size_t next = 0; next < count && !disabled;) {
    std::size_t handledHere = count - next;
    message[0] = '\0';
    const int result = callbacks_.onFrames(self_, frames + next, count - next, &handledHere, message, sizeof message);
    if (result == STREAMRELAY_OK) {
      delivered += count - next;
      handled();
      returned(count - next);
      break;
    }
    if (handledHere >= count - next) {  // the call failed as a whole: nothing is handed again
      failed("on_frames", message);
      returned(count - next);
      break;
    }
    delivered += handledHere;
    if (handledHere > 0) handled();
    failed("on_frames", message);
    returned(handledHere + 1);
    next += handledHere + 1;  // on after the frame that failed
  }
  return delivered;
}

std::size_t PluginCalls::deliverOneByOne(const streamrelay_frame* frames, std::size_t count,
                                         const std::atomic<bool>& disabled) {
  char message[kErrorBytes];
  std::size_t delivered = 0;
  for (std::size_t i = 0; i < count && !disabled; ++i) {
    message[0] = '\0';
    if (callbacks_.onFrame(self_, &frames[i], message, sizeof message) == STREAMRELAY_OK) {
      handled();
      ++delivered;
    } else {
      failed("on_frame", message);
    }
    returned(1);
  }
  return delivered;
}

void PluginCalls::flush() {
  if (!callbacks_.flush) return;
  char message[kErrorBytes] = "";
  if (callbacks_.flush(self_, message, sizeof message) != STREAMRELAY_OK) failed("flush", message);
}

bool PluginCalls::finalFlush(std::string& error) {
  if (!callbacks_.flush) return true;
  char message[kErrorBytes] = "";
  if (callbacks_.flush(self_, message, sizeof message) == STREAMRELAY_OK) return true;
  error = message;
  return false;
}

void PluginCalls::destroy() {
  if (!self_) return;
  callbacks_.destroy(self_);
  self_ = nullptr;
}

}  // namespace streamrelay
