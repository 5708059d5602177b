// SPDX-License-Identifier: Apache-2.0
#pragma once
// UpstreamSource: where frames come from (tcp, listen, stdin, generator). Each
// source runs one thread of its own — the only publisher on the bus.
//
// Thread safe: start(), requestStop(), waitStopped(), stop(), counters().

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <cstdint>
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

// One address of a source that can fail over (tcp with `endpoints:`).
struct EndpointStatus {
  std::string address;
  std::uint64_t failures = 0;  // connects, handshakes or greetings that failed, and connections lost
};

struct SourceCounters {
  std::atomic<bool> connected{false};
  std::atomic<std::uint64_t> connects{0};
  std::atomic<std::uint64_t> protocolErrors{0};
  std::atomic<std::uint64_t> bytesRead{0};
  std::atomic<std::uint64_t> refusedPublishers{0};  // listen: allow list or max_publishers

  // Connecting sources: the endpoint connected now ("" while none) and every
  // endpoint's failures. Written by the source thread, read by /stats.
  mutable std::mutex endpointsMutex;
  std::string liveEndpoint;
  std::vector<EndpointStatus> endpoints;
};

class UpstreamSource {
 public:
  static std::unique_ptr<UpstreamSource> create(const SourceConfig& config, Bus& bus);

  virtual ~UpstreamSource();
  UpstreamSource(const UpstreamSource&) = delete;
  UpstreamSource& operator=(const UpstreamSource&) = delete;

  // Binds what must be bound (listen); throws std::runtime_error if it cannot.
  virtual void prepare() {}
  void start();
  // Asks the thread to stop; it may still be blocked in a push to a full
  // `block` queue until that consumer makes room.
  void requestStop();
  // True once the thread has ended (or never started), waiting until the deadline.
  bool waitStopped(std::chrono::steady_clock::time_point deadline);
  // Stops reading and joins the thread. Idempotent.
  void stop();
  const SourceCounters& counters() const { return counters_; }
  // How log lines name it: "upstream" for the `upstream:` shorthand, else "source NAME".
  std::string label() const { return config_.name == "upstream" ? "upstream" : "source " + config_.name; }

 protected:
  UpstreamSource(const SourceConfig& config, Bus& bus) : config_(config), bus_(bus) {}
  // The thread's body; returns when stop_ is requested (or the source ends).
  virtual void run() = 0;

  const SourceConfig config_;
  Bus& bus_;
  StopSignal stop_;
  SourceCounters counters_;

 private:
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
