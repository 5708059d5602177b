// SPDX-License-Identifier: Apache-2.0
#pragma once
// UpstreamSource: where frames come from (tcp, http, websocket, listen, stdin,
// generator). Each source runs one thread of its own — the only publisher on
// the bus.
//
// Thread safe: start(), requestStop(), waitStopped(), stop(), counters().

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bus.hpp"
#include "config.hpp"
#include "framing.hpp"
#include "stop_signal.hpp"

namespace streamrelay {

// Bytes one read takes from an upstream socket: a batch holds at most this
// much plus the frame in progress.
constexpr int kSourceReadBytes = 256 * 1024;

// One address of a connecting source (tcp, http, websocket).
struct EndpointStatus {
  std::string address;
  // Tries that failed (connect, TLS, the HTTP or WebSocket handshake, the
  // greeting, a refused redirect) and connections that ended unplanned (an
  // error, idle_timeout_ms, a protocol error, a drop without a close). A
  // planned close is not one (docs/sources.md "Failover between endpoints").
  std::uint64_t failures = 0;
};

// What /stats shows of a source; each counter has one meaning for every type.
struct SourceCounters {
  std::atomic<bool> connected{false};             // a provider connection (or publisher) is up
  std::atomic<std::uint64_t> connects{0};         // connections established (handshakes done), publishers accepted
  std::atomic<std::uint64_t> protocolErrors{0};   // connections dropped because the bytes broke the framing or protocol
  std::atomic<std::uint64_t> bytesRead{0};        // bytes taken from the provider's stream (after TLS and HTTP)
  std::atomic<std::uint64_t> refusedPublishers{0};  // listen: allow list or max_publishers

  // A streamrelay source (and a redis source's marked entries): where it stands in its upstream's numbering (the
  // last frame published), what it never got, and how late frames arrive.
  std::atomic<std::uint64_t> upstreamEpoch{0};
  std::atomic<std::uint64_t> upstreamSeq{0};
  std::atomic<std::uint64_t> gaps{0};          // jumps in seq: frames the upstream could not give
  std::atomic<std::uint64_t> framesMissed{0};  // the frames those jumps skipped
  std::atomic<std::uint64_t> newEpochs{0};     // times the upstream's stream started a new epoch
  std::atomic<std::int64_t> lagNs{0};          // at the newest frame: its arrival here minus its receive time upstream
  // A plugin's source: marked frames dropped as had already, and ones refused
  // as implausible (a seq far ahead not followed by the next, an epoch change
  // past the allowance): see plugin_source.hpp.
  std::atomic<std::uint64_t> repeats{0};
  std::atomic<std::uint64_t> refused{0};

  // A source with a `lease` (leased_source.hpp): its key ("" without a
  // lease, set before the source starts), whether this relay holds it and
  // since when, and how often it was taken and lost (not released).
  std::string leaseKey;
  std::atomic<bool> leaseHolding{false};
  std::atomic<std::int64_t> leaseSinceUnixMs{0};  // 0 while not holding
  std::atomic<std::uint64_t> leaseAcquisitions{0};
  std::atomic<std::uint64_t> leaseLosses{0};

  // Connecting sources: the endpoint connected now ("" while none) and every
  // endpoint's failures. Written by the source thread, read by /stats.
  mutable std::mutex endpointsMutex;
  std::string liveEndpoint;
  std::string providerPosition;  // a redis source: the id of the last entry read ("" none yet); a plugin's source: its position
  std::map<std::string, std::uint64_t> pluginCounters;  // a plugin's source: its add_counter figures
  std::vector<EndpointStatus> endpoints;
};

// Why a source stops: what a provider is told as its connection is closed
// (a WebSocket close 1001 "going away" at shutdown, 1000 on a restart).
enum class StopReason { Shutdown, Restart };

class UpstreamSource {
 public:
  static std::unique_ptr<UpstreamSource> create(const SourceConfig& config, Bus& bus);

  virtual ~UpstreamSource();
  UpstreamSource(const UpstreamSource&) = delete;
  UpstreamSource& operator=(const UpstreamSource&) = delete;

  // Binds what must be bound (listen); throws std::runtime_error if it cannot.
  virtual void prepare() {}
  // Before start(): resume the provider after `position`, the one its
  // stream's log kept with its last frame (an SSE source's last event id).
  // A source whose provider has no such position ignores it.
  virtual void resumeProviderAfter(const std::string& position) { (void)position; }
  void start();
  // Asks the thread to stop; it may still be blocked in a push to a full
  // `block` queue until that consumer makes room. A provider connection is
  // closed cleanly by `closeBy` at the latest (and within a second). The
  // first request's reason and deadline count.
  void requestStop(StopReason reason = StopReason::Shutdown,
                   std::chrono::steady_clock::time_point closeBy = std::chrono::steady_clock::time_point::max());
  // True once the thread has ended (or never started), waiting until the deadline.
  bool waitStopped(std::chrono::steady_clock::time_point deadline);
  // Stops reading and joins the thread. Idempotent.
  void stop(StopReason reason = StopReason::Shutdown);
  const SourceCounters& counters() const { return counters_; }
  // How log lines name it: "upstream" for the `upstream:` shorthand, else "source NAME".
  std::string label() const { return config_.name == "upstream" ? "upstream" : "source " + config_.name; }

 protected:
  UpstreamSource(const SourceConfig& config, Bus& bus)
      : config_(config), bus_(bus), counters_(config.sharedCounters ? *config.sharedCounters : ownCounters_) {}
  // The thread's body; returns when stop_ is requested (or the source ends).
  virtual void run() = 0;

  // Why and by when the thread was asked to stop (valid once stop_ is requested).
  StopReason stopReason() const { return static_cast<StopReason>(stopReason_.load()); }
  std::chrono::steady_clock::time_point closeBy() const {
    return std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(closeBy_.load()));
  }

  const SourceConfig config_;
  Bus& bus_;
  StopSignal stop_;

 private:
  SourceCounters ownCounters_;

 protected:
  // Its own, or those of the source that runs it (a leased source's provider and follower).
  SourceCounters& counters_;

 private:
  std::atomic<bool> stopRequested_{false};
  std::atomic<int> stopReason_{0};
  std::atomic<std::chrono::steady_clock::rep> closeBy_{0};
  std::thread thread_;
  std::mutex finishedMutex_;
  std::condition_variable finishedChanged_;
  bool finished_ = true;
};

// FrameReader: reads one byte stream, decodes it and publishes whole frames.
// Owned by one source thread.
class FrameReader {
 public:
  enum class Result { Frames, WouldBlock, Eof, Error, ProtocolError };

  FrameReader(const FramingSpec& framing, Bus& bus, SourceCounters& counters);
  // With a decoder of the source's own (a WebSocket source's messages).
  FrameReader(std::unique_ptr<FrameDecoder> decoder, Bus& bus, SourceCounters& counters);
  // One read from `fd` (blocking or not); publishes the frames it completes.
  Result readOnce(int fd);
  // Decodes bytes read elsewhere (through TLS, say): Frames or ProtocolError.
  Result decode(const char* data, std::size_t size);
  // A buffer of one read's size to read into before decode().
  std::vector<char>& buffer() { return buffer_; }
  // Forgets a partial frame (the connection is gone).
  void reset();
  // Where the stream can resume (SSE: the last event id), "" if nowhere.
  std::string lastEventId() const { return decoder_->lastEventId(); }
  const ProtocolError& error() const { return decoder_->error(); }
  FrameDecoder& decoder() { return *decoder_; }
  int lastErrno() const { return errno_; }

 private:
  std::unique_ptr<FrameDecoder> decoder_;
  FrameBatchBuilder builder_;
  Bus& bus_;
  SourceCounters& counters_;
  std::vector<char> buffer_;
  int errno_ = 0;
};

}  // namespace streamrelay
