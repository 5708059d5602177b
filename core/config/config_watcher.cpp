// SPDX-License-Identifier: Apache-2.0
#include "config_watcher.hpp"

namespace streamrelay {

namespace {
constexpr std::chrono::milliseconds kLookEvery(500);
}

ConfigWatcher::ConfigWatcher(std::string path, Version running, std::function<void()> onChange)
    : path_(std::move(path)), running_(running), onChange_(std::move(onChange)) {}

ConfigWatcher::~ConfigWatcher() { stop(); }

void ConfigWatcher::start() { thread_ = std::thread([this] { run(); }); }

void ConfigWatcher::stop() {
  stop_.request();
  if (thread_.joinable()) thread_.join();
}

ConfigWatcher::Version ConfigWatcher::look(const std::string& path) {
  struct stat st {};
  Version v;
  if (::stat(path.c_str(), &st) != 0) return v;
  v.exists = true;
  v.size = st.st_size;
  v.mtimeNs = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
  v.inode = st.st_ino;
  return v;
}

void ConfigWatcher::run() {
  Version applied = running_;  // what the relay runs now
  Version previous = look(path_);
  while (!stop_.waitFor(kLookEvery)) {
    const Version now = look(path_);
    // Changed, and the same as at the last look: written, and done writing.
    if (now != applied && now == previous && now.exists) {
      applied = now;
      onChange_();
    }
    previous = now;
  }
}

}  // namespace streamrelay
