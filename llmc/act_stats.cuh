// Activation statistics for outlier-feature monitoring: the kurtosis of the per-channel RMS of
// the residual stream (He et al. 2024, "Understanding and Minimising Outlier Features in
// Transformer Training"; FOG tracks the same signal to predict FP8 divergences).
//
// For x (N,C): m_j = mean over the N rows of x_ij^2 (channel j's mean square), and
//   kurtosis = mean_j(m_j^2) / mean_j(m_j)^2 = C * sum_j m_j^2 / (sum_j m_j)^2.
// It lies in [1, C]: 1 when every channel has the same RMS, C when one channel holds all the
// energy; a few outlier channels push it up. Uncentered, as in the paper (no mean subtracted).
//
// Deterministic, no atomics: pass 1 writes per-chunk column sums of squares (FP32, fixed order
// within a chunk); pass 2, one block, adds the chunks in order per column and reduces over the
// columns in double (m_j^2 ~ x^4 would overflow FP32 once |x| ~ 1e9, which is exactly when a
// diverging run is worth watching). The result goes to a device slot: no host sync, so a
// trainer can fill one slot per block and copy them all once.
#ifndef LLMC_ACT_STATS_CUH
#define LLMC_ACT_STATS_CUH

#include "cuda_common.h"
#include "reduce.cuh"

// Rows per pass-1 block: 256 (not reduce.cuh's 1024) so that N = 16K rows and C = 768 give
// 192 blocks, enough to keep an H100's 132 SMs busy. The scratch, ceil(N/256) * C floats,
// still fits in the colsum scratch the model keeps for 4C-wide bias gradients.
#define KURT_ROWS_PER_CHUNK 256

static inline int kurtosis_num_chunks(int N) { return ceil_div(N, KURT_ROWS_PER_CHUNK); }

// Floats of scratch residual_kurtosis needs for x (N,C).
static inline size_t residual_kurtosis_scratch_floats(int N, int C) { return (size_t)kurtosis_num_chunks(N) * C; }

// Sum over a block of up to 1024 threads in double; result valid in every thread. Fixed order.
__device__ __forceinline__ double block_sum_f64(double v) {
    __shared__ double partial[32];
    int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE, nwarps = blockDim.x / WARP_SIZE;
    for (int o = 16; o > 0; o >>= 1) { v += __shfl_xor_sync(0xffffffffu, v, o); }
    __syncthreads();   // partial[] may still be read by a previous call
    if (lane == 0) { partial[warp] = v; }
    __syncthreads();
    v = lane < nwarps ? partial[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) { v += __shfl_xor_sync(0xffffffffu, v, o); }
    return v;
}

// out (1) = kurtosis from partials (num_chunks, C) of x (N,C); 0 when x is all zero (undefined:
// no channel has energy; 0 is below every real value, and stays valid JSON when logged). One block.
__global__ void kurtosis_finish_kernel(float* out, const float* partials, int num_chunks, int N, int C) {
    double s1 = 0.0, s2 = 0.0;
    for (int j = threadIdx.x; j < C; j += blockDim.x) {
        float s = 0.0f;
        for (int p = 0; p < num_chunks; p++) { s += partials[(long)p * C + j]; }
        double m = (double)s / N;
        s1 += m;
        s2 += m * m;
    }
    s1 = block_sum_f64(s1);
    s2 = block_sum_f64(s2);
    if (threadIdx.x == 0) { out[0] = s1 > 0.0 ? (float)(C * s2 / (s1 * s1)) : 0.0f; }
}

// out_dev (1) = kurtosis of the per-channel mean squares of x (N,C), C a multiple of 8;
// scratch: residual_kurtosis_scratch_floats(N, C). Asynchronous on s, deterministic.
static inline void residual_kurtosis(float* out_dev, const floatX* x, int N, int C, float* scratch, cudaStream_t s) {
    if (C % 8 != 0 || N < 1) { die("residual_kurtosis needs N >= 1 and C a multiple of 8 (N=%d, C=%d)", N, C); }
    int chunks = kurtosis_num_chunks(N);
    dim3 grid(ceil_div(C, 256), chunks);
    column_sum_partials_kernel<true, KURT_ROWS_PER_CHUNK><<<grid, dim3(32, COLSUM_ROW_THREADS), 0, s>>>(scratch, x, N, C);
    cudaCheckLaunch();
    kurtosis_finish_kernel<<<1, 1024, 0, s>>>(out_dev, scratch, chunks, N, C);
    cudaCheckLaunch();
}

#endif // LLMC_ACT_STATS_CUH
