// BF16 GEMMs through cuBLASLt (FP32 accumulation), expressed in row-major terms.
// The model calls only the row-major wrapper; the low-precision trainer swaps the
// linear-layer functions (llmc/linear_bf16.cuh) and keeps this file for BF16 work.
#ifndef LLMC_MATMUL_CUH
#define LLMC_MATMUL_CUH

#include <cublasLt.h>
#include "cuda_common.h"

// What cuBLASLt's heuristic sees of one GEMM: the algorithm cache's key. Pointers are not in it
// (the heuristic does not see them either); flags: bias, beta != 0, fast FP8 accumulation.
#define GEMM_KEY_WORDS 16
typedef struct { int64_t v[GEMM_KEY_WORDS]; } GemmKey;

// A key's algorithm: `choice` indexes the heuristic's list of candidates (-1: none runs the
// GEMM), so a checkpoint can carry the choice and a resumed run repeat the same arithmetic.
typedef struct {
    GemmKey key;
    int choice;
    int ready;                  // algo is filled (a loaded entry has only its choice)
    cublasLtMatmulAlgo_t algo;
} GemmAlgo;

#define GEMM_TUNE_CANDIDATES 8   // cuBLASLt 13 offers at most 8 for the trainers' GEMMs
#define GEMM_TUNE_RUNS 5         // timed runs of each candidate (median), after one warm-up run
#define GEMM_TUNE_MARGIN 0.03    // a candidate replaces the first choice only when 3% faster
#define GEMM_TUNE_MIN_FLOP 1e9   // tune = 1 times GEMMs of at least this many FLOPs; smaller ones
                                 // take microseconds, where timing noise would decide

typedef struct {
    cublasLtHandle_t handle;
    void* workspace;           // cuBLASLt scratch, 32 MiB is enough for Hopper kernels
    size_t workspace_bytes;
    int tune;                  // time the heuristic's candidates at a GEMM's first use and keep the
                               // fastest: 0 never, 1 GEMMs of GEMM_TUNE_MIN_FLOP or more, 2 all
    GemmAlgo* algos;           // one per GEMM identity seen
    int nalgos, cap;
    int tuned, changed;        // GEMMs timed; of those, how many run another than the first choice
    double first_ms, kept_ms;  // summed over tuned GEMMs: one call with the first choice, with the kept one
    double tune_s;             // host time spent timing
} GemmContext;

static inline void cublas_check_impl(cublasStatus_t s, const char* what, const char* file, int line) {
    if (s != CUBLAS_STATUS_SUCCESS) { die("cuBLAS error %d in %s at %s:%d", (int)s, what, file, line); }
}
#define cublasCheck(call) cublas_check_impl((call), #call, __FILE__, __LINE__)

static inline void gemm_context_init(GemmContext* g) {
    memset(g, 0, sizeof(*g));
    cublasCheck(cublasLtCreate(&g->handle));
    g->workspace_bytes = 32u << 20;
    g->workspace = cuda_malloc_or_die(g->workspace_bytes, "cuBLASLt workspace");
}

static inline void gemm_context_free(GemmContext* g) {
    cublasCheck(cublasLtDestroy(g->handle));
    cudaCheck(cudaFree(g->workspace));
    free(g->algos);
}

// GELU fused into the GEMM's epilogue (cuBLASLt's GELU is GPT-2's tanh approximation):
// forward writes C = gelu(AB + bias) and aux = AB + bias (the pre-activation, same shape as C);
// backward reads aux and writes C = (AB) * gelu'(aux).
typedef enum { GEMM_NO_GELU, GEMM_GELU_FORWARD, GEMM_GELU_BACKWARD } GemmGelu;

// cuBLASLt's candidate algorithms for desc and the layouts (first operand a, second b, C c, D d)
// within our workspace, best first: up to n into heur, *found of them (0 when it has none).
static inline cublasStatus_t gemm_pick_algos(GemmContext* g, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a,
                                             cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                             int n, cublasLtMatmulHeuristicResult_t* heur, int* found) {
    cublasLtMatmulPreference_t pref;
    cublasCheck(cublasLtMatmulPreferenceCreate(&pref));
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                     &g->workspace_bytes, sizeof(g->workspace_bytes)));
    *found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(g->handle, desc, a, b, c, d, pref, n, heur, found);
    cublasCheck(cublasLtMatmulPreferenceDestroy(pref));
    return st;
}

// cuBLASLt's first choice (gemm_pick_algos with n = 1)
static inline cublasStatus_t gemm_pick_algo(GemmContext* g, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a,
                                            cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                            cublasLtMatmulHeuristicResult_t* heur, int* found) {
    return gemm_pick_algos(g, desc, a, b, c, d, 1, heur, found);
}

static inline GemmAlgo* gemm_algo_find(GemmContext* g, const GemmKey* key) {
    for (int i = 0; i < g->nalgos; i++) {
        if (memcmp(&g->algos[i].key, key, sizeof(*key)) == 0) { return &g->algos[i]; }
    }
    return NULL;
}

static inline GemmAlgo* gemm_algo_add(GemmContext* g, const GemmKey* key, int choice) {
    if (g->nalgos == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 64;
        g->algos = (GemmAlgo*)realloc(g->algos, (size_t)g->cap * sizeof(GemmAlgo));
        if (g->algos == NULL) { die("out of host memory for the GEMM algorithm cache"); }
    }
    GemmAlgo* e = &g->algos[g->nalgos++];
    memset(e, 0, sizeof(*e));
    e->key = *key;
    e->choice = choice;
    return e;
}

// Times each candidate on the GEMM's own operands (median of GEMM_TUNE_RUNS after a warm-up) and
// returns the index to keep: the fastest when GEMM_TUNE_MARGIN faster than the first choice, else
// the first; -1 when none runs. Each run writes D, or with beta != 0 a scratch of d_bytes so
// the accumulator C is left as it was. Without memory for that scratch the first choice is kept.
static inline int gemm_tune(GemmContext* g, const cublasLtMatmulHeuristicResult_t* heur, int found,
                            cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t la, cublasLtMatrixLayout_t lb,
                            cublasLtMatrixLayout_t lc, cublasLtMatrixLayout_t ld, const void* alpha, const void* A,
                            const void* B, const void* beta, float beta_value, const void* C, void* D, size_t d_bytes,
                            cudaStream_t s) {
    double t0 = now_seconds();
    void* out = D;
    if (beta_value != 0.0f && cudaMalloc(&out, d_bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    // In a training step a GEMM's operands come from DRAM: each timed run follows a write of twice
    // the L2 cache, or the candidates that reuse a warm L2 best would win.
    int l2 = 0, dev = 0;
    cudaCheck(cudaGetDevice(&dev));
    cudaCheck(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
    void* flush = NULL;
    if (cudaMalloc(&flush, 2 * (size_t)l2) != cudaSuccess) { (void)cudaGetLastError(); flush = NULL; }
    cudaEvent_t ev[2 * GEMM_TUNE_RUNS];
    for (int r = 0; r < 2 * GEMM_TUNE_RUNS; r++) { cudaCheck(cudaEventCreate(&ev[r])); }
    int best = -1;
    float best_ms = 0.0f, first_ms = -1.0f;
    for (int i = 0; i < found; i++) {
        cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
        for (int r = -1; r < GEMM_TUNE_RUNS && st == CUBLAS_STATUS_SUCCESS; r++) {   // run -1 warms up
            if (flush != NULL) { cudaCheck(cudaMemsetAsync(flush, r & 0xff, 2 * (size_t)l2, s)); }
            if (r >= 0) { cudaCheck(cudaEventRecord(ev[2 * r], s)); }
            st = cublasLtMatmul(g->handle, desc, alpha, A, la, B, lb, beta, C, lc, out, ld, &heur[i].algo,
                                g->workspace, g->workspace_bytes, s);
            if (r >= 0) { cudaCheck(cudaEventRecord(ev[2 * r + 1], s)); }
        }
        if (st != CUBLAS_STATUS_SUCCESS) { continue; }   // some candidates are refused only when run
        cudaCheck(cudaEventSynchronize(ev[2 * GEMM_TUNE_RUNS - 1]));
        float t[GEMM_TUNE_RUNS];
        for (int r = 0; r < GEMM_TUNE_RUNS; r++) { cudaCheck(cudaEventElapsedTime(&t[r], ev[2 * r], ev[2 * r + 1])); }
        for (int a = 1; a < GEMM_TUNE_RUNS; a++) {   // insertion sort for the median
            for (int b = a; b > 0 && t[b] < t[b - 1]; b--) { float x = t[b]; t[b] = t[b - 1]; t[b - 1] = x; }
        }
        float ms = t[GEMM_TUNE_RUNS / 2];
        if (i == 0) { first_ms = ms; }
        if (best < 0 || ms < best_ms) { best = i; best_ms = ms; }
    }
    for (int r = 0; r < 2 * GEMM_TUNE_RUNS; r++) { cudaCheck(cudaEventDestroy(ev[r])); }
    if (flush != NULL) { cudaCheck(cudaFree(flush)); }
    if (out != D) { cudaCheck(cudaFree(out)); }
    if (first_ms >= 0.0f && best_ms > first_ms * (1.0 - GEMM_TUNE_MARGIN)) { best = 0; best_ms = first_ms; }
    if (best >= 0) {
        g->tuned++;
        g->changed += best != 0;
        g->first_ms += first_ms >= 0.0f ? first_ms : best_ms;
        g->kept_ms += best_ms;
    }
    g->tune_s += now_seconds() - t0;
    return best;
}

// D = alpha op(A) op(B) + beta C through cuBLASLt (its operand order: la describes A, its first
// operand), with the algorithm cached for key. At a key's first use that is the heuristic's first
// choice or, per g->tune and the GEMM's flops, the fastest candidate (gemm_tune; d_bytes: D's
// size). A key whose choice came from a checkpoint (gemm_algos_load) takes that candidate.
// Returns CUBLAS_STATUS_NOT_SUPPORTED, remembered, when no algorithm runs the GEMM.
static inline cublasStatus_t gemm_matmul(GemmContext* g, const GemmKey* key, cublasLtMatmulDesc_t desc,
                                         cublasLtMatrixLayout_t la, cublasLtMatrixLayout_t lb, cublasLtMatrixLayout_t lc,
                                         cublasLtMatrixLayout_t ld, float alpha, const void* A, const void* B, float beta,
                                         const void* C, void* D, size_t d_bytes, double flops, cudaStream_t s) {
    GemmAlgo* e = gemm_algo_find(g, key);
    if (e == NULL) { e = gemm_algo_add(g, key, -2); }   // -2: not chosen yet
    if (!e->ready && e->choice != -1) {
        cublasLtMatmulHeuristicResult_t heur[GEMM_TUNE_CANDIDATES];
        int found = 0;
        cublasStatus_t st = gemm_pick_algos(g, desc, la, lb, lc, ld, GEMM_TUNE_CANDIDATES, heur, &found);
        if (st != CUBLAS_STATUS_SUCCESS && st != CUBLAS_STATUS_NOT_SUPPORTED) { return st; }
        if (st == CUBLAS_STATUS_NOT_SUPPORTED || found == 0) {
            e->choice = -1;
        } else {
            if (e->choice >= found) {
                fprintf(stderr, "warning: a checkpoint's GEMM algorithm %d is not among cuBLASLt's %d here; "
                        "using its first choice (the run will not repeat the saved one's rounding)\n", e->choice, found);
                e->choice = 0;
            }
            if (e->choice == -2) {
                int tune = found > 1 && (g->tune == 2 || (g->tune == 1 && flops >= GEMM_TUNE_MIN_FLOP));
                e->choice = tune
                          ? gemm_tune(g, heur, found, desc, la, lb, lc, ld, &alpha, A, B, &beta, beta, C, D, d_bytes, s)
                          : 0;
            }
            if (e->choice >= 0) { e->algo = heur[e->choice].algo; }
        }
        e->ready = 1;
    }
    if (e->choice < 0) { return CUBLAS_STATUS_NOT_SUPPORTED; }
    cublasStatus_t st = cublasLtMatmul(g->handle, desc, &alpha, A, la, B, lb, &beta, C, lc, D, ld, &e->algo,
                                       g->workspace, g->workspace_bytes, s);
    if (st == CUBLAS_STATUS_NOT_SUPPORTED) { e->choice = -1; }   // refused only when run
    return st;
}

// The cache as int64 words for a checkpoint: per chosen key, its GEMM_KEY_WORDS then its choice.
#define GEMM_ALGO_WORDS (GEMM_KEY_WORDS + 1)
static inline int gemm_algos_count(const GemmContext* g) {
    int n = 0;
    for (int i = 0; i < g->nalgos; i++) { n += g->algos[i].choice >= -1; }
    return n;
}

static inline void gemm_algos_save(const GemmContext* g, int64_t* dst) {
    for (int i = 0; i < g->nalgos; i++) {
        if (g->algos[i].choice < -1) { continue; }
        memcpy(dst, g->algos[i].key.v, sizeof(g->algos[i].key.v));
        dst[GEMM_KEY_WORDS] = g->algos[i].choice;
        dst += GEMM_ALGO_WORDS;
    }
}

// Replaces the cache with n saved choices; keys not among them are chosen at first use.
// Returns 0, loading nothing, when a choice is out of range (a corrupt file).
static inline int gemm_algos_load(GemmContext* g, const int64_t* src, int n) {
    for (int i = 0; i < n; i++) {
        int64_t c = src[(size_t)i * GEMM_ALGO_WORDS + GEMM_KEY_WORDS];
        if (c < -1 || c >= GEMM_TUNE_CANDIDATES) { return 0; }
    }
    g->nalgos = 0;
    for (int i = 0; i < n; i++, src += GEMM_ALGO_WORDS) {
        GemmKey k;
        memcpy(k.v, src, sizeof(k.v));
        gemm_algo_add(g, &k, (int)src[GEMM_KEY_WORDS]);
    }
    return 1;
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
    GemmKey key = {{1, M, N, K, transA, transB, batch, gelu, bias != NULL, beta != 0.0f, 0, strideA, strideB, strideC, 0, 0}};
    size_t c_bytes = ((size_t)(batch > 1 ? strideC * (batch - 1) : 0) + (size_t)M * N) * sizeof(floatX);
    double flops = 2.0 * M * N * K * (batch > 1 ? batch : 1);
    cublasStatus_t st = gemm_matmul(g, &key, desc, lb, la, lc, lc, alpha, B, A, beta, C, C, c_bytes, flops, stream);
    if (st == CUBLAS_STATUS_NOT_SUPPORTED) { die("cuBLASLt has no algorithm for M=%d N=%d K=%d transA=%d transB=%d batch=%d", M, N, K, transA, transB, batch); }
    cublasCheck(st);
    cublasCheck(cublasLtMatrixLayoutDestroy(lb));
    cublasCheck(cublasLtMatrixLayoutDestroy(la));
    cublasCheck(cublasLtMatrixLayoutDestroy(lc));
    cublasCheck(cublasLtMatmulDescDestroy(desc));
}

#endif // LLMC_MATMUL_CUH
