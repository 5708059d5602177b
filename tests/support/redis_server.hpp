// SPDX-License-Identifier: Apache-2.0
#pragma once
// A real redis-server for the integration tests (the redis sink's and the
// redis source's), with hiredis to look into it. Catch2 assertions inside:
// include only from test files built where the redis plugin is.

#include <catch2/catch.hpp>

#include <hiredis/hiredis.h>

#include <csignal>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "free_port.hpp"
#include "relay_fixture.hpp"

namespace streamrelay::test {

// redis-server on a loopback port, its data in `dir`: every write is in the
// append-only file before Redis acknowledges it (appendfsync always), so a
// SIGKILL loses nothing it acknowledged.
class RedisServer {
 public:
  explicit RedisServer(std::string dir) : dir_(std::move(dir)), port_(freePort()) { start(); }

  void start() {
    process_ = std::make_unique<ChildProcess>(
        "/usr/bin/redis-server",
        std::vector<std::string>{"--port", std::to_string(port_), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                 "yes", "--appendfsync", "always", "--dir", dir_, "--logfile", dir_ + "/redis.log"});
    REQUIRE(pollUntil([&] { return ping(); }, 20s));
  }
  void kill() {
    process_->signal(SIGKILL);
    process_->waitForExit();
  }
  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

  bool ping() const {
    redisContext* c = redisConnect("127.0.0.1", port_);
    bool ok = false;
    if (c && !c->err) {
      auto* reply = static_cast<redisReply*>(redisCommand(c, "PING"));
      ok = reply && reply->type == REDIS_REPLY_STATUS;
      if (reply) freeReplyObject(reply);
    }
    if (c) redisFree(c);
    return ok;
  }

  // Runs one command (its words as given); true if Redis did not answer with an error.
  bool command(const std::vector<std::string>& words) const {
    redisContext* c = redisConnect("127.0.0.1", port_);
    bool ok = false;
    if (c && !c->err) {
      std::vector<const char*> argv;
      std::vector<std::size_t> lengths;
      for (const std::string& w : words) {
        argv.push_back(w.data());
        lengths.push_back(w.size());
      }
      auto* reply = static_cast<redisReply*>(
          redisCommandArgv(c, static_cast<int>(words.size()), argv.data(), lengths.data()));
      ok = reply && reply->type != REDIS_REPLY_ERROR;
      if (reply) freeReplyObject(reply);
    }
    if (c) redisFree(c);
    return ok;
  }

  long long xlen(const std::string& key) const {
    redisContext* c = redisConnect("127.0.0.1", port_);
    long long n = -1;
    if (c && !c->err) {
      auto* reply = static_cast<redisReply*>(redisCommand(c, "XLEN %s", key.c_str()));
      if (reply && reply->type == REDIS_REPLY_INTEGER) n = reply->integer;
      if (reply) freeReplyObject(reply);
    }
    if (c) redisFree(c);
    return n;
  }

  // seq -> how many entries of the stream carry it, and each payload.
  std::map<std::uint64_t, int> seqs(const std::string& key, std::map<std::uint64_t, std::string>* payloads = nullptr) const {
    std::map<std::uint64_t, int> counts;
    redisContext* c = redisConnect("127.0.0.1", port_);
    REQUIRE((c && !c->err));
    std::string from = "-";
    for (;;) {
      auto* reply = static_cast<redisReply*>(redisCommand(c, "XRANGE %s %s + COUNT 5000", key.c_str(), from.c_str()));
      REQUIRE(reply);
      REQUIRE(reply->type == REDIS_REPLY_ARRAY);
      if (reply->elements == 0) {
        freeReplyObject(reply);
        break;
      }
      for (std::size_t i = 0; i < reply->elements; ++i) {
        redisReply* entry = reply->element[i];
        from = "(" + std::string(entry->element[0]->str);  // exclusive: the next page starts after it
        redisReply* fields = entry->element[1];
        std::uint64_t seq = 0;
        std::string payload;
        for (std::size_t f = 0; f + 1 < fields->elements; f += 2) {
          const std::string name = fields->element[f]->str;
          const std::string value(fields->element[f + 1]->str, fields->element[f + 1]->len);
          if (name == "seq") seq = std::stoull(value);
          if (name == "payload") payload = value;
        }
        ++counts[seq];
        if (payloads) (*payloads)[seq] = payload;
      }
      freeReplyObject(reply);
    }
    redisFree(c);
    return counts;
  }

 private:
  std::string dir_;
  int port_;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace streamrelay::test
