// SPDX-License-Identifier: Apache-2.0
// streamrelay: one upstream in, every frame out to every subscriber.
// main only wires parts together: read the config, build the relay, start it,
// wait for a termination signal, stop it in order.

#include <signal.h>

#include <Poco/Logger.h>
#include <unistd.h>

#include <limits.h>
#include <malloc.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "config.hpp"
#include "config_watcher.hpp"
#include "fatal_signal.hpp"
#include "logging.hpp"
#include "plugin_catalog.hpp"
#include "plugin_child.hpp"
#include "plugin_process.hpp"
#include "relay.hpp"

namespace {

// The exit code when a plugin instance did not stop within shutdown_timeout_ms.
constexpr int kExitPluginStuck = 3;

const char* kUsage =
    "usage: streamrelay [--config FILE] [--pid-file PIDFILE]\n"
    "                                        run the relay (default FILE: " STREAMRELAY_DEFAULT_CONFIG "); SIGHUP\n"
    "                                        reloads FILE and rescans the plugins directory\n"
    "       streamrelay --reload PIDFILE     make the relay whose pid PIDFILE holds reload its config\n"
    "       streamrelay --check-config FILE  validate FILE, print the effective config, exit 0 or 1\n"
    "       streamrelay --list-keys [--format text|markdown] [--config FILE]\n"
    "                                        print every config key: kind, range, default, what it does\n"
    "                                        (text: with the keys of the plugins in FILE's plugins directory;\n"
    "                                        markdown: the relay's keys, the tables of docs/configuration.md)\n"
    "       streamrelay --version | --help\n"
    "exit codes: 0 stopped cleanly, 1 config or start-up error, 2 bad arguments,\n"
    "            3 a plugin instance did not stop within shutdown_timeout_ms\n";

struct Options {
  // A system install reads /etc/streamrelay/streamrelay.yaml, a source tree's
  // build config/streamrelay.yaml (CMake's STREAMRELAY_DEFAULT_CONFIG).
  std::string config = STREAMRELAY_DEFAULT_CONFIG;
  bool configGiven = false;  // --config or --check-config named the file
  bool checkOnly = false;
  std::string pidFile;       // written once the relay runs, removed when it stops
  std::string reloadPidFile; // --reload: signal that relay and exit
  bool listKeys = false;     // --list-keys: print the key reference and exit
  std::string format;        // --format: how --list-keys prints (text, markdown)
};

// Returns -1 to go on, or an exit code.
int parseArgs(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* name, std::string& out, const char* what = "a FILE") -> bool {
      if (arg.rfind(std::string(name) + "=", 0) == 0) {
        out = arg.substr(std::strlen(name) + 1);
        return true;
      }
      if (arg != name) return false;
      if (i + 1 >= argc) throw std::invalid_argument(std::string(name) + " needs " + what);
      out = argv[++i];
      return true;
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (arg == "--list-keys") {
      options.listKeys = true;
      continue;
    }
    if (arg == "--version") {
      std::cout << "streamrelay " << STREAMRELAY_VERSION << "\n";
      return 0;
    }
    if (value("--check-config", options.config)) options.checkOnly = options.configGiven = true;
    else if (value("--config", options.config)) options.configGiven = true;
    else if (!value("--pid-file", options.pidFile) && !value("--reload", options.reloadPidFile) &&
             !value("--format", options.format, "text or markdown"))
      throw std::invalid_argument("unknown argument '" + arg + "'");
  }
  if (!options.format.empty() && !options.listKeys) throw std::invalid_argument("--format goes with --list-keys");
  if (options.listKeys && !options.format.empty() && options.format != "text" && options.format != "markdown")
    throw std::invalid_argument("--format: '" + options.format + "' is not one of: text, markdown");
  return -1;
}

// The one line for a config file that is not there: where it was looked for
// (a relative path resolved against the working directory), and, for the
// default, how to name another.
std::string missingConfig(const Options& options) {
  std::string where = options.config;
  char cwd[PATH_MAX];
  if (!where.empty() && where[0] != '/' && ::getcwd(cwd, sizeof cwd)) where = std::string(cwd) + "/" + where;
  return "no config file at " + where + (options.configGiven ? "" : " (the default; --config FILE reads another)");
}

// The plugins of the config's directory, read without running them; a note
// on stderr for each file that could not be read.
streamrelay::PluginCatalog readPluginCatalog(const streamrelay::Config& config) {
  streamrelay::PluginCatalog catalog =
      streamrelay::PluginCatalog::read(config.plugins.directory, config.plugins.allowInsecure);
  for (const std::string& note : catalog.notes()) std::cerr << "streamrelay: note: " << note << "\n";
  return catalog;
}

// --list-keys: the relay's keys, and (as text) those of the plugins in the
// plugins directory of the config file, if there is one that reads. Markdown
// is the registry's alone: docs/configuration.md, the same on every machine.
int listKeys(const Options& options) {
  if (options.format == "markdown") {
    std::cout << streamrelay::configKeysMarkdown();
    return 0;
  }
  streamrelay::PluginCatalog catalog;
  if (::access(options.config.c_str(), F_OK) != 0) {
    if (options.configGiven) std::cerr << "streamrelay: note: plugin keys not listed: " << missingConfig(options) << "\n";
  } else {
    try {
      catalog = readPluginCatalog(streamrelay::loadConfig(options.config));
    } catch (const std::exception& e) {
      std::cerr << "streamrelay: note: plugin keys not listed: " << streamrelay::oneLine(e.what()) << "\n";
    }
  }
  std::cout << streamrelay::configKeysReference(catalog.schemas(), catalog.sourceSchemas());
  return 0;
}

// --check-config: the config, checked with its plugins' declared keys too, printed.
int checkConfig(const streamrelay::Config& config) {
  try {
    const streamrelay::PluginCatalog catalog = readPluginCatalog(config);
    streamrelay::checkPluginConfigs(config, catalog.schemas());
    std::cout << streamrelay::effectiveConfigYaml(config, catalog.schemas());
  } catch (const std::exception& e) {
    std::cerr << "streamrelay: config error: " << streamrelay::oneLine(e.what()) << "\n";
    return 1;
  }
  return 0;
}

// Waits for SIGTERM, SIGINT or SIGQUIT (blocked in every thread, so they
// arrive here). SIGHUP reloads the config file (a file that does not load
// changes nothing) and rescans the plugins directory.
void waitForTermination(const sigset_t& signals, streamrelay::Relay& relay, const std::string& configPath) {
  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig != SIGHUP) return;
    try {
      relay.reload(streamrelay::loadConfig(configPath));
    } catch (const std::exception& e) {
      Poco::Logger::get("streamrelay").error("config reload: %s; the running config stays",
                                             streamrelay::oneLine(e.what()));
    }
    relay.rescanPlugins();
  }
}

// --reload PIDFILE: SIGHUP to the relay that wrote it. Returns the exit code.
int signalReload(const std::string& pidFile) {
  std::ifstream in(pidFile);
  long pid = 0;
  if (!(in >> pid) || pid <= 1) {
    std::cerr << "streamrelay: --reload: no pid in " << pidFile << "\n";
    return 1;
  }
  if (::kill(static_cast<pid_t>(pid), SIGHUP) != 0) {
    std::cerr << "streamrelay: --reload: cannot signal pid " << pid << ": " << std::strerror(errno) << "\n";
    return 1;
  }
  std::cout << "streamrelay: reload requested from pid " << pid << "\n";
  return 0;
}

// Every upstream read becomes a batch of up to a few hundred KiB, allocated
// by the source's thread and freed by whichever consumer lets go of it last.
// With glibc's defaults such a block is either mmap'ed afresh or, once
// freed, trimmed off its arena's top: either way the next batch lands on
// pages the kernel must fault in and zero, which took 60% of the relay's CPU
// feeding 4 KiB frames to a sink (perf: clear_page). Fixed thresholds keep
// freed batch memory in the heap for the next read: blocks of 4 MiB and more
// are still mmap'ed, and an arena returns its top once 64 MiB of it are free.
// Where the allocator is not glibc's (a sanitizer build's) mallopt refuses:
// the allocator's own policy stays, which costs speed only, so nothing is said.
void keepBatchMemoryInTheHeap() {
  constexpr int kMmapThreshold = 4 << 20;
  constexpr int kTrimThreshold = 64 << 20;
  ::mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
  ::mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
}

}  // namespace

int main(int argc, char** argv) {
  // The child process of an isolated plugin instance (never started by hand).
  if (argc > 1 && std::strcmp(argv[1], streamrelay::kPluginChildFlag) == 0) streamrelay::runPluginChild(argc, argv);
  Options options;
  try {
    int code = parseArgs(argc, argv, options);
    if (code >= 0) return code;
    if (options.listKeys) return listKeys(options);
    if (!options.reloadPidFile.empty()) return signalReload(options.reloadPidFile);
  } catch (const std::invalid_argument& e) {
    std::cerr << "streamrelay: " << e.what() << "\n" << kUsage;
    return 2;
  }

  streamrelay::Config config;
  // Taken before the file is read: a change made from now on is a change to watch for.
  const streamrelay::ConfigWatcher::Version readVersion = streamrelay::ConfigWatcher::look(options.config);
  if (::access(options.config.c_str(), F_OK) != 0 && errno == ENOENT) {
    std::cerr << "streamrelay: config error: " << missingConfig(options) << "\n";
    return 1;
  }
  try {
    config = streamrelay::loadConfig(options.config);
  } catch (const std::exception& e) {  // ConfigError, or anything else reading the file: one line, exit 1
    std::cerr << "streamrelay: config error: " << streamrelay::oneLine(e.what()) << "\n";
    return 1;
  }
  if (options.checkOnly) return checkConfig(config);

  // Before any thread starts, so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  for (int sig : {SIGTERM, SIGINT, SIGQUIT, SIGHUP}) sigaddset(&signals, sig);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // writes use MSG_NOSIGNAL too; this covers the rest
  keepBatchMemoryInTheHeap();  // before any thread, so every arena gets it
  streamrelay::installFatalSignalHandler();  // a crash in a plugin names it

  streamrelay::configureLogging(config.logLevel);
  try {
    streamrelay::Relay relay(config);
    relay.start();
    if (!options.pidFile.empty()) std::ofstream(options.pidFile) << ::getpid() << "\n";
    // watch_config: a changed file is reloaded as a SIGHUP is, on this thread.
    std::unique_ptr<streamrelay::ConfigWatcher> watcher;
    if (config.watchConfig) {
      watcher = std::make_unique<streamrelay::ConfigWatcher>(options.config, readVersion,
                                                             [] { ::kill(::getpid(), SIGHUP); });
      watcher->start();
    }
    waitForTermination(signals, relay, options.config);
    if (watcher) watcher->stop();
    const std::vector<std::string> stuck = relay.stop();
    if (!options.pidFile.empty()) std::remove(options.pidFile.c_str());
    if (!stuck.empty()) {
      // Their threads may still call into the relay: end the process now,
      // without destroying it (nor running static destructors under them).
      std::string names;
      for (const std::string& name : stuck) names += (names.empty() ? "" : "; ") + name;
      Poco::Logger::get("streamrelay").error("exiting with code %d: plugin instance(s) still running: %s",
                                             kExitPluginStuck, names);
      std::_Exit(kExitPluginStuck);
    }
  } catch (const std::exception& e) {
    std::cerr << "streamrelay: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
