// SPDX-License-Identifier: Apache-2.0
#include "subscriber_session.hpp"

#include <Poco/Logger.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace streamrelay {

namespace {
// Rounds of (take, write) per flush before other sessions get their turn.
constexpr int kFlushRounds = 8;
}  // namespace

SubscriberSession::SubscriberSession(std::uint64_t id, int fd, std::string peer,
                                     const FramingSpec& framing, QueuePtr queue, ClosedCallback onClosed,
                                     Histogram& writeLatency, std::chrono::milliseconds writeDeadline,
                                     SessionSetup setup)
    : id_(id),
      fd_(fd),
      peer_(std::move(peer)),
      encoder_(framing),
      queue_(std::move(queue)),
      onClosed_(std::move(onClosed)),
      writeLatency_(writeLatency),
      writeDeadline_(writeDeadline),
      lastWriteNs_(steadyNowNs()),
      setup_(std::move(setup)) {
  const auto now = std::chrono::steady_clock::now();
  if (setup_.tls) {
    tls_ = std::make_unique<TlsServerStream>(setup_.tls, fd_);
    phase_ = Phase::Handshake;
    setupDeadline_ = now + setup_.handshakeTimeout;
  } else if (setup_.hello) {
    phase_ = Phase::Hello;
    setupDeadline_ = now + setup_.helloTimeout;
  }
}

SubscriberSession::~SubscriberSession() {
  owner_.claim();  // the last reference: no other thread can reach it
  close(CloseReason::Shutdown);
}

std::size_t SubscriberSession::encodedBytes(const FrameBatch& batch, std::size_t i) const {
  std::string_view payload = batch.payload(i);
  if (frameHeaders()) return protocol::kFrameHeaderBytes + payload.size();
  return encoder_.canEncode(payload) ? encoder_.encodedSize(payload.size()) : 0;
}

void SubscriberSession::useFrameHeaders(std::vector<std::pair<const StreamId*, std::uint16_t>> streamIds) {
  owner_.assertOwned();
  streamIds_ = std::move(streamIds);  // the listener's admitHello never passes an empty list
}

std::uint16_t SubscriberSession::streamIdOf(const FrameBatch& batch) const {
  for (const auto& [stream, id] : streamIds_)
    if (stream == batch.stream()) return id;
  return 0;
}

// The streamrelay protocol: each frame is its 24-byte header and its payload.
int SubscriberSession::buildHeaderedIov(WriteScratch& scratch) const {
  int n = 0;
  std::size_t skip = skipBytes_;
  auto add = [&](const char* base, std::size_t len) {
    if (skip >= len) {
      skip -= len;
      return;
    }
    scratch.iov[n++] = {const_cast<char*>(base + skip), len - skip};
    skip = 0;
  };
  for (const FrameSpan& span : outgoing_) {
    const FrameBatch& batch = *span.batch;
    const std::uint16_t stream = streamIdOf(batch);
    for (std::size_t i = span.first; i < span.end; ++i) {
      if (n + 2 > WriteScratch::kMaxIov) return n;
      const std::string_view payload = batch.payload(i);
      char* header = scratch.headers[n];
      protocol::writeFrameHeader(header, static_cast<std::uint32_t>(payload.size()), stream, batch.seq(i),
                                 batch.receivedUnixNs());
      add(header, protocol::kFrameHeaderBytes);
      add(payload.data(), payload.size());
    }
  }
  return n;
}

int SubscriberSession::buildIov(WriteScratch& scratch) const {
  if (frameHeaders()) return buildHeaderedIov(scratch);
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
    if (wireForm() && written >= span.wireBytes()) {
      written -= span.wireBytes();
      sent += span.frameCount();
      recordLatency(span, span.frameCount());
      outgoing_.pop_front();
      continue;
    }
    std::uint64_t spanSent = 0;
    while (span.first < span.end) {
      std::size_t bytes = wireForm() ? span.batch->wireBytes(span.first, span.first + 1)
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
  lastWriteNs_ = now;
}

SubscriberSession::FlushResult SubscriberSession::flush(WriteScratch& scratch) {
  owner_.assertOwned();
  if (closeReason_ != CloseReason::None) return FlushResult::Closed;
  // A queue closed for shutdown is drained first; any other reason (a slow
  // consumer cut off, a listener removed by a reload) ends the session now.
  if (const CloseReason reason = queue_->closeReason();
      reason != CloseReason::None && reason != CloseReason::Shutdown) {
    closeReason_ = reason;
    return FlushResult::Closed;
  }
  FlushResult result = FlushResult::Idle;
  if (!control_.empty() && !flushControl(scratch, result)) return result;
  for (int round = 0; round < kFlushRounds; ++round) {
    if (outgoing_.empty() && queue_->takeAll(outgoing_) == 0) return FlushResult::Idle;
    int iovCount = buildIov(scratch);
    if (iovCount == 0) {  // only frames this framing cannot carry
      advance(0);
      continue;
    }
    const long written = send(scratch.iov, iovCount, scratch);
    if (written == kWouldBlock) return FlushResult::WouldBlock;
    if (written == kFailed) return FlushResult::Closed;
    advance(static_cast<std::size_t>(written));
  }
  return FlushResult::MoreWork;
}

bool SubscriberSession::queueHeartbeat() {
  owner_.assertOwned();
  if (setup_.heartbeat.empty() || settingUp() || closeReason_ != CloseReason::None || !control_.empty() || !idle())
    return false;
  control_.assign(setup_.heartbeat);
  return true;
}

// Sends the control frame (the answer, a heartbeat) before any frame after
// it; false (with `result`) until it is out, or when the session is to close
// after it.
bool SubscriberSession::flushControl(WriteScratch& scratch, FlushResult& result) {
  while (controlSent_ < control_.size()) {
    iovec iov{control_.data() + controlSent_, control_.size() - controlSent_};
    const long written = send(&iov, 1, scratch);
    if (written == kWouldBlock || written == kFailed) {
      result = written == kWouldBlock ? FlushResult::WouldBlock : FlushResult::Closed;
      return false;
    }
    controlSent_ += static_cast<std::size_t>(written);
  }
  control_.clear();
  controlSent_ = 0;
  lastWriteNs_ = steadyNowNs();
  if (closeAfterControl_ != CloseReason::None) {
    closeReason_ = closeAfterControl_;
    result = FlushResult::Closed;
    return false;
  }
  return true;
}

long SubscriberSession::send(const iovec* iov, int count, WriteScratch& scratch) {
  long written;
  if (tls_) {
    written = tls_->writev(iov, count, scratch.tlsPlain, WriteScratch::kTlsChunk);
    if (written == TlsServerStream::kWantRead || written == TlsServerStream::kWantWrite) written = kWouldBlock;
    else if (written == TlsServerStream::kFailed) {
      setupDetail_ = tls_->error();
      closeReason_ = CloseReason::WriteError;
      return kFailed;
    }
  } else {
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov);
    msg.msg_iovlen = static_cast<std::size_t>(count);
    do written = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (written < 0 && errno == EINTR);
    if (written < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      closeReason_ = (errno == EPIPE || errno == ECONNRESET) ? CloseReason::PeerClosed : CloseReason::WriteError;
      return kFailed;
    }
    if (written < 0) written = kWouldBlock;
  }
  if (written == kWouldBlock) {
    if (!stalledSince_) stalledSince_ = std::chrono::steady_clock::now();
    return kWouldBlock;
  }
  if (written > 0) stalledSince_.reset();
  return written;
}

long SubscriberSession::receive(char* data, std::size_t size) {
  if (tls_) {
    const long n = tls_->read(data, size);
    if (n == TlsServerStream::kWantRead || n == TlsServerStream::kWantWrite) return kWouldBlock;
    return n == TlsServerStream::kFailed ? kFailed : n;
  }
  ssize_t n;
  do n = ::recv(fd_, data, size, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n >= 0) return n;
  return errno == EAGAIN || errno == EWOULDBLOCK ? kWouldBlock : kFailed;
}

bool SubscriberSession::drainInput() {
  owner_.assertOwned();
  // Subscribers have nothing to say; a bounded read per wake-up keeps one that
  // floods us from starving the others (what is left waits in its socket).
  char discard[4096];
  for (int reads = 0; reads < 16; ++reads) {
    const long n = receive(discard, sizeof discard);
    if (n > 0) continue;
    if (n == 0) return false;
    if (n == kFailed && closeReason_ == CloseReason::None) closeReason_ = CloseReason::PeerClosed;
    return true;
  }
  return true;
}

SubscriberSession::SetupResult SubscriberSession::continueSetup() {
  owner_.assertOwned();
  if (closeReason_ != CloseReason::None) return SetupResult::Closed;
  setupWantsWritable_ = false;
  if (phase_ == Phase::Handshake) {
    const long step = tls_->handshake();
    if (step == TlsServerStream::kWantRead) return SetupResult::Waiting;
    if (step == TlsServerStream::kWantWrite) {
      setupWantsWritable_ = true;
      return SetupResult::Waiting;
    }
    if (step == TlsServerStream::kFailed) {
      setupDetail_ = tls_->error();
      closeReason_ = CloseReason::TlsFailed;
      return SetupResult::Closed;
    }
    setupDetail_ = tls_->describe();
    if (!setup_.hello) return admitted(nullptr);
    phase_ = Phase::Hello;
    setupDeadline_ = std::chrono::steady_clock::now() + setup_.helloTimeout;
  }
  if (phase_ == Phase::Hello) return readHello();
  return SetupResult::Ready;
}

// Reads the hello line, never keeping more than kMaxHelloBytes of it.
SubscriberSession::SetupResult SubscriberSession::readHello() {
  char chunk[4096];
  for (;;) {
    const std::size_t room = protocol::kMaxHelloBytes + 1 - hello_.size();
    const long n = receive(chunk, std::min(sizeof chunk, room));
    if (n == kWouldBlock) return SetupResult::Waiting;
    if (n <= 0) {
      setupDetail_ = "closed the connection before its hello line";
      closeReason_ = CloseReason::BadHello;
      return SetupResult::Closed;
    }
    const char* end = static_cast<const char*>(std::memchr(chunk, '\n', static_cast<std::size_t>(n)));
    hello_.append(chunk, end ? static_cast<std::size_t>(end - chunk) : static_cast<std::size_t>(n));
    if (hello_.size() > protocol::kMaxHelloBytes) {
      const std::string error = "hello line longer than " + std::to_string(protocol::kMaxHelloBytes) + " bytes";
      setupDetail_ = error;
      control_ = protocol::errorAnswer(error);
      closeAfterControl_ = CloseReason::BadHello;
      phase_ = Phase::Streaming;
      return SetupResult::Ready;
    }
    if (end) {
      const std::string line = std::move(hello_);
      hello_.clear();
      hello_.shrink_to_fit();
      return admitted(&line);
    }
  }
}

SubscriberSession::SetupResult SubscriberSession::admitted(const std::string* helloLine) {
  CloseReason refused = CloseReason::None;
  control_ = setup_.admit(*this, helloLine, refused);
  phase_ = Phase::Streaming;
  if (refused != CloseReason::None && control_.empty()) {
    closeReason_ = refused;
    return SetupResult::Closed;
  }
  closeAfterControl_ = refused;
  return SetupResult::Ready;
}

void SubscriberSession::close(CloseReason reason) {
  owner_.assertOwned();
  if (!onClosed_) return;
  if (closeReason_ == CloseReason::None) closeReason_ = reason;
  queue_->close(closeReason_);
  outgoing_.clear();
  if (tls_) tls_->closeNotify();
  ::close(fd_);
  auto onClosed = std::move(onClosed_);
  onClosed_ = nullptr;
  onClosed(*this, closeReason_);
}

}  // namespace streamrelay
