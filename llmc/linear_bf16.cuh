// The linear-layer (GEMM) layer of the BF16 trainer. Every weight GEMM of the model
// goes through linear_forward / linear_backward, identified by its kind and layer, so
// a low-precision trainer can provide the same functions (and keep per-tensor state
// such as FP8 scales keyed by kind and layer) while the model code stays shared.
#ifndef LLMC_LINEAR_BF16_CUH
#define LLMC_LINEAR_BF16_CUH

#include "matmul.cuh"
#include "reduce.cuh"

#define LLMC_LINEAR_DEFINED 1

typedef enum { LINEAR_QKV, LINEAR_ATTPROJ, LINEAR_FC, LINEAR_FCPROJ, LINEAR_LMHEAD, LINEAR_KINDS } LinearKind;

typedef struct {
    GemmContext gemm;
} LinearContext;

static inline const char* linear_precision_name(void) { return "bf16"; }

static inline void linear_context_init(LinearContext* lc, int num_layers) {
    (void)num_layers;
    gemm_context_init(&lc->gemm);
}

static inline void linear_context_free(LinearContext* lc) { gemm_context_free(&lc->gemm); }

// out (N,OC) = inp (N,IC) @ weight (OC,IC)^T + bias (OC); bias may be NULL
static inline void linear_forward(LinearContext* lc, LinearKind kind, int layer, floatX* out, const floatX* inp,
                                  const floatX* weight, const floatX* bias, int N, int IC, int OC, cudaStream_t s) {
    (void)kind; (void)layer;
    gemm_bf16(&lc->gemm, out, inp, weight, bias, N, OC, IC, 0, 1, 1.0f, 0.0f, 1, 0, 0, 0, s);
}

// dinp (N,IC) = dout (N,OC) @ weight (OC,IC)      (overwritten)
// dweight (OC,IC) += dout^T @ inp (N,IC)          (accumulated over micro-batches)
// dbias (OC) += column sums of dout, when dbias != NULL; scratch: colsum_num_chunks(N) * OC floats
static inline void linear_backward(LinearContext* lc, LinearKind kind, int layer, floatX* dinp, floatX* dweight,
                                   floatX* dbias, float* scratch, const floatX* dout, const floatX* inp,
                                   const floatX* weight, int N, int IC, int OC, cudaStream_t s) {
    (void)kind; (void)layer;
    gemm_bf16(&lc->gemm, dinp, dout, weight, NULL, N, IC, OC, 0, 0, 1.0f, 0.0f, 1, 0, 0, 0, s);
    gemm_bf16(&lc->gemm, dweight, dout, inp, NULL, OC, IC, N, 1, 0, 1.0f, 1.0f, 1, 0, 0, 0, s);
    if (dbias != NULL) { bias_backward(dbias, dout, scratch, N, OC, s); }
}

#endif // LLMC_LINEAR_BF16_CUH
