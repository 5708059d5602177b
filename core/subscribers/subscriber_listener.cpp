// SPDX-License-Identifier: Apache-2.0
#include "subscriber_listener.hpp"

#include <algorithm>
#include <limits>

#include <Poco/Logger.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/TCPServerConnection.h>
#include <Poco/Net/TCPServerConnectionFactory.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <stdexcept>

namespace streamrelay {

namespace {

Poco::Logger& logger() { return Poco::Logger::get("streamrelay.listener"); }

std::atomic<std::uint64_t> nextSessionId{1};

// Threads that hand admitted sockets to the writers: a fixed pool, so the
// relay's thread count does not change with load.
constexpr int kHandOffThreads = 2;

// send_buffer_bytes: auto (see sendBufferFor).
constexpr std::uint32_t kNearPeerRttUs = 1000;
constexpr int kNearPeerSendBuffer = 256 * 1024;

std::vector<const StreamId*> streamsOf(const std::vector<Bus*>& inputs) {
  std::vector<const StreamId*> streams;
  for (const Bus* bus : inputs) streams.push_back(&bus->stream());
  return streams;
}

std::string peerOf(const Poco::Net::StreamSocket& socket) {
  try {
    return socket.peerAddress().toString();
  } catch (const Poco::Exception&) {
    return "(disconnected peer)";
  }
}

class AdmissionFilter : public Poco::Net::TCPServerConnectionFilter {
 public:
  explicit AdmissionFilter(SubscriberListener& listener) : listener_(listener) {}
  bool accept(const Poco::Net::StreamSocket& socket) override { return listener_.admit(socket); }

 private:
  SubscriberListener& listener_;
};

// Runs on a TCPServer pool thread only long enough to hand the socket over.
class HandOff : public Poco::Net::TCPServerConnection {
 public:
  HandOff(const Poco::Net::StreamSocket& socket, SubscriberListener& listener)
      : TCPServerConnection(socket), listener_(listener) {}
  void run() override { listener_.attach(socket()); }

 private:
  SubscriberListener& listener_;
};

class HandOffFactory : public Poco::Net::TCPServerConnectionFactory {
 public:
  explicit HandOffFactory(SubscriberListener& listener) : listener_(listener) {}
  Poco::Net::TCPServerConnection* createConnection(const Poco::Net::StreamSocket& socket) override {
    return new HandOff(socket, listener_);
  }

 private:
  SubscriberListener& listener_;
};

}  // namespace

SubscriberListener::SubscriberListener(const ListenerConfig& config, std::vector<Bus*> inputs, WriterPool& writers,
                                       Histogram& writeLatency, const Poco::Net::ServerSocket* inherited)
    : config_(config),
      inputs_(std::move(inputs)),
      protocol_(listenerProtocol(config_.protocol).create(config_, streamsOf(inputs_))),
      admission_(inputs_, config_.replayFrames, config_.select),
      writers_(writers),
      writeLatency_(writeLatency),
      pool_(kHandOffThreads, kHandOffThreads) {
  try {
    live_ = load(config_);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(config_.where + ": listener '" + config_.name + "': " + e.what());
  }
  try {
    if (inherited) {
      socket_ = *inherited;  // the same listening descriptor: its backlog is served from now on
    } else {
      Poco::Net::SocketAddress address(config_.bind);
      if (address.family() == Poco::Net::SocketAddress::IPv6)
        socket_.bind6(address, true, false, false);  // "[::]:port" also serves IPv4
      else
        socket_.bind(address, true, false);  // SO_REUSEPORT off: a port in use must fail
      socket_.listen(1024);
    }
    port_ = socket_.address().port();
  } catch (const Poco::Exception& e) {
    throw ListenError(config_.where + ": listener '" + config_.name + "': cannot listen on " + config_.bind + ": " +
                      e.displayText());
  }
  auto params = new Poco::Net::TCPServerParams;
  params->setMaxThreads(kHandOffThreads);
  // Every queued connection passed admit(), so holds a max_clients or a
  // max_pending_clients slot: the queue is bounded by admission (which
  // update() may change), never by POCO, which would drop the surplus silently.
  params->setMaxQueued(std::numeric_limits<int>::max());
  server_ = std::make_unique<Poco::Net::TCPServer>(new HandOffFactory(*this), pool_, socket_, params);
  server_->setConnectionFilter(new AdmissionFilter(*this));
}

SubscriberListener::~SubscriberListener() { stopAccepting(); }

std::shared_ptr<const SubscriberListener::Live> SubscriberListener::load(const ListenerConfig& config) {
  auto live = std::make_shared<Live>();
  live->config = config;
  if (config.tls.enabled) live->tls = std::make_shared<const TlsServerContext>(config.tls);
  live->auth = std::make_shared<const Authenticator>(config.auth);
  return live;
}

std::shared_ptr<const SubscriberListener::Live> SubscriberListener::live() const {
  std::lock_guard<std::mutex> lock(liveMutex_);
  return live_;
}

ListenerConfig SubscriberListener::liveConfig() const { return live()->config; }

void SubscriberListener::start() {
  server_->start();
  logger().information("listener %s: listening on %s (%s)", config_.name, socket_.address().toString(),
                       protocol_->describe());
}

void SubscriberListener::stopAccepting() {
  if (!server_) return;
  server_->stop();
  pool_.joinAll();
  server_.reset();
}

void SubscriberListener::closeSocket() {
  stopAccepting();
  socket_.close();
}

bool SubscriberListener::listensOn(const std::string& bind) const {
  if (bind == config_.bind) return true;
  try {
    return Poco::Net::SocketAddress(bind) == socket_.address();
  } catch (const Poco::Exception&) {  // a name that does not resolve now: another address
    return false;
  }
}

// A peer can cause refusals at will: the first of a burst is logged, the rest
// counted into the next line (and always into the counters). `why` may quote
// what the peer sent (a path, a method): its control bytes go here, in the
// one place every refusal is logged, so that it cannot forge log lines.
void SubscriberListener::logRefusal(const std::string& peer, const std::string& why) {
  std::uint64_t suppressed = 0;
  if (!refusalLog_.allow(suppressed)) return;
  logger().warning("listener %s: refused %s: %s%s", config_.name, peer, protocol::printable(why, 400),
                   suppressed ? " (and " + std::to_string(suppressed) + " more refused since the last such line)"
                              : std::string());
}

// The SO_SNDBUF for a new subscriber (0: leave the kernel's autotuning).
// With `auto`, a peer whose handshake RTT is under 1 ms (this host, a LAN)
// gets 256 KiB: autotuning grows such buffers to megabytes, and the fan-out
// data then waits in them, copied from cold memory (the benchmark showed 16 x
// 4 KiB at 65% of the ceiling with autotuning and 105% with 256 KiB). A far
// peer keeps autotuning: a 256 KiB buffer would cap it at 256 KiB per RTT.
int SubscriberListener::sendBufferFor(int fd) {
  if (const int bytes = live()->config.sendBufferBytes; bytes != ListenerConfig::kSendBufferAuto) return bytes;
  tcp_info info{};
  socklen_t size = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &size) != 0 || info.tcpi_rtt == 0 ||
      info.tcpi_rtt >= kNearPeerRttUs)
    return 0;
  counters_.nearPeers.fetch_add(1, std::memory_order_relaxed);
  return kNearPeerSendBuffer;
}

// Acceptor thread. A listener with a set-up takes a pending slot here and a
// max_clients slot once the set-up is done (takeClientSlot); one without
// takes the max_clients slot here. Refused at once when the slot it would
// need is taken (admitted subscribers are never crowded out by pending ones).
bool SubscriberListener::admit(const Poco::Net::StreamSocket& socket) {
  Poco::Net::SocketAddress peer;
  try {
    peer = socket.peerAddress();
  } catch (const Poco::Exception& e) {  // reset between accept() and here
    counters_.lostBeforeAdmission.fetch_add(1, std::memory_order_relaxed);
    logRefusal("a client", "it was gone before admission (" + e.displayText() + ")");
    return false;
  }
  const std::shared_ptr<const Live> now = live();
  if (!now->config.allow.allows(peer.addr())) {
    counters_.refusedAllow.fetch_add(1, std::memory_order_relaxed);
    logRefusal(peer.toString(), "not in the allow list");
    return false;
  }
  const int maxClients = now->config.maxClients;
  std::atomic<int>& slots = needsSetup() ? pending_ : clients_;
  const int limit = needsSetup() ? now->config.maxPendingClients : maxClients;
  if (needsSetup() && clients_.load() >= maxClients) {  // no slot for it at the end of its set-up
    counters_.refusedMaxClients.fetch_add(1, std::memory_order_relaxed);
    logRefusal(peer.toString(), "max_clients " + std::to_string(maxClients) + " reached");
    return false;
  }
  if (slots.fetch_add(1) >= limit) {
    slots.fetch_sub(1);
    (needsSetup() ? counters_.refusedMaxPending : counters_.refusedMaxClients).fetch_add(1, std::memory_order_relaxed);
    logRefusal(peer.toString(), needsSetup() ? "max_pending_clients " + std::to_string(limit) +
                                                   " reached (clients in their TLS handshake or hello)"
                                             : "max_clients " + std::to_string(limit) + " reached");
    return false;
  }
  return true;
}

void SubscriberListener::releaseAdmission() { (needsSetup() ? pending_ : clients_).fetch_sub(1); }

void SubscriberListener::attach(const Poco::Net::StreamSocket& socket) {
  std::string peer = peerOf(socket);
  // The session owns a descriptor of its own: POCO's socket object is shared
  // with the acceptor and hand-off threads and released by them at their own
  // pace; the session closes its descriptor when it ends, without touching it.
  const int fd = ::fcntl(socket.impl()->sockfd(), F_DUPFD_CLOEXEC, 0);
  const int on = 1;
  std::string failed;
  if (fd < 0) failed = std::string("dup: ") + std::strerror(errno);
  else if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) != 0)
    failed = std::string("O_NONBLOCK: ") + std::strerror(errno);
  // The writer already coalesces: every sendmsg carries all that is queued.
  // Nagle's algorithm would only hold a small write back until the previous
  // one is acknowledged (with delayed ACKs, tens of milliseconds).
  else if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) != 0)
    failed = std::string("TCP_NODELAY: ") + std::strerror(errno);
  else if (const int sendBuffer = sendBufferFor(fd);
           sendBuffer > 0 && ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sendBuffer, sizeof sendBuffer) != 0)
    failed = std::string("SO_SNDBUF: ") + std::strerror(errno);
  if (!failed.empty()) {
    logger().warning("listener %s: subscriber %s lost during set-up: %s", config_.name, peer, failed);
    if (fd >= 0) ::close(fd);
    releaseAdmission();
    return;
  }
  const std::uint64_t id = nextSessionId.fetch_add(1);
  SubscriberWriter& writer = writers_.pick();
  const std::shared_ptr<const Live> now = live();
  auto queue = std::make_shared<SubscriptionQueue>(config_.name + "/" + peer, now->config.queue,
                                                   [&writer, id] { writer.wake(id); });
  std::shared_ptr<SubscriberSession> session;
  try {
    session = std::make_shared<SubscriberSession>(
        id, fd, peer, protocol_, protocol_->open(now->config), queue,
        [this](SubscriberSession& s, CloseReason reason) { onClosed(s, reason); }, writeLatency_,
        std::chrono::milliseconds(now->config.writeDeadlineMs), setupFor(*now));
  } catch (const std::runtime_error& e) {  // no memory for a TLS session
    logger().warning("listener %s: subscriber %s lost during set-up: %s", config_.name, peer, std::string(e.what()));
    ::close(fd);
    releaseAdmission();
    return;
  }
  Attached attached{queue, queue.get(), {}, !needsSetup()};
  socklen_t peerLength = sizeof attached.peer;
  ::getpeername(fd, reinterpret_cast<sockaddr*>(&attached.peer), &peerLength);
  counters_.accepted.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(sessionsMutex_);
    sessions_.push_back(attached);
  }
  // A session with a TLS handshake or a hello subscribes once that is done
  // (admitSession, on its writer's thread). The others are subscribed before
  // the writer sees them: a client that resets at once is then unsubscribed
  // after it was subscribed, never before.
  if (!needsSetup()) {
    admission_.admit(nullptr, queue, *now->auth);
    // Logged once subscribed: from this line on, every published frame reaches it.
    logger().information("listener %s: subscriber %s connected (%d of %d)", config_.name, peer, clients_.load(),
                         now->config.maxClients);
  }
  writer.add(std::move(session));
}

SessionSetup SubscriberListener::setupFor(const Live& now) {
  SessionSetup setup;
  setup.tls = now.tls;
  setup.handshakeTimeout = std::chrono::milliseconds(now.config.tls.handshakeTimeoutMs);
  setup.helloTimeout = std::chrono::milliseconds(now.config.helloTimeoutMs);
  setup.heartbeatInterval = std::chrono::milliseconds(now.config.heartbeatMs);
  if (needsSetup())
    setup.admit = [this](SubscriberSession& session, const protocol::Hello* hello) {
      return admitSession(session, hello);
    };
  return setup;
}

bool SubscriberListener::takeClientSlot(SubscriberSession& session) {
  if (clients_.fetch_add(1) >= live()->config.maxClients) {
    clients_.fetch_sub(1);
    return false;
  }
  std::lock_guard<std::mutex> lock(sessionsMutex_);
  for (Attached& a : sessions_)
    if (a.key == session.queue().get()) a.admitted = true;
  pending_.fetch_sub(1);
  return true;
}

AdmissionResult SubscriberListener::admitSession(SubscriberSession& session, const protocol::Hello* hello) {
  const std::shared_ptr<const Live> now = live();
  AdmissionResult result;
  if (!takeClientSlot(session)) {
    counters_.refusedMaxClients.fetch_add(1, std::memory_order_relaxed);
    result.refused = CloseReason::MaxClients;
    result.error = "max_clients " + std::to_string(now->config.maxClients) + " reached";
  } else {
    result = admission_.admit(hello, session.queue(), *now->auth);
  }
  if (result.refused != CloseReason::None) {
    session.noteSetupDetail(result.error + (result.described.empty() ? "" : ": " + result.described));
    return result;
  }
  result.heartbeatMs = static_cast<int>(session.heartbeatInterval().count());
  std::string detail = session.setupDetail();
  if (!result.described.empty())
    detail += (detail.empty() ? "" : "; ") + config_.protocol + ": " + result.described;
  logger().information("listener %s: subscriber %s connected (%d of %d; %s)", config_.name, session.peer(),
                       clients_.load(), now->config.maxClients, detail);
  return result;
}

void SubscriberListener::onClosed(SubscriberSession& session, CloseReason reason) {
  for (Bus* bus : inputs_) bus->unsubscribe(session.queue().get());
  counters_.disconnects[static_cast<int>(reason)].fetch_add(1, std::memory_order_relaxed);
  if (!session.admitted()) {
    // Refused before its first frame: a peer can cause these at will.
    logRefusal(session.peer(), std::string(toString(reason)) +
                                   (session.setupDetail().empty() ? "" : ": " + session.setupDetail()));
  } else {
    logDisconnect(session, reason);
  }
  // Last: once the list is empty, closeSubscribers() may let the listener be
  // destroyed, so nothing here touches it after the lock is released.
  std::lock_guard<std::mutex> lock(sessionsMutex_);
  auto it = std::find_if(sessions_.begin(), sessions_.end(),
                         [&](const Attached& a) { return a.key == session.queue().get(); });
  if (it != sessions_.end()) {
    (it->admitted ? clients_ : pending_).fetch_sub(1);
    sessions_.erase(it);
  }
  if (sessions_.empty()) sessionsGone_.notify_all();
}

void SubscriberListener::logDisconnect(SubscriberSession& session, CloseReason reason) {
  std::string detail;
  if (reason == CloseReason::SlowConsumer && session.writeDeadlineExceeded())
    detail = " (no byte accepted for write_deadline_ms " + std::to_string(session.writeDeadline().count()) + ")";
  else if (reason == CloseReason::SlowConsumer)
    detail = " (queue full: max_frames " + std::to_string(session.queue()->limits().maxFrames) + ", max_bytes " +
             std::to_string(session.queue()->limits().maxBytes) + ", on_full disconnect)";
  if (session.framesSkipped() > 0)
    detail += "; " + std::to_string(session.framesSkipped()) + " frames skipped: " + protocol_->describe() +
              " cannot carry them";
  auto level = reason == CloseReason::SlowConsumer ? Poco::Message::PRIO_WARNING : Poco::Message::PRIO_INFORMATION;
  logger().log(Poco::Message(logger().name(),
                             "listener " + config_.name + ": subscriber " + session.peer() + " disconnected: " +
                                 toString(reason) + detail + "; " + std::to_string(session.framesSent()) +
                                 " frames sent, " + std::to_string(session.queue()->counters().dropped.load()) +
                                 " dropped",
                             level));
}

SubscriberListener::UpdateResult SubscriberListener::update(const ListenerConfig& next) {
  UpdateResult result;
  std::shared_ptr<const Live> now = live();
  std::shared_ptr<const Live> loaded;
  try {
    loaded = load(next);
  } catch (const std::runtime_error& e) {
    // The other keys apply; the credentials, and what they were read from, stay.
    result.credentialsProblem = e.what();
    auto kept = std::make_shared<Live>(*now);
    std::vector<KeyChange> others;
    for (const KeyChange& k : diffSettings(now->config.settings, next.settings))
      if (k.key.rfind("tls.", 0) != 0 && k.key.rfind("auth.", 0) != 0) others.push_back(k);
    kept->config = next;
    kept->config.tls = now->config.tls;
    kept->config.auth = now->config.auth;
    kept->config.settings = adoptChanges(now->config.settings, next.settings, others);
    loaded = kept;
  }
  {
    std::lock_guard<std::mutex> lock(liveMutex_);
    live_ = loaded;
  }
  std::vector<QueuePtr> refused;
  {
    std::lock_guard<std::mutex> lock(sessionsMutex_);
    for (const Attached& a : sessions_)
      if (QueuePtr queue = a.queue.lock())
        if (!loaded->config.allow.allows(reinterpret_cast<const sockaddr*>(&a.peer))) refused.push_back(queue);
  }
  for (const QueuePtr& queue : refused) queue->close(CloseReason::Removed);
  result.closed = static_cast<int>(refused.size());
  return result;
}

void SubscriberListener::reloadCredentials() {
  const ListenerConfig now = liveConfig();
  const bool files = now.tls.enabled || !now.auth.tokensFile.empty() || !now.auth.jwtPublicKeyFile.empty();
  if (!files) return;
  const UpdateResult result = update(now);
  if (!result.credentialsProblem.empty()) {
    logger().error("listener %s: credentials not reloaded: %s; the previous ones stay", config_.name,
                   result.credentialsProblem);
    return;
  }
  const bool tokens = !now.auth.tokensFile.empty() || !now.auth.jwtPublicKeyFile.empty();
  logger().information("listener %s: %s reloaded for new clients", config_.name,
                       std::string(now.tls.enabled && tokens ? "certificate and tokens"
                                   : now.tls.enabled        ? "certificate"
                                                            : "tokens"));
}

std::vector<const SubscriptionQueue*> SubscriberListener::subscriberQueues() const {
  std::lock_guard<std::mutex> lock(sessionsMutex_);
  std::vector<const SubscriptionQueue*> queues;
  for (const Attached& a : sessions_) queues.push_back(a.key);
  return queues;
}

int SubscriberListener::closeSubscribers(CloseReason reason, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(sessionsMutex_);
  std::vector<QueuePtr> open;
  for (const Attached& a : sessions_)
    if (QueuePtr queue = a.queue.lock()) open.push_back(queue);
  lock.unlock();
  // Each writer closes its session, set-up under way or not, then onClosed.
  for (const QueuePtr& queue : open) queue->close(reason);
  lock.lock();
  const bool gone = sessionsGone_.wait_until(lock, deadline, [&] { return sessions_.empty(); });
  return gone ? static_cast<int>(open.size()) : -1;
}

}  // namespace streamrelay
