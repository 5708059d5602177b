// SPDX-License-Identifier: Apache-2.0
/*
 * streamrelay source plugin ABI (C): a source type provided by a plugin
 * library, used as `sources.NAME.type: TYPE` like the relay's own types.
 * The relay core links no client library of a broker (NATS, ...): a plugin
 * library does, and offers the type through this second, optional entry
 * symbol, STREAMRELAY_SOURCE_ENTRY_SYMBOL, beside streamrelay_plugin_entry
 * (plugin.h; a library that provides a source type is a plugin library, and
 * exports that one too).
 *
 * The rules of plugin.h hold: C only, every struct starts with struct_size
 * and the reader reads a field only if struct_size covers it, append-only,
 * a different major ABI version is refused, borrowed strings are valid for
 * the call only, errors are one line in a buffer of at least
 * STREAMRELAY_MIN_ERROR_SIZE bytes.
 *
 * How the relay runs a source of such a type:
 * - The config is checked by the descriptor's config_keys table (the same
 *   streamrelay_config_key table as a plugin's; `type` and nothing else is
 *   added by the relay): a key not in it is a one-line config error naming
 *   the key and its line. The source's mapping without `type` is handed to
 *   create as YAML text; create validates what the table cannot say.
 * - create is called once, before the source runs (at start: a NULL result
 *   is a start-up error with its reason; on a reload: the source is not
 *   started, the reason logged). It must not block on the network: connect
 *   in the background or in pump.
 * - pump is called again and again by the source's own thread (the one
 *   thread that publishes on the stream): it waits up to timeout_ms for
 *   messages and hands each to the host with publish or publish_mirrored,
 *   from inside the call. Frames published in one pump call are published
 *   to the stream together when it returns. A pump returning
 *   STREAMRELAY_ERROR is logged (its reason) and called again after a pause;
 *   it is no reason to stop. The relay stops calling pump once the source
 *   is stopped, then calls destroy on that same thread.
 * - set_connected, add_counter, log and stopping may be called from any
 *   thread (a client library's callback threads), until destroy returns.
 *   publish, publish_mirrored and provider_position only from inside create
 *   (provider_position) or pump (all three).
 */
#ifndef STREAMRELAY_SOURCE_PLUGIN_H
#define STREAMRELAY_SOURCE_PLUGIN_H

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The optional second entry symbol of a plugin library. */
#define STREAMRELAY_SOURCE_ENTRY_SYMBOL "streamrelay_source_entry"

/* What publish_mirrored answers. */
#define STREAMRELAY_MIRROR_PUBLISHED 0 /* taken, in the writer's (epoch, seq) */
#define STREAMRELAY_MIRROR_REPEAT 1    /* a seq the stream has had already, or a refused mark: dropped */

/* What the host offers one source. Functions take the `host` field. */
typedef struct streamrelay_source_host_api {
  uint32_t struct_size;
  uint32_t abi_version;
  void* host; /* opaque, pass it back */
  /* One log line (STREAMRELAY_LOG_*), prefixed with the source's name. */
  void (*log)(void* host, int level, const char* message);
  /* Non-zero once the source is being stopped: give up what is retried. */
  int (*stopping)(void* host);
  /* A frame numbered by the relay (the stream's next seq). key: key_size
   * bytes (0: none; at most STREAMRELAY_MAX_KEY_SIZE, longer is dropped).
   * position: where the provider stands after this frame (position_size
   * bytes, 0: unchanged), what a stream's log keeps and a restarted relay
   * gives back through provider_position. Bytes are copied. */
  int (*publish)(void* host, const uint8_t* data, size_t size, const char* key, size_t key_size,
                 const char* position, size_t position_size);
  /* A frame that keeps its writer's numbering (another relay wrote it, with
   * its epoch and seq; both non-zero): the stream mirrors it. A seq at or
   * below the stream's last in the same epoch is a repeat, dropped
   * (STREAMRELAY_MIRROR_REPEAT); a jump is a gap, counted and logged by the
   * host; another epoch is a new epoch, counted. Marks are bounded: a seq
   * far ahead waits for the writer's next seq, epoch changes are rate
   * limited; what does not pass is dropped and counted (refused). A frame
   * waiting (reorder window, a far seq) answers STREAMRELAY_MIRROR_PUBLISHED. */
  int (*publish_mirrored)(void* host, uint64_t epoch, uint64_t seq, const uint8_t* data, size_t size,
                          const char* key, size_t key_size, const char* position, size_t position_size);
  /* Whether a connection to the provider is up now, for /stats (and each
   * change from 0 to 1 counts one connect). Any thread. */
  void (*set_connected)(void* host, int connected);
  /* The provider position a stream's log kept with its last frame (the
   * restarted relay goes on after it), NUL terminated in buffer if it fits;
   * returns its length without the NUL (0: none kept, start as configured). */
  size_t (*provider_position)(void* host, char* buffer, size_t capacity);
  /* Adds to one of the source's counters (/stats: the source's "plugin"
   * object). Any thread. */
  void (*add_counter)(void* host, const char* name, uint64_t delta);
  /* Counts a protocol error (something the provider sent that does not
   * read), shown as the source's protocol_errors. Any thread. */
  void (*protocol_error)(void* host);
  /* How long frames of publish_mirrored that come ahead of the next seq are
   * held, waiting for the ones between (a writer's frames stored out of
   * order: a sink's retry after a failover), before those are a gap. 0 (the
   * default): none held, a jump is a gap at once. While frames are held the
   * provider position kept with the stream stays before the first of them.
   * At most 10 minutes; 1,000,000 frames or 256 MiB held release them early. */
  void (*set_reorder_window)(void* host, uint32_t milliseconds);
  /* A message with a writer's mark the source will not take (a mark of
   * another writer stream than the one it mirrors): dropped, counted as the
   * source's refused and logged (the first, then every 1000th) with `why`.
   * Only from inside pump. */
  void (*refuse_mark)(void* host, uint64_t epoch, uint64_t seq, const char* why);
} streamrelay_source_host_api;

typedef struct streamrelay_source_plugin {
  uint32_t struct_size;
  uint32_t abi_version;    /* STREAMRELAY_ABI_VERSION the plugin was built with */
  const char* name;        /* the source type, as `type:` in a source's config */
  const char* description; /* one line */
  /* The keys of the source's config (required: the relay checks a source's
   * config by it before anything runs). */
  const streamrelay_config_key* config_keys;
  /* Creates the source; NULL with a one-line reason in error on failure. */
  void* (*create)(const streamrelay_source_host_api* host, const char* config_yaml, char* error, size_t error_size);
  /* Waits up to timeout_ms for the provider's messages and publishes them. */
  int (*pump)(void* self, int timeout_ms, char* error, size_t error_size);
  /* Closes the connection and frees everything (its threads ended). */
  void (*destroy)(void* self);
  /* Optional (NULL: none; absent if struct_size stops before it): checks a
   * source's config as create would, without connecting or creating
   * anything. The relay calls it when it reads the config (at start, for
   * --check-config, and for a reload before anything is stopped), so a
   * config it refuses is a config error: one line, and a reload changes
   * nothing. STREAMRELAY_ERROR with a one-line reason in error. The host
   * sets *properties to 0 before the call; the plugin sets the
   * STREAMRELAY_SOURCE_* bits that hold for this config. Any thread. */
  int (*check)(const char* config_yaml, uint32_t* properties, char* error, size_t error_size);
} streamrelay_source_plugin;

/* Bits of check's *properties. */
/* The provider gives again every message after a position the source handed
 * to publish or publish_mirrored (a JetStream stream; not core NATS): a relay
 * restarted on the stream's log asks for what the log did not keep and gets
 * the same frames, so the log follows the published seqs exactly. Without
 * it the log reserves seqs ahead, and a restart after a crash numbers from
 * past the reservation: a seq is never given to two different frames. */
#define STREAMRELAY_SOURCE_REPLAYABLE 1u

typedef const streamrelay_source_plugin* (*streamrelay_source_entry_fn)(void);

STREAMRELAY_PLUGIN_EXPORT const streamrelay_source_plugin* streamrelay_source_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* STREAMRELAY_SOURCE_PLUGIN_H */
