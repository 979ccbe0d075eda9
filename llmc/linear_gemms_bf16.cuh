// The BF16 GEMMs of one linear layer, forward and backward, shared by every linear-layer header
// (the BF16 trainer's, and the low-precision layers' BF16 paths: --precision bf16, BF16 blocks,
// shapes their kernels do not take). Each part is marked for --profile under the layer's name.
#ifndef LLMC_LINEAR_GEMMS_BF16_CUH
#define LLMC_LINEAR_GEMMS_BF16_CUH

#include "matmul.cuh"
#include "reduce.cuh"
#include "profile.h"

// out (N,OC) = inp (N,IC) @ weight (OC,IC)^T + bias (OC) (bias may be NULL); with pre_gelu
// (N,OC): pre_gelu = that sum and out = gelu(pre_gelu), in the GEMM's epilogue.
static inline void bf16_linear_forward(GemmContext* g, Profiler* prof, const char* name, floatX* out, floatX* pre_gelu,
                                       const floatX* inp, const floatX* weight, const floatX* bias, int N, int IC, int OC,
                                       cudaStream_t s) {
    gemm_bf16(g, out, inp, weight, bias, N, OC, IC, 0, 1, 1.0f, 0.0f, 1, 0, 0, 0,
              pre_gelu ? GEMM_GELU_FORWARD : GEMM_NO_GELU, pre_gelu, s);
    prof_mark(prof, name, "fprop gemm");
}

// dinp (N,IC) = dout (N,OC) @ weight (OC,IC), times gelu'(pre_gelu (N,IC)) when given;
// dweight (OC,IC) += dout^T @ inp; dbias (OC) += column sums of dout when dbias != NULL
// (scratch: colsum_num_chunks(N) * OC floats).
static inline void bf16_linear_backward(GemmContext* g, Profiler* prof, const char* name, floatX* dinp, floatX* dweight,
                                        floatX* dbias, float* scratch, const floatX* dout, const floatX* inp,
                                        const floatX* pre_gelu, const floatX* weight, int N, int IC, int OC, cudaStream_t s) {
    gemm_bf16(g, dinp, dout, weight, NULL, N, IC, OC, 0, 0, 1.0f, 0.0f, 1, 0, 0, 0,
              pre_gelu ? GEMM_GELU_BACKWARD : GEMM_NO_GELU, (floatX*)pre_gelu, s);
    prof_mark(prof, name, "dgrad gemm");
    gemm_bf16(g, dweight, dout, inp, NULL, OC, IC, N, 1, 0, 1.0f, 1.0f, 1, 0, 0, 0, GEMM_NO_GELU, NULL, s);
    prof_mark(prof, name, "wgrad gemm");
    if (dbias != NULL) { bias_backward(dbias, dout, scratch, N, OC, s); prof_mark(prof, name, "bias grad"); }
}

#endif // LLMC_LINEAR_GEMMS_BF16_CUH
