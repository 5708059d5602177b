#pragma once
// SubscriberSession: one connected subscriber — its socket, its queue and what
// is being written to it.
//
// Created by its listener on a TCPServer pool thread, then owned and driven by
// exactly one SubscriberWriter thread: every method but the constructor and the
// accessors marked thread safe is called only from that writer thread.

#include <sys/uio.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>

#include "framing.hpp"
#include "histogram.hpp"
#include "subscription_queue.hpp"

namespace streamrelay {

// Scratch space for building one write; owned by a writer thread, shared by
// all of its sessions.
struct WriteScratch {
  static constexpr int kMaxIov = 1024;  // IOV_MAX on Linux
  iovec iov[kMaxIov];
  char headers[kMaxIov][8];
};

class SubscriberSession {
 public:
  using ClosedCallback = std::function<void(SubscriberSession&, CloseReason)>;

  // `writeDeadline`: how long the socket may accept no byte while frames wait
  // before the writer closes it as a slow consumer (0: no deadline).
  // Takes ownership of `fd`, a connected non-blocking socket.
  SubscriberSession(std::uint64_t id, int fd, std::string peer,
                    const FramingSpec& framing, QueuePtr queue, ClosedCallback onClosed,
                    Histogram& writeLatency, std::chrono::milliseconds writeDeadline);
  SubscriberSession(const SubscriberSession&) = delete;
  SubscriberSession& operator=(const SubscriberSession&) = delete;
  ~SubscriberSession();

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

  bool idle() const { return outgoing_.empty() && queue_->queuedFrames() == 0; }
  // True if the socket has accepted no byte for longer than the write
  // deadline while frames wait: the writer then closes it (SlowConsumer).
  bool pastWriteDeadline(std::chrono::steady_clock::time_point now) const {
    return writeDeadline_.count() > 0 && stalledSince_ && now - *stalledSince_ >= writeDeadline_;
  }
  bool stalled() const { return stalledSince_.has_value(); }
  std::chrono::milliseconds writeDeadline() const { return writeDeadline_; }
  // Set when the writer closed it for pastWriteDeadline().
  void markWriteDeadlineExceeded() { writeDeadlineExceeded_ = true; }
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
  int buildIov(WriteScratch& scratch) const;
  void advance(std::size_t written);
  std::size_t encodedBytes(const FrameBatch& batch, std::size_t i) const;

  const std::uint64_t id_;
  const int fd_;
  const std::string peer_;
  FrameEncoder encoder_;
  QueuePtr queue_;
  ClosedCallback onClosed_;
  Histogram& writeLatency_;  // receive-to-write time of every frame written, all sessions
  const std::chrono::milliseconds writeDeadline_;
  std::optional<std::chrono::steady_clock::time_point> stalledSince_;  // first EAGAIN since the last byte accepted
  bool writeDeadlineExceeded_ = false;

  std::deque<FrameSpan> outgoing_;  // taken from the queue, not yet fully written
  std::size_t skipBytes_ = 0;       // bytes of outgoing_.front()'s first frame already written
  CloseReason closeReason_ = CloseReason::None;
  std::atomic<std::uint64_t> framesSkipped_{0};  // frames this listener's framing cannot carry
};

}  // namespace streamrelay
