// SPDX-License-Identifier: Apache-2.0
#include "logging.hpp"

#include <Poco/AutoPtr.h>
#include <Poco/ConsoleChannel.h>
#include <Poco/FormattingChannel.h>
#include <Poco/Logger.h>
#include <Poco/PatternFormatter.h>

#include <cstdio>

namespace streamrelay {

void configureLogging(const std::string& level) {
  Poco::AutoPtr<Poco::PatternFormatter> formatter(new Poco::PatternFormatter("%Y-%m-%d %H:%M:%S.%i %q %s: %t"));
  formatter->setProperty("times", "local");
  Poco::AutoPtr<Poco::ConsoleChannel> console(new Poco::ConsoleChannel);  // std::clog: stderr
  Poco::AutoPtr<Poco::FormattingChannel> channel(new Poco::FormattingChannel(formatter, console));
  Poco::Logger::root().setChannel(channel);
  Poco::Logger::root().setLevel(level);
  // Loggers created before this call keep their old settings: update them too.
  Poco::Logger::setChannel("", channel);
  Poco::Logger::setLevel("", Poco::Logger::parseLevel(level));
}

void setLogLevel(const std::string& level) {
  Poco::Logger::root().setLevel(level);
  Poco::Logger::setLevel("", Poco::Logger::parseLevel(level));
}

std::string oneLine(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out += ch;
    }
  }
  return out;
}

}  // namespace streamrelay
