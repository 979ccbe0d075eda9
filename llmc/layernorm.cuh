// LayerNorm (eps 1e-5, biased variance) forward, fused residual-add + LayerNorm, and
// backward. Backward is split: a warp-per-row kernel for the input gradient, and a
// deterministic column reduction (llmc/reduce.cuh) for the weight and bias gradients.
#ifndef LLMC_LAYERNORM_CUH
#define LLMC_LAYERNORM_CUH

#include "cuda_common.h"
#include "reduce.cuh"
#include "fp8_cast.cuh"

#define LN_EPS 1e-5f

// Normalizes one row with a warp; `x` is the row (C). Writes mean, rstd and the normalized row
// in BF16 to out, or (q != NULL) only its FP8 codes bf16(value) * qscale to q, raising acc.
__device__ __forceinline__ void layernorm_row(floatX* out, uint8_t* q, float qscale, CastAcc& acc, float* mean_out,
                                              float* rstd_out, const floatX* x, const floatX* w, const floatX* b,
                                              int C, int lane) {
    float sum = 0.0f;
    for (int c = lane * 8; c < C; c += WARP_SIZE * 8) {
        x8 v = load16(x + c);
        for (int k = 0; k < 8; k++) { sum += __bfloat162float(v.v[k]); }
    }
    float m = warp_sum(sum) / C;
    float var = 0.0f;
    for (int c = lane * 8; c < C; c += WARP_SIZE * 8) {
        x8 v = load16(x + c);
        for (int k = 0; k < 8; k++) { float d = __bfloat162float(v.v[k]) - m; var += d * d; }
    }
    float rs = rsqrtf(warp_sum(var) / C + LN_EPS);
    for (int c = lane * 8; c < C; c += WARP_SIZE * 8) {
        x8 v = load16(x + c), wv = load16(w + c), bv = load16(b + c), o;
        for (int k = 0; k < 8; k++) {
            float n = (__bfloat162float(v.v[k]) - m) * rs;
            o.v[k] = __float2bfloat16_rn(n * __bfloat162float(wv.v[k]) + __bfloat162float(bv.v[k]));
        }
        if (q == NULL) {
            store16(out + c, o);
        } else {
            __align__(8) uint8_t codes[8];
            cast8<FP8_E4M3, false>(codes, o, qscale, acc);
            *reinterpret_cast<uint2*>(q + c) = *reinterpret_cast<const uint2*>(codes);
        }
    }
    if (lane == 0) { *mean_out = m; *rstd_out = rs; }
}

// out (N,C) = LN(inp (N,C)), or its FP8 copy q8 (see Fp8Out); mean, rstd (N); one warp per row
__global__ void layernorm_forward_kernel(floatX* out, Fp8Out q8, float* mean, float* rstd, const floatX* inp,
                                         const floatX* w, const floatX* b, int N, int C) {
    int row = blockIdx.x * (blockDim.x / WARP_SIZE) + threadIdx.x / WARP_SIZE;
    CastAcc acc = {0u, 0u, 0u};
    if (row < N) {
        long o = (long)row * C;
        float qs = q8.q != NULL ? *q8.scale : 1.0f;
        layernorm_row(out + o, q8.q != NULL ? q8.q + o : NULL, qs, acc, mean + row, rstd + row, inp + o, w, b, C,
                      threadIdx.x % WARP_SIZE);
    }
    if (q8.amax != NULL) { cast_acc_commit<false>(acc, q8.amax, NULL); }
}

// residual (N,C) = a + b; out (N,C) = LN(residual), or its FP8 copy q8. The rounded BF16
// residual is what gets normalized, so forward and backward see the same values.
__global__ void residual_layernorm_forward_kernel(floatX* residual, floatX* out, Fp8Out q8, float* mean, float* rstd,
                                                  const floatX* a, const floatX* b, const floatX* w,
                                                  const floatX* bias, int N, int C) {
    int row = blockIdx.x * (blockDim.x / WARP_SIZE) + threadIdx.x / WARP_SIZE;
    int lane = threadIdx.x % WARP_SIZE;
    CastAcc acc = {0u, 0u, 0u};
    if (row < N) {
        long o = (long)row * C;
        for (int c = lane * 8; c < C; c += WARP_SIZE * 8) {
            x8 u = load16(a + o + c), v = load16(b + o + c), r;
            for (int k = 0; k < 8; k++) { r.v[k] = __float2bfloat16_rn(__bfloat162float(u.v[k]) + __bfloat162float(v.v[k])); }
            store16(residual + o + c, r);
        }
        __syncwarp();   // each lane re-reads only its own columns, but keep the row's writes ordered
        float qs = q8.q != NULL ? *q8.scale : 1.0f;
        layernorm_row(out + o, q8.q != NULL ? q8.q + o : NULL, qs, acc, mean + row, rstd + row, residual + o, w, bias,
                      C, lane);
    }
    if (q8.amax != NULL) { cast_acc_commit<false>(acc, q8.amax, NULL); }
}

// dinp (N,C) += LN backward of dout (N,C); one warp per row. The minimum of 2 blocks per SM lets
// ptxas use 54 registers instead of 40: 0.084 against 0.102 ms at d48's (16384, 1600), level at
// d12's (65536, 768). (The forward kernels are not faster so.)
__global__ void __launch_bounds__(256, 2) layernorm_backward_input_kernel(floatX* dinp, const floatX* dout, const floatX* inp,
                                                const floatX* w, const float* mean, const float* rstd,
                                                int N, int C) {
    int row = blockIdx.x * (blockDim.x / WARP_SIZE) + threadIdx.x / WARP_SIZE;
    if (row >= N) { return; }
    int lane = threadIdx.x % WARP_SIZE;
    long o = (long)row * C;
    float m = mean[row], rs = rstd[row];
    // dnorm = dout * w; dx = rs * (dnorm - mean(dnorm) - norm * mean(dnorm * norm))
    float s1 = 0.0f, s2 = 0.0f;
    for (int c = lane * 8; c < C; c += WARP_SIZE * 8) {
        x8 d = load16(dout + o + c), x = load16(inp + o + c), wv = load16(w + c);
        for (int k = 0; k < 8; k++) {
            float dn = __bfloat162float(d.v[k]) * __bfloat162float(wv.v[k]);
            s1 += dn;
            s2 += dn * (__bfloat162float(x.v[k]) - m) * rs;
        }
    }
    s1 = warp_sum(s1) / C;
    s2 = warp_sum(s2) / C;
    for (int c = lane * 8; c < C; c += WARP_SIZE * 8) {
        x8 d = load16(dout + o + c), x = load16(inp + o + c), wv = load16(w + c), g = load16(dinp + o + c);
        for (int k = 0; k < 8; k++) {
            float dn = __bfloat162float(d.v[k]) * __bfloat162float(wv.v[k]);
            float n = (__bfloat162float(x.v[k]) - m) * rs;
            g.v[k] = __float2bfloat16_rn(__bfloat162float(g.v[k]) + rs * (dn - s1 - n * s2));
        }
        store16(dinp + o + c, g);
    }
}

// partials (num_chunks, 2C): [dweight | dbias] sums of each chunk of rows; grid (ceil(C/256), num_chunks)
__global__ void layernorm_backward_params_kernel(float* partials, const floatX* dout, const floatX* inp,
                                                 const float* mean, const float* rstd, int N, int C) {
    __shared__ float sh[COLSUM_ROW_THREADS][256];
    int c = blockIdx.x * 256 + threadIdx.x * 8;
    int r0 = blockIdx.y * COLSUM_ROWS_PER_CHUNK;
    int r1 = min(N, r0 + COLSUM_ROWS_PER_CHUNK);
    float aw[8] = {0}, ab[8] = {0};
    if (c < C) {
        for (int r = r0 + threadIdx.y; r < r1; r += COLSUM_ROW_THREADS) {
            x8 d = load16(dout + (long)r * C + c), x = load16(inp + (long)r * C + c);
            float m = mean[r], rs = rstd[r];
            for (int k = 0; k < 8; k++) {
                float dv = __bfloat162float(d.v[k]);
                aw[k] += dv * (__bfloat162float(x.v[k]) - m) * rs;
                ab[k] += dv;
            }
        }
    }
    float sw[8], sb[8];
    colsum_block_reduce(sh, aw, sw);
    __syncthreads();
    colsum_block_reduce(sh, ab, sb);
    if (threadIdx.y == 0 && c < C) {
        float* p = partials + (long)blockIdx.y * 2 * C;
        for (int k = 0; k < 8; k++) { p[c + k] = sw[k]; p[C + c + k] = sb[k]; }
    }
}

static inline Fp8Out layernorm_fp8_out(const Fp8Out* q8, int C) {
    Fp8Out none = {NULL, NULL, NULL};
    if (q8 == NULL) { return none; }
    if (((uintptr_t)q8->q & 7) != 0 || C % 8 != 0) { die("internal: LayerNorm FP8 output at %p, C=%d: not 8-byte rows", q8->q, C); }
    return *q8;
}

// q8 (NULL: none): write the output as FP8 codes instead of BF16 (out is then not written)
static inline void layernorm_forward(floatX* out, float* mean, float* rstd, const floatX* inp, const floatX* w,
                                     const floatX* b, int N, int C, const Fp8Out* q8, cudaStream_t s) {
    layernorm_forward_kernel<<<ceil_div(N, 8), 256, 0, s>>>(out, layernorm_fp8_out(q8, C), mean, rstd, inp, w, b, N, C);
    cudaCheckLaunch();
}

static inline void residual_layernorm_forward(floatX* residual, floatX* out, float* mean, float* rstd,
                                              const floatX* a, const floatX* b, const floatX* w,
                                              const floatX* bias, int N, int C, const Fp8Out* q8, cudaStream_t s) {
    residual_layernorm_forward_kernel<<<ceil_div(N, 8), 256, 0, s>>>(residual, out, layernorm_fp8_out(q8, C), mean, rstd,
                                                                     a, b, w, bias, N, C);
    cudaCheckLaunch();
}

// dinp (N,C) += input gradient; dw, db (C) += parameter gradients.
// scratch: colsum_num_chunks(N) * 2C floats
static inline void layernorm_backward(floatX* dinp, floatX* dw, floatX* db, float* scratch, const floatX* dout,
                                      const floatX* inp, const floatX* w, const float* mean, const float* rstd,
                                      int N, int C, cudaStream_t s) {
    layernorm_backward_input_kernel<<<ceil_div(N, 8), 256, 0, s>>>(dinp, dout, inp, w, mean, rstd, N, C);
    cudaCheckLaunch();
    int chunks = colsum_num_chunks(N);
    dim3 grid(ceil_div(C, 256), chunks);
    layernorm_backward_params_kernel<<<grid, dim3(32, COLSUM_ROW_THREADS), 0, s>>>(scratch, dout, inp, mean, rstd, N, C);
    cudaCheckLaunch();
    add_partials(dw, scratch, chunks, C, 2 * C, s);
    add_partials(db, scratch + C, chunks, C, 2 * C, s);
}

#endif // LLMC_LAYERNORM_CUH
