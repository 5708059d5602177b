// SPDX-License-Identifier: Apache-2.0
/*
 * streamrelay plugin ABI (C). A plugin is a shared library that exports one
 * function, STREAMRELAY_PLUGIN_ENTRY_SYMBOL, returning a descriptor. The relay
 * loads every .so in its plugins directory, creates the instances its config
 * asks for, and feeds each instance every frame on a worker thread of its own.
 *
 * Rules (as sqlite3ext.h, OBS modules and Redis modules keep them):
 * - C only across this boundary: no C++ types, no exceptions. A C++ plugin
 *   uses plugin.hpp, which catches everything at the boundary.
 * - Every struct starts with struct_size. The host reads a field only if
 *   struct_size covers it, so a plugin built against an older minor version
 *   still loads. A different major version is refused with one log line.
 * - Append-only: new fields and callbacks go at the end. A changed meaning
 *   gets a new name (on_frame2), never a new signature for the old one.
 * - Borrowing: frame bytes and every string the host passes are valid for the
 *   duration of the call only; copy what you keep. Whoever creates frees:
 *   create/destroy come in pairs.
 * - Threads: create is called on the host's plugin thread; on_frame, flush
 *   and destroy on the instance's worker thread, never concurrently for one
 *   instance. The host API may be called from any thread.
 * - The host API table passed to create, and every function in it, stay valid
 *   until destroy returns for that instance; keep the pointer, not a copy.
 * - Errors: every `error` buffer the host passes holds at least
 *   STREAMRELAY_MIN_ERROR_SIZE bytes; write one line, NUL terminated.
 * - Failures "in a row": a failed on_frame or flush adds one; a successful
 *   on_frame resets the run to zero. After max_failures in a row the instance
 *   is disabled. A failed final flush (before destroy) is logged, not counted.
 * - config_yaml is the instance's `config:` sub-tree re-emitted by the host as
 *   flow-style YAML: comments are gone and quoting may differ from the file;
 *   values and types are kept.
 * - A 1.1 plugin that calls a function added in 1.1 checks first that the
 *   host has it: host->supports(host->host, offsetof(streamrelay_host_api, f)),
 *   after checking that struct_size covers `supports` itself (plugin.hpp does
 *   both).
 */
#ifndef STREAMRELAY_PLUGIN_H
#define STREAMRELAY_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define STREAMRELAY_ABI_MAJOR 1
#define STREAMRELAY_ABI_MINOR 2
#define STREAMRELAY_ABI_VERSION ((STREAMRELAY_ABI_MAJOR << 16) | STREAMRELAY_ABI_MINOR)
#define STREAMRELAY_ABI_MAJOR_OF(version) ((uint32_t)(version) >> 16)

/* The one symbol a plugin exports. */
#define STREAMRELAY_PLUGIN_ENTRY_SYMBOL "streamrelay_plugin_entry"

/* Declares the entry function with C linkage and default visibility, so it is
 * exported even when the plugin is built with -fvisibility=hidden:
 *   STREAMRELAY_PLUGIN_EXPORT const streamrelay_plugin* streamrelay_plugin_entry(void) { ... } */
#ifdef __cplusplus
#define STREAMRELAY_PLUGIN_EXPORT extern "C" __attribute__((visibility("default")))
#else
#define STREAMRELAY_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

/* The smallest `error` buffer the host ever passes. */
#define STREAMRELAY_MIN_ERROR_SIZE 256

/* Return codes of on_frame and flush. */
#define STREAMRELAY_OK 0
#define STREAMRELAY_ERROR 1

/* Bits of streamrelay_plugin.flags (ABI 1.2). */
/* The plugin reads no frames (it reports, serves or emits on its own, as the
 * metrics plugin does): its instances subscribe to no stream, need no
 * `inputs` (given ones are ignored) and on_frame is never called. */
#define STREAMRELAY_PLUGIN_NO_INPUTS 1u

/* Log levels for streamrelay_host_api.log (syslog numbers, as POCO's). */
#define STREAMRELAY_LOG_ERROR 3
#define STREAMRELAY_LOG_WARNING 4
#define STREAMRELAY_LOG_INFO 6
#define STREAMRELAY_LOG_DEBUG 7

/* One frame, borrowed for the duration of on_frame. */
typedef struct streamrelay_frame {
  uint32_t struct_size;
  const uint8_t* data;
  size_t size;
  uint64_t seq;              /* the relay's sequence number, from 1, gapless upstream */
  int64_t received_unix_ns;  /* when the relay read it */
  /* ABI 1.1 (check struct_size before reading; plugin.hpp does): */
  const char* stream;        /* the stream's name ("upstream" for the relay's upstream) */
  uint64_t epoch;            /* random id of this relay run: seq values of two epochs are unrelated */
} streamrelay_frame;

/* What the host offers a plugin instance. Functions take the `host` field. */
typedef struct streamrelay_host_api {
  uint32_t struct_size;
  uint32_t abi_version;
  void* host; /* opaque, pass it back */
  /* One log line, prefixed with the instance name. Line breaks and other
   * control characters in message are escaped (\n), so it stays one line. */
  void (*log)(void* host, int level, const char* message);
  /* Adds to a counter of this instance, published in the relay's stats.
   * Counters belong to the instance name: a hot replace carries them on. */
  void (*add_counter)(void* host, const char* name, uint64_t delta);
  /* Writes the relay's stats as JSON (schema in docs/operations.md) into buffer, NUL
   * terminated if it fits; returns the length needed without the NUL. */
  size_t (*stats_json)(void* host, char* buffer, size_t capacity);
  /* The instance's name from the config (valid while the instance lives). */
  const char* (*instance_name)(void* host);
  /* Non-zero once the instance is being stopped (relay shutdown, plugin
   * replaced or removed): a plugin retrying something should give up. */
  int (*stopping)(void* host);
  /* ABI 1.1. Sets a gauge of this instance (a value that goes up and down),
   * published in the relay's stats beside the counters. */
  void (*set_gauge)(void* host, const char* name, double value);
  /* ABI 1.1. Non-zero if the host implements the host API function at this
   * offset (offsetof(streamrelay_host_api, name)). */
  int (*supports)(void* host, size_t offset);
  /* ABI 1.1. Publishes one frame on this instance's own stream (named after
   * the instance), to every listener and instance whose inputs name it. The
   * bytes are copied before it returns. Frames emitted during one drain of the
   * instance's queue are published together after it (one publish per
   * batch), so call it from on_frame or flush; it may then block while a
   * consumer of that stream with on_full: block is behind. STREAMRELAY_ERROR
   * if the instance has no stream (it was configured in a sidecar file, not
   * in plugins.instances) or size is over 1 GiB. */
  int (*emit)(void* host, const uint8_t* data, size_t size);
} streamrelay_host_api;

typedef struct streamrelay_plugin {
  uint32_t struct_size;
  uint32_t abi_version;      /* STREAMRELAY_ABI_VERSION the plugin was built with */
  const char* name;          /* the plugin type, as `type:` in the config */
  const char* description;
  /* Creates an instance. config_yaml is the instance's `config:` sub-tree as
   * YAML text ("{}" if none); the plugin validates its own keys. On failure
   * returns NULL with a one-line reason in error (error_size bytes). */
  void* (*create)(const streamrelay_host_api* host, const char* config_yaml, char* error, size_t error_size);
  /* Handles one frame. STREAMRELAY_ERROR with a reason in error counts as a
   * failure; after max_failures in a row the instance is disabled. */
  int (*on_frame)(void* self, const streamrelay_frame* frame, char* error, size_t error_size);
  void (*destroy)(void* self);
  /* Optional (may be NULL; absent if struct_size stops before it): called
   * when the instance's queue has been drained (after a burst of frames),
   * about every 100 ms while the queue is empty (once frames have come), and
   * before destroy: e.g. to commit a transaction when its time has come. */
  int (*flush)(void* self, char* error, size_t error_size);
  /* ABI 1.2 (optional; 0 if struct_size stops before it): STREAMRELAY_PLUGIN_* bits. */
  uint32_t flags;
} streamrelay_plugin;

typedef const streamrelay_plugin* (*streamrelay_plugin_entry_fn)(void);

/* The entry function every plugin defines (plugin.hpp's STREAMRELAY_EXPORT_PLUGIN does). */
STREAMRELAY_PLUGIN_EXPORT const streamrelay_plugin* streamrelay_plugin_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* STREAMRELAY_PLUGIN_H */
