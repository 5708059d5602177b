#pragma once
// Logging: POCO loggers writing one line per event to stderr.

#include <string>

namespace streamrelay {

// `level` is a POCO level name (error, warning, information, debug, ...).
void configureLogging(const std::string& level);

}  // namespace streamrelay
