// SPDX-License-Identifier: Apache-2.0
#pragma once
// The nats source's configuration (`sources.NAME: {type: nats, ...}`), read
// from the source's mapping without `type`.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nats_connection_config.hpp"

namespace streamrelay::plugins {

struct NatsSourceConfig : NatsConnectionConfig {
  std::string subject;               // required: the subject (JetStream: the consumer's filter)
  bool jetstream = false;            // `jetstream:` given: an ordered consumer on `stream`
  std::string stream;                // jetstream.stream (required with jetstream)
  // Where a source without a kept position starts: the new messages, all,
  // from a stream sequence or from a time (ns since the Unix epoch).
  enum class Deliver { New, All, FromSeq, FromTime } deliver = Deliver::New;
  std::uint64_t fromSeq = 0;
  std::int64_t fromTimeNs = 0;
  std::string writerStream;          // jetstream.writer_stream ("": the first marked message's)
  int reorderWindowMs = 10000;       // jetstream.reorder_window_ms: writer's frames stored out of order, waited for
  int maxPendingMessages = 1000000;  // core NATS: messages cnats holds for the source before it drops
};

const ConfigKeys& natsSourceConfigKeys();

// Throws std::invalid_argument naming the key on any unknown key or bad value.
NatsSourceConfig parseNatsSourceConfig(const std::string& yaml);

// "2026-12-03T21:00:00Z" or with a fraction of a second ("...00.25Z"), UTC
// only: ns since the Unix epoch, or nothing if it does not read.
std::optional<std::int64_t> parseUtcTime(const std::string& text);

// `Nats-Msg-Id: EPOCH-STREAM-SEQ` as the relay's nats sink writes it (the
// stream's name may hold '-'): the epoch, the writer's stream and the seq
// (epoch and seq non-zero), or nothing.
struct WriterMark {
  std::uint64_t epoch = 0;
  std::string stream;
  std::uint64_t seq = 0;
};
std::optional<WriterMark> parseMsgId(const char* id, std::size_t size);

}  // namespace streamrelay::plugins
