/* Static support code linked into every shared object tfcompile-py generates.
 *
 * Symbols here have hidden visibility: each library carries its own copy, none is
 * exported, so libraries loaded together never interpose on each other. Only the C
 * library and pthreads are used.
 */
#ifndef TFCOMPILE_RUNTIME_TFC_RUNTIME_H_
#define TFCOMPILE_RUNTIME_TFC_RUNTIME_H_

#include <stdint.h>

#if defined(__GNUC__)
#define TFC_HIDDEN __attribute__((visibility("hidden")))
#else
#define TFC_HIDDEN
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* One chunk of a parallel loop: handle iterations [begin, end). */
typedef void (*tfc_loop_body)(void* context, int64_t begin, int64_t end);

/* Runs body over [0, n) split into at most `num_threads` contiguous chunks, the caller's
 * thread taking the first. Returns when every chunk is done. Falls back to running the
 * remaining chunks on the calling thread if a thread cannot be started, so it never
 * fails. Threads are created per call (a persistent pool is a later step). */
TFC_HIDDEN void tfc_parallel_for(int64_t n, int num_threads, tfc_loop_body body,
                                 void* context);

#ifdef __cplusplus
}
#endif

#endif /* TFCOMPILE_RUNTIME_TFC_RUNTIME_H_ */
