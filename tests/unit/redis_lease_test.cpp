// SPDX-License-Identifier: Apache-2.0
// The RESP parser on bad input, and the Redis lease against a real
// redis-server started on an ephemeral loopback port.

#include <catch2/catch.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "free_port.hpp"
#include "redis_lease.hpp"
#include "redis_url.hpp"
#include "resp_client.hpp"

extern char** environ;

using namespace streamrelay;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

std::vector<RespReply> parseAll(RespParser& p) {
  std::vector<RespReply> out;
  while (auto r = p.next()) out.push_back(*r);
  return out;
}

// Checks `condition` until it holds or `timeout` passes.
bool pollUntilTrue(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);  // a poll's interval, not synchronisation
  }
  return true;
}

// redis-server on a loopback port, nothing on disk; killed at the end.
class RedisServer {
 public:
  RedisServer() : port_(test::freePort()) {
    const std::string port = std::to_string(port_);
    std::vector<std::string> args{"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                  "no", "--logfile", "/dev/null"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    REQUIRE(::posix_spawn(&pid_, "/usr/bin/redis-server", nullptr, nullptr, argv.data(), environ) == 0);
    REQUIRE(pollUntilTrue([&] {
      try {
        RespClient c("127.0.0.1", port_, "", Clock::now() + 1s, -1);
        return c.call({"PING"}, Clock::now() + 1s).text == "PONG";
      } catch (const RespError&) {
        return false;
      }
    }));
  }
  ~RedisServer() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  RespReply call(const std::vector<std::string>& args) {
    RespClient c("127.0.0.1", port_, "", Clock::now() + 2s, -1);
    return c.call(args, Clock::now() + 2s);
  }
  int port() const { return port_; }

 private:
  int port_;
  pid_t pid_ = -1;
};

LeaseOptions optionsFor(const RedisServer& redis, const std::string& token, int ttlMs = 600) {
  LeaseOptions o;
  o.host = "127.0.0.1";
  o.port = redis.port();
  o.key = "lease:test";
  o.ttlMs = ttlMs;
  o.token = token;
  return o;
}

// What onLost said, waited for with a deadline.
struct LostFlag {
  std::mutex mutex;
  std::condition_variable changed;
  std::string why;
  Clock::time_point at;
  bool lost = false;
  std::function<void(const std::string&)> callback() {
    return [this](const std::string& w) {
      std::lock_guard<std::mutex> lock(mutex);
      why = w;
      at = Clock::now();
      lost = true;
      changed.notify_all();
    };
  }
  bool wait(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex);
    return changed.wait_for(lock, timeout, [&] { return lost; });
  }
};

}  // namespace

TEST_CASE("resp parser: whole replies and replies split across reads", "[lease][resp]") {
  RespParser p;
  const std::string bytes = "+OK\r\n-ERR wrong\r\n:42\r\n:-7\r\n$5\r\nhe\r\nl\r\n$-1\r\n$0\r\n\r\n";
  for (char c : bytes) p.feed(&c, 1);  // byte by byte
  const auto replies = parseAll(p);
  REQUIRE(replies.size() == 7);
  CHECK((replies[0].type == RespReply::Type::Simple && replies[0].text == "OK"));
  CHECK((replies[1].type == RespReply::Type::Error && replies[1].text == "ERR wrong"));
  CHECK(replies[2].integer == 42);
  CHECK(replies[3].integer == -7);
  CHECK((replies[4].type == RespReply::Type::Bulk && replies[4].text == "he\r\nl"));
  CHECK(replies[5].type == RespReply::Type::Null);
  CHECK((replies[6].type == RespReply::Type::Bulk && replies[6].text.empty()));
}

TEST_CASE("resp parser: a truncated reply is no reply yet", "[lease][resp]") {
  for (const std::string truncated : {"+O", "+OK\r", ":12", "$5\r\nab", "$5\r\nabcde\r", "$5"}) {
    RespParser p;
    p.feed(truncated.data(), truncated.size());
    CHECK_FALSE(p.next().has_value());
  }
}

TEST_CASE("resp parser: a huge length prefix is refused before any byte of it is held", "[lease][resp]") {
  for (const std::string huge : {"$99999999999\r\n", "$9223372036854775807\r\n", "$65537\r\n", "$-2\r\n", "$12x\r\n",
                                 "$\r\n", "$99999999999999999999999\r\n"}) {
    RespParser p;
    p.feed(huge.data(), huge.size());
    CHECK_THROWS_AS(p.next(), RespError);
  }
  RespParser p;  // a whole 64 KiB bulk string is fine
  std::string ok = "$65536\r\n" + std::string(65536, 'x') + "\r\n";
  p.feed(ok.data(), ok.size());
  auto r = p.next();
  REQUIRE(r);
  CHECK(r->text.size() == 65536);
}

TEST_CASE("resp parser: a wrong type or bad bytes are a clear error", "[lease][resp]") {
  for (const std::string bad : {"*2\r\n$1\r\na\r\n$1\r\nb\r\n", "%1\r\n", "hello\r\n", "\r\n", ":12a\r\n", ":\r\n",
                                "$3\r\nabcXY"}) {
    RespParser p;
    p.feed(bad.data(), bad.size());
    CHECK_THROWS_AS(p.next(), RespError);
  }
  RespParser p;  // a line that never ends is refused once it is too long
  const std::string endless(RespParser::kMaxLineBytes + 1, 'a');
  const std::string line = "+" + endless;
  p.feed(line.data(), line.size());
  CHECK_THROWS_AS(p.next(), RespError);
  RespParser q;  // more unparsed bytes than any reply of a lease: refused as they come
  const std::string flood(RespParser::kMaxBulkBytes + RespParser::kMaxLineBytes + 1, 'x');
  CHECK_THROWS_AS(q.feed(flood.data(), flood.size()), RespError);
}

TEST_CASE("redis url", "[lease][resp]") {
  std::string host;
  int port = 0;
  CHECK((parseRedisUrl("redis://127.0.0.1:6379", host, port) && host == "127.0.0.1" && port == 6379));
  CHECK((parseRedisUrl("redis://[::1]:7000", host, port) && host == "::1" && port == 7000));
  for (const char* bad : {"redis://host", "http://h:1", "redis://:1", "redis://h:0", "redis://h:65536", "redis://h:1x",
                          "redis://u:p@h:1"})
    CHECK_FALSE(parseRedisUrl(bad, host, port));
}

TEST_CASE("lease: one holder that renews while it holds and another that takes it once released", "[lease]") {
  RedisServer redis;
  RedisLease a(optionsFor(redis, "a")), b(optionsFor(redis, "b"));
  std::string why;
  REQUIRE(a.tryAcquire(-1, why));
  CHECK(why.empty());
  CHECK_FALSE(b.tryAcquire(-1, why));
  CHECK(why.empty());  // held by another: not an error
  LostFlag lost;
  a.hold(lost.callback());
  // A renewal puts the ttl back up: seen as a PTTL above what it had fallen to.
  REQUIRE(pollUntilTrue([&] { return redis.call({"PTTL", "lease:test"}).integer < 450; }));
  REQUIRE(pollUntilTrue([&] { return redis.call({"PTTL", "lease:test"}).integer > 500; }));
  CHECK(redis.call({"GET", "lease:test"}).text == "a");
  CHECK_FALSE(lost.lost);
  CHECK(a.release().empty());
  CHECK(redis.call({"EXISTS", "lease:test"}).integer == 0);
  CHECK(b.tryAcquire(-1, why));
  CHECK(b.release().empty());
}

TEST_CASE("lease: a renewal refused (the key is another's) calls onLost and release never deletes another's key", "[lease]") {
  RedisServer redis;
  RedisLease a(optionsFor(redis, "a"));
  std::string why;
  REQUIRE(a.tryAcquire(-1, why));
  LostFlag lost;
  a.hold(lost.callback());
  redis.call({"SET", "lease:test", "intruder", "PX", "60000"});
  REQUIRE(lost.wait(2s));
  CHECK(lost.why.find("no longer holds our token") != std::string::npos);
  CHECK_FALSE(a.holding());
  CHECK(a.release().empty());
  CHECK(redis.call({"GET", "lease:test"}).text == "intruder");
}

TEST_CASE("lease: a renewal not answered gives up before the ttl can expire", "[lease]") {
  RedisServer redis;
  constexpr int kTtlMs = 600;
  RedisLease a(optionsFor(redis, "a", kTtlMs));
  std::string why;
  REQUIRE(a.tryAcquire(-1, why));
  LostFlag lost;
  a.hold(lost.callback());
  redis.call({"CLIENT", "PAUSE", "5000", "ALL"});  // Redis answers no one for 5 s
  const Clock::time_point paused = Clock::now();
  REQUIRE(lost.wait(5s));
  CHECK(lost.why.find("in time") != std::string::npos);
  // Before the key could have expired: at most ttl after the last renewal sent (itself after `before`)...
  CHECK(lost.at < paused + std::chrono::milliseconds(kTtlMs));
  CHECK_FALSE(a.holding());  // (the paused server is killed with the test)
}

TEST_CASE("lease: Redis unreachable is an error and not a lease held by another", "[lease]") {
  LeaseOptions o;
  o.host = "127.0.0.1";
  o.port = test::freePort();
  o.key = "k";
  o.token = "t";
  RedisLease a(o);
  std::string why;
  CHECK_FALSE(a.tryAcquire(-1, why));
  CHECK_FALSE(why.empty());
}
