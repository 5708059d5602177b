// SPDX-License-Identifier: Apache-2.0
#include "subscriber_session.hpp"

#include <algorithm>

namespace streamrelay {

namespace {
// Rounds of (take, write) per flush before other sessions get their turn.
constexpr int kFlushRounds = 8;
// Reads per wake-up of a client that sends: one that floods us cannot
// starve the others (what is left is read on the writer's next round:
// unreadInput()).
constexpr int kReadsPerWake = 16;
}  // namespace

SubscriberSession::SubscriberSession(std::uint64_t id, int fd, std::string peer,
                                     std::shared_ptr<const ListenerProtocol> protocol,
                                     std::unique_ptr<Conversation> conversation, QueuePtr queue,
                                     ClosedCallback onClosed, Histogram& writeLatency,
                                     std::chrono::milliseconds writeDeadline, SessionSetup setup)
    : id_(id),
      fd_(fd),
      peer_(std::move(peer)),
      transport_(fd, setup.tls),
      protocol_(std::move(protocol)),
      codec_(protocol_->codec()),
      wireForm_(codec_.wireForm()),
      conversation_(std::move(conversation)),
      queue_(std::move(queue)),
      onClosed_(std::move(onClosed)),
      writeLatency_(writeLatency),
      writeDeadline_(writeDeadline),
      lastWriteNs_(steadyNowNs()),
      setup_(std::move(setup)) {
  const auto now = std::chrono::steady_clock::now();
  if (transport_.tls()) {
    phase_ = Phase::Handshake;
    setupDeadline_ = now + setup_.handshakeTimeout;
  } else if (protocol_->hasSetup()) {
    phase_ = Phase::Setup;
    setupDeadline_ = now + setup_.helloTimeout;
  } else {
    admitted_ = true;  // by its listener, as it connected
  }
}

SubscriberSession::~SubscriberSession() {
  owner_.claim();  // the last reference: no other thread can reach it
  close(CloseReason::Shutdown);
}

// One iovec per run of frames in wire form; otherwise each frame's pieces
// from its batch's encoding, pieces that lie back to back in memory joined
// into one iovec (a run of small encoded frames is one).
int SubscriberSession::buildIov(WriteScratch& scratch) const {
  int n = 0;
  std::size_t skip = skipBytes_;
  auto add = [&](const char* base, std::size_t len) {
    if (skip >= len) {
      skip -= len;
      return;
    }
    base += skip;
    len -= skip;
    skip = 0;
    if (n > 0 && static_cast<const char*>(scratch.iov[n - 1].iov_base) + scratch.iov[n - 1].iov_len == base)
      scratch.iov[n - 1].iov_len += len;
    else
      scratch.iov[n++] = {const_cast<char*>(base), len};
  };
  for (const FrameSpan& span : outgoing_) {
    if (wireForm_) {
      if (n == WriteScratch::kMaxIov) break;
      add(span.batch->wireBegin(span.first), span.wireBytes());
      continue;
    }
    const EncodedBatch& encoded = codec_.encoded(*span.batch, span.flags);
    for (std::size_t i = span.first; i < span.end; ++i) {
      const EncodedFrame& frame = encoded.frame(i);
      if (frame.total == 0) continue;  // the protocol cannot carry it
      if (n + 3 > WriteScratch::kMaxIov) return n;
      add(encoded.bytes() + frame.offset, frame.headBytes);
      if (frame.payloadByReference) {
        const std::string_view payload = span.batch->payload(i);
        add(payload.data(), payload.size());
      }
      add(encoded.bytes() + frame.offset + frame.headBytes, frame.tailBytes);
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
    std::uint64_t spanSent = 0;
    if (wireForm_) {
      if (written >= span.wireBytes()) {
        written -= span.wireBytes();
        sent += span.frameCount();
        recordLatency(span, span.frameCount());
        outgoing_.pop_front();
        continue;
      }
      while (span.first < span.end && written >= span.batch->wireBytes(span.first, span.first + 1)) {
        written -= span.batch->wireBytes(span.first, span.first + 1);
        ++spanSent;
        ++span.first;
      }
    } else {
      const EncodedBatch& encoded = codec_.encoded(*span.batch, span.flags);
      while (span.first < span.end) {
        const std::size_t bytes = encoded.frame(span.first).total;
        if (bytes == 0) ++skipped;
        else if (written >= bytes) ++spanSent;
        else break;
        written -= bytes;
        ++span.first;
      }
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
  const CloseReason queueClosed = queue_->closeReason();
  if (queueClosed != CloseReason::None && queueClosed != CloseReason::Shutdown) {
    closeReason_ = queueClosed;
    return FlushResult::Closed;
  }
  FlushResult result = FlushResult::Idle;
  for (int round = 0; round < kFlushRounds; ++round) {
    if (!control_.empty() && controlMayGo() && !flushControl(result)) return result;
    if (outgoing_.empty() && !takeFrames(queueClosed == CloseReason::Shutdown)) return FlushResult::Idle;
    const int iovCount = buildIov(scratch);
    if (iovCount == 0) {  // only frames the protocol cannot carry
      advance(0);
      continue;
    }
    const long written = noteSent(transport_.send(scratch.iov, iovCount, scratch));
    framesRetryPending_ = written == kWouldBlock;
    if (written == kWouldBlock) return FlushResult::WouldBlock;
    if (written == kFailed) return FlushResult::Closed;
    advance(static_cast<std::size_t>(written));
  }
  return FlushResult::MoreWork;
}

// What the rate limiter lets go now: the held frames whose interval ended,
// then what it lets through of the queue's. Draining (shutdown), it holds
// nothing back: the last frame of each key is still delivered.
bool SubscriberSession::takeRateLimited(bool draining) {
  const std::int64_t now = steadyNowNs();
  rateLimiter_->release(outgoing_, now);
  if (queue_->takeAll(taken_) > 0) queue_->countRateSkipped(rateLimiter_->admit(taken_, outgoing_, now));
  if (draining) rateLimiter_->releaseAll(outgoing_);
  return !outgoing_.empty();
}

bool SubscriberSession::queueHeartbeat() {
  owner_.assertOwned();
  const std::string_view heartbeat = protocol_->heartbeat();
  if (heartbeat.empty() || settingUp() || closeReason_ != CloseReason::None || !control_.empty() || !idle())
    return false;
  control_.assign(heartbeat.data(), heartbeat.size());
  return true;
}

// Sends the control bytes (the answer, a heartbeat, a pong) before any frame
// after them; false (with `result`) until they are out, or when the session
// is to close after them.
bool SubscriberSession::flushControl(FlushResult& result) {
  while (controlSent_ < control_.size()) {
    const long written = noteSent(transport_.send(control_.data() + controlSent_, control_.size() - controlSent_));
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

long SubscriberSession::noteSent(long written) {
  if (written == kFailed) {
    closeReason_ = transport_.failure();
    if (!transport_.error().empty()) setupDetail_ = transport_.error();
    return kFailed;
  }
  if (written == kWouldBlock) {
    if (!stalledSince_) stalledSince_ = std::chrono::steady_clock::now();
    return kWouldBlock;
  }
  if (written > 0) stalledSince_.reset();
  return written;
}

bool SubscriberSession::drainInput() {
  owner_.assertOwned();
  char chunk[4096];
  unreadInput_ = false;
  for (int reads = 0; reads < kReadsPerWake; ++reads) {
    const long n = transport_.receive(chunk, sizeof chunk);
    if (n == 0) return false;
    if (n == kWouldBlock) return true;
    if (n == kFailed) {
      if (closeReason_ == CloseReason::None) closeReason_ = CloseReason::PeerClosed;
      return true;
    }
    std::string reply;
    const Conversation::Input input = conversation_->input(std::string_view(chunk, static_cast<std::size_t>(n)), reply);
    control_ += reply;
    if (input.close != CloseReason::None) {
      if (!input.detail.empty()) setupDetail_ = input.detail;
      if (control_.empty()) closeReason_ = input.close;
      else closeAfterControl_ = input.close;
      return true;
    }
  }
  unreadInput_ = true;
  return true;
}

SubscriberSession::SetupResult SubscriberSession::continueSetup() {
  owner_.assertOwned();
  if (closeReason_ != CloseReason::None) return SetupResult::Closed;
  setupWantsWritable_ = false;
  if (phase_ == Phase::Handshake) {
    switch (transport_.handshake()) {
      case SubscriberTransport::Handshake::WantRead:
        return SetupResult::Waiting;
      case SubscriberTransport::Handshake::WantWrite:
        setupWantsWritable_ = true;
        return SetupResult::Waiting;
      case SubscriberTransport::Handshake::Failed:
        setupDetail_ = transport_.error();
        closeReason_ = transport_.failure();
        return SetupResult::Closed;
      case SubscriberTransport::Handshake::Done:
        break;
    }
    setupDetail_ = transport_.describe();
    if (!protocol_->hasSetup()) return admitted(nullptr);
    phase_ = Phase::Setup;
    setupDeadline_ = std::chrono::steady_clock::now() + setup_.helloTimeout;
  }
  if (phase_ == Phase::Setup) {
    if (!sendSetupReply()) return closeReason_ != CloseReason::None ? SetupResult::Closed : SetupResult::Waiting;
    return readSetup();
  }
  return SetupResult::Ready;
}

// Sends what the protocol answered during its set-up (an HTTP 101); false
// until it is out (waiting for the socket, or closed).
bool SubscriberSession::sendSetupReply() {
  while (!setupReply_.empty()) {
    const long written = noteSent(transport_.send(setupReply_.data(), setupReply_.size()));
    if (written == kFailed) return false;
    if (written == kWouldBlock) {
      setupWantsWritable_ = true;
      return false;
    }
    setupReply_.erase(0, static_cast<std::size_t>(written));
  }
  return true;
}

// Hands what the client sends to the protocol until it has a hello (or a
// refusal).
SubscriberSession::SetupResult SubscriberSession::readSetup() {
  char chunk[4096];
  unreadInput_ = false;
  for (int reads = 0; reads < kReadsPerWake; ++reads) {
    const long n = transport_.receive(chunk, sizeof chunk);
    if (n == kWouldBlock) return SetupResult::Waiting;
    if (n <= 0) {
      setupDetail_ = conversation_->endedDuringSetup();
      closeReason_ = CloseReason::PeerClosed;
      return SetupResult::Closed;
    }
    Conversation::Step step = conversation_->setupInput(std::string_view(chunk, static_cast<std::size_t>(n)));
    setupReply_ += step.reply;
    switch (step.next) {
      case Conversation::Step::Next::More:
        if (!sendSetupReply()) return closeReason_ != CloseReason::None ? SetupResult::Closed : SetupResult::Waiting;
        continue;
      case Conversation::Step::Next::Admit:
        unreadInput_ = true;  // what the client sent after its hello (a ping) is read as it streams
        return admitted(&step.hello);
      case Conversation::Step::Next::Refuse:
        setupDetail_ = step.detail;
        return streamAfterControl(std::string(), step.refused);
    }
  }
  unreadInput_ = true;
  return SetupResult::Waiting;
}

SubscriberSession::SetupResult SubscriberSession::admitted(const protocol::Hello* hello) {
  const AdmissionResult result = setup_.admit(*this, hello);
  admitted_ = result.refused == CloseReason::None;
  if (admitted_ && result.maxRatePerKeyMs > 0)
    rateLimiter_ = std::make_unique<KeyRateLimiter>(std::chrono::milliseconds(result.maxRatePerKeyMs));
  return streamAfterControl(conversation_->answer(result), result.refused);
}

// Ends the set-up: what the protocol still had to say during it, then
// `bytes`, go out before any frame; with a reason, the session closes once
// they are out (at once if there are none).
SubscriberSession::SetupResult SubscriberSession::streamAfterControl(std::string bytes, CloseReason then) {
  control_ = std::move(setupReply_) + bytes;
  setupReply_.clear();
  phase_ = Phase::Streaming;
  if (then != CloseReason::None && control_.empty()) {
    closeReason_ = then;
    return SetupResult::Closed;
  }
  closeAfterControl_ = then;
  return SetupResult::Ready;
}

// The protocol's last word (a WebSocket close frame), if it can go now
// without breaking a frame or waiting: best effort, like close_notify.
void SubscriberSession::sayFarewell() {
  const std::string bye = conversation_->farewell(closeReason_);
  if (bye.empty() || controlSent_ > 0 || skipBytes_ > 0 || framesRetryPending_ || !setupReply_.empty()) return;
  transport_.send(bye.data(), bye.size());
}

void SubscriberSession::close(CloseReason reason) {
  owner_.assertOwned();
  if (!onClosed_) return;
  if (closeReason_ == CloseReason::None) closeReason_ = reason;
  queue_->close(closeReason_);
  if (phase_ != Phase::Handshake) sayFarewell();  // in set-up too: a WebSocket upgraded but late with its hello
  outgoing_.clear();
  transport_.close();
  auto onClosed = std::move(onClosed_);
  onClosed_ = nullptr;
  onClosed(*this, closeReason_);
}

}  // namespace streamrelay
