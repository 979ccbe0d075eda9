// BF16 GEMMs through cuBLASLt (FP32 accumulation), expressed in row-major terms.
// The model calls only the row-major wrapper; the low-precision trainer swaps the
// linear-layer functions (llmc/linear_bf16.cuh) and keeps this file for BF16 work.
#ifndef LLMC_MATMUL_CUH
#define LLMC_MATMUL_CUH

#include <cublasLt.h>
#include "cuda_common.h"

typedef struct {
    cublasLtHandle_t handle;
    void* workspace;           // cuBLASLt scratch, 32 MiB is enough for Hopper kernels
    size_t workspace_bytes;
} GemmContext;

static inline void cublas_check_impl(cublasStatus_t s, const char* what, const char* file, int line) {
    if (s != CUBLAS_STATUS_SUCCESS) { die("cuBLAS error %d in %s at %s:%d", (int)s, what, file, line); }
}
#define cublasCheck(call) cublas_check_impl((call), #call, __FILE__, __LINE__)

static inline void gemm_context_init(GemmContext* g) {
    cublasCheck(cublasLtCreate(&g->handle));
    g->workspace_bytes = 32u << 20;
    g->workspace = cuda_malloc_or_die(g->workspace_bytes, "cuBLASLt workspace");
}

static inline void gemm_context_free(GemmContext* g) {
    cublasCheck(cublasLtDestroy(g->handle));
    cudaCheck(cudaFree(g->workspace));
}

// GELU fused into the GEMM's epilogue (cuBLASLt's GELU is GPT-2's tanh approximation):
// forward writes C = gelu(AB + bias) and aux = AB + bias (the pre-activation, same shape as C);
// backward reads aux and writes C = (AB) * gelu'(aux).
typedef enum { GEMM_NO_GELU, GEMM_GELU_FORWARD, GEMM_GELU_BACKWARD } GemmGelu;

// cuBLASLt's first choice of algorithm for desc and the layouts (first operand a, second b, C c,
// D d) within our workspace; *found = 0 when it has none.
static inline cublasStatus_t gemm_pick_algo(GemmContext* g, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a,
                                            cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                            cublasLtMatmulHeuristicResult_t* heur, int* found) {
    cublasLtMatmulPreference_t pref;
    cublasCheck(cublasLtMatmulPreferenceCreate(&pref));
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                     &g->workspace_bytes, sizeof(g->workspace_bytes)));
    *found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(g->handle, desc, a, b, c, d, pref, 1, heur, found);
    cublasCheck(cublasLtMatmulPreferenceDestroy(pref));
    return st;
}

// Sets the epilogue of a row-major C (M,N) = ... GEMM: bias (N) and/or GELU with aux (M,N), BF16.
static inline void gemm_set_epilogue(cublasLtMatmulDesc_t desc, const floatX* bias, GemmGelu gelu, floatX* aux, int N) {
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
    if (gelu == GEMM_GELU_FORWARD) { epi = bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX; }
    else if (gelu == GEMM_GELU_BACKWARD) { epi = CUBLASLT_EPILOGUE_DGELU; }
    else if (bias != NULL) { epi = CUBLASLT_EPILOGUE_BIAS; }
    if (gelu == GEMM_GELU_BACKWARD && bias != NULL) { die("internal: no bias in the GELU backward epilogue"); }
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    if (gelu != GEMM_NO_GELU) {
        int64_t ld = N;   // aux has C's layout: column-major (N, M)
        cudaDataType_t at = CUDA_R_16BF;
        cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof(aux)));
        cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof(ld)));
        cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, &at, sizeof(at)));
    }
    if (bias != NULL) {
        cudaDataType_t bt = CUDA_R_16BF;
        cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt)));
        cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    }
}

// Row-major, optionally batched:
//   C (M,N) = alpha * op(A) @ op(B) + beta * C  [+ bias (N) broadcast over rows] [GELU epilogue]
// op(A) is (M,K): A is stored (M,K), or (K,M) when transA. op(B) is (K,N): B is
// stored (K,N), or (N,K) when transB. Strides are in elements between batch items.
// cuBLASLt is column-major, so we compute C^T = op(B)^T op(A)^T: a row-major (r,c)
// matrix is a column-major (c,r) one, and the operands swap places.
static inline void gemm_bf16(GemmContext* g, floatX* C, const floatX* A, const floatX* B, const floatX* bias,
                             int M, int N, int K, int transA, int transB, float alpha, float beta,
                             int batch, long strideA, long strideB, long strideC, GemmGelu gelu, floatX* aux,
                             cudaStream_t stream) {
    cublasLtMatmulDesc_t desc;
    cublasCheck(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;   // first column-major operand is B
    cublasOperation_t opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opB, sizeof(opB)));
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opA, sizeof(opA)));
    gemm_set_epilogue(desc, bias, gelu, aux, N);
    // column-major shapes: B' is (N,K) after op, stored (N,K) if !transB else (K,N); ld = stored rows
    cublasLtMatrixLayout_t lb, la, lc;
    cublasCheck(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, transB ? K : N, transB ? N : K, transB ? K : N));
    cublasCheck(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, transA ? M : K, transA ? K : M, transA ? M : K));
    cublasCheck(cublasLtMatrixLayoutCreate(&lc, CUDA_R_16BF, N, M, N));
    if (batch > 1) {
        cublasLtMatrixLayout_t ls[3] = {lb, la, lc};
        long strides[3] = {strideB, strideA, strideC};
        for (int i = 0; i < 3; i++) {
            cublasCheck(cublasLtMatrixLayoutSetAttribute(ls[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof(batch)));
            int64_t s = strides[i];
            cublasCheck(cublasLtMatrixLayoutSetAttribute(ls[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &s, sizeof(s)));
        }
    }
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    cublasCheck(gemm_pick_algo(g, desc, lb, la, lc, lc, &heur, &found));
    if (found == 0) { die("cuBLASLt has no algorithm for M=%d N=%d K=%d transA=%d transB=%d batch=%d", M, N, K, transA, transB, batch); }
    cublasCheck(cublasLtMatmul(g->handle, desc, &alpha, B, lb, A, la, &beta, C, lc, C, lc,
                               &heur.algo, g->workspace, g->workspace_bytes, stream));
    cublasCheck(cublasLtMatrixLayoutDestroy(lb));
    cublasCheck(cublasLtMatrixLayoutDestroy(la));
    cublasCheck(cublasLtMatrixLayoutDestroy(lc));
    cublasCheck(cublasLtMatmulDescDestroy(desc));
}

#endif // LLMC_MATMUL_CUH
