// SPDX-License-Identifier: Apache-2.0
// Integration tests of listeners across untrusted networks: TLS (certificates
// made with the openssl CLI at test time) and tokens/JWTs, with the real
// relay, streamrelay-feed and the client library (client.hpp with
// STREAMRELAY_CLIENT_TLS, as streamrelay-sub uses it). The protocol itself:
// subscriber_protocol_test.cpp.

#include <catch2/catch.hpp>

#include <Poco/Crypto/RSAKey.h>
#include <Poco/JWT/Signer.h>
#include <Poco/JWT/Token.h>
#include <Poco/Timestamp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "jwt_mint.hpp"
#include "pki.hpp"
#include "relay_fixture.hpp"
#include "subscriber_helpers.hpp"

using namespace streamrelay::test;
using streamrelay::client::FrameInfo;
using streamrelay::client::Refused;
using Protocol = streamrelay::client::Subscriber::Protocol;

namespace {

// True if the peer closed `fd` by the deadline without sending a byte.
bool closedWithoutAByte(int fd, std::chrono::milliseconds timeout = 10s) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  char byte;
  return ::recv(fd, &byte, 1, 0) <= 0;
}

std::string jwt(const std::string& secret, Poco::JSON::Object extra, int expiresInSeconds = 3600) {
  Poco::JWT::Token token;
  token.setType("JWT");
  token.setExpiration(Poco::Timestamp() + Poco::Timespan(expiresInSeconds, 0));
  for (const auto& [name, value] : extra) token.payload().set(name, value);
  Poco::JWT::Signer signer(secret);
  return signer.sign(token, Poco::JWT::Signer::ALGO_HS256);
}

}  // namespace

TEST_CASE("tls listener: a subscriber gets every frame and nothing is sent in clear", "[integration][subscriber-tls]") {
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" +
                                  listener("main", tlsKeys() + ", queue: {max_frames: 100000, max_bytes: 0}"));
  Subscriber sub(relay.address(), tlsClient());
  CHECK(relay.process->waitForLine("subscriber .* connected \\(1 of 64; TLSv1\\.3, ").size() > 0);
  auto feed = publish(relay, 20000, 0, 300);
  CHECK(readSequence(sub, 20000) == 20000);
  CHECK(feed->waitForExit() == 0);

  // A client that does not speak TLS gets no byte in clear, and a line says why.
  const int plain = connectLoopback(relay.ports.at("main"));
  REQUIRE(plain >= 0);
  const std::string text = "hello\n";
  CHECK(::send(plain, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size()));
  CHECK(closedWithoutAByte(plain));
  ::close(plain);
  CHECK(relay.process->waitForLine("listener main: refused 127\\.0\\.0\\.1:\\d+: tls_failed: TLS handshake: ").size() > 0);
}

TEST_CASE("tls listener: the client refuses an untrusted CA or an expired certificate or a name mismatch", "[integration][subscriber-tls]") {
  SECTION("untrusted CA") {
    RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" + listener("main", tlsKeys()));
    CHECK_THROWS_WITH(Subscriber(relay.address(), tlsClient("other-ca")),
                      Catch::Contains("certificate verify failed") && Catch::Contains("unable to get local issuer"));
  }
  SECTION("expired certificate") {
    RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" + listener("main", tlsKeys("expired")));
    CHECK_THROWS_WITH(Subscriber(relay.address(), tlsClient()), Catch::Contains("certificate has expired"));
  }
  SECTION("name mismatch") {
    RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" + listener("main", tlsKeys()));
    Subscriber::Options o = tlsClient();
    o.tls.serverName = "feed.example.com";
    CHECK_THROWS_WITH(Subscriber(relay.address(), o), Catch::Contains("hostname mismatch"));
    o.tls.serverName = "localhost";
    CHECK_NOTHROW(Subscriber(relay.address(), o));
  }
}

TEST_CASE("mutual TLS: a client without a trusted certificate is refused and one with it streams", "[integration][subscriber-tls]") {
  RunningRelay relay = startRelay(
      kListenUpstream + "listeners:\n" +
      listener("main", tlsKeys("server", ", client_ca_file: '" + pki().path("ca.pem") + "', require_client_cert: true")));
  std::string frame;
  {
    // TLS 1.3: the client's side of the handshake ends before the relay
    // checks it, so the refusal arrives as an alert on the first read.
    Subscriber without(relay.address(), tlsClient());
    CHECK_THROWS_WITH(without.next(frame, 10s), Catch::Contains("alert certificate required"));
  }
  CHECK(relay.process->waitForLine("refused 127\\.0\\.0\\.1:\\d+: tls_failed: TLS handshake: peer did not return a certificate")
            .size() > 0);
  {
    Subscriber::Options o = tlsClient();
    o.tls.certFile = pki().path("expired.pem");
    o.tls.keyFile = pki().path("expired.key");
    Subscriber expired(relay.address(), o);
    // The relay's alert says why (its log line is folded into the next by
    // the refusal limiter: a peer can cause refusals at will).
    CHECK_THROWS_WITH(expired.next(frame, 10s), Catch::Contains("alert certificate expired"));
  }

  Subscriber::Options o = tlsClient();
  o.tls.certFile = pki().path("client.pem");
  o.tls.keyFile = pki().path("client.key");
  Subscriber with(relay.address(), o);
  CHECK(relay.process->waitForLine("connected \\(1 of 64; TLSv1\\.3, .*client CN=relay\\)").size() > 0);
  auto feed = publish(relay, 1000);
  CHECK(readSequence(with, 1000) == 1000);
}

TEST_CASE("tls listener: a stalled handshake is closed at handshake_timeout_ms", "[integration][subscriber-tls]") {
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" +
                                  listener("main", tlsKeys("server", ", handshake_timeout_ms: 300")));
  const int stalled = connectLoopback(relay.ports.at("main"));
  REQUIRE(stalled >= 0);
  CHECK(closedWithoutAByte(stalled));
  ::close(stalled);
  CHECK(relay.process->waitForLine("refused 127\\.0\\.0\\.1:\\d+: handshake_timeout").size() > 0);
}

TEST_CASE("auth: a bad token is refused and a good one streams and no token reaches the log", "[integration][protocol][auth]") {
  RelayStats stats;
  RunningRelay relay = startRelay(kListenUpstream + stats.section() + "listeners:\n" +
                                  listener("main", "protocol: streamrelay, auth: {tokens: [good-token-4711]}"));
  stats.attach(relay);
  std::string frame;
  {
    Subscriber bad(relay.address(), protocolClient("wrong-token-0815"));
    CHECK_THROWS_MATCHES(bad.next(frame, 10s), Refused,
                         Catch::Matchers::Message("the relay refused the hello: not authorized: unknown token"));
  }
  {
    Subscriber none(relay.address(), protocolClient());
    CHECK_THROWS_WITH(none.next(frame, 10s), Catch::Contains("not authorized: no token"));
  }
  Subscriber good(relay.address(), protocolClient("good-token-4711"));
  REQUIRE(good.awaitAnswer(10s));
  auto feed = publish(relay, 100);
  CHECK(readSeqs(good, 1, 100) == 100);
  // Counted (a client learns of its refusal before the relay has closed it).
  CHECK(pollUntil([&] { return stats.listener("main", "disconnects.auth_failed") == 2; }));
  // Every line written: the relay has stopped.
  relay.process->terminate();
  REQUIRE(relay.process->waitForExit() == 0);
  // One line for the burst: whichever refusal's session closed first (two
  // writer threads may close them in either order), the other counted into it.
  CHECK(relay.process->countLines("auth_failed: not authorized: (unknown|no) token") == 1);
  CHECK(relay.process->output().find("good-token-4711") == std::string::npos);
  CHECK(relay.process->output().find("wrong-token-0815") == std::string::npos);
}

TEST_CASE("auth: JWTs with a secret with expiry and audience and the streams they allow", "[integration][protocol][auth]") {
  RunningRelay relay = startRelay(
      "sources:\n  a: {type: generator, rate: 200, size: 16}\n  b: {type: generator, rate: 200, size: 16}\n"
      "listeners:\n" +
      listener("main", "inputs: [a, b], protocol: streamrelay, auth: {jwt: {secret: jwt-secret, audience: relay}}"));
  std::string frame;
  FrameInfo info;
  Poco::JSON::Object onlyB;
  onlyB.set("aud", "relay");
  Poco::JSON::Array::Ptr streams = new Poco::JSON::Array;
  streams->add("b");
  onlyB.set("inputs", streams);
  {
    Subscriber sub(relay.address(), protocolClient(jwt("jwt-secret", onlyB)));
    REQUIRE(sub.next(frame, info, 10s));
    CHECK(info.stream == "b");
    CHECK(sub.answer().streams.size() == 1);
  }
  {
    Subscriber::Options o = protocolClient(jwt("jwt-secret", onlyB));
    o.inputs = {"a"};
    Subscriber sub(relay.address(), o);
    CHECK_THROWS_WITH(sub.next(frame, 10s), Catch::Contains("the token does not allow input 'a'"));
  }
  {
    Subscriber sub(relay.address(), protocolClient(jwt("jwt-secret", onlyB, -60)));
    CHECK_THROWS_WITH(sub.next(frame, 10s), Catch::Contains("JWT expired"));
  }
  {
    Subscriber sub(relay.address(), protocolClient(jwt("another-secret", onlyB)));
    CHECK_THROWS_WITH(sub.next(frame, 10s), Catch::Contains("JWT signature not valid"));
  }
  {
    Poco::JSON::Object otherAudience;
    otherAudience.set("aud", "someone-else");
    Subscriber sub(relay.address(), protocolClient(jwt("jwt-secret", otherAudience)));
    CHECK_THROWS_WITH(sub.next(frame, 10s), Catch::Contains("JWT audience is not 'relay'"));
  }
  Poco::JSON::Object all;
  all.set("aud", "relay");
  Subscriber sub(relay.address(), protocolClient(jwt("jwt-secret", all)));
  REQUIRE(sub.next(frame, info, 10s));
  CHECK(sub.answer().streams.size() == 2);
}

TEST_CASE("reload: a new certificate and tokens file reach new clients while connected ones keep streaming", "[integration][subscriber-tls][reload]") {
  auto copy = [](const std::string& from, const std::string& to) {
    std::ifstream in(from, std::ios::binary);
    std::ofstream(to, std::ios::binary) << in.rdbuf();
  };
  const std::string cert = writeTempFile("relay.pem", ""), key = writeTempFile("relay.key", "");
  const std::string tokens = writeTempFile("tokens", "# subscribers\ntoken-one\n");
  copy(pki().path("server.pem"), cert);
  copy(pki().path("server.key"), key);
  const std::string yaml = kListenUpstream + "listeners:\n" +
                           listener("main", "protocol: streamrelay, auth: {tokens_file: '" + tokens +
                                                "'}, tls: {enabled: true, cert_file: '" + cert + "', key_file: '" +
                                                key + "'}, queue: {max_frames: 100000, max_bytes: 0}");
  RunningRelay relay = startRelay(yaml);
  Subscriber::Options first = tlsClient();
  first.protocol = Protocol::Streamrelay;
  first.token = "token-one";
  Subscriber connected(relay.address("main", "localhost"), first);
  REQUIRE(connected.awaitAnswer(10s));
  auto feed = publish(relay, 6000, 2000);
  REQUIRE(readSeqs(connected, 1, 1000) == 1000);

  copy(pki().path("other-server.pem"), cert);
  copy(pki().path("other-server.key"), key);
  std::ofstream(tokens) << "token-two\n";
  relay.reload(yaml);
  REQUIRE(relay.process->waitForLine("listener main: certificate and tokens reloaded for new clients").size() > 0);

  std::string frame;
  CHECK_THROWS_WITH(Subscriber(relay.address("main", "localhost"), tlsClient()),
                    Catch::Contains("certificate verify failed"));
  Subscriber::Options next = tlsClient("other-ca");
  next.protocol = Protocol::Streamrelay;
  next.token = "token-one";
  {
    Subscriber oldToken(relay.address("main", "localhost"), next);
    CHECK_THROWS_WITH(oldToken.next(frame, 10s), Catch::Contains("not authorized: unknown token"));
  }
  next.token = "token-two";
  Subscriber fresh(relay.address("main", "localhost"), next);
  CHECK(fresh.awaitAnswer(10s));  // admitted (the feed may be over by now: no frame is promised)
  // The subscriber connected before the reload kept its session: every frame, in order.
  CHECK(readSeqs(connected, 1001, 5000) == 6000);
  CHECK(feed->waitForExit(30s) == 0);
}

TEST_CASE("auth: RS256 JWTs are checked with the public key alone", "[integration][protocol][auth]") {
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" +
                                  listener("main", "protocol: streamrelay, auth: {jwt: {public_key_file: '" +
                                                       pki().path("jwt-rsa.pub") + "'}}"));
  Poco::JWT::Token token;
  token.setExpiration(Poco::Timestamp() + Poco::Timespan(3600, 0));
  Poco::SharedPtr<Poco::Crypto::RSAKey> privateKey = new Poco::Crypto::RSAKey("", pki().path("jwt-rsa.key"));
  Poco::JWT::Signer rsa(privateKey);
  Subscriber sub(relay.address(), protocolClient(rsa.sign(token, Poco::JWT::Signer::ALGO_RS256)));
  REQUIRE(sub.awaitAnswer(10s));
  auto feed = publish(relay, 10);
  CHECK(readSeqs(sub, 1, 10) == 10);
  // A token signed with HS256 (by whoever knows nothing but the public key) is refused.
  Poco::JWT::Signer hmac(std::string("guess"));
  Subscriber forged(relay.address(), protocolClient(hmac.sign(token, Poco::JWT::Signer::ALGO_HS256)));
  std::string frame;
  CHECK_THROWS_WITH(forged.next(frame, 10s), Catch::Contains("not authorized: JWT not accepted (its form or algorithm)"));
}

TEST_CASE("auth: a signed JWT whose claims are null is refused and the relay serves on", "[integration][protocol][auth]") {
  RunningRelay relay = startRelay(kListenUpstream + "listeners:\n" +
                                  listener("main", "protocol: streamrelay, auth: {jwt: {secret: s3cret, audience: relay}}"));
  std::string frame;
  for (const char* claims : {R"({"aud": "relay", "inputs": [null]})", R"({"aud": null})", R"({"aud": [null]})",
                             R"({"aud": "relay", "inputs": null})", R"({"aud": "relay", "exp": null})",
                             R"({"aud": "relay", "inputs": [[[[[[{"x": null}]]]]]]})"}) {
    INFO(claims);
    Subscriber sub(relay.address(), protocolClient(streamrelay::test::signedJwt("s3cret", claims)));
    CHECK_THROWS_WITH(sub.next(frame, 10s), Catch::StartsWith("the relay refused the hello: not authorized: JWT claim '"));
  }
  Subscriber good(relay.address(), protocolClient(streamrelay::test::signedJwt("s3cret", R"({"aud": "relay"})")));
  REQUIRE(good.awaitAnswer(10s));
  auto feed = publish(relay, 10);
  CHECK(readSeqs(good, 1, 10) == 10);
}

TEST_CASE("auth: the JWT recipe in docs/subscribers.md mints a token the relay admits", "[integration][protocol][auth]") {
  std::ifstream doc(STREAMRELAY_SOURCE_DIR "/docs/subscribers.md");
  std::stringstream text;
  text << doc.rdbuf();
  const std::string all = text.str();
  const std::size_t marker = all.find("<!-- jwt-recipe -->");
  REQUIRE(marker != std::string::npos);
  const std::size_t begin = all.find("```sh\n", marker) + 6;
  const std::string recipe = all.substr(begin, all.find("\n```", begin) - begin);
  ChildProcess mint("/bin/sh", {"-c", "SECRET=recipe-secret; exec 1>&2; " + recipe});
  REQUIRE(mint.waitForExit() == 0);
  const auto token = mint.waitForLine("^([A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+)$");
  REQUIRE(token.size() == 2);

  RunningRelay relay = startRelay(
      "sources:\n  trades: {type: generator, rate: 200, size: 16}\n  quotes: {type: generator, rate: 200, size: 16}\n"
      "  orders: {type: generator, rate: 200, size: 16}\nlisteners:\n" +
      listener("main", "inputs: [trades, quotes, orders], protocol: streamrelay, "
                       "auth: {jwt: {secret: recipe-secret, audience: relay}}"));
  Subscriber sub(relay.address(), protocolClient(token[1]));
  REQUIRE(sub.awaitAnswer(10s));
  CHECK(sub.answer().streams.size() == 2);  // the streams the token names, not orders
  CHECK(sub.answer().streams.count("trades") == 1);
  CHECK(sub.answer().streams.count("quotes") == 1);
}

TEST_CASE("auth: a tokens file or JWT key others may write stops the start, and a reload keeps the previous tokens", "[integration][protocol][auth]") {
  const std::string tokens = writeTempFile("open-tokens", "token-one\n");
  const std::string yaml = kListenUpstream + "listeners:\n" +
                           listener("main", "protocol: streamrelay, auth: {tokens_file: '" + tokens + "'}");
  SECTION("at start, and with --check-config, naming the key") {
    REQUIRE(::chmod(tokens.c_str(), 0666) == 0);
    const std::string path = writeTempFile("open-tokens.yaml", yaml);
    for (const char* option : {"--check-config", "--config"}) {
      ChildProcess relay(STREAMRELAY_BIN, {option, path});
      CHECK(relay.waitForExit() == 1);
      CHECK(relay.output() == "streamrelay: config error: " + path + ":3: listeners[0].auth.tokens_file: " + tokens +
                                  " is writable by group or others (mode 0666) (auth.allow_insecure: true overrides)\n");
    }
    const std::string key = writeTempFile("open-key.pub", "");
    std::ofstream(key) << std::ifstream(pki().path("jwt-rsa.pub")).rdbuf();
    REQUIRE(::chmod(key.c_str(), 0646) == 0);
    const std::string keyYaml = writeTempFile(
        "open-key.yaml", kListenUpstream + "listeners:\n" +
                             listener("main", "protocol: streamrelay, auth: {jwt: {public_key_file: '" + key + "'}}"));
    ChildProcess relay(STREAMRELAY_BIN, {"--config", keyYaml});
    CHECK(relay.waitForExit() == 1);
    CHECK(relay.output() == "streamrelay: config error: " + keyYaml + ":3: listeners[0].auth.jwt.public_key_file: " +
                                key + " is writable by group or others (mode 0646) (auth.allow_insecure: true overrides)\n");
    // The override, for files another user keeps on purpose.
    const std::string allowed = writeTempFile(
        "allowed.yaml", kListenUpstream + "listeners:\n" +
                            listener("main", "protocol: streamrelay, auth: {tokens_file: '" + tokens +
                                                 "', allow_insecure: true}"));
    ChildProcess check(STREAMRELAY_BIN, {"--check-config", allowed});
    CHECK(check.waitForExit() == 0);
  }
  SECTION("at reload: one error line, and the tokens read before still admit") {
    REQUIRE(::chmod(tokens.c_str(), 0600) == 0);
    RunningRelay relay = startRelay(yaml);
    std::ofstream(tokens) << "token-two\n";
    REQUIRE(::chmod(tokens.c_str(), 0622) == 0);
    relay.reload(yaml);
    REQUIRE(relay.process->waitForLine("config reload: .*auth\\.tokens_file: .* is writable by group or others").size() > 0);
    std::string frame;
    {
      Subscriber two(relay.address(), protocolClient("token-two"));
      CHECK_THROWS_WITH(two.next(frame, 10s), Catch::Contains("not authorized: unknown token"));
    }
    Subscriber one(relay.address(), protocolClient("token-one"));
    REQUIRE(one.awaitAnswer(10s));
    auto feed = publish(relay, 10);
    CHECK(readSeqs(one, 1, 10) == 10);
    CHECK(relay.process->countLines("tokens_file") == 1);
  }
}
