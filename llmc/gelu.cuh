// GELU, tanh approximation (GPT-2's), 8 elements per thread: recomputes the MLP's activation
// in backward when it is not stored (-r 1), and GELU's backward where a low-precision GEMM has no
// such epilogue. The GEMM epilogues do GELU everywhere else.
#ifndef LLMC_GELU_CUH
#define LLMC_GELU_CUH

#include "cuda_common.h"

#define GELU_SCALE 0.7978845608028654f   // sqrt(2/pi)

// The hardware tanh (one MUFU op, max relative error ~2^-11, below the BF16 rounding every
// result gets): tanhf's ~20 instructions made the GELU casts compute-bound.
__device__ __forceinline__ float tanh_fast(float x) {
    float y;
    asm("tanh.approx.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

__device__ __forceinline__ float gelu_f(float x) {
    float u = GELU_SCALE * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + tanh_fast(u));
}

// d gelu(x) / dx
__device__ __forceinline__ float gelu_grad_f(float x) {
    float th = tanh_fast(GELU_SCALE * (x + 0.044715f * x * x * x));
    float du = GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);   // d/dx of tanh's argument
    return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du;
}

// out (n) = gelu(inp (n)); n % 8 == 0
__global__ void gelu_forward_kernel(floatX* out, const floatX* inp, long n) {
    long i = ((long)blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (i >= n) { return; }
    x8 x = load16(inp + i), o;
    for (int k = 0; k < 8; k++) { o.v[k] = __float2bfloat16_rn(gelu_f(__bfloat162float(x.v[k]))); }
    store16(out + i, o);
}

static inline void gelu_forward(floatX* out, const floatX* inp, long n, cudaStream_t s) {
    gelu_forward_kernel<<<ceil_div(n / 8, 256), 256, 0, s>>>(out, inp, n);
    cudaCheckLaunch();
}

// d (n) = bf16(d * gelu'(pre (n))), n % 8 == 0: the GELU backward of a low-precision GEMM that
// has no (fast) DGELU epilogue.
__global__ void gelu_backward_inplace_kernel(floatX* d, const floatX* pre, long n) {
    long i = ((long)blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (i >= n) { return; }
    x8 g = load16(d + i), x = load16(pre + i);
    for (int k = 0; k < 8; k++) { g.v[k] = __float2bfloat16_rn(__bfloat162float(g.v[k]) * gelu_grad_f(__bfloat162float(x.v[k]))); }
    store16(d + i, g);
}

static inline void gelu_backward_inplace(floatX* d, const floatX* pre, long n, cudaStream_t s) {
    gelu_backward_inplace_kernel<<<ceil_div(n / 8, 256), 256, 0, s>>>(d, pre, n);
    cudaCheckLaunch();
}

#endif // LLMC_GELU_CUH
