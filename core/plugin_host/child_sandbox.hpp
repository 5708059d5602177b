// SPDX-License-Identifier: Apache-2.0
#pragma once
// The confinement of an isolated plugin instance's child process, applied by
// the child to itself before it loads the plugin: it dies with the relay, it
// can gain no privileges, its heap is capped, and (process.seccomp) its
// system calls are limited to an allow-list: what the built-in plugins need
// (files for SQLite, sockets for Redis, NATS and the metrics server, threads,
// memory, time) and nothing that starts programs, traces processes, changes
// the system or signals other processes. The list and its reasons are in
// docs/plugin-isolation.md and in child_sandbox.cpp.
//
// A system call outside the list stops the child: the filter raises SIGSYS,
// whose handler writes one line naming the call to stderr (which the relay
// logs) and dies of it, so the relay restarts the child as after any crash.
//
// Called on the child's main thread, before any other thread starts.

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace streamrelay {

// PR_SET_PDEATHSIG: SIGKILL when the relay's thread that started this child
// ends. Returns false if the relay is already gone (`relay` is no longer
// the parent).
bool dieWithRelay(pid_t relay);
// PR_SET_NO_NEW_PRIVS: no set-user-ID program or file capability can raise
// this process's privileges (and a seccomp filter may be installed
// without CAP_SYS_ADMIN). "" or what failed.
std::string forbidNewPrivileges();
// RLIMIT_DATA (soft and hard) at `bytes`: an allocation beyond it fails in the
// child. Not applied under sanitizers (their shadow memory counts as data).
std::string limitHeap(std::uint64_t bytes);
// Installs the allow-list. "" or what failed.
std::string installSeccompFilter();

}  // namespace streamrelay
