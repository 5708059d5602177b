// SPDX-License-Identifier: Apache-2.0
#pragma once
// SubscriberWriter: one thread that writes to many subscriber sockets with
// epoll, as NATS' writeLoop and Redis' event loop do.
//
// A session is woken when its queue goes from empty to non-empty; the writer
// then drains everything queued in one sendmsg() of up to 1024 iovecs, so
// syscalls per frame fall as load rises. A full socket waits for EPOLLOUT while
// its queue fills up to its cap and its overflow policy applies. A writer
// thread scales to thousands of sessions; the relay runs one per core.
//
// Thread safe: add(), wake(), beginDrain(), join(), stop(), sessionCount(). Everything else
// runs on the writer's own thread, which owns its sessions (checked:
// thread_owner.hpp); once that thread has ended, stop()'s caller owns them.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "subscriber_session.hpp"
#include "thread_owner.hpp"

namespace streamrelay {

class SubscriberWriter {
 public:
  explicit SubscriberWriter(int index);
  SubscriberWriter(const SubscriberWriter&) = delete;
  SubscriberWriter& operator=(const SubscriberWriter&) = delete;
  ~SubscriberWriter();  // stops and closes every session

  void start();
  void add(std::shared_ptr<SubscriberSession> session);
  // Called by the publisher when session `id`'s queue has frames. Never blocks
  // for long: a short lock and at most one eventfd write.
  void wake(std::uint64_t id);
  // Asks the thread to send what every session has queued, then close it;
  // sessions still writing at the deadline are closed anyway.
  void beginDrain(std::chrono::steady_clock::time_point deadline);
  // Waits for the thread to end (after beginDrain or stop).
  void join();
  // Ends the thread and closes every session now.
  void stop();
  std::size_t sessionCount() const { return sessionCount_.load(std::memory_order_relaxed); }

 private:
  void run();
  bool hasRequests();
  void clearSignal();
  void takeRequests();
  void wakeIfSleeping();
  void serve(std::uint64_t id);
  bool readInput(SubscriberSession& session);
  void handleSocketEvent(std::uint64_t id, std::uint32_t events);
  void closeSession(SubscriberSession& session, CloseReason reason);
  static std::uint32_t interestOf(const SubscriberSession& session);
  void updateInterest(SubscriberSession& session);
  void watchWritable(SubscriberSession& session, bool watch);
  bool drainStep();  // true when every session is gone
  void closePastWriteDeadline();
  void continueSetup(SubscriberSession& session);
  void closePastSetupDeadline();
  void scheduleHeartbeat(const SubscriberSession& session);
  void sendDueHeartbeats();
  int untilNextHeartbeatMs() const;
  void scheduleRelease(SubscriberSession& session);
  void serveDueReleases();
  void signal();

  const int index_;
  int epollFd_ = -1;
  int eventFd_ = -1;
  std::thread thread_;

  std::mutex mutex_;  // guards the request lists below
  std::vector<std::shared_ptr<SubscriberSession>> added_;
  std::vector<std::uint64_t> ready_;
  bool draining_ = false;
  std::atomic<bool> sleeping_{false};  // the writer is in (or about to enter) epoll_wait
  bool stopping_ = false;
  std::chrono::steady_clock::time_point drainDeadline_;

  // Owned by the writer thread.
  ThreadOwner owner_;
  std::unordered_map<std::uint64_t, std::shared_ptr<SubscriberSession>> sessions_;
  std::vector<std::uint64_t> again_;  // sessions with more to write, or to read, after their turn
  std::unordered_set<std::uint64_t> stalled_;  // sessions waiting for EPOLLOUT, with a write deadline
  std::unordered_set<std::uint64_t> settingUp_;  // sessions in a TLS handshake or waiting for a hello
  // One entry per streaming session with heartbeats: when its next
  // heartbeat may be due (see sendDueHeartbeats), soonest on top.
  struct HeartbeatCheck {
    std::int64_t dueNs;  // steady clock
    std::uint64_t id;
    bool operator>(const HeartbeatCheck& other) const { return dueNs > other.dueNs; }
  };
  std::priority_queue<HeartbeatCheck, std::vector<HeartbeatCheck>, std::greater<HeartbeatCheck>> heartbeats_;
  // Sessions with frames held by max_rate_per_key: when the soonest may go
  // (a session's releaseScheduledNs tells which entry is its current one).
  std::priority_queue<HeartbeatCheck, std::vector<HeartbeatCheck>, std::greater<HeartbeatCheck>> releases_;
  std::unique_ptr<WriteScratch> scratch_ = std::make_unique<WriteScratch>();
  std::atomic<std::size_t> sessionCount_{0};
};

// The writer threads of the relay; hands each new session to the least loaded.
class WriterPool {
 public:
  explicit WriterPool(int threads);
  void start();
  SubscriberWriter& pick();
  // Every writer sends what is queued and closes its sessions (see
  // SubscriberWriter::beginDrain); join() waits for all of them.
  void beginDrain(std::chrono::steady_clock::time_point deadline);
  void join();
  void stop();
  std::size_t size() const { return writers_.size(); }

 private:
  std::vector<std::unique_ptr<SubscriberWriter>> writers_;
};

}  // namespace streamrelay
