// SPDX-License-Identifier: Apache-2.0
#pragma once
// SubscriberListener: one configured listener. POCO's TCPServer accepts;
// a connection filter admits (allow list, max_clients) so that a refused
// client is closed at once instead of waiting in POCO's queue; the pool thread
// that runs a connection only hands its socket to a SubscriberWriter and
// returns, so a handful of pool threads serve any number of subscribers.
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
#include <vector>

#include "authenticator.hpp"
#include "bus.hpp"
#include "config.hpp"
#include "log_limiter.hpp"
#include "subscriber_writer.hpp"

namespace streamrelay {

struct ListenerCounters {
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> refusedMaxClients{0};
  std::atomic<std::uint64_t> refusedAllow{0};
  std::atomic<std::uint64_t> lostBeforeAdmission{0};  // reset by the client before it could be admitted
  std::atomic<std::uint64_t> nearPeers{0};  // send_buffer_bytes auto: subscribers given the near-peer buffer
  std::atomic<std::uint64_t> disconnects[kCloseReasonCount]{};  // by CloseReason
};

class SubscriberListener {
 public:
  // Binds the socket; throws std::runtime_error naming the listener and its
  // config line if the address cannot be used.
  // `inputs`: the buses of the streams its subscribers get (config.inputs).
  SubscriberListener(const ListenerConfig& config, std::vector<Bus*> inputs, WriterPool& writers,
                     Histogram& writeLatency);
  ~SubscriberListener();
  SubscriberListener(const SubscriberListener&) = delete;
  SubscriberListener& operator=(const SubscriberListener&) = delete;

  void start();
  void stopAccepting();
  // After stopAccepting(): closes every subscriber with `reason` and waits,
  // until the deadline, for the writers to have let go of them all (then the
  // listener may be destroyed). Returns how many were closed; -1 if some were
  // still open at the deadline.
  int closeSubscribers(CloseReason reason, std::chrono::steady_clock::time_point deadline);
  // Keys a running listener takes without a restart: allow, queue,
  // write_deadline_ms, send_buffer_bytes, heartbeat_ms (the rest need a new
  // listener).
  static bool changesInPlace(const ListenerConfig& from, const ListenerConfig& to);
  // Applies those keys: new subscribers get the new queue and deadlines;
  // subscribers the new allow list refuses are closed (reason `removed`).
  // Returns how many were closed. Reloads the credentials too.
  int update(const ListenerConfig& next);
  // Reads the certificate, key, client CA, tokens file and JWT key again
  // (config reload): new clients get them, connected ones keep their session.
  // A file that cannot be used is one error line; the previous ones stay.
  void reloadCredentials(const ListenerConfig& next);

  // Its config as it was started (name, bind, inputs, framing never change).
  const ListenerConfig& config() const { return config_; }
  std::uint16_t port() const { return port_; }
  int clients() const { return clients_.load(); }
  const ListenerCounters& counters() const { return counters_; }

  // Called from the TCPServer threads.
  bool admit(const Poco::Net::StreamSocket& socket);
  void attach(const Poco::Net::StreamSocket& socket);

 private:
  void onClosed(SubscriberSession& session, CloseReason reason);
  // SessionSetup::admit: subscribes a TLS or streamrelay session once it is set up.
  std::string admitSession(SubscriberSession& session, const std::string* helloLine, CloseReason& refused);
  std::string admitHello(SubscriberSession& session, const std::string& helloLine, CloseReason& refused,
                         std::string& described);
  SessionSetup setupFor();
  void logRefusal(const std::string& peer, const std::string& why);
  int sendBufferFor(int fd);

  const ListenerConfig config_;
  // The keys update() may change, as they are now; read by the accept and
  // writer threads through soft().
  struct Soft {
    CidrList allow;
    QueueLimits queue;
    int writeDeadlineMs;
    int sendBufferBytes;
    int heartbeatMs;
  };
  std::shared_ptr<const Soft> soft() const;
  mutable std::mutex softMutex_;
  std::shared_ptr<const Soft> soft_;
  // Credentials, rebuilt by reloadCredentials(); guarded by softMutex_.
  std::shared_ptr<const TlsServerContext> tls_;    // null: plain TCP
  std::shared_ptr<const Authenticator> auth_;
  const std::vector<Bus*> inputs_;
  WriterPool& writers_;
  Histogram& writeLatency_;
  Poco::Net::ServerSocket socket_;
  std::uint16_t port_ = 0;
  Poco::ThreadPool pool_;
  std::unique_ptr<Poco::Net::TCPServer> server_;
  std::atomic<int> clients_{0};  // admitted and not yet closed
  // The queues of the sessions attached and not yet closed (closeSubscribers).
  std::mutex sessionsMutex_;
  std::condition_variable sessionsGone_;
  struct Attached {
    std::weak_ptr<SubscriptionQueue> queue;
    sockaddr_storage peer;  // for an allow list changed by update()
  };
  std::vector<Attached> sessionQueues_;
  ListenerCounters counters_;
  LogLimiter refusalLog_;
};

}  // namespace streamrelay
