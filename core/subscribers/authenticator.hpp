// SPDX-License-Identifier: Apache-2.0
#pragma once
// Authenticator: decides whether the token of a `streamrelay` hello admits
// its client, and to which streams. Static tokens (config or tokens_file) are
// compared in constant time through their SHA-256 digests; JWTs (HS256 with
// a secret, RS256 with a public key; POCO's JWT library) must be valid now,
// carry the configured audience, and may list the streams their holder reads
// in one claim, as Centrifugo's channel claims do. Tokens are never logged.
//
// Immutable once built: shared by a listener's writer threads; a reload
// builds a new one (a changed tokens_file is read again then).

#include <optional>
#include <string>
#include <vector>

#include "config.hpp"

namespace Poco {
namespace JWT {
class Signer;
}
}  // namespace Poco

namespace streamrelay {

class Authenticator {
 public:
  // Throws std::runtime_error (one line) if tokens_file or the public key cannot be read.
  explicit Authenticator(const ListenerConfig::Auth& auth);
  ~Authenticator();

  bool enabled() const { return enabled_; }

  struct Verdict {
    bool admitted = false;
    std::string refusal;                            // why not, without the token
    std::optional<std::vector<std::string>> inputs; // streams the token allows (none: all)
  };
  Verdict check(const std::string& token) const;

 private:
  bool knownToken(const std::string& token) const;
  Verdict checkJwt(const std::string& token) const;

  bool enabled_ = false;
  std::vector<std::string> tokenDigests_;  // SHA-256 of each static token
  std::unique_ptr<Poco::JWT::Signer> jwt_;
  std::string audience_;
  std::string inputsClaim_;
};

}  // namespace streamrelay
