// SPDX-License-Identifier: Apache-2.0
#include "redis_url.hpp"

#include "host_port.hpp"

namespace streamrelay {

bool parseRedisUrl(const std::string& url, std::string& host, int& port) {
  const std::string scheme = "redis://";
  if (url.rfind(scheme, 0) != 0) return false;
  const std::string rest = url.substr(scheme.size());
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  host = withoutBrackets(rest.substr(0, colon));
  if (host.empty() || host.find_first_of("/@ ") != std::string::npos) return false;
  const std::string digits = rest.substr(colon + 1);
  if (digits.empty() || digits.size() > 5 || digits.find_first_not_of("0123456789") != std::string::npos) return false;
  port = std::stoi(digits);
  return port >= 1 && port <= 65535;
}

}  // namespace streamrelay
