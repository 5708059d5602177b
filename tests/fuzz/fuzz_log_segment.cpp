// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: what a log segment file holds (streams.NAME.log), read
// the three ways the relay reads it: scanned (scanSegment), recovered when
// the log is opened (StreamLog: cut, moved aside, or a new epoch), and read
// back (LogReader). Any bytes must give a scan result and a log that opens
// and reads frames in seq order; a crash, an exception out of opening, or an
// allocation beyond the file (libFuzzer's -malloc_limit_mb) is a bug.
#include <Poco/Logger.h>

#include <stdlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "log_reader.hpp"
#include "segment_scan.hpp"
#include "stream_log.hpp"

namespace {

const std::string& scratchDir() {
  static const std::string dir = [] {
    Poco::Logger::get("streamrelay").setLevel("none");  // a line per run is noise here
    char pattern[] = "/tmp/fuzz_log_segment-XXXXXX";
    if (!::mkdtemp(pattern)) std::abort();
    return std::string(pattern);
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace streamrelay;
  const std::string dir = scratchDir() + "/log";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/00000000000000000001.seg";
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));

  const SegmentScan scan = scanSegment(path);
  if (scan.segment.endOffset > size && scan.outcome != SegmentScan::Outcome::BadHeader) std::abort();

  LogOptions options;
  options.dir = dir;
  options.fsync = FsyncPolicy::Never;
  StreamLog log("fuzz", options);
  LogReader reader(log, 1);
  logfmt::Record record;
  std::uint64_t previous = 0;
  while (reader.next(record)) {
    if (record.seq <= previous) std::abort();  // out of order: never
    previous = record.seq;
  }
  return 0;
}
