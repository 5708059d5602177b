// SPDX-License-Identifier: Apache-2.0
#include "resp_client.hpp"

#include <cstring>

#include "client_socket.hpp"

namespace streamrelay {

void RespParser::feed(const char* data, std::size_t size) {
  if (at_ > 0 && at_ == in_.size()) {
    in_.clear();
    at_ = 0;
  }
  // Parsed values leave the buffer: more unparsed bytes than a bulk string's limit is a bad peer.
  const std::size_t most = limits_.maxBulkBytes + kMaxLineBytes;
  if (buffered() + size > most) throw RespProtocolError("more than " + std::to_string(most) + " bytes of unparsed reply");
  if (at_ > 0 && at_ >= in_.size() / 2) {  // what was parsed goes: the buffer stays about `most`
    in_.erase(0, at_);
    at_ = 0;
  }
  in_.append(data, size);
}

std::optional<std::string> RespParser::line() {
  const std::size_t end = in_.find("\r\n", at_);
  if (end == std::string::npos) {
    if (buffered() > kMaxLineBytes) throw RespProtocolError("a reply line longer than " + std::to_string(kMaxLineBytes) + " bytes");
    return std::nullopt;
  }
  if (end - at_ > kMaxLineBytes) throw RespProtocolError("a reply line longer than " + std::to_string(kMaxLineBytes) + " bytes");
  std::string text = in_.substr(at_, end - at_);
  at_ = end + 2;
  return text;
}

namespace {
std::int64_t integerOf(const std::string& digits, const char* what) {
  std::size_t i = digits.size() > 0 && digits[0] == '-' ? 1 : 0;
  if (i == digits.size() || digits.size() - i > 18) throw RespProtocolError(std::string("a bad ") + what + ": '" + digits.substr(0, 40) + "'");
  std::int64_t value = 0;
  for (; i < digits.size(); ++i) {
    if (digits[i] < '0' || digits[i] > '9') throw RespProtocolError(std::string("a bad ") + what + ": '" + digits.substr(0, 40) + "'");
    value = value * 10 + (digits[i] - '0');
  }
  return digits[0] == '-' ? -value : value;
}
}  // namespace

std::optional<RespReply> RespParser::finish(RespReply value) {
  while (!open_.empty()) {
    Open& top = open_.back();
    top.array.elements.push_back(std::move(value));
    if (--top.left > 0) return std::nullopt;  // more elements of it to come
    value = std::move(top.array);
    open_.pop_back();
  }
  elements_ = 0;
  replyBytes_ = 0;
  return value;
}

std::optional<RespReply> RespParser::next() {
  for (;;) {
    if (!bulkLength_) {
      if (buffered() == 0) return std::nullopt;
      const std::size_t start = at_;
      std::optional<std::string> header = line();
      if (!header) return std::nullopt;
      if (header->empty()) throw RespProtocolError("an empty reply line");
      const char kind = (*header)[0];
      const std::string rest = header->substr(1);
      std::optional<RespReply> done;
      switch (kind) {
        case '+': done = finish(RespReply{RespReply::Type::Simple, rest, 0, {}}); break;
        case '-': done = finish(RespReply{RespReply::Type::Error, rest, 0, {}}); break;
        case ':': done = finish(RespReply{RespReply::Type::Integer, "", integerOf(rest, "integer reply"), {}}); break;
        case '$': {
          const std::int64_t length = integerOf(rest, "bulk length");
          if (length == -1) {
            done = finish(RespReply{RespReply::Type::Null, "", 0, {}});
            break;
          }
          if (length < 0) throw RespProtocolError("a bulk length of " + rest);
          const std::size_t replyMost = limits_.maxReplyBytes ? limits_.maxReplyBytes : limits_.maxBulkBytes;
          if (static_cast<std::uint64_t>(length) > limits_.maxBulkBytes)
            throw RespProtocolError("a bulk string of " + rest + " bytes announced, over " +
                            std::to_string(limits_.maxBulkBytes));
          if (static_cast<std::size_t>(length) > replyMost - replyBytes_)
            throw RespProtocolError("a reply of more than " + std::to_string(replyMost) + " bytes of strings");
          replyBytes_ += static_cast<std::size_t>(length);
          bulkLength_ = length;
          break;
        }
        case '*': {
          if (limits_.maxElements == 0) throw RespProtocolError("an array reply (a lease's commands answer with one value)");
          const std::int64_t count = integerOf(rest, "array length");
          if (count == -1) {
            done = finish(RespReply{RespReply::Type::Null, "", 0, {}});
            break;
          }
          if (count < 0) throw RespProtocolError("an array length of " + rest);
          // Checked against what is left of the limit before anything is held: never reserved.
          if (static_cast<std::uint64_t>(count) > limits_.maxElements - elements_)
            throw RespProtocolError("an array of " + rest + " elements announced, over " +
                            std::to_string(limits_.maxElements) + " in one reply");
          if (count == 0) {
            done = finish(RespReply{RespReply::Type::Array, "", 0, {}});
            break;
          }
          if (open_.size() >= limits_.maxDepth)
            throw RespProtocolError("arrays nested deeper than " + std::to_string(limits_.maxDepth));
          elements_ += static_cast<std::size_t>(count);
          open_.push_back({RespReply{RespReply::Type::Array, "", 0, {}}, static_cast<std::size_t>(count)});
          continue;
        }
        default:
          at_ = start;
          throw RespProtocolError(std::string("a reply starting with byte ") +
                          std::to_string(static_cast<unsigned char>(kind)) + ", not one of + - : $ *");
      }
      if (done) return done;
      if (!bulkLength_) continue;  // an element of an array: the next one
    }
    const auto length = static_cast<std::size_t>(*bulkLength_);
    if (buffered() < length + 2) return std::nullopt;
    if (in_.compare(at_ + length, 2, "\r\n") != 0) throw RespProtocolError("a bulk string not ended by CRLF");
    RespReply bulk{RespReply::Type::Bulk, in_.substr(at_, length), 0, {}};
    at_ += length + 2;
    bulkLength_.reset();
    if (std::optional<RespReply> done = finish(std::move(bulk))) return done;
  }
}

std::string respCommand(const std::vector<std::string>& args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (const std::string& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return out;
}

RespClient::RespClient(const std::string& host, int port, const std::string& password, Clock::time_point deadline,
                       int stopFd, const RespParser::Limits& limits)
    : parser_(limits), stopFd_(stopFd) {
  try {
    socket_ = std::make_unique<ClientSocket>(host, port, nullptr, deadline, stopFd);
  } catch (const std::runtime_error& e) {
    throw RespError(e.what());
  }
  if (!password.empty()) {
    const RespReply reply = call({"AUTH", password}, deadline);
    if (reply.type == RespReply::Type::Error) throw RespError("AUTH refused: " + reply.text.substr(0, 200));
  }
}

RespClient::~RespClient() = default;

RespReply RespClient::call(const std::vector<std::string>& args, Clock::time_point deadline) {
  return call(args, deadline, stopFd_);
}

RespReply RespClient::call(const std::vector<std::string>& args, Clock::time_point deadline, int stopFd) {
  if (!socket_->writeAll(respCommand(args), deadline)) throw RespError("sending " + args.at(0) + ": " + socket_->error());
  return *read(deadline, args.at(0), false, stopFd);
}

std::optional<RespReply> RespClient::receive(Clock::time_point deadline) { return read(deadline, "", true, stopFd_); }

std::optional<RespReply> RespClient::read(Clock::time_point deadline, const std::string& what, bool quietIsFine,
                                          int stopFd) {
  char buffer[16384];
  for (;;) {
    if (std::optional<RespReply> reply = parser_.next()) return reply;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0 && quietIsFine) return std::nullopt;
    if (left <= 0) throw RespError("no reply to " + what + " in time");
    switch (socket_->waitReadable(stopFd, static_cast<int>(left))) {
      case ClientSocket::Wait::Stopped: throw RespError("stopped");
      case ClientSocket::Wait::TimedOut:
        if (quietIsFine) return std::nullopt;
        throw RespError("no reply to " + what + " in time");
      case ClientSocket::Wait::Readable: break;
    }
    const long n = socket_->read(buffer, sizeof buffer);
    if (n == ClientSocket::kWouldBlock) continue;
    if (n == ClientSocket::kFailed)
      throw RespError((what.empty() ? std::string("reading") : "reading the reply to " + what) + ": " + socket_->error());
    if (n == 0) throw RespError("the Redis server closed the connection");
    parser_.feed(buffer, static_cast<std::size_t>(n));
  }
}

}  // namespace streamrelay
