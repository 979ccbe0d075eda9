// AdamW on FP32 master weights, with the BF16 working copy refreshed by stochastic
// rounding, and the deterministic global gradient norm used for clipping.
#ifndef LLMC_ADAMW_CUH
#define LLMC_ADAMW_CUH

#include "cuda_common.h"

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    float beta1_correction, beta2_correction;   // 1 - beta^t for this step t (1-based)
    float grad_scale;                           // clipping factor applied to every gradient
    uint32_t seed;                              // stochastic rounding seed of this step
} AdamWStep;

// params, master, m, v, grad: (n) slices of the flat parameter vector; `offset` is the slice's
// position in that vector, so the rounding noise depends on the element, not the slicing.
__global__ void adamw_kernel(floatX* params, float* master, const floatX* grad, float* m, float* v,
                             long n, long offset, AdamWStep h) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) { return; }
    float g = __bfloat162float(grad[i]) * h.grad_scale;
    float mi = h.beta1 * m[i] + (1.0f - h.beta1) * g;
    float vi = h.beta2 * v[i] + (1.0f - h.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float mhat = mi / h.beta1_correction, vhat = vi / h.beta2_correction;
    float p = master[i];
    p -= h.lr * (mhat / (sqrtf(vhat) + h.eps) + h.weight_decay * p);
    master[i] = p;
    params[i] = bf16_stochastic_round(p, hash_u32((uint32_t)(offset + i), h.seed));
}

static inline void adamw_update(floatX* params, float* master, const floatX* grad, float* m, float* v,
                                long n, long offset, AdamWStep h, cudaStream_t s) {
    if (n <= 0) { return; }
    adamw_kernel<<<ceil_div(n, 512), 512, 0, s>>>(params, master, grad, m, v, n, offset, h);
    cudaCheckLaunch();
}

#define NORM_BLOCKS 1024

// partials (NORM_BLOCKS) = per-block sums of squares of x (n), grid-stride in a fixed pattern
__global__ void squared_norm_partials_kernel(float* partials, const floatX* x, long n) {
    float acc = 0.0f;
    long stride = (long)gridDim.x * blockDim.x * 8;
    for (long i = ((long)blockIdx.x * blockDim.x + threadIdx.x) * 8; i < n; i += stride) {
        if (i + 8 <= n) {
            x8 v = load16(x + i);
            for (int k = 0; k < 8; k++) { float f = __bfloat162float(v.v[k]); acc += f * f; }
        } else {
            for (long j = i; j < n; j++) { float f = __bfloat162float(x[j]); acc += f * f; }
        }
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) { partials[blockIdx.x] = acc; }
}

// out[0] = sum of partials, in order
__global__ void sum_partials_kernel(float* out, const float* partials, int n) {
    float acc = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) { acc += partials[i]; }
    acc = block_sum(acc);
    if (threadIdx.x == 0) { out[0] = acc; }
}

// out[0] = sum of squares of x (n); scratch holds NORM_BLOCKS floats. x must be 16-byte aligned.
static inline void squared_norm(float* out, float* scratch, const floatX* x, long n, cudaStream_t s) {
    squared_norm_partials_kernel<<<NORM_BLOCKS, 256, 0, s>>>(scratch, x, n);
    cudaCheckLaunch();
    sum_partials_kernel<<<1, 1024, 0, s>>>(out, scratch, NORM_BLOCKS);
    cudaCheckLaunch();
}

#endif // LLMC_ADAMW_CUH
