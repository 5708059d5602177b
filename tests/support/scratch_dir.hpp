// SPDX-License-Identifier: Apache-2.0
#pragma once
// A directory of its own under /tmp for one test (a log, a database),
// removed with what it holds when the test ends.

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace streamrelay::test {

struct ScratchDir {
  std::string path;
  ScratchDir() {
    char pattern[] = "/tmp/streamrelay-test-XXXXXX";
    if (!::mkdtemp(pattern)) throw std::runtime_error("cannot make a scratch directory under /tmp");
    path = pattern;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string sub(const std::string& name) const { return path + "/" + name; }
};

}  // namespace streamrelay::test
