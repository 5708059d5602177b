// SPDX-License-Identifier: Apache-2.0
// What the http source reads from a provider's answer, without a network:
// status lines and headers, Retry-After, and where a redirect may go.
#include <catch2/catch.hpp>

#include <curl/curl.h>

#include "http_response.hpp"

using namespace streamrelay;

TEST_CASE("http head: status line, headers of any case, interim 1xx skipped, a new response after a redirect",
          "[http_response]") {
  HttpResponseHead head;
  REQUIRE(head.addLine("HTTP/1.1 100 Continue\r\n"));
  REQUIRE(head.addLine("\r\n"));
  CHECK_FALSE(head.complete());
  REQUIRE(head.addLine("HTTP/1.1 302 Found\r\n"));
  REQUIRE(head.addLine("Location:  /next?a=1 \r\n"));
  REQUIRE(head.addLine("\r\n"));
  CHECK(head.complete());
  CHECK(head.status() == 302);
  CHECK(head.reason() == "Found");
  CHECK(head.header("LOCATION") == "/next?a=1");
  REQUIRE(head.addLine("HTTP/2 200\r\n"));  // the redirect's target answers: a new head
  CHECK_FALSE(head.complete());
  CHECK(head.header("location").empty());
  REQUIRE(head.addLine("retry-after: 5\n"));
  REQUIRE(head.addLine("Retry-After: 7\n"));
  REQUIRE(head.addLine("\n"));
  CHECK(head.status() == 200);
  CHECK(head.reason().empty());
  CHECK(head.header("Retry-After") == "7");  // the last one counts
}

TEST_CASE("http head: what is not HTTP, or too much of it, is an error that says so", "[http_response]") {
  HttpResponseHead garbage;
  CHECK_FALSE(garbage.addLine("\x16\x03\x01 NOT HTTP AT ALL \r\n"));
  CHECK(garbage.error() == "not an HTTP response: the first line is not a status line");
  CHECK_FALSE(HttpResponseHead().addLine("HTTP/1.1 2x0 OK\r\n"));
  HttpResponseHead big;
  REQUIRE(big.addLine("HTTP/1.1 200 OK\r\n"));
  bool ok = true;
  for (int i = 0; i < 1000 && ok; ++i) ok = big.addLine("X-Header-" + std::to_string(i) + ": value\r\n");
  CHECK_FALSE(ok);
  CHECK(big.error() == "more than 200 response headers");
  HttpResponseHead huge;
  REQUIRE(huge.addLine("HTTP/1.1 200 OK\r\n"));
  CHECK_FALSE(huge.addLine("X: " + std::string(70000, 'x') + "\r\n"));
}

TEST_CASE("http head: a WebSocket handshake's answer parsed from a buffer, with what follows it", "[http_response]") {
  const std::string answer =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x03" "abc";
  for (std::size_t cut = 0; cut < answer.size() - 5; ++cut) {
    HttpResponseHead partial;
    CHECK(parseResponseHead(answer.substr(0, cut), partial) == 0);
  }
  HttpResponseHead head;
  const long n = parseResponseHead(answer, head);
  REQUIRE(n == static_cast<long>(answer.size() - 5));
  CHECK(head.status() == 101);
  CHECK(head.header("upgrade") == "websocket");
  HttpResponseHead bad;
  CHECK(parseResponseHead("SSH-2.0-OpenSSH\r\n", bad) == -1);
  HttpResponseHead endless;
  CHECK(parseResponseHead("HTTP/1.1 101 x\r\nX: " + std::string(70000, 'y'), endless) == -1);
}

TEST_CASE("Retry-After: seconds in 64 bits and capped, or an HTTP-date, anything else ignored", "[http_response]") {
  const long long cap = 3600LL * 1000;
  const std::int64_t now = curl_getdate("Wed, 21 Oct 2015 07:28:00 GMT", nullptr);
  REQUIRE(now > 0);
  CHECK(retryAfterMs("1", now, cap) == 1000);
  CHECK(retryAfterMs(" 120 ", now, cap) == 120000);
  CHECK(retryAfterMs("3600", now, cap) == cap);
  CHECK(retryAfterMs("4294968", now, cap) == cap);  // * 1000 wraps a 32-bit int to 704
  CHECK(retryAfterMs("2147484", now, cap) == cap);  // * 1000 goes negative in 32 bits
  CHECK(retryAfterMs(std::string(400, '9'), now, cap) == cap);
  CHECK(retryAfterMs("0", now, cap) == 0);
  CHECK(retryAfterMs("Wed, 21 Oct 2015 07:28:30 GMT", now, cap) == 30000);
  CHECK(retryAfterMs("Wednesday, 21-Oct-15 07:29:00 GMT", now, cap) == 60000);  // RFC 850
  CHECK(retryAfterMs("Wed Oct 21 07:28:10 2015", now, cap) == 10000);           // asctime
  CHECK(retryAfterMs("Tue, 20 Oct 2015 07:28:00 GMT", now, cap) == 0);          // past
  CHECK(retryAfterMs("Fri, 21 Oct 2095 07:28:00 GMT", now, cap) == cap);
  CHECK(retryAfterMs("", now, cap) == -1);
  CHECK(retryAfterMs("-5", now, cap) == -1);
  CHECK(retryAfterMs("soon", now, cap) == -1);
}

TEST_CASE("redirects: resolved against the request, only http(s), never https to http", "[http_response]") {
  Redirect r = resolveRedirect("http://a.example:8080/feed?x=1", "/next?y=2");
  CHECK(r.error.empty());
  CHECK(r.url == "http://a.example:8080/next?y=2");
  CHECK(resolveRedirect("http://a.example/dir/feed", "other").url == "http://a.example/dir/other");
  r = resolveRedirect("http://a.example/", "https://b.example/s");
  CHECK(r.error.empty());
  CHECK(r.url == "https://b.example/s");
  r = resolveRedirect("https://a.example/", "http://b.example/s");
  CHECK(r.url == "http://b.example/s");
  CHECK(r.error == "https must not be downgraded to http (the request and its headers would go in the clear)");
  CHECK(resolveRedirect("https://a.example/", "HTTP://a.example/s").error.rfind("https must not", 0) == 0);
  CHECK(resolveRedirect("http://a.example/", "ftp://b.example/f").error == "only http:// and https:// are followed");
  CHECK(resolveRedirect("http://a.example/", "file:///etc/passwd").error == "only http:// and https:// are followed");
  CHECK(resolveRedirect("http://a.example/", "").error == "its Location is not a URL");
  CHECK(resolveRedirect("http://a.example/", "http://[::1").error == "its Location is not a URL");
}

TEST_CASE("origins: scheme, host and port decide where the configured headers may go", "[http_response]") {
  CHECK(originOf("http://A.Example/x?y") == "http://a.example:80");
  CHECK(originOf("http://a.example:80/") == originOf("http://a.example/z"));
  CHECK(originOf("https://a.example/") == "https://a.example:443");
  CHECK(originOf("http://a.example:8080/") != originOf("http://a.example/"));
  CHECK(originOf("https://a.example/") != originOf("http://a.example:443/"));
  CHECK(originOf("not a url").empty());
  CHECK(withoutQuery("http://h/p?token=secret#f") == "http://h/p");
  CHECK(withoutQuery("http://h/p") == "http://h/p");
}
