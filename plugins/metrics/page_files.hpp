// SPDX-License-Identifier: Apache-2.0
#pragma once
// PageFiles: the files of one directory served as they are (the metrics
// plugin's `pages`), so a web page can come from the relay's host beside its
// figures. Only plain names (letters, digits, '.', '-', '_'; no leading dot,
// no directories) of regular files up to 1 MiB; each file is read when it is
// asked for, so an edited page shows on the next load. Called from the HTTP
// server thread only.

#include <string>

#include "http_server.hpp"

namespace streamrelay::plugins {

class PageFiles {
 public:
  // `directory` empty: none are served.
  explicit PageFiles(std::string directory) : directory_(std::move(directory)) {}
  bool enabled() const { return !directory_.empty(); }
  // The answer to GET /pages/`name`: the file, or 404 saying why.
  HttpServer::Response get(const std::string& name) const;

 private:
  std::string directory_;
};

}  // namespace streamrelay::plugins
