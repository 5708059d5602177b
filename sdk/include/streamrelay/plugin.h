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
 * - Threads: create is called on the host's plugin thread; on_frame,
 *   on_frames, flush and destroy on the instance's worker thread, never
 *   concurrently for one instance. The host API may be called from any thread
 *   (retain only during on_frame or on_frames, as it says).
 * - The host API table passed to create, and every function in it, stay valid
 *   until destroy returns for that instance; keep the pointer, not a copy.
 * - Errors: every `error` buffer the host passes holds at least
 *   STREAMRELAY_MIN_ERROR_SIZE bytes; write one line, NUL terminated.
 * - Failures "in a row": a failed on_frame or flush adds one (a failed
 *   on_frames call one per failed frame); a frame handled resets the run to
 *   zero. After max_failures in a row the instance is disabled. A failed
 *   final flush (before destroy) is logged, not counted.
 * - config_yaml is the instance's `config:` sub-tree re-emitted by the host as
 *   flow-style YAML: comments are gone and quoting may differ from the file;
 *   values and types are kept.
 * - A plugin that calls a function added after 1.0 checks first that the
 *   host has it: host->supports(host->host, offsetof(streamrelay_host_api, f)),
 *   after checking that struct_size covers `supports` itself (plugin.hpp does
 *   both). A 1.2 host answers for each function on its own.
 * - ABI 1.2 adds, all optional: a batch of frames per call (on_frames),
 *   counter and gauge handles, retain/release of a frame's bytes, keyed emits
 *   and each frame's key, the relay's file trust rule, and a table of the
 *   plugin's config keys that the host validates, prints and lists without
 *   creating an instance.
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

/* The longest key emit_keyed accepts (ABI 1.2). */
#define STREAMRELAY_MAX_KEY_SIZE 256

/* Kinds of streamrelay_config_key.kind (ABI 1.2): what the value must be. */
#define STREAMRELAY_KEY_STRING 1  /* a single value (a number or true is read as its text) */
#define STREAMRELAY_KEY_INT 2     /* an integer in [min, max] */
#define STREAMRELAY_KEY_NUMBER 3  /* a number in [min, max] */
#define STREAMRELAY_KEY_BOOL 4    /* true or false (yes/no, on/off) */
#define STREAMRELAY_KEY_STRINGS 5 /* a list of single values */
#define STREAMRELAY_KEY_MAP 6     /* a mapping of names to single values (headers) */
#define STREAMRELAY_KEY_GROUP 7   /* a mapping whose keys are declared as "GROUP.KEY" entries */

/* Bits of streamrelay_config_key.flags (ABI 1.2). */
#define STREAMRELAY_KEY_REQUIRED 1u /* an error when absent */
#define STREAMRELAY_KEY_SECRET 2u   /* a password or token: printed as (set), never echoed in an error */
#define STREAMRELAY_KEY_URL 4u      /* a URL (or a list of them) whose userinfo may hold a secret: printed without it */
#define STREAMRELAY_KEY_ENV 8u      /* ${NAME} expands from the environment (unset: an error) */

/* Log levels for streamrelay_host_api.log (syslog numbers, as POCO's). */
#define STREAMRELAY_LOG_ERROR 3
#define STREAMRELAY_LOG_WARNING 4
#define STREAMRELAY_LOG_INFO 6
#define STREAMRELAY_LOG_DEBUG 7

/* One frame, borrowed for the duration of on_frame (its key too: retain
 * keeps it with the bytes). */
typedef struct streamrelay_frame {
  uint32_t struct_size;
  const uint8_t* data;
  size_t size;
  uint64_t seq;              /* the relay's sequence number, from 1, gapless upstream */
  int64_t received_unix_ns;  /* when the relay read it */
  /* ABI 1.1 (check struct_size before reading; plugin.hpp does): */
  const char* stream;        /* the stream's name ("upstream" for the relay's upstream) */
  uint64_t epoch;            /* random id of this relay run: seq values of two epochs are unrelated */
  /* ABI 1.2 (check struct_size before reading; plugin.hpp does): */
  const char* key;           /* the frame's key, key_size bytes, not NUL terminated; NULL: none */
  size_t key_size;           /* 0 when key is NULL */
} streamrelay_frame;

/* The i-th frame of an on_frames call (ABI 1.2): the array is spaced by the
 * host's struct_size, not by the plugin's sizeof(streamrelay_frame), so that
 * a plugin runs on a host whose frame struct is longer or shorter. */
#define STREAMRELAY_FRAME_AT(frames, i) \
  ((const streamrelay_frame*)((const char*)(frames) + (size_t)(i) * (frames)->struct_size))

/* Opaque handles of the host (ABI 1.2). */
typedef struct streamrelay_counter streamrelay_counter;
typedef struct streamrelay_gauge streamrelay_gauge;
typedef struct streamrelay_retained streamrelay_retained;

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
  /* ABI 1.2. The counter (or gauge) of this instance with this name, looked up
   * once: counter_add and gauge_set then take no lock and look nothing up. The
   * handle stays valid until destroy returns; NULL only if name is NULL. Adds
   * and sets through a handle and through add_counter/set_gauge by the same
   * name reach the same figure. Any thread. */
  streamrelay_counter* (*counter)(void* host, const char* name);
  void (*counter_add)(void* host, streamrelay_counter* counter, uint64_t delta);
  streamrelay_gauge* (*gauge)(void* host, const char* name);
  void (*gauge_set)(void* host, streamrelay_gauge* gauge, double value);
  /* ABI 1.2. Keeps the bytes of `frame` (frame->data, frame->stream,
   * frame->key) valid after the call that handed it over, without a copy,
   * until release.
   * Call it only during on_frame or on_frames, on the worker thread, with a
   * frame of that call; NULL for any other pointer. release may come from any
   * thread (a sink's acknowledgement thread), once per retain. What a plugin
   * retains is memory the relay cannot free: release what the server
   * acknowledged, and everything before destroy returns. */
  streamrelay_retained* (*retain)(void* host, const streamrelay_frame* frame);
  void (*release)(void* host, streamrelay_retained* retained);
  /* ABI 1.2. emit, with the frame's key (key_size bytes, at most
   * STREAMRELAY_MAX_KEY_SIZE; key_size 0: no key): what subscribers will select
   * frames by. STREAMRELAY_ERROR as emit, or if the key is too long. */
  int (*emit_keyed)(void* host, const uint8_t* data, size_t size, const char* key, size_t key_size);
  /* ABI 1.2. STREAMRELAY_OK if the relay's rule lets it trust the file at
   * `path` as code or credentials: not writable by group or others, owned by
   * the relay's user or root (plugins.allow_insecure overrides). Otherwise
   * STREAMRELAY_ERROR with one line saying why in error. For a plugin that
   * reads code (a script) or credentials from a file its config names. */
  int (*check_file_trust)(void* host, const char* path, char* error, size_t error_size);
} streamrelay_host_api;

/* One key of a plugin's config (ABI 1.2), for the host to validate it, print
 * it (--check-config; secrets as "(set)") and list it (--list-keys) without
 * creating an instance. Every entry of a table has the same struct_size; the
 * table ends with an entry whose name is NULL. Every string is static. */
typedef struct streamrelay_config_key {
  uint32_t struct_size;
  uint32_t kind;              /* STREAMRELAY_KEY_STRING ... */
  uint32_t flags;             /* STREAMRELAY_KEY_REQUIRED | ... */
  const char* name;           /* "batch_frames"; inside a group: "tls.ca_file" (the group declared before) */
  const char* default_value;  /* as YAML would write it ("1000", "xadd"), or NULL: none */
  double min, max;            /* INT, NUMBER: the accepted range (exact for integers up to 2^53) */
  const char* choices;        /* STRING: the accepted values, separated by '|' ("xadd|publish"), or NULL: any */
  const char* help;           /* one line for --list-keys, or NULL */
} streamrelay_config_key;

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
  /* ABI 1.2 (optional, may be NULL): handles `count` frames (count >= 1), in
   * order, borrowed for the duration of the call as on_frame's. The frames
   * are spaced by their struct_size, which may differ from the plugin's
   * sizeof(streamrelay_frame): step with STREAMRELAY_FRAME_AT. The host calls
   * it instead of on_frame when present. A call's frames may come from several
   * streams. Before the call the host sets *handled to count. On
   * STREAMRELAY_ERROR the plugin sets *handled to the index of the frame that
   * failed: the frames before it are handled, that one counts as one failure,
   * and the host calls again with the frames after it. Left at count, the
   * call failed as a whole: one failure, and no frame of it is handed again. */
  int (*on_frames)(void* self, const streamrelay_frame* frames, size_t count, size_t* handled, char* error,
                   size_t error_size);
  /* ABI 1.2 (optional, may be NULL): the plugin's config keys (see
   * streamrelay_config_key). With a table, the host rejects a config that
   * breaks it in --check-config, prints its secrets as "(set)" by the table,
   * and lists the keys in --list-keys; the plugin still validates its own
   * config in create (rules the table cannot state). */
  const streamrelay_config_key* config_keys;
} streamrelay_plugin;

typedef const streamrelay_plugin* (*streamrelay_plugin_entry_fn)(void);

/* The entry function every plugin defines (plugin.hpp's STREAMRELAY_EXPORT_PLUGIN does). */
STREAMRELAY_PLUGIN_EXPORT const streamrelay_plugin* streamrelay_plugin_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* STREAMRELAY_PLUGIN_H */
