// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the head of the request a websocket or sse subscriber
// sends (http_request.hpp), fed whole and in pieces of every size the first
// byte picks. Nothing may crash; the head kept stays bounded; a bad request
// is a 4xx with one line; the same bytes in pieces give the same verdict as
// at once; an answer quoting the client never carries a control byte but its
// line ends.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "http_request.hpp"

using namespace streamrelay;

namespace {

HttpRequestReader::Result feed(HttpRequestReader& reader, std::string_view bytes, std::size_t piece) {
  HttpRequestReader::Result result = HttpRequestReader::Result::More;
  for (std::size_t at = 0; at < bytes.size() && result == HttpRequestReader::Result::More; at += piece)
    result = reader.add(bytes.substr(at, piece));
  return result;
}

void checkAnswer(const std::string& answer) {
  const std::size_t head = answer.find("\r\n\r\n");
  if (head == std::string::npos) std::abort();
  for (std::size_t i = head + 4; i < answer.size(); ++i) {
    const auto c = static_cast<unsigned char>(answer[i]);
    if ((c < 0x20 && c != '\n' && c != '\r') || c == 0x7f) std::abort();  // the body: printable, one line
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t piece = 1 + data[0] % 64;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);

  HttpRequestReader whole;
  const HttpRequestReader::Result once = whole.add(bytes);
  HttpRequestReader pieces;
  const HttpRequestReader::Result inPieces = feed(pieces, bytes, piece);
  if (once != inPieces) std::abort();  // no verdict depends on how the bytes arrived
  if (once == HttpRequestReader::Result::Bad) {
    if (whole.status() < 400 || whole.status() > 499 || whole.error().empty()) std::abort();
    if (whole.error().find('\n') != std::string::npos) std::abort();
    checkAnswer(httpResponse(whole.status(), "", whole.error()));
  }
  if (once == HttpRequestReader::Result::Done) {
    const HttpRequest& r = whole.request();
    if (r.headers.size() > HttpRequestReader::kMaxHeaders) std::abort();
    if (r.target.size() > HttpRequestReader::kMaxHeadBytes) std::abort();
    if (r.target != pieces.request().target || r.headers != pieces.request().headers) std::abort();
    (void)r.header("origin");
    (void)r.headerHas("connection", "upgrade");
    (void)originAllowed({"https://app.example"}, r.header("origin"));
  }
  return 0;
}
