// SPDX-License-Identifier: Apache-2.0
#pragma once
// SseDecoder: Server-Sent Events (the `text/event-stream` format of the HTML
// standard) as a framing: each event's data is one frame. Several `data:`
// lines are joined with "\n"; comments (":heartbeat") and events without data
// are skipped; lines may end in LF, CRLF or CR. As the standard says, an id
// counts once its event is complete (at the blank line that ends it): the
// last complete event's id is kept across reset() (a new connection), so a
// source can send it back as Last-Event-ID and the provider resumes after the
// last event that was published, not after one cut in half.
//
// Bounded like every decoder: an event's data, or one line, longer than
// max_frame_bytes is a protocol error, found before it is stored.

#include <string>

#include "framing.hpp"

namespace streamrelay {

class SseDecoder : public FrameDecoder {
 public:
  explicit SseDecoder(const FramingSpec& spec) : maxBytes_(spec.maxFrameBytes) {}
  bool decode(const char* data, std::size_t size, FrameBatchBuilder& out) override;
  void reset() override;
  std::string lastEventId() const override { return lastEventId_; }
  void resumeAfter(const std::string& position) override { lastEventId_ = idBuffer_ = position; }

 private:
  bool processLine(FrameBatchBuilder& out);

  const std::size_t maxBytes_;
  std::string line_;         // the line in progress
  std::string data_;         // the event in progress
  bool hasData_ = false;
  bool skipLf_ = false;      // the last line ended with CR: a LF right after belongs to it
  std::string idBuffer_;     // the id: of the event in progress
  std::string lastEventId_;  // the id of the last event dispatched (the spec's "last event ID string")
  std::uint64_t offset_ = 0;      // stream bytes consumed
  std::uint64_t eventStart_ = 0;  // where the event in progress began
};

}  // namespace streamrelay
