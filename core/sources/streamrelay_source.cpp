// SPDX-License-Identifier: Apache-2.0
#include "streamrelay_source.hpp"

#include <limits>

#include "burst_end.hpp"
#include "client_socket.hpp"
#include "keys.hpp"
#include "logging.hpp"
#include "source_type.hpp"
#include "streamrelay/wire.hpp"
#include "yaml_map.hpp"

namespace streamrelay {

namespace {

// How much of a read is kept before the frames in it are parsed: what is
// left over (a frame in progress) moves to the front.
constexpr std::size_t kMinReadRoom = 64 * 1024;
constexpr std::uint64_t kMaxSeq = std::uint64_t{1} << 62;  // far above any stream's, far below a wrap

}  // namespace

// One connection to the upstream relay, its answer read. Frames of one
// upstream batch (the same receive time, consecutive seqs) become one batch
// here, published as a read completes them. Used by the source thread only.
class StreamrelayConnection : public ProviderConnection {
 public:
  StreamrelayConnection(std::unique_ptr<ClientSocket> socket, StreamrelaySource& source, Bus& bus,
                        SourceCounters& counters)
      : socket_(std::move(socket)), source_(source), bus_(bus), counters_(counters), buffer_(kSourceReadBytes) {}

  // Reads until the answer to the hello, by `deadline`; false with `failure` set.
  bool awaitAnswer(Clock::time_point deadline, int stopFd, OpenFailure& failure) {
    while (!answered_) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) {
        failure.why = "no answer to the hello in time";
        return false;
      }
      std::optional<StreamEnd> end = pump(static_cast<int>(left), stopFd);
      if (end) {
        failure.why = end->how == StreamEnd::How::Stopped ? "stopped" : "before the answer: " + end->why;
        return false;
      }
    }
    return true;
  }

  std::optional<StreamEnd> pump(int timeoutMs, int stopFd) override {
    std::optional<StreamEnd> end;
    auto parseAll = [&](const char* data, std::size_t size) {
      std::string why;
      if (!parse(data, size, why)) {
        counters_.protocolErrors.fetch_add(1, std::memory_order_relaxed);
        end = StreamEnd::failed("protocol error: " + why);
      }
      return !end;
    };
    if (behindAnswer_) {  // frames that came with the answer: the first pump() publishes them
      behindAnswer_ = false;
      parseAll(in_.data(), in_.size());
      return end;
    }
    const bool answering = !answered_;
    auto take = [&](const char* data, std::size_t size) {
      counters_.bytesRead.fetch_add(size, std::memory_order_relaxed);
      if (in_.empty() && !(answering && answered_)) return parseAll(data, size);  // straight from the read
      in_.insert(in_.end(), data, data + size);  // after a frame in progress
      if (answering && answered_) return false;  // awaitAnswer(): nothing is published before open() returns
      return parseAll(in_.data(), in_.size());
    };
    // Read first: `take` sets `end` during the burst.
    const ClientSocket::Burst burst = socket_->readBurst(buffer_, stopFd, timeoutMs, take);
    return endOfBurst(burst, *socket_, std::move(end), [this] {
      if (!in_.empty())  // a frame cut short: a failure, not a planned end
        return StreamEnd::failed("connection closed by the upstream relay in a frame (" + std::to_string(in_.size()) +
                                 " bytes of it came)");
      return StreamEnd{StreamEnd::How::Orderly, "connection closed by the upstream relay"};
    });
  }

  void close(const Goodbye&, Clock::time_point deadline) override { socket_->close(deadline); }
  std::string describe() const override {
    std::string how = socket_->describe();
    return how + (how.empty() ? "" : ", ") + "epoch " + std::to_string(epoch_) + " from seq " +
           std::to_string(firstSeq_);
  }

 private:
  // Takes every whole frame at the front of `data` (a read, or in_ when a
  // frame was in progress): the answer, control frames, data frames; what
  // is left (a frame in progress) stays in in_. False (with `why`) on a
  // protocol error.
  bool parse(const char* data, std::size_t size, std::string& why) {
    std::size_t at = 0;
    const bool ok = takeFrames(data, size, at, why);
    flush();  // the frames before a bad one are good: published, as position_ already says
    if (data == in_.data()) in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(at));
    else in_.assign(data + at, data + size);
    return ok;
  }

  // parse()'s loop: takes the whole frames from data[at, size), moving `at` past them.
  bool takeFrames(const char* data, std::size_t size, std::size_t& at, std::string& why) {
    const bool answering = !answered_;
    while (size - at >= wire::kFrameHeaderBytes) {
      const wire::FrameHeader header = wire::readFrameHeader(data + at);
      if (header.payloadBytes > source_.maxFrameBytes_) {
        why = "a frame of " + std::to_string(header.payloadBytes) + " bytes announced, over max_frame_bytes " +
              std::to_string(source_.maxFrameBytes_);
        return false;
      }
      if (size - at < wire::kFrameHeaderBytes + header.payloadBytes) break;
      const char* payload = data + at + wire::kFrameHeaderBytes;
      const bool ok = header.stream == wire::kControlStream ? takeControl(std::string(payload, header.payloadBytes), why)
                                                             : takeFrame(header, payload, why);
      if (!ok) return false;
      at += wire::kFrameHeaderBytes + header.payloadBytes;
      if (answering && answered_) {  // the frames behind it wait for the first pump()
        behindAnswer_ = true;
        break;
      }
    }
    return true;
  }

  bool takeControl(const std::string& json, std::string& why) {
    try {
      const client::JsonValue message = client::JsonValue::parse(json);
      if (const client::JsonValue* type = message.find("type")) {
        if (type->type == client::JsonValue::Type::String && type->text == "provider_position")
          takeProviderPosition(message);
        return true;  // a heartbeat, or a type this relay does not know
      }
      if (answered_) {
        why = "a second answer";
        return false;
      }
      takeAnswer(client::parseAnswer(message, json));
      return true;
    } catch (const client::Refused& e) {
      why = e.what();
    } catch (const std::runtime_error& e) {
      why = std::string("a control frame: ") + e.what();
    }
    // The upstream's own words (a refusal's error, a piece of its JSON) go
    // into one log line: never a line of their own, nor a long one.
    constexpr std::size_t kShownBytes = 300;
    why = oneLine(why.size() > kShownBytes ? why.substr(0, kShownBytes) + "..." : why);
    return false;
  }

  // The upstream's provider position after one of its frames: kept with the
  // frame here if it is the last one taken (else it names nothing here).
  void takeProviderPosition(const client::JsonValue& message) {
    constexpr std::size_t kMaxPositionBytes = 1024;
    const client::JsonValue* after = message.find("after_seq");
    const client::JsonValue* position = message.find("position");
    std::uint64_t seq = 0;
    if (!answered_ || !after || !after->asUnsigned(seq) || !position ||
        position->type != client::JsonValue::Type::String || position->text.empty() ||
        position->text.size() > kMaxPositionBytes)
      return;
    const MirrorPosition& at = source_.position_;
    if (at.epoch() != epoch_ || at.seq() != seq) return;
    if (!builder_.empty()) {
      pendingPosition_ = position->text;
      flush();  // the batch ends with that frame, and carries its position
    } else if (source_.mirror_) {
      bus_.noteProviderPosition(position->text, seq);
    }
  }

  void takeAnswer(const client::Answer& answer) {
    if (answer.streams.size() != 1)
      throw std::runtime_error("the upstream answered with " + std::to_string(answer.streams.size()) +
                               " streams; a streamrelay source follows one (name it in inputs)");
    const client::Answer::Stream& s = answer.streams.begin()->second;
    if (s.epoch == 0) throw std::runtime_error("the upstream answered with epoch 0");
    if (s.id == wire::kControlStream)
      throw std::runtime_error("the upstream answered with stream id 65535, the control frames'");
    streamId_ = s.id;
    epoch_ = s.epoch;
    firstSeq_ = s.firstSeq;
    answered_ = true;
    // Another epoch, or a resume the upstream could not serve, shows in the
    // first frame's seq: MirrorPosition counts and logs it there.
  }

  bool takeFrame(const wire::FrameHeader& header, const char* payload, std::string& why) {
    if (!answered_) {
      why = "a frame before the answer";
      return false;
    }
    if (header.stream != streamId_) {
      why = "a frame of stream id " + std::to_string(header.stream) + ", not the one answered (" +
            std::to_string(streamId_) + ")";
      return false;
    }
    // On one connection, one epoch: seqs only go up (from 1), and one near
    // 2^64 would wrap the stream's numbering (and wedge the position there).
    if (header.seq <= lastSeqHere_ || header.seq > kMaxSeq) {
      why = "a frame of seq " + std::to_string(header.seq) +
            (lastSeqHere_ ? " after seq " + std::to_string(lastSeqHere_) : std::string()) +
            ": seqs go up from 1, below 2^62";
      return false;
    }
    lastSeqHere_ = header.seq;
    if (!source_.position_.take(epoch_, header.seq)) return true;  // had already (a replay's overlap)
    if (!builder_.empty() && (header.seq != batchFirst_ + builder_.frameCount() || header.receivedUnixNs != batchTime_))
      flush();
    if (builder_.empty()) {
      batchFirst_ = header.seq;
      batchTime_ = header.receivedUnixNs;
    }
    builder_.add(payload, header.payloadBytes);
    return true;
  }

  void flush() {
    if (builder_.empty()) return;
    const std::int64_t now = unixNowNs();
    const std::uint64_t last = batchFirst_ + builder_.frameCount() - 1;
    std::unique_ptr<FrameBatch> batch = builder_.seal(source_.mirror_ ? batchTime_ : now);
    if (!pendingPosition_.empty()) batch->setProviderPosition(std::move(pendingPosition_));
    pendingPosition_.clear();
    if (source_.mirror_) bus_.publishAt(std::move(batch), epoch_, batchFirst_);
    else bus_.publish(std::move(batch));
    counters_.upstreamEpoch.store(epoch_, std::memory_order_relaxed);
    counters_.upstreamSeq.store(last, std::memory_order_relaxed);
    counters_.lagNs.store(now - batchTime_, std::memory_order_relaxed);
  }

  std::unique_ptr<ClientSocket> socket_;
  StreamrelaySource& source_;
  Bus& bus_;
  SourceCounters& counters_;
  std::vector<char> buffer_;  // one read
  std::vector<char> in_;      // bytes read and not yet parsed (a frame in progress)
  bool answered_ = false;
  bool behindAnswer_ = false;  // in_ may hold frames that came with the answer
  std::uint16_t streamId_ = 0;
  std::uint64_t epoch_ = 0;     // the upstream stream's, from the answer
  std::uint64_t firstSeq_ = 0;  // from the answer
  std::uint64_t lastSeqHere_ = 0;  // of the last data frame on this connection
  FrameBatchBuilder builder_;
  std::uint64_t batchFirst_ = 0;  // the seq of the builder's first frame
  std::int64_t batchTime_ = 0;    // its frames' receive time upstream
  std::string pendingPosition_;   // the provider position after the builder's last frame
};

namespace {

std::vector<std::string> addressesOf(const Settings& s) { return s.strings("endpoints"); }

client::HelloRequest requestOf(const Settings& s) {
  client::HelloRequest request;
  request.token = s.string("token");
  request.inputs = s.strings("inputs");
  return request;
}

}  // namespace

StreamrelaySource::StreamrelaySource(const SourceConfig& config, Bus& bus)
    : ConnectingSource(config, bus, addressesOf(config.settings)),
      endpoints_([&] {
        std::vector<HostPort> list;
        for (const std::string& text : config.settings.strings("endpoints")) list.push_back(hostPortOf(text));
        return list;
      }()),
      request_(requestOf(config.settings)),
      mirror_(config.settings.boolean("mirror")),
      maxFrameBytes_(static_cast<std::size_t>(config.settings.integer("max_frame_bytes"))),
      position_(counters_, label(), "the upstream's") {
  // A mirror restarted by a reload goes on from what its stream has: never
  // a seq twice.
  if (mirror_ && bus.lastSeq() > 0) position_.set(bus.stream().epoch, bus.lastSeq());
}

StreamrelaySource::~StreamrelaySource() { stop(); }

std::unique_ptr<ProviderConnection> StreamrelaySource::open(std::size_t endpoint, Clock::time_point deadline,
                                                            OpenFailure& failure) {
  std::unique_ptr<ClientSocket> socket =
      connect(endpoints_[endpoint].host, endpoints_[endpoint].port, tlsContext(), deadline, failure);
  if (!socket) return nullptr;
  // Resume after the last frame published, in its epoch: the upstream gives
  // the frames after it (recovered), or says where it goes on.
  std::optional<client::ResumePoint> resume;
  if (position_.epoch() != 0) resume = client::ResumePoint{position_.epoch(), {{"", position_.seq()}}, {}};
  if (!socket->writeAll(client::helloLine(request_, resume), deadline)) {
    failure.why = "sending the hello: " + socket->error();
    return nullptr;
  }
  auto connection = std::make_unique<StreamrelayConnection>(std::move(socket), *this, bus_, counters_);
  try {
    if (!connection->awaitAnswer(deadline, stop_.fd(), failure)) return nullptr;
  } catch (const std::runtime_error& e) {
    failure.why = e.what();
    return nullptr;
  }
  return connection;
}

SourceType streamrelay_source_type() {
  std::vector<KeySpec> keys{
      key("endpoints", KeyKind::Endpoints).doc("HOST:PORT of other relays' streamrelay listeners: the first is the primary"),
      key("inputs", KeyKind::Strings).doc("the upstream stream to follow (one; empty: the listener's only stream)"),
      key("token").env().hidden().doc("presented in the hello to a listener with auth"),
      key("mirror", KeyKind::Bool).def("true")
          .doc("keep the upstream's epoch, seq and receive times (false: number the frames here)"),
      key("max_frame_bytes", KeyKind::Int).def("1048576").range(1, kMaxFrameBytesLimit)
          .doc("a larger frame announced is a protocol error (the connection is dropped)")};
  addConnectingKeys(keys, tlsSchema());
  return {{"streamrelay",
           "follows another relay's streamrelay listener; mirror: its stream keeps the upstream's (epoch, seq)",
           std::move(keys),
           [](const Settings& s, const YamlMap& m) {
             if (s.strings("endpoints").empty()) m.failHere("missing required key 'endpoints'");
             if (s.strings("inputs").size() > 1)
               m.fail("inputs", "a streamrelay source follows one stream (one source per upstream stream)");
             checkFailover(s, m);
           }},
          [](const SourceConfig& config, Bus& bus) { return std::make_unique<StreamrelaySource>(config, bus); }};
}

}  // namespace streamrelay
