// SPDX-License-Identifier: Apache-2.0
#pragma once
// Helpers for integration tests that run the real relay and feed binaries.
// Catch2 assertions inside: include only from test files.

#include <catch2/catch.hpp>

#include <Poco/JSON/Object.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "child_process.hpp"
#include "streamrelay/client.hpp"

namespace streamrelay::test {

using streamrelay::client::Subscriber;

// A running relay and the ports its listeners got.
struct RunningRelay {
  std::unique_ptr<ChildProcess> process;
  std::map<std::string, int> ports;  // listener name -> port
  int publisherPort = 0;             // listen upstream
  std::string configPath;            // the file it runs (rewrite it and send SIGHUP to reload)

  RunningRelay() = default;
  RunningRelay(RunningRelay&&) = default;
  RunningRelay& operator=(RunningRelay&&) = default;
  // Every test ends with an orderly shutdown: SIGTERM must exit 0 (and, in the
  // sanitizer build, with no report). And every line the relay logged was
  // formatted: POCO's format() writes [ERRFMT] for an argument of another type.
  ~RunningRelay() {
    if (!process || std::uncaught_exceptions() > 0) return;
    if (process->waitForExit(0ms) == -1000) {
      process->terminate();
      int code = process->waitForExit();
      INFO(process->output());
      CHECK(code == 0);
    }
    INFO(process->output());
    CHECK(process->countLines("\\[ERRFMT\\]") == 0);
  }

  // Writes `yaml` over the config file and sends SIGHUP: the relay reloads it.
  void reload(const std::string& yaml) const;
  // Waits until `count` raw subscribers of `listener` (any listener if empty)
  // have been subscribed since the start: from then on every frame published
  // reaches them. (The relay logs "listener NAME: subscriber PEER connected"
  // once a subscriber's queue is on the bus. A streamrelay-protocol client
  // knows it from the answer: Subscriber::awaitAnswer.)
  void waitForSubscribers(int count, const std::string& listener = "") const;

  std::string address(const std::string& listener = "main", const std::string& host = "127.0.0.1") const {
    return host + ":" + std::to_string(ports.at(listener));
  }
};

// Starts the relay with this YAML and waits until its listeners are up.
RunningRelay startRelay(const std::string& yaml, const std::vector<std::string>& listeners = {"main"});
std::unique_ptr<ChildProcess> startFeed(std::vector<std::string> args);
int feedPort(ChildProcess& feed);

inline const std::string kListenUpstream = "upstream: {type: listen, bind: '127.0.0.1:0'}\n";

// One entry of a `listeners:` list on an ephemeral loopback port.
std::string listener(const std::string& name, const std::string& extra = "");

// A plain TCP client socket connected to 127.0.0.1:port (-1 if the connect
// failed); `receiveBuffer` > 0 sets SO_RCVBUF first (a client that reads
// slowly, or never). The caller closes it.
int connectLoopback(int port, int receiveBuffer = 0);

// Reads frames "feed N" and checks they are numbered 1.. in order; returns how
// many arrived in order.
long readSequence(Subscriber& sub, long expected, std::chrono::milliseconds timeout = 20s);

// streamrelay-feed sending frames "feed N" (N from 1) to the relay's listen
// source, written to its stdin by a thread of the test at about `rate` a
// second until stop(). The frames flow for as long as the test needs them,
// however slow the machine, and the test then knows how many there were.
class LineFeed {
 public:
  LineFeed(const RunningRelay& relay, int rate);
  ~LineFeed();  // stops writing if the test did not (the feed is killed)
  // Stops writing, sends a last frame "end", and waits for the feed to send
  // everything and exit 0; returns how many frames "feed N" it sent.
  long stop();

 private:
  std::unique_ptr<ChildProcess> feed_;
  std::atomic<bool> stopping_{false};
  long written_ = 0;  // the writer thread's, until stop() joined it
  std::thread writer_;
};

// Reads frames "feed N" (N from 1, in order) until the frame "end" of a
// LineFeed; returns the last N, or -1 (with a failed check) if a frame was
// out of order or none came for `quiet` (a hang guard).
long readUntilEnd(Subscriber& sub, std::chrono::milliseconds quiet = 30s);

// Load for the reload tests: `subscribers` subscribers of the listener
// `main` connect (and are seen), then one publisher sends `frames` frames
// "feed N" of `size` bytes at 20,000 frames/s to the relay's listen source,
// while each subscriber reads them in order on its own thread.
class LoadUnderTest {
 public:
  LoadUnderTest(const RunningRelay& relay, int frames, std::size_t size, int subscribers = 16);
  ~LoadUnderTest();
  // Joins the readers and checks: every subscriber got every frame, the
  // publisher sent all (exit 0), and its one connection was never dropped.
  void finish();

 private:
  const RunningRelay& relay_;
  const int frames_;
  std::vector<std::unique_ptr<Subscriber>> subs_;
  std::vector<long> got_;
  std::vector<std::thread> readers_;
  std::unique_ptr<ChildProcess> feed_;
};

// Reads `count` frames; each must be a whole "feed N" (N digits only).
// Returns how many arrived.
int readWholeFeedFrames(Subscriber& sub, int count);

// A fresh plugins directory (mode 0755), removed at the end of the test.
class PluginDir {
 public:
  PluginDir();
  ~PluginDir();
  const std::string& root() const { return root_; }
  std::string path(const std::string& file) const { return root_ + "/" + file; }
  // Drops a plugin the way docs/plugins.md recommends: copy beside, then rename into
  // place, so the host never sees a half-written file under its final name.
  void drop(const std::string& builtPlugin, const std::string& as) const;
  // Writes a file the same way.
  void write(const std::string& file, const std::string& text) const;

 private:
  std::string root_;
};

// The pluginsSection of a config: this directory, a quick rescan, `rest` after.
std::string pluginsSection(const PluginDir& dir, const std::string& rest);

// The file of a plugin this build made: builtIn("metrics") is .../metrics.so.
inline std::string builtIn(const std::string& name) { return std::string(STREAMRELAY_PLUGINS_DIR) + "/" + name + ".so"; }

// The value of the sample line "name{labels} value" of `series` in a
// Prometheus text page; -1 if the page has no such line.
double sampleValue(const std::string& page, const std::string& series);

// The relay's /stats, served by the built-in metrics plugin: put section()
// in the relay's config (its plugins section, the same in every reload),
// then attach() once the relay runs. For tests that wait on counters rather
// than on log lines (a listener's, a source's).
class RelayStats {
 public:
  // `inputs`: the metrics instance's inputs ("" with one source).
  explicit RelayStats(const std::string& inputs = "");
  std::string section() const;
  // The plugins directory section() names: drop another plugin the relay needs there (a source type's).
  const PluginDir& plugins() const { return dir_; }
  void attach(const RunningRelay& relay);
  Poco::JSON::Object::Ptr get() const;
  // The body of GET `path` ("/metrics", "/history") from the metrics plugin.
  std::string text(const std::string& path) const;
  // A number of listener `name`: "pending", "clients", "accepted",
  // "disconnects.removed"...; -1 if there is no such listener (or number).
  long listener(const std::string& name, const std::string& key) const;
  // The `streams[]` entry of stream `name` (null if there is none).
  Poco::JSON::Object::Ptr stream(const std::string& name = "upstream") const;
  // The `sources[]` entry of source `name` (null if there is none).
  Poco::JSON::Object::Ptr source(const std::string& name = "upstream") const;
  // A counter of the source ("connects", "protocol_errors", ...).
  std::uint64_t counter(const std::string& name, const std::string& source = "upstream") const;
  // A number ("upstream_seq") or a text ("upstream_epoch", "last_id") of the
  // source; 0 or "" while the source does not show it: for pollUntil.
  std::uint64_t sourceNumber(const std::string& key, const std::string& source = "upstream") const;
  std::string sourceText(const std::string& key, const std::string& source = "upstream") const;
  // `failures` of the source's endpoint at `index` (0: the primary).
  std::uint64_t endpointFailures(std::size_t index, const std::string& source = "upstream") const;

 private:
  PluginDir dir_;
  std::string inputs_;
  int port_ = 0;
};

// Checks `condition` until it holds or the deadline passes (NATS' checkFor):
// for state outside the process, such as a file another process writes.
bool pollUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 10s);

// The lines of a text file (empty if it does not exist).
std::vector<std::string> readLines(const std::string& path);

}  // namespace streamrelay::test
