// SPDX-License-Identifier: Apache-2.0
#pragma once
// PluginSource: a source whose type a plugin library provides
// (sdk/include/streamrelay/source_plugin.h, plugin_source_types.hpp): the
// relay's side of that ABI. prepare() loads the library (a private copy, as
// the plugin host loads one) and creates the plugin's source with the
// source's config; the source thread then calls its pump again and again,
// and publishes what each call handed over in one batch per run of frames:
//
// - publish: a frame numbered here (Bus::publish);
// - publish_mirrored: a frame that keeps its writer's (epoch, seq)
//   (Bus::publishAt), as a redis source does with a redis sink's entries: a
//   seq the stream has had is dropped, a jump is a gap (counted, logged), a
//   new epoch is counted. With a reorder window (set_reorder_window) a frame
//   ahead of the next seq is held until the ones between come (a writer's
//   frames stored out of order) or the window ends (then they are a gap);
//   meanwhile the batches keep the provider position before the first held.
//   Held frames not released when the source stops are not published: the
//   stream keeps the position before the first of them, and a restart (a
//   reload, or the relay on its log) reads them again.
//
// What a remote peer writes in the marks is bounded: a seq more than
// kMaxJump ahead is taken only when the writer's next seq follows it (one
// forged or broken mark cannot make every later frame a repeat; the first
// frame after a real jump that large waits for the next); a new epoch is
// taken at most kEpochBurst times, then once a minute (an epoch that flips
// with every message cannot grow the bus's epochs without bound). The others
// are dropped, counted (refused in /stats) and logged. Frames dropped as had
// already are counted too (repeats).
//
// Each frame may carry the provider's position after it (a JetStream
// sequence): the batch keeps the last, a stream's log keeps it with its
// frames, and a relay restarted on its log hands it back to the plugin
// (resumeProviderAfter, provider_position), which goes on after it.
//
// The source thread runs pump, the publishing and destroy; set_connected,
// add_counter, log and protocol_error may come from the plugin's threads.

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "mirror_position.hpp"
#include "plugin_source_types.hpp"
#include "streamrelay/source_plugin.h"
#include "upstream_source.hpp"

namespace streamrelay {

class PluginLibrary;

class PluginSource : public UpstreamSource {
 public:
  PluginSource(const SourceConfig& config, Bus& bus, const PluginSourceType& type);
  ~PluginSource() override;

  void resumeProviderAfter(const std::string& position) override;
  // Loads the library and creates the plugin's source; throws
  // std::runtime_error with the reason (the relay does not start).
  void prepare() override;

 protected:
  void run() override;

 private:
  // Loads and creates; false with `why` if it cannot.
  bool open(std::string& why);
  void close();
  int publish(const uint8_t* data, std::size_t size, std::string_view key, std::string_view position);
  int publishMirrored(std::uint64_t epoch, std::uint64_t seq, const uint8_t* data, std::size_t size,
                      std::string_view key, std::string_view position);
  void take(std::uint64_t epoch, std::uint64_t seq, const char* data, std::size_t size, std::string_view key);
  void advancePosition(std::string_view position);
  void releaseHeld();
  void dropHeld();
  bool newEpochAllowed();
  void refuse(std::uint64_t epoch, std::uint64_t seq, const char* why);
  void releaseHeldIfDue();
  void flush();

  static void apiLog(void* host, int level, const char* message);
  static int apiStopping(void* host);
  static int apiPublish(void* host, const uint8_t* data, size_t size, const char* key, size_t keySize,
                        const char* position, size_t positionSize);
  static int apiPublishMirrored(void* host, uint64_t epoch, uint64_t seq, const uint8_t* data, size_t size,
                                const char* key, size_t keySize, const char* position, size_t positionSize);
  static void apiSetConnected(void* host, int connected);
  static size_t apiProviderPosition(void* host, char* buffer, size_t capacity);
  static void apiAddCounter(void* host, const char* name, uint64_t delta);
  static void apiProtocolError(void* host);
  static void apiSetReorderWindow(void* host, uint32_t milliseconds);
  static void apiRefuseMark(void* host, uint64_t epoch, uint64_t seq, const char* why);

  const PluginSourceType type_;
  std::shared_ptr<PluginLibrary> library_;
  const streamrelay_source_plugin* descriptor_ = nullptr;
  streamrelay_source_host_api api_{};
  void* self_ = nullptr;
  std::string resumeAfter_;  // the position the stream's log kept ("" none)

  // The source thread's: the frames of the pump call under way.
  FrameBatchBuilder builder_;
  bool marked_ = false;          // the builder's frames carry the writer's (epoch, seq)
  std::uint64_t batchEpoch_ = 0;
  std::uint64_t batchFirst_ = 0; // the writer's seq of the builder's first frame (marked)
  std::int64_t batchTime_ = 0;
  std::string position_;         // the provider's position the next batch keeps
  std::string latestPosition_;   // the provider's position after the last frame handed over
  MirrorPosition mirror_;        // the (epoch, seq) of the stream's last frame
  // The reorder window (set_reorder_window): the writer's frames ahead of the
  // next seq, held until the ones between come or the window ends.
  struct Held {
    std::string data;
    std::string key;
  };
  std::atomic<std::uint32_t> reorderWindowMs_{0};
  std::map<std::uint64_t, Held> held_;
  std::size_t heldBytes_ = 0;
  std::chrono::steady_clock::time_point holdSince_;  // when the first of them was held
  // A frame far ahead of the position (kMaxJump), waiting for the writer's next seq to confirm it.
  struct Suspect {
    std::uint64_t epoch = 0, seq = 0;
    std::string data, key, position;
  };
  std::unique_ptr<Suspect> suspect_;
  double epochTokens_;  // new epochs allowed now (kEpochBurst at most, one more a minute)
  std::chrono::steady_clock::time_point epochTokensAt_;
};

}  // namespace streamrelay
