// SPDX-License-Identifier: Apache-2.0
#pragma once
// PluginLibrary: one loaded plugin .so and its validated descriptor.
//
// It loads a private copy of the file (POCO's SharedLibrary and dlopen cache
// by path, so a replaced file at the same path would give the old code back),
// checks the ABI, and unloads when the last instance using it is gone (every
// instance holds a shared_ptr to its library).
//
// Thread safe once constructed (immutable).
//
// What an older descriptor lacks reads as absent: a field is read only if
// the descriptor's struct_size covers it.

#include <Poco/SharedLibrary.h>

#include <memory>
#include <string>

#include "plugin_config_keys.hpp"
#include "streamrelay/plugin.h"
#include "streamrelay/source_plugin.h"

namespace streamrelay {

// A plugin's callbacks, as its descriptor gives them: create, on_frame and
// destroy always; the optional ones null where the plugin has none or its
// descriptor predates them.
struct PluginCallbacks {
  decltype(streamrelay_plugin::create) create = nullptr;
  decltype(streamrelay_plugin::on_frame) onFrame = nullptr;
  decltype(streamrelay_plugin::destroy) destroy = nullptr;
  decltype(streamrelay_plugin::flush) flush = nullptr;
  decltype(streamrelay_plugin::on_frames) onFrames = nullptr;
};

class PluginLibrary {
 public:
  // Loads `path` through a copy in `privateDir`; throws std::runtime_error with
  // the reason (not a shared library, no entry symbol, ABI mismatch, ...).
  static std::shared_ptr<PluginLibrary> load(const std::string& path, const std::string& privateDir);
  // The child process of an isolated instance: loads the code that `codeFd`
  // (another PluginLibrary's codeFd(), inherited) reads, as the file `path`.
  static std::shared_ptr<PluginLibrary> loadInherited(int codeFd, const std::string& path);
  ~PluginLibrary();
  PluginLibrary(const PluginLibrary&) = delete;
  PluginLibrary& operator=(const PluginLibrary&) = delete;

  const std::string& path() const { return path_; }
  const std::string& name() const { return name_; }
  const streamrelay_plugin& descriptor() const { return *descriptor_; }
  const PluginCallbacks& callbacks() const { return callbacks_; }
  // The keys its config may hold (ABI 1.2 config_keys), or null: it declares none.
  const std::shared_ptr<const PluginConfigKeys>& configKeys() const { return configKeys_; }
  // STREAMRELAY_PLUGIN_NO_INPUTS: its instances subscribe to nothing.
  bool readsNoFrames() const { return (flags_ & STREAMRELAY_PLUGIN_NO_INPUTS) != 0; }
  // A read-only descriptor of the very code that was loaded (its private
  // copy, removed from the directory): what an isolated instance's child
  // loads, whatever happened to the file since. -1 if it could not be kept.
  int codeFd() const { return codeFd_; }
  // The source type it provides (source_plugin.h), or null: none. Checked
  // as the plugin descriptor is: a bad one refuses the whole library.
  const streamrelay_source_plugin* sourceDescriptor() const { return sourceDescriptor_; }
  // The keys of that source type's config (its config_keys table).
  const std::shared_ptr<const PluginConfigKeys>& sourceConfigKeys() const { return sourceConfigKeys_; }
  // The source type's check (null: it has none, or its descriptor predates it).
  using SourceCheck = int (*)(const char*, std::uint32_t*, char*, std::size_t);
  SourceCheck sourceCheck() const { return sourceCheck_; }

 private:
  PluginLibrary(std::string path, std::unique_ptr<Poco::SharedLibrary> library);
  void validate();
  void validateSource();

  std::string path_;
  std::unique_ptr<Poco::SharedLibrary> library_;
  const streamrelay_plugin* descriptor_ = nullptr;
  std::string name_;
  PluginCallbacks callbacks_;
  std::shared_ptr<const PluginConfigKeys> configKeys_;
  std::uint32_t flags_ = 0;
  int codeFd_ = -1;
  const streamrelay_source_plugin* sourceDescriptor_ = nullptr;
  std::shared_ptr<const PluginConfigKeys> sourceConfigKeys_;
  SourceCheck sourceCheck_ = nullptr;
};

}  // namespace streamrelay
