// SPDX-License-Identifier: Apache-2.0
#pragma once
// readJwtClaims: turns the claims of a JWT whose signature was verified into
// a verdict. It reads exp, nbf and iat (NumericDates, with a leeway for
// clocks that differ), aud (when an audience is configured) and the claim
// listing the streams the holder may read; the others are ignored.
//
// The claims are whatever the token's issuer wrote, in any JSON type: a
// claim the relay reads that has another type (null, a string for a date, a
// list holding a number...) is a refusal naming it, never an exception.
// Hence no POCO typed getter here (getValue, getArray, Token::getAudience,
// Token::getExpiration): they throw, or overflow, on the wrong type. Every
// type is checked first.
//
// Thread safe (no state). Separate from the signature check so that it can
// be tested and fuzzed with any payload (tests/fuzz/fuzz_jwt_claims.cpp).

#include <optional>
#include <string>
#include <vector>

namespace Poco {
namespace JSON {
class Object;
}
}  // namespace Poco

namespace streamrelay {

struct AuthVerdict {
  bool admitted = false;
  std::string refusal;                             // why not, without the token
  std::optional<std::vector<std::string>> inputs;  // streams the token allows (none: all)
  std::optional<std::vector<std::string>> select;  // key patterns the token allows (none: any)
};

struct JwtRules {
  std::string audience;                // the aud a token must carry (empty: aud is not read)
  std::string inputsClaim = "inputs";  // the claim listing the streams (absent from a token: all)
  std::string selectClaim = "select";  // the claim listing the key patterns (absent from a token: any)
  double leewaySeconds = 30;           // allowed clock difference for exp, nbf and iat
};

AuthVerdict readJwtClaims(const Poco::JSON::Object& claims, const JwtRules& rules, double nowUnixSeconds);

}  // namespace streamrelay
