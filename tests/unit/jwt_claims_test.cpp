// SPDX-License-Identifier: Apache-2.0
// readJwtClaims: every claim the relay reads, in every JSON type, is a
// verdict; the dates are checked with the leeway.
#include <catch2/catch.hpp>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <string>

#include "jwt_claims.hpp"

using namespace streamrelay;

namespace {

constexpr double kNow = 1700000000;

AuthVerdict verdictOf(const std::string& claimsJson, JwtRules rules = {}) {
  Poco::JSON::Parser parser;
  const auto claims = parser.parse(claimsJson).extract<Poco::JSON::Object::Ptr>();
  return readJwtClaims(*claims, rules, kNow);
}

std::string at(double offset) { return std::to_string(static_cast<long long>(kNow + offset)); }

}  // namespace

TEST_CASE("jwt claims: a claim of the wrong type is a refusal naming it", "[auth][jwt]") {
  JwtRules withAudience;
  withAudience.audience = "relay";
  for (const char* value : {"null", "\"1700000000\"", "true", "{}", "[]", "[1]", "{\"a\": [[[[1]]]]}"}) {
    INFO(value);
    for (const char* date : {"exp", "nbf", "iat"}) {
      const AuthVerdict v = verdictOf(std::string("{\"") + date + "\": " + value + "}");
      CHECK_FALSE(v.admitted);
      CHECK(v.refusal == std::string("JWT claim '") + date + "' is not a number of seconds since 1970");
    }
    if (value[0] != '"' && std::string(value) != "[]") {  // a string is an audience; [] names none (below)
      const AuthVerdict aud = verdictOf(std::string("{\"aud\": ") + value + "}", withAudience);
      CHECK_FALSE(aud.admitted);
      CHECK(aud.refusal == "JWT claim 'aud' is not a string or a list of strings");
    }
    if (std::string(value) != "[]") {  // an empty list allows no stream: the listener refuses that
      const AuthVerdict inputs = verdictOf(std::string("{\"inputs\": ") + value + "}");
      CHECK_FALSE(inputs.admitted);
      CHECK(inputs.refusal == "JWT claim 'inputs' is not a list of stream names");
    }
  }
  for (const char* list : {"[null]", "[\"a\", null]", "[\"a\", 1]", "[[\"a\"]]", "[{\"a\": 1}]"}) {
    INFO(list);
    CHECK(verdictOf(std::string("{\"aud\": ") + list + "}", withAudience).refusal ==
          "JWT claim 'aud' is not a string or a list of strings");
    CHECK(verdictOf(std::string("{\"inputs\": ") + list + "}").refusal ==
          "JWT claim 'inputs' is not a list of stream names");
  }
  CHECK(verdictOf("{\"aud\": []}", withAudience).refusal == "JWT audience is not 'relay'");
  CHECK(verdictOf("{\"inputs\": []}").inputs == std::vector<std::string>{});
  // The name of the inputs claim is configurable; claims not read are not checked.
  JwtRules streams;
  streams.inputsClaim = "streams";
  CHECK(verdictOf("{\"streams\": null}", streams).refusal == "JWT claim 'streams' is not a list of stream names");
  CHECK(verdictOf("{\"inputs\": null, \"aud\": null, \"sub\": null, \"x\": [[[[[]]]]]}", streams).admitted);
}

TEST_CASE("jwt claims: what the relay reads from well-formed claims", "[auth][jwt]") {
  JwtRules rules;
  rules.audience = "relay";
  AuthVerdict v = verdictOf("{\"aud\": [\"other\", \"relay\"], \"inputs\": [\"a\", \"b\"], \"exp\": " + at(60) + "}",
                            rules);
  CHECK(v.admitted);
  CHECK(v.inputs == std::vector<std::string>{"a", "b"});
  CHECK(verdictOf("{\"aud\": \"relay\"}", rules).admitted);
  CHECK_FALSE(verdictOf("{\"aud\": \"relay\"}", rules).inputs);  // no claim: every stream
  CHECK(verdictOf("{\"aud\": \"other\"}", rules).refusal == "JWT audience is not 'relay'");
  CHECK(verdictOf("{}", rules).refusal == "JWT audience is not 'relay'");
  // Dates far out of range, integer or not, are numbers like any other.
  CHECK(verdictOf("{\"exp\": 1e308}").admitted);
  CHECK(verdictOf("{\"exp\": 18446744073709551615}").admitted);
  CHECK(verdictOf("{\"exp\": -1e308}").refusal == "JWT expired");
  CHECK(verdictOf("{\"nbf\": 1e308}").refusal == "JWT not valid yet (nbf is in the future)");
  CHECK(verdictOf("{\"iat\": -9223372036854775808, \"nbf\": -1.5}").admitted);
  CHECK(verdictOf("{\"exp\": " + at(60) + ".25}").admitted);
  // A list of 10,000 streams is only long (a hello carries 16 KiB at most anyway).
  std::string many = "{\"inputs\": [";
  for (int i = 0; i < 10000; ++i) many += (i ? ",\"s" : "\"s") + std::to_string(i) + "\"";
  CHECK(verdictOf(many + "]}").inputs->size() == 10000);
}

TEST_CASE("jwt claims: exp, nbf and iat are checked with the leeway", "[auth][jwt]") {
  JwtRules rules;  // leeway 30 s by default
  CHECK(verdictOf("{\"exp\": " + at(-10) + "}", rules).admitted);
  CHECK(verdictOf("{\"exp\": " + at(-31) + "}", rules).refusal == "JWT expired");
  CHECK(verdictOf("{\"nbf\": " + at(20) + "}", rules).admitted);
  CHECK(verdictOf("{\"nbf\": " + at(3600) + "}", rules).refusal == "JWT not valid yet (nbf is in the future)");
  CHECK(verdictOf("{\"iat\": " + at(20) + "}", rules).admitted);
  CHECK(verdictOf("{\"iat\": " + at(-86400) + "}", rules).admitted);
  CHECK(verdictOf("{\"iat\": " + at(3600) + "}", rules).refusal == "JWT issued in the future (iat)");
  rules.leewaySeconds = 0;
  CHECK(verdictOf("{\"exp\": " + at(-1) + "}", rules).refusal == "JWT expired");
  CHECK(verdictOf("{\"exp\": " + at(0) + "}", rules).refusal == "JWT expired");
  CHECK(verdictOf("{\"exp\": " + at(1) + "}", rules).admitted);
  CHECK(verdictOf("{\"nbf\": " + at(1) + "}", rules).refusal == "JWT not valid yet (nbf is in the future)");
  CHECK(verdictOf("{\"nbf\": " + at(0) + ", \"iat\": " + at(0) + "}", rules).admitted);
}
