// SPDX-License-Identifier: Apache-2.0
#pragma once
// SubscriberListener: one configured listener. POCO's TCPServer accepts;
// a connection filter admits (allow list, max_clients, max_pending_clients)
// so that a refused client is closed at once instead of waiting in POCO's
// queue; the pool thread that runs a connection only hands its socket to a
// SubscriberWriter and returns, so a handful of pool threads serve any number
// of subscribers.
//
// Admission has two stages where the listener has TLS or a protocol whose
// clients speak first (a hello, an HTTP request): a connection is *pending*
// while its handshake or hello is under way (at most max_pending_clients of them), and takes one of max_clients
// slots only once it is admitted. Clients that never finish their set-up so
// cannot lock admitted subscribers out (nginx and NATS bound such clients
// apart, too). A raw plain-TCP listener has no set-up: it admits at accept.
//
// Thread safe. Must outlive the writers' sessions (they report back to it).

#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/TCPServer.h>
#include <Poco/ThreadPool.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <sys/socket.h>
#include <memory>
#include <stdexcept>
#include <vector>

#include "authenticator.hpp"
#include "bus.hpp"
#include "config.hpp"
#include "listener_protocol.hpp"
#include "log_limiter.hpp"
#include "subscriber_admission.hpp"
#include "subscriber_writer.hpp"

namespace streamrelay {

struct ListenerCounters {
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> refusedMaxClients{0};
  std::atomic<std::uint64_t> refusedMaxPending{0};    // beyond max_pending_clients
  std::atomic<std::uint64_t> refusedAllow{0};
  std::atomic<std::uint64_t> lostBeforeAdmission{0};  // reset by the client before it could be admitted
  std::atomic<std::uint64_t> nearPeers{0};  // send_buffer_bytes auto: subscribers given the near-peer buffer
  std::atomic<std::uint64_t> disconnects[kCloseReasonCount]{};  // by CloseReason
};

// The listener's address cannot be used (in use, not local...).
struct ListenError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class SubscriberListener {
 public:
  // Binds the socket, or takes `inherited` (the listening socket of the
  // listener this one replaces, already bound to the same address); throws
  // std::runtime_error naming the listener and its config line if a
  // credential file cannot be loaded, or ListenError if the address cannot
  // be used.
  // `inputs`: the buses of the streams its subscribers get (config.inputs).
  SubscriberListener(const ListenerConfig& config, std::vector<Bus*> inputs, WriterPool& writers,
                     Histogram& writeLatency, const Poco::Net::ServerSocket* inherited = nullptr);
  ~SubscriberListener();
  SubscriberListener(const SubscriberListener&) = delete;
  SubscriberListener& operator=(const SubscriberListener&) = delete;

  void start();
  // Stops accepting; connections not yet accepted wait in the socket's
  // backlog (for a successor that took the socket). Idempotent.
  void stopAccepting();
  // Closes the listening socket: the port is free at once, whatever the
  // sessions still closing (a listener removed, or the relay stopping).
  void closeSocket();
  // After stopAccepting(): closes every session with `reason`, those still in
  // their TLS handshake or hello included, and waits, until the deadline, for
  // the writers to have let go of them all (then the listener may be
  // destroyed). Returns how many were closed; -1 if some were still open at
  // the deadline.
  int closeSubscribers(CloseReason reason, std::chrono::steady_clock::time_point deadline);

  // Whether a listener configured with `bind` may take over this one's
  // listening socket: the same address (port 0 included: it keeps the port).
  bool listensOn(const std::string& bind) const;
  const Poco::Net::ServerSocket& listeningSocket() const { return socket_; }

  // Applies the keys that a running listener takes in place (those marked
  // Reload::InPlace in keys.cpp: allow, queue, limits, timeouts, tls files,
  // auth) and reads its certificate, key, client CA, tokens file and JWT key
  // again: new clients get them all; connected subscribers keep their
  // session, except those the new allow list refuses (closed, reason
  // `removed`). A credential that cannot be loaded leaves the previous ones
  // (named in `credentialsProblem`); the other keys still apply.
  struct UpdateResult {
    int closed = 0;                  // subscribers the allow list now refuses
    std::string credentialsProblem;  // empty: the credentials were (re)loaded
  };
  UpdateResult update(const ListenerConfig& next);
  // update() with the same config, for a listener whose files may have
  // changed while its keys did not (a renewed certificate, a rotated tokens
  // file): one line says what was read again, or why not.
  void reloadCredentials();

  // Its config as it was started: name, bind, inputs, framing, protocol and
  // tls.enabled never change; the keys update() changes are in liveConfig().
  const ListenerConfig& config() const { return config_; }
  ListenerConfig liveConfig() const;
  std::uint16_t port() const { return port_; }
  int clients() const { return clients_.load(); }   // admitted and not yet closed
  int pending() const { return pending_.load(); }   // in their TLS handshake or hello
  const ListenerCounters& counters() const { return counters_; }
  // The queues of its subscribers, pending ones included (for /stats).
  std::vector<const SubscriptionQueue*> subscriberQueues() const;

  // Called from the TCPServer threads.
  bool admit(const Poco::Net::StreamSocket& socket);
  void attach(const Poco::Net::StreamSocket& socket);

 private:
  // What update() may change, as it is now: read by the accept and writer
  // threads through live().
  struct Live {
    ListenerConfig config;
    std::shared_ptr<const TlsServerContext> tls;  // null: plain TCP
    std::shared_ptr<const Authenticator> auth;
  };
  std::shared_ptr<const Live> live() const;
  // Loads the credentials `config` names; throws std::runtime_error (one line).
  static std::shared_ptr<const Live> load(const ListenerConfig& config);

  void onClosed(SubscriberSession& session, CloseReason reason);
  void logDisconnect(SubscriberSession& session, CloseReason reason);
  // SessionSetup::admit: subscribes a session with a set-up once it is done.
  AdmissionResult admitSession(SubscriberSession& session, const protocol::Hello* hello);
  // Moves a session that finished its set-up from pending to admitted, if a
  // max_clients slot is free. Writer thread of that session.
  bool takeClientSlot(SubscriberSession& session);
  bool needsSetup() const { return config_.tls.enabled || protocol_->hasSetup(); }
  // Gives back what admit() took for a connection that never became a session.
  void releaseAdmission();
  SessionSetup setupFor(const Live& now);
  void logRefusal(const std::string& peer, const std::string& why);
  int sendBufferFor(int fd);

  const ListenerConfig config_;
  mutable std::mutex liveMutex_;
  std::shared_ptr<const Live> live_;
  const std::vector<Bus*> inputs_;
  const std::shared_ptr<const ListenerProtocol> protocol_;
  const SubscriberAdmission admission_;
  WriterPool& writers_;
  Histogram& writeLatency_;
  Poco::Net::ServerSocket socket_;
  std::uint16_t port_ = 0;
  Poco::ThreadPool pool_;
  std::unique_ptr<Poco::Net::TCPServer> server_;
  std::atomic<int> clients_{0};  // admitted and not yet closed
  std::atomic<int> pending_{0};  // accepted, set-up under way (needsSetup() listeners only)
  // The sessions attached and not yet closed (closeSubscribers, update).
  mutable std::mutex sessionsMutex_;
  std::condition_variable sessionsGone_;
  struct Attached {
    std::weak_ptr<SubscriptionQueue> queue;
    const SubscriptionQueue* key;  // the queue's address, to find it once it is gone
    sockaddr_storage peer;         // for an allow list changed by update()
    bool admitted;                 // holds a max_clients slot (else: pending)
  };
  std::vector<Attached> sessions_;
  ListenerCounters counters_;
  LogLimiter refusalLog_;
};

}  // namespace streamrelay
