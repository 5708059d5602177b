// SPDX-License-Identifier: Apache-2.0
// The host side of plugin ABI 1.2, through the C table a plugin is given:
// HostApi (supports per function, handles, keys, masking), FrameHandout
// (retain keeps a batch past its call) and PluginCalls (on_frames resumed
// after the frame that failed, failures in a row).
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "frame_handout.hpp"
#include "host_api.hpp"
#include "plugin_calls.hpp"

using namespace streamrelay;

namespace {

struct FakeServices : HostServices {
  PluginMetrics figures;
  std::vector<std::string> lines;
  std::vector<std::pair<std::string, std::string>> emitted;
  std::string name = "n";
  void log(int, const std::string& line) override { lines.push_back(line); }
  PluginMetrics& metrics() override { return figures; }
  std::string statsJson() override { return "{}"; }
  const std::string& instanceName() const override { return name; }
  bool stopping() const override { return false; }
  bool emit(std::string_view data, std::string_view key) override {
    emitted.emplace_back(data, key);
    return true;
  }
  streamrelay_retained* retain(const streamrelay_frame*) override { return nullptr; }
  void release(streamrelay_retained*) override {}
  bool trustsAnyFile() const override { return false; }
};

#define AT(field) offsetof(streamrelay_host_api, field)

FrameBatchPtr makeBatch(std::size_t count, std::uint64_t firstSeq) {
  FrameBatchBuilder builder;
  for (std::size_t i = 0; i < count; ++i) {
    const std::string payload = "frame " + std::to_string(firstSeq + i);
    builder.add(payload.data(), payload.size());
  }
  auto batch = builder.seal(0);
  batch->assignFirstSeq(firstSeq);
  return FrameBatchPtr(std::move(batch));
}

}  // namespace

TEST_CASE("supports answers for each function, as this instance can do it", "[abi]") {
  FakeServices services;
  HostApi withStream(services, HostApi::Offers{true, true});
  HostApi without(services, HostApi::Offers{false, false});
  const streamrelay_host_api* a = withStream.table();
  const streamrelay_host_api* b = without.table();
  for (std::size_t offset : {AT(log), AT(set_gauge), AT(counter), AT(counter_add), AT(gauge_set), AT(check_file_trust)}) {
    CHECK(a->supports(a->host, offset) == 1);
    CHECK(b->supports(b->host, offset) == 1);
  }
  for (std::size_t offset : {AT(emit), AT(emit_keyed), AT(retain), AT(release)}) {
    CHECK(a->supports(a->host, offset) == 1);
    CHECK(b->supports(b->host, offset) == 0);
  }
  CHECK(a->supports(a->host, sizeof(streamrelay_host_api)) == 0);  // past this host's table
  CHECK(a->supports(a->host, AT(counter) + 1) == 0);               // not a function's offset
  CHECK(a->supports(a->host, AT(host)) == 0);                      // not a function
  // Not offered, yet never a null pointer: a plugin that calls without asking gets an error.
  CHECK(b->emit(b->host, reinterpret_cast<const std::uint8_t*>("x"), 1) == STREAMRELAY_ERROR);
  streamrelay_frame frame{};
  CHECK(b->retain(b->host, &frame) == nullptr);
}

TEST_CASE("a counter handle and add_counter by name reach the same figure, so do gauges", "[abi]") {
  FakeServices services;
  HostApi host(services, {});
  const streamrelay_host_api* api = host.table();
  streamrelay_counter* frames = api->counter(api->host, "frames");
  REQUIRE(frames != nullptr);
  CHECK(api->counter(api->host, "frames") == frames);  // one cell per name
  api->counter_add(api->host, frames, 5);
  api->add_counter(api->host, "frames", 2);
  CHECK(services.figures.counters().at("frames") == 7);
  streamrelay_gauge* depth = api->gauge(api->host, "depth");
  api->gauge_set(api->host, depth, 3.5);
  CHECK(services.figures.gauges().at("depth") == 3.5);
  api->set_gauge(api->host, "depth", 4);
  CHECK(services.figures.gauges().at("depth") == 4);
  CHECK(api->counter(api->host, nullptr) == nullptr);
}

TEST_CASE("emit_keyed passes the key, a key over STREAMRELAY_MAX_KEY_SIZE is refused", "[abi]") {
  FakeServices services;
  HostApi host(services, HostApi::Offers{true, false});
  const streamrelay_host_api* api = host.table();
  const auto* data = reinterpret_cast<const std::uint8_t*>("payload");
  CHECK(api->emit_keyed(api->host, data, 7, "BTC-USD", 7) == STREAMRELAY_OK);
  CHECK(api->emit(api->host, data, 7) == STREAMRELAY_OK);
  const std::string longKey(STREAMRELAY_MAX_KEY_SIZE + 1, 'k');
  CHECK(api->emit_keyed(api->host, data, 7, longKey.data(), longKey.size()) == STREAMRELAY_ERROR);
  CHECK(api->emit_keyed(api->host, data, 7, nullptr, 3) == STREAMRELAY_ERROR);
  REQUIRE(services.emitted.size() == 2);
  CHECK(services.emitted[0] == std::make_pair(std::string("payload"), std::string("BTC-USD")));
  CHECK(services.emitted[1] == std::make_pair(std::string("payload"), std::string()));
}

TEST_CASE("a plugin's log line is one line without its config's secrets or URL credentials", "[abi][secrets]") {
  FakeServices services;
  HostApi host(services, {}, {"hunter22", "pw"});
  const streamrelay_host_api* api = host.table();
  api->log(api->host, STREAMRELAY_LOG_INFO, "auth hunter22 failed\nat redis://:hunter3@h:1 (pw)");
  REQUIRE(services.lines.size() == 1);
  CHECK(services.lines[0] == "plugin n: auth (set) failed\\nat redis://(set)@h:1 (pw)");  // "pw": too short to mask
}

TEST_CASE("check_file_trust applies the relay's rule to a file a plugin names", "[abi]") {
  FakeServices services;
  HostApi host(services, {});
  const streamrelay_host_api* api = host.table();
  char error[STREAMRELAY_MIN_ERROR_SIZE] = "";
  const std::string path = "/tmp/streamrelay-trust-test-" + std::to_string(::getpid());
  std::FILE* f = std::fopen(path.c_str(), "w");
  REQUIRE(f);
  std::fclose(f);
  ::chmod(path.c_str(), 0644);
  CHECK(api->check_file_trust(api->host, path.c_str(), error, sizeof error) == STREAMRELAY_OK);
  ::chmod(path.c_str(), 0666);
  CHECK(api->check_file_trust(api->host, path.c_str(), error, sizeof error) == STREAMRELAY_ERROR);
  CHECK(std::string(error).find("writable by group or others") != std::string::npos);
  ::unlink(path.c_str());
  CHECK(api->check_file_trust(api->host, path.c_str(), error, sizeof error) == STREAMRELAY_ERROR);
}

TEST_CASE("retain keeps a frame's batch past its call, release lets it go", "[abi]") {
  FrameHandout handout;
  FrameSpan span{makeBatch(3, 10), 0, 3};
  std::weak_ptr<const FrameBatch> watch = span.batch;
  REQUIRE(handout.add(span, 0) == 3);
  const streamrelay_frame* frames = handout.frames();
  streamrelay_retained* first = handout.retain(&frames[0]);
  streamrelay_retained* last = handout.retain(&frames[2]);
  REQUIRE(first != nullptr);
  CHECK(last == first);  // one reference per batch per call
  const streamrelay_frame outside{};
  CHECK(handout.retain(&outside) == nullptr);
  const std::string kept(reinterpret_cast<const char*>(frames[2].data), frames[2].size);
  const std::uint8_t* bytes = frames[2].data;
  handout.endCall();
  span.batch.reset();
  REQUIRE_FALSE(watch.expired());  // retained: still alive after the call
  CHECK(std::string(reinterpret_cast<const char*>(bytes), kept.size()) == "frame 12");
  CHECK(handout.retainedBatches() == 1);
  FrameHandout::release(first);
  CHECK_FALSE(watch.expired());
  FrameHandout::release(last);
  CHECK(watch.expired());
  CHECK(handout.retainedBatches() == 0);
}

TEST_CASE("the frames handed to a plugin carry their batch's keys, a frame without one has key NULL", "[abi]") {
  FrameBatchBuilder builder;
  builder.add("a", 1);
  builder.add("b", 1, "md.B");
  builder.add("c", 1);
  auto keyed = builder.seal(0);
  keyed->assignFirstSeq(1);
  FrameHandout handout;
  FrameSpan span{FrameBatchPtr(std::move(keyed)), 0, 3};
  FrameSpan plain{makeBatch(1, 1), 0, 1};
  REQUIRE(handout.add(span, 0) == 3);
  REQUIRE(handout.add(plain, 0) == 1);
  const streamrelay_frame* frames = handout.frames();
  CHECK(frames[0].struct_size == sizeof(streamrelay_frame));
  CHECK(frames[0].key == nullptr);
  CHECK(frames[0].key_size == 0);
  REQUIRE(frames[1].key != nullptr);
  CHECK(std::string(frames[1].key, frames[1].key_size) == "md.B");
  CHECK(frames[2].key == nullptr);
  CHECK(frames[3].key == nullptr);
  handout.endCall();
}

TEST_CASE("with trackOrder, the lowest frame still retained is known, whatever order frames are released in",
          "[abi][process]") {
  FrameHandout handout;
  handout.trackOrder();
  CHECK(handout.lowestRetained() == UINT64_MAX);
  FrameSpan span{makeBatch(4, 1), 0, 4};
  handout.startCall(100);  // 100 frames were handed over before this call
  REQUIRE(handout.add(span, 0) == 4);
  streamrelay_retained* second = handout.retain(&handout.frames()[1]);
  streamrelay_retained* fourth = handout.retain(&handout.frames()[3]);
  REQUIRE(second != nullptr);
  CHECK(fourth != second);  // one entry per retain: each frame is released on its own
  handout.endCall();
  CHECK(handout.lowestRetained() == 101);
  FrameSpan next{makeBatch(2, 5), 0, 2};
  handout.startCall(104);
  REQUIRE(handout.add(next, 0) == 2);
  streamrelay_retained* fifth = handout.retain(&handout.frames()[0]);
  handout.endCall();
  FrameHandout::release(second);  // a sink that committed the older frames
  CHECK(handout.lowestRetained() == 103);
  FrameHandout::release(fourth);
  CHECK(handout.lowestRetained() == 104);
  FrameHandout::release(fifth);
  CHECK(handout.lowestRetained() == UINT64_MAX);
  CHECK(handout.retainedBatches() == 0);
}

namespace {
// A plugin whose on_frames fails on the frames whose seq is in `failOn`.
struct Script {
  std::vector<std::uint64_t> failOn;
  bool failWhole = false;
  std::vector<std::uint64_t> seen;
  int calls = 0;
} script;

int scriptedFrames(void*, const streamrelay_frame* frames, std::size_t count, std::size_t* handled, char* error,
                   std::size_t size) {
  ++script.calls;
  if (script.failWhole) {
    std::snprintf(error, size, "no");
    return STREAMRELAY_ERROR;  // *handled left at count
  }
  for (std::size_t i = 0; i < count; ++i) {
    for (std::uint64_t bad : script.failOn)
      if (frames[i].seq == bad) {
        *handled = i;
        std::snprintf(error, size, "bad %llu", static_cast<unsigned long long>(bad));
        return STREAMRELAY_ERROR;
      }
    script.seen.push_back(frames[i].seq);
  }
  return STREAMRELAY_OK;
}
void* scriptedCreate(const streamrelay_host_api*, const char*, char*, std::size_t) { return &script; }
void scriptedDestroy(void*) {}
int unusedFrame(void*, const streamrelay_frame*, char*, std::size_t) { return STREAMRELAY_ERROR; }
}  // namespace

TEST_CASE("on_frames: the host goes on after the frame that failed, each failure counted once", "[abi]") {
  script = Script{};
  std::vector<std::pair<std::string, int>> failures;
  PluginCalls calls(PluginCallbacks{&scriptedCreate, &unusedFrame, &scriptedDestroy, nullptr, &scriptedFrames},
                    [&](const char* call, const char* message, int inARow) {
                      failures.emplace_back(std::string(call) + ": " + message, inARow);
                    });
  std::string error;
  REQUIRE(calls.create(nullptr, "{}", error));
  FrameHandout handout;
  FrameSpan span{makeBatch(6, 1), 0, 6};
  handout.add(span, 0);
  std::atomic<bool> disabled{false};
  SECTION("two frames fail: every other frame is handled once, in order") {
    script.failOn = {2, 3};
    CHECK(calls.deliver(handout.frames(), handout.size(), disabled) == 4);
    CHECK(script.seen == std::vector<std::uint64_t>{1, 4, 5, 6});
    CHECK(script.calls == 3);
    // 2 fails after 1 was handled; 3 fails next, a second in a row.
    CHECK(failures == std::vector<std::pair<std::string, int>>{{"on_frames: bad 2", 1}, {"on_frames: bad 3", 2}});
  }
  SECTION("a call that fails as a whole is one failure; nothing is handed again") {
    script.failWhole = true;
    CHECK(calls.deliver(handout.frames(), handout.size(), disabled) == 0);
    CHECK(script.calls == 1);
    CHECK(failures.size() == 1);
  }
  SECTION("once disabled, the rest of the frames are not handed over") {
    script.failOn = {2};
    disabled = true;
    CHECK(calls.deliver(handout.frames(), handout.size(), disabled) == 0);
    CHECK(script.calls == 0);
  }
  calls.destroy();
}
