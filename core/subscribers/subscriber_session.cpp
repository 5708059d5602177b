#include "subscriber_session.hpp"

#include <Poco/Logger.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

namespace streamrelay {

namespace {
// Rounds of (take, write) per flush before other sessions get their turn.
constexpr int kFlushRounds = 8;
}  // namespace

SubscriberSession::SubscriberSession(std::uint64_t id, int fd, std::string peer,
                                     const FramingSpec& framing, QueuePtr queue, ClosedCallback onClosed,
                                     Histogram& writeLatency, std::chrono::milliseconds writeDeadline)
    : id_(id),
      fd_(fd),
      peer_(std::move(peer)),
      encoder_(framing),
      queue_(std::move(queue)),
      onClosed_(std::move(onClosed)),
      writeLatency_(writeLatency),
      writeDeadline_(writeDeadline) {}

SubscriberSession::~SubscriberSession() { close(CloseReason::Shutdown); }

std::size_t SubscriberSession::encodedBytes(const FrameBatch& batch, std::size_t i) const {
  std::string_view payload = batch.payload(i);
  return encoder_.canEncode(payload) ? encoder_.encodedSize(payload.size()) : 0;
}

int SubscriberSession::buildIov(WriteScratch& scratch) const {
  int n = 0;
  std::size_t skip = skipBytes_;
  for (const FrameSpan& span : outgoing_) {
    if (encoder_.isWireForm()) {
      if (n == WriteScratch::kMaxIov) break;
      scratch.iov[n++] = {const_cast<char*>(span.batch->wireBegin(span.first)) + skip, span.wireBytes() - skip};
      skip = 0;
      continue;
    }
    for (std::size_t i = span.first; i < span.end; ++i) {
      if (n + 3 > WriteScratch::kMaxIov) return n;
      std::string_view payload = span.batch->payload(i);
      if (!encoder_.canEncode(payload)) continue;
      n += encoder_.encode(payload, skip, scratch.headers[n], scratch.iov + n);
      skip = 0;
    }
  }
  return n;
}

// Drops what `written` bytes completed from the front of outgoing_.
void SubscriberSession::advance(std::size_t written) {
  written += skipBytes_;
  skipBytes_ = 0;
  std::uint64_t sent = 0, skipped = 0;
  const std::int64_t now = steadyNowNs();
  // Frames of one batch share a receive time: one latency sample per span.
  auto recordLatency = [&](const FrameSpan& span, std::uint64_t frames) {
    if (frames > 0) writeLatency_.record(static_cast<double>(now - span.batch->receivedSteadyNs()) / 1e9, frames);
  };
  while (!outgoing_.empty()) {
    FrameSpan& span = outgoing_.front();
    if (encoder_.isWireForm() && written >= span.wireBytes()) {
      written -= span.wireBytes();
      sent += span.frameCount();
      recordLatency(span, span.frameCount());
      outgoing_.pop_front();
      continue;
    }
    std::uint64_t spanSent = 0;
    while (span.first < span.end) {
      std::size_t bytes = encoder_.isWireForm() ? span.batch->wireBytes(span.first, span.first + 1)
                                                : encodedBytes(*span.batch, span.first);
      if (bytes == 0) ++skipped;
      else if (written >= bytes) ++spanSent;
      else break;
      written -= bytes;
      ++span.first;
    }
    sent += spanSent;
    recordLatency(span, spanSent);
    if (span.first < span.end) {
      skipBytes_ = written;
      break;
    }
    outgoing_.pop_front();
  }
  queue_->countDelivered(sent);
  if (skipped) framesSkipped_.fetch_add(skipped, std::memory_order_relaxed);
}

SubscriberSession::FlushResult SubscriberSession::flush(WriteScratch& scratch) {
  if (closeReason_ != CloseReason::None) return FlushResult::Closed;
  // A queue closed for shutdown is drained first; any other reason (a slow
  // consumer cut off, a listener removed by a reload) ends the session now.
  if (const CloseReason reason = queue_->closeReason();
      reason != CloseReason::None && reason != CloseReason::Shutdown) {
    closeReason_ = reason;
    return FlushResult::Closed;
  }
  for (int round = 0; round < kFlushRounds; ++round) {
    if (outgoing_.empty() && queue_->takeAll(outgoing_) == 0) return FlushResult::Idle;
    int iovCount = buildIov(scratch);
    if (iovCount == 0) {  // only frames this framing cannot carry
      advance(0);
      continue;
    }
    msghdr msg{};
    msg.msg_iov = scratch.iov;
    msg.msg_iovlen = static_cast<std::size_t>(iovCount);
    ssize_t written = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (written < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!stalledSince_) stalledSince_ = std::chrono::steady_clock::now();
        return FlushResult::WouldBlock;
      }
      if (errno == EINTR) continue;
      closeReason_ = (errno == EPIPE || errno == ECONNRESET) ? CloseReason::PeerClosed : CloseReason::WriteError;
      return FlushResult::Closed;
    }
    if (written > 0) stalledSince_.reset();
    advance(static_cast<std::size_t>(written));
  }
  return FlushResult::MoreWork;
}

bool SubscriberSession::drainInput() {
  // Subscribers have nothing to say; a bounded read per wake-up keeps one that
  // floods us from starving the others (what is left waits in its socket).
  char discard[4096];
  for (int reads = 0; reads < 16;) {
    ssize_t n = ::recv(fd_, discard, sizeof discard, MSG_DONTWAIT);
    if (n > 0) {
      ++reads;
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK && closeReason_ == CloseReason::None)
      closeReason_ = CloseReason::PeerClosed;
    return true;
  }
  return true;
}

void SubscriberSession::close(CloseReason reason) {
  if (!onClosed_) return;
  if (closeReason_ == CloseReason::None) closeReason_ = reason;
  queue_->close(closeReason_);
  outgoing_.clear();
  ::close(fd_);
  auto onClosed = std::move(onClosed_);
  onClosed_ = nullptr;
  onClosed(*this, closeReason_);
}

}  // namespace streamrelay
