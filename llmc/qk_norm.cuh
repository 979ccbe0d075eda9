// QK-norm (--qk-norm, as in FOG, Hernandez-Cano et al. 2025): RMSNorm of every query and
// key head vector with frozen unit gains (no parameters), in place on the QKV GEMM's output
// before attention; V is untouched.
//
// Layout: qkv (B,T,3C), per token [q (C) | k (C) | v (C)], each C = NH heads x 64, so the
// q and k parts of a token are its first 2C elements: 2*NH contiguous head vectors of 64.
//
// Forward, per head vector x (64):  y = x * r,  r = 1 / sqrt(mean(x^2) + eps).
// Backward: L depends on x only through y, and dr/dx_j = -r^3 x_j / 64, so
//   dL/dx_j = r dy_j + sum_i dy_i x_i (-r^3 x_j / 64) = r (dy_j - y_j * mean(dy * y)),
// exact with eps too. It needs y (the normalized qkv that attention keeps anyway) and r.
// r is saved (B,T,2,NH floats: 1/32 of the bytes of q and k) because it cannot be recomputed
// from y, whose RMS is 1 whatever the input's, and the raw q, k are overwritten.
//
// eps 1e-6: the QKV output's head vectors have mean squares ~0.1..1 (GPT-2 init: 0.02 *
// sqrt(C) ~ 0.55 RMS), so eps changes r by < 1e-5 relative, far below BF16's 2^-8: y is a
// true unit-RMS vector. eps only matters for an (almost) all-zero vector, where it keeps r
// <= 1000 and the output 0 instead of NaN (and bounds the backward gain at 1000).
//
// After the norm ||q|| = ||k|| = 8, so |q.k| <= 64 and |q_j| <= 8: the logits are bounded by
// 64 * scale and, the gains being frozen, the model cannot learn a temperature: the softmax
// scale is a constant the user chooses (--qk-scale). Its default, QK_NORM_SCALE_DEFAULT in
// llmc/train_args.h, is 1/sqrt(64): logits of
// unrelated q, k have unit variance (the regime 1/sqrt(d) is meant for), and the widest gap
// between two keys' logits is 16, enough for one key to take 99.99% of a row of 1024.
//
// Threads: 8 lanes per head vector, one 16-byte load each (8 x BF16), so a warp does 4 vectors
// (a warp per vector would leave 24 lanes idle) and a vector's sums are 3 shuffles within its
// 8 lanes. FP32 math, BF16 in and out.
#ifndef LLMC_QK_NORM_CUH
#define LLMC_QK_NORM_CUH

#include "cuda_common.h"

#define QKN_HS 64                   // head size
#define QKN_EPS 1e-6f

// Sum over the 8 lanes of this thread's head vector. The mask names only those lanes, so a
// warp whose other vectors are past the end (threads returned) is fine.
__device__ __forceinline__ float qkn_vec_sum(float v) {
    unsigned mask = 0xFFu << ((threadIdx.x % WARP_SIZE) & ~7u);
    v += __shfl_xor_sync(mask, v, 1);
    v += __shfl_xor_sync(mask, v, 2);
    v += __shfl_xor_sync(mask, v, 4);
    return v;
}

// Element offset in qkv (N,3C) of the 8 values of thread i, i over (token, q|k, head, chunk of 8):
// per token 2C/8 threads cover its q and k parts; thread i's vector is i/8 in (N,2,NH) order.
__device__ __forceinline__ long qkn_offset(long i, int C) {
    long per_token = C / 4;   // 2C / 8
    return (i / per_token) * 3 * C + (i % per_token) * 8;
}

// qkv (N,3C): q, k head vectors normalized in place; rstd (N,2,NH) = their r
__global__ void qk_rmsnorm_forward_kernel(floatX* qkv, float* rstd, long nthreads, int C) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nthreads) { return; }   // nthreads is a multiple of 8: whole vectors return together
    floatX* p = qkv + qkn_offset(i, C);
    x8 v = load16(p), o;
    float ss = 0.0f;
    for (int k = 0; k < 8; k++) { float f = __bfloat162float(v.v[k]); ss += f * f; }
    float r = rsqrtf(qkn_vec_sum(ss) / QKN_HS + QKN_EPS);
    for (int k = 0; k < 8; k++) { o.v[k] = __float2bfloat16_rn(__bfloat162float(v.v[k]) * r); }
    store16(p, o);
    if (i % 8 == 0) { rstd[i / 8] = r; }
}

// dqkv (N,3C): the q, k parts, gradients w.r.t. the normalized q, k on entry, become gradients
// w.r.t. the raw q, k; qkv (N,3C) the forward's (normalized) output; rstd (N,2,NH)
__global__ void qk_rmsnorm_backward_kernel(floatX* dqkv, const floatX* qkv, const float* rstd, long nthreads, int C) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nthreads) { return; }
    long off = qkn_offset(i, C);
    x8 d = load16(dqkv + off), y = load16(qkv + off), o;
    float s = 0.0f;
    for (int k = 0; k < 8; k++) { s += __bfloat162float(d.v[k]) * __bfloat162float(y.v[k]); }
    s = qkn_vec_sum(s) / QKN_HS;
    float r = rstd[i / 8];
    for (int k = 0; k < 8; k++) {
        o.v[k] = __float2bfloat16_rn(r * (__bfloat162float(d.v[k]) - __bfloat162float(y.v[k]) * s));
    }
    store16(dqkv + off, o);
}

// Floats of per-layer state the norm keeps for backward: rstd (B,T,2,NH).
static inline size_t qk_norm_saved_floats(int B, int T, int NH) { return (size_t)B * T * 2 * NH; }

static inline long qk_norm_threads(int B, int T, int C, int NH) {
    if (C != NH * QKN_HS) { die("qk-norm supports head size %d only (C=%d, NH=%d)", QKN_HS, C, NH); }
    return (long)B * T * 2 * C / 8;
}

// qkv (B,T,3C): q and k normalized per head in place; rstd (B,T,2,NH) written for backward
static inline void qk_norm_forward(floatX* qkv, float* rstd, int B, int T, int C, int NH, cudaStream_t s) {
    long n = qk_norm_threads(B, T, C, NH);
    qk_rmsnorm_forward_kernel<<<ceil_div(n, 256), 256, 0, s>>>(qkv, rstd, n, C);
    cudaCheckLaunch();
}

// dqkv (B,T,3C): q, k parts taken back through the norm in place (v part untouched), given the
// forward's normalized qkv (B,T,3C) and rstd (B,T,2,NH)
static inline void qk_norm_backward(floatX* dqkv, const floatX* qkv, const float* rstd, int B, int T, int C, int NH,
                                    cudaStream_t s) {
    long n = qk_norm_threads(B, T, C, NH);
    qk_rmsnorm_backward_kernel<<<ceil_div(n, 256), 256, 0, s>>>(dqkv, qkv, rstd, n, C);
    cudaCheckLaunch();
}

#endif // LLMC_QK_NORM_CUH
