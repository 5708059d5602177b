// SPDX-License-Identifier: Apache-2.0
/* faulty: a test plugin that misbehaves in the ways an in-process plugin can
 * and the host must survive or report: on its Nth frame it never returns from
 * on_frame (hang_at: N), dereferences a null pointer (crash_at: N) or
 * overflows its stack (overflow_at: N).
 * Config: "{path: FILE, hang_at: N}" (or crash_at, overflow_at): appends
 * "SEQ" per frame handled, then "hang", "crash" or "overflow" just before it
 * misbehaves, so a test can wait for that moment. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "streamrelay/plugin.h"

typedef struct {
  FILE* out;
  unsigned long long hang_at, crash_at, overflow_at;
} faulty;

static unsigned long long number_after(const char* config, const char* key) {
  const char* at = strstr(config, key);
  return at ? strtoull(at + strlen(key), NULL, 10) : 0;
}

static void* create(const streamrelay_host_api* host, const char* config, char* error, size_t error_size) {
  (void)host;
  const char* at = strstr(config, "path: ");
  char path[512];
  if (!at || sscanf(at + 6, "%511[^,}]", path) != 1) {
    snprintf(error, error_size, "config needs {path: FILE}");
    return NULL;
  }
  faulty* self = calloc(1, sizeof *self);
  self->out = fopen(path, "a");
  if (!self->out) {
    snprintf(error, error_size, "cannot open %s", path);
    free(self);
    return NULL;
  }
  self->hang_at = number_after(config, "hang_at: ");
  self->crash_at = number_after(config, "crash_at: ");
  self->overflow_at = number_after(config, "overflow_at: ");
  return self;
}

static void mark(faulty* self, const char* what) {
  fprintf(self->out, "%s\n", what);
  fflush(self->out);
}

/* Not a tail call: every level keeps its frame. The depth is volatile, so the
 * compiler cannot tell that it never ends. */
static int recurse(volatile int depth) {
  volatile char frame[1024];
  frame[0] = (char)depth;
  if (depth < 0) return 0;
  return recurse(depth + 1) + frame[0];
}

static int on_frame(void* self_, const streamrelay_frame* frame, char* error, size_t error_size) {
  (void)error;
  (void)error_size;
  faulty* self = self_;
  if (frame->seq == self->hang_at) {
    mark(self, "hang");
    for (;;) pause(); /* never returns, as a plugin stuck on a lock or a dead peer */
  }
  if (frame->seq == self->crash_at) {
    mark(self, "crash");
    int* volatile nowhere = NULL; /* volatile: a real load, not a trap the compiler puts in */
    return *nowhere;
  }
  if (frame->seq == self->overflow_at) {
    mark(self, "overflow");
    return recurse(0);
  }
  fprintf(self->out, "%llu\n", (unsigned long long)frame->seq);
  fflush(self->out);
  return STREAMRELAY_OK;
}

static void destroy(void* self) {
  fclose(((faulty*)self)->out);
  free(self);
}

static const streamrelay_plugin descriptor = {
    sizeof(streamrelay_plugin), STREAMRELAY_ABI_VERSION, "faulty", "misbehaves on purpose (tests)",
    create, on_frame, destroy, NULL, 0, NULL, NULL};

STREAMRELAY_PLUGIN_EXPORT const streamrelay_plugin* streamrelay_plugin_entry(void) { return &descriptor; }
