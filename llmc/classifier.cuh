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

// The log of the softmax normaliser of row x's first V values; every thread of the block calls
// it and gets it. An online max and sum of exp, the running sum rescaled once per 8 values (an
// exp per value and one per 8: the SFU's exps bound this pass when it was one per value).
__device__ __forceinline__ float classifier_log_z(const floatX* x, int V) {
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
    return bm + logf(total);
}

// One block per row. logits (N,Vp) -> dlogits (N,Vp) in place when WRITE_GRAD;
// losses (N) = -log softmax(logits)[target]; dloss: gradient of the total loss per position's loss;
// lse (N) (NULL: not written) = log of the softmax's normaliser, for a later pass that makes the
// gradient (an FP8 LM head's backward, see CAST_SOFTMAX_GRAD in llmc/fp8_cast.cuh).
// KEEP: the row's first ceil8(V) values come into shared memory by one bulk copy and both passes
// read them there: 1.22 ms over 16,384 rows of 50,304 (`dev/test_kernels`, H100), against 1.43
// when the second pass re-read the row from global memory, mostly missing L2. (The loss-only
// pass reads the row once and gains nothing.)
template <int WRITE_GRAD, int KEEP>
__global__ void __launch_bounds__(1024) fused_classifier_kernel(floatX* logits, float* losses, float* lse, const int* targets,
                                                                float dloss, int V, int Vp) {
    extern __shared__ __align__(16) floatX kept[];   // (V rounded up to 8) with KEEP
    __shared__ uint64_t ready;
    long row = blockIdx.x;
    floatX* x = logits + row * Vp;
    const floatX* r = x;   // where the passes read the row
    if (KEEP) {
        int bytes = (V + 7) / 8 * 8 * (int)sizeof(floatX);
        if (threadIdx.x == 0) { smem_copy_start(&ready, kept, x, bytes); }
        __syncthreads();   // the barrier set up before anyone waits on it
        smem_copy_wait(&ready, kept, x, bytes);
        r = kept;
    }
    float log_z = classifier_log_z(r, V);
    int t = targets[row];
    if (threadIdx.x == 0) {
        losses[row] = log_z - __bfloat162float(r[t]);
        if (lse != NULL) { lse[row] = log_z; }
    }
    if (!WRITE_GRAD) { return; }
    if (!KEEP) { __syncthreads(); }   // x[t] read above before anyone overwrites it
    // pass 2: d loss / d logit = (p - onehot) * dloss; zero on padded columns
    for (int i = threadIdx.x * 8; i < Vp; i += blockDim.x * 8) {
        x8 v, g;
        if (!KEEP || i < V) { v = load16(r + i); }
        else { for (int k = 0; k < 8; k++) { v.v[k] = __float2bfloat16(0.0f); } }   // padding beyond the copy
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
    if (!write_grad) {
        fused_classifier_kernel<0, 0><<<N, 1024, 0, s>>>(logits, losses, lse, targets, dloss, V, Vp);
        cudaCheckLaunch();
        return;
    }
    int dev = 0, most = 0, smem = (V + 7) / 8 * 8 * (int)sizeof(floatX);
    cudaCheck(cudaGetDevice(&dev));
    cudaCheck(cudaDeviceGetAttribute(&most, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    if (smem + 1024 <= most) {   // 1 KB: room for the static shared memory
        cudaCheck(cudaFuncSetAttribute(fused_classifier_kernel<1, 1>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        fused_classifier_kernel<1, 1><<<N, 1024, smem, s>>>(logits, losses, lse, targets, dloss, V, Vp);
    } else {
        fused_classifier_kernel<1, 0><<<N, 1024, 0, s>>>(logits, losses, lse, targets, dloss, V, Vp);
    }
    cudaCheckLaunch();
}

#endif // LLMC_CLASSIFIER_CUH
