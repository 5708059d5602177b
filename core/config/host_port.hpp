// SPDX-License-Identifier: Apache-2.0
#pragma once
// A TCP endpoint as the config writes it (KeyKind::Endpoints): HOST:PORT, an
// IPv6 address in brackets ([::1]:7000).

#include <string>

namespace streamrelay {

struct HostPort {
  std::string host;  // without the brackets of "[::1]": what getaddrinfo takes
  int port = 0;
};

// "HOST:PORT" or "[V6]:PORT", already checked by the config.
HostPort hostPortOf(const std::string& text);
// `host` without the brackets of "[::1]".
std::string withoutBrackets(const std::string& host);

}  // namespace streamrelay
