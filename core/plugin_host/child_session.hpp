// SPDX-License-Identifier: Apache-2.0
#pragma once
// ChildSession: one run of an isolated plugin instance's child process, from
// the relay's side: the process (PluginProcess), the relay's end of the
// control channel (child_channel.hpp) and the child's output.
//
// It turns what the child sends into calls on its Listener (the instance),
// in the order sent, and logs each line the child writes to stdout or stderr,
// prefixed with the instance and the child's pid. It never trusts the child: a
// message that breaks the protocol ends the child (kill) with a reason.
//
// Used by one thread at a time: the instance's supervisor (or the host thread
// in IsolatedInstance::create, before the supervisor starts).

#include <poll.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "child_channel.hpp"
#include "plugin_process.hpp"

namespace streamrelay {

class ChildSession {
 public:
  // What the child says.
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void childReady() = 0;
    virtual void childRefused(const std::string& why) = 0;
    virtual void childMetrics(std::uint64_t failures, const std::vector<std::pair<std::string, std::uint64_t>>& counters,
                              const std::vector<std::pair<std::string, double>>& gauges) = 0;
    // Frames in wire form, checked: whole frames, back to back; and the ring
    // seq their sending acknowledges (0: none).
    virtual void childEmitted(std::uint64_t acknowledged, std::string_view frames) = 0;
    virtual std::string childWantsStats() = 0;
    virtual void childDisabled() = 0;
    virtual void childEnded() = 0;
  };

  // Starts the child with the ring's descriptors and the plugin's code, and
  // sends it `start`. Throws std::runtime_error if it cannot be started.
  ChildSession(const ChildStart& start, const std::vector<int>& ringFds, int codeFd);
  ~ChildSession();  // kills and reaps the child if it still runs
  ChildSession(const ChildSession&) = delete;
  ChildSession& operator=(const ChildSession&) = delete;

  // Adds the descriptors to wait on to `fds`.
  void pollFds(std::vector<pollfd>& fds) const;
  // Reads and handles what is there (messages, output lines); sends what
  // waits to be sent; if `mayHaveExited` (its exit descriptor was readable,
  // or there is none), reaps it. Returns false once the child has exited
  // and everything it sent was handled (exitStatus() holds its status).
  // Never blocks.
  bool service(Listener& listener, bool mayHaveExited);
  void sendStop(std::uint64_t lastRingSeq, std::int64_t deadlineSteadyNs, int reason);
  // Ends the child now; `why` is kept for the exit's description.
  void kill(const std::string& why);

  long pid() const { return process_->pid(); }
  std::uint64_t residentBytes() const { return process_->residentBytes(); }
  // Whether the exit descriptor, if there is one, said it exited.
  bool exitSignalled(const std::vector<pollfd>& polled) const;
  int exitStatus() const { return status_; }
  // Why the relay killed it ("" if it did not).
  const std::string& killedBecause() const { return killedBecause_; }
  bool endedCleanly() const { return ended_; }

 private:
  bool readMessages(Listener& listener);
  bool handle(ChildMessage type, std::string_view payload, Listener& listener);
  void readOutput(bool all);
  void logLine(std::string_view line);
  void flushOutbox();

  const std::string name_;
  int control_ = -1;  // the relay's end of the socketpair (non-blocking)
  std::unique_ptr<PluginProcess> process_;
  MessageStream incoming_;
  std::string outbox_;
  std::string output_;     // a partial line of the child's output
  bool controlOpen_ = true;
  bool ended_ = false;     // it said Ended
  bool exited_ = false;
  int status_ = 0;
  std::string killedBecause_;
};

}  // namespace streamrelay
