// SPDX-License-Identifier: Apache-2.0
#pragma once
// SubscriberSession: one connected subscriber — its socket, its queue and what
// is being written to it.
//
// Created by its listener on a TCPServer pool thread, then owned and driven by
// exactly one SubscriberWriter thread: every method but the constructor and the
// accessors marked thread safe is called only from that writer thread, which
// claims the session when it takes it (checked: thread_owner.hpp). Whoever
// drops the last reference may destroy it.

#include <sys/uio.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "framing.hpp"
#include "histogram.hpp"
#include "streamrelay_protocol.hpp"
#include "subscription_queue.hpp"
#include "thread_owner.hpp"
#include "tls_server.hpp"

namespace streamrelay {

// Scratch space for building one write; owned by a writer thread, shared by
// all of its sessions.
struct WriteScratch {
  static constexpr int kMaxIov = 1024;  // IOV_MAX on Linux
  iovec iov[kMaxIov];
  char headers[kMaxIov][protocol::kFrameHeaderBytes];
  // TLS: small pieces gathered into one full record (16 KiB) before they are encrypted.
  static constexpr std::size_t kTlsChunk = 16 * 1024;
  char tlsPlain[kTlsChunk];
};

class SubscriberSession;

// What happens before the first frame, for a listener with TLS or the
// `streamrelay` protocol (a plain raw listener has no set-up: its session
// streams at once).
struct SessionSetup {
  std::shared_ptr<const TlsServerContext> tls;  // null: plain TCP
  std::chrono::milliseconds handshakeTimeout{5000};
  bool hello = false;                           // the streamrelay protocol: read a hello line
  std::chrono::milliseconds helloTimeout{5000};
  // Called on the writer thread once the handshake is done and (with
  // `hello`) the hello line is read: subscribes the queue and returns the
  // bytes to send first (the answer). Setting `refused` closes the session
  // with that reason once they are sent. Never throws: a client whose hello
  // cannot be admitted is refused.
  std::function<std::string(SubscriberSession&, const std::string* helloLine, CloseReason& refused)> admit;
  // Once streaming, a session that was sent nothing for heartbeatInterval
  // (0: never) is sent `heartbeat`, what a heartbeat is in the listener's
  // protocol (bytes with static storage, the same for every session).
  std::chrono::milliseconds heartbeatInterval{0};
  std::string_view heartbeat;
  bool needed() const { return tls || hello; }
};

class SubscriberSession {
 public:
  using ClosedCallback = std::function<void(SubscriberSession&, CloseReason)>;

  // `writeDeadline`: how long the socket may accept no byte while frames wait
  // before the writer closes it as a slow consumer (0: no deadline).
  // Takes ownership of `fd`, a connected non-blocking socket.
  SubscriberSession(std::uint64_t id, int fd, std::string peer,
                    const FramingSpec& framing, QueuePtr queue, ClosedCallback onClosed,
                    Histogram& writeLatency, std::chrono::milliseconds writeDeadline,
                    SessionSetup setup = {});
  SubscriberSession(const SubscriberSession&) = delete;
  SubscriberSession& operator=(const SubscriberSession&) = delete;
  ~SubscriberSession();

  // The calling thread (its writer) drives the session from now on.
  void claim() { owner_.claim(); }

  enum class FlushResult { Idle, WouldBlock, MoreWork, Closed };
  // Writes queued frames until the queue is empty, the socket is full, or a
  // fairness budget is spent (MoreWork). Closed: the session must be closed
  // with closeReason().
  FlushResult flush(WriteScratch& scratch);
  // Reads and discards what the peer sends. False when the peer has shut its
  // write side (the seed client does so at once; it may still be reading).
  bool drainInput();
  // Closes the socket and reports the reason to the listener. Idempotent.
  void close(CloseReason reason);

  // Set-up (TLS handshake, hello), driven by the writer on socket events.
  enum class SetupResult { Waiting, Ready, Closed };
  SetupResult continueSetup();
  bool settingUp() const { return phase_ != Phase::Streaming; }
  // While setting up: the socket must become writable before it can go on.
  bool setupWantsWritable() const { return setupWantsWritable_; }
  // True once the handshake or hello is late; the session then closes with
  // setupTimeoutReason().
  bool pastSetupDeadline(std::chrono::steady_clock::time_point now) const {
    return settingUp() && now >= setupDeadline_;
  }
  CloseReason setupTimeoutReason() const {
    return phase_ == Phase::Handshake ? CloseReason::HandshakeTimeout : CloseReason::HelloTimeout;
  }
  // Why set-up failed (one line, no secrets), or what it agreed ("TLSv1.3, ...").
  const std::string& setupDetail() const { return setupDetail_; }
  // The streamrelay protocol: every frame gets a header naming its stream by
  // these ids (set by SessionSetup::admit).
  void useFrameHeaders(std::vector<std::pair<const StreamId*, std::uint16_t>> streamIds);
  bool frameHeaders() const { return !streamIds_.empty(); }
  void noteSetupDetail(std::string detail) {
    owner_.assertOwned();
    setupDetail_ = std::move(detail);
  }

  bool idle() const { return outgoing_.empty() && queue_->queuedFrames() == 0; }

  // Heartbeats (SessionSetup::heartbeat). When one is due is the writer's
  // business: one is due heartbeatInterval() after lastWriteNs(), the
  // steady-clock time (ns) the session last finished writing something
  // (frames, the answer, a heartbeat), or was created.
  std::chrono::milliseconds heartbeatInterval() const { return setup_.heartbeatInterval; }
  std::int64_t lastWriteNs() const { return lastWriteNs_; }
  // Queues a heartbeat, to go out before any later frame, if the session
  // streams and is between frames with nothing waiting (so it never lands
  // inside a frame); false otherwise (a session with frames on their way
  // needs none).
  bool queueHeartbeat();
  // True if the socket has accepted no byte for longer than the write
  // deadline while frames wait: the writer then closes it (SlowConsumer).
  bool pastWriteDeadline(std::chrono::steady_clock::time_point now) const {
    return writeDeadline_.count() > 0 && stalledSince_ && now - *stalledSince_ >= writeDeadline_;
  }
  bool stalled() const { return stalledSince_.has_value(); }
  std::chrono::milliseconds writeDeadline() const { return writeDeadline_; }
  // Set when the writer closed it for pastWriteDeadline().
  void markWriteDeadlineExceeded() {
    owner_.assertOwned();
    writeDeadlineExceeded_ = true;
  }
  bool writeDeadlineExceeded() const { return writeDeadlineExceeded_; }
  std::uint64_t id() const { return id_; }
  int fd() const { return fd_; }
  const std::string& peer() const { return peer_; }
  CloseReason closeReason() const { return closeReason_; }
  const QueuePtr& queue() const { return queue_; }
  // Its writer's epoll interest (writer thread only): the peer has not shut
  // its side yet; the socket was full and EPOLLOUT is watched.
  bool inputOpen = true;
  bool watchingWritable = false;

  // Thread safe.
  std::uint64_t framesSent() const { return queue_->counters().delivered.load(std::memory_order_relaxed); }
  std::uint64_t framesSkipped() const { return framesSkipped_.load(std::memory_order_relaxed); }

 private:
  enum class Phase { Handshake, Hello, Streaming };
  static constexpr long kWouldBlock = -2;
  static constexpr long kFailed = -1;
  // The socket, through TLS if the listener has it: bytes, 0 (peer closed),
  // kWouldBlock or kFailed (closeReason_ set).
  long send(const iovec* iov, int count, WriteScratch& scratch);
  long receive(char* data, std::size_t size);
  SetupResult readHello();
  SetupResult admitted(const std::string* helloLine);
  bool flushControl(WriteScratch& scratch, FlushResult& result);

  bool wireForm() const { return !frameHeaders() && encoder_.isWireForm(); }
  int buildIov(WriteScratch& scratch) const;
  int buildHeaderedIov(WriteScratch& scratch) const;
  void advance(std::size_t written);
  std::size_t encodedBytes(const FrameBatch& batch, std::size_t i) const;
  std::uint16_t streamIdOf(const FrameBatch& batch) const;

  ThreadOwner owner_;
  const std::uint64_t id_;
  const int fd_;
  const std::string peer_;
  FrameEncoder encoder_;
  QueuePtr queue_;
  ClosedCallback onClosed_;
  Histogram& writeLatency_;  // receive-to-write time of every frame written, all sessions
  const std::chrono::milliseconds writeDeadline_;
  std::optional<std::chrono::steady_clock::time_point> stalledSince_;  // first EAGAIN since the last byte accepted
  std::int64_t lastWriteNs_;  // see lastWriteNs()
  bool writeDeadlineExceeded_ = false;

  std::deque<FrameSpan> outgoing_;  // taken from the queue, not yet fully written
  std::size_t skipBytes_ = 0;       // bytes of outgoing_.front()'s first frame already written
  CloseReason closeReason_ = CloseReason::None;
  std::atomic<std::uint64_t> framesSkipped_{0};  // frames this listener's framing cannot carry

  // Set-up and the streamrelay protocol.
  SessionSetup setup_;
  std::unique_ptr<TlsServerStream> tls_;
  Phase phase_ = Phase::Streaming;
  std::chrono::steady_clock::time_point setupDeadline_;
  bool setupWantsWritable_ = false;
  std::string setupDetail_;
  std::string hello_;                 // the hello line read so far (bounded by kMaxHelloBytes)
  std::string control_;               // the answer or a heartbeat, sent before any frame after it
  std::size_t controlSent_ = 0;
  CloseReason closeAfterControl_ = CloseReason::None;
  std::vector<std::pair<const StreamId*, std::uint16_t>> streamIds_;  // non-empty: frames carry the header
};

}  // namespace streamrelay
