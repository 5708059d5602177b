// SPDX-License-Identifier: Apache-2.0
#include "subscriber_writer.hpp"

#include <Poco/Logger.h>
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>

namespace streamrelay {

namespace {
constexpr std::uint64_t kEventFdId = 0;  // session ids start at 1
constexpr int kMaxEvents = 256;
// How often stalled sessions are checked against their write deadline.
constexpr int kDeadlineTickMs = 100;
// Heartbeats wake the writer at most this often (each wake sends all that
// are due): a heartbeat may be this much late, never early.
constexpr int kHeartbeatTickMs = 100;

Poco::Logger& logger() { return Poco::Logger::get("streamrelay.writer"); }
}  // namespace

SubscriberWriter::SubscriberWriter(int index) : index_(index) {
  epollFd_ = ::epoll_create1(EPOLL_CLOEXEC);
  eventFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epollFd_ < 0 || eventFd_ < 0) throw std::runtime_error(std::string("writer: epoll/eventfd: ") + strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kEventFdId;
  ::epoll_ctl(epollFd_, EPOLL_CTL_ADD, eventFd_, &ev);
}

SubscriberWriter::~SubscriberWriter() {
  stop();
  ::close(eventFd_);
  ::close(epollFd_);
}

void SubscriberWriter::start() { thread_ = std::thread([this] { run(); }); }

void SubscriberWriter::signal() {
  std::uint64_t one = 1;
  ssize_t n = ::write(eventFd_, &one, sizeof one);
  (void)n;  // EAGAIN means the counter is already non-zero: the writer will wake
}

void SubscriberWriter::add(std::shared_ptr<SubscriberSession> session) {
  sessionCount_.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    added_.push_back(std::move(session));
  }
  wakeIfSleeping();
}

void SubscriberWriter::wake(std::uint64_t id) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ready_.push_back(id);
  }
  wakeIfSleeping();
}

// One eventfd write per sleep of the writer, however many sessions become
// ready meanwhile: a publish to a thousand subscribers costs the publisher a
// thousand short locks and at most one syscall per writer. A writer that is
// awake looks at its requests before it sleeps again (run()).
void SubscriberWriter::wakeIfSleeping() {
  if (sleeping_.exchange(false)) signal();
}

void SubscriberWriter::beginDrain(std::chrono::steady_clock::time_point deadline) {
  std::lock_guard<std::mutex> lock(mutex_);
  draining_ = true;
  drainDeadline_ = deadline;
  signal();
}

void SubscriberWriter::join() {
  if (thread_.joinable()) thread_.join();
}

void SubscriberWriter::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    signal();
  }
  if (thread_.joinable()) thread_.join();
  owner_.claim();  // the writer thread has ended (or never started): its sessions are this thread's
  for (auto& entry : sessions_) {
    entry.second->claim();
    entry.second->close(CloseReason::Shutdown);
  }
  sessions_.clear();
}

bool SubscriberWriter::hasRequests() {
  std::lock_guard<std::mutex> lock(mutex_);
  return !added_.empty() || !ready_.empty();
}

void SubscriberWriter::clearSignal() {
  std::uint64_t count;
  ssize_t n = ::read(eventFd_, &count, sizeof count);
  (void)n;  // EAGAIN: nothing signalled since the last read
}

void SubscriberWriter::takeRequests() {
  owner_.assertOwned();
  std::vector<std::shared_ptr<SubscriberSession>> added;
  std::vector<std::uint64_t> ready;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    added.swap(added_);
    ready.swap(ready_);
  }
  for (auto& session : added) {
    session->claim();  // from its listener's hand-off thread: this writer drives it from now on
    epoll_event ev{};
    ev.events = interestOf(*session);
    ev.data.u64 = session->id();
    if (::epoll_ctl(epollFd_, EPOLL_CTL_ADD, session->fd(), &ev) != 0) {
      logger().error("writer %d: cannot watch subscriber %s: %s", index_, session->peer(), std::string(strerror(errno)));
      sessionCount_.fetch_sub(1, std::memory_order_relaxed);
      session->close(CloseReason::WriteError);
      continue;
    }
    std::uint64_t id = session->id();
    SubscriberSession& added = *session;
    sessions_.emplace(id, std::move(session));
    if (added.settingUp()) {
      settingUp_.insert(id);
      if (added.queue()->closed()) closeSession(added, added.queue()->closeReason());  // its listener went first
      else continueSetup(added);
    } else {
      serve(id);
    }
  }
  for (std::uint64_t id : ready) serve(id);
}

// Drives a handshake or hello on; once done, the session streams.
void SubscriberWriter::continueSetup(SubscriberSession& session) {
  owner_.assertOwned();
  switch (session.continueSetup()) {
    case SubscriberSession::SetupResult::Waiting:
      watchWritable(session, session.setupWantsWritable());
      if (session.unreadInput()) again_.push_back(session.id());
      return;
    case SubscriberSession::SetupResult::Closed:
      closeSession(session, session.closeReason());
      return;
    case SubscriberSession::SetupResult::Ready:
      settingUp_.erase(session.id());
      if (session.heartbeatInterval().count() > 0) scheduleHeartbeat(session);
      serve(session.id());
      return;
  }
}

void SubscriberWriter::closePastSetupDeadline() {
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::uint64_t> late;
  for (std::uint64_t id : settingUp_) {
    auto found = sessions_.find(id);
    if (found != sessions_.end() && found->second->pastSetupDeadline(now)) late.push_back(id);
  }
  for (std::uint64_t id : late) {
    SubscriberSession& session = *sessions_.at(id);
    closeSession(session, session.setupTimeoutReason());
  }
}

void SubscriberWriter::scheduleHeartbeat(const SubscriberSession& session) {
  const auto interval = std::chrono::nanoseconds(session.heartbeatInterval()).count();
  heartbeats_.push({session.lastWriteNs() + interval, session.id()});
}

// Sends a heartbeat to every session that was sent nothing for its interval.
// No timer per session, and no scan of them all: each streaming session with
// heartbeats has one entry in heartbeats_, due one interval after its last
// write as known when the entry was made. An entry that comes due for a
// session that wrote since is put back at the new time; one whose session is
// gone is dropped. So the cost is one heap step per session per interval
// (10,000 subscribers at 5 s: 2,000 a second, spread over at most 10 wakes),
// whether they stream or idle.
void SubscriberWriter::sendDueHeartbeats() {
  owner_.assertOwned();
  const std::int64_t now = steadyNowNs();
  std::vector<HeartbeatCheck> later;
  while (!heartbeats_.empty() && heartbeats_.top().dueNs <= now) {
    const std::uint64_t id = heartbeats_.top().id;
    heartbeats_.pop();
    auto it = sessions_.find(id);
    if (it == sessions_.end()) continue;  // closed since
    SubscriberSession& session = *it->second;
    const std::int64_t interval = std::chrono::nanoseconds(session.heartbeatInterval()).count();
    std::int64_t due = session.lastWriteNs() + interval;
    if (due <= now) {
      // Idle: a heartbeat now. Not idle (frames on their way, or a full
      // socket, which the write deadline watches): none needed.
      if (session.queueHeartbeat()) serve(id);  // may close the session: its entry then goes next time
      due = now + interval;
    }
    later.push_back({due, id});
  }
  for (const HeartbeatCheck& check : later) heartbeats_.push(check);
}

// Milliseconds until the next heartbeat may be due, rounded up to the
// heartbeat tick so that heartbeats due close together share one wake.
int SubscriberWriter::untilNextHeartbeatMs() const {
  const std::int64_t waitNs = heartbeats_.top().dueNs - steadyNowNs();
  if (waitNs <= 0) return 0;
  const std::int64_t ticks = (waitNs + kHeartbeatTickMs * 1000000LL - 1) / (kHeartbeatTickMs * 1000000LL);
  return static_cast<int>(std::min<std::int64_t>(ticks * kHeartbeatTickMs, 24 * 3600 * 1000));
}

void SubscriberWriter::serve(std::uint64_t id) {
  owner_.assertOwned();
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;  // already closed
  SubscriberSession& session = *it->second;
  if (session.settingUp()) {
    // Its queue is not subscribed yet: a wake-up is its close (a listener
    // removed while the session is in its handshake or hello), or its turn
    // to read what it sent beyond the last read's cap.
    if (session.queue()->closed()) closeSession(session, session.queue()->closeReason());
    else if (session.unreadInput()) continueSetup(session);
    return;
  }
  if (session.unreadInput() && !readInput(session)) return;
  const SubscriberSession::FlushResult result = session.flush(*scratch_);
  switch (result) {
    case SubscriberSession::FlushResult::Closed:
      closeSession(session, session.closeReason());
      return;
    case SubscriberSession::FlushResult::MoreWork:
      again_.push_back(id);
      break;
    case SubscriberSession::FlushResult::WouldBlock:
      if (session.writeDeadline().count() > 0) stalled_.insert(id);
      break;
    case SubscriberSession::FlushResult::Idle:
      break;
  }
  if (result != SubscriberSession::FlushResult::MoreWork && session.unreadInput()) again_.push_back(id);
  watchWritable(session, result == SubscriberSession::FlushResult::WouldBlock);
  // Written out, with frames held back by its rate: served again when the
  // soonest may go. (A full socket or more work brings it back anyway.)
  if (result == SubscriberSession::FlushResult::Idle) scheduleRelease(session);
}

void SubscriberWriter::scheduleRelease(SubscriberSession& session) {
  const std::int64_t due = session.nextReleaseNs();
  if (due == 0 || (session.releaseScheduledNs != 0 && session.releaseScheduledNs <= due)) return;
  session.releaseScheduledNs = due;
  releases_.push({due, session.id()});
}

// Serves the sessions whose held frames may go now. An entry that is no
// longer its session's current one (superseded, or the session is gone) is
// dropped.
void SubscriberWriter::serveDueReleases() {
  owner_.assertOwned();
  const std::int64_t now = steadyNowNs();
  while (!releases_.empty() && releases_.top().dueNs <= now) {
    const HeartbeatCheck due = releases_.top();
    releases_.pop();
    auto it = sessions_.find(due.id);
    if (it == sessions_.end() || it->second->releaseScheduledNs != due.dueNs) continue;
    it->second->releaseScheduledNs = 0;
    serve(due.id);  // schedules its next release, later than now
  }
}

// Reads what a streaming session's client sent (up to the per-wake cap);
// false if that closed the session.
bool SubscriberWriter::readInput(SubscriberSession& session) {
  if (session.inputOpen && !session.drainInput()) {
    // Half-closed by the peer: it may still read. A full close shows up as
    // EPOLLHUP/EPOLLERR or a failed write on the next frame.
    session.inputOpen = false;
    updateInterest(session);
  }
  if (session.closeReason() == CloseReason::None) return true;
  closeSession(session, session.closeReason());
  return false;
}

// What epoll reports for a session. EPOLLOUT only while its socket is full:
// with edge triggering, a watched socket reports every ACK that frees space,
// which for a thousand subscribers is a thousand wake-ups per frame for
// nothing. EPOLLIN only until the peer has shut its side.
std::uint32_t SubscriberWriter::interestOf(const SubscriberSession& session) {
  std::uint32_t events = EPOLLET;
  if (session.inputOpen) events |= EPOLLIN | EPOLLRDHUP;
  if (session.watchingWritable) events |= EPOLLOUT;
  return events;
}

void SubscriberWriter::updateInterest(SubscriberSession& session) {
  epoll_event ev{};
  ev.events = interestOf(session);
  ev.data.u64 = session.id();
  ::epoll_ctl(epollFd_, EPOLL_CTL_MOD, session.fd(), &ev);
}

void SubscriberWriter::watchWritable(SubscriberSession& session, bool watch) {
  if (session.watchingWritable == watch) return;
  session.watchingWritable = watch;
  updateInterest(session);
}

// Closes sessions whose socket accepted no byte for their write deadline.
void SubscriberWriter::closePastWriteDeadline() {
  owner_.assertOwned();
  const auto now = std::chrono::steady_clock::now();
  for (auto it = stalled_.begin(); it != stalled_.end();) {
    auto found = sessions_.find(*it);
    if (found == sessions_.end() || !found->second->stalled()) {
      it = stalled_.erase(it);
      continue;
    }
    SubscriberSession& session = *found->second;
    ++it;
    if (!session.pastWriteDeadline(now)) continue;
    session.markWriteDeadlineExceeded();
    closeSession(session, CloseReason::SlowConsumer);
  }
}

void SubscriberWriter::closeSession(SubscriberSession& session, CloseReason reason) {
  owner_.assertOwned();
  ::epoll_ctl(epollFd_, EPOLL_CTL_DEL, session.fd(), nullptr);
  std::uint64_t id = session.id();
  session.close(reason);
  stalled_.erase(id);
  settingUp_.erase(id);
  sessions_.erase(id);
  sessionCount_.fetch_sub(1, std::memory_order_relaxed);
}

bool SubscriberWriter::drainStep() {
  owner_.assertOwned();
  std::vector<std::uint64_t> done;
  bool late = std::chrono::steady_clock::now() >= drainDeadline_;
  for (auto& entry : sessions_) {
    SubscriberSession& session = *entry.second;
    if (!late) session.flush(*scratch_);
    if (late || session.idle() || session.closeReason() != CloseReason::None) done.push_back(entry.first);
  }
  for (std::uint64_t id : done) {
    SubscriberSession& session = *sessions_.at(id);
    if (late && !session.idle())
      logger().warning("writer %d: shutdown deadline reached, subscriber %s still had %z frames queued", index_,
                       session.peer(), session.queue()->queuedFrames());
    closeSession(session, session.closeReason() != CloseReason::None ? session.closeReason() : CloseReason::Shutdown);
  }
  return sessions_.empty();
}

void SubscriberWriter::run() {
  owner_.claim();
  epoll_event events[kMaxEvents];
  for (;;) {
    bool draining;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      draining = draining_;
    }
    if (draining && drainStep()) return;
    int timeout = (!again_.empty() || draining) ? (again_.empty() ? 50 : 0) : -1;
    if (!stalled_.empty() || !settingUp_.empty())
      timeout = timeout < 0 ? kDeadlineTickMs : std::min(timeout, kDeadlineTickMs);
    if (!heartbeats_.empty() && !draining) {
      const int heartbeat = untilNextHeartbeatMs();
      timeout = timeout < 0 ? heartbeat : std::min(timeout, heartbeat);
    }
    if (!releases_.empty() && !draining) {
      // Rounded up: a held frame goes at the end of its interval, never before.
      const std::int64_t waitNs = std::max<std::int64_t>(0, releases_.top().dueNs - steadyNowNs());
      const int release = static_cast<int>(std::min<std::int64_t>((waitNs + 999999) / 1000000, 24 * 3600 * 1000));
      timeout = timeout < 0 ? release : std::min(timeout, release);
    }
    // Announce the sleep before looking for requests: one made after the look
    // finds sleeping_ set and signals the eventfd (wakeIfSleeping).
    sleeping_.store(true);
    if (hasRequests()) timeout = 0;
    int n = ::epoll_wait(epollFd_, events, kMaxEvents, timeout);
    sleeping_.store(false);
    if (n < 0 && errno != EINTR) {
      logger().critical("writer %d: epoll_wait: %s", index_, std::string(strerror(errno)));
      return;
    }
    std::vector<std::uint64_t> again;
    again.swap(again_);
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == kEventFdId) clearSignal();
      else handleSocketEvent(events[i].data.u64, events[i].events);
    }
    takeRequests();
    for (std::uint64_t id : again) serve(id);
    if (!stalled_.empty()) closePastWriteDeadline();
    if (!settingUp_.empty()) closePastSetupDeadline();
    if (!heartbeats_.empty() && !draining) sendDueHeartbeats();
    if (!releases_.empty() && !draining) serveDueReleases();
  }
}

void SubscriberWriter::handleSocketEvent(std::uint64_t id, std::uint32_t events) {
  owner_.assertOwned();
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  SubscriberSession& session = *it->second;
  if (session.settingUp()) {
    continueSetup(session);
    return;
  }
  if ((events & (EPOLLIN | EPOLLRDHUP)) && !readInput(session)) return;
  if ((events & (EPOLLERR | EPOLLHUP)) || session.closeReason() != CloseReason::None) {
    closeSession(session, session.closeReason() != CloseReason::None ? session.closeReason() : CloseReason::PeerClosed);
    return;
  }
  // EPOLLOUT, or what the client sent has an answer (a WebSocket pong, close).
  if ((events & EPOLLOUT) || session.hasControl()) serve(id);
  else if (session.unreadInput()) again_.push_back(id);  // the rest on the next round
}

WriterPool::WriterPool(int threads) {
  for (int i = 0; i < threads; ++i) writers_.push_back(std::make_unique<SubscriberWriter>(i));
}

void WriterPool::start() {
  for (auto& w : writers_) w->start();
}

SubscriberWriter& WriterPool::pick() {
  SubscriberWriter* best = writers_.front().get();
  for (auto& w : writers_)
    if (w->sessionCount() < best->sessionCount()) best = w.get();
  return *best;
}

void WriterPool::beginDrain(std::chrono::steady_clock::time_point deadline) {
  for (auto& w : writers_) w->beginDrain(deadline);
}

void WriterPool::join() {
  for (auto& w : writers_) w->join();
}

void WriterPool::stop() {
  for (auto& w : writers_) w->stop();
}

}  // namespace streamrelay
