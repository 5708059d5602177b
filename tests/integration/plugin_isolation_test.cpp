// SPDX-License-Identifier: Apache-2.0
// Integration tests of what the plugin host does about plugins it cannot
// isolate in-process: one stuck in on_frame (bounded shutdown, the host goes
// on, other consumers flow) and one that crashes (the relay dies of the
// signal, naming the instance). The plugin is tests/plugins/faulty_plugin.c.

#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "relay_fixture.hpp"

using namespace streamrelay::test;

namespace {

std::string testPlugin(const std::string& name) { return std::string(TEST_PLUGIN_DIR) + "/" + name + ".so"; }

// Poco's ProcessHandle::wait() reports a death by signal N as 256 + N.
constexpr int kDiedBySignal = 256;
// main.cpp: a plugin instance did not stop within shutdown_timeout_ms.
constexpr int kExitPluginStuck = 3;

std::string faultyInstance(const std::string& name, const std::string& config) {
  return "    - {name: " + name + ", type: faulty, config: {" + config + "}}\n";
}

// Waits until the faulty plugin has written `what` (it does just before it misbehaves).
bool reached(const std::string& out, const std::string& what) {
  return pollUntil([&] {
    std::vector<std::string> lines = readLines(out);
    return !lines.empty() && lines.back() == what;
  });
}

// SIGTERM to a relay whose plugin instance never returns: it must exit by
// the deadline with kExitPluginStuck. Returns how long it took.
std::chrono::milliseconds terminateStuck(RunningRelay& relay) {
  const auto asked = std::chrono::steady_clock::now();
  relay.process->terminate();
  const int code = relay.process->waitForExit(20s);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - asked);
  INFO(relay.process->output());
  CHECK(code == kExitPluginStuck);
  return took;
}

}  // namespace

TEST_CASE("a plugin stuck in on_frame: SIGTERM exits by shutdown_timeout_ms, non-zero, naming the instance",
          "[plugins][isolation]") {
  PluginDir dir;
  dir.drop(testPlugin("faulty"), "faulty.so");
  const std::string out = dir.path("stuck.txt");
  RunningRelay relay = startRelay("upstream: {type: generator, rate: 200}\nshutdown_timeout_ms: 1000\n" +
                                      pluginsSection(dir, "  instances:\n" + faultyInstance("stuck", "path: " + out +
                                                                                                    ", hang_at: 5")),
                                  {});
  REQUIRE(reached(out, "hang"));
  // 1 s to drain and 1 s for the final flush, then a loaded machine's (or a
  // sanitizer build's) margin: a bound, where without it the relay waits forever.
  CHECK(terminateStuck(relay).count() < 10000);
  CHECK(relay.process->countLines("plugin instance stuck \\(type faulty, file " + dir.path("faulty.so") +
                                  "\\) did not stop within shutdown_timeout_ms") == 1);
}

TEST_CASE("a stuck plugin's file removed: the host goes on and loads the next plugin dropped in",
          "[plugins][isolation]") {
  PluginDir dir;
  dir.drop(testPlugin("faulty"), "faulty.so");
  const std::string stuck = dir.path("stuck.txt"), recorded = dir.path("recorded.txt");
  RunningRelay relay = startRelay(
      "upstream: {type: generator, rate: 200}\nshutdown_timeout_ms: 1000\n" +
          pluginsSection(dir, "  instances:\n" + faultyInstance("stuck", "path: " + stuck + ", hang_at: 3") +
                                  "    - {name: rec, type: recorder, config: {path: " + recorded + "}}\n"),
      {});
  REQUIRE(reached(stuck, "hang"));
  REQUIRE(::unlink(dir.path("faulty.so").c_str()) == 0);
  dir.drop(testPlugin("recorder_v1"), "recorder.so");
  // The host abandons the stuck worker after shutdown_timeout_ms and goes on.
  CHECK(pollUntil([&] { return readLines(recorded).size() >= 20; }));
  // The abandoned worker still runs at shutdown: it is named again, and the exit says so.
  terminateStuck(relay);
}

TEST_CASE("while one plugin instance is stuck, other instances and subscribers keep flowing", "[plugins][isolation]") {
  PluginDir dir;
  dir.drop(testPlugin("faulty"), "faulty.so");
  dir.drop(testPlugin("recorder_v1"), "recorder.so");
  const std::string stuck = dir.path("stuck.txt"), recorded = dir.path("recorded.txt");
  RunningRelay relay = startRelay(
      "upstream: {type: generator, rate: 500}\nshutdown_timeout_ms: 1000\nlisteners:\n" + listener("main") +
      pluginsSection(dir, "  instances:\n" + faultyInstance("stuck", "path: " + stuck + ", hang_at: 3") +
                              "    - {name: rec, type: recorder, config: {path: " + recorded + "}}\n"));
  REQUIRE(reached(stuck, "hang"));
  const std::size_t before = readLines(recorded).size();
  Subscriber sub(relay.address());
  std::string frame;
  for (int i = 0; i < 200; ++i) REQUIRE(sub.next(frame, 5s));
  CHECK(pollUntil([&] { return readLines(recorded).size() >= before + 200; }));
  terminateStuck(relay);
}

TEST_CASE("a plugin that crashes: the relay dies of the signal with a line naming the instance and file",
          "[plugins][isolation]") {
  PluginDir dir;
  dir.drop(testPlugin("faulty"), "faulty.so");
  const std::string out = dir.path("crash.txt");
  std::string how;
  SECTION("a null pointer dereferenced") { how = "crash_at"; }
#ifndef STREAMRELAY_SANITIZE  // AddressSanitizer reports a stack overflow its own way
  SECTION("its stack overflowed") { how = "overflow_at"; }
#endif
  auto relay = std::make_unique<ChildProcess>(
      STREAMRELAY_BIN,
      std::vector<std::string>{
          "--config", writeTempFile("crash.yaml", "upstream: {type: generator, rate: 200}\n" +
                                                      pluginsSection(dir, "  instances:\n" +
                                                                              faultyInstance("boom", "path: " + out + ", " +
                                                                                                         how + ": 5")))});
  const int code = relay->waitForExit(20s);
  INFO(relay->output());
#ifdef STREAMRELAY_SANITIZE
  CHECK(code != 0);  // the sanitizer's handler, chained after ours, reports and exits
#else
  CHECK(code == kDiedBySignal + SIGSEGV);
#endif
  CHECK(relay->countLines("streamrelay: fatal signal SIGSEGV in plugin instance boom \\(type faulty, file " +
                          dir.path("faulty.so") + "\\)$") == 1);
}
