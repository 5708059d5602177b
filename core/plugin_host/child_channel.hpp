// SPDX-License-Identifier: Apache-2.0
#pragma once
// The control channel between the relay and the child process of an isolated
// plugin instance: a socketpair carrying messages, each a header (type,
// length) and fields. Frames do not go this way (they cross the FrameRing);
// what does is what the host API needs across the process boundary: the
// child's log lines, the plugin's counters and gauges, the frames a processor
// emits (back to the relay, in order, to be published on its stream), the
// relay's stats on request, and the instance's life (started, stop, ended).
//
// Both sides are this machine and this binary, so numbers are in host order.
// The relay never trusts what the child sends: MessageStream caps lengths and
// every field read is bounds-checked; a malformed message ends the child.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace streamrelay {

enum class ChildMessage : std::uint32_t {
  // relay -> child
  Start = 1,      // ChildStart
  Stop = 2,       // u64 last ring seq written, i64 deadline (steady clock ns), u32 close reason
  StatsReply = 3, // str stats JSON
  // child -> relay
  Ready = 100,         // the plugin's create() succeeded
  CreateFailed = 101,  // str reason
  Log = 102,           // u32 priority, str logger, str text
  Metrics = 103,       // u64 failures added, u32 n, n x (str, u64 added), u32 m, m x (str, f64 value)
  Emit = 104,          // u64 ring seq acknowledged with them (0: none), then the emitted frames
                       // (EmittedFrames), back to back: one message, so that a crash loses both or
                       // neither
  StatsRequest = 105,  //
  Disabled = 106,      // the plugin failed max_failures times in a row
  Ended = 107,         // the plugin was flushed and destroyed; the child exits 0 next
};

// What a child needs to run one instance (the first message it reads).
struct ChildStart {
  std::string name;
  std::string type;
  std::string libraryPath;    // the file, as log lines name it (the code comes by fd)
  std::string configYaml;     // may hold secrets: it never goes on a command line
  std::uint32_t maxFailures = 10;
  std::uint64_t maxEmitBytes = 16 << 20;
  bool allowInsecureFiles = false;  // plugins.allow_insecure: check_file_trust trusts every file
  std::uint64_t queueMaxFrames = 0;
  std::uint64_t queueMaxBytes = 0;
  std::vector<std::string> inputs;
  bool hasOutput = false;     // it may emit: it has a stream of its own
  std::uint64_t ringCapacity = 0;
  std::uint64_t firstRingSeq = 1;  // of the first frame it will read
  std::int32_t logLevel = 6;  // POCO priority: the relay's level when it started
  bool seccomp = true;
  std::uint64_t memoryLimitBytes = 0;
};

// The largest message the relay accepts: an emitted frame may be 1 GiB (as
// in process; with its length, key and the message's u64 on top), other
// messages are small.
constexpr std::size_t kMaxEmitMessageBytes = (std::size_t{1} << 30) + 512;
constexpr std::size_t kMaxControlMessageBytes = std::size_t{1} << 20;
constexpr std::size_t kMessageHeaderBytes = 8;

// Builds one message.
class MessageBuilder {
 public:
  explicit MessageBuilder(ChildMessage type);
  MessageBuilder& u32(std::uint32_t v);
  MessageBuilder& u64(std::uint64_t v);
  MessageBuilder& i64(std::int64_t v);
  MessageBuilder& f64(double v);
  MessageBuilder& str(std::string_view v);
  MessageBuilder& bytes(const char* data, std::size_t size);  // raw, no length
  // The message, its length filled in.
  const std::string& finish();

 private:
  std::string out_;
};

// Reads the fields of one message; every getter fails (false) rather than
// read past the end.
class MessageParser {
 public:
  MessageParser(const char* data, std::size_t size) : at_(data), end_(data + size) {}
  bool u32(std::uint32_t& v);
  bool u64(std::uint64_t& v);
  bool i64(std::int64_t& v);
  bool f64(double& v);
  bool str(std::string& v);
  bool done() const { return at_ == end_; }
  const char* rest() const { return at_; }
  std::size_t left() const { return static_cast<std::size_t>(end_ - at_); }

 private:
  bool take(void* v, std::size_t size);
  const char* at_;
  const char* end_;
};

std::string encodeStart(const ChildStart& start);
bool decodeStart(MessageParser& p, ChildStart& start);

// The frames of an Emit message, after its u64. Each is the frame in wire
// form (4-byte big-endian length, payload), then its key: a u16 size (at most
// STREAMRELAY_MAX_KEY_SIZE; 0: none) and the key's bytes.
void appendEmittedFrame(std::string& message, std::string_view wireForm, std::string_view key);

// Reads them back, bounds-checked: what the child sent is never trusted.
class EmittedFrames {
 public:
  explicit EmittedFrames(std::string_view frames) : rest_(frames) {}
  // The next frame: true with its payload and key ("": none), views into the
  // message; false at the end, or at a malformed frame (then malformed()).
  bool next(std::string_view& payload, std::string_view& key);
  bool malformed() const { return malformed_; }
  // True if every frame is whole and every key within bounds.
  static bool wellFormed(std::string_view frames);

 private:
  std::string_view rest_;
  bool malformed_ = false;
};

// Cuts a byte stream into messages. The relay's side: a length over the cap
// for its type is an error, and memory grows only as bytes arrive.
class MessageStream {
 public:
  // Appends bytes read from the socket.
  void append(const char* data, std::size_t size);
  // The next complete message: true with its type and payload (valid until
  // the next call); false if incomplete. Sets `error` (and returns false) on a
  // message no child may send.
  bool next(ChildMessage& type, std::string_view& payload, std::string& error);
  std::size_t buffered() const { return buffer_.size() - consumed_; }

 private:
  std::string buffer_;
  std::size_t consumed_ = 0;
};

}  // namespace streamrelay
