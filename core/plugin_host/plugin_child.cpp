// SPDX-License-Identifier: Apache-2.0
#include "plugin_child.hpp"

#include <Poco/AutoPtr.h>
#include <Poco/Logger.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <stdexcept>
#include <thread>

#include "bus.hpp"
#include "child_channel.hpp"
#include "child_link.hpp"
#include "child_sandbox.hpp"
#include "frame_ring.hpp"
#include "plugin_instance.hpp"
#include "plugin_process.hpp"

namespace streamrelay {

namespace {

// Exit codes the relay reads as "the child could not run" (not a crash).
constexpr int kExitBadStart = 70;

constexpr std::chrono::milliseconds kReportEvery(100);
// A processor's emitted frames go in messages of about this size.
constexpr std::size_t kEmitMessageBytes = 256 << 10;


// A processor: sends what it emitted to the relay, from the worker thread.
// An Emit message carries the frames emitted while handling frames up to
// some ring seq and the acknowledgement of that seq: a crash loses both or
// neither (the relay reads what was written before the child died). Frames
// are gathered for up to kEmitEveryFrames handled frames (or
// kEmitMessageBytes), and sent at the end of each drain, so a child that dies
// often still gets most of its work acknowledged. A frame handled while
// nothing emitted waits unsent is acknowledged in the ring at once.
class EmitSender {
 public:
  EmitSender(ChildLink& link, FrameRingReader& ring, std::uint64_t firstRingSeq, Bus& output)
      : link_(link),
        ring_(ring),
        firstRingSeq_(firstRingSeq),
        queue_(std::make_shared<SubscriptionQueue>("emitted", QueueLimits{0, std::size_t{1} << 40, OverflowPolicy::Block},
                                                   [] {})) {
    output.subscribe(queue_);
  }
  // PluginInstance's progress: after each frame, once what it emitted was
  // published; again with the same count at the end of a drain.
  void progress(std::uint64_t handled) {
    const bool drained = handled == handled_;
    handled_ = handled;
    queue_->takeAll(taken_);
    for (const FrameSpan& span : taken_) add(span);
    taken_.clear();
    if (message_.empty()) {  // nothing it emitted waits
      if (handled > acked_) ring_.acknowledge(firstRingSeq_ - 1 + handled);
      acked_ = handled;
      return;
    }
    if (drained || handled - acked_ >= kEmitEveryFrames) send(handled);
  }

 private:
  static constexpr std::uint64_t kEmitEveryFrames = 128;

  void add(const FrameSpan& span) {
    for (std::uint32_t i = span.first; i < span.end; ++i) {
      const std::size_t bytes = span.batch->wireBytes(i, i + 1);
      if (message_.size() > kMessageHeaderBytes + 8 && message_.size() + bytes > kEmitMessageBytes) send(0);
      if (message_.empty()) message_ = MessageBuilder(ChildMessage::Emit).u64(0).finish();
      appendEmittedFrame(message_, std::string_view(span.batch->wireBegin(i), bytes), span.batch->key(i));
    }
  }

  // `handled` 0: frames only (a message of many); they are acknowledged with the next.
  void send(std::uint64_t handled) {
    const auto length = static_cast<std::uint32_t>(message_.size() - kMessageHeaderBytes);
    const std::uint64_t acknowledged = handled > 0 ? firstRingSeq_ - 1 + handled : 0;
    std::memcpy(&message_[4], &length, sizeof length);
    std::memcpy(&message_[kMessageHeaderBytes], &acknowledged, sizeof acknowledged);
    link_.send(message_);
    message_.clear();
    if (message_.capacity() > 2 * kEmitMessageBytes) std::string().swap(message_);  // after a huge frame
    if (handled > 0) acked_ = handled;
  }

  ChildLink& link_;
  FrameRingReader& ring_;
  const std::uint64_t firstRingSeq_;
  QueuePtr queue_;
  std::deque<FrameSpan> taken_;
  std::string message_;        // emitted frames not yet sent
  std::uint64_t handled_ = 0;  // the last progress reported
  std::uint64_t acked_ = 0;    // handled frames acknowledged (in the ring or a message)
};

// Copies the ring's records into the instance's queue until told to stop.
class RingFeeder {
 public:
  RingFeeder(FrameRingReader& ring, const ChildStart& start, PluginInstance& instance)
      : ring_(ring), instance_(instance), lastPushed_(start.firstRingSeq - 1) {
    for (const std::string& input : start.inputs) streams_.push_back({input, {}});
  }
  void start() {
    thread_ = std::thread([this] { run(); });
    thread_.detach();  // ends with the process
  }
  // The relay's Stop: after ring seq `last`, or at the deadline, the
  // instance's queue closes. Control thread.
  void stopAfter(std::uint64_t last, std::int64_t deadlineNs, CloseReason reason) {
    deadlineNs_.store(deadlineNs);
    reason_.store(static_cast<int>(reason));
    stopAfter_.store(last);
    ring_.ring();
  }

 private:
  void run() {
    for (;;) {
      const std::uint64_t stopAfter = stopAfter_.load();
      if (lastPushed_ >= stopAfter || steadyNowNs() > deadlineNs_.load()) break;
      const RingRecord* record = ring_.next();
      if (!record) {
        ring_.wait(static_cast<int>(kReportEvery.count()));
        continue;
      }
      push(*record);
      ring_.consume(record);
    }
    instance_.beginStop(static_cast<CloseReason>(reason_.load()),
                        std::chrono::steady_clock::time_point(std::chrono::nanoseconds(deadlineNs_.load())));
  }

  void push(const RingRecord& r) {
    std::vector<char> bytes;
    std::vector<FrameBatch::Record> records;
    FrameKeys keys;
    RingKeys ringKeys(r);
    std::string_view key;
    if (r.kind == RingRecord::kFramePart) {
      part_.insert(part_.end(), r.data(), r.data() + r.frameBytes());
      if (r.keyBytes > 0) {  // the first piece
        if (!ringKeys.next(key) || !ringKeys.done()) throw std::runtime_error("the frame ring holds a malformed key");
        partKey_.assign(key);
      }
      if (!r.last) return;
      if (!partKey_.empty()) keys.add(partKey_);
      partKey_.clear();
      const auto size = static_cast<std::uint32_t>(part_.size());
      const char header[4] = {static_cast<char>(size >> 24), static_cast<char>(size >> 16),
                              static_cast<char>(size >> 8), static_cast<char>(size)};
      bytes.assign(header, header + 4);
      bytes.insert(bytes.end(), part_.begin(), part_.end());
      std::vector<char>().swap(part_);
      records.push_back({0, size});
    } else {
      bytes.assign(r.data(), r.data() + r.frameBytes());
      records.reserve(r.frames);
      std::size_t offset = 0;
      for (std::uint32_t i = 0; i < r.frames; ++i) {
        const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + offset);
        const std::uint32_t size = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                                   (std::uint32_t{p[2]} << 8) | p[3];
        records.push_back({static_cast<std::uint32_t>(offset), size});
        offset += kWireHeaderBytes + size;
      }
      if (r.keyBytes > 0) readKeys(ringKeys, r.frames, keys);
    }
    auto batch = std::make_shared<FrameBatch>(std::move(bytes), std::move(records), r.receivedUnixNs, steadyNowNs());
    if (keys.size() != 0) batch->setKeys(std::move(keys));
    batch->assignFirstSeq(r.streamSeq, streamOf(r.input, r.epoch));
    instance_.queue()->push(batch);
    lastPushed_ = r.ringSeq + r.frames - 1;
  }

  // A span's keys, one per frame; `keys` stays empty if none of them has one.
  static void readKeys(RingKeys& ringKeys, std::uint32_t frames, FrameKeys& keys) {
    std::string_view key;
    for (std::uint32_t i = 0; i < frames; ++i) {
      if (!ringKeys.next(key)) throw std::runtime_error("the frame ring holds a malformed key");
      if (key.empty()) {
        if (keys.size() != 0) keys.addNone();
        continue;
      }
      while (keys.size() < i) keys.addNone();  // the frames before the first key
      keys.add(key);
    }
    if (!ringKeys.done()) throw std::runtime_error("the frame ring holds a malformed key");
  }

  const StreamId* streamOf(std::uint32_t input, std::uint64_t epoch) {
    if (input >= streams_.size()) return nullptr;
    std::deque<StreamId>& epochs = streams_[input].second;
    for (const StreamId& s : epochs)
      if (s.epoch == epoch) return &s;
    epochs.push_back({streams_[input].first, epoch});  // a deque: earlier ones stay where they are
    return &epochs.back();
  }

  FrameRingReader& ring_;
  PluginInstance& instance_;
  std::uint64_t lastPushed_;
  std::atomic<std::uint64_t> stopAfter_{UINT64_MAX};
  std::atomic<std::int64_t> deadlineNs_{INT64_MAX};
  std::atomic<int> reason_{static_cast<int>(CloseReason::Shutdown)};
  std::vector<std::pair<std::string, std::deque<StreamId>>> streams_;  // by input: one StreamId per epoch
  std::vector<char> part_;  // a frame that came in parts, so far
  std::string partKey_;     // its key (from its first piece)
  std::thread thread_;
};

void closeOtherDescriptors() {
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, kChildCodeFd + 1, ~0U, 0) == 0) return;
#endif
  for (int fd = kChildCodeFd + 1; fd < 1024; ++fd) ::close(fd);
}

ChildStart readStart(ChildLink& link) {
  ChildMessage type{};
  std::string payload;
  ChildStart start;
  if (!link.receive(type, payload) || type != ChildMessage::Start) quitChild(kExitBadStart);
  MessageParser p(payload.data(), payload.size());
  if (!decodeStart(p, start)) quitChild(kExitBadStart);
  return start;
}

// Reports a create() that cannot happen and ends.
[[noreturn]] void refuse(ChildLink& link, const std::string& why) {
  link.send(MessageBuilder(ChildMessage::CreateFailed).str(why).finish());
  quitChild(0);
}

void confine(ChildLink& link, const ChildStart& start) {
  std::string problem = forbidNewPrivileges();
  if (problem.empty() && start.memoryLimitBytes > 0)
    problem = limitHeap(2 * start.memoryLimitBytes + (std::uint64_t{64} << 20));  // see docs/plugin-isolation.md
  if (problem.empty() && start.seccomp) {
    problem = installSeccompFilter();
    if (!problem.empty()) problem = "cannot install the seccomp filter (" + problem + "); process.seccomp: false runs without it";
  }
  if (!problem.empty()) refuse(link, problem);
}

PluginInstanceConfig instanceConfig(const ChildStart& start) {
  PluginInstanceConfig c;
  c.name = start.name;
  c.type = start.type;
  c.inputs = start.inputs;
  c.configYaml = start.configYaml;
  c.maxFailures = static_cast<int>(start.maxFailures);
  c.maxEmitBytes = static_cast<std::size_t>(start.maxEmitBytes);
  c.allowInsecureFiles = start.allowInsecureFiles;
  // The relay's queue applies on_full; here nothing may be dropped.
  c.queue = QueueLimits{static_cast<std::size_t>(start.queueMaxFrames), static_cast<std::size_t>(start.queueMaxBytes),
                        OverflowPolicy::Block};
  return c;
}

}  // namespace

void runPluginChild(int argc, char** argv) {
  if (argc < 4) quitChild(kExitBadStart);
  if (!dieWithRelay(static_cast<pid_t>(std::strtol(argv[3], nullptr, 10)))) quitChild(kExitBadStart);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) ::signal(sig, SIG_IGN);  // the relay stops it
  closeOtherDescriptors();
  ChildLink link(kChildControlFd);
  const ChildStart start = readStart(link);

  Poco::AutoPtr<LinkChannel> channel(new LinkChannel(link));
  Poco::Logger::root().setChannel(channel);
  Poco::Logger::root().setLevel(start.logLevel);
  Poco::Logger::setChannel("", channel);
  Poco::Logger::setLevel("", start.logLevel);

  confine(link, start);
  std::shared_ptr<PluginLibrary> library;
  try {
    library = PluginLibrary::loadInherited(kChildCodeFd, start.libraryPath);
  } catch (const std::exception& e) {
    refuse(link, e.what());
  }
  FrameRingReader ring(kChildRingFd, start.ringCapacity, kChildReaderBellFd, kChildWriterBellFd);
  auto metrics = std::make_shared<PluginMetrics>();
  std::unique_ptr<Bus> output = start.hasOutput ? std::make_unique<Bus>(StreamId{start.name, 0}, nullptr) : nullptr;
  PluginInstance instance(
      library, instanceConfig(start), metrics, output.get(), [&link] { return link.requestStats(); },
      [&link](HostedInstance&) { link.send(MessageBuilder(ChildMessage::Disabled).finish()); });
  std::unique_ptr<EmitSender> sender;
  if (output) {
    sender = std::make_unique<EmitSender>(link, ring, start.firstRingSeq, *output);
    instance.setProgress([&sender](std::uint64_t handled) { sender->progress(handled); });
  } else {
    instance.setProgress([&ring, first = start.firstRingSeq](std::uint64_t handled) {
      ring.acknowledge(first - 1 + handled);
    });
  }
  RingFeeder feeder(ring, start, instance);
  // The control thread: the relay's stop, and its answers to stats_json
  // (create() may already ask). Runs until the process ends.
  std::thread([&link, &feeder] {
    ChildMessage type{};
    std::string payload;
    while (link.receive(type, payload)) {
      MessageParser p(payload.data(), payload.size());
      std::uint64_t last = 0;
      std::int64_t deadline = 0;
      std::uint32_t reason = 0;
      if (type == ChildMessage::StatsReply) {
        std::string json;
        if (p.str(json)) link.deliverStats(std::move(json));
      } else if (type == ChildMessage::Stop && p.u64(last) && p.i64(deadline) && p.u32(reason)) {
        feeder.stopAfter(last, deadline, static_cast<CloseReason>(reason));
      }
    }
    quitChild(0);  // the relay is gone
  }).detach();

  std::string error;
  if (!instance.create(error)) refuse(link, error);
  link.send(MessageBuilder(ChildMessage::Ready).finish());
  instance.start();
  feeder.start();
  MetricsReporter reporter;
  while (!instance.join(std::chrono::steady_clock::now() + kReportEvery)) reporter.report(link, *metrics);
  reporter.report(link, *metrics);
  link.send(MessageBuilder(ChildMessage::Ended).finish());
  quitChild(0);
}

}  // namespace streamrelay
