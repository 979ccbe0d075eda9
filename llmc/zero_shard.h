// ZeRO stage 1 partitioning arithmetic (header-only C, also valid C++ for nvcc).
//
// With ZeRO-1 each of the nranks data-parallel ranks keeps optimizer state (AdamW m and v, plus fp32
// master weights if used) for one contiguous slice of the flat parameter vector only, cutting that memory
// by nranks at the communication cost of one all-reduce.
//
// Layout. L = zero_shard_len(total, nranks, align) = ceil(total / nranks) rounded up to a multiple of
// align. Flat parameter and gradient buffers are allocated with zero_padded_total() = nranks * L
// elements, the tail [total, nranks*L) zero-filled and never touched by the model. Rank r owns the slice
// [r*L, r*L + L); its first `count` elements (zero_shard_range) are real parameters, the rest padding, so
// the last rank(s) may own fewer, or zero, real elements. Collectives need equal per-rank lengths, hence
// the padding; align keeps every slice start aligned for vectorized kernels and NCCL (16 elements = 32
// bytes of bf16, 64 bytes of fp32).
//
// One optimizer step:
//  1. backward leaves each rank's full local gradient grad[nranks*L] (padding stays 0);
//  2. reduce-scatter (ncclReduceScatter / MPI_Reduce_scatter_block) of grad with recvcount = L and op
//     sum (or avg): rank r receives the cross-rank sum of grad[r*L, r*L + L), the only gradients its
//     optimizer slice needs;
//  3. gradient clipping needs the global norm: each rank sums squares over its `count` real elements, and
//     that scalar is all-reduced;
//  4. AdamW updates params[r*L + i] for i < count with m[i], v[i] (m and v hold L elements per rank).
//     Updating all L is harmless too: padding has zero params and grads, so its update is zero;
//  5. all-gather (ncclAllGather / MPI_Allgather, in place) of params with sendcount = L starting at
//     params + r*L: every rank again holds the full, identical updated parameters.
#ifndef LLMC_ZERO_SHARD_H
#define LLMC_ZERO_SHARD_H

#include <stddef.h>
#include "utils.h"

// Elements per rank slice, padding included; a multiple of align.
static inline size_t zero_shard_len(size_t total, int nranks, size_t align) {
    if (nranks < 1 || align < 1) { die("zero_shard_len: nranks=%d and align=%zu must both be >= 1", nranks, align); }
    size_t per_rank = total / (size_t)nranks + (total % (size_t)nranks != 0);
    return (per_rank + align - 1) / align * align;
}

// Length of the padded flat buffers: nranks equal slices.
static inline size_t zero_padded_total(size_t total, int nranks, size_t align) {
    return (size_t)nranks * zero_shard_len(total, nranks, align);
}

// Rank's slice starts at *offset = rank * zero_shard_len(); *count of its elements are real parameters
// (count may be 0 for trailing ranks, whose offset then lies at or past total, inside the padding).
static inline void zero_shard_range(size_t total, int nranks, int rank, size_t align, size_t* offset, size_t* count) {
    if (rank < 0 || rank >= nranks) { die("zero_shard_range: rank %d is not in [0, nranks=%d)", rank, nranks); }
    size_t len = zero_shard_len(total, nranks, align);
    size_t start = (size_t)rank * len;
    *offset = start;
    *count = start >= total ? 0 : (total - start < len ? total - start : len);
}

#endif // LLMC_ZERO_SHARD_H
