// SPDX-License-Identifier: Apache-2.0
#include "plugin_library.hpp"

#include <Poco/File.h>
#include <Poco/Logger.h>
#include <Poco/Path.h>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <stdexcept>

#include "elf_check.hpp"

namespace streamrelay {

namespace {
std::atomic<unsigned> copies{0};

// Does the descriptor's struct_size cover `field` (ends at offset end)?
bool covers(const streamrelay_plugin& d, std::size_t end) { return d.struct_size >= end; }

#define FIELD_END(field) (offsetof(streamrelay_plugin, field) + sizeof(streamrelay_plugin::field))
}  // namespace

std::shared_ptr<PluginLibrary> PluginLibrary::load(const std::string& path, const std::string& privateDir) {
  Poco::Path source(path);
  std::string copy = Poco::Path(privateDir, source.getBaseName() + "." + std::to_string(++copies) + ".so").toString();
  auto library = std::make_unique<Poco::SharedLibrary>();
  auto removeCopy = [&] {
    try {
      Poco::File(copy).remove();
    } catch (const Poco::Exception&) {
      // the copy may not exist; nothing else to undo
    }
  };
  try {
    Poco::File(path).copyTo(copy);
  } catch (const Poco::Exception& e) {
    removeCopy();
    throw std::runtime_error("cannot copy: " + e.displayText());
  }
  // The copy is what dlopen maps: check it, not the original that may still change.
  std::string incomplete = checkElfSharedObject(copy);
  if (!incomplete.empty()) {
    removeCopy();
    throw std::runtime_error("cannot load: " + incomplete);
  }
  try {
    library->load(copy, Poco::SharedLibrary::SHLIB_LOCAL);
  } catch (const Poco::Exception& e) {
    removeCopy();
    throw std::runtime_error("cannot load: " + e.displayText());
  }
  const int codeFd = ::open(copy.c_str(), O_RDONLY | O_CLOEXEC);
  Poco::File(copy).remove();  // the mapping stays; the private directory stays clean
  std::shared_ptr<PluginLibrary> loaded(new PluginLibrary(path, std::move(library)));
  loaded->codeFd_ = codeFd;
  loaded->validate();
  return loaded;
}

std::shared_ptr<PluginLibrary> PluginLibrary::loadInherited(int codeFd, const std::string& path) {
  const std::string code = "/proc/self/fd/" + std::to_string(codeFd);
  std::string incomplete = checkElfSharedObject(code);
  if (!incomplete.empty()) throw std::runtime_error("cannot load: " + incomplete);
  auto library = std::make_unique<Poco::SharedLibrary>();
  try {
    library->load(code, Poco::SharedLibrary::SHLIB_LOCAL);
  } catch (const Poco::Exception& e) {
    throw std::runtime_error("cannot load: " + e.displayText());
  }
  std::shared_ptr<PluginLibrary> loaded(new PluginLibrary(path, std::move(library)));
  loaded->validate();
  return loaded;
}

PluginLibrary::PluginLibrary(std::string path, std::unique_ptr<Poco::SharedLibrary> library)
    : path_(std::move(path)), library_(std::move(library)) {}

PluginLibrary::~PluginLibrary() {
  if (library_->isLoaded()) library_->unload();
  if (codeFd_ >= 0) ::close(codeFd_);
}

void PluginLibrary::validate() {
  if (!library_->hasSymbol(STREAMRELAY_PLUGIN_ENTRY_SYMBOL))
    throw std::runtime_error(std::string("no ") + STREAMRELAY_PLUGIN_ENTRY_SYMBOL +
                             " symbol: not a streamrelay plugin");
  auto entry = reinterpret_cast<streamrelay_plugin_entry_fn>(library_->getSymbol(STREAMRELAY_PLUGIN_ENTRY_SYMBOL));
  descriptor_ = entry();
  if (!descriptor_) throw std::runtime_error("the entry function returned no descriptor");
  const streamrelay_plugin& d = *descriptor_;
  if (!covers(d, FIELD_END(abi_version)))
    throw std::runtime_error("descriptor too small (" + std::to_string(d.struct_size) + " bytes)");
  if (STREAMRELAY_ABI_MAJOR_OF(d.abi_version) != STREAMRELAY_ABI_MAJOR)
    throw std::runtime_error("built for plugin ABI " + std::to_string(STREAMRELAY_ABI_MAJOR_OF(d.abi_version)) + "." +
                             std::to_string(d.abi_version & 0xffff) + ", this relay speaks ABI " +
                             std::to_string(STREAMRELAY_ABI_MAJOR) + "." + std::to_string(STREAMRELAY_ABI_MINOR));
  if (!covers(d, FIELD_END(destroy)))
    throw std::runtime_error("descriptor too small for ABI 1 (" + std::to_string(d.struct_size) + " bytes)");
  if (!d.name || !*d.name) throw std::runtime_error("the descriptor has no name");
  if (!d.create || !d.on_frame || !d.destroy) throw std::runtime_error("create, on_frame and destroy are required");
  name_ = d.name;
  callbacks_.create = d.create;
  callbacks_.onFrame = d.on_frame;
  callbacks_.destroy = d.destroy;
  if (covers(d, FIELD_END(flush))) callbacks_.flush = d.flush;
  if (covers(d, FIELD_END(flags))) flags_ = d.flags;
  if (covers(d, FIELD_END(on_frames))) callbacks_.onFrames = d.on_frames;
  if (covers(d, FIELD_END(config_keys)) && d.config_keys) configKeys_ = PluginConfigKeys::read(d.config_keys, name_);
  validateSource();
}

#define SOURCE_FIELD_END(field) \
  (offsetof(streamrelay_source_plugin, field) + sizeof(streamrelay_source_plugin::field))

void PluginLibrary::validateSource() {
  if (!library_->hasSymbol(STREAMRELAY_SOURCE_ENTRY_SYMBOL)) return;
  auto entry = reinterpret_cast<streamrelay_source_entry_fn>(library_->getSymbol(STREAMRELAY_SOURCE_ENTRY_SYMBOL));
  const streamrelay_source_plugin* d = entry();
  if (!d) throw std::runtime_error("the source entry function returned no descriptor");
  if (d->struct_size < SOURCE_FIELD_END(abi_version))
    throw std::runtime_error("source descriptor too small (" + std::to_string(d->struct_size) + " bytes)");
  if (STREAMRELAY_ABI_MAJOR_OF(d->abi_version) != STREAMRELAY_ABI_MAJOR)
    throw std::runtime_error("source type built for plugin ABI " + std::to_string(STREAMRELAY_ABI_MAJOR_OF(d->abi_version)) +
                             ", this relay speaks ABI " + std::to_string(STREAMRELAY_ABI_MAJOR));
  if (d->struct_size < SOURCE_FIELD_END(destroy))
    throw std::runtime_error("source descriptor too small (" + std::to_string(d->struct_size) + " bytes)");
  if (!d->name || !*d->name) throw std::runtime_error("the source descriptor has no name");
  if (!d->config_keys || !d->create || !d->pump || !d->destroy)
    throw std::runtime_error("source type " + std::string(d->name) + ": config_keys, create, pump and destroy are required");
  sourceConfigKeys_ = PluginConfigKeys::read(d->config_keys, d->name);
  if (d->struct_size >= SOURCE_FIELD_END(check)) sourceCheck_ = d->check;
  sourceDescriptor_ = d;
}

}  // namespace streamrelay
