// SPDX-License-Identifier: Apache-2.0
#pragma once
// ConfigWatcher: `watch_config: true` — when the config file changes, calls
// `onChange` (main.cpp raises SIGHUP, so the reload runs where a signalled one
// does). The file is looked at every half second; a change counts once the
// file has kept the same size and modification time for one more look, so a
// file still being written is not read half done. One thread, owned here.

#include <sys/stat.h>

#include <functional>
#include <string>
#include <thread>

#include "stop_signal.hpp"

namespace streamrelay {

class ConfigWatcher {
 public:
  // One version of the file: what changes when it is written or replaced.
  struct Version {
    bool exists = false;
    off_t size = 0;
    long long mtimeNs = 0;
    ino_t inode = 0;
    bool operator==(const Version& o) const {
      return exists == o.exists && size == o.size && mtimeNs == o.mtimeNs && inode == o.inode;
    }
    bool operator!=(const Version& o) const { return !(*this == o); }
  };
  static Version look(const std::string& path);

  // `running`: the version the relay's config was read from (taken before it
  // was read, so that a change made while the relay starts is not missed).
  ConfigWatcher(std::string path, Version running, std::function<void()> onChange);
  ~ConfigWatcher();  // stops the thread
  ConfigWatcher(const ConfigWatcher&) = delete;
  ConfigWatcher& operator=(const ConfigWatcher&) = delete;

  void start();
  void stop();

 private:
  void run();

  const std::string path_;
  const Version running_;
  const std::function<void()> onChange_;
  StopSignal stop_;
  std::thread thread_;
};

}  // namespace streamrelay
