// SPDX-License-Identifier: Apache-2.0
#pragma once
// PluginProcess: one child process of an isolated plugin instance, from its
// start to its reaping.
//
// It is this same binary run again in its hidden `--plugin-child` mode
// (posix_spawn of /proc/self/exe: no fork() of the multi-threaded relay, no
// copy of its memory, and the child runs exactly the relay's code even if
// the file was replaced since). The child gets the descriptors it is given
// at 3, 4, ... and nothing else of the relay's (no subscriber socket, no
// file), /dev/null as stdin, and one pipe as stdout and stderr, which the
// relay reads line by line. It runs in a process group of its own, so a
// Ctrl-C at the relay's terminal reaches the relay alone, which stops it.
//
// Used by one thread (the instance's supervisor). Not copyable.

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace streamrelay {

// The descriptors a child finds at 3, 4, ...
enum ChildFd : int { kChildControlFd = 3, kChildRingFd, kChildReaderBellFd, kChildWriterBellFd, kChildCodeFd };

// The hidden command-line mode: `streamrelay --plugin-child NAME RELAYPID`.
constexpr const char* kPluginChildFlag = "--plugin-child";

class PluginProcess {
 public:
  // Starts the child with `fds` at 3, 4, ... Throws std::runtime_error.
  PluginProcess(const std::string& instanceName, const std::vector<int>& fds);
  // Kills and reaps it if it still runs.
  ~PluginProcess();
  PluginProcess(const PluginProcess&) = delete;
  PluginProcess& operator=(const PluginProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Readable once the child has exited (a pidfd); -1 where the kernel has
  // none: then poll reap() now and then.
  int exitFd() const { return exitFd_; }
  // Its stdout and stderr.
  int outputFd() const { return outputFd_; }
  void kill();
  // Reaps the child if it has exited: true with its wait status.
  bool reap(int& status);
  // Its resident memory now (0 if it cannot be read).
  std::uint64_t residentBytes() const;

 private:
  pid_t pid_ = -1;
  int exitFd_ = -1;
  int outputFd_ = -1;
  bool reaped_ = false;
};

// "exit code 1", "signal SIGSEGV": how a wait status reads in a log line.
std::string describeExit(int status);

}  // namespace streamrelay
