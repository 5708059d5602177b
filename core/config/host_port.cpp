// SPDX-License-Identifier: Apache-2.0
#include "host_port.hpp"

namespace streamrelay {

HostPort hostPortOf(const std::string& text) {
  const auto colon = text.rfind(':');
  return {withoutBrackets(text.substr(0, colon)), std::stoi(text.substr(colon + 1))};
}

std::string withoutBrackets(const std::string& host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') return host.substr(1, host.size() - 2);
  return host;
}

}  // namespace streamrelay
