// Deterministic column reductions: sums over the rows of a (N, C) matrix, used for
// bias gradients. Rows are split into a fixed number of chunks; each block writes the
// chunk's partial sums and a second pass adds the chunks in order, so the result
// does not depend on scheduling (no float atomics).
#ifndef LLMC_REDUCE_CUH
#define LLMC_REDUCE_CUH

#include "cuda_common.h"

#define COLSUM_ROWS_PER_CHUNK 256
#define COLSUM_ROW_THREADS 8     // threads along rows in a block; 32 along columns, 8 columns each

static inline int colsum_num_chunks(int N) { return ceil_div(N, COLSUM_ROWS_PER_CHUNK); }

// Reduces acc[COLSUM_ROW_THREADS][256 cols] held in shared memory over the row threads; thread y==0 returns sums.
__device__ __forceinline__ void colsum_block_reduce(float (*sh)[256], const float* acc, float* out8) {
    for (int k = 0; k < 8; k++) { sh[threadIdx.y][threadIdx.x * 8 + k] = acc[k]; }
    __syncthreads();
    if (threadIdx.y == 0) {
        for (int k = 0; k < 8; k++) {
            float s = 0.0f;
            for (int y = 0; y < COLSUM_ROW_THREADS; y++) { s += sh[y][threadIdx.x * 8 + k]; }
            out8[k] = s;
        }
    }
}

// partials (num_chunks, C) = per chunk of ROWS rows, sums of x (N, C) per column (of x^2 when
// SQUARE); grid (ceil(C/256), num_chunks), block (32, COLSUM_ROW_THREADS)
template <bool SQUARE, int ROWS>
__global__ void column_sum_partials_kernel(float* partials, const floatX* x, int N, int C) {
    __shared__ float sh[COLSUM_ROW_THREADS][256];
    int c = blockIdx.x * 256 + threadIdx.x * 8;
    int r0 = blockIdx.y * ROWS;
    int r1 = min(N, r0 + ROWS);
    float acc[8] = {0};
    if (c < C) {
        for (int r = r0 + threadIdx.y; r < r1; r += COLSUM_ROW_THREADS) {
            x8 d = load16(x + (long)r * C + c);
            for (int k = 0; k < 8; k++) { float f = __bfloat162float(d.v[k]); acc[k] += SQUARE ? f * f : f; }
        }
    }
    float out8[8];
    colsum_block_reduce(sh, acc, out8);
    if (threadIdx.y == 0 && c < C) {
        for (int k = 0; k < 8; k++) { partials[(long)blockIdx.y * C + c + k] = out8[k]; }
    }
}

// dst (n) += sum over chunks of partials (num_chunks rows of `stride`, first n used), in chunk order
__global__ void add_partials_kernel(floatX* dst, const float* partials, int num_chunks, int n, int stride) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) { return; }
    float s = 0.0f;
    for (int p = 0; p < num_chunks; p++) { s += partials[(long)p * stride + i]; }
    dst[i] = __float2bfloat16_rn(__bfloat162float(dst[i]) + s);
}

static inline void add_partials(floatX* dst, const float* partials, int num_chunks, int n, int stride, cudaStream_t s) {
    add_partials_kernel<<<ceil_div(n, 256), 256, 0, s>>>(dst, partials, num_chunks, n, stride);
    cudaCheckLaunch();
}

// dbias (C) += sum over rows of dout (N, C); scratch holds colsum_num_chunks(N) * C floats
static inline void bias_backward(floatX* dbias, const floatX* dout, float* scratch, int N, int C, cudaStream_t s) {
    dim3 grid(ceil_div(C, 256), colsum_num_chunks(N));
    column_sum_partials_kernel<false, COLSUM_ROWS_PER_CHUNK><<<grid, dim3(32, COLSUM_ROW_THREADS), 0, s>>>(scratch, dout, N, C);
    cudaCheckLaunch();
    add_partials(dbias, scratch, colsum_num_chunks(N), C, C, s);
}

#endif // LLMC_REDUCE_CUH
