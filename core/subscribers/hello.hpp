// SPDX-License-Identifier: Apache-2.0
#pragma once
// The hello a subscriber sends and the answer it gets: the `streamrelay`
// protocol's (listeners[].protocol: streamrelay), which every protocol with
// a hello shares (websocket: the same JSON as its first message; websocket
// and sse: the same fields as query parameters). wire.hpp has the bytes
// around them (the frame header).
//
//   client -> relay  the hello, JSON (every field optional):
//                    {"token": "...", "inputs": ["trades"], "select": ["md.*.BTC"],
//                     "resume": {"epoch": E, "after_seq": S | {"trades": S, ...}}
//                               or {"after_seq": {"trades": {"epoch": E, "seq": S}, ...}}
//                               or {"from_seq": N} or {"from_time": "RFC 3339"},
//                     "snapshot": true, "max_rate_per_key": MS}
//                    or, where a client cannot send a first line (a browser),
//                    the same as query parameters (helloFromQuery):
//                    ?token=T&inputs=a,b&select=p,q&resume=EPOCH-SEQ (or EPOCH-STREAM-SEQ,...)
//                    (or from_seq=N, from_time=RFC3339)
//                    &snapshot=true&max_rate_per_key=MS
//   relay -> client  the answer, JSON:
//                    {"ok": true, "epoch": "E", "recovered": true, "first_seq": N,
//                     "heartbeat_ms": H,
//                     "streams": {"trades": {"id": 0, "epoch": "E", "first_seq": N, "recovered": true}}}
//                    or {"ok": false, "error": "..."}, after which it closes;
//                    then the frames of the streams asked for, and when
//                    nothing was sent for heartbeat_ms, a heartbeat.
//
// Epochs are decimal strings: a 64-bit number does not survive
// JavaScript's or jq's JSON. An epoch belongs to a stream (a logged stream
// keeps its own across restarts): each stream's is in `streams`; the top
// level's is the streams' epoch when they share one (always, with one), and
// absent when they do not. A resume names the epoch of its positions, at
// the top level or per stream; a stream's position is continued only in
// that stream's epoch. `recovered` is there only for what the hello
// asked to resume: per stream for each stream it named, and at the top
// level (true when every one of them continues right after the seq asked
// for). A hello without `resume` gets only where each stream starts.
// `heartbeat_ms` is absent when the listener sends no heartbeats.
//
// Nothing here allocates more than the text it was given, which its reader
// bounds at wire::kMaxHelloBytes.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace streamrelay {
namespace protocol {

struct Hello {
  std::string token;                // empty: none given
  std::vector<std::string> inputs;  // empty: every input of the listener
  struct Resume {
    std::uint64_t epoch = 0;                         // of every position (0: each names its own)
    std::optional<std::uint64_t> afterSeq;           // one number: the only stream asked for
    std::map<std::string, std::uint64_t> byStream;   // or one per stream
    std::map<std::string, std::uint64_t> epochOf;    // a stream's own epoch, where its position names one
    // Or a replay, in the stream's epoch now: from seq N (the only stream
    // asked for), or from the first frame received at or after a time.
    std::optional<std::uint64_t> fromSeq;
    std::optional<std::int64_t> fromUnixNs;
    // The epoch the position of stream `name` belongs to (0: none given).
    std::uint64_t epochFor(const std::string& name) const {
      auto it = epochOf.find(name);
      return it == epochOf.end() ? epoch : it->second;
    }
  };
  std::optional<Resume> resume;
  // Patterns of the keys wanted (NATS subjects); empty: every frame.
  std::vector<std::string> select;
  // First the newest frame of each selected key (streams.NAME.last_value), then live.
  bool snapshot = false;
  // At most one frame per key per this many milliseconds (the newest of the
  // interval, the last one always); 0: every frame.
  std::uint32_t maxRatePerKeyMs = 0;
};

// The largest max_rate_per_key: a day.
constexpr std::uint32_t kMaxRatePerKeyMs = 60 * 1000;  // a frame held longer is a snapshot's job

// Text a client sent, made fit for one log line: control bytes become '?',
// and it is cut after `limit` bytes.
std::string printable(std::string_view text, std::size_t limit = 200);

// A hello the relay cannot take; what() is the one-line reason (printable()),
// sent back to the client and logged.
struct HelloError : std::runtime_error {
  explicit HelloError(const std::string& what) : std::runtime_error(printable(what, 400)) {}
};

// Parses the hello line (without its newline). Throws HelloError.
Hello parseHello(std::string_view line);
// The hello as query parameters: token, inputs (a,b), select (p,q),
// snapshot, max_rate_per_key, resume (event ids, see below), from_seq and from_time. Throws HelloError (an unknown parameter too).
Hello helloFromQuery(const std::vector<std::pair<std::string, std::string>>& query);
// A resume point written as Server-Sent Event ids (wire.hpp), comma
// separated: EPOCH-SEQ (the only stream asked for) or EPOCH-STREAM-SEQ per
// stream, each in its stream's epoch (a query's resume, SSE's Last-Event-ID). Throws
// HelloError naming `what`.
Hello::Resume resumeFromEventIds(std::string_view ids, const std::string& what);

// Where one stream starts for this subscriber.
struct StreamStart {
  std::string name;
  std::uint16_t id = 0;
  std::optional<bool> recovered;  // none: the hello did not ask to resume this stream
  std::uint64_t firstSeq = 0;
  std::uint64_t epoch = 0;        // the stream's
};

// The epoch the streams share; none if they have several.
std::optional<std::uint64_t> sharedEpoch(const std::vector<StreamStart>& streams);

// The answer's JSON. `epoch`: the top level's (none: the streams have
// several; see sharedEpoch). `heartbeatMs` 0: none announced. `extra`: string
// fields a protocol adds (how it sends frames: "envelope", "encoding").
std::string okAnswerJson(std::optional<std::uint64_t> epoch, const std::vector<StreamStart>& streams, int heartbeatMs,
                         const std::vector<std::pair<std::string, std::string>>& extra = {});
std::string errorAnswerJson(const std::string& error);
// The same as the streamrelay protocol sends them: control frames (wire.hpp).
std::string okAnswer(std::optional<std::uint64_t> epoch, const std::vector<StreamStart>& streams, int heartbeatMs);
std::string errorAnswer(const std::string& error);
// What a heartbeat is in the streamrelay protocol (the same bytes every time).
const std::string& heartbeatFrame();

}  // namespace protocol
}  // namespace streamrelay
