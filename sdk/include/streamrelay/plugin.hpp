// SPDX-License-Identifier: Apache-2.0
#pragma once
// C++ helper for streamrelay plugins: derive from streamrelay::Plugin, export
// the class with one macro. This header is the only place that catches
// exceptions: one thrown from the constructor fails create() with its
// message; one thrown from onFrame(), onFrames() or flush() becomes
// STREAMRELAY_ERROR with its message. Nothing crosses the C ABI but C types.
//
//   class Counter : public streamrelay::Plugin {
//    public:
//     Counter(streamrelay::Host& host, const std::string& configYaml) : frames_(host.counter("frames")) {}
//     void onFrame(const streamrelay::Frame& frame) override { frames_.add(1); }
//    private:
//     streamrelay::Counter frames_;
//   };
//   STREAMRELAY_EXPORT_PLUGIN(Counter, "counter", "counts frames")
//
// Every call added after ABI 1.0 is checked before it is made: on an older
// host it does what that host can (a counter handle adds by name, a key is
// dropped, retain keeps nothing) or throws where it cannot (emit).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "plugin.h"

namespace streamrelay {

// One frame, borrowed for the duration of the call: copy what you keep, or
// retain it (Host::retain).
struct Frame {
  std::string_view data;
  std::uint64_t seq;
  std::int64_t receivedUnixNs;
  std::string_view stream;  // "" and 0 on a 1.0 host
  std::uint64_t epoch = 0;
  const streamrelay_frame* raw = nullptr;  // the host's frame (what Host::retain takes)
  std::string_view key;  // the frame's key: "" if it has none (and on a host before ABI 1.2)
};

namespace detail {
inline Frame toFrame(const streamrelay_frame& f) {
  Frame frame{std::string_view(reinterpret_cast<const char*>(f.data), f.size), f.seq, f.received_unix_ns, {}, 0, &f,
              {}};
  if (f.struct_size >= offsetof(streamrelay_frame, epoch) + sizeof f.epoch && f.stream) {
    frame.stream = f.stream;
    frame.epoch = f.epoch;
  }
  if (f.struct_size >= offsetof(streamrelay_frame, key_size) + sizeof f.key_size && f.key)
    frame.key = std::string_view(f.key, f.key_size);
  return frame;
}
}  // namespace detail

// The frames of one onFrames() call, in order. It remembers the last frame
// read (by iterator or index): an exception thrown while handling it makes
// that frame the one that failed; the host counts it and goes on after it.
class Frames {
 public:
  class iterator {
   public:
    iterator(const Frames* frames, std::size_t at) : frames_(frames), at_(at) {}
    Frame operator*() const { return (*frames_)[at_]; }
    iterator& operator++() {
      ++at_;
      return *this;
    }
    bool operator!=(const iterator& other) const { return at_ != other.at_; }

   private:
    const Frames* frames_;
    std::size_t at_;
  };

  Frames(const streamrelay_frame* frames, std::size_t count) : frames_(frames), count_(count) {}
  std::size_t size() const { return count_; }
  Frame operator[](std::size_t i) const {
    current_ = i;
    return detail::toFrame(*STREAMRELAY_FRAME_AT(frames_, i));  // by the host's struct_size
  }
  iterator begin() const { return iterator(this, 0); }
  iterator end() const { return iterator(this, count_); }
  // The index of the last frame read.
  std::size_t current() const { return current_; }

 private:
  const streamrelay_frame* frames_;
  std::size_t count_;
  mutable std::size_t current_ = 0;
};

// A counter of this instance, looked up once (Host::counter). On a host
// before ABI 1.2 it adds by name.
class Counter {
 public:
  Counter() = default;
  void add(std::uint64_t delta = 1) const {
    if (handle_) api_->counter_add(api_->host, handle_, delta);
    else if (api_) api_->add_counter(api_->host, name_.c_str(), delta);
  }

 private:
  friend class Host;
  Counter(const streamrelay_host_api* api, streamrelay_counter* handle, std::string name)
      : api_(api), handle_(handle), name_(std::move(name)) {}
  const streamrelay_host_api* api_ = nullptr;
  streamrelay_counter* handle_ = nullptr;
  std::string name_;
};

// A gauge of this instance, looked up once (Host::gauge). On a host before
// ABI 1.2 it sets by name (before 1.1: nothing).
class Gauge {
 public:
  Gauge() = default;
  void set(double value) const {
    if (handle_) api_->gauge_set(api_->host, handle_, value);
    else if (byName_) api_->set_gauge(api_->host, name_.c_str(), value);
  }

 private:
  friend class Host;
  Gauge(const streamrelay_host_api* api, streamrelay_gauge* handle, bool byName, std::string name)
      : api_(api), handle_(handle), byName_(byName), name_(std::move(name)) {}
  const streamrelay_host_api* api_ = nullptr;
  streamrelay_gauge* handle_ = nullptr;
  bool byName_ = false;
  std::string name_;
};

// A frame's bytes kept past its call (Host::retain), until this is destroyed
// or reset. Movable, not copyable. Empty (held() false) where the host
// cannot retain: then copy what you keep.
class Retained {
 public:
  Retained() = default;
  ~Retained() { reset(); }
  Retained(Retained&& other) noexcept : api_(other.api_), handle_(std::exchange(other.handle_, nullptr)) {}
  Retained& operator=(Retained&& other) noexcept {
    if (this != &other) {
      reset();
      api_ = other.api_;
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  Retained(const Retained&) = delete;
  Retained& operator=(const Retained&) = delete;

  bool held() const { return handle_ != nullptr; }
  // Lets the bytes go (any thread).
  void reset() {
    if (handle_) api_->release(api_->host, std::exchange(handle_, nullptr));
  }

 private:
  friend class Host;
  Retained(const streamrelay_host_api* api, streamrelay_retained* handle) : api_(api), handle_(handle) {}
  const streamrelay_host_api* api_ = nullptr;
  streamrelay_retained* handle_ = nullptr;
};

// The host's services for this instance. Valid while the instance lives.
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
  // A counter or gauge handle: look it up once (in the constructor), then
  // add or set without a lookup or a lock.
  Counter counter(const char* name) const {
    streamrelay_counter* handle =
        supports(offsetof(streamrelay_host_api, counter_add)) ? api_->counter(api_->host, name) : nullptr;
    return Counter(api_, handle, name);
  }
  Gauge gauge(const char* name) const {
    streamrelay_gauge* handle =
        supports(offsetof(streamrelay_host_api, gauge_set)) ? api_->gauge(api_->host, name) : nullptr;
    return Gauge(api_, handle, supports(offsetof(streamrelay_host_api, set_gauge)), name);
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
  // Publishes a frame on this instance's own stream (see plugin.h), with its
  // key where the host takes keys (ABI 1.2; an older host drops the key).
  // Throws if the host cannot emit (a 1.0 host, or no stream for this
  // instance): a processor calls requireEmit() in its constructor, so that
  // create fails with the reason instead.
  void emit(std::string_view data, std::string_view key = {}) const {
    requireEmit();
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(data.data());
    const int result = !key.empty() && supports(offsetof(streamrelay_host_api, emit_keyed))
                           ? api_->emit_keyed(api_->host, bytes, data.size(), key.data(), key.size())
                           : api_->emit(api_->host, bytes, data.size());
    if (result != STREAMRELAY_OK)
      throw std::runtime_error(key.size() > STREAMRELAY_MAX_KEY_SIZE
                                   ? "emit failed: the key is longer than " + std::to_string(STREAMRELAY_MAX_KEY_SIZE) +
                                         " bytes"
                                   : "emit failed: this instance has no stream of its own (configure it in "
                                     "plugins.instances), or its frames emitted in this drain are over "
                                     "max_emit_bytes");
  }
  void requireEmit() const {
    if (!supports(offsetof(streamrelay_host_api, emit)))
      throw std::runtime_error("this instance cannot emit: the relay's plugin API is older than 1.1, or the instance "
                               "is not configured in plugins.instances (only those have a stream of their own)");
  }
  // Keeps `frame`'s bytes past its call, without a copy (ABI 1.2): only
  // during onFrame/onFrames, for a frame of that call. Empty on a host that
  // cannot: copy instead.
  Retained retain(const Frame& frame) const {
    if (!frame.raw || !supports(offsetof(streamrelay_host_api, retain))) return {};
    return Retained(api_, api_->retain(api_->host, frame.raw));
  }
  // Whether the relay's rule lets the plugin trust a file it reads code or
  // credentials from (ABI 1.2); `why` says why not. A host before 1.2 has no
  // such rule for plugins: true.
  bool fileTrusted(const std::string& path, std::string& why) const {
    if (!supports(offsetof(streamrelay_host_api, check_file_trust))) return true;
    char error[STREAMRELAY_MIN_ERROR_SIZE] = "";
    if (api_->check_file_trust(api_->host, path.c_str(), error, sizeof error) == STREAMRELAY_OK) return true;
    why = error;
    return false;
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
  // One frame. Override this, or onFrames.
  virtual void onFrame(const Frame&) { throw std::logic_error("the plugin implements neither onFrame nor onFrames"); }
  // A batch of frames (up to about a thousand), in order. By default, each
  // to onFrame: a frame that throws fails alone, and the rest go on.
  virtual void onFrames(const Frames& frames) {
    for (const Frame& frame : frames) onFrame(frame);
  }
  virtual void flush() {}
};

// One key of a plugin's config (ABI 1.2 config_keys), declared once: the
// relay checks, prints and lists the config by it, and the plugin reads its
// config by it (plugins/common/config_reader.hpp does for the built-in ones).
struct ConfigKey {
  std::string name;  // "batch_frames"; inside a group: "tls.ca_file"
  std::uint32_t kind = STREAMRELAY_KEY_STRING;
  std::uint32_t flags = 0;
  std::string fallback;  // the default, as YAML would write it
  bool hasFallback = false;
  double min = 0, max = 0;
  std::string choices;  // "a|b|c"
  std::string help;

  ConfigKey(std::string keyName, std::uint32_t keyKind) : name(std::move(keyName)), kind(keyKind) {}
  ConfigKey& def(std::string text) {
    fallback = std::move(text);
    hasFallback = true;
    return *this;
  }
  ConfigKey& needed() { return flag(STREAMRELAY_KEY_REQUIRED); }
  ConfigKey& secret() { return flag(STREAMRELAY_KEY_SECRET); }
  ConfigKey& url() { return flag(STREAMRELAY_KEY_URL); }
  ConfigKey& env() { return flag(STREAMRELAY_KEY_ENV); }
  ConfigKey& range(double lo, double hi) {
    min = lo;
    max = hi;
    return *this;
  }
  ConfigKey& oneOf(std::string values) {
    choices = std::move(values);
    return *this;
  }
  ConfigKey& doc(std::string text) {
    help = std::move(text);
    return *this;
  }
  bool has(std::uint32_t bit) const { return (flags & bit) != 0; }

 private:
  ConfigKey& flag(std::uint32_t bit) {
    flags |= bit;
    return *this;
  }
};

inline ConfigKey stringKey(std::string name) { return ConfigKey(std::move(name), STREAMRELAY_KEY_STRING); }
inline ConfigKey intKey(std::string name, long long fallback, double min, double max) {
  return ConfigKey(std::move(name), STREAMRELAY_KEY_INT).def(std::to_string(fallback)).range(min, max);
}
inline ConfigKey numberKey(std::string name, double min, double max) {
  return ConfigKey(std::move(name), STREAMRELAY_KEY_NUMBER).range(min, max);
}
inline ConfigKey boolKey(std::string name, bool fallback) {
  return ConfigKey(std::move(name), STREAMRELAY_KEY_BOOL).def(fallback ? "true" : "false");
}
inline ConfigKey stringsKey(std::string name) { return ConfigKey(std::move(name), STREAMRELAY_KEY_STRINGS); }
inline ConfigKey mapKey(std::string name) { return ConfigKey(std::move(name), STREAMRELAY_KEY_MAP); }
inline ConfigKey groupKey(std::string name) { return ConfigKey(std::move(name), STREAMRELAY_KEY_GROUP); }

// A plugin's config keys and the C table the descriptor points to. Keep it
// in static storage (a function-local static): the table points into it.
class ConfigKeys {
 public:
  ConfigKeys(std::initializer_list<ConfigKey> keys) : keys_(keys) {
    for (const ConfigKey& k : keys_) {
      streamrelay_config_key e{};
      e.struct_size = sizeof e;
      e.kind = k.kind;
      e.flags = k.flags;
      e.name = k.name.c_str();
      e.default_value = k.hasFallback ? k.fallback.c_str() : nullptr;
      e.min = k.min;
      e.max = k.max;
      e.choices = k.choices.empty() ? nullptr : k.choices.c_str();
      e.help = k.help.empty() ? nullptr : k.help.c_str();
      table_.push_back(e);
    }
    table_.push_back(streamrelay_config_key{sizeof(streamrelay_config_key), 0, 0, nullptr, nullptr, 0, 0, nullptr, nullptr});
  }
  ConfigKeys(const ConfigKeys&) = delete;
  ConfigKeys& operator=(const ConfigKeys&) = delete;

  const std::vector<ConfigKey>& keys() const { return keys_; }
  const ConfigKey* find(std::string_view name) const {
    for (const ConfigKey& k : keys_)
      if (k.name == name) return &k;
    return nullptr;
  }
  const streamrelay_config_key* table() const { return table_.data(); }

 private:
  const std::vector<ConfigKey> keys_;
  std::vector<streamrelay_config_key> table_;
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
  return guarded([&] { static_cast<Instance<T>*>(self)->plugin.onFrame(toFrame(*f)); }, error, size);
}

template <class T>
int onFrames(void* self, const streamrelay_frame* frames, std::size_t count, std::size_t* handled, char* error,
             std::size_t size) {
  const Frames batch(frames, count);
  const int result = guarded([&] { static_cast<Instance<T>*>(self)->plugin.onFrames(batch); }, error, size);
  if (result != STREAMRELAY_OK && handled) *handled = batch.current();  // the frame being handled failed
  return result;
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
const streamrelay_plugin* descriptor(const char* name, const char* description, std::uint32_t flags,
                                     const streamrelay_config_key* keys) {
  static const streamrelay_plugin d = {sizeof(streamrelay_plugin), STREAMRELAY_ABI_VERSION, name, description,
                                       &create<T>, &onFrame<T>, &destroy<T>, &flush<T>, flags, &onFrames<T>, keys};
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
    return ::streamrelay::detail::descriptor<CLASS>(NAME, DESCRIPTION, FLAGS, nullptr);           \
  }

// The same with the plugin's config keys: KEYS is an expression of type
// const streamrelay::ConfigKeys& in static storage (a function returning a
// function-local static), so the relay can check, print and list them.
#define STREAMRELAY_EXPORT_PLUGIN_WITH_KEYS(CLASS, NAME, DESCRIPTION, FLAGS, KEYS)                \
  STREAMRELAY_PLUGIN_EXPORT const streamrelay_plugin* streamrelay_plugin_entry(void) {            \
    try {                                                                                         \
      return ::streamrelay::detail::descriptor<CLASS>(NAME, DESCRIPTION, FLAGS, (KEYS).table());  \
    } catch (...) { /* no memory for the key table: no descriptor, the host says so */           \
      return nullptr;                                                                             \
    }                                                                                             \
  }
