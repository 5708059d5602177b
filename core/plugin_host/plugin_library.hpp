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

#include <Poco/SharedLibrary.h>

#include <memory>
#include <string>

#include "streamrelay/plugin.h"

namespace streamrelay {

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
  // The optional callback, or null if the descriptor predates it.
  decltype(streamrelay_plugin::flush) flush() const { return flush_; }
  // STREAMRELAY_PLUGIN_NO_INPUTS: its instances subscribe to nothing.
  bool readsNoFrames() const { return (flags_ & STREAMRELAY_PLUGIN_NO_INPUTS) != 0; }
  // A read-only descriptor of the very code that was loaded (its private
  // copy, removed from the directory): what an isolated instance's child
  // loads, whatever happened to the file since. -1 if it could not be kept.
  int codeFd() const { return codeFd_; }

 private:
  PluginLibrary(std::string path, std::unique_ptr<Poco::SharedLibrary> library);
  void validate();

  std::string path_;
  std::unique_ptr<Poco::SharedLibrary> library_;
  const streamrelay_plugin* descriptor_ = nullptr;
  std::string name_;
  decltype(streamrelay_plugin::flush) flush_ = nullptr;
  std::uint32_t flags_ = 0;
  int codeFd_ = -1;
};

}  // namespace streamrelay
