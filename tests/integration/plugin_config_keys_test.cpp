// SPDX-License-Identifier: Apache-2.0
// A plugin's declared config keys (ABI 1.2 config_keys) in the real binary:
// `streamrelay --check-config` checks and prints the plugins' configs by
// them, and `--list-keys` lists them, without creating any instance; plugins
// in a directory others can write are not loaded for it.

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "relay_fixture.hpp"

using namespace streamrelay::test;

namespace {

std::string testPlugin(const std::string& name) { return std::string(TEST_PLUGIN_DIR) + "/" + name + ".so"; }

struct Run {
  std::string out;  // stdout and stderr
  int code;
};

Run runRelay(const std::string& args) {
  FILE* pipe = ::popen((std::string(STREAMRELAY_BIN) + " " + args + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  Run run{"", 0};
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) run.out.append(buffer, n);
  const int status = ::pclose(pipe);
  run.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

std::string configWith(const PluginDir& dir, const std::string& instances) {
  return "upstream: {type: generator}\nplugins:\n  directory: " + dir.root() + "\n  instances:\n" + instances;
}

}  // namespace

TEST_CASE("streamrelay --check-config rejects a plugin config its declared keys reject, naming the key and its line",
          "[plugins][config_keys]") {
  PluginDir dir;
  dir.drop(builtIn("sqlite_writer"), "sqlite_writer.so");
  SECTION("a value out of range") {
    const std::string path = writeTempFile("check-keys.yaml", configWith(dir,
                                                                           "    - name: db\n"
                                                                           "      type: sqlite_writer\n"
                                                                           "      config:\n"
                                                                           "        path: x.db\n"
                                                                           "        batch_frames: 0\n"));
    const Run run = runRelay("--check-config " + path);
    CHECK(run.code == 1);
    CHECK(run.out == "streamrelay: config error: " + path +
                         ":9: plugins.instances[0].config.batch_frames: 0 is out of range 1..1000000\n");
  }
  SECTION("an unknown key") {
    const std::string path =
        writeTempFile("check-keys.yaml", configWith(dir, "    - {name: db, type: sqlite_writer, config: {pathh: x}}\n"));
    const Run run = runRelay("--check-config " + path);
    CHECK(run.code == 1);
    CHECK(run.out.find(path + ":5: plugins.instances[0].config.pathh: unknown key (expected one of: path, table") !=
          std::string::npos);
  }
}

TEST_CASE("streamrelay --check-config prints a plugin's config by its declared keys: defaults filled in, secrets (set)",
          "[plugins][config_keys][secrets]") {
  PluginDir dir;
  dir.drop(builtIn("sqlite_writer"), "sqlite_writer.so");
  dir.drop(testPlugin("c_current"), "c_current.so");
  const std::string untouched = dir.path("never-created.txt");
  const std::string path = writeTempFile(
      "check-print.yaml", configWith(dir, "    - {name: db, type: sqlite_writer, config: {path: x.db}}\n"
                                          "    - {name: c, type: c_current, config: {path: " + untouched +
                                              ", dsn: 'postgres://u:p@h/db?sslmode=hunter2'}}\n"));
  const Run run = runRelay("--check-config " + path);
  INFO(run.out);
  REQUIRE(run.code == 0);
  CHECK(run.out.find("hunter2") == std::string::npos);  // `dsn` is secret by the table, not by its name
  CHECK(run.out.find("dsn: \"(set)\"") != std::string::npos);
  CHECK(run.out.find("table: frames") != std::string::npos);  // defaults the file does not write: the table's
  CHECK(run.out.find("batch_frames: 1000") != std::string::npos);
  // Loaded, never created: the C plugin opens its file in create().
  CHECK(::access(untouched.c_str(), F_OK) != 0);
}

TEST_CASE("streamrelay --check-config loads no plugin from a directory others can write, configs print by the name rule",
          "[plugins][config_keys][secrets]") {
  PluginDir dir;
  dir.drop(builtIn("sqlite_writer"), "sqlite_writer.so");
  dir.drop(testPlugin("c_current"), "c_current.so");
  ::chmod(dir.root().c_str(), 0777);
  const std::string path = writeTempFile(
      "check-untrusted.yaml",
      configWith(dir, "    - {name: db, type: sqlite_writer, config: {path: x.db, batch_frames: 0}}\n"
                      "    - {name: c, type: c_current, config: {path: x, password: hunter2}}\n"));
  const Run run = runRelay("--check-config " + path);
  ::chmod(dir.root().c_str(), 0755);
  INFO(run.out);
  CHECK(run.code == 0);  // not checked: the plugins were not loaded
  CHECK(run.out.find("streamrelay: note: plugin keys not read: " + dir.root() + " is writable by group or others") !=
        std::string::npos);
  CHECK(run.out.find("hunter2") == std::string::npos);     // the name rule: `password`
  CHECK(run.out.find("table: frames") == std::string::npos);  // printed as written
}

TEST_CASE("streamrelay --list-keys --config FILE lists the keys of the plugins in its plugins directory", "[plugins][config_keys]") {
  PluginDir dir;
  dir.drop(builtIn("sqlite_writer"), "sqlite_writer.so");
  dir.drop(builtIn("filter"), "filter.so");
  const std::string path = writeTempFile("list-keys.yaml", configWith(dir, "    []\n"));
  const Run run = runRelay("--list-keys --config " + path);
  INFO(run.out);
  CHECK(run.code == 0);
  CHECK(run.out.find("\nplugins.instances[].config.batch_frames  integer 1..1000000, default 1000 "
                     "[plugin type sqlite_writer] — frames per transaction [reload: restarts the plugin instance]\n") !=
        std::string::npos);
  CHECK(run.out.find("\nplugins.instances[].config.json.pointer  string") != std::string::npos);
  CHECK(run.out.find("\nplugins.instances[].config.invert  true|false, default false [plugin type filter]") !=
        std::string::npos);
  // Without a config file: the relay's own keys, and a note why not the plugins'.
  const Run plain = runRelay("--list-keys --config " + dir.path("none.yaml"));
  CHECK(plain.code == 0);
  CHECK(plain.out.find("[plugin type") == std::string::npos);
  CHECK(plain.out.find("streamrelay: note: plugin keys not listed: no config file at") != std::string::npos);
}
