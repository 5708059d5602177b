// SPDX-License-Identifier: Apache-2.0
#include "host_api.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "file_trust.hpp"
#include "logging.hpp"
#include "secret_mask.hpp"

namespace streamrelay {

namespace {

// The largest frame a plugin may emit: a batch of frames must stay far below
// 4 GiB (its offsets are 32-bit).
constexpr std::size_t kMaxEmitBytes = std::size_t{1} << 30;

// Secret values shorter than this are not searched for in log lines: they
// would mask ordinary words.
constexpr std::size_t kShortestMaskedSecret = 4;

#define HOST_FUNCTION(field) offsetof(streamrelay_host_api, field)

void copyError(const std::string& text, char* error, std::size_t size) {
  if (error && size > 0) std::snprintf(error, size, "%s", text.c_str());
}

}  // namespace

HostApi::HostApi(HostServices& services, Offers offers, std::vector<std::string> secrets)
    : services_(services), offers_(offers), secrets_(std::move(secrets)) {
  api_.struct_size = sizeof(api_);
  api_.abi_version = STREAMRELAY_ABI_VERSION;
  api_.host = this;
  api_.log = &HostApi::log;
  api_.add_counter = &HostApi::addCounter;
  api_.stats_json = &HostApi::statsJson;
  api_.instance_name = &HostApi::instanceName;
  api_.stopping = &HostApi::stopping;
  api_.set_gauge = &HostApi::setGauge;
  api_.supports = &HostApi::supports;
  // Set even when not offered: a plugin that calls without asking supports()
  // gets STREAMRELAY_ERROR (or NULL), not a jump to address 0.
  api_.emit = &HostApi::emit;
  api_.counter = &HostApi::counter;
  api_.counter_add = &HostApi::counterAdd;
  api_.gauge = &HostApi::gauge;
  api_.gauge_set = &HostApi::gaugeSet;
  api_.retain = &HostApi::retain;
  api_.release = &HostApi::release;
  api_.emit_keyed = &HostApi::emitKeyed;
  api_.check_file_trust = &HostApi::checkFileTrust;
}

std::string HostApi::fromPlugin(const char* message) const {
  std::string text = maskUrlSecrets(message ? message : "");
  for (const std::string& secret : secrets_) {
    if (secret.size() < kShortestMaskedSecret) continue;
    for (std::size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at))
      text.replace(at, secret.size(), kSecretShown);
  }
  return oneLine(text);
}

void HostApi::log(void* host, int level, const char* message) {
  HostApi& h = self(host);
  h.services_.log(level, "plugin " + h.services_.instanceName() + ": " + h.fromPlugin(message));
}

void HostApi::addCounter(void* host, const char* name, std::uint64_t delta) {
  if (name) self(host).services_.metrics().addCounter(name, delta);
}

void HostApi::setGauge(void* host, const char* name, double value) {
  if (name) self(host).services_.metrics().setGauge(name, value);
}

std::size_t HostApi::statsJson(void* host, char* buffer, std::size_t capacity) {
  const std::string json = self(host).services_.statsJson();
  if (buffer && capacity > json.size()) std::memcpy(buffer, json.c_str(), json.size() + 1);
  return json.size();
}

const char* HostApi::instanceName(void* host) { return self(host).services_.instanceName().c_str(); }

int HostApi::stopping(void* host) { return self(host).services_.stopping() ? 1 : 0; }

// Each function on its own: it is in this table (and the plugin's struct_size
// question is about this host's table), and this instance can do it.
int HostApi::supports(void* host, std::size_t offset) {
  const HostApi& h = self(host);
  if (offset < HOST_FUNCTION(log) || offset % alignof(void (*)()) != 0 ||
      offset + sizeof(void (*)()) > h.api_.struct_size)
    return 0;
  if (offset == HOST_FUNCTION(emit) || offset == HOST_FUNCTION(emit_keyed)) return h.offers_.emit ? 1 : 0;
  if (offset == HOST_FUNCTION(retain) || offset == HOST_FUNCTION(release)) return h.offers_.retain ? 1 : 0;
  void (*function)();
  std::memcpy(&function, reinterpret_cast<const char*>(&h.api_) + offset, sizeof function);
  return function != nullptr ? 1 : 0;
}

int HostApi::emit(void* host, const std::uint8_t* data, std::size_t size) {
  return emitKeyed(host, data, size, nullptr, 0);
}

int HostApi::emitKeyed(void* host, const std::uint8_t* data, std::size_t size, const char* key, std::size_t keySize) {
  HostApi& h = self(host);
  if (!h.offers_.emit || size > kMaxEmitBytes || (!data && size > 0) || keySize > STREAMRELAY_MAX_KEY_SIZE ||
      (!key && keySize > 0))
    return STREAMRELAY_ERROR;
  const bool done = h.services_.emit(std::string_view(reinterpret_cast<const char*>(data), size),
                                     std::string_view(key, keySize));
  return done ? STREAMRELAY_OK : STREAMRELAY_ERROR;
}

// A handle is the address of the metrics' cell: it lives as long as the
// metrics, which outlive every version of the instance.
streamrelay_counter* HostApi::counter(void* host, const char* name) {
  if (!name) return nullptr;
  return reinterpret_cast<streamrelay_counter*>(&self(host).services_.metrics().counter(name));
}

void HostApi::counterAdd(void*, streamrelay_counter* counter, std::uint64_t delta) {
  if (counter) reinterpret_cast<PluginMetrics::Counter*>(counter)->fetch_add(delta, std::memory_order_relaxed);
}

streamrelay_gauge* HostApi::gauge(void* host, const char* name) {
  if (!name) return nullptr;
  return reinterpret_cast<streamrelay_gauge*>(&self(host).services_.metrics().gauge(name));
}

void HostApi::gaugeSet(void*, streamrelay_gauge* gauge, double value) {
  if (gauge) reinterpret_cast<PluginMetrics::Gauge*>(gauge)->store(value, std::memory_order_relaxed);
}

streamrelay_retained* HostApi::retain(void* host, const streamrelay_frame* frame) {
  HostApi& h = self(host);
  return h.offers_.retain && frame ? h.services_.retain(frame) : nullptr;
}

void HostApi::release(void* host, streamrelay_retained* retained) {
  HostApi& h = self(host);
  if (h.offers_.retain && retained) h.services_.release(retained);
}

int HostApi::checkFileTrust(void* host, const char* path, char* error, std::size_t errorSize) {
  if (!path || !*path) {
    copyError("no file named", error, errorSize);
    return STREAMRELAY_ERROR;
  }
  struct stat st {};
  if (::stat(path, &st) != 0) {
    copyError(std::string("cannot read ") + path + ": " + std::strerror(errno), error, errorSize);
    return STREAMRELAY_ERROR;
  }
  if (self(host).services_.trustsAnyFile()) return STREAMRELAY_OK;
  const std::string why = untrustedBecause(path, st);
  if (why.empty()) return STREAMRELAY_OK;
  copyError(why + " (plugins.allow_insecure: true overrides)", error, errorSize);
  return STREAMRELAY_ERROR;
}

}  // namespace streamrelay
