#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include "parallel.h"
#include "../llmc/utils.h"

typedef struct {
    ParallelFn fn;
    void* ctx;
    size_t n;
    atomic_size_t next;
} Job;

typedef struct { Job* job; int thread; } Worker;

static void* worker_main(void* arg) {
    Worker* w = (Worker*)arg;
    Job* job = w->job;
    for (size_t i; (i = atomic_fetch_add(&job->next, 1)) < job->n;) { job->fn(job->ctx, w->thread, i); }
    return NULL;
}

void parallel_for(int threads, size_t n, ParallelFn fn, void* ctx) {
    Job job = {fn, ctx, n, 0};
    if (threads <= 1 || n <= 1) {
        for (size_t i = 0; i < n; i++) { fn(ctx, 0, i); }
        return;
    }
    pthread_t tid[256];
    Worker workers[256];
    if (threads > 256) { threads = 256; }
    // The calling thread works too, as thread 0.
    for (int t = 1; t < threads; t++) {
        workers[t].job = &job;
        workers[t].thread = t;
        int rc = pthread_create(&tid[t], NULL, worker_main, &workers[t]);
        if (rc != 0) { die("cannot start thread %d of %d: %s", t, threads, strerror(rc)); }
    }
    workers[0].job = &job;
    workers[0].thread = 0;
    worker_main(&workers[0]);
    for (int t = 1; t < threads; t++) { pthread_join(tid[t], NULL); }
}

int cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
