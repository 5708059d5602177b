// SPDX-License-Identifier: Apache-2.0
// FrameRing: frames of every size cross whole and in order with their ring
// seqs; an emptied ring takes the unacknowledged frames again; nonsense in
// the reader's half of the control page is refused. Writer and reader share
// one process here (the reader maps the same memfd, as a child would).
#include <catch2/catch.hpp>

#include <poll.h>

#include <string>
#include <thread>
#include <vector>

#include "frame_ring.hpp"

using namespace streamrelay;

namespace {

// `keys`: one per payload ("": none), or none at all.
FrameBatchPtr batchOf(const std::vector<std::string>& payloads, std::uint64_t firstSeq,
                      const std::vector<std::string>& keys = {}) {
  FrameBatchBuilder builder;
  for (std::size_t i = 0; i < payloads.size(); ++i)
    builder.add(payloads[i].data(), payloads[i].size(), keys.empty() ? std::string_view() : keys[i]);
  std::unique_ptr<FrameBatch> batch = builder.seal(1234);
  batch->assignFirstSeq(firstSeq);
  return FrameBatchPtr(std::move(batch));
}

struct Received {
  std::uint64_t ringSeq;
  std::uint64_t streamSeq;
  std::string payload;
  std::string key;
  bool keysSent = false;  // its record carried keys
};

// The next key of a record's keys ("" if the record has none).
std::string nextKey(const RingRecord& r, RingKeys& keys) {
  std::string_view key;
  if (r.keyBytes > 0) REQUIRE(keys.next(key));
  return std::string(key);
}

// Reads records until `count` frames are whole; FrameParts are joined.
std::vector<Received> readFrames(FrameRingReader& reader, std::size_t count) {
  std::vector<Received> out;
  std::string part, partKey;
  while (out.size() < count) {
    const RingRecord* r = reader.next();
    if (!r) {
      reader.wait(1000);
      continue;
    }
    RingKeys keys(*r);
    if (r->kind == RingRecord::kFramePart) {
      part.append(r->data(), r->frameBytes());
      if (r->keyBytes > 0) partKey = nextKey(*r, keys);  // the first piece's
      if (r->last) {
        out.push_back({r->ringSeq, r->streamSeq, part, partKey, !partKey.empty()});
        part.clear();
        partKey.clear();
      }
    } else {
      std::size_t offset = 0;
      for (std::uint32_t i = 0; i < r->frames; ++i) {
        const auto* p = reinterpret_cast<const unsigned char*>(r->data() + offset);
        const std::size_t size = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) | (std::size_t{p[2]} << 8) | p[3];
        out.push_back({r->ringSeq + i, r->streamSeq + i, std::string(r->data() + offset + 4, size), nextKey(*r, keys),
                       r->keyBytes > 0});
        offset += 4 + size;
      }
      CHECK(offset == r->frameBytes());
    }
    CHECK(keys.done());
    reader.consume(r);
  }
  return out;
}

// Writes every frame of `spans`, waiting for room as a relay would.
void writeAll(FrameRingWriter& writer, std::vector<FrameRingWriter::Cursor> cursors) {
  for (FrameRingWriter::Cursor& c : cursors) {
    while (c.span.first < c.span.end) {
      if (writer.write(c)) continue;
      writer.publish();
      if (writer.prepareToSleep()) {
        pollfd bell{writer.writerBell(), POLLIN, 0};
        ::poll(&bell, 1, 5000);  // the reader rings once it frees room
        writer.wokeUp();
      }
    }
  }
  writer.publish();
}

}  // namespace

TEST_CASE("frame ring: small, large and larger-than-the-ring frames arrive whole and in order", "[frame_ring]") {
  FrameRingWriter writer(64 * 1024);
  REQUIRE(writer.capacity() == 64 * 1024);
  std::vector<std::string> payloads;
  for (int i = 0; i < 3000; ++i) payloads.push_back("frame " + std::to_string(i));
  payloads.push_back(std::string(40 * 1024, 'a'));   // bigger than half the ring: in parts
  payloads.push_back(std::string(300 * 1024, 'b'));  // bigger than the ring
  payloads.push_back("");
  for (int i = 0; i < 100; ++i) payloads.push_back(std::string(static_cast<std::size_t>(i * 97), 'c'));
  FrameBatchPtr batch = batchOf(payloads, 501);
  FrameRingWriter::Cursor cursor{FrameSpan{batch, 0, static_cast<std::uint32_t>(batch->frameCount())}, 0, 1, 0};
  FrameRingReader reader(writer.memfd(), writer.capacity(), writer.readerBell(), writer.writerBell());
  std::thread producer([&] { writeAll(writer, {cursor}); });
  std::vector<Received> got = readFrames(reader, payloads.size());
  producer.join();
  REQUIRE(got.size() == payloads.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO(i);
    CHECK(got[i].ringSeq == i + 1);
    CHECK(got[i].streamSeq == 501 + i);
    CHECK(got[i].payload == payloads[i]);
  }
}

TEST_CASE("frame ring: frames cross with their keys, whatever their size, and a batch without keys sends none",
          "[frame_ring]") {
  FrameRingWriter writer(64 * 1024);
  std::vector<std::string> payloads, keys;
  for (int i = 0; i < 2000; ++i) {
    payloads.push_back("frame " + std::to_string(i));
    keys.push_back(i % 3 == 0 ? "" : "md." + std::string(static_cast<std::size_t>(i % 254), 'k'));
  }
  payloads.push_back(std::string(32 * 1024 - 60, 'a'));  // fits a span alone, not with its key: in parts
  keys.push_back(std::string(256, 'x'));
  payloads.push_back(std::string(300 * 1024, 'b'));  // bigger than the ring
  keys.push_back("big");
  payloads.push_back(std::string(40 * 1024, 'c'));  // in parts, without a key
  keys.push_back("");
  FrameBatchPtr keyed = batchOf(payloads, 1, keys);
  FrameBatchPtr plain = batchOf({"p1", "p2"}, 1);
  REQUIRE(!plain->keyed());
  const auto frames = static_cast<std::uint32_t>(keyed->frameCount());
  FrameRingWriter::Cursor first{FrameSpan{keyed, 0, frames}, 0, 1, 0};
  FrameRingWriter::Cursor second{FrameSpan{plain, 0, 2}, 0, 1 + frames, 0};
  FrameRingReader reader(writer.memfd(), writer.capacity(), writer.readerBell(), writer.writerBell());
  std::thread producer([&] { writeAll(writer, {first, second}); });
  std::vector<Received> got = readFrames(reader, payloads.size() + 2);
  producer.join();
  REQUIRE(got.size() == payloads.size() + 2);
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    INFO(i);
    CHECK(got[i].payload == payloads[i]);
    CHECK(got[i].key == keys[i]);
  }
  CHECK(got[frames].payload == "p1");
  CHECK(!got[frames].keysSent);
  CHECK(!got[frames + 1].keysSent);
}

TEST_CASE("frame ring: after a reset a new reader gets the frames from the first unacknowledged one",
          "[frame_ring]") {
  FrameRingWriter writer(64 * 1024);
  std::vector<std::string> payloads;
  for (int i = 1; i <= 100; ++i) payloads.push_back(std::to_string(i));
  FrameBatchPtr batch = batchOf(payloads, 1);
  writeAll(writer, {{FrameSpan{batch, 0, 100}, 0, 1, 0}});
  std::uint64_t acked = 0;
  {
    FrameRingReader first(writer.memfd(), writer.capacity(), writer.readerBell(), writer.writerBell());
    readFrames(first, 100);
    first.acknowledge(40);  // then it dies
    REQUIRE(writer.readerProgress(100, acked));
    CHECK(acked == 40);
  }
  writer.reset(acked);
  writeAll(writer, {{FrameSpan{batch, 40, 100}, 0, 41, 0}});
  FrameRingReader second(writer.memfd(), writer.capacity(), writer.readerBell(), writer.writerBell());
  std::vector<Received> got = readFrames(second, 60);
  CHECK(got.front().ringSeq == 41);
  CHECK(got.front().payload == "41");
  CHECK(got.back().ringSeq == 100);
}

TEST_CASE("frame ring: an acknowledgement past what was written, or going back, is refused", "[frame_ring]") {
  FrameRingWriter writer(64 * 1024);
  FrameBatchPtr batch = batchOf({"a", "b", "c"}, 1);
  writeAll(writer, {{FrameSpan{batch, 0, 3}, 0, 1, 0}});
  FrameRingReader reader(writer.memfd(), writer.capacity(), writer.readerBell(), writer.writerBell());
  std::uint64_t acked = 0;
  reader.acknowledge(2);
  REQUIRE(writer.readerProgress(3, acked));
  CHECK(acked == 2);
  reader.acknowledge(1);
  CHECK_FALSE(writer.readerProgress(3, acked));
  reader.acknowledge(4);
  CHECK_FALSE(writer.readerProgress(3, acked));
  CHECK(acked == 2);
}
