// Causal multi-head attention, unfused: permute QKV to per-head layout, two batched
// cuBLASLt GEMMs around a causal softmax, and the reverse for backward. The whole
// thing sits behind attention_forward / attention_backward so a fused kernel can
// replace it without touching the model.
//
// Memory: the softmax probabilities (B,NH,T,T) of every layer are kept for backward;
// the scores and their gradients live in one shared scratch buffer.
#ifndef LLMC_ATTENTION_CUH
#define LLMC_ATTENTION_CUH

#include <math.h>
#include "cuda_common.h"
#include "matmul.cuh"

// qkv (B,T,3,NH,HS) -> q, k, v each (B,NH,T,HS); one thread per 8 elements of HS
__global__ void attention_permute_kernel(floatX* q, floatX* k, floatX* v, const floatX* qkv,
                                         int B, int T, int NH, int HS) {
    long i = ((long)blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (i >= (long)B * NH * T * HS) { return; }
    int d = i % HS, t = (i / HS) % T, h = (i / ((long)HS * T)) % NH, b = i / ((long)HS * T * NH);
    int C = NH * HS;
    const floatX* src = qkv + ((long)b * T + t) * 3 * C + h * HS + d;
    store16(q + i, load16(src));
    store16(k + i, load16(src + C));
    store16(v + i, load16(src + 2 * C));
}

// dq, dk, dv (B,NH,T,HS) -> dqkv (B,T,3,NH,HS)
__global__ void attention_permute_backward_kernel(floatX* dqkv, const floatX* dq, const floatX* dk,
                                                  const floatX* dv, int B, int T, int NH, int HS) {
    long i = ((long)blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (i >= (long)B * NH * T * HS) { return; }
    int d = i % HS, t = (i / HS) % T, h = (i / ((long)HS * T)) % NH, b = i / ((long)HS * T * NH);
    int C = NH * HS;
    floatX* dst = dqkv + ((long)b * T + t) * 3 * C + h * HS + d;
    store16(dst, load16(dq + i));
    store16(dst + C, load16(dk + i));
    store16(dst + 2 * C, load16(dv + i));
}

// Offset in (B,T,NH,HS) of element i of (B,NH,T,HS).
__device__ __forceinline__ long heads_to_tokens_index(long i, int T, int NH, int HS) {
    int d = i % HS, t = (i / HS) % T, h = (i / ((long)HS * T)) % NH;
    long b = i / ((long)HS * T * NH);
    return ((b * T + t) * NH + h) * HS + d;
}

// y (B,NH,T,HS) -> out (B,T,NH,HS)
__global__ void attention_unpermute_kernel(floatX* out, const floatX* y, int B, int T, int NH, int HS) {
    long i = ((long)blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (i >= (long)B * NH * T * HS) { return; }
    store16(out + heads_to_tokens_index(i, T, NH, HS), load16(y + i));
}

// dout (B,T,NH,HS) -> dy (B,NH,T,HS)
__global__ void attention_unpermute_backward_kernel(floatX* dy, const floatX* dout, int B, int T, int NH, int HS) {
    long i = ((long)blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (i >= (long)B * NH * T * HS) { return; }
    store16(dy + i, load16(dout + heads_to_tokens_index(i, T, NH, HS)));
}

// att (R,T,T) = causal softmax(scale * preatt) over each row's first t+1 entries, zeros after.
// One warp per row (R = B*NH rows of T).
__global__ void causal_softmax_forward_kernel(floatX* att, const floatX* preatt, int R, int T, float scale) {
    long row = (long)blockIdx.x * (blockDim.x / WARP_SIZE) + threadIdx.x / WARP_SIZE;
    if (row >= (long)R * T) { return; }
    int lane = threadIdx.x % WARP_SIZE, t = row % T;
    const floatX* x = preatt + row * T;
    floatX* y = att + row * T;
    float m = -INFINITY;
    for (int j = lane; j <= t; j += WARP_SIZE) { m = fmaxf(m, __bfloat162float(x[j])); }
    m = warp_max(m) * scale;
    float s = 0.0f;
    for (int j = lane; j <= t; j += WARP_SIZE) { s += __expf(__bfloat162float(x[j]) * scale - m); }
    float inv = 1.0f / warp_sum(s);
    for (int j = lane; j < T; j += WARP_SIZE) {
        float p = j <= t ? __expf(__bfloat162float(x[j]) * scale - m) * inv : 0.0f;
        y[j] = __float2bfloat16_rn(p);
    }
}

// dpreatt (R,T,T) = scale * att * (datt - sum_j att*datt), causal; may alias datt
__global__ void causal_softmax_backward_kernel(floatX* dpreatt, const floatX* datt, const floatX* att,
                                               int R, int T, float scale) {
    long row = (long)blockIdx.x * (blockDim.x / WARP_SIZE) + threadIdx.x / WARP_SIZE;
    if (row >= (long)R * T) { return; }
    int lane = threadIdx.x % WARP_SIZE, t = row % T;
    const floatX* a = att + row * T;
    const floatX* da = datt + row * T;
    floatX* dp = dpreatt + row * T;
    float dot = 0.0f;
    for (int j = lane; j <= t; j += WARP_SIZE) { dot += __bfloat162float(a[j]) * __bfloat162float(da[j]); }
    dot = warp_sum(dot);
    for (int j = lane; j < T; j += WARP_SIZE) {
        float g = j <= t ? scale * __bfloat162float(a[j]) * (__bfloat162float(da[j]) - dot) : 0.0f;
        dp[j] = __float2bfloat16_rn(g);
    }
}

typedef struct {
    floatX* q;        // (B,NH,T,HS) scratch
    floatX* k;        // (B,NH,T,HS) scratch
    floatX* v;        // (B,NH,T,HS) scratch
    floatX* y;        // (B,NH,T,HS) scratch: attention output per head, or its gradient
    floatX* scores;   // (B,NH,T,T) scratch: pre-softmax scores, or their gradient
} AttentionScratch;

static inline size_t attention_scratch_elems(int B, int T, int C, int NH) {
    return 4 * (size_t)B * T * C + (size_t)B * NH * T * T;
}

static inline void attention_scratch_init(AttentionScratch* s, floatX* base, int B, int T, int C, int NH) {
    size_t n = (size_t)B * T * C;
    s->q = base; s->k = base + n; s->v = base + 2 * n; s->y = base + 3 * n;
    s->scores = base + 4 * n;
}

// Elements of per-layer state attention keeps for backward: the probabilities.
static inline size_t attention_saved_elems(int B, int T, int NH) { return (size_t)B * NH * T * T; }

// out (B,T,C) = causal attention of qkv (B,T,3C); saved (B,NH,T,T) keeps probabilities for backward
static inline void attention_forward(GemmContext* g, AttentionScratch* s, floatX* out, floatX* saved,
                                     const floatX* qkv, int B, int T, int C, int NH, cudaStream_t st) {
    int HS = C / NH, R = B * NH;
    long n8 = (long)B * T * C / 8;
    attention_permute_kernel<<<ceil_div(n8, 256), 256, 0, st>>>(s->q, s->k, s->v, qkv, B, T, NH, HS);
    cudaCheckLaunch();
    // scores (T,T) = q (T,HS) @ k^T, per (b,h)
    gemm_bf16(g, s->scores, s->q, s->k, NULL, T, T, HS, 0, 1, 1.0f, 0.0f, R, (long)T * HS, (long)T * HS, (long)T * T, st);
    float scale = 1.0f / sqrtf((float)HS);
    causal_softmax_forward_kernel<<<ceil_div((long)R * T, 8), 256, 0, st>>>(saved, s->scores, R, T, scale);
    cudaCheckLaunch();
    // y (T,HS) = att (T,T) @ v (T,HS)
    gemm_bf16(g, s->y, saved, s->v, NULL, T, HS, T, 0, 0, 1.0f, 0.0f, R, (long)T * T, (long)T * HS, (long)T * HS, st);
    attention_unpermute_kernel<<<ceil_div(n8, 256), 256, 0, st>>>(out, s->y, B, T, NH, HS);
    cudaCheckLaunch();
}

// dqkv (B,T,3C) = backward of attention given dout (B,T,C), the layer's qkv and saved probabilities
static inline void attention_backward(GemmContext* g, AttentionScratch* s, floatX* dqkv, const floatX* dout,
                                      const floatX* qkv, const floatX* saved, int B, int T, int C, int NH,
                                      cudaStream_t st) {
    int HS = C / NH, R = B * NH;
    long n8 = (long)B * T * C / 8;
    long sTH = (long)T * HS, sTT = (long)T * T;
    attention_permute_kernel<<<ceil_div(n8, 256), 256, 0, st>>>(s->q, s->k, s->v, qkv, B, T, NH, HS);
    cudaCheckLaunch();
    attention_unpermute_backward_kernel<<<ceil_div(n8, 256), 256, 0, st>>>(s->y, dout, B, T, NH, HS);
    cudaCheckLaunch();
    // datt (T,T) = dy (T,HS) @ v^T ; dv (T,HS) = att^T @ dy   (dv overwrites v, no longer needed)
    gemm_bf16(g, s->scores, s->y, s->v, NULL, T, T, HS, 0, 1, 1.0f, 0.0f, R, sTH, sTH, sTT, st);
    gemm_bf16(g, s->v, saved, s->y, NULL, T, HS, T, 1, 0, 1.0f, 0.0f, R, sTT, sTH, sTH, st);
    float scale = 1.0f / sqrtf((float)HS);
    causal_softmax_backward_kernel<<<ceil_div((long)R * T, 8), 256, 0, st>>>(s->scores, s->scores, saved, R, T, scale);
    cudaCheckLaunch();
    // dq (T,HS) = dscores @ k, into y (dy is spent); then dk (T,HS) = dscores^T @ q, into k (k is spent)
    gemm_bf16(g, s->y, s->scores, s->k, NULL, T, HS, T, 0, 0, 1.0f, 0.0f, R, sTT, sTH, sTH, st);
    gemm_bf16(g, s->k, s->scores, s->q, NULL, T, HS, T, 1, 0, 1.0f, 0.0f, R, sTT, sTH, sTH, st);
    attention_permute_backward_kernel<<<ceil_div(n8, 256), 256, 0, st>>>(dqkv, s->y, s->k, s->v, B, T, NH, HS);
    cudaCheckLaunch();
}

#endif // LLMC_ATTENTION_CUH
