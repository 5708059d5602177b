// SPDX-License-Identifier: Apache-2.0
// Keys through the plugin ABI (1.2) in the real relay: what a processor emits
// with emit_keyed reaches the plugins of its stream with that key, in
// process and with `isolation: process` on either side; a key over
// STREAMRELAY_MAX_KEY_SIZE is refused.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "relay_fixture.hpp"

using namespace streamrelay::test;

namespace {

std::string testPlugin(const std::string& name) { return std::string(TEST_PLUGIN_DIR) + "/" + name + ".so"; }

// The recorder's lines with record_key, without their build and seq: "KEY PAYLOAD".
std::vector<std::string> keysAndPayloads(const std::string& path) {
  std::vector<std::string> out;
  for (const std::string& line : readLines(path)) {
    const auto afterBuild = line.find(' ');
    const auto afterSeq = afterBuild == std::string::npos ? afterBuild : line.find(' ', afterBuild + 1);
    if (afterSeq != std::string::npos) out.push_back(line.substr(afterSeq + 1));
  }
  return out;
}

// A plugin instance's figure in /stats: "failures", or a counter; -1 if absent.
double instanceFigure(const RelayStats& stats, const std::string& instance, const std::string& name) {
  auto plugins = stats.get()->getArray("plugins");
  for (std::size_t i = 0; i < plugins->size(); ++i) {
    auto p = plugins->getObject(static_cast<unsigned>(i));
    if (p->getValue<std::string>("name") != instance) continue;
    if (name == "failures") return p->getValue<double>("failures");
    auto counters = p->getObject("counters");
    return counters && counters->has(name) ? counters->getValue<double>(name) : -1;
  }
  return -1;
}

std::string keysRelay(const PluginDir& dir, const std::string& instances) {
  return "upstream: {type: stdin, framing: {type: delimiter}}\nlisteners:\n" +
         listener("out", "inputs: [keyer]") +
         pluginsSection(dir, "  instances:\n"
                             "    - {name: metrics, type: metrics, config: {bind: '127.0.0.1:0'}}\n" +
                                 instances);
}

}  // namespace

TEST_CASE("keys: a processor's keyed emits reach the plugins of its stream with their keys, in process and isolated",
          "[plugins][keys][process]") {
  const std::string emitter = GENERATE(as<std::string>{}, "in_process", "process");
  const std::string receiver = GENERATE(as<std::string>{}, "in_process", "process");
  INFO("emitter isolation: " << emitter << ", receiver isolation: " << receiver);
  PluginDir dir;
  dir.drop(testPlugin("recorder_v1"), "recorder.so");
  dir.drop(std::string(STREAMRELAY_PLUGINS_DIR) + "/metrics.so", "metrics.so");
  RunningRelay relay = startRelay(
      keysRelay(dir, "    - {name: keyer, type: recorder, isolation: " + emitter +
                         ", queue: {on_full: block}, config: {path: " + dir.path("keyer.txt") +
                         ", emit: true, emit_key: 'md.'}}\n"
                         "    - {name: seen, type: recorder, isolation: " + receiver +
                         ", inputs: [keyer], queue: {on_full: block}, config: {path: " + dir.path("seen.txt") +
                         ", record_key: true}}\n"
                         "    - {name: raw, type: recorder, isolation: " + receiver +
                         ", queue: {on_full: block}, config: {path: " + dir.path("raw.txt") +
                         ", record_key: true}}\n"),
      {"out"});
  relay.process->writeStdin("BTC-USD\nETH-USD\nSOL-USD\n");
  const std::vector<std::string> keyed{"md.BTC-USD v1 BTC-USD", "md.ETH-USD v1 ETH-USD", "md.SOL-USD v1 SOL-USD"};
  CHECK(pollUntil([&] { return keysAndPayloads(dir.path("seen.txt")).size() >= keyed.size(); }, 30s));
  CHECK(keysAndPayloads(dir.path("seen.txt")) == keyed);
  // The upstream's frames have no key (no key rule): the plugins see none.
  const std::vector<std::string> unkeyed{"(none) BTC-USD", "(none) ETH-USD", "(none) SOL-USD"};
  CHECK(pollUntil([&] { return keysAndPayloads(dir.path("raw.txt")).size() >= unkeyed.size(); }, 30s));
  CHECK(keysAndPayloads(dir.path("raw.txt")) == unkeyed);
}

TEST_CASE("keys: emit_keyed takes a key of 256 bytes and refuses one of 257 (STREAMRELAY_ERROR, counted as a failure)",
          "[plugins][keys][process]") {
  const std::string isolation = GENERATE(as<std::string>{}, "in_process", "process");
  INFO("isolation: " << isolation);
  PluginDir dir;
  dir.drop(testPlugin("recorder_v1"), "recorder.so");
  dir.drop(std::string(STREAMRELAY_PLUGINS_DIR) + "/metrics.so", "metrics.so");
  const std::string prefix(253, 'k');  // + "BTC": 256 bytes; + "ETHX": 257
  RunningRelay relay = startRelay(
      keysRelay(dir, "    - {name: keyer, type: recorder, isolation: " + isolation +
                         ", max_failures: 100, queue: {on_full: block}, config: {path: " + dir.path("keyer.txt") +
                         ", emit: true, emit_key: '" + prefix + "'}}\n"
                         "    - {name: seen, type: recorder, inputs: [keyer], queue: {on_full: block}, config: {path: " +
                         dir.path("seen.txt") + ", record_key: true}}\n"),
      {"out"});
  RelayStats stats;
  stats.attach(relay);
  relay.process->writeStdin("ETHX\nBTC\nSOLX\n");
  REQUIRE(pollUntil([&] { return instanceFigure(stats, "keyer", "recorded") == 3; }, 30s));
  CHECK(pollUntil([&] { return instanceFigure(stats, "keyer", "failures") == 2; }));
  CHECK(pollUntil([&] { return !keysAndPayloads(dir.path("seen.txt")).empty(); }));
  CHECK(keysAndPayloads(dir.path("seen.txt")) == std::vector<std::string>{prefix + "BTC v1 BTC"});
}
