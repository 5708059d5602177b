// SPDX-License-Identifier: Apache-2.0
#include "page_files.hpp"

#include <sys/stat.h>

#include <cctype>
#include <fstream>
#include <sstream>

namespace streamrelay::plugins {

namespace {

constexpr off_t kMaxPageBytes = 1 << 20;

bool plainName(const std::string& name) {
  if (name.empty() || name[0] == '.' || name.size() > 255) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') return false;
  return true;
}

std::string contentTypeOf(const std::string& name) {
  const std::string ext = name.substr(name.rfind('.') + 1);
  if (ext == "html" || ext == "htm") return "text/html; charset=utf-8";
  if (ext == "js") return "text/javascript; charset=utf-8";
  if (ext == "css") return "text/css; charset=utf-8";
  if (ext == "json") return "application/json";
  if (ext == "svg") return "image/svg+xml";
  if (ext == "png") return "image/png";
  return "text/plain; charset=utf-8";
}

}  // namespace

HttpServer::Response PageFiles::get(const std::string& name) const {
  if (!plainName(name)) return {404, "text/plain", "not found: pages are plain file names\n"};
  const std::string path = directory_ + "/" + name;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return {404, "text/plain", "not found: " + name + "\n"};
  if (st.st_size > kMaxPageBytes) return {404, "text/plain", "not served: " + name + " is over 1 MiB\n"};
  std::ifstream file(path, std::ios::binary);
  std::ostringstream body;
  body << file.rdbuf();
  if (!file) return {404, "text/plain", "not readable: " + name + "\n"};
  return {200, contentTypeOf(name), body.str()};
}

}  // namespace streamrelay::plugins
