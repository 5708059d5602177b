// SPDX-License-Identifier: Apache-2.0
// metrics: serves the relay's figures over HTTP with POCO's HTTPServer —
// /metrics (Prometheus text format), /stats (JSON) and / (a live status page).
// Everything comes from the SDK's host API (stats_json), so a third-party
// plugin could do the same. Config: {bind: "127.0.0.1:9100"}.

#include <streamrelay/plugin.hpp>
#include <yaml-cpp/yaml.h>

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/ThreadPool.h>

#include <memory>
#include <stdexcept>

#include "prometheus_text.hpp"
#include "status_page.hpp"

namespace {

using Poco::Net::HTTPResponse;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

std::string parseBind(const std::string& yaml) {
  YAML::Node config = YAML::Load(yaml);
  for (const auto& entry : config)
    if (entry.first.as<std::string>() != "bind")
      throw std::invalid_argument("config." + entry.first.as<std::string>() + ": unknown key (expected bind)");
  return config["bind"] ? config["bind"].as<std::string>() : "127.0.0.1:9100";
}

class Handler : public Poco::Net::HTTPRequestHandler {
 public:
  explicit Handler(const streamrelay::Host& host) : host_(host) {}

  void handleRequest(HTTPServerRequest& request, HTTPServerResponse& response) override {
    const std::string path = request.getURI().substr(0, request.getURI().find('?'));
    if (request.getMethod() != "GET" && request.getMethod() != "HEAD") {
      reply(response, HTTPResponse::HTTP_METHOD_NOT_ALLOWED, "text/plain", "only GET\n");
    } else if (path == "/metrics") {
      reply(response, HTTPResponse::HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
            streamrelay::plugins::renderPrometheus(host_.statsJson()));
    } else if (path == "/stats") {
      reply(response, HTTPResponse::HTTP_OK, "application/json", host_.statsJson());
    } else if (path == "/") {
      reply(response, HTTPResponse::HTTP_OK, "text/html; charset=utf-8", streamrelay::plugins::kStatusPageHtml);
    } else {
      reply(response, HTTPResponse::HTTP_NOT_FOUND, "text/plain", "not found: try /, /metrics or /stats\n");
    }
  }

 private:
  static void reply(HTTPServerResponse& response, HTTPResponse::HTTPStatus status, const std::string& type,
                    const std::string& body) {
    response.setStatus(status);
    response.setContentType(type);
    response.setContentLength(static_cast<std::streamsize>(body.size()));
    response.send() << body;
  }
  const streamrelay::Host& host_;
};

class HandlerFactory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit HandlerFactory(const streamrelay::Host& host) : host_(host) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const HTTPServerRequest&) override { return new Handler(host_); }

 private:
  const streamrelay::Host& host_;
};

class MetricsPlugin : public streamrelay::Plugin {
 public:
  MetricsPlugin(streamrelay::Host& host, const std::string& configYaml) : host_(host), pool_(1, 4) {
    std::string bind = parseBind(configYaml);
    Poco::Net::ServerSocket socket;
    try {
      socket.bind(Poco::Net::SocketAddress(bind), true, false);
      socket.listen(64);
    } catch (const Poco::Exception& e) {
      throw std::runtime_error("cannot listen on " + bind + ": " + e.displayText());
    }
    auto* params = new Poco::Net::HTTPServerParams;
    params->setMaxThreads(kHttpThreads);
    params->setKeepAlive(false);
    server_ = std::make_unique<Poco::Net::HTTPServer>(new HandlerFactory(host_), pool_, socket, params);
    server_->start();
    host_.info("serving http://" + socket.address().toString() + "/ (/metrics, /stats)");
  }

  ~MetricsPlugin() override {
    server_->stopAll(true);
    pool_.joinAll();
  }

  // Every figure comes from the host's stats; the frames themselves are not needed.
  void onFrame(const streamrelay::Frame&) override {}

 private:
  streamrelay::Host& host_;
  // A fixed pool: the relay's thread count does not change with scrapes.
  static constexpr int kHttpThreads = 4;
  Poco::ThreadPool pool_{kHttpThreads, kHttpThreads};
  std::unique_ptr<Poco::Net::HTTPServer> server_;
};

}  // namespace

// It reads no frames: every figure comes from the host's stats, so it needs no inputs.
STREAMRELAY_EXPORT_PLUGIN_FLAGS(MetricsPlugin, "metrics", "Prometheus /metrics, /stats JSON and a live status page",
                                STREAMRELAY_PLUGIN_NO_INPUTS)
