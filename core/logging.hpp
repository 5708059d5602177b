// SPDX-License-Identifier: Apache-2.0
#pragma once
// Logging: POCO loggers writing one line per event to stderr.

#include <string>
#include <string_view>

namespace streamrelay {

// `level` is a POCO level name (error, warning, information, debug, ...).
void configureLogging(const std::string& level);
// Changes the level of every logger, the channel unchanged (a config reload).
void setLogLevel(const std::string& level);

// Text from outside (a plugin's message, a value from the config file) made
// fit for one log line: line breaks become \n, other control bytes \xNN.
std::string oneLine(std::string_view text);

}  // namespace streamrelay
