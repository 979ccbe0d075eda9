// The BF16 GEMMs of one linear layer, forward and backward, shared by every linear-layer header
// (the BF16 trainer's, and the low-precision layers' BF16 paths: --precision bf16, BF16 blocks,
// shapes their kernels do not take). Each part is marked for --profile under the layer's name.
#ifndef LLMC_LINEAR_GEMMS_BF16_CUH
#define LLMC_LINEAR_GEMMS_BF16_CUH

#include "matmul.cuh"
#include "reduce.cuh"
#include "profile.h"

// Bias-gradient partials that the producer of a linear's output gradient summed already
// (attention's backward, for the QKV linear: AttGradOut's colsum), for that linear's backward.
typedef struct {
    float* buf;         // (chunks, n) partials, then (GRAD_PARTIAL_GROUPS, n) of the first reduction
    size_t floats;
    int chunks, n, layer;   // chunks > 0: pending for linear `layer`'s backward
} GradPartials;

#define GRAD_PARTIAL_GROUPS 32

// Room for chunks x n partials (grown at warm-up, as the other scratch).
static inline float* grad_partials_begin(GradPartials* p, int layer, int chunks, int n) {
    size_t need = (size_t)(chunks + GRAD_PARTIAL_GROUPS) * n;
    if (need > p->floats) {
        if (p->buf != NULL) { cudaCheck(cudaFree(p->buf)); }
        p->buf = (float*)cuda_malloc_or_die(need * sizeof(float), "bias gradient partials");
        p->floats = need;
    }
    p->chunks = chunks; p->n = n; p->layer = layer;
    return p->buf;
}

// groups (G, n) = sums of consecutive runs of the chunks' rows, in order
__global__ void grad_partials_group_kernel(float* groups, const float* partials, int chunks, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x, g = blockIdx.y, per = (chunks + gridDim.y - 1) / gridDim.y;
    if (i >= n) { return; }
    float s = 0.0f;
    for (int c = g * per; c < chunks && c < (g + 1) * per; c++) { s += partials[(long)c * n + i]; }
    groups[(long)g * n + i] = s;
}

// dbias (n) += the pending partials of linear `layer`, summed in a fixed order; 0 if none pending.
static inline int grad_partials_end(GradPartials* p, int layer, floatX* dbias, int n, cudaStream_t s) {
    if (p->chunks == 0) { return 0; }
    if (p->layer != layer || p->n != n) { die("internal: bias partials of layer %d (%d wide) taken by layer %d (%d)", p->layer, p->n, layer, n); }
    float* groups = p->buf + (size_t)p->chunks * n;
    grad_partials_group_kernel<<<dim3(ceil_div(n, 256), GRAD_PARTIAL_GROUPS), 256, 0, s>>>(groups, p->buf, p->chunks, n);
    cudaCheckLaunch();
    add_partials(dbias, groups, GRAD_PARTIAL_GROUPS, n, n, s);
    p->chunks = 0;
    return 1;
}

static inline void grad_partials_free(GradPartials* p) {
    if (p->buf != NULL) { cudaCheck(cudaFree(p->buf)); }
    memset(p, 0, sizeof(*p));
}

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
// (scratch: colsum_num_chunks(N) * OC floats), or the partials pending in `sums` for linear
// `layer` when there are (sums may be NULL).
static inline void bf16_linear_backward(GemmContext* g, Profiler* prof, const char* name, floatX* dinp, floatX* dweight,
                                        floatX* dbias, float* scratch, const floatX* dout, const floatX* inp,
                                        const floatX* pre_gelu, const floatX* weight, int N, int IC, int OC,
                                        GradPartials* sums, int layer, cudaStream_t s) {
    gemm_bf16(g, dinp, dout, weight, NULL, N, IC, OC, 0, 0, 1.0f, 0.0f, 1, 0, 0, 0,
              pre_gelu ? GEMM_GELU_BACKWARD : GEMM_NO_GELU, (floatX*)pre_gelu, s);
    prof_mark(prof, name, "dgrad gemm");
    gemm_bf16(g, dweight, dout, inp, NULL, OC, IC, N, 1, 0, 1.0f, 1.0f, 1, 0, 0, 0, GEMM_NO_GELU, NULL, s);
    prof_mark(prof, name, "wgrad gemm");
    if (dbias == NULL) { return; }
    if (sums == NULL || !grad_partials_end(sums, layer, dbias, OC, s)) { bias_backward(dbias, dout, scratch, N, OC, s); }
    prof_mark(prof, name, "bias grad");
}

#endif // LLMC_LINEAR_GEMMS_BF16_CUH
