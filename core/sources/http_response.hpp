// SPDX-License-Identifier: Apache-2.0
#pragma once
// What a provider's HTTP answer says, parsed without any I/O so that unit
// tests and tests/fuzz/fuzz_http_response.cpp drive it directly: the status
// line and header lines of a response (as libcurl hands them to the http
// source, or as they arrive in a WebSocket handshake), Retry-After, and where
// a redirect may go and with what.
//
// Everything here takes bytes from the network: bad input is an error value,
// never an exception, and nothing grows past its stated bound.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace streamrelay {

// The head of one HTTP response. Interim 1xx responses are skipped (101
// Switching Protocols is final: HTTP ends with it); a
// status line after a complete head starts a new response (libcurl hands
// over every response of a transfer: a proxy's, a redirect's, the last).
class HttpResponseHead {
 public:
  static constexpr std::size_t kMaxHeadBytes = 64 * 1024;
  static constexpr std::size_t kMaxHeaders = 200;

  // One line, with or without its line end. False (see error()) if a status
  // line was expected and this is not one, or the head is too large.
  bool addLine(std::string_view line);
  // The blank line after a final response's headers has been seen.
  bool complete() const { return complete_; }
  long status() const { return status_; }          // 0 until a status line
  const std::string& reason() const { return reason_; }
  // The last value of the header `name` (any case), trimmed; "" if absent.
  std::string header(std::string_view name) const;
  const std::string& error() const { return error_; }

 private:
  bool fail(std::string why);

  long status_ = 0;
  std::string reason_;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::size_t bytes_ = 0;
  bool complete_ = false;
  std::string error_;
};

// Parses a head from the start of `bytes` (a WebSocket handshake's answer).
// Returns the bytes up to and including the blank line once it is there, 0
// while it is not (more bytes needed), -1 on an error (head.error()).
long parseResponseHead(std::string_view bytes, HttpResponseHead& head);

// Retry-After (RFC 9110 10.2.3): delay-seconds, or an HTTP-date compared
// with `nowUnixSeconds`. The wait in ms, at most `capMs` (a date past is 0),
// or -1 if the value is neither.
long long retryAfterMs(std::string_view value, std::int64_t nowUnixSeconds, long long capMs);

// Where a redirect of a request to `from` goes, given its Location.
struct Redirect {
  std::string url;    // absolute; "" if the Location is not a URL
  std::string error;  // why it is refused ("" if it may be followed)
};
// Resolves `location` against `from`; refuses anything but http and https,
// and https to http (a downgrade would send the request in the clear).
Redirect resolveRedirect(const std::string& from, std::string_view location);

// "scheme://host:port" of a URL (default ports filled in), "" if it is not
// one: the configured headers go only where this equals the configured URL's.
std::string originOf(const std::string& url);
// The URL without its query and fragment, for log lines (a query may hold a token).
std::string withoutQuery(std::string_view url);

}  // namespace streamrelay
