// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the claims of a JWT, as its issuer may write them. The
// input is the claims' JSON text; it is read twice:
//   - parsed with POCO and given to readJwtClaims (the claims reader alone);
//   - signed with HS256 as a token's payload and checked by an Authenticator
//     (POCO's parsing of a token, then the claims reader), as a hello's token.
// Either must give a verdict: an exception, a crash or a refusal that is not
// one printable line is a bug.
#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "authenticator.hpp"
#include "jwt_claims.hpp"
#include "jwt_mint.hpp"

namespace {

void checkOneLine(const streamrelay::AuthVerdict& verdict) {
  if (verdict.admitted != verdict.refusal.empty()) std::abort();
  if (verdict.refusal.find('\n') != std::string::npos) std::abort();
}

const streamrelay::Authenticator& authenticator() {
  static const streamrelay::Authenticator instance = [] {
    streamrelay::ListenerConfig::Auth auth;
    auth.jwtSecret = "fuzz-secret";
    auth.jwtAudience = "relay";
    return streamrelay::Authenticator(auth);
  }();
  return instance;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string claims(reinterpret_cast<const char*>(data), size);
  streamrelay::JwtRules rules;
  rules.audience = "relay";
  Poco::JSON::Object::Ptr object;
  try {
    Poco::JSON::Parser parser;
    Poco::Dynamic::Var parsed = parser.parse(claims);
    if (parsed.type() == typeid(Poco::JSON::Object::Ptr)) object = parsed.extract<Poco::JSON::Object::Ptr>();
  } catch (const Poco::Exception&) {  // not JSON: POCO says so, as it should
  }
  if (object) checkOneLine(streamrelay::readJwtClaims(*object, rules, 1700000000.0));
  checkOneLine(authenticator().check(streamrelay::test::signedJwt("fuzz-secret", claims)));
  return 0;
}
