/* tfc_parallel_for: a fork-join parallel loop on pthreads (see tfc_runtime.h). */
#include <pthread.h>
#include <stddef.h>

#include "tfc_runtime.h"

/* Above this many chunks the stack arrays below would be large; more threads than this
 * do not help the loops we generate. */
#define TFC_MAX_THREADS 64

typedef struct {
  tfc_loop_body body;
  void* context;
  int64_t begin;
  int64_t end;
} tfc_chunk;

static void* tfc_run_chunk(void* arg) {
  tfc_chunk* chunk = (tfc_chunk*)arg;
  chunk->body(chunk->context, chunk->begin, chunk->end);
  return NULL;
}

void tfc_parallel_for(int64_t n, int num_threads, tfc_loop_body body, void* context) {
  tfc_chunk chunks[TFC_MAX_THREADS];
  pthread_t threads[TFC_MAX_THREADS];
  int started[TFC_MAX_THREADS];
  int64_t count;
  int64_t i;
  if (n <= 0) return;
  count = num_threads < 1 ? 1 : num_threads;
  if (count > TFC_MAX_THREADS) count = TFC_MAX_THREADS;
  if (count > n) count = n;
  /* Chunk i covers [i*n/count, (i+1)*n/count): sizes differ by at most one. */
  for (i = 0; i < count; ++i) {
    chunks[i].body = body;
    chunks[i].context = context;
    chunks[i].begin = n / count * i + (i < n % count ? i : n % count);
    chunks[i].end = chunks[i].begin + n / count + (i < n % count ? 1 : 0);
    started[i] = 0;
  }
  for (i = 1; i < count; ++i) {
    started[i] = pthread_create(&threads[i], NULL, tfc_run_chunk, &chunks[i]) == 0;
  }
  tfc_run_chunk(&chunks[0]);
  for (i = 1; i < count; ++i) {
    if (started[i]) {
      pthread_join(threads[i], NULL);
    } else {
      tfc_run_chunk(&chunks[i]);
    }
  }
}
