// SPDX-License-Identifier: Apache-2.0
#pragma once
// RedisLease: a lease on one Redis key (docs/fleet.md "Standby"). tryAcquire()
// is `SET key token NX PX ttl`; once held, hold() renews it on a thread of its
// own every ttl/3 with a compare-and-set script (PEXPIRE only if the key
// still holds our token). A renewal refused, failed, or not answered by
// ttl - margin after the last good one was sent calls `onLost` at once (from
// the renewal thread), and the lease is no longer held: the caller closes
// what the lease guarded before Redis can give the key to another. release()
// stops the renewals and deletes the key if it is still ours
// (compare-and-delete).
//
// tryAcquire(), hold() and release() are called by one owner thread; the
// renewal thread is the lease's own and release() (or the destructor) stops it.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace streamrelay {

class RespClient;

struct LeaseOptions {
  std::string host;
  int port = 6379;
  std::string password;  // AUTH, if set
  std::string key;
  int ttlMs = 5000;
  std::string token;  // who holds it: unique per process and acquisition
};

class RedisLease {
 public:
  using Clock = std::chrono::steady_clock;
  explicit RedisLease(LeaseOptions options);
  ~RedisLease();
  RedisLease(const RedisLease&) = delete;
  RedisLease& operator=(const RedisLease&) = delete;

  // One try, by ttl/3 at most or until `stopFd` is readable: true if the
  // lease is now ours. False with `why` empty when another holds it, with
  // `why` set when Redis could not be asked.
  bool tryAcquire(int stopFd, std::string& why);
  // Starts the renewals of a lease just acquired. `onLost(why)` is called at
  // most once, from the renewal thread.
  void hold(std::function<void(const std::string&)> onLost);
  // Stops the renewals and, if the lease is still held, deletes the key if
  // it still holds our token. Best effort within `timeout`; returns why it
  // could not ("" when released or not held).
  std::string release(std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));
  bool holding() const { return holding_.load(); }
  // Until when the lease is surely ours (the last good renewal's send + ttl - margin).
  Clock::time_point validUntil() const;
  const LeaseOptions& options() const { return options_; }
  // What is left of the ttl when a renewal that has not come gives up.
  std::chrono::milliseconds margin() const;

 private:
  void renewals(std::function<void(const std::string&)> onLost);
  void stopRenewals();
  // Calls with a connection made if none; throws RespError (and drops the connection).
  template <class Call>
  auto withClient(Clock::time_point deadline, int stopFd, Call&& call);

  const LeaseOptions options_;
  std::mutex clientMutex_;  // the owner and the renewal thread take turns
  std::unique_ptr<RespClient> client_;
  std::atomic<bool> holding_{false};
  std::atomic<Clock::rep> validUntil_{0};
  std::mutex mutex_;
  std::condition_variable changed_;
  bool stopRenewals_ = false;
  std::thread renewer_;
};

// A token for this process: host name, pid and random bits.
std::string newLeaseToken();

}  // namespace streamrelay
