// SPDX-License-Identifier: Apache-2.0
#include "source_stats.hpp"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>

namespace streamrelay::test {

SourceStats::SourceStats() { dir_.drop(std::string(STREAMRELAY_PLUGINS_DIR) + "/metrics.so", "metrics.so"); }

std::string SourceStats::pluginsSection() const {
  return streamrelay::test::pluginsSection(
      dir_, "  instances:\n    - {name: metrics, type: metrics, config: {bind: '127.0.0.1:0'}}\n");
}

void SourceStats::attach(const RunningRelay& relay) {
  auto m = relay.process->waitForLine("plugin metrics: serving http://127.0.0.1:(\\d+)/");
  INFO(relay.process->output());
  REQUIRE(m.size() == 2);
  port_ = std::stoi(m[1]);
}

Poco::JSON::Object::Ptr SourceStats::source(const std::string& name) const {
  REQUIRE(port_ != 0);
  Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(port_));
  session.setTimeout(Poco::Timespan(10, 0));
  Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, "/stats", Poco::Net::HTTPMessage::HTTP_1_1);
  session.sendRequest(request);
  Poco::Net::HTTPResponse response;
  std::string body;
  Poco::StreamCopier::copyToString(session.receiveResponse(response), body);
  REQUIRE(response.getStatus() == Poco::Net::HTTPResponse::HTTP_OK);
  auto stats = Poco::JSON::Parser().parse(body).extract<Poco::JSON::Object::Ptr>();
  Poco::JSON::Array::Ptr sources = stats->getArray("sources");
  for (std::size_t i = 0; i < sources->size(); ++i) {
    Poco::JSON::Object::Ptr s = sources->getObject(static_cast<unsigned>(i));
    if (s->getValue<std::string>("name") == name) return s;
  }
  return nullptr;
}

std::uint64_t SourceStats::counter(const std::string& name, const std::string& sourceName) const {
  Poco::JSON::Object::Ptr s = source(sourceName);
  REQUIRE(s);
  return s->getValue<std::uint64_t>(name);
}

std::uint64_t SourceStats::endpointFailures(std::size_t index, const std::string& sourceName) const {
  Poco::JSON::Object::Ptr s = source(sourceName);
  REQUIRE(s);
  return s->getArray("endpoints")->getObject(static_cast<unsigned>(index))->getValue<std::uint64_t>("failures");
}

}  // namespace streamrelay::test
