// SPDX-License-Identifier: Apache-2.0
/* faulty: a test plugin that misbehaves in the ways a plugin can and the host
 * must survive or report: on the frame with seq N it never returns from
 * on_frame (hang_at: N), dereferences a null pointer (crash_at: N) or
 * overflows its stack (overflow_at: N). For isolated instances, whose child
 * process is restarted, counts of frames handled by this process:
 * crash_every: N crashes on every Nth frame it is handed (before it handles
 * it), hang_every: N hangs on it; leak_bytes: N allocates and touches N bytes
 * per frame and never frees them; echo: 1 emits every frame it handles (a
 * processor); fork_at: N starts a process (fork) on the frame with seq N,
 * which a seccomp filter refuses.
 * Config: "{path: FILE, hang_at: N}" (or the others): appends "SEQ" per frame
 * handled, then "hang", "crash" or "overflow" just before it misbehaves, so a
 * test can wait for that moment. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "streamrelay/plugin.h"

typedef struct {
  const streamrelay_host_api* host;
  FILE* out;
  unsigned long long hang_at, crash_at, overflow_at, crash_every, hang_every, leak_bytes, echo, fork_at;
  unsigned long long handed; /* frames handed to this instance in this process */
  void* leaked;               /* leak_bytes: a chain of every block, so none can be optimised away */
} faulty;

static unsigned long long number_after(const char* config, const char* key) {
  const char* at = strstr(config, key);
  return at ? strtoull(at + strlen(key), NULL, 10) : 0;
}

static void* create(const streamrelay_host_api* host, const char* config, char* error, size_t error_size) {
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
  self->crash_every = number_after(config, "crash_every: ");
  self->hang_every = number_after(config, "hang_every: ");
  self->leak_bytes = number_after(config, "leak_bytes: ");
  self->echo = number_after(config, "echo: ");
  self->fork_at = number_after(config, "fork_at: ");
  self->host = host;
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

static void crash(void) {
  volatile int* volatile nowhere = NULL; /* volatile both: a real store, which the compiler cannot drop */
  *nowhere = 1;
}

static int on_frame(void* self_, const streamrelay_frame* frame, char* error, size_t error_size) {
  faulty* self = self_;
  ++self->handed;
  if (self->crash_every && self->handed == self->crash_every) crash();
  if (self->hang_every && self->handed == self->hang_every)
    for (;;) pause();
  if (self->leak_bytes) {
    char* leak = malloc(self->leak_bytes);
    if (leak && self->leak_bytes >= sizeof(void*)) {
      memset(leak, 1, self->leak_bytes);
      *(void**)leak = self->leaked;
      self->leaked = leak;
    }
  }
  if (self->echo && self->host->emit(self->host->host, frame->data, frame->size) != STREAMRELAY_OK) {
    snprintf(error, error_size, "emit failed");
    return STREAMRELAY_ERROR;
  }
  if (frame->seq == self->fork_at) {
    mark(self, "fork");
    pid_t child = fork();
    if (child == 0) _exit(0);
    if (child > 0) waitpid(child, NULL, 0);
  }
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
