// SPDX-License-Identifier: Apache-2.0
#include "child_process.hpp"

#include <Poco/Exception.h>
#include <Poco/File.h>
#include <Poco/Path.h>
#include <Poco/TemporaryFile.h>

#include <signal.h>

#include <fstream>
#include <iostream>
#include <sstream>

namespace streamrelay::test {

ChildProcess::ChildProcess(const std::string& binary, const std::vector<std::string>& args) {
  handle_ = std::make_unique<Poco::ProcessHandle>(
      Poco::Process::launch(binary, args, &stdinPipe_, nullptr, &stderrPipe_));
  reader_ = std::thread([this] { readOutput(); });
}

ChildProcess::~ChildProcess() {
  if (waitForExit(0ms) == -1000) {
    kill();
    waitForExit(10s);
  }
  if (reader_.joinable()) reader_.join();
}

void ChildProcess::readOutput() {
  Poco::PipeInputStream in(stderrPipe_);
  std::string line;
  while (std::getline(in, line)) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (std::getenv("STREAMRELAY_TEST_VERBOSE")) std::cerr << "  [" << handle_->id() << "] " << line << "\n";
    lines_.push_back(line);
    changed_.notify_all();
  }
  std::lock_guard<std::mutex> lock(mutex_);
  eof_ = true;
  changed_.notify_all();
}

std::smatch ChildProcess::waitForLine(const std::string& pattern, std::chrono::milliseconds timeout) {
  std::regex re(pattern);
  std::unique_lock<std::mutex> lock(mutex_);
  std::smatch match;
  std::size_t checked = 0;
  changed_.wait_for(lock, timeout, [&] {
    for (; checked < lines_.size(); ++checked)
      if (std::regex_search(lines_[checked], match, re)) return true;
    return eof_;
  });
  return match;
}

int ChildProcess::countLines(const std::string& pattern) {
  std::regex re(pattern);
  std::lock_guard<std::mutex> lock(mutex_);
  int n = 0;
  for (const auto& line : lines_) n += std::regex_search(line, re) ? 1 : 0;
  return n;
}

bool ChildProcess::waitForLines(const std::string& pattern, int count, std::chrono::milliseconds timeout) {
  std::regex re(pattern);
  std::unique_lock<std::mutex> lock(mutex_);
  int n = 0;
  std::size_t checked = 0;
  return changed_.wait_for(lock, timeout, [&] {
    for (; checked < lines_.size(); ++checked) n += std::regex_search(lines_[checked], re) ? 1 : 0;
    return n >= count || eof_;
  }) && n >= count;
}

std::string ChildProcess::output() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string all;
  for (const auto& line : lines_) all += line + "\n";
  return all;
}

void ChildProcess::terminate() { Poco::Process::requestTermination(handle_->id()); }

void ChildProcess::signal(int signal) { ::kill(static_cast<pid_t>(handle_->id()), signal); }

void ChildProcess::kill() {
  try {
    Poco::Process::kill(*handle_);
  } catch (const Poco::Exception&) {
    // already gone
  }
}

int ChildProcess::waitForExit(std::chrono::milliseconds timeout) {
  if (exited_) return exitCode_;
  {
    // The child's stderr reaches EOF when it exits (it holds the only write end).
    std::unique_lock<std::mutex> lock(mutex_);
    if (!changed_.wait_for(lock, timeout, [&] { return eof_; })) return -1000;
  }
  exitCode_ = handle_->wait();
  exited_ = true;
  return exitCode_;
}

void ChildProcess::writeStdin(const std::string& bytes) { stdinPipe_.writeBytes(bytes.data(), static_cast<int>(bytes.size())); }

void ChildProcess::closeStdin() { stdinPipe_.close(Poco::Pipe::CLOSE_WRITE); }

long residentKiB(long pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  long value = -1;
  while (in >> key) {
    if (key == field) {
      in >> value;
      return value;
    }
    std::getline(in, key);
  }
  return value;
}

std::string writeTempFile(const std::string& name, const std::string& text) {
  static Poco::TemporaryFile dir = [] {  // removed when the test program exits
    Poco::TemporaryFile d;
    d.createDirectories();
    return d;
  }();
  std::string path = Poco::Path(dir.path(), name).toString();
  std::ofstream(path) << text;
  return path;
}

}  // namespace streamrelay::test
