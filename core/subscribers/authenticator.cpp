// SPDX-License-Identifier: Apache-2.0
#include "authenticator.hpp"

#include <Poco/Crypto/RSAKey.h>
#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JWT/Signer.h>
#include <Poco/JWT/Token.h>
#include <Poco/Timestamp.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <fstream>
#include <stdexcept>

namespace streamrelay {

namespace {

std::string digestOf(const std::string& text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

std::vector<std::string> readTokensFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("auth.tokens_file '" + path + "': cannot be read");
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

Authenticator::Authenticator(const ListenerConfig::Auth& auth)
    : enabled_(auth.enabled()), audience_(auth.jwtAudience), inputsClaim_(auth.jwtInputsClaim) {
  std::vector<std::string> tokens = auth.tokens;
  if (!auth.tokensFile.empty()) {
    std::vector<std::string> fromFile = readTokensFile(auth.tokensFile);
    tokens.insert(tokens.end(), fromFile.begin(), fromFile.end());
  }
  for (const std::string& token : tokens) tokenDigests_.push_back(digestOf(token));
  try {
    if (!auth.jwtSecret.empty()) {
      jwt_ = std::make_unique<Poco::JWT::Signer>(auth.jwtSecret);
      jwt_->setAlgorithms({Poco::JWT::Signer::ALGO_HS256});
    } else if (!auth.jwtPublicKeyFile.empty()) {
      Poco::SharedPtr<Poco::Crypto::RSAKey> key = new Poco::Crypto::RSAKey(auth.jwtPublicKeyFile);
      jwt_ = std::make_unique<Poco::JWT::Signer>(key);
      jwt_->setAlgorithms({Poco::JWT::Signer::ALGO_RS256});
    }
  } catch (const Poco::Exception& e) {
    throw std::runtime_error("auth.jwt.public_key_file '" + auth.jwtPublicKeyFile + "': " + e.displayText());
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
  Poco::JWT::Token jwt;
  try {
    if (!jwt_->tryVerify(token, jwt)) {
      verdict.refusal = "JWT signature not valid";
      return verdict;
    }
  } catch (const Poco::Exception&) {  // its message may quote the token: not repeated
    verdict.refusal = "JWT not accepted (its form or algorithm)";
    return verdict;
  }
  const Poco::JSON::Object& claims = jwt.payload();
  if (claims.has("exp") && jwt.getExpiration() <= Poco::Timestamp()) {
    verdict.refusal = "JWT expired";
    return verdict;
  }
  if (!audience_.empty()) {
    const std::vector<std::string> audience = jwt.getAudience();
    if (std::find(audience.begin(), audience.end(), audience_) == audience.end()) {
      verdict.refusal = "JWT audience is not '" + audience_ + "'";
      return verdict;
    }
  }
  if (claims.has(inputsClaim_)) {
    Poco::JSON::Array::Ptr list = claims.getArray(inputsClaim_);
    if (!list) {
      verdict.refusal = "JWT claim '" + inputsClaim_ + "' is not a list of streams";
      return verdict;
    }
    std::vector<std::string> inputs;
    for (const auto& item : *list) inputs.push_back(item.toString());
    verdict.inputs = std::move(inputs);
  }
  verdict.admitted = true;
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
