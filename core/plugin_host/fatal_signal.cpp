// SPDX-License-Identifier: Apache-2.0
#include "fatal_signal.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace streamrelay {

namespace {

// The note of this thread: plain pointers (static TLS in the executable, so
// reading them in a handler is async-signal-safe).
thread_local const char* tlsNote = nullptr;
thread_local std::size_t tlsNoteSize = 0;

struct FatalSignal {
  int number;
  const char* name;
  struct sigaction previous;
};
FatalSignal fatalSignals[] = {{SIGSEGV, "SIGSEGV", {}}, {SIGBUS, "SIGBUS", {}},   {SIGFPE, "SIGFPE", {}},
                              {SIGILL, "SIGILL", {}},   {SIGABRT, "SIGABRT", {}}};

constexpr std::size_t kAltStackBytes = 256 * 1024;  // room for a sanitizer's handler after ours

// Appends `text` to the line at `used`, as much as fits.
void append(char* line, std::size_t capacity, std::size_t& used, const char* text, std::size_t size) {
  const std::size_t n = size < capacity - used ? size : capacity - used;
  std::memcpy(line + used, text, n);
  used += n;
}

// Async-signal-safe: memcpy, strlen, write, sigaction, raise.
void onFatalSignal(int number, siginfo_t* info, void*) {
  const int savedErrno = errno;
  FatalSignal* signal = nullptr;
  for (FatalSignal& s : fatalSignals)
    if (s.number == number) signal = &s;
  if (tlsNote && signal) {
    char line[1024];
    std::size_t used = 0;
    static const char kPrefix[] = "streamrelay: fatal signal ";
    append(line, sizeof line - 1, used, kPrefix, sizeof kPrefix - 1);
    append(line, sizeof line - 1, used, signal->name, std::strlen(signal->name));
    append(line, sizeof line - 1, used, " in ", 4);
    append(line, sizeof line - 1, used, tlsNote, tlsNoteSize);
    line[used++] = '\n';
    for (std::size_t written = 0; written < used;) {
      const ssize_t n = ::write(STDERR_FILENO, line + written, used - written);
      if (n <= 0 && errno != EINTR) break;
      if (n > 0) written += static_cast<std::size_t>(n);
    }
  }
  // The previous action (SIG_DFL, or a sanitizer's handler) takes the signal
  // again. A fault (si_code > 0, from the kernel) recurs by itself when the
  // instruction runs again, with its own address for the core dump or the
  // sanitizer; a signal that was sent (abort(), kill) is raised again: it is
  // blocked while this handler runs and arrives when it returns.
  if (signal) ::sigaction(number, &signal->previous, nullptr);
  else ::signal(number, SIG_DFL);
  errno = savedErrno;
  if (!info || info->si_code <= 0) ::raise(number);
}

}  // namespace

void installFatalSignalHandler() {
  struct sigaction action {};
  action.sa_sigaction = &onFatalSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  for (FatalSignal& s : fatalSignals) ::sigaction(s.number, &action, &s.previous);
}

namespace {
// Sets this thread's note so that a signal between two stores never sees a
// text with another note's size: the text is cleared first and set last.
void setNote(const char* text, std::size_t size) {
  tlsNote = nullptr;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  tlsNoteSize = size;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  tlsNote = text;
}
}  // namespace

FatalSignalNote::FatalSignalNote(const std::string& who) : previousText_(tlsNote), previousSize_(tlsNoteSize) {
  setNote(who.c_str(), who.size());
}

FatalSignalNote::~FatalSignalNote() { setNote(previousText_, previousSize_); }

AlternateSignalStack::AlternateSignalStack() : stack_(new char[kAltStackBytes]) {  // not touched: pages stay unmapped
  stack_t stack{};
  stack.ss_sp = stack_.get();
  stack.ss_size = kAltStackBytes;
  installed_ = ::sigaltstack(&stack, &previous_) == 0;
}

// Puts back the thread's previous alternate stack (or none): a sanitizer
// that gave the thread one frees it at the thread's end.
AlternateSignalStack::~AlternateSignalStack() {
  if (!installed_) return;
  if (previous_.ss_sp == nullptr) previous_.ss_flags = SS_DISABLE;
  ::sigaltstack(&previous_, nullptr);
}

}  // namespace streamrelay
