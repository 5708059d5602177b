// SPDX-License-Identifier: Apache-2.0
#include "redis_source.hpp"

#include <Poco/Logger.h>
#include <poll.h>

#include <algorithm>
#include <charconv>
#include <limits>

#include "keys.hpp"
#include "logging.hpp"
#include "redis_url.hpp"
#include "resp_client.hpp"
#include "source_type.hpp"
#include "yaml_map.hpp"

namespace streamrelay {

namespace {

Poco::Logger& logger() { return Poco::Logger::get("streamrelay.upstream"); }

// The longest one XREAD blocks: the loop's timers (idle timeout, failover)
// get a turn at least this often.
constexpr int kBlockMs = 1000;
// How much longer than BLOCK a reply may take before the connection is taken for dead.
constexpr int kReplyMarginMs = 5000;
constexpr std::uint64_t kMaxSeq = std::uint64_t{1} << 62;  // as the streamrelay source: far below a wrap
constexpr std::size_t kShownBytes = 200;                   // of Redis's words in a log line

bool allDigits(std::string_view s) {
  return !s.empty() && s.size() <= 20 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::optional<std::uint64_t> number(std::string_view s) {
  std::uint64_t value = 0;
  if (!allDigits(s)) return std::nullopt;
  const auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (error != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return value;
}

std::pair<std::uint64_t, std::uint64_t> idParts(std::string_view id) {
  const auto dash = id.find('-');
  const std::uint64_t ms = number(id.substr(0, dash)).value_or(0);
  const std::uint64_t seq = dash == std::string::npos ? 0 : number(id.substr(dash + 1)).value_or(0);
  return {ms, seq};
}

std::string shown(const std::string& text) {
  return oneLine(text.size() > kShownBytes ? text.substr(0, kShownBytes) + "..." : text);
}

bool stopRequested(int stopFd) {
  pollfd p{stopFd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

// A field value as a JSON string (bytes >= 0x80 as they are).
void appendJsonString(std::string& out, const std::string& s) {
  out += '"';
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      static const char* hex = "0123456789abcdef";
      out += "\\u00";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += c;
    }
  }
  out += '"';
}

}  // namespace

bool isRedisEntryId(std::string_view id) {
  const auto dash = id.find('-');
  if (dash == std::string::npos) return number(id).has_value();
  return number(id.substr(0, dash)).has_value() && number(id.substr(dash + 1)).has_value();
}

bool redisIdAfter(std::string_view a, std::string_view b) { return idParts(a) > idParts(b); }

// One connection to Redis. pump() is one XREAD: it waits up to BLOCK for
// entries after the last id and publishes them. Used by the source thread only.
class RedisConnection : public ProviderConnection {
 public:
  RedisConnection(std::unique_ptr<RespClient> client, RedisSource& source, Bus& bus, SourceCounters& counters)
      : client_(std::move(client)), source_(source), bus_(bus), counters_(counters) {}

  std::optional<StreamEnd> pump(int timeoutMs, int stopFd) override {
    const int block = timeoutMs < 0 ? kBlockMs : std::clamp(timeoutMs, 1, kBlockMs);  // BLOCK 0 would wait forever
    const std::vector<std::string> command{"XREAD", "COUNT", std::to_string(source_.count_), "BLOCK",
                                           std::to_string(block), "STREAMS", source_.key_, source_.lastId_};
    RespReply reply;
    try {
      reply = client_->call(command, Clock::now() + std::chrono::milliseconds(block + kReplyMarginMs));
    } catch (const RespProtocolError& e) {
      counters_.protocolErrors.fetch_add(1, std::memory_order_relaxed);
      return StreamEnd::failed(std::string("protocol error: XREAD's reply: ") + e.what());
    } catch (const RespError& e) {
      if (stopRequested(stopFd)) return StreamEnd::stopped();
      return StreamEnd::failed(std::string("XREAD: ") + e.what());
    }
    if (reply.type == RespReply::Type::Error) return StreamEnd::failed("XREAD refused: " + shown(reply.text));
    counters_.bytesRead.fetch_add(5, std::memory_order_relaxed);  // a reply is a sign of life (idle_timeout_ms)
    if (reply.type == RespReply::Type::Null) return std::nullopt;  // nothing new within BLOCK
    std::string why;
    if (!takeReply(reply, why)) {
      counters_.protocolErrors.fetch_add(1, std::memory_order_relaxed);
      flush();  // the entries before the bad one are good
      return StreamEnd::failed("protocol error: " + why);
    }
    flush();
    return std::nullopt;
  }

  void close(const Goodbye&, Clock::time_point) override {}  // the client's socket closes with it
  std::string describe() const override { return "XREAD " + source_.key_ + " after " + source_.lastId_; }

 private:
  // [[key, [[id, [field, value, ...]], ...]]]
  bool takeReply(const RespReply& reply, std::string& why) {
    using Type = RespReply::Type;
    if (reply.type != Type::Array || reply.elements.size() != 1 || reply.elements[0].type != Type::Array ||
        reply.elements[0].elements.size() != 2 || reply.elements[0].elements[1].type != Type::Array) {
      why = "XREAD's reply is not [[key, [entries]]]";
      return false;
    }
    replyTime_ = unixNowNs();
    for (const RespReply& entry : reply.elements[0].elements[1].elements) {
      if (entry.type != Type::Array || entry.elements.size() != 2 || entry.elements[0].type != Type::Bulk ||
          entry.elements[1].type != Type::Array || entry.elements[1].elements.size() % 2 != 0) {
        why = "an entry that is not [id, [field, value, ...]]";
        return false;
      }
      const std::string& id = entry.elements[0].text;
      if (!isRedisEntryId(id) || !redisIdAfter(id, source_.lastId_)) {
        why = "an entry id '" + shown(id) + "' that does not follow " + source_.lastId_;
        return false;
      }
      for (const RespReply& word : entry.elements[1].elements)
        if (word.type != Type::Bulk) {
          why = "entry " + id + ": a field or value that is not a string";
          return false;
        }
      takeEntry(id, entry.elements[1].elements);
    }
    return true;
  }

  void takeEntry(const std::string& id, const std::vector<RespReply>& words) {
    const std::string* payload = nullptr;
    std::optional<std::uint64_t> epoch, seq, received;
    std::size_t bytes = id.size();
    for (std::size_t i = 0; i + 1 < words.size(); i += 2) {
      const std::string& name = words[i].text;
      const std::string& value = words[i + 1].text;
      bytes += name.size() + value.size();
      if (name == "payload") payload = &value;
      else if (name == "epoch") epoch = number(value);
      else if (name == "seq") seq = number(value);
      else if (name == "received_ns") received = number(value);
    }
    counters_.bytesRead.fetch_add(bytes, std::memory_order_relaxed);
    std::string fields;  // an entry without a payload field: its fields as a JSON object
    if (!payload) {
      fields = "{";
      for (std::size_t i = 0; i + 1 < words.size(); i += 2) {
        if (i > 0) fields += ',';
        appendJsonString(fields, words[i].text);
        fields += ':';
        appendJsonString(fields, words[i + 1].text);
      }
      fields += '}';
      payload = &fields;
    }
    const bool marked = epoch && *epoch != 0 && seq && *seq != 0 && *seq <= kMaxSeq;
    const std::int64_t now = replyTime_;
    const std::int64_t time =
        received && *received <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())
            ? static_cast<std::int64_t>(*received) : now;
    source_.lastId_ = id;
    if (!marked) {
      if (marked_ || (!builder_.empty() && batchTime_ != now)) flush();
      if (builder_.empty()) batchTime_ = now;
      marked_ = false;
      builder_.add(payload->data(), payload->size());
      batchId_ = id;
      return;
    }
    if (!source_.position_.take(*epoch, *seq)) return;  // had already (read again after a restart)
    if (!builder_.empty() &&
        (!marked_ || *epoch != batchEpoch_ || *seq != batchFirst_ + builder_.frameCount() || time != batchTime_))
      flush();
    if (builder_.empty()) {
      marked_ = true;
      batchEpoch_ = *epoch;
      batchFirst_ = *seq;
      batchTime_ = time;
    }
    builder_.add(payload->data(), payload->size());
    batchId_ = id;
  }

  void flush() {
    if (!builder_.empty()) {
      const std::int64_t now = unixNowNs();
      std::unique_ptr<FrameBatch> batch = builder_.seal(batchTime_);
      batch->setProviderPosition(batchId_);
      if (marked_) {
        const std::uint64_t last = batchFirst_ + batch->frameCount() - 1;
        bus_.publishAt(std::move(batch), batchEpoch_, batchFirst_);
        counters_.upstreamEpoch.store(batchEpoch_, std::memory_order_relaxed);
        counters_.upstreamSeq.store(last, std::memory_order_relaxed);
        counters_.lagNs.store(now - batchTime_, std::memory_order_relaxed);
      } else {
        bus_.publish(std::move(batch));
        // Numbered here, after the writer's last: a marked entry at or below it is one had already.
        source_.position_.set(bus_.stream().epoch, bus_.lastSeq());
      }
    }
    std::lock_guard<std::mutex> lock(counters_.endpointsMutex);
    counters_.providerPosition = source_.lastId_;
  }

  std::unique_ptr<RespClient> client_;
  RedisSource& source_;
  Bus& bus_;
  SourceCounters& counters_;
  FrameBatchBuilder builder_;
  bool marked_ = false;            // the builder's frames carry the writer's (epoch, seq)
  std::uint64_t batchEpoch_ = 0;
  std::uint64_t batchFirst_ = 0;   // the seq of the builder's first frame (marked)
  std::int64_t batchTime_ = 0;     // its frames' receive time
  std::string batchId_;            // the entry id of the builder's last frame
  std::int64_t replyTime_ = 0;     // when the reply being taken was read: its unmarked entries' receive time
};

// A subscription to a pub/sub channel: each message is a frame, numbered
// here. Nothing resumes: what was published while no connection was up is
// not Redis's to give again.
class RedisChannelConnection : public ProviderConnection {
 public:
  RedisChannelConnection(std::unique_ptr<RespClient> client, RedisSource& source, Bus& bus, SourceCounters& counters)
      : client_(std::move(client)), source_(source), bus_(bus), counters_(counters) {}

  std::optional<StreamEnd> pump(int timeoutMs, int stopFd) override {
    const int wait = timeoutMs < 0 ? kBlockMs : std::clamp(timeoutMs, 0, kBlockMs);
    try {
      std::optional<RespReply> message = client_->receive(Clock::now() + std::chrono::milliseconds(wait));
      while (message) {
        std::string why;
        if (!take(*message, why)) {
          counters_.protocolErrors.fetch_add(1, std::memory_order_relaxed);
          flush();
          return StreamEnd::failed("protocol error: " + why);
        }
        message = client_->receive(Clock::now());  // the ones already read
      }
    } catch (const RespProtocolError& e) {
      counters_.protocolErrors.fetch_add(1, std::memory_order_relaxed);
      flush();
      return StreamEnd::failed(std::string("protocol error: ") + e.what());
    } catch (const RespError& e) {
      flush();
      if (stopRequested(stopFd)) return StreamEnd::stopped();
      return StreamEnd::failed(std::string("channel ") + source_.channel_ + ": " + e.what());
    }
    flush();
    return std::nullopt;
  }

  void close(const Goodbye&, Clock::time_point) override {}
  std::string describe() const override { return "SUBSCRIBE " + source_.channel_; }

 private:
  // ["message", channel, payload]
  bool take(const RespReply& reply, std::string& why) {
    using Type = RespReply::Type;
    if (reply.type != Type::Array || reply.elements.size() != 3 ||
        std::any_of(reply.elements.begin(), reply.elements.end(), [](const RespReply& e) { return e.type != Type::Bulk; }) ||
        reply.elements[0].text != "message") {
      why = "a pushed reply that is not [\"message\", channel, payload]";
      return false;
    }
    const std::string& payload = reply.elements[2].text;
    counters_.bytesRead.fetch_add(payload.size(), std::memory_order_relaxed);
    builder_.add(payload.data(), payload.size());
    return true;
  }

  void flush() {
    if (!builder_.empty()) bus_.publish(builder_.seal(unixNowNs()));
  }

  std::unique_ptr<RespClient> client_;
  RedisSource& source_;
  Bus& bus_;
  SourceCounters& counters_;
  FrameBatchBuilder builder_;
};

namespace {

std::vector<std::string> urlsOfRedis(const Settings& s) {
  std::vector<std::string> urls = s.strings("endpoints");
  if (urls.empty()) urls.push_back(s.string("url"));
  return urls;
}

}  // namespace

RedisSource::RedisSource(const SourceConfig& config, Bus& bus)
    : ConnectingSource(config, bus, urlsOfRedis(config.settings)),
      endpoints_([&] {
        std::vector<HostPort> list;
        for (const std::string& url : urlsOfRedis(config.settings)) {  // checked with the config
          HostPort e;
          parseRedisUrl(url, e.host, e.port);
          list.push_back(e);
        }
        return list;
      }()),
      key_(config.settings.string("key")),
      channel_(config.settings.string("channel")),
      password_(config.settings.string("password")),
      count_(static_cast<std::size_t>(config.settings.integer("count"))),
      maxFrameBytes_(static_cast<std::size_t>(config.settings.integer("max_frame_bytes"))),
      position_(counters_, label(), "the writer's"),
      lastId_(config.settings.string("from") == "0" ? "0-0" : config.settings.string("from")) {
  // Restarted by a reload, or on a log: goes on from what its stream has, never a seq twice.
  if (bus.lastSeq() > 0) position_.set(bus.stream().epoch, bus.lastSeq());
}

RedisSource::~RedisSource() { stop(); }

void RedisSource::resumeProviderAfter(const std::string& position) {
  if (!isRedisEntryId(position)) {
    logger().warning("%s: the position kept with the stream, '%s', is not an entry id: starting at from '%s'", label(),
                     shown(position), lastId_);
    return;
  }
  logger().information("%s: going on after entry %s of %s (kept with the stream)", label(), position, key_);
  lastId_ = position;
  std::lock_guard<std::mutex> lock(counters_.endpointsMutex);
  counters_.providerPosition = lastId_;
}

std::unique_ptr<ProviderConnection> RedisSource::open(std::size_t endpoint, Clock::time_point deadline,
                                                      OpenFailure& failure) {
  if (!channel_.empty()) return subscribe(endpoint, deadline, failure);
  RespParser::Limits limits;
  limits.maxBulkBytes = std::max<std::size_t>(maxFrameBytes_, 4096);
  limits.maxElements = count_ * 64 + 16;  // an entry of a few fields; more is refused (a field-heavy entry: lower count)
  limits.maxDepth = 5;                    // [[key, [[id, [fields]]]]]
  limits.maxReplyBytes = std::max<std::size_t>(std::size_t{64} << 20, 2 * limits.maxBulkBytes + 4096);  // one XREAD
  std::unique_ptr<RespClient> client;
  try {
    client = std::make_unique<RespClient>(endpoints_[endpoint].host, endpoints_[endpoint].port, password_, deadline,
                                          stop_.fd(), limits);
    if (lastId_ == "$") {
      // Resolved once to the newest entry's id (or 0-0): a reconnect goes on after it, never at a new "$".
      const RespReply newest = client->call({"XREVRANGE", key_, "+", "-", "COUNT", "1"}, deadline);
      if (newest.type == RespReply::Type::Error) {
        failure.why = "XREVRANGE refused: " + shown(newest.text);
        return nullptr;
      }
      if (newest.type != RespReply::Type::Array || (!newest.elements.empty() &&
                                                   (newest.elements[0].type != RespReply::Type::Array ||
                                                    newest.elements[0].elements.empty() ||
                                                    !isRedisEntryId(newest.elements[0].elements[0].text)))) {
        counters_.protocolErrors.fetch_add(1, std::memory_order_relaxed);
        failure.why = "protocol error: XREVRANGE's reply is not a list of entries";
        return nullptr;
      }
      lastId_ = newest.elements.empty() ? "0-0" : newest.elements[0].elements[0].text;
      logger().information("%s: from \"$\": new entries of %s, after %s", label(), key_, lastId_);
      std::lock_guard<std::mutex> lock(counters_.endpointsMutex);
      counters_.providerPosition = lastId_;
    }
  } catch (const RespProtocolError& e) {
    counters_.protocolErrors.fetch_add(1, std::memory_order_relaxed);
    failure.why = std::string("protocol error: ") + e.what();
    return nullptr;
  } catch (const RespError& e) {
    failure.why = e.what();
    return nullptr;
  }
  return std::make_unique<RedisConnection>(std::move(client), *this, bus_, counters_);
}

std::unique_ptr<ProviderConnection> RedisSource::subscribe(std::size_t endpoint, Clock::time_point deadline,
                                                           OpenFailure& failure) {
  RespParser::Limits limits;
  limits.maxBulkBytes = std::max<std::size_t>(maxFrameBytes_, 4096);
  limits.maxElements = 3;  // ["message", channel, payload]
  limits.maxDepth = 1;
  try {
    auto client = std::make_unique<RespClient>(endpoints_[endpoint].host, endpoints_[endpoint].port, password_,
                                               deadline, stop_.fd(), limits);
    const RespReply answer = client->call({"SUBSCRIBE", channel_}, deadline);
    if (answer.type == RespReply::Type::Error) {
      failure.why = "SUBSCRIBE refused: " + shown(answer.text);
      return nullptr;
    }
    if (answer.type != RespReply::Type::Array || answer.elements.size() != 3 || answer.elements[0].text != "subscribe") {
      counters_.protocolErrors.fetch_add(1, std::memory_order_relaxed);
      failure.why = "protocol error: SUBSCRIBE's reply is not [\"subscribe\", channel, count]";
      return nullptr;
    }
    return std::make_unique<RedisChannelConnection>(std::move(client), *this, bus_, counters_);
  } catch (const RespProtocolError& e) {
    counters_.protocolErrors.fetch_add(1, std::memory_order_relaxed);
    failure.why = std::string("protocol error: ") + e.what();
  } catch (const RespError& e) {
    failure.why = e.what();
  }
  return nullptr;
}

SourceType redis_source_type() {
  std::vector<KeySpec> keys{
      key("url").doc("redis://HOST:PORT ([v6] allowed); or endpoints"),
      key("endpoints", KeyKind::Strings).doc("redis:// URLs instead of url: the first is the primary, the others fail over"),
      key("key").doc("the Redis stream read with XREAD (or channel)"),
      key("channel").doc("a pub/sub channel instead of key: each message a frame, numbered here; nothing resumes"),
      key("from").def("$").doc("where a relay without a position starts: $ (new entries only), 0 (the whole stream) "
                               "or an entry id (the entries after it)"),
      key("password").env().hidden().doc("sent with AUTH after each connect"),
      key("count", KeyKind::Int).def("1000").range(1, 100000).doc("entries one XREAD takes at most"),
      key("max_frame_bytes", KeyKind::Int).def("1048576").range(1, kMaxFrameBytesLimit)
          .doc("a larger field value is a protocol error (the connection is dropped)")};
  addConnectingKeys(keys, tlsSchema());
  return {{"redis",
           "reads a Redis stream (XREAD); what a relay's redis sink wrote keeps its (epoch, seq), as a mirror",
           std::move(keys),
           [](const Settings& s, const YamlMap& m) {
             if (s.string("url").empty() == s.strings("endpoints").empty())
               m.failHere(s.string("url").empty() ? "missing required key 'url' (or endpoints)"
                                                  : "use either url or endpoints");
             for (const std::string& url : urlsOfRedis(s)) {
               std::string host;
               int port = 0;
               if (!parseRedisUrl(url, host, port))
                 m.fail(s.string("url").empty() ? "endpoints" : "url",
                        "must be redis://HOST:PORT (a password goes in `password`), got '" + url + "'");
             }
             if (s.string("key").empty() == s.string("channel").empty())
               m.failHere(s.string("key").empty() ? "missing required key 'key' (or channel)" : "use either key or channel");
             if (!s.string("channel").empty() && m.has("from"))
               m.fail("from", "applies to a stream (key), not to a channel");
             const std::string from = s.string("from");
             if (from != "$" && !isRedisEntryId(from))
               m.fail("from", "must be \"$\", \"0\" or an entry id (MS or MS-SEQ), got '" + from + "'");
             if (s.group("tls").has("enabled") && s.group("tls").boolean("enabled")) m.fail("tls", "a redis source does not speak TLS yet");
             checkFailover(s, m);
           }},
          [](const SourceConfig& config, Bus& bus) { return std::make_unique<RedisSource>(config, bus); }};
}

}  // namespace streamrelay
