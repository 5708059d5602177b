// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: how the http source reads a provider's answer
// (http_response.hpp): status and header lines as libcurl hands them over,
// the same bytes as a WebSocket handshake's answer, a redirect's Location and
// Retry-After. Nothing may crash; a redirect that may be followed goes to
// http(s), never from https to http; a wait never exceeds its cap.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "http_response.hpp"

using namespace streamrelay;

namespace {

constexpr long long kCapMs = 3600LL * 1000;

bool startsWithNoCase(const std::string& text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  return true;
}

void checkRedirect(const std::string& from, const std::string& location) {
  const Redirect r = resolveRedirect(from, location);
  (void)withoutQuery(r.url.empty() ? location : r.url);
  if (!r.error.empty()) return;
  const bool toHttps = startsWithNoCase(r.url, "https://");
  if (!toHttps && !startsWithNoCase(r.url, "http://")) std::abort();           // only http(s) is followed
  if (!toHttps && startsWithNoCase(from, "https://")) std::abort();            // never downgraded
  (void)originOf(r.url);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // Line by line, as libcurl's header callback gets them.
  HttpResponseHead head;
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t end = text.find('\n', at);
    const std::size_t next = end == std::string_view::npos ? text.size() : end + 1;
    head.addLine(text.substr(at, next - at));
    at = next;
  }
  (void)head.status();
  const std::string location = head.header("location");
  checkRedirect("https://origin.example:8443/feed?key=1", location);
  checkRedirect("http://origin.example/dir/feed", location);
  const long long wait = retryAfterMs(head.header("retry-after"), 1445412480, kCapMs);
  if (wait < -1 || wait > kCapMs) std::abort();
  // At once, as a WebSocket handshake's answer is read.
  HttpResponseHead whole;
  const long consumed = parseResponseHead(text, whole);
  if (consumed > static_cast<long>(size) || (consumed > 0 && !whole.complete())) std::abort();
  return 0;
}
