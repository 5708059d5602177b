// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <unistd.h>

#include <fstream>
#include <iterator>
#include <string>

#include "elf_check.hpp"

using streamrelay::checkElfSharedObject;

namespace {
std::string readAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A file of this process's own: ctest runs test cases side by side.
std::string writeTemp(const std::string& bytes) {
  std::string path = "/tmp/streamrelay-elf-check-test." + std::to_string(::getpid()) + ".so";
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}
}  // namespace

// Defect: a plugin written slowly in place was dlopen()ed half written and the
// relay died of SIGBUS. No prefix of a real plugin may pass the check.
TEST_CASE("an ELF shared object cut anywhere is refused, and the whole file passes", "[elf]") {
  const std::string whole = readAll(TEST_PLUGIN_FILE);
  REQUIRE(whole.size() > 8192);
  CHECK(checkElfSharedObject(writeTemp(whole)).empty());
  for (std::size_t size = 0; size < whole.size(); size += (size < 8192 ? 64 : 997)) {
    INFO("first " << size << " of " << whole.size() << " bytes");
    CHECK_FALSE(checkElfSharedObject(writeTemp(whole.substr(0, size))).empty());
  }
  CHECK_FALSE(checkElfSharedObject(writeTemp(whole.substr(0, whole.size() - 1))).empty());
}

TEST_CASE("files that are not shared objects are named as such", "[elf]") {
  CHECK(checkElfSharedObject(writeTemp("this is not an ELF file\n")).find("not an ELF file") == 0);
  CHECK(checkElfSharedObject("/nonexistent/plugin.so").find("cannot open") == 0);
}
