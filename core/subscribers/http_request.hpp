// SPDX-License-Identifier: Apache-2.0
#pragma once
// HttpRequest: the head of the one HTTP/1.1 request a subscriber of an
// HTTP-based listener protocol sends (a WebSocket upgrade, an EventSource
// GET), read as it arrives and bounded; and what such a listener answers
// before it streams (its origin check, a short error response).
//
// Everything here takes bytes from the network: bad input is an error value
// (a status and one line), never an exception, and a head is kept only up
// to kMaxHeadBytes (plus the one read that went past). Not thread safe: one
// per connection.

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace streamrelay {

struct HttpRequest {
  std::string method;
  std::string target;  // path and query (origin form; from an absolute-form target, its path and query)
  std::string path;    // percent-decoded, without the query
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case, values trimmed

  // The value of header `name` (lower case), or null; a header sent several
  // times counts as its last value.
  const std::string* header(std::string_view name) const;
  // Whether header `name`, a comma-separated list, holds `token` (any case):
  // Connection: keep-alive, Upgrade.
  bool headerHas(std::string_view name, std::string_view token) const;
};

class HttpRequestReader {
 public:
  static constexpr std::size_t kMaxHeadBytes = 16 * 1024;
  static constexpr std::size_t kMaxHeaders = 100;

  enum class Result { More, Done, Bad };
  // Takes the bytes the client sent. Done: request() is complete, and the
  // bytes that followed its head are in rest(). Bad: status() and error().
  Result add(std::string_view bytes);
  const HttpRequest& request() const { return request_; }
  std::string& rest() { return rest_; }
  int status() const { return status_; }
  const std::string& error() const { return error_; }

 private:
  Result fail(int status, std::string why);
  Result parse();

  std::string head_;
  std::string rest_;
  HttpRequest request_;
  int status_ = 0;
  std::string error_;
};

// A complete response without a body of bytes to stream: status line,
// `headers` (each "Name: value\r\n"), Content-Length, Connection: close, and
// `body` (text/plain; one line and a line end: its control bytes are
// replaced, as it may quote what the client sent).
std::string httpResponse(int status, const std::string& headers, const std::string& body);

// Whether a request from `origin` (its Origin header; null when it sent
// none) may be served: allow_origins ["*"] allows any; otherwise one of the
// list, compared without regard to case; an empty list allows only
// requests without an Origin (clients that are not browsers).
bool originAllowed(const std::vector<std::string>& allowOrigins, const std::string* origin);

}  // namespace streamrelay
