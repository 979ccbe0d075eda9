// Fused LM-head tail: softmax over the first V of Vp logits, cross-entropy loss per
// position, and (when asked) the logits' gradient written in place of the logits, so
// the (B,T,Vp) probabilities never need a buffer of their own.
#ifndef LLMC_CLASSIFIER_CUH
#define LLMC_CLASSIFIER_CUH

#include "cuda_common.h"

// d loss / d logit j of a row with normaliser log_z and target t: (p_j - onehot) * dloss, zero on
// the padded columns j >= V
__device__ __forceinline__ float softmax_grad(float logit, float log_z, int j, int t, int V, float dloss) {
    float p = j < V ? __expf(logit - log_z) : 0.0f;
    return (p - (j == t ? 1.0f : 0.0f)) * dloss;
}

// One block per row. logits (N,Vp) -> dlogits (N,Vp) in place when write_grad;
// losses (N) = -log softmax(logits)[target]; dloss: gradient of the total loss per position's loss;
// lse (N) (NULL: not written) = log of the softmax's normaliser, for a later pass that makes the
// gradient (an FP8 LM head's backward, see CAST_SOFTMAX_GRAD in llmc/fp8_cast.cuh)
__global__ void __launch_bounds__(1024) fused_classifier_kernel(floatX* logits, float* losses, float* lse, const int* targets,
                                                                float dloss, int V, int Vp, int write_grad) {
    long row = blockIdx.x;
    floatX* x = logits + row * Vp;
    // pass 1: online max and sum of exp over the real vocabulary, the running sum rescaled once per
    // 8 values (an exp per value and one per 8: the SFU's exps bound this pass when it was one per value)
    float m = -INFINITY, s = 0.0f;
    for (int i = threadIdx.x * 8; i < V; i += blockDim.x * 8) {
        x8 v = load16(x + i);
        int n = min(8, V - i);
        float vm = -INFINITY, t = 0.0f;
        for (int k = 0; k < n; k++) { vm = fmaxf(vm, __bfloat162float(v.v[k])); }
        float nm = fmaxf(m, vm);
        for (int k = 0; k < n; k++) { t += __expf(__bfloat162float(v.v[k]) - nm); }
        s = s * __expf(m - nm) + t;
        m = nm;
    }
    // combine (m, s) across the block: max first, then rescaled sums
    float bm = warp_max(m);
    __shared__ float shm[32];
    int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE, nw = blockDim.x / WARP_SIZE;
    if (lane == 0) { shm[warp] = bm; }
    __syncthreads();
    bm = warp_max(lane < nw ? shm[lane] : -INFINITY);
    float total = block_sum(m == -INFINITY ? 0.0f : s * __expf(m - bm));
    float log_z = bm + logf(total);
    int t = targets[row];
    if (threadIdx.x == 0) {
        losses[row] = log_z - __bfloat162float(x[t]);
        if (lse != NULL) { lse[row] = log_z; }
    }
    if (!write_grad) { return; }
    __syncthreads();   // x[t] read above before anyone overwrites it
    // pass 2: d loss / d logit = (p - onehot) * dloss; zero on padded columns
    for (int i = threadIdx.x * 8; i < Vp; i += blockDim.x * 8) {
        x8 v = load16(x + i), g;
        for (int k = 0; k < 8; k++) {
            int j = i + k;
            g.v[k] = __float2bfloat16_rn(softmax_grad(__bfloat162float(v.v[k]), log_z, j, t, V, dloss));
        }
        store16(x + i, g);
    }
}

// Vp % 8 == 0. Targets must be < V (the data loader checks every token).
static inline void fused_classifier(floatX* logits, float* losses, float* lse, const int* targets, float dloss,
                                    int N, int V, int Vp, int write_grad, cudaStream_t s) {
    fused_classifier_kernel<<<N, 1024, 0, s>>>(logits, losses, lse, targets, dloss, V, Vp, write_grad);
    cudaCheckLaunch();
}

#endif // LLMC_CLASSIFIER_CUH
