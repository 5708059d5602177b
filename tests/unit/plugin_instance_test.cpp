// SPDX-License-Identifier: Apache-2.0
// PluginInstance with a real plugin (the recorder test plugin, loaded as the
// host loads it): what a processor emits in one drain is published on its
// stream in batches of at most max_emit_bytes, every frame once, in order.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <deque>
#include <string>

#include "plugin_instance.hpp"

using namespace streamrelay;

namespace {

FrameBatchPtr numberedBatch(std::size_t count, std::size_t size) {
  FrameBatchBuilder builder;
  for (std::size_t i = 1; i <= count; ++i) {
    std::string payload = "frame " + std::to_string(i);
    payload.resize(size, '.');
    builder.add(payload.data(), payload.size());
  }
  auto batch = builder.seal(0);
  batch->assignFirstSeq(1);
  return FrameBatchPtr(std::move(batch));
}

}  // namespace

TEST_CASE("a drain that emits more than max_emit_bytes is published in several batches, in order", "[abi]") {
  char dir[] = "/tmp/streamrelay-instance-test.XXXXXX";
  REQUIRE(::mkdtemp(dir));
  const std::string record = std::string(dir) + "/record.txt";
  auto library = PluginLibrary::load(TEST_PLUGIN_FILE, dir);
  Bus output(StreamId{"proc", 7}, nullptr);
  auto out = std::make_shared<SubscriptionQueue>("test", QueueLimits{0, 1u << 30, OverflowPolicy::Block}, [] {});
  output.subscribe(out);
  PluginInstanceConfig config;
  config.name = "proc";
  config.type = "recorder";
  config.configYaml = "{path: " + record + ", emit: true}";
  config.queue = QueueLimits{0, 1u << 30, OverflowPolicy::Block};
  config.maxEmitBytes = 64 * 1024;
  {
    PluginInstance instance(library, config, std::make_shared<PluginMetrics>(), &output, {}, {});
    std::string error;
    REQUIRE(instance.create(error));
    instance.queue()->push(numberedBatch(1000, 1000));  // one drain: about 1 MB emitted
    instance.start();
    std::deque<FrameSpan> spans;
    std::size_t frames = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (frames < 1000 && std::chrono::steady_clock::now() < deadline) {
      out->waitForFrames(deadline);
      frames += out->takeAll(spans);
    }
    REQUIRE(frames == 1000);
    std::uint64_t expected = 1;
    for (const FrameSpan& span : spans) {
      CHECK(span.batch->totalWireBytes() <= config.maxEmitBytes);
      for (std::uint32_t i = span.first; i < span.end; ++i) {
        const std::string payload(span.batch->payload(i));
        CHECK(payload.rfind("v1 frame " + std::to_string(expected) + ".", 0) == 0);
        ++expected;
      }
    }
    CHECK(spans.size() >= 15);  // about 1 MB in batches of at most 64 KiB
    instance.beginStop(CloseReason::Shutdown, std::chrono::steady_clock::now() + std::chrono::seconds(5));
    REQUIRE(instance.join(std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  }
  std::remove(record.c_str());
  ::rmdir(dir);
}
