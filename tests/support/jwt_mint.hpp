// SPDX-License-Identifier: Apache-2.0
#pragma once
// signedJwt: a JWT with exactly these claims (any JSON text, however odd),
// signed with HS256: what an issuer holding the secret may send. Header only:
// the unit and integration tests both use it.

#include <Poco/Base64Encoder.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <sstream>
#include <string>

namespace streamrelay::test {

inline std::string base64url(const std::string& bytes) {
  std::ostringstream out;
  Poco::Base64Encoder encoder(out, Poco::BASE64_URL_ENCODING | Poco::BASE64_NO_PADDING);
  encoder << bytes;
  encoder.close();
  return out.str();
}

inline std::string signedJwt(const std::string& secret, const std::string& claimsJson) {
  const std::string signedPart = base64url(R"({"alg":"HS256","typ":"JWT"})") + "." + base64url(claimsJson);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(signedPart.data()), signedPart.size(), mac, &size);
  return signedPart + "." + base64url(std::string(reinterpret_cast<const char*>(mac), size));
}

}  // namespace streamrelay::test
