// SPDX-License-Identifier: Apache-2.0
#pragma once
// SubscriberSession: one connected subscriber — its transport (plain or
// TLS), its protocol conversation, its queue and what is being written to it.
//
// What it writes is of two kinds, never mixed inside one another: frames,
// in the listener protocol's encoding (FrameCodec: shared by the listener's
// subscribers, written from the batches without a copy per subscriber), and
// control bytes of its own (the answer to a hello, a heartbeat, a WebSocket
// pong or close), which go out only between two frames.
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

#include "histogram.hpp"
#include "key_rate_limiter.hpp"
#include "listener_protocol.hpp"
#include "subscriber_transport.hpp"
#include "subscription_queue.hpp"
#include "thread_owner.hpp"

namespace streamrelay {

class SubscriberSession;

// What happens before the first frame, for a listener with TLS or a
// protocol with a set-up (a raw plain-TCP session streams at once: its
// listener admits it when it connects).
struct SessionSetup {
  std::shared_ptr<const TlsServerContext> tls;  // null: plain TCP
  std::chrono::milliseconds handshakeTimeout{5000};
  std::chrono::milliseconds helloTimeout{5000};  // the protocol's set-up (a hello, an HTTP request)
  // Called on the writer thread once the handshake is done and the
  // protocol's set-up gave a hello (null for a protocol without one):
  // subscribes the queue, or says why not. Never throws.
  std::function<AdmissionResult(SubscriberSession&, const protocol::Hello* hello)> admit;
  // Once streaming, a session that was sent nothing for heartbeatInterval
  // (0: never) is sent the protocol's heartbeat (if it has one).
  std::chrono::milliseconds heartbeatInterval{0};
};

class SubscriberSession {
 public:
  using ClosedCallback = std::function<void(SubscriberSession&, CloseReason)>;

  // `writeDeadline`: how long the socket may accept no byte while frames wait
  // before the writer closes it as a slow consumer (0: no deadline).
  // Takes ownership of `fd`, a connected non-blocking socket.
  SubscriberSession(std::uint64_t id, int fd, std::string peer, std::shared_ptr<const ListenerProtocol> protocol,
                    std::unique_ptr<Conversation> conversation, QueuePtr queue, ClosedCallback onClosed,
                    Histogram& writeLatency, std::chrono::milliseconds writeDeadline, SessionSetup setup = {});
  SubscriberSession(const SubscriberSession&) = delete;
  SubscriberSession& operator=(const SubscriberSession&) = delete;
  ~SubscriberSession();

  // The calling thread (its writer) drives the session from now on.
  void claim() { owner_.claim(); }

  enum class FlushResult { Idle, WouldBlock, MoreWork, Closed };
  // Writes control bytes and queued frames until the queue is empty, the
  // socket is full, or a fairness budget is spent (MoreWork). Closed: the
  // session must be closed with closeReason().
  FlushResult flush(WriteScratch& scratch);
  // Reads what the peer sends and hands it to the protocol (which may
  // answer it: hasControl()). False when the peer has shut its write side
  // (the seed client does so at once; it may still be reading).
  bool drainInput();
  // The last read (drainInput, or the set-up's) stopped at its per-wake
  // cap or at an admission, not at an empty socket: bytes may still wait
  // there, and the writer's edge-triggered epoll will not report them again.
  // The writer then reads on its next round.
  bool unreadInput() const { return unreadInput_; }
  // Closes the socket and reports the reason to the listener. Idempotent.
  void close(CloseReason reason);

  // Set-up (TLS handshake, the protocol's hello or request), driven by the
  // writer on socket events.
  enum class SetupResult { Waiting, Ready, Closed };
  SetupResult continueSetup();
  bool settingUp() const { return phase_ != Phase::Streaming; }
  // It was admitted (its queue subscribed): closing it now is a disconnect,
  // not a refusal.
  bool admitted() const { return admitted_; }
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
  void noteSetupDetail(std::string detail) {
    owner_.assertOwned();
    setupDetail_ = std::move(detail);
  }

  bool idle() const { return outgoing_.empty() && queue_->queuedFrames() == 0; }
  // Control bytes wait to go out (the writer serves the session).
  bool hasControl() const { return !control_.empty(); }

  // Heartbeats. When one is due is the writer's business: one is due
  // heartbeatInterval() after lastWriteNs(), the steady-clock time (ns) the
  // session last finished writing something (frames, the answer, a
  // heartbeat), or was created.
  std::chrono::milliseconds heartbeatInterval() const {
    return protocol_->heartbeat().empty() ? std::chrono::milliseconds(0) : setup_.heartbeatInterval;
  }
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
  // Its writer's wake-up for frames held by max_rate_per_key (writer
  // thread only): the due time of the entry it scheduled; 0: none.
  std::int64_t releaseScheduledNs = 0;

  // Frames held back by the hello's max_rate_per_key: when the soonest may
  // go (steady clock, ns); 0: none held (or no rate asked for). The writer
  // serves the session again then.
  std::int64_t nextReleaseNs() const { return rateLimiter_ ? rateLimiter_->nextReleaseNs() : 0; }

  // Thread safe.
  std::uint64_t framesSent() const { return queue_->counters().delivered.load(std::memory_order_relaxed); }
  std::uint64_t framesSkipped() const { return framesSkipped_.load(std::memory_order_relaxed); }

 private:
  enum class Phase { Handshake, Setup, Streaming };
  static constexpr long kWouldBlock = SubscriberTransport::kWouldBlock;
  static constexpr long kFailed = SubscriberTransport::kFailed;
  // What the transport's send returned, once the write deadline's clock
  // and a failure's reason are noted.
  long noteSent(long written);
  SetupResult readSetup();
  SetupResult admitted(const protocol::Hello* hello);
  SetupResult streamAfterControl(std::string bytes, CloseReason then);
  bool sendSetupReply();
  bool flushControl(FlushResult& result);
  // Control bytes may go now: no frame is half written, and no frame
  // write waits to be retried (TLS) — or control bytes already began.
  bool controlMayGo() const { return controlSent_ > 0 || (skipBytes_ == 0 && !framesRetryPending_); }
  void sayFarewell();

  // Moves what may go now from the queue (and the rate limiter) to
  // outgoing_; false if nothing did.
  bool takeFrames(bool draining) {
    return rateLimiter_ ? takeRateLimited(draining) : queue_->takeAll(outgoing_) > 0;
  }
  bool takeRateLimited(bool draining);
  int buildIov(WriteScratch& scratch) const;
  void advance(std::size_t written);

  ThreadOwner owner_;
  const std::uint64_t id_;
  const int fd_;
  const std::string peer_;
  SubscriberTransport transport_;
  const std::shared_ptr<const ListenerProtocol> protocol_;
  const FrameCodec& codec_;
  const bool wireForm_;  // codec_.wireForm(): a run of frames is one iovec from its batch
  std::unique_ptr<Conversation> conversation_;
  QueuePtr queue_;
  ClosedCallback onClosed_;
  Histogram& writeLatency_;  // receive-to-write time of every frame written, all sessions
  const std::chrono::milliseconds writeDeadline_;
  std::optional<std::chrono::steady_clock::time_point> stalledSince_;  // first EAGAIN since the last byte accepted
  std::int64_t lastWriteNs_;  // see lastWriteNs()
  bool writeDeadlineExceeded_ = false;

  std::deque<FrameSpan> outgoing_;  // taken from the queue, not yet fully written
  std::unique_ptr<KeyRateLimiter> rateLimiter_;  // the hello asked for max_rate_per_key
  std::deque<FrameSpan> taken_;                  // from the queue, for the rate limiter
  std::size_t skipBytes_ = 0;       // bytes of outgoing_.front()'s first frame already written
  bool framesRetryPending_ = false; // the last frame write would have blocked (see controlMayGo)
  bool unreadInput_ = false;        // see unreadInput()
  CloseReason closeReason_ = CloseReason::None;
  std::atomic<std::uint64_t> framesSkipped_{0};  // frames this listener's protocol cannot carry

  // Set-up and control bytes.
  SessionSetup setup_;
  Phase phase_ = Phase::Streaming;
  bool admitted_ = false;
  std::chrono::steady_clock::time_point setupDeadline_;
  bool setupWantsWritable_ = false;
  std::string setupDetail_;
  std::string setupReply_;            // what the protocol answered during set-up, not yet sent (HTTP 101)
  std::string control_;               // control bytes, sent between two frames
  std::size_t controlSent_ = 0;
  CloseReason closeAfterControl_ = CloseReason::None;
};

}  // namespace streamrelay
