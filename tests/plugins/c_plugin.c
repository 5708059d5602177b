// SPDX-License-Identifier: Apache-2.0
/* A plugin written in plain C against plugin.h, built in variants that the
 * host must handle: OLD_STRUCT (a descriptor from before `flush` existed),
 * WRONG_ABI (another major version), CREATE_FAILS, NO_ENTRY (no entry symbol),
 * and c_abi_1_0 (built against the frozen ABI 1.0 header).
 * Config: the path of a file to append a line per frame to, as "{path: FILE}":
 * "SEQ STREAM EPOCH" when built for ABI 1.1 on a host that passes them,
 * "SEQ" otherwise. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streamrelay/plugin.h"

#ifndef STREAMRELAY_PLUGIN_EXPORT /* the 1.0 header has no export macro */
#define STREAMRELAY_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

typedef struct {
  FILE* out;
} c_plugin;

static void* create(const streamrelay_host_api* host, const char* config, char* error, size_t error_size) {
  (void)host;
#ifdef CREATE_FAILS
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
  if (!self->out) {
    snprintf(error, error_size, "cannot open %s", path);
    free(self);
    return NULL;
  }
  return self;
#endif
}

static int on_frame(void* self, const streamrelay_frame* frame, char* error, size_t error_size) {
  (void)error;
  (void)error_size;
  FILE* out = ((c_plugin*)self)->out;
#if STREAMRELAY_ABI_MINOR >= 1
  if (frame->struct_size >= offsetof(streamrelay_frame, epoch) + sizeof frame->epoch && frame->stream)
    fprintf(out, "%llu %s %llu\n", (unsigned long long)frame->seq, frame->stream, (unsigned long long)frame->epoch);
  else
#endif
    fprintf(out, "%llu\n", (unsigned long long)frame->seq);
  fflush(out);
  return STREAMRELAY_OK;
}

static void destroy(void* self) {
  fclose(((c_plugin*)self)->out);
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
#ifndef OLD_STRUCT
    NULL,
#endif
};

#ifndef NO_ENTRY
STREAMRELAY_PLUGIN_EXPORT const streamrelay_plugin* streamrelay_plugin_entry(void) { return &descriptor; }
#else
__attribute__((visibility("default"))) const streamrelay_plugin* some_other_symbol(void) { return &descriptor; }
#endif
