// Data parallelism across GPUs and nodes: one process per GPU started by mpirun (or srun),
// MPI for start-up and host-side reductions, NCCL for the device collectives. Built with
// -DMULTI_GPU (the Makefile does so when it finds MPI and NCCL); without it, or without
// mpirun, the program is one rank and every collective is a no-op.
//
// Failure: a collective that does not finish within `timeout_s` (a rank died, hung, or NCCL
// reported an error) makes this rank print what happened and call MPI_Abort, which ends
// every rank of the job: no hang. mpirun also ends the job when any rank exits non-zero.
#ifndef LLMC_MULTI_GPU_H
#define LLMC_MULTI_GPU_H

#include <unistd.h>
#include "cuda_common.h"
#ifdef MULTI_GPU
#include <mpi.h>
#include <nccl.h>
#endif

typedef struct {
    int rank, nranks;              // global
    int local_rank, local_nranks;  // on this node: picks the GPU
    double timeout_s;              // collectives stuck longer than this abort the job
#ifdef MULTI_GPU
    ncclComm_t nccl;
#endif
} MultiGpu;

// Ends the whole job with a message (every rank, not only this one).
static inline void multi_gpu_abort(const MultiGpu* mg, const char* why) {
    fprintf(stderr, "error: rank %d of %d: %s; ending the job\n", mg->rank, mg->nranks, why);
    fflush(stderr);
#ifdef MULTI_GPU
    if (mg->nranks > 1) { MPI_Abort(MPI_COMM_WORLD, 4); }
#endif
    exit(4);
}

// MPI start-up and the node-local rank; before anything touches the GPU.
static inline void multi_gpu_init(MultiGpu* mg, int* argc, char*** argv) {
    memset(mg, 0, sizeof(*mg));
    mg->nranks = 1; mg->local_nranks = 1; mg->timeout_s = 300.0;
#ifdef MULTI_GPU
    int provided;
    MPI_Init_thread(argc, argv, MPI_THREAD_SINGLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &mg->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &mg->nranks);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, mg->rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &mg->local_rank);
    MPI_Comm_size(local, &mg->local_nranks);
    MPI_Comm_free(&local);
#else
    (void)argc; (void)argv;
#endif
}

#ifdef MULTI_GPU
static inline void nccl_check_impl(const MultiGpu* mg, ncclResult_t r, const char* what) {
    if (r != ncclSuccess && r != ncclInProgress) {
        char msg[512];
        snprintf(msg, sizeof(msg), "NCCL error in %s: %s", what, ncclGetErrorString(r));
        multi_gpu_abort(mg, msg);
    }
}
#define ncclCheck(mg, call) nccl_check_impl((mg), (call), #call)
#endif

// Picks this rank's GPU and creates the NCCL communicator (non-blocking, so a dead peer
// cannot hang us inside NCCL: multi_gpu_wait polls it with a timeout).
static inline void multi_gpu_init_device(MultiGpu* mg) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) { die("rank %d: no CUDA GPU is available", mg->rank); }
    if (mg->local_nranks > ndev) {
        die("rank %d: %d ranks on this node but only %d GPUs", mg->rank, mg->local_nranks, ndev);
    }
    cudaCheck(cudaSetDevice(mg->local_rank));
#ifdef MULTI_GPU
    if (mg->nranks > 1) {
        ncclUniqueId id;
        if (mg->rank == 0) { ncclCheck(mg, ncclGetUniqueId(&id)); }
        MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD);
        ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
        cfg.blocking = 0;
        ncclCheck(mg, ncclCommInitRankConfig(&mg->nccl, mg->nranks, id, mg->rank, &cfg));
        ncclResult_t st = ncclInProgress;
        double t0 = now_seconds();
        while (st == ncclInProgress) {
            ncclCheck(mg, ncclCommGetAsyncError(mg->nccl, &st));
            if (now_seconds() - t0 > mg->timeout_s) { multi_gpu_abort(mg, "NCCL initialisation timed out"); }
        }
        ncclCheck(mg, st);
    }
#endif
}

// Waits for `stream` with a deadline, watching NCCL for asynchronous errors.
static inline void multi_gpu_wait(const MultiGpu* mg, cudaStream_t stream, const char* what) {
    if (mg->nranks == 1) { cudaCheck(cudaStreamSynchronize(stream)); return; }
    double t0 = now_seconds();
    for (;;) {
        cudaError_t e = cudaStreamQuery(stream);
        if (e == cudaSuccess) { return; }
        if (e != cudaErrorNotReady) { cudaCheck(e); }
#ifdef MULTI_GPU
        ncclResult_t st;
        ncclCheck(mg, ncclCommGetAsyncError(mg->nccl, &st));
        ncclCheck(mg, st);
#endif
        if (now_seconds() - t0 > mg->timeout_s) {
            char msg[256];
            snprintf(msg, sizeof(msg), "%s did not finish within %.0f s (another rank died or hangs?)", what, mg->timeout_s);
            multi_gpu_abort(mg, msg);
        }
        usleep(100);
    }
}

#ifdef MULTI_GPU
// A non-blocking communicator may return ncclInProgress from an enqueue: wait until queued.
static inline void nccl_enqueued(const MultiGpu* mg, ncclResult_t r, const char* what) {
    nccl_check_impl(mg, r, what);
    ncclResult_t st = r;
    double t0 = now_seconds();
    while (st == ncclInProgress) {
        nccl_check_impl(mg, ncclCommGetAsyncError(mg->nccl, &st), what);
        if (now_seconds() - t0 > mg->timeout_s) { multi_gpu_abort(mg, "NCCL call could not be enqueued in time"); }
    }
    nccl_check_impl(mg, st, what);
}
#endif

// x (n) = mean over ranks, BF16, in place.
static inline void multi_gpu_allreduce_mean_bf16(const MultiGpu* mg, floatX* x, size_t n, cudaStream_t s) {
    if (mg->nranks == 1) { return; }
#ifdef MULTI_GPU
    nccl_enqueued(mg, ncclAllReduce(x, x, n, ncclBfloat16, ncclAvg, mg->nccl, s), "gradient all-reduce");
#else
    (void)x; (void)n; (void)s;
#endif
}

// Each of n BF16 buffers (ptrs[i], counts[i] elements) = mean over ranks, in place, as one group.
static inline void multi_gpu_allreduce_mean_bf16_group(const MultiGpu* mg, floatX* const* ptrs, const size_t* counts, int n,
                                                       cudaStream_t s) {
    if (mg->nranks == 1) { return; }
#ifdef MULTI_GPU
    ncclCheck(mg, ncclGroupStart());
    for (int i = 0; i < n; i++) {
        ncclCheck(mg, ncclAllReduce(ptrs[i], ptrs[i], counts[i], ncclBfloat16, ncclAvg, mg->nccl, s));
    }
    nccl_enqueued(mg, ncclGroupEnd(), "gradient all-reduce");
#else
    (void)ptrs; (void)counts; (void)n; (void)s;
#endif
}

// shard (n/nranks) = this rank's part of the mean over ranks of full (n), BF16. n % nranks == 0.
static inline void multi_gpu_reduce_scatter_mean_bf16(const MultiGpu* mg, floatX* shard, const floatX* full, size_t n,
                                                      cudaStream_t s) {
    if (mg->nranks == 1) { return; }
#ifdef MULTI_GPU
    nccl_enqueued(mg, ncclReduceScatter(full, shard, n / mg->nranks, ncclBfloat16, ncclAvg, mg->nccl, s),
                  "gradient reduce-scatter");
#else
    (void)shard; (void)full; (void)n; (void)s;
#endif
}

// full (n) = every rank's shard (n/nranks) concatenated in rank order, BF16; the shard may live inside full.
static inline void multi_gpu_all_gather_bf16(const MultiGpu* mg, floatX* full, const floatX* shard, size_t n, cudaStream_t s) {
    if (mg->nranks == 1) { return; }
#ifdef MULTI_GPU
    nccl_enqueued(mg, ncclAllGather(shard, full, n / mg->nranks, ncclBfloat16, mg->nccl, s), "parameter all-gather");
#else
    (void)full; (void)shard; (void)n; (void)s;
#endif
}

// full (n bytes) = every rank's chunk (n/nranks bytes) in rank order; the chunk may live inside full.
static inline void multi_gpu_all_gather_bytes(const MultiGpu* mg, void* full, const void* chunk, size_t n, cudaStream_t s) {
    if (mg->nranks == 1) { return; }
#ifdef MULTI_GPU
    nccl_enqueued(mg, ncclAllGather(chunk, full, n / mg->nranks, ncclUint8, mg->nccl, s), "weight all-gather");
#else
    (void)full; (void)chunk; (void)n; (void)s;
#endif
}

// x (n) = elementwise max (sum) over ranks, FP32 on the device.
static inline void multi_gpu_allreduce_f32(const MultiGpu* mg, float* x, size_t n, int max, cudaStream_t s) {
    if (mg->nranks == 1) { return; }
#ifdef MULTI_GPU
    nccl_enqueued(mg, ncclAllReduce(x, x, n, ncclFloat32, max ? ncclMax : ncclSum, mg->nccl, s), "fp32 all-reduce");
#else
    (void)x; (void)n; (void)max; (void)s;
#endif
}

// Mean over ranks of a host value (losses).
static inline double multi_gpu_mean_host(const MultiGpu* mg, double v) {
#ifdef MULTI_GPU
    if (mg->nranks > 1) {
        double sum = 0.0;
        MPI_Allreduce(&v, &sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        return sum / mg->nranks;
    }
#endif
    return v;
}

static inline void multi_gpu_barrier(const MultiGpu* mg) {
#ifdef MULTI_GPU
    if (mg->nranks > 1) { MPI_Barrier(MPI_COMM_WORLD); }
#else
    (void)mg;
#endif
}

static inline void multi_gpu_finalize(MultiGpu* mg) {
#ifdef MULTI_GPU
    if (mg->nranks > 1) { ncclCommDestroy(mg->nccl); }
    MPI_Finalize();
#else
    (void)mg;
#endif
}

#endif // LLMC_MULTI_GPU_H
