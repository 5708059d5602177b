// SPDX-License-Identifier: Apache-2.0
#pragma once
// Naming the plugin that crashed the relay. Plugins run in the relay's
// process: a fatal signal in one (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT)
// ends the relay. Before it does, the handler writes one line to stderr naming
// the plugin instance and file the crashing thread was running, e.g.
//   streamrelay: fatal signal SIGSEGV in plugin instance db (type sqlite_writer, file /srv/plugins.d/sqlite_writer.so)
// then restores the signal's previous action (the default, or a sanitizer's)
// and lets the fault happen again (or raises a signal that was sent, such as
// abort()'s), so the exit status and the core dump stay those of the signal.
//
// Async-signal-safe: the handler reads a thread-local pointer to a line
// formatted beforehand, copies it into a buffer on its stack and write(2)s it.

#include <signal.h>

#include <cstddef>
#include <memory>
#include <string>

namespace streamrelay {

// Installs the handler for the fatal signals. Call once, from main, before
// any plugin runs.
void installFatalSignalHandler();

// While it lives, a fatal signal on this thread names `who` (e.g. "plugin
// instance db (type sqlite_writer, file ...)"). Nests: the previous note
// comes back when it ends. `who` must outlive the note. Not copyable; used on
// one thread.
class FatalSignalNote {
 public:
  explicit FatalSignalNote(const std::string& who);
  ~FatalSignalNote();
  FatalSignalNote(const FatalSignalNote&) = delete;
  FatalSignalNote& operator=(const FatalSignalNote&) = delete;

 private:
  const char* previousText_;
  std::size_t previousSize_;
};

// An alternate signal stack for the calling thread while it lives, so that
// the handler also runs (and names the plugin) when a plugin overflows its
// stack. A plugin worker holds one for its whole life. Not copyable.
class AlternateSignalStack {
 public:
  AlternateSignalStack();
  ~AlternateSignalStack();
  AlternateSignalStack(const AlternateSignalStack&) = delete;
  AlternateSignalStack& operator=(const AlternateSignalStack&) = delete;

 private:
  std::unique_ptr<char[]> stack_;
  stack_t previous_{};
  bool installed_ = false;
};

}  // namespace streamrelay
