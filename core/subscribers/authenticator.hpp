// SPDX-License-Identifier: Apache-2.0
#pragma once
// Authenticator: decides whether the token of a `streamrelay` hello admits
// its client, and to which streams. Static tokens (config or tokens_file) are
// compared in constant time through their SHA-256 digests; JWTs (HS256 with
// a secret, RS256 with a public key; POCO's JWT library) must be signed by
// that key, and their claims admit them (jwt_claims.hpp: valid now, the
// configured audience, and the streams their holder reads, as Centrifugo's
// channel claims). Tokens are never logged.
//
// Immutable once built: shared by a listener's writer threads; a reload
// builds a new one (a changed tokens_file is read again then). check() never
// throws: whatever a client sends is a verdict.

#include <memory>
#include <string>
#include <vector>

#include "config.hpp"
#include "jwt_claims.hpp"

namespace Poco {
namespace JWT {
class Signer;
}
}  // namespace Poco

namespace streamrelay {

class Authenticator {
 public:
  // Reads tokens_file and the JWT public key, which must be files the relay
  // may trust (file_trust.hpp) unless auth.allow_insecure. Throws
  // std::runtime_error (one line naming the key) if one cannot be used.
  explicit Authenticator(const ListenerConfig::Auth& auth);
  ~Authenticator();

  bool enabled() const { return enabled_; }

  using Verdict = AuthVerdict;
  Verdict check(const std::string& token) const;

 private:
  bool knownToken(const std::string& token) const;
  Verdict checkJwt(const std::string& token) const;

  bool enabled_ = false;
  std::vector<std::string> tokenDigests_;  // SHA-256 of each static token
  std::unique_ptr<Poco::JWT::Signer> jwt_;
  JwtRules rules_;
};

}  // namespace streamrelay
