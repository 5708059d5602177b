// SPDX-License-Identifier: Apache-2.0
#pragma once
// C++ helper for streamrelay plugins: derive from streamrelay::Plugin, export
// the class with one macro. This header is the only place that catches
// exceptions: one thrown from the constructor fails create() with its
// message; one thrown from onFrame() or flush() becomes STREAMRELAY_ERROR with
// its message. Nothing crosses the C ABI but C types.
//
//   class Counter : public streamrelay::Plugin {
//    public:
//     Counter(streamrelay::Host& host, const std::string& configYaml) : host_(host) {}
//     void onFrame(const streamrelay::Frame& frame) override { host_.addCounter("frames", 1); }
//    private:
//     streamrelay::Host& host_;
//   };
//   STREAMRELAY_EXPORT_PLUGIN(Counter, "counter", "counts frames")

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>

#include "plugin.h"

namespace streamrelay {

// One frame, borrowed for the duration of onFrame(): copy what you keep.
struct Frame {
  std::string_view data;
  std::uint64_t seq;
  std::int64_t receivedUnixNs;
  std::string_view stream;  // "" and 0 on a 1.0 host
  std::uint64_t epoch = 0;
};

// The host's services for this instance. Valid while the instance lives.
// Calls that a 1.0 host lacks are checked before every call: on such a host
// setGauge() does nothing and supports() says so.
class Host {
 public:
  explicit Host(const streamrelay_host_api* api) : api_(api) {}
  void log(int level, const std::string& message) const { api_->log(api_->host, level, message.c_str()); }
  void info(const std::string& message) const { log(STREAMRELAY_LOG_INFO, message); }
  void warning(const std::string& message) const { log(STREAMRELAY_LOG_WARNING, message); }
  void error(const std::string& message) const { log(STREAMRELAY_LOG_ERROR, message); }
  void addCounter(const char* name, std::uint64_t delta) const { api_->add_counter(api_->host, name, delta); }
  void setGauge(const char* name, double value) const {
    if (supports(offsetof(streamrelay_host_api, set_gauge))) api_->set_gauge(api_->host, name, value);
  }
  // The relay's stats as JSON. Asks again while the document grows between
  // the call that sizes the buffer and the call that fills it.
  std::string statsJson() const {
    std::string out(8192, '\0');
    for (int attempt = 0; attempt < 8; ++attempt) {
      std::size_t needed = api_->stats_json(api_->host, &out[0], out.size());
      if (needed < out.size()) {
        out.resize(needed);
        return out;
      }
      out.assign(2 * needed + 1, '\0');  // room for the growth until the next call
    }
    throw std::runtime_error("the relay's stats kept growing faster than they could be copied");
  }
  // Publishes a frame on this instance's own stream (see plugin.h). Throws
  // if the host cannot (a 1.0 host, or no stream for this instance): a
  // processor calls requireEmit() in its constructor, so that create fails
  // with the reason instead.
  void emit(std::string_view data) const {
    requireEmit();
    if (api_->emit(api_->host, reinterpret_cast<const std::uint8_t*>(data.data()), data.size()) != STREAMRELAY_OK)
      throw std::runtime_error("emit failed: this instance has no stream of its own (configure it in plugins.instances)");
  }
  void requireEmit() const {
    if (!supports(offsetof(streamrelay_host_api, emit)))
      throw std::runtime_error("this instance cannot emit: the relay's plugin API is older than 1.1, or the instance "
                               "is not configured in plugins.instances (only those have a stream of their own)");
  }
  std::string instanceName() const { return api_->instance_name(api_->host); }
  bool stopping() const { return api_->stopping(api_->host) != 0; }
  // True if the host implements the host API function at `offset`.
  bool supports(std::size_t offset) const {
    constexpr std::size_t kSupportsEnd = offsetof(streamrelay_host_api, supports) + sizeof(api_->supports);
    if (api_->struct_size < kSupportsEnd || !api_->supports) return false;  // a 1.0 host
    return api_->supports(api_->host, offset) != 0;
  }

 private:
  const streamrelay_host_api* api_;
};

class Plugin {
 public:
  virtual ~Plugin() = default;
  virtual void onFrame(const Frame& frame) = 0;
  virtual void flush() {}
};

namespace detail {

inline void copyError(const char* message, char* error, std::size_t size) {
  if (size > 0) std::snprintf(error, size, "%s", message);
}

template <class T>
struct Instance {
  Host host;
  T plugin;
  Instance(const streamrelay_host_api* api, const std::string& config) : host(api), plugin(host, config) {}
};

// Runs `body`; an exception becomes STREAMRELAY_ERROR with its message.
template <class Body>
int guarded(Body&& body, char* error, std::size_t size) {
  try {
    body();
    return STREAMRELAY_OK;
  } catch (const std::exception& e) {
    copyError(e.what(), error, size);
  } catch (...) {
    copyError("unknown exception", error, size);
  }
  return STREAMRELAY_ERROR;
}

template <class T>
void* create(const streamrelay_host_api* api, const char* config, char* error, std::size_t size) {
  Instance<T>* instance = nullptr;
  guarded([&] { instance = new Instance<T>(api, config ? config : "{}"); }, error, size);
  return instance;
}

template <class T>
int onFrame(void* self, const streamrelay_frame* f, char* error, std::size_t size) {
  return guarded([&] {
    Frame frame{std::string_view(reinterpret_cast<const char*>(f->data), f->size), f->seq, f->received_unix_ns, {}, 0};
    if (f->struct_size >= offsetof(streamrelay_frame, epoch) + sizeof f->epoch && f->stream) {
      frame.stream = f->stream;
      frame.epoch = f->epoch;
    }
    static_cast<Instance<T>*>(self)->plugin.onFrame(frame);
  }, error, size);
}

template <class T>
int flush(void* self, char* error, std::size_t size) {
  return guarded([&] { static_cast<Instance<T>*>(self)->plugin.flush(); }, error, size);
}

template <class T>
void destroy(void* self) {
  char ignored[1];
  // A destructor that throws has nowhere to report to; the instance is gone.
  guarded([&] { delete static_cast<Instance<T>*>(self); }, ignored, sizeof ignored);
}

template <class T>
const streamrelay_plugin* descriptor(const char* name, const char* description, std::uint32_t flags) {
  static const streamrelay_plugin d = {sizeof(streamrelay_plugin), STREAMRELAY_ABI_VERSION, name, description,
                                       &create<T>, &onFrame<T>, &destroy<T>, &flush<T>, flags};
  return &d;
}

}  // namespace detail
}  // namespace streamrelay

// Exports class CLASS (constructible from (streamrelay::Host&, const std::string&))
// as plugin type NAME.
#define STREAMRELAY_EXPORT_PLUGIN(CLASS, NAME, DESCRIPTION) STREAMRELAY_EXPORT_PLUGIN_FLAGS(CLASS, NAME, DESCRIPTION, 0)

// The same with descriptor flags (plugin.h), e.g. STREAMRELAY_PLUGIN_NO_INPUTS
// for a plugin that reads no frames.
#define STREAMRELAY_EXPORT_PLUGIN_FLAGS(CLASS, NAME, DESCRIPTION, FLAGS)                          \
  STREAMRELAY_PLUGIN_EXPORT const streamrelay_plugin* streamrelay_plugin_entry(void) {            \
    return ::streamrelay::detail::descriptor<CLASS>(NAME, DESCRIPTION, FLAGS);                    \
  }
