// SPDX-License-Identifier: Apache-2.0
#pragma once
// A small RESP2 client: what a lease needs of Redis (SET NX PX, EVAL, AUTH)
// over one plain TCP connection, every call with a deadline. The relay does
// not link hiredis (the Redis sink is an optional plugin).
//
// RespParser reads replies from the bytes as they come, bounded: it never
// allocates what a length prefix claims (a bulk string is held only as its
// bytes arrive, and one over the limit is refused; an array's elements are
// added as they are parsed, never reserved from its count), and a reply it
// does not take (a bad prefix, a bad length, an array over the limits of
// elements, depth or bytes, or any array by default) is a RespError.
//
// Used by one thread at a time. Not copyable.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace streamrelay {

class ClientSocket;

struct RespError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// The bytes broke RESP or the parser's limits (the others: the connection, a deadline, a stop).
struct RespProtocolError : RespError {
  using RespError::RespError;
};

struct RespReply {
  enum class Type { Simple, Error, Integer, Bulk, Null, Array };  // Null: a null bulk string or array
  Type type = Type::Null;
  std::string text;          // Simple, Error, Bulk
  std::int64_t integer = 0;  // Integer
  std::vector<RespReply> elements;  // Array
};

class RespParser {
 public:
  static constexpr std::size_t kMaxBulkBytes = 64 * 1024;  // a lease's replies are a few bytes
  static constexpr std::size_t kMaxLineBytes = 4096;       // a status, an error, a length
  // What one parser takes. The defaults are a lease's: no arrays.
  struct Limits {
    std::size_t maxBulkBytes = kMaxBulkBytes;
    std::size_t maxElements = 0;    // of all the arrays of one reply together (0: arrays refused)
    std::size_t maxDepth = 0;       // arrays inside arrays: [[x]] is 2
    std::size_t maxReplyBytes = 0;  // of the bulk strings of one reply together (0: maxBulkBytes)
  };
  RespParser() = default;
  explicit RespParser(const Limits& limits) : limits_(limits) {}
  // Takes bytes; throws RespError when more is unparsed than one bulk string
  // and a line may take.
  void feed(const char* data, std::size_t size);
  // The next whole reply, if one came; throws RespError if the bytes are bad.
  std::optional<RespReply> next();
  std::size_t buffered() const { return in_.size() - at_; }

 private:
  std::optional<std::string> line();  // up to CRLF, at most kMaxLineBytes
  // Where a finished value goes: into the array being filled, or out as a reply.
  std::optional<RespReply> finish(RespReply value);

  struct Open {
    RespReply array;
    std::size_t left;  // elements still to come
  };
  Limits limits_;
  std::string in_;
  std::size_t at_ = 0;
  std::optional<std::int64_t> bulkLength_;  // a bulk string's header was read, its bytes are awaited
  std::vector<Open> open_;                  // the arrays of the reply being parsed, outermost first
  std::size_t elements_ = 0;                // announced by them so far
  std::size_t replyBytes_ = 0;              // of its bulk strings so far
};

// Builds a command as RESP (an array of bulk strings).
std::string respCommand(const std::vector<std::string>& args);

class RespClient {
 public:
  using Clock = std::chrono::steady_clock;
  // Connects by `deadline`, giving up when `stopFd` is readable; then AUTH
  // if `password` is set. Throws RespError (one line).
  // `limits`: what its replies may hold (the defaults: no arrays).
  RespClient(const std::string& host, int port, const std::string& password, Clock::time_point deadline, int stopFd,
             const RespParser::Limits& limits = {});
  ~RespClient();
  RespClient(const RespClient&) = delete;
  RespClient& operator=(const RespClient&) = delete;
  // Sends the command and reads its reply by `deadline`. Throws RespError
  // (the connection is then unusable); an error reply is returned as such.
  RespReply call(const std::vector<std::string>& args, Clock::time_point deadline);
  // The same, giving up when `stopFd` (-1: never) is readable instead of the constructor's.
  RespReply call(const std::vector<std::string>& args, Clock::time_point deadline, int stopFd);
  // Pub/sub: the next reply the server sends unasked (a subscription's
  // message), by `deadline`; none if none came by then. Throws RespError as call().
  std::optional<RespReply> receive(Clock::time_point deadline);

 private:
  // Reads until a whole reply; none at `deadline` if `quietIsFine`, else a RespError naming `what`.
  std::optional<RespReply> read(Clock::time_point deadline, const std::string& what, bool quietIsFine, int stopFd);

  std::unique_ptr<ClientSocket> socket_;
  RespParser parser_;
  int stopFd_;
};

}  // namespace streamrelay
