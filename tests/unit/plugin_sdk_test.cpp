// SPDX-License-Identifier: Apache-2.0
// The C++ SDK helper (plugin.hpp) against host API tables as a 1.0 and a 1.1
// host fill them in. The host side is the C ABI itself, so a table of plain
// functions is the real boundary here.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>

#include "streamrelay/plugin.hpp"

namespace {

struct FakeHost {
  std::string stats = "{\"a\":1}";
  int statsCalls = 0;
  double gauge = -1;
};

std::size_t growingStats(void* host, char* buffer, std::size_t capacity) {
  auto* h = static_cast<FakeHost*>(host);
  // Every call the document has grown: as /stats does while subscribers join.
  h->stats.insert(1, "\"pad\":\"" + std::string(10000, 'x') + "\",");
  ++h->statsCalls;
  if (buffer && capacity > h->stats.size()) std::memcpy(buffer, h->stats.c_str(), h->stats.size() + 1);
  return h->stats.size();
}

void setGauge(void* host, const char*, double value) { static_cast<FakeHost*>(host)->gauge = value; }
int supportsAll(void*, std::size_t) { return 1; }

}  // namespace

// Defect: statsJson() asked for the size, asked again, and returned NUL bytes
// when the document grew in between (19% of /stats replies under load).
TEST_CASE("statsJson returns the whole document even when it grows between calls", "[sdk]") {
  FakeHost fake;
  streamrelay_host_api api{};
  api.struct_size = sizeof api;
  api.host = &fake;
  api.stats_json = &growingStats;
  streamrelay::Host host(&api);
  std::string json = host.statsJson();
  CHECK(json.find('\0') == std::string::npos);
  CHECK(json == fake.stats);
  CHECK(json.back() == '}');
  CHECK(fake.statsCalls >= 2);
}

TEST_CASE("calls a 1.0 host lacks are checked before they are made", "[sdk]") {
  FakeHost fake;
  streamrelay_host_api api{};
  api.host = &fake;
  api.set_gauge = &setGauge;  // present in memory, but not covered by a 1.0 struct_size
  api.supports = &supportsAll;
  streamrelay::Host host(&api);
  SECTION("a 1.0 host") {
    api.struct_size = offsetof(streamrelay_host_api, set_gauge);
    CHECK_FALSE(host.supports(offsetof(streamrelay_host_api, set_gauge)));
    host.setGauge("g", 5);
    CHECK(fake.gauge == -1);
  }
  SECTION("a 1.1 host") {
    api.struct_size = sizeof api;
    CHECK(host.supports(offsetof(streamrelay_host_api, set_gauge)));
    host.setGauge("g", 5);
    CHECK(fake.gauge == 5);
  }
}

TEST_CASE("Frame::key is the frame's key where the host's struct_size covers it, else empty", "[sdk]") {
  const char payload[] = "BTC";
  streamrelay_frame raw{};
  raw.data = reinterpret_cast<const std::uint8_t*>(payload);
  raw.size = 3;
  raw.stream = "keyer";
  raw.key = "md.BTC-USD!";  // 10 bytes of it
  raw.key_size = 10;
  SECTION("a 1.2 host") {
    raw.struct_size = sizeof raw;
    CHECK(streamrelay::detail::toFrame(raw).key == "md.BTC-USD");
  }
  SECTION("a 1.1 host: the struct ends at epoch") {
    raw.struct_size = offsetof(streamrelay_frame, epoch) + sizeof raw.epoch;
    const streamrelay::Frame frame = streamrelay::detail::toFrame(raw);
    CHECK(frame.key.empty());
    CHECK(frame.stream == "keyer");
  }
  SECTION("a frame without a key") {
    raw.struct_size = sizeof raw;
    raw.key = nullptr;
    raw.key_size = 0;
    CHECK(streamrelay::detail::toFrame(raw).key.empty());
  }
}

// Defect: Frames stepped by the plugin's sizeof(streamrelay_frame), so a
// plugin built with the 1.2 key fields read garbage (and crashed) on a relay
// whose frames end at epoch.
TEST_CASE("Frames steps through on_frames' array by the host's struct_size", "[sdk]") {
  constexpr std::size_t kShort = offsetof(streamrelay_frame, key);  // a host whose frames end at epoch
  alignas(streamrelay_frame) unsigned char array[3 * sizeof(streamrelay_frame)] = {};
  for (std::uint64_t i = 0; i < 3; ++i) {
    streamrelay_frame f{};
    f.struct_size = static_cast<std::uint32_t>(kShort);
    f.seq = 10 + i;
    std::memcpy(array + i * kShort, &f, kShort);
  }
  const streamrelay::Frames frames(reinterpret_cast<const streamrelay_frame*>(array), 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(frames[i].seq == 10 + i);
    CHECK(frames[i].key.empty());
  }
}
