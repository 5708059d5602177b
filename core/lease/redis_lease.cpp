// SPDX-License-Identifier: Apache-2.0
#include "redis_lease.hpp"

#include <unistd.h>

#include <random>

#include "resp_client.hpp"

namespace streamrelay {

namespace {
// KEYS[1] = the key, ARGV[1] = our token, ARGV[2] = the ttl in ms.
const char* const kRenewScript =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
const char* const kReleaseScript =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";
}  // namespace

std::string newLeaseToken() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::random_device random;
  const std::uint64_t bits = (static_cast<std::uint64_t>(random()) << 32) ^ random();
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(bits));
  return std::string(host) + ":" + std::to_string(::getpid()) + ":" + hex;
}

RedisLease::RedisLease(LeaseOptions options) : options_(std::move(options)) {}

RedisLease::~RedisLease() { stopRenewals(); }

std::chrono::milliseconds RedisLease::margin() const {
  return std::chrono::milliseconds(std::max(1, options_.ttlMs / 5));
}

RedisLease::Clock::time_point RedisLease::validUntil() const {
  return Clock::time_point(Clock::duration(validUntil_.load()));
}

template <class Call>
auto RedisLease::withClient(Clock::time_point deadline, int stopFd, Call&& call) {
  std::lock_guard<std::mutex> lock(clientMutex_);
  try {
    if (!client_) client_ = std::make_unique<RespClient>(options_.host, options_.port, options_.password, deadline, stopFd);
    return call(*client_);
  } catch (const RespError&) {
    client_.reset();  // a connection in an unknown state is never used again
    throw;
  }
}

bool RedisLease::tryAcquire(int stopFd, std::string& why) {
  why.clear();
  const Clock::time_point sent = Clock::now();
  const Clock::time_point deadline = sent + std::chrono::milliseconds(std::max(1, options_.ttlMs / 3));
  try {
    const RespReply reply = withClient(deadline, stopFd, [&](RespClient& c) {
      return c.call({"SET", options_.key, options_.token, "NX", "PX", std::to_string(options_.ttlMs)}, deadline, stopFd);
    });
    if (reply.type == RespReply::Type::Null) return false;  // another holds it
    if (reply.type == RespReply::Type::Simple && reply.text == "OK") {
      validUntil_ = (sent + std::chrono::milliseconds(options_.ttlMs) - margin()).time_since_epoch().count();
      holding_ = true;
      return true;
    }
    why = "SET NX answered " + (reply.type == RespReply::Type::Error ? "an error: " : std::string("'")) +
          reply.text.substr(0, 200) + (reply.type == RespReply::Type::Error ? "" : "'");
  } catch (const RespError& e) {
    why = e.what();
  }
  return false;
}

void RedisLease::hold(std::function<void(const std::string&)> onLost) {
  stopRenewals();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopRenewals_ = false;
  }
  renewer_ = std::thread([this, onLost = std::move(onLost)] { renewals(onLost); });
}

void RedisLease::renewals(std::function<void(const std::string&)> onLost) {
  const auto every = std::chrono::milliseconds(std::max(1, options_.ttlMs / 3));
  const auto ttl = std::chrono::milliseconds(options_.ttlMs);
  Clock::time_point lastSent = validUntil() - ttl + margin();
  auto lose = [&](const std::string& why) {
    holding_ = false;
    onLost(why);
  };
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (changed_.wait_until(lock, lastSent + every, [&] { return stopRenewals_; })) return;
    }
    const Clock::time_point sent = Clock::now();
    const Clock::time_point giveUp = validUntil();
    if (sent >= giveUp) return lose("the renewal is late (the lease may expire)");
    std::string why;
    try {
      const RespReply reply = withClient(giveUp, -1, [&](RespClient& c) {
        return c.call({"EVAL", kRenewScript, "1", options_.key, options_.token, std::to_string(options_.ttlMs)}, giveUp, -1);
      });
      if (reply.type == RespReply::Type::Integer && reply.integer == 1) {
        lastSent = sent;
        validUntil_ = (sent + ttl - margin()).time_since_epoch().count();
        continue;
      }
      why = reply.type == RespReply::Type::Integer ? "the key no longer holds our token (expired or taken)"
                                                    : "the renewal answered: " + reply.text.substr(0, 200);
    } catch (const RespError& e) {
      why = std::string("the renewal failed: ") + e.what();
    }
    return lose(why);
  }
}

void RedisLease::stopRenewals() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopRenewals_ = true;
  }
  changed_.notify_all();
  if (renewer_.joinable()) renewer_.join();
}

std::string RedisLease::release(std::chrono::milliseconds timeout) {
  stopRenewals();
  if (!holding_.exchange(false)) return "";
  const Clock::time_point deadline = Clock::now() + timeout;
  try {
    const RespReply reply = withClient(deadline, -1, [&](RespClient& c) {
      return c.call({"EVAL", kReleaseScript, "1", options_.key, options_.token}, deadline, -1);
    });
    if (reply.type == RespReply::Type::Integer) return "";
    return "the release answered: " + reply.text.substr(0, 200);
  } catch (const RespError& e) {
    return std::string("the release failed: ") + e.what();
  }
}

}  // namespace streamrelay
