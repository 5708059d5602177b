// SPDX-License-Identifier: Apache-2.0
/* A plugin written in plain C against plugin.h, built in variants that the
 * host must handle: OLD_STRUCT (a descriptor from before `flush` existed),
 * WRONG_ABI (another major version), CREATE_FAILS, NO_ENTRY (no entry symbol),
 * and c_abi_1_0 / c_abi_1_1 (built against the frozen ABI 1.0 and 1.1
 * headers). Config: the path of a file to append a line per frame to, as
 * "{path: FILE}". Each line is
 *   "SEQ"                          built for ABI 1.0 (or on a 1.0 host),
 *   "SEQ STREAM EPOCH"             built for ABI 1.1,
 *   "SEQ STREAM EPOCH PAYLOAD"     built for ABI 1.2 (c_current).
 * Built for 1.1 and later it sets the gauge last_seq where the host has it.
 * Built for 1.2 it takes frames in batches (on_frames), counts "calls" and
 * "frames" through counter handles, retains every frame and writes it only
 * at flush (so the bytes must have stayed valid after the call), and
 * declares its config keys (path, required; dsn, a secret it does not use). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streamrelay/plugin.h"

#ifndef STREAMRELAY_PLUGIN_EXPORT /* the 1.0 header has no export macro */
#define STREAMRELAY_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

#if STREAMRELAY_ABI_MINOR >= 2 && !defined(OLD_STRUCT)
#define BATCHES 1
#define MAX_HELD 8192
typedef struct {
  streamrelay_frame frame; /* seq, stream, data: valid while retained */
  streamrelay_retained* retained;
} held_frame;
#endif

typedef struct {
  FILE* out;
  const streamrelay_host_api* host;
#ifdef BATCHES
  streamrelay_counter* calls;
  streamrelay_counter* frames;
  held_frame held[MAX_HELD];
  size_t held_count;
#endif
} c_plugin;

static void* create(const streamrelay_host_api* host, const char* config, char* error, size_t error_size) {
#ifdef CREATE_FAILS
  (void)host;
  (void)config;
  snprintf(error, error_size, "this plugin always refuses to start");
  return NULL;
#else
  const char* at = strstr(config, "path: ");
  char path[512];
  if (!at || sscanf(at + 6, "%511[^,}]", path) != 1) {
    snprintf(error, error_size, "config needs {path: FILE}");
    return NULL;
  }
  c_plugin* self = calloc(1, sizeof *self);
  self->out = fopen(path, "a");
  self->host = host;
  if (!self->out) {
    snprintf(error, error_size, "cannot open %s", path);
    free(self);
    return NULL;
  }
#ifdef BATCHES
  if (host->supports(host->host, offsetof(streamrelay_host_api, counter_add))) {
    self->calls = host->counter(host->host, "calls");
    self->frames = host->counter(host->host, "frames");
  }
#endif
  return self;
#endif
}

#if STREAMRELAY_ABI_MINOR >= 1
/* supports() is there if struct_size covers it (a 1.0 host's does not). */
static int host_supports(const streamrelay_host_api* host, size_t offset) {
  if (host->struct_size < offsetof(streamrelay_host_api, supports) + sizeof host->supports || !host->supports) return 0;
  return host->supports(host->host, offset);
}
#endif

static void write_frame(c_plugin* self, const streamrelay_frame* frame) {
#if STREAMRELAY_ABI_MINOR >= 1
  if (frame->struct_size >= offsetof(streamrelay_frame, epoch) + sizeof frame->epoch && frame->stream) {
#ifdef BATCHES
    fprintf(self->out, "%llu %s %llu %.*s\n", (unsigned long long)frame->seq, frame->stream,
            (unsigned long long)frame->epoch, (int)frame->size, (const char*)frame->data);
#else
    fprintf(self->out, "%llu %s %llu\n", (unsigned long long)frame->seq, frame->stream,
            (unsigned long long)frame->epoch);
#endif
  } else
#endif
    fprintf(self->out, "%llu\n", (unsigned long long)frame->seq);
#if STREAMRELAY_ABI_MINOR >= 1
  if (host_supports(self->host, offsetof(streamrelay_host_api, set_gauge)))
    self->host->set_gauge(self->host->host, "last_seq", (double)frame->seq);
#endif
}

static int on_frame(void* self, const streamrelay_frame* frame, char* error, size_t error_size) {
  (void)error;
  (void)error_size;
  write_frame((c_plugin*)self, frame);
  fflush(((c_plugin*)self)->out);
  return STREAMRELAY_OK;
}

static void destroy(void* self);

#ifdef BATCHES
/* Writes the frames held since the last flush, then lets them go. */
static int flush(void* plugin, char* error, size_t error_size) {
  (void)error;
  (void)error_size;
  c_plugin* self = plugin;
  for (size_t i = 0; i < self->held_count; ++i) {
    write_frame(self, &self->held[i].frame);
    if (self->held[i].retained) self->host->release(self->host->host, self->held[i].retained);
  }
  self->held_count = 0;
  fflush(self->out);
  return STREAMRELAY_OK;
}

static int on_frames(void* plugin, const streamrelay_frame* frames, size_t count, size_t* handled, char* error,
                     size_t error_size) {
  c_plugin* self = plugin;
  if (self->calls) self->host->counter_add(self->host->host, self->calls, 1);
  if (self->frames) self->host->counter_add(self->host->host, self->frames, count);
  for (size_t i = 0; i < count; ++i) {
    const streamrelay_frame* frame = STREAMRELAY_FRAME_AT(frames, i);
    if (self->held_count == MAX_HELD) flush(self, error, error_size);
    streamrelay_retained* retained = self->host->retain(self->host->host, frame);
    if (!retained) { /* every frame of the call must be retainable */
      *handled = i;
      snprintf(error, error_size, "retain refused frame %llu", (unsigned long long)frame->seq);
      return STREAMRELAY_ERROR;
    }
    self->held[self->held_count].frame = *frame;
    self->held[self->held_count].retained = retained;
    ++self->held_count;
  }
  return STREAMRELAY_OK;
}

static const streamrelay_config_key config_keys[] = {
    {sizeof(streamrelay_config_key), STREAMRELAY_KEY_STRING, STREAMRELAY_KEY_REQUIRED, "path", NULL, 0, 0, NULL,
     "the file a line per frame goes to"},
    {sizeof(streamrelay_config_key), STREAMRELAY_KEY_STRING, STREAMRELAY_KEY_SECRET, "dsn", NULL, 0, 0, NULL,
     "a secret no name rule would know (unused)"},
    {sizeof(streamrelay_config_key), 0, 0, NULL, NULL, 0, 0, NULL, NULL},
};
#endif

static void destroy(void* plugin) {
  c_plugin* self = plugin;
#ifdef BATCHES
  char ignored[STREAMRELAY_MIN_ERROR_SIZE];
  flush(self, ignored, sizeof ignored);
#endif
  fclose(self->out);
  free(self);
}

/* OLD_STRUCT leaves `flush` out on purpose: its struct_size says so. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const streamrelay_plugin descriptor = {
#ifdef OLD_STRUCT
    offsetof(streamrelay_plugin, flush),
#else
    sizeof(streamrelay_plugin),
#endif
#ifdef WRONG_ABI
    (99u << 16),
#else
    STREAMRELAY_ABI_VERSION,
#endif
    PLUGIN_NAME, "a plain C test plugin", create, on_frame, destroy,
#if defined(BATCHES)
    flush, 0, on_frames, config_keys,
#elif !defined(OLD_STRUCT)
    NULL,
#endif
};

#ifndef NO_ENTRY
STREAMRELAY_PLUGIN_EXPORT const streamrelay_plugin* streamrelay_plugin_entry(void) { return &descriptor; }
#else
__attribute__((visibility("default"))) const streamrelay_plugin* some_other_symbol(void) { return &descriptor; }
#endif
