// streamrelay: one upstream in, every frame out to every subscriber.
// main only wires parts together: read the config, build the relay, start it,
// wait for a termination signal, stop it in order.

#include <signal.h>

#include <cstring>
#include <iostream>
#include <string>

#include "config.hpp"
#include "logging.hpp"
#include "relay.hpp"

namespace {

const char* kUsage =
    "usage: streamrelay [--config FILE]      run the relay (default FILE: config/streamrelay.yaml)\n"
    "       streamrelay --check-config FILE  validate FILE, print the effective config, exit 0 or 1\n"
    "       streamrelay --list-keys          print every config key: kind, range, default, what it does\n"
    "       streamrelay --version | --help\n";

struct Options {
  std::string config = "config/streamrelay.yaml";
  bool checkOnly = false;
};

// Returns -1 to go on, or an exit code.
int parseArgs(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* name) -> bool {
      if (arg.rfind(std::string(name) + "=", 0) == 0) {
        options.config = arg.substr(std::strlen(name) + 1);
        return true;
      }
      if (arg != name) return false;
      if (i + 1 >= argc) throw std::invalid_argument(std::string(name) + " needs a FILE");
      options.config = argv[++i];
      return true;
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (arg == "--list-keys") {
      std::cout << streamrelay::configKeysReference();
      return 0;
    }
    if (arg == "--version") {
      std::cout << "streamrelay " << STREAMRELAY_VERSION << "\n";
      return 0;
    }
    if (value("--check-config")) options.checkOnly = true;
    else if (!value("--config")) throw std::invalid_argument("unknown argument '" + arg + "'");
  }
  return -1;
}

// Waits for SIGTERM, SIGINT or SIGQUIT (blocked in every thread, so they
// arrive here). SIGHUP makes the plugin host rescan its directory.
void waitForTermination(const sigset_t& signals, streamrelay::Relay& relay) {
  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig != SIGHUP) return;
    relay.rescanPlugins();
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  try {
    int code = parseArgs(argc, argv, options);
    if (code >= 0) return code;
  } catch (const std::invalid_argument& e) {
    std::cerr << "streamrelay: " << e.what() << "\n" << kUsage;
    return 2;
  }

  streamrelay::Config config;
  try {
    config = streamrelay::loadConfig(options.config);
  } catch (const std::exception& e) {  // ConfigError, or anything else reading the file: one line, exit 1
    std::cerr << "streamrelay: config error: " << streamrelay::oneLine(e.what()) << "\n";
    return 1;
  }
  if (options.checkOnly) {
    std::cout << streamrelay::effectiveConfigYaml(config);
    return 0;
  }

  // Before any thread starts, so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  for (int sig : {SIGTERM, SIGINT, SIGQUIT, SIGHUP}) sigaddset(&signals, sig);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // writes use MSG_NOSIGNAL too; this covers the rest

  streamrelay::configureLogging(config.logLevel);
  try {
    streamrelay::Relay relay(config);
    relay.start();
    waitForTermination(signals, relay);
    relay.stop();
  } catch (const std::exception& e) {
    std::cerr << "streamrelay: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
