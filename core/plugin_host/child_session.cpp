// SPDX-License-Identifier: Apache-2.0
#include "child_session.hpp"

#include <Poco/Logger.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "logging.hpp"

namespace streamrelay {

namespace {

Poco::Logger& logger() { return Poco::Logger::get("streamrelay.plugin"); }

// Per service() call, so that a child that floods cannot hold the supervisor.
constexpr std::size_t kReadBudget = 4 << 20;
// A line of the child's output longer than this is logged in pieces.
constexpr std::size_t kMaxOutputLine = 4096;

}  // namespace

ChildSession::ChildSession(const ChildStart& start, const std::vector<int>& ringFds, int codeFd) : name_(start.name) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
    throw std::runtime_error(std::string("cannot create the control channel: ") + std::strerror(errno));
  std::vector<int> fds{pair[1]};
  fds.insert(fds.end(), ringFds.begin(), ringFds.end());
  fds.push_back(codeFd);
  try {
    process_ = std::make_unique<PluginProcess>(start.name, fds);
  } catch (...) {
    ::close(pair[0]);
    ::close(pair[1]);
    throw;
  }
  ::close(pair[1]);
  control_ = pair[0];
  ::fcntl(control_, F_SETFL, O_NONBLOCK);
  outbox_ = encodeStart(start);
  flushOutbox();
}

ChildSession::~ChildSession() {
  process_.reset();  // kills and reaps it if it still runs
  ::close(control_);
}

void ChildSession::pollFds(std::vector<pollfd>& fds) const {
  if (controlOpen_) fds.push_back({control_, static_cast<short>(POLLIN | (outbox_.empty() ? 0 : POLLOUT)), 0});
  fds.push_back({process_->outputFd(), POLLIN, 0});
  if (process_->exitFd() >= 0) fds.push_back({process_->exitFd(), POLLIN, 0});
}

bool ChildSession::exitSignalled(const std::vector<pollfd>& polled) const {
  if (process_->exitFd() < 0) return true;
  for (const pollfd& p : polled)
    if (p.fd == process_->exitFd()) return p.revents != 0;
  return false;
}

bool ChildSession::service(Listener& listener, bool mayHaveExited) {
  if (exited_) return false;
  flushOutbox();
  if (controlOpen_) readMessages(listener);
  readOutput(false);
  int status = 0;
  if (!mayHaveExited || !process_->reap(status)) return true;
  // It is gone: what it wrote before it went is still to be read, in order.
  while (controlOpen_ && readMessages(listener)) {
  }
  readOutput(true);
  exited_ = true;
  status_ = status;
  return false;
}

// Returns true if there may be more to read now.
bool ChildSession::readMessages(Listener& listener) {
  char buffer[64 * 1024];
  std::size_t budget = kReadBudget;
  while (budget > 0 && controlOpen_) {
    const ssize_t n = ::recv(control_, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;  // EAGAIN (or an error the exit will explain)
    if (n == 0) {
      controlOpen_ = false;
      return false;
    }
    budget -= std::min(budget, static_cast<std::size_t>(n));
    incoming_.append(buffer, static_cast<std::size_t>(n));
    ChildMessage type{};
    std::string_view payload;
    std::string error;
    while (incoming_.next(type, payload, error))
      if (!handle(type, payload, listener)) return false;
    if (!error.empty()) {
      kill("it broke the control protocol (" + error + ")");
      controlOpen_ = false;
      return false;
    }
  }
  return controlOpen_;
}

bool ChildSession::handle(ChildMessage type, std::string_view payload, Listener& listener) {
  MessageParser p(payload.data(), payload.size());
  bool ok = true;
  switch (type) {
    case ChildMessage::Ready:
      listener.childReady();
      break;
    case ChildMessage::CreateFailed: {
      std::string why;
      ok = p.str(why);
      if (ok) listener.childRefused(oneLine(why));
      break;
    }
    case ChildMessage::Log: {
      std::uint32_t priority = 0;
      std::string source, text;
      ok = p.u32(priority) && p.str(source) && p.str(text);
      if (!ok) break;
      // Through the relay's own loggers, so its level and format apply.
      if (source.rfind("streamrelay", 0) != 0) source = "streamrelay.plugin";
      const auto prio = static_cast<Poco::Message::Priority>(
          std::clamp<std::uint32_t>(priority, Poco::Message::PRIO_FATAL, Poco::Message::PRIO_TRACE));
      Poco::Logger& to = Poco::Logger::get(source);
      if (to.is(prio)) to.log(Poco::Message(source, oneLine(text), prio));
      break;
    }
    case ChildMessage::Metrics: {
      std::uint64_t failures = 0;
      std::uint32_t count = 0;
      std::vector<std::pair<std::string, std::uint64_t>> counters;
      std::vector<std::pair<std::string, double>> gauges;
      ok = p.u64(failures) && p.u32(count);
      for (std::uint32_t i = 0; ok && i < count; ++i) {
        std::pair<std::string, std::uint64_t> c;
        ok = p.str(c.first) && p.u64(c.second);
        counters.push_back(std::move(c));
      }
      ok = ok && p.u32(count);
      for (std::uint32_t i = 0; ok && i < count; ++i) {
        std::pair<std::string, double> g;
        ok = p.str(g.first) && p.f64(g.second);
        gauges.push_back(std::move(g));
      }
      if (ok) listener.childMetrics(failures, counters, gauges);
      break;
    }
    case ChildMessage::Emit: {
      std::uint64_t acknowledged = 0;
      ok = p.u64(acknowledged) && EmittedFrames::wellFormed(std::string_view(p.rest(), p.left()));
      if (ok) listener.childEmitted(acknowledged, std::string_view(p.rest(), p.left()));
      break;
    }
    case ChildMessage::StatsRequest: {
      const std::string stats = listener.childWantsStats();
      outbox_ += MessageBuilder(ChildMessage::StatsReply).str(stats).finish();
      flushOutbox();
      break;
    }
    case ChildMessage::Disabled:
      listener.childDisabled();
      break;
    case ChildMessage::Ended:
      ended_ = true;
      listener.childEnded();
      break;
    default:
      ok = false;
  }
  if (type != ChildMessage::Emit) ok = ok && p.done();
  if (!ok) {
    kill("it broke the control protocol (a malformed message of type " +
         std::to_string(static_cast<std::uint32_t>(type)) + ")");
    controlOpen_ = false;
  }
  return ok;
}

void ChildSession::readOutput(bool all) {
  char buffer[16 * 1024];
  for (int reads = 0; all || reads < 4; ++reads) {
    const ssize_t n = ::read(process_->outputFd(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output_.append(buffer, static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (std::size_t nl; (nl = output_.find('\n', start)) != std::string::npos; start = nl + 1)
      logLine(std::string_view(output_).substr(start, nl - start));
    output_.erase(0, start);
    while (output_.size() > kMaxOutputLine) {
      logLine(std::string_view(output_).substr(0, kMaxOutputLine));
      output_.erase(0, kMaxOutputLine);
    }
  }
  if (all && !output_.empty()) {
    logLine(output_);
    output_.clear();
  }
}

void ChildSession::logLine(std::string_view line) {
  logger().warning("plugin %s (child %ld): %s", name_, pid(), oneLine(line));
}

void ChildSession::flushOutbox() {
  while (!outbox_.empty() && controlOpen_) {
    const ssize_t n = ::send(control_, outbox_.data(), outbox_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // full: POLLOUT brings us back; broken: the exit follows
    outbox_.erase(0, static_cast<std::size_t>(n));
  }
}

void ChildSession::sendStop(std::uint64_t lastRingSeq, std::int64_t deadlineSteadyNs, int reason) {
  outbox_ += MessageBuilder(ChildMessage::Stop).u64(lastRingSeq).i64(deadlineSteadyNs).u32(static_cast<std::uint32_t>(reason)).finish();
  flushOutbox();
}

void ChildSession::kill(const std::string& why) {
  if (killedBecause_.empty()) killedBecause_ = why;
  process_->kill();
}

}  // namespace streamrelay
