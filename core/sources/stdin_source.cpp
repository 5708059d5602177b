// SPDX-License-Identifier: Apache-2.0
#include "stdin_source.hpp"

#include <Poco/Logger.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "keys.hpp"
#include "source_type.hpp"

namespace streamrelay {

void StdinSource::run() {
  Poco::Logger& logger = Poco::Logger::get("streamrelay.upstream");
  FrameReader reader(config_.framing, bus_, counters_);
  pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {stop_.fd(), POLLIN, 0}};
  counters_.connected = true;
  for (;;) {
    int rc = ::poll(fds, 2, -1);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0 || fds[1].revents) break;
    FrameReader::Result result = reader.readOnce(STDIN_FILENO);
    if (result == FrameReader::Result::Frames || result == FrameReader::Result::WouldBlock) continue;
    if (result == FrameReader::Result::Eof) {
      logger.information("%s stdin: end of input; still serving subscribers until stopped", label());
    } else if (result == FrameReader::Result::ProtocolError) {
      const ProtocolError& e = reader.error();
      logger.error("%s stdin: protocol error at offset %?u (announced size %?u): %s; input abandoned", label(),
                   e.offset, e.announced, e.message);
    } else {
      logger.error("%s stdin: read error: %s", label(), std::string(strerror(reader.lastErrno())));
    }
    break;
  }
  counters_.connected = false;
}


SourceType stdin_source_type() {
  return {{"stdin", "frames from standard input (producer | streamrelay)", {groupKey("framing", framingSchema())}, {}},
          [](const SourceConfig& config, Bus& bus) { return std::make_unique<StdinSource>(config, bus); }};
}
}  // namespace streamrelay
