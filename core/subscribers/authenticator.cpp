// SPDX-License-Identifier: Apache-2.0
#include "authenticator.hpp"

#include <Poco/Crypto/RSAKey.h>
#include <Poco/Exception.h>
#include <Poco/JWT/Signer.h>
#include <Poco/JWT/Token.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <chrono>
#include <sstream>
#include <stdexcept>

#include "file_trust.hpp"

namespace streamrelay {

namespace {

std::string digestOf(const std::string& text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

const char* const kOverride = " (auth.allow_insecure: true overrides)";

// Credentials files are small; a larger one is a mistake (a log file named
// by accident), not tokens.
constexpr std::size_t kMaxCredentialsFileBytes = 16 * 1024 * 1024;

std::vector<std::string> readTokensFile(const std::string& path, bool allowUntrusted) {
  std::istringstream in(readTrustedFile(path, allowUntrusted, kMaxCredentialsFileBytes));
  std::vector<std::string> tokens;
  std::string line;
  while (std::getline(in, line)) {
    line.erase(line.find_last_not_of(" \t\r") + 1);
    line.erase(0, line.find_first_not_of(" \t"));
    if (!line.empty() && line[0] != '#') tokens.push_back(line);
  }
  return tokens;
}

bool looksLikeJwt(const std::string& token) { return std::count(token.begin(), token.end(), '.') == 2; }

}  // namespace

Authenticator::Authenticator(const ListenerConfig::Auth& auth) : enabled_(auth.enabled()) {
  rules_.audience = auth.jwtAudience;
  rules_.inputsClaim = auth.jwtInputsClaim;
  rules_.selectClaim = auth.jwtSelectClaim;
  rules_.leewaySeconds = auth.jwtLeewayS;
  std::vector<std::string> tokens = auth.tokens;
  if (!auth.tokensFile.empty()) {
    std::vector<std::string> fromFile;
    try {
      fromFile = readTokensFile(auth.tokensFile, auth.allowInsecure);
    } catch (const UntrustedFileError& e) {
      throw std::runtime_error(std::string("auth.tokens_file: ") + e.what() + kOverride);
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(std::string("auth.tokens_file: ") + e.what());
    }
    tokens.insert(tokens.end(), fromFile.begin(), fromFile.end());
  }
  for (const std::string& token : tokens) tokenDigests_.push_back(digestOf(token));
  if (!auth.jwtSecret.empty()) {
    jwt_ = std::make_unique<Poco::JWT::Signer>(auth.jwtSecret);
    jwt_->setAlgorithms({Poco::JWT::Signer::ALGO_HS256});
  } else if (!auth.jwtPublicKeyFile.empty()) {
    try {
      std::istringstream pem(readTrustedFile(auth.jwtPublicKeyFile, auth.allowInsecure, kMaxCredentialsFileBytes));
      Poco::SharedPtr<Poco::Crypto::RSAKey> key = new Poco::Crypto::RSAKey(&pem);
      jwt_ = std::make_unique<Poco::JWT::Signer>(key);
      jwt_->setAlgorithms({Poco::JWT::Signer::ALGO_RS256});
    } catch (const UntrustedFileError& e) {
      throw std::runtime_error(std::string("auth.jwt.public_key_file: ") + e.what() + kOverride);
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(std::string("auth.jwt.public_key_file: ") + e.what());
    } catch (const Poco::Exception& e) {
      throw std::runtime_error("auth.jwt.public_key_file '" + auth.jwtPublicKeyFile + "': " + e.displayText());
    }
  }
}

Authenticator::~Authenticator() = default;

bool Authenticator::knownToken(const std::string& token) const {
  // Every digest is compared, whatever matches: the time taken says nothing
  // about which token, or how much of one, was right.
  const std::string digest = digestOf(token);
  bool known = false;
  for (const std::string& d : tokenDigests_) known |= CRYPTO_memcmp(d.data(), digest.data(), digest.size()) == 0;
  return known;
}

Authenticator::Verdict Authenticator::checkJwt(const std::string& token) const {
  Verdict verdict;
  // POCO parses the header and the claims before it checks the signature:
  // what reaches it is anyone's JSON. Its exceptions are refusals here, and
  // their messages are not repeated (they may quote the token).
  try {
    Poco::JWT::Token jwt;
    if (!jwt_->tryVerify(token, jwt)) {
      verdict.refusal = "JWT signature not valid";
      return verdict;
    }
    const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    return readJwtClaims(jwt.payload(), rules_, now);
  } catch (const Poco::Exception&) {
    verdict.refusal = "JWT not accepted (its form or algorithm)";
  } catch (const std::exception&) {
    verdict.refusal = "JWT not accepted (it could not be read)";
  }
  return verdict;
}

Authenticator::Verdict Authenticator::check(const std::string& token) const {
  Verdict verdict;
  if (!enabled_) {
    verdict.admitted = true;
    return verdict;
  }
  if (token.empty()) {
    verdict.refusal = "no token";
    return verdict;
  }
  if (knownToken(token)) {
    verdict.admitted = true;
    return verdict;
  }
  if (jwt_ && looksLikeJwt(token)) return checkJwt(token);
  verdict.refusal = "unknown token";
  return verdict;
}

}  // namespace streamrelay
