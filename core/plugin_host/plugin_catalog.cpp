// SPDX-License-Identifier: Apache-2.0
#include "plugin_catalog.hpp"

#include <Poco/DirectoryIterator.h>
#include <Poco/Exception.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "file_trust.hpp"
#include "plugin_library.hpp"

namespace streamrelay {

namespace {

// A private directory for the loaded copies, removed with this object.
class PrivateDirectory {
 public:
  PrivateDirectory() {
    const char* tmpdir = std::getenv("TMPDIR");
    std::string pattern = std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/streamrelay-check.XXXXXX";
    if (::mkdtemp(&pattern[0])) path_ = pattern;
  }
  ~PrivateDirectory() {
    if (!path_.empty()) ::rmdir(path_.c_str());
  }
  PrivateDirectory(const PrivateDirectory&) = delete;
  PrivateDirectory& operator=(const PrivateDirectory&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The .so files of `directory`, in name order (the order of their notes).
std::vector<std::string> pluginFiles(const std::string& directory) {
  std::vector<std::string> files;
  for (Poco::DirectoryIterator it(directory), end; it != end; ++it) {
    const std::string path = it.path().toString();
    struct stat st {};
    if (path.size() > 3 && path.compare(path.size() - 3, 3, ".so") == 0 && ::stat(path.c_str(), &st) == 0 &&
        S_ISREG(st.st_mode))
      files.push_back(path);
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

PluginCatalog PluginCatalog::read(const std::string& directory, bool allowInsecure) {
  PluginCatalog catalog;
  if (directory.empty()) return catalog;
  auto untrusted = [&](const std::string& path) -> std::string {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return path + " does not exist";
    return allowInsecure ? "" : untrustedBecause(path, st);
  };
  if (const std::string why = untrusted(directory); !why.empty()) {
    catalog.notes_.push_back("plugin keys not read: " + why);
    return catalog;
  }
  PrivateDirectory copies;
  if (copies.path().empty()) {
    catalog.notes_.push_back("plugin keys not read: cannot create a directory for private copies");
    return catalog;
  }
  try {
    for (const std::string& path : pluginFiles(directory)) {
      if (const std::string why = untrusted(path); !why.empty()) {
        catalog.notes_.push_back("plugin file " + path + " not read: " + why);
        continue;
      }
      try {
        const std::shared_ptr<PluginLibrary> library = PluginLibrary::load(path, copies.path());
        if (!catalog.keys_.emplace(library->name(), library->configKeys()).second) {
          catalog.notes_.push_back("plugin file " + path + " not read: plugin type " + library->name() +
                                   " is in another file too");
          continue;
        }
        if (const streamrelay_source_plugin* source = library->sourceDescriptor()) {
          SourceType type{path, source->description ? source->description : "", library->sourceConfigKeys(), library};
          if (!catalog.sourceTypes_.emplace(source->name, std::move(type)).second)
            catalog.notes_.push_back("plugin file " + path + ": source type " + source->name +
                                     " is in another file too (not taken from this one)");
        }
      } catch (const std::exception& e) {
        catalog.notes_.push_back("plugin file " + path + " not read: " + e.what());
      }
    }
  } catch (const Poco::Exception& e) {
    catalog.notes_.push_back("plugin keys not read: " + e.displayText());
  }
  return catalog;
}

PluginConfigSchemas PluginCatalog::schemas() const {
  PluginConfigSchemas schemas;
  for (const auto& [type, keys] : keys_)
    if (keys) schemas.emplace(type, &keys->schema());
  return schemas;
}

PluginConfigSchemas PluginCatalog::sourceSchemas() const {
  PluginConfigSchemas schemas;
  for (const auto& [type, found] : sourceTypes_) schemas.emplace(type, &found.keys->schema());
  return schemas;
}

}  // namespace streamrelay
