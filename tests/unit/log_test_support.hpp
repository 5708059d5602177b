// SPDX-License-Identifier: Apache-2.0
#pragma once
// Helpers for the tests of core/log: a scratch directory, frames with keys
// and times, and reading a whole log back.

#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "frame_batch.hpp"
#include "log_reader.hpp"
#include "scratch_dir.hpp"
#include "stream_log.hpp"

namespace streamrelay::test {

// What a frame is, as the log should give it back.
struct LoggedFrame {
  std::uint64_t seq = 0;
  std::int64_t unixNs = 0;
  bool hasKey = false;
  std::string key;
  std::string payload;
  bool operator==(const LoggedFrame& o) const {
    return seq == o.seq && unixNs == o.unixNs && hasKey == o.hasKey && key == o.key && payload == o.payload;
  }
};

// Frames [firstSeq, firstSeq + count): every third without a key, payloads
// of varied sizes, received at `unixNs` (one batch, one receive time).
inline std::unique_ptr<FrameBatch> makeFrames(std::uint64_t firstSeq, std::size_t count, std::int64_t unixNs,
                                              std::size_t payloadBytes = 0) {
  FrameBatchBuilder builder;
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint64_t seq = firstSeq + i;
    std::string payload = payloadBytes ? std::string(payloadBytes, static_cast<char>('a' + seq % 26))
                                       : "frame " + std::to_string(seq) + std::string(seq % 50, '.');
    if (seq % 3 == 0) builder.add(payload.data(), payload.size(), std::string_view());
    else builder.add(payload.data(), payload.size(), "key." + std::to_string(seq % 7));
  }
  auto batch = builder.seal(unixNs);
  batch->assignFirstSeq(firstSeq);
  return batch;
}

inline std::vector<LoggedFrame> framesOf(const FrameBatch& batch) {
  std::vector<LoggedFrame> out;
  for (std::size_t i = 0; i < batch.frameCount(); ++i)
    out.push_back({batch.seq(i), batch.receivedUnixNs(), batch.hasKey(i), std::string(batch.key(i)),
                   std::string(batch.payload(i))});
  return out;
}

inline std::vector<LoggedFrame> readAll(const StreamLog& log, std::uint64_t fromSeq = 1) {
  std::vector<LoggedFrame> out;
  LogReader reader(log, fromSeq);
  logfmt::Record r;
  while (reader.next(r))
    out.push_back({r.seq, r.unixNs, r.hasKey, std::string(r.key), std::string(r.payload)});
  return out;
}

inline std::vector<std::string> segmentFiles(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".seg") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

inline bool hasAsideDir(const std::string& dir) {
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("aside-", 0) == 0) return true;
  return false;
}

}  // namespace streamrelay::test
