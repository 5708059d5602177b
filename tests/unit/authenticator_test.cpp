// SPDX-License-Identifier: Apache-2.0
// Authenticator: static tokens, signed JWTs whatever their claims hold, and
// the credentials files it trusts.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>

#include "authenticator.hpp"
#include "jwt_mint.hpp"

using namespace streamrelay;
using streamrelay::test::signedJwt;

namespace {

long long nowPlus(long long seconds) {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
             .count() + seconds;
}

ListenerConfig::Auth jwtAuth(const std::string& audience = "") {
  ListenerConfig::Auth auth;
  auth.jwtSecret = "s3cret";
  auth.jwtAudience = audience;
  return auth;
}

// A fresh file with `text` and `mode`.
std::string fileWith(const std::string& text, mode_t mode) {
  char path[] = "/tmp/streamrelay-auth-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::close(fd);
  std::ofstream(path) << text;
  REQUIRE(::chmod(path, mode) == 0);
  return path;
}

std::string constructionError(const ListenerConfig::Auth& auth) {
  try {
    Authenticator a(auth);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(accepted)";
}

}  // namespace

TEST_CASE("tokens: only a configured token matches and only exactly", "[protocol][auth]") {
  ListenerConfig::Auth auth;
  auth.tokens = {"alpha", "beta"};
  Authenticator a(auth);
  CHECK(a.check("alpha").admitted);
  CHECK(a.check("beta").admitted);
  CHECK_FALSE(a.check("alph").admitted);
  CHECK_FALSE(a.check("alphaa").admitted);
  CHECK(a.check("gamma").refusal == "unknown token");
  CHECK(a.check("").refusal == "no token");
  CHECK(Authenticator(ListenerConfig::Auth{}).check("").admitted);  // no auth configured
}

TEST_CASE("auth: a signed JWT whose claims hold null or any other type is refused, never thrown", "[auth][jwt]") {
  const Authenticator plain(jwtAuth()), withAudience(jwtAuth("relay"));
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += "[";
  deep += "1";
  for (int i = 0; i < 100; ++i) deep += "]";
  std::string numbers = "[";
  for (int i = 0; i < 3000; ++i) numbers += (i ? "," : "") + std::to_string(i);
  numbers += "]";
  for (const std::string& claims :
       {std::string(R"({"inputs": [null]})"), std::string(R"({"inputs": null})"), std::string(R"({"aud": null})"),
        std::string(R"({"aud": [null]})"), std::string(R"({"aud": 7})"), std::string(R"({"exp": null})"),
        std::string(R"({"exp": "tomorrow"})"), std::string(R"({"nbf": {}})"), std::string(R"({"iat": [1]})"),
        std::string(R"({"inputs": [1, 2]})"), "{\"inputs\": " + numbers + "}", "{\"inputs\": " + deep + "}",
        "{\"aud\": " + deep + "}", std::string(R"({"inputs": {"a": null}})")}) {
    INFO(claims.substr(0, 80));
    const bool readsAud = claims.find("\"aud\"") != std::string::npos;
    const Authenticator& authenticator = readsAud ? withAudience : plain;
    Authenticator::Verdict verdict;
    REQUIRE_NOTHROW(verdict = authenticator.check(signedJwt("s3cret", claims)));
    CHECK_FALSE(verdict.admitted);
    CHECK_THAT(verdict.refusal, Catch::StartsWith("JWT claim '"));
  }
  // Signed with another secret, or not JSON at all: refused before any claim is read.
  CHECK(plain.check(signedJwt("other", R"({"inputs": [null]})")).refusal == "JWT signature not valid");
  CHECK(plain.check(signedJwt("s3cret", "[1]")).refusal == "JWT not accepted (its form or algorithm)");
  CHECK(plain.check(signedJwt("s3cret", "null")).refusal == "JWT not accepted (its form or algorithm)");
  CHECK(plain.check(signedJwt("s3cret", R"({"inputs": ["a"]})")).inputs == std::vector<std::string>{"a"});
}

TEST_CASE("auth: a JWT not valid before a time to come, or issued in the future, is refused", "[auth][jwt]") {
  const Authenticator a(jwtAuth());
  CHECK(a.check(signedJwt("s3cret", "{\"nbf\": " + std::to_string(nowPlus(3600)) + "}")).refusal ==
        "JWT not valid yet (nbf is in the future)");
  CHECK(a.check(signedJwt("s3cret", "{\"iat\": " + std::to_string(nowPlus(3600)) + "}")).refusal ==
        "JWT issued in the future (iat)");
  CHECK(a.check(signedJwt("s3cret", "{\"nbf\": " + std::to_string(nowPlus(-5)) + ", \"iat\": " +
                                        std::to_string(nowPlus(-5)) + ", \"exp\": " + std::to_string(nowPlus(60)) + "}"))
            .admitted);
}

TEST_CASE("auth: a tokens file or JWT key that others may write is refused naming the key", "[auth]") {
  ListenerConfig::Auth auth;
  auth.tokensFile = fileWith("tok-1\n", 0666);
  CHECK_THAT(constructionError(auth), Catch::StartsWith("auth.tokens_file: " + auth.tokensFile +
                                                        " is writable by group or others (mode 0666)"));
  ::chmod(auth.tokensFile.c_str(), 0620);
  CHECK_THAT(constructionError(auth), Catch::Contains("is writable by group or others (mode 0620)"));
  ::chmod(auth.tokensFile.c_str(), 0644);
  CHECK(constructionError(auth) == "(accepted)");
  CHECK(Authenticator(auth).check("tok-1").admitted);

  ListenerConfig::Auth rsa;
  rsa.jwtPublicKeyFile = fileWith("not a key\n", 0664);
  CHECK_THAT(constructionError(rsa), Catch::StartsWith("auth.jwt.public_key_file: " + rsa.jwtPublicKeyFile +
                                                       " is writable by group or others (mode 0664)"));
  ::unlink(auth.tokensFile.c_str());
  ::unlink(rsa.jwtPublicKeyFile.c_str());
}

TEST_CASE("auth: allow_insecure reads credentials files others may write", "[auth]") {
  ListenerConfig::Auth auth;
  auth.tokensFile = fileWith("tok-1\n", 0666);
  CHECK_THAT(constructionError(auth), Catch::EndsWith("(auth.allow_insecure: true overrides)"));
  auth.allowInsecure = true;
  CHECK(Authenticator(auth).check("tok-1").admitted);
  ::unlink(auth.tokensFile.c_str());
}
