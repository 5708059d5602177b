// SPDX-License-Identifier: Apache-2.0
#pragma once
// ChildProcess: runs one of the project's binaries for an integration test,
// collects its stderr line by line, and lets the test wait for a line or for
// the exit with a deadline (never a fixed sleep).

#include <Poco/Pipe.h>
#include <Poco/PipeStream.h>
#include <Poco/Process.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace streamrelay::test {

using namespace std::chrono_literals;

class ChildProcess {
 public:
  ChildProcess(const std::string& binary, const std::vector<std::string>& args);
  ~ChildProcess();  // kills the process if it still runs
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Waits for a stderr line matching `pattern`; returns its match (empty on
  // timeout). Lines seen before the call count too.
  std::smatch waitForLine(const std::string& pattern, std::chrono::milliseconds timeout = 10s);
  // Number of stderr lines matching `pattern` so far.
  int countLines(const std::string& pattern);
  // Waits until `count` lines match.
  bool waitForLines(const std::string& pattern, int count, std::chrono::milliseconds timeout = 10s);
  std::string output();

  void terminate();  // SIGTERM
  void kill();       // SIGKILL
  void signal(int signal);
  // Waits for the exit; returns the exit code, or -1000 on timeout.
  int waitForExit(std::chrono::milliseconds timeout = 15s);
  long pid() const { return handle_->id(); }
  // Writes to the child's stdin.
  void writeStdin(const std::string& bytes);
  void closeStdin();

 private:
  void readOutput();

  Poco::Pipe stdinPipe_;
  Poco::Pipe stderrPipe_;
  std::unique_ptr<Poco::ProcessHandle> handle_;
  std::thread reader_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> lines_;
  bool eof_ = false;
  bool exited_ = false;
  int exitCode_ = 0;
};

// Peak and current resident memory of a process, in KiB (from /proc).
long residentKiB(long pid, const char* field = "VmHWM:");

// Writes `text` to a fresh file in a temporary directory; returns its path.
std::string writeTempFile(const std::string& name, const std::string& text);

}  // namespace streamrelay::test
