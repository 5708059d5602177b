// SPDX-License-Identifier: Apache-2.0
#pragma once
// A Redis server's address as the config writes it: redis://HOST:PORT.

#include <string>

namespace streamrelay {

// "redis://HOST:PORT" (IPv6 in brackets) into host and port; false if it is not one.
bool parseRedisUrl(const std::string& url, std::string& host, int& port);

}  // namespace streamrelay
