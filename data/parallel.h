// A minimal parallel-for over pthreads: items are handed out one at a time
// through an atomic counter, and each item writes only its own output slot,
// so results are identical for any thread count.
#ifndef DATA_PARALLEL_H
#define DATA_PARALLEL_H

#include <stddef.h>

// Calls fn(ctx, thread, item) for item in [0, n) on `threads` threads
// (thread in [0, threads)), and returns when all are done.
typedef void (*ParallelFn)(void* ctx, int thread, size_t item);
void parallel_for(int threads, size_t n, ParallelFn fn, void* ctx);

// Number of online CPUs, at least 1.
int cpu_count(void);

#endif // DATA_PARALLEL_H
