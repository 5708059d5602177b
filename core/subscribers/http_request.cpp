// SPDX-License-Identifier: Apache-2.0
#include "http_request.hpp"

#include <algorithm>
#include <cctype>

#include "hello.hpp"

namespace streamrelay {

namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) text.remove_suffix(1);
  return text;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes `text` (and '+' as a space, in a query); false if a %
// is not followed by two hex digits.
bool decode(std::string_view text, bool plusIsSpace, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+' && plusIsSpace) {
      out += ' ';
    } else if (text[i] != '%') {
      out += text[i];
    } else {
      const int hi = i + 1 < text.size() ? hexValue(text[i + 1]) : -1;
      const int lo = i + 2 < text.size() ? hexValue(text[i + 2]) : -1;
      if (hi < 0 || lo < 0) return false;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    }
  }
  return true;
}

bool isTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// The path and query of a request target: itself in origin form
// ("/path?query"); taken from an absolute-form target
// ("http://host:port/path?query"), which RFC 9112 3.2.2 says a server must
// accept; false for anything else (authority or asterisk form).
bool originForm(std::string_view target, std::string& out) {
  if (!target.empty() && target[0] == '/') {
    out = target;
    return true;
  }
  const std::size_t scheme = target.find("://");
  if (scheme == std::string_view::npos) return false;
  const std::string name = lower(target.substr(0, scheme));
  if (name != "http" && name != "https" && name != "ws" && name != "wss") return false;
  const std::string_view rest = target.substr(scheme + 3);
  const std::size_t pathAt = rest.find_first_of("/?");
  if (pathAt == 0) return false;  // no authority
  if (pathAt == std::string_view::npos) out = "/";
  else if (rest[pathAt] == '?') out = "/" + std::string(rest.substr(pathAt));
  else out = rest.substr(pathAt);
  return true;
}

const char* reasonOf(int status) {
  switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

}  // namespace

const std::string* HttpRequest::header(std::string_view name) const {
  const std::string* found = nullptr;
  for (const auto& [key, value] : headers)
    if (key == name) found = &value;
  return found;
}

bool HttpRequest::headerHas(std::string_view name, std::string_view token) const {
  const std::string wanted = lower(token);
  for (const auto& [key, value] : headers) {
    if (key != name) continue;
    std::string_view list = value;
    while (!list.empty()) {
      const std::size_t comma = list.find(',');
      if (lower(trim(list.substr(0, comma))) == wanted) return true;
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    }
  }
  return false;
}

HttpRequestReader::Result HttpRequestReader::fail(int status, std::string why) {
  status_ = status;
  error_ = protocol::printable(why);
  return Result::Bad;
}

HttpRequestReader::Result HttpRequestReader::add(std::string_view bytes) {
  if (status_ != 0) return Result::Bad;
  const std::size_t searchFrom = head_.size() < 3 ? 0 : head_.size() - 3;
  head_.append(bytes.data(), bytes.size());
  std::size_t end = head_.find("\r\n\r\n", searchFrom);
  std::size_t endBytes = 4;
  if (const std::size_t bare = head_.find("\n\n", searchFrom); bare < end) {
    end = bare;  // bare line ends, which some clients send
    endBytes = 2;
  }
  if (end == std::string::npos ? head_.size() > kMaxHeadBytes : end > kMaxHeadBytes)
    return fail(431, "a request head longer than " + std::to_string(kMaxHeadBytes) + " bytes");
  if (end == std::string::npos) return Result::More;
  rest_ = head_.substr(end + endBytes);  // what followed the head (a client that did not wait)
  head_.resize(end);
  return parse();
}

HttpRequestReader::Result HttpRequestReader::parse() {
  std::string_view head = head_;
  auto nextLine = [&]() {
    const std::size_t eol = head.find('\n');
    std::string_view line = head.substr(0, eol);
    head = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
  };
  // Nothing of a bad request line is echoed: its target may hold a token.
  const std::string_view requestLine = nextLine();
  const std::size_t s1 = requestLine.find(' ');
  const std::size_t s2 = s1 == std::string_view::npos ? s1 : requestLine.find(' ', s1 + 1);
  if (s2 == std::string_view::npos)
    return fail(400, "not an HTTP/1.1 request line (METHOD TARGET HTTP/1.1)");
  if (const std::string_view version = requestLine.substr(s2 + 1); version.rfind("HTTP/1.", 0) != 0) {
    const bool named = version.size() == 8 && version.rfind("HTTP/", 0) == 0;  // else it may be part of the target
    return fail(400, (named ? std::string(version) : std::string("an HTTP version")) +
                         " (this listener speaks HTTP/1.1)");
  }
  request_.method = requestLine.substr(0, s1);
  if (request_.method.empty() || !std::all_of(request_.method.begin(), request_.method.end(), isTokenChar))
    return fail(400, "a malformed method");
  if (!originForm(requestLine.substr(s1 + 1, s2 - s1 - 1), request_.target))
    return fail(400, "a request target that is neither a path nor an http(s) URL");
  const std::size_t question = request_.target.find('?');
  if (!decode(std::string_view(request_.target).substr(0, question), false, request_.path))
    return fail(400, "a malformed %-escape in the path");
  if (question != std::string::npos) {
    std::string_view query = std::string_view(request_.target).substr(question + 1);
    while (!query.empty()) {
      const std::size_t amp = query.find('&');
      const std::string_view item = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
      if (item.empty()) continue;
      const std::size_t eq = item.find('=');
      std::string key, value;
      if (!decode(item.substr(0, eq), true, key) ||
          !decode(eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1), true, value))
        return fail(400, "a malformed %-escape in the query");
      request_.query.emplace_back(std::move(key), std::move(value));
    }
  }
  while (!head.empty()) {
    const std::string_view line = nextLine();
    const std::size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos ||
        !std::all_of(line.begin(), line.begin() + static_cast<std::ptrdiff_t>(colon), isTokenChar))
      return fail(400, "a malformed header line");
    if (request_.headers.size() == kMaxHeaders) return fail(431, "more than " + std::to_string(kMaxHeaders) + " headers");
    const std::string_view value = trim(line.substr(colon + 1));
    // RFC 9110 5.5: no control byte but HTAB in a value. A bare CR or a NUL
    // would otherwise travel into what the relay answers (CORS headers).
    if (std::any_of(value.begin(), value.end(), [](char c) {
          const auto byte = static_cast<unsigned char>(c);
          return (byte < 0x20 && c != '\t') || byte == 0x7f;
        }))
      return fail(400, "a control byte in the value of header " + std::string(line.substr(0, colon)));
    request_.headers.emplace_back(lower(line.substr(0, colon)), std::string(value));
  }
  head_.clear();
  head_.shrink_to_fit();
  return Result::Done;
}

std::string httpResponse(int status, const std::string& headers, const std::string& body) {
  // The body may quote what the client sent: one line, no control bytes.
  const std::string text = body.empty() ? std::string() : protocol::printable(body, 400) + "\n";
  return "HTTP/1.1 " + std::to_string(status) + " " + reasonOf(status) + "\r\n" + headers +
         "Content-Type: text/plain; charset=utf-8\r\nContent-Length: " + std::to_string(text.size()) +
         "\r\nConnection: close\r\n\r\n" + text;
}

bool originAllowed(const std::vector<std::string>& allowOrigins, const std::string* origin) {
  if (!origin) return true;
  const std::string wanted = lower(*origin);
  for (const std::string& allowed : allowOrigins)
    if (allowed == "*" || lower(allowed) == wanted) return true;
  return false;
}

}  // namespace streamrelay
