// CUDA-side basics shared by every kernel header: error checks, the BF16 type,
// 16-byte vector access, checked device allocation (never managed memory), and
// deterministic hashing used for stochastic rounding.
#ifndef LLMC_CUDA_COMMON_H
#define LLMC_CUDA_COMMON_H

#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <stdint.h>
#include "utils.h"

typedef __nv_bfloat16 floatX;   // storage type of parameters, activations and gradients

#define WARP_SIZE 32

static inline void cuda_check_impl(cudaError_t e, const char* what, const char* file, int line) {
    if (e != cudaSuccess) { die("CUDA error in %s at %s:%d: %s", what, file, line, cudaGetErrorString(e)); }
}
#define cudaCheck(call) cuda_check_impl((call), #call, __FILE__, __LINE__)
// After a launch: catches bad launch configurations at once (the kernel itself reports later).
#define cudaCheckLaunch() cuda_check_impl(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

// Allocates device memory or exits saying how much was asked for and how much is free.
// Out of memory is fatal by design: no managed-memory fallback (it can hang the GPU).
static inline void* cuda_malloc_or_die(size_t bytes, const char* what) {
    void* p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 16);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        die("out of GPU memory: %s needs %.3f GiB, %.3f GiB free of %.3f GiB (%s); "
            "try a smaller micro-batch (-b) or recompute (-r 1)",
            what, bytes / 1073741824.0, free_b / 1073741824.0, total_b / 1073741824.0, cudaGetErrorString(e));
    }
    return p;
}

static inline int ceil_div(long a, long b) { return (int)((a + b - 1) / b); }
// bytes rounded up to 256: where the next piece of a carved scratch buffer may start
static inline size_t align256(size_t bytes) { return (bytes + 255) & ~(size_t)255; }

// 16 bytes of any element type, so kernels load and store with 128-bit instructions.
template <typename T>
struct alignas(16) Vec16 {
    static constexpr int n = 16 / sizeof(T);
    T v[n];
};
typedef Vec16<floatX> x8;       // 8 x bf16
typedef Vec16<float> f4;        // 4 x float

template <typename T>
__device__ __forceinline__ Vec16<T> load16(const T* p) { return *reinterpret_cast<const Vec16<T>*>(p); }
// Streaming load: data read once, keep it out of L1/L2 priority.
template <typename T>
__device__ __forceinline__ Vec16<T> load16_cs(const T* p) {
    Vec16<T> r;
    *reinterpret_cast<int4*>(&r) = __ldcs(reinterpret_cast<const int4*>(p));
    return r;
}
template <typename T>
__device__ __forceinline__ void store16(T* p, const Vec16<T>& v) { *reinterpret_cast<Vec16<T>*>(p) = v; }

// One copy of `bytes` (a multiple of 16, both addresses 16-byte aligned) from global into shared
// memory by the copy engine on Hopper, so no thread's registers wait on loads in flight. One
// thread starts it (bar: a shared-memory word for this copy alone); after a __syncthreads the
// block's threads wait for it. Before Hopper the waiting threads copy it themselves.
__device__ __forceinline__ void smem_copy_start(uint64_t* bar, void* dst, const void* src, int bytes) {
#if __CUDA_ARCH__ >= 900
    uint32_t b = (uint32_t)__cvta_generic_to_shared(bar), d = (uint32_t)__cvta_generic_to_shared(dst);
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n"
                 "fence.mbarrier_init.release.cluster;\n"
                 "mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n"
                 "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%2], [%3], %1, [%0];\n"
                 :: "r"(b), "r"(bytes), "r"(d), "l"(src) : "memory");
#endif
}
__device__ __forceinline__ void smem_copy_wait(uint64_t* bar, void* dst, const void* src, int bytes) {
#if __CUDA_ARCH__ >= 900
    asm volatile("{\n.reg .pred done;\nwait_copy:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], 0;\n"
                 "@!done bra wait_copy;\n}\n" :: "r"((uint32_t)__cvta_generic_to_shared(bar)) : "memory");
#else
    for (int i = threadIdx.x * 16; i < bytes; i += blockDim.x * 16) {
        *reinterpret_cast<int4*>((char*)dst + i) = *reinterpret_cast<const int4*>((const char*)src + i);
    }
    __syncthreads();
#endif
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) { v += __shfl_xor_sync(0xffffffffu, v, o); }
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) { v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o)); }
    return v;
}
// Sum over a block of up to 1024 threads; result valid in every thread. Fixed order: deterministic.
__device__ __forceinline__ float block_sum(float v) {
    __shared__ float partial[32];
    int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE, nwarps = blockDim.x / WARP_SIZE;
    v = warp_sum(v);
    __syncthreads();   // partial[] may still be read by a previous call
    if (lane == 0) { partial[warp] = v; }
    __syncthreads();
    v = lane < nwarps ? partial[lane] : 0.0f;
    return warp_sum(v);
}

// Counter-based hash (a few rounds of integer mixing): the random bits for
// stochastic rounding depend only on (seed, index), so results are reproducible
// whatever the launch configuration.
__host__ __device__ __forceinline__ uint32_t hash_u32(uint32_t x, uint32_t seed) {
    x ^= seed * 0x9E3779B9u;
    x ^= x >> 16; x *= 0x7feb352du;
    x ^= x >> 15; x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

// FP32 -> BF16 with stochastic rounding: add 16 random bits below the BF16 mantissa
// and truncate, so E[round(x)] = x. Inf/NaN pass through unchanged.
__device__ __forceinline__ floatX bf16_stochastic_round(float x, uint32_t random) {
    uint32_t bits = __float_as_uint(x);
    if ((bits & 0x7f800000u) == 0x7f800000u) { return __float2bfloat16_rn(x); }
    uint32_t rounded = (bits + (random & 0xFFFFu)) & 0xFFFF0000u;
    return __float2bfloat16_rn(__uint_as_float(rounded));   // already representable: exact
}

#endif // LLMC_CUDA_COMMON_H
