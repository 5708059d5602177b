// SPDX-License-Identifier: Apache-2.0
#pragma once
// OpenSSL's error queue as one line, for the TLS clients (sources) and the
// TLS listeners alike.

#include <openssl/err.h>

#include <string>

namespace streamrelay {

// The oldest queued OpenSSL error as text (and the queue cleared), or `fallback`.
inline std::string openSslError(const std::string& fallback) {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return fallback;
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

}  // namespace streamrelay
