// SPDX-License-Identifier: Apache-2.0
#pragma once
// HttpSource: a provider's HTTP(S) streaming endpoint — one long response
// whose body is cut by the source's framing (default: one frame per line,
// NDJSON), or `framing: {type: sse}` for Server-Sent Events, whose last event
// id goes back as Last-Event-ID on every reconnect.
//
// Built on libcurl's multi interface (chunked and identity bodies, gzip, TLS,
// proxies from the environment), polled together with the stop signal so
// that a quiet stream stops at once. Redirects are followed here, not by
// libcurl, which (7.88) would send custom headers to any host a redirect
// names: the configured `headers` go only to the configured URL's origin
// (unless headers_on_redirect), and https is never followed to http. A
// status >= 400 is one line with the first 200 bytes of its body; 429 and
// 503 honour Retry-After (seconds or an HTTP-date, at most an hour). The loop
// — reconnects, failover, idle timeout — is ConnectingSource's.

#include <string>
#include <vector>

#include "connecting_source.hpp"

namespace streamrelay {

class HttpSource : public ConnectingSource {
 public:
  HttpSource(const SourceConfig& config, Bus& bus);
  ~HttpSource() override;
  void prepare() override;

  // What one request sends.
  struct Request {
    std::string url;
    std::string method;       // GET or POST
    bool withHeaders = true;  // the configured headers (not to another origin)
  };

 protected:
  std::unique_ptr<ProviderConnection> open(std::size_t endpoint, Clock::time_point deadline,
                                           OpenFailure& failure) override;
  const char* retryVerb() const override { return "retrying"; }

 private:
  class Connection;

  const std::string method_;
  std::vector<std::string> headers_;  // "Name: value"
  const std::string body_;
  const long maxRedirects_;
  const bool headersOnRedirect_;
};

}  // namespace streamrelay
