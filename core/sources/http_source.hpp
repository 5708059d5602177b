// SPDX-License-Identifier: Apache-2.0
#pragma once
// HttpSource: a provider's HTTP(S) streaming endpoint — one long response
// whose body is cut by the source's framing (default: one frame per line,
// NDJSON), or `framing: {type: sse}` for Server-Sent Events, whose last event
// id goes back as Last-Event-ID on every reconnect.
//
// Built on libcurl's multi interface (chunked and identity bodies, gzip,
// redirects, TLS, proxies from the environment), polled together with the
// stop signal so that a quiet stream stops at once. A status >= 400 is logged
// with the first 200 bytes of its body and retried with backoff; 429 and 503
// honour Retry-After (seconds). A body that stays quiet for idle_timeout_ms
// is dropped and the request made again. A frame cut by a lost connection is
// never published. With `endpoints:` it fails over as failover.hpp says.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "failover.hpp"
#include "tls_client.hpp"
#include "upstream_source.hpp"

namespace streamrelay {

class HttpSource : public UpstreamSource {
 public:
  HttpSource(const SourceConfig& config, Bus& bus);
  ~HttpSource() override;
  void prepare() override;

 protected:
  void run() override;

 private:
  // How one stream (one endpoint, or the primary taken back) ended, with
  // what a retry needs from the response.
  struct Outcome : StreamOutcome {
    long status = 0;          // the final response's status (0: none)
    int retryAfterMs = -1;    // from Retry-After on 429/503
  };
  struct Request;
  Outcome stream(FrameReader& reader, std::size_t endpoint);
  std::unique_ptr<Request> start(void* multi, FrameReader& reader, std::size_t endpoint, bool hold);

  const std::string method_;
  std::vector<std::string> headers_;  // "Name: value"
  const std::string body_;
  const long maxRedirects_;
  const TlsOptions tls_;
  const int idleTimeoutMs_;  // 0: never
  Failover failover_;        // `url`, or `endpoints` in order
};

}  // namespace streamrelay
