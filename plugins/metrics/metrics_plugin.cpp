// SPDX-License-Identifier: Apache-2.0
// metrics: serves the relay's figures over HTTP — /metrics (Prometheus text
// format), /stats (JSON), /history (the totals of the last five minutes, one
// sample a second), / (a status page with all of it in the first answer) and,
// with `pages: DIR`, the files of DIR as /pages/NAME (page_files.hpp).
// Everything comes from the SDK's host API (stats_json), so a third-party
// plugin could do the same. It reads no frames, so it needs no inputs.
// Config: metrics_config.hpp.

#include <streamrelay/plugin.hpp>

#include <Poco/Exception.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>

#include "http_server.hpp"
#include "metrics_config.hpp"
#include "page_files.hpp"
#include "prometheus_text.hpp"
#include "stats_history.hpp"
#include "status_page.hpp"

namespace {

using streamrelay::plugins::HttpServer;

constexpr std::chrono::milliseconds kSampleInterval(1000);
constexpr std::size_t kHistorySamples = 300;  // five minutes

std::int64_t unixNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The value of `name` in the query of `target` ("/history?after=N"), or `fallback`.
long long queryNumber(const std::string& target, const std::string& name, long long fallback) {
  const std::size_t query = target.find('?');
  if (query == std::string::npos) return fallback;
  for (std::size_t at = query + 1; at < target.size();) {
    const std::size_t end = std::min(target.find('&', at), target.size());
    if (target.compare(at, name.size() + 1, name + "=") == 0)
      return std::strtoll(target.c_str() + at + name.size() + 1, nullptr, 10);
    at = end + 1;
  }
  return fallback;
}

class MetricsPlugin : public streamrelay::Plugin {
 public:
  MetricsPlugin(streamrelay::Host& host, const std::string& configYaml)
      : host_(host), history_(kHistorySamples) {
    const streamrelay::plugins::MetricsConfig config = streamrelay::plugins::parseMetricsConfig(configYaml);
    pages_ = streamrelay::plugins::PageFiles(config.pages);  // before the server thread starts
    HttpServer::Limits limits;
    limits.requestTimeout = config.requestTimeout;
    limits.maxConnections = config.maxConnections;
    server_ = std::make_unique<HttpServer>(
        config.bind, limits, [this](const std::string&, const std::string& target) { return handle(target); },
        kSampleInterval, [this] { sample(); }, [this](const char* counter) { host_.addCounter(counter, 1); });
    host_.info("serving http://" + server_->address() + "/ (/metrics, /stats, /history" +
               (pages_.enabled() ? ", /pages/ from " + config.pages : std::string()) + ")");
  }

  // Every figure comes from the host's stats; it gets no frames (STREAMRELAY_PLUGIN_NO_INPUTS).
  void onFrame(const streamrelay::Frame&) override {}

 private:
  // The server thread.
  HttpServer::Response handle(const std::string& target) {
    const std::string path = target.substr(0, target.find('?'));
    try {
      if (path == "/metrics")
        return {200, "text/plain; version=0.0.4; charset=utf-8",
                streamrelay::plugins::renderPrometheus(host_.statsJson())};
      if (path == "/stats") return {200, "application/json", host_.statsJson()};
      if (path == "/history")
        return {200, "application/json", history_.json(kSampleInterval.count(), queryNumber(target, "after", -1))};
      if (path == "/")
        return {200, "text/html; charset=utf-8",
                streamrelay::plugins::renderStatusPage(host_.statsJson(), history_.json(kSampleInterval.count()))};
      if (pages_.enabled() && path.rfind("/pages/", 0) == 0) return pages_.get(path.substr(7));
      return {404, "text/plain", "not found: try /, /metrics, /stats or /history\n"};
    } catch (const std::exception& e) {  // the stats document is the host's: a bug there is not this client's
      host_.error("cannot answer " + path + ": " + e.what());
      return {500, "text/plain", "internal error\n"};
    }
  }

  // The server thread, every second.
  void sample() {
    try {
      history_.record(unixNowMs(), host_.statsJson());
    } catch (const std::exception& e) {
      host_.error(std::string("cannot sample the stats: ") + e.what());
    }
  }

  streamrelay::Host& host_;
  streamrelay::plugins::StatsHistory history_;  // the server thread's
  streamrelay::plugins::PageFiles pages_{""};    // set before the server thread starts
  std::unique_ptr<HttpServer> server_;          // last: its thread stops first
};

}  // namespace

STREAMRELAY_EXPORT_PLUGIN_WITH_KEYS(MetricsPlugin, "metrics", "Prometheus /metrics, /stats JSON and a live status page",
                                    STREAMRELAY_PLUGIN_NO_INPUTS, streamrelay::plugins::metricsConfigKeys())
