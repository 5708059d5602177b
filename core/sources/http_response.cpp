// SPDX-License-Identifier: Apache-2.0
#include "http_response.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <memory>

namespace streamrelay {

namespace {

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trimmed(std::string_view text) {
  while (!text.empty() && isSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && isSpace(text.back())) text.remove_suffix(1);
  return text;
}

bool equalNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

bool isDigit(char c) { return c >= '0' && c <= '9'; }

// "HTTP/1.1 200 OK", "HTTP/2 429": the code, or -1.
long statusOf(std::string_view line, std::string& reason) {
  if (line.substr(0, 5) != "HTTP/") return -1;
  const std::size_t space = line.find(' ');
  if (space == std::string_view::npos || line.size() < space + 4) return -1;
  const std::string_view code = line.substr(space + 1, 3);
  if (!std::all_of(code.begin(), code.end(), isDigit)) return -1;
  if (line.size() > space + 4 && line[space + 4] != ' ') return -1;
  reason = std::string(trimmed(line.substr(space + 4)));
  return (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
}

struct UrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
using Url = std::unique_ptr<CURLU, UrlDeleter>;

std::string part(CURLU* url, CURLUPart which, unsigned flags = 0) {
  char* text = nullptr;
  if (curl_url_get(url, which, &text, flags) != CURLUE_OK || !text) return "";
  std::string value(text);
  curl_free(text);
  return value;
}

std::string lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

}  // namespace

bool HttpResponseHead::fail(std::string why) {
  error_ = std::move(why);
  return false;
}

bool HttpResponseHead::addLine(std::string_view line) {
  if (!error_.empty()) return false;
  bytes_ += line.size();
  if (bytes_ > kMaxHeadBytes) return fail("the response head is larger than " + std::to_string(kMaxHeadBytes) + " bytes");
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  std::string reason;
  if (const long status = statusOf(line, reason); status >= 0) {  // a new response begins
    status_ = status;
    reason_ = std::move(reason);
    headers_.clear();
    complete_ = false;
    return true;
  }
  if (status_ == 0) return fail("not an HTTP response: the first line is not a status line");
  if (complete_) return true;  // trailers, after the body: nothing here needs them
  if (line.empty()) {
    if (status_ >= 200 || status_ == 101) complete_ = true;  // after a 101, the connection speaks another protocol
    else status_ = 0;  // an interim 1xx (100 Continue): the final status line follows
    return true;
  }
  const std::size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return true;  // not a header (a folded line): not ours to judge
  if (headers_.size() >= kMaxHeaders) return fail("more than " + std::to_string(kMaxHeaders) + " response headers");
  headers_.emplace_back(std::string(trimmed(line.substr(0, colon))), std::string(trimmed(line.substr(colon + 1))));
  return true;
}

std::string HttpResponseHead::header(std::string_view name) const {
  for (auto it = headers_.rbegin(); it != headers_.rend(); ++it)
    if (equalNoCase(it->first, name)) return it->second;
  return "";
}

long parseResponseHead(std::string_view bytes, HttpResponseHead& head) {
  std::size_t at = 0;
  while (!head.complete()) {
    const std::size_t end = bytes.find('\n', at);
    if (end == std::string_view::npos) {
      if (bytes.size() - at > HttpResponseHead::kMaxHeadBytes && !head.addLine(bytes.substr(at))) return -1;
      return 0;
    }
    if (!head.addLine(bytes.substr(at, end + 1 - at))) return -1;
    at = end + 1;
  }
  return static_cast<long>(at);
}

long long retryAfterMs(std::string_view value, std::int64_t nowUnixSeconds, long long capMs) {
  value = trimmed(value);
  if (value.empty()) return -1;
  if (std::all_of(value.begin(), value.end(), isDigit)) {
    long long seconds = 0;  // stays below capMs / 1000 + 10: no overflow, however many digits
    for (char c : value) {
      seconds = seconds * 10 + (c - '0');
      if (seconds * 1000 >= capMs) return capMs;
    }
    return seconds * 1000;
  }
  // An HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime forms): libcurl's parser reads all three.
  const std::string date(value.substr(0, 64));
  const time_t when = curl_getdate(date.c_str(), nullptr);
  if (when == static_cast<time_t>(-1)) return -1;
  const long long seconds = static_cast<long long>(when) - nowUnixSeconds;
  if (seconds <= 0) return 0;
  return seconds >= capMs / 1000 ? capMs : seconds * 1000;
}

Redirect resolveRedirect(const std::string& from, std::string_view location) {
  Redirect r;
  Url url(curl_url());
  if (!url || curl_url_set(url.get(), CURLUPART_URL, from.c_str(), 0) != CURLUE_OK) {
    r.error = "the request's URL cannot be parsed";
    return r;
  }
  const std::string target(trimmed(location));
  // A relative Location is resolved against the URL the handle holds (RFC 3986 5.2).
  if (target.empty() || target.find('\0') != std::string::npos ||
      curl_url_set(url.get(), CURLUPART_URL, target.c_str(), CURLU_URLENCODE | CURLU_ALLOW_SPACE) != CURLUE_OK) {
    r.error = "its Location is not a URL";
    return r;
  }
  r.url = part(url.get(), CURLUPART_URL);
  const std::string scheme = lower(part(url.get(), CURLUPART_SCHEME));
  if (scheme != "http" && scheme != "https")
    r.error = "only http:// and https:// are followed";
  else if (scheme == "http" && from.rfind("https://", 0) == 0)
    r.error = "https must not be downgraded to http (the request and its headers would go in the clear)";
  return r;
}

std::string originOf(const std::string& text) {
  Url url(curl_url());
  if (!url || curl_url_set(url.get(), CURLUPART_URL, text.c_str(), 0) != CURLUE_OK) return "";
  return lower(part(url.get(), CURLUPART_SCHEME)) + "://" + lower(part(url.get(), CURLUPART_HOST)) + ":" +
         part(url.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);
}

std::string withoutQuery(std::string_view url) {
  return std::string(url.substr(0, std::min(url.find('?'), url.find('#'))));
}

}  // namespace streamrelay
