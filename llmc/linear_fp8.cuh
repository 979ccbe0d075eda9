// The FP8 linear layer: the interface of llmc/linear_bf16.cuh with the three GEMMs of each
// linear on Hopper's FP8 tensor cores through cuBLASLt (FP32 accumulation, BF16 outputs):
//   fprop  out (N,OC) = x (N,IC) @ W (OC,IC)^T + bias      x, W E4M3
//   dgrad  dx (N,IC)  = dy (N,OC) @ W (OC,IC)               dy E5M2 (hybrid) or E4M3, W^T
//   wgrad  dW (OC,IC) += dy^T @ x (N,IC)                    dy^T and x^T copies
// cuBLASLt's FP8 kernels take both operands K-major, hence the transposed copies, which the
// cast kernels write in the same pass as the plain ones (W^T: transposed from the FP8 W in each
// backward, into scratch, so that FP8 weights cost 1 byte per parameter, not 2). Each quantized
// tensor (x, W, dy of every linear) has its own scale, from delayed or current scaling
// (llmc/fp8_scaling.h).
// Weights are cast once per optimizer step. The inputs that LayerNorms produce (of the QKV, FC
// and LM-head linears) are kept in FP8 from forward to backward, which transposes them for the
// weight gradient, so the model keeps no BF16 copy of them (linear_keeps_input); under delayed
// scaling the LayerNorm writes them in FP8 directly (linear_input_fp8), with no separate cast.
// Attention's output is cast in forward and re-cast, transposed, in backward. GELU's is written
// in FP8 by the FC's GEMM (fc_gelu_out8; under current scaling cast in forward) and re-made from
// pre-GELU, transposed, in backward (linear_backward_reads_input).
// Output gradients are cast, with their transposes, into a scratch arena in chunks of rows
// small enough that the LM head's (N,Vp) gradient needs little more scratch than the other
// linears; the same pass sums the bias gradient (biases stay BF16, added by the fprop epilogue).
// The QKV linear's comes from attention's backward, which writes it there in FP8 with its
// transpose and bias sums (att_grad_out, delayed scaling).
// GELU rides in the FC's fprop epilogue; GELU's backward in the FC's gradient cast
// (linear_backward_mlp), and the LM head's softmax gradient in its own (linear_backward_lmhead),
// where the scale is known ahead (delayed scaling); else they are passes of their own.
// --precision bf16 runs the plain BF16 path of llmc/linear_bf16.cuh through this binary;
// --precision mxfp8|nvfp4 the block-scaled formats of llmc/linear_mx.cuh (included below), which
// keep the LayerNorms' outputs too, as the weight gradients' quantized x^T.
#ifndef LLMC_LINEAR_FP8_CUH
#define LLMC_LINEAR_FP8_CUH

#include <limits.h>
#include "linear_gemms_bf16.cuh"
#include "gelu.cuh"
#include "train_args.h"
#include "fp8.h"
#include "fp8_scaling.h"
#include "fp8_cast.cuh"
#include "multi_gpu.h"
#include "linear_mx.cuh"
#include "attention_fp8.cuh"

#define LLMC_LINEAR_DEFINED 1

typedef enum { LINEAR_QKV, LINEAR_ATTPROJ, LINEAR_FC, LINEAR_FCPROJ, LINEAR_LMHEAD, LINEAR_KINDS } LinearKind;
static const char* const LINEAR_KIND_NAMES[LINEAR_KINDS] = {"qkv", "attproj", "fc", "fcproj", "lmhead"};

// The quantized tensors of an FP8 linear: its input, its weight, its output's gradient.
typedef enum { FP8_ROLE_X, FP8_ROLE_W, FP8_ROLE_DY, FP8_ROLES } Fp8Role;
static const char* const FP8_ROLE_NAMES[FP8_ROLES] = {"x", "w", "dy"};

typedef struct {
    int fp8;                  // --precision fp8 (1) | bf16, mxfp8, nvfp4 (0)
    int mx;                   // --precision mxfp8 | nvfp4: an MxMode (llmc/linear_mx.cuh), else 0
    int mx_native;            // --mx-gemm native (1) | dequant (0)
    int mx_floor;             // --mx-scale-rounding floor (1) | ceil (0)
    int lm_head_set, bf16_layers_set;   // given on the command line (else the mode's defaults)
    Fp8Recipe scaling;        // --fp8-scaling delayed|current
    int amax_history;         // --amax-history N
    Fp8AmaxAlgo amax_algo;    // --amax-algo max|most_recent
    int margin;               // --fp8-margin N
    int hybrid;               // --fp8-format hybrid (1: E5M2 gradients) | e4m3 (0)
    int lm_head_fp8;          // --lm-head fp8|bf16
    const char* bf16_layers;  // --bf16-layers SPEC, resolved against the layer count at init
    int stats_every;          // --fp8-stats N, 0 = off
    int zero_fp8_gather;      // --zero-fp8-gather 1|0: under -z 1, weights travel as FP8 codes
    int att_fp8;              // --attention fp8|bf16: attention's products in FP8 (--precision fp8 only)
} LinearOptions;

typedef struct {
    uint8_t* w;               // (OC,IC) fp8 weight: fprop's K-major operand (backward transposes it)
    const floatX* src;        // the BF16 weight they were cast from
    int OC, IC;
    int stale;                // 1: src may have changed since the cast
} Fp8Weight;

typedef struct {
    GemmContext gemm;              // BF16 GEMMs (attention, BF16 layers) and the cuBLASLt workspace
    Profiler* prof;                // --profile: marks of the layer's parts (NULL: off)
    LinearOptions opt;
    int num_layers;
    int num_linears;               // 4 per block + the LM head
    int num_tensors;               // FP8_ROLES per linear, then ATT8_TENSORS per layer with FP8 attention
    int att_tensor0;               // the first attention tensor: FP8_ROLES * num_linears
    unsigned char* use_fp8;        // (num_linears) 1: the linear runs in FP8
    Fp8Weight* weights;            // (num_linears)
    Fp8Scaling sc;                 // host half of the scaling state
    float* sc_block;               // device half, fp8_block_floats(NT, H) floats
    unsigned long long* counts;    // (NT,2) device: saturated, flushed elements of a stats step
    double* counted;               // (NT) elements cast in a stats step
    int stats_step;                // 1: the current step counts saturation and flushes
    int weights_hook;              // 1: linear_weights_changed marks weights stale (else each backward does)
    int fused_gelu;                // 1: try cuBLASLt's GELU epilogue in FP8 forward (tests clear it to cover the other path)
    int fused_inputs;              // 1: producers write inputs in FP8 (linear_input_fp8; tests clear it to compare)
    int fused_gelu_out;            // 1: the FC's GEMM writes the FC projection's FP8 input (fc_gelu_out8; tests clear it)
    int att8_keep;                 // 1: FP8 attention keeps Q, K, V's copies for its backward (linear_attention_keeps_qkv)
    long unfused_gelu;             // forward GEMMs whose GELU ran as a separate pass: no FP8 kernel with the epilogue
    long gelu_out8;                // FC GEMMs that wrote GELU's output in FP8
    float* out8;                   // (8) device: [0] the D scale, [4] the amax of an FP8-output GEMM (16-byte aligned)
    long fused_mlp;                // MLP backwards with GELU's backward in the FC's gradient cast
    uint8_t* arena;                // fp8 gradients and transposed copies of one call
    size_t arena_bytes;
    size_t arena_budget;           // chunks of a backward call fit in this (0: whole calls)
    uint8_t** saved_x;             // (num_linears) each FP8 linear's input (rows, IC), kept for backward
    int* saved_rows;               // (num_linears) rows saved_x[i] holds
    unsigned char* x_ready;        // (num_linears) 1: the producer wrote this call's input in FP8 already
    int dy_ready;                  // 1 + the layer whose QKV output gradient attention's backward wrote in FP8 (0: none)
    GradPartials qkv_bias;         // the QKV bias gradient's partials, summed by attention's backward
    int fused_dy;                  // 1: attention's backward may write the QKV gradient in FP8 (tests clear it)

    char name[80];
    const MultiGpu* comm;          // ranks whose amaxes are reduced (max) before the scales are folded
    float* part_amax;              // (num_linears) device: amaxes of the weight parts a rank casts (FP8 gather)
    MxLinear mx;                   // --precision mxfp8|nvfp4
} LinearContext;

// ------------------------------------------------------------------------------------------
// options

static inline void linear_options_defaults(LinearOptions* o) {
    memset(o, 0, sizeof(*o));
    o->fp8 = 1; o->scaling = FP8_SCALING_DELAYED; o->amax_history = 1024; o->amax_algo = FP8_AMAX_MAX;
    o->margin = 0; o->hybrid = 1; o->lm_head_fp8 = 1; o->bf16_layers = "none"; o->stats_every = 0;
    o->zero_fp8_gather = 1; o->att_fp8 = 0;
}

// Applies an --bf16-layers SPEC ("none", "0,10,11", "first:1,last:2", items mixed freely) to
// mask (L entries) when mask != NULL. Returns NULL, or why the spec is bad. L < 0 checks only
// the syntax (flags are parsed before the model's depth is known).
static inline const char* bf16_layers_parse(const char* spec, int L, unsigned char* mask) {
    if (strcmp(spec, "none") == 0) { return NULL; }
    const char* p = spec;
    for (;;) {
        int first = strncmp(p, "first:", 6) == 0, last = strncmp(p, "last:", 5) == 0;
        p += first ? 6 : last ? 5 : 0;
        if (*p < '0' || *p > '9') { return "expected none, or a comma-separated list of N, first:N, last:N"; }
        long v = 0;
        while (*p >= '0' && *p <= '9') { v = v * 10 + (*p++ - '0'); if (v > 1000000) { return "number too large"; } }
        if (L >= 0) {
            if (!first && !last && v >= L) { return "a layer index is beyond the model's last layer"; }
            if ((first || last) && v > L) { return "asks for more layers than the model has"; }
            for (long i = 0; i < ((first || last) ? v : 1); i++) {
                long l = first ? i : last ? L - 1 - i : v;
                if (l >= 0 && l < L) { mask[l] = 1; }
            }
        }
        if (*p == '\0') { return NULL; }
        if (*p++ != ',') { return "expected ',' between items"; }
    }
}

static inline int linear_options_parse(LinearOptions* o, const char* flag, const char* value) {
    if (strcmp(flag, "--precision") == 0) {
        o->fp8 = 0; o->mx = 0;
        if (strcmp(value, "fp8") == 0) { o->fp8 = 1; }
        else if (strcmp(value, "mxfp8") == 0) { o->mx = 1; }
        else if (strcmp(value, "nvfp4") == 0) { o->mx = 2; }
        else if (strcmp(value, "bf16") != 0) { flag_error(flag, value, "expected bf16, fp8, mxfp8 or nvfp4"); }
    } else if (strcmp(flag, "--mx-gemm") == 0) {
        if (strcmp(value, "native") == 0) { o->mx_native = 1; }
        else if (strcmp(value, "dequant") == 0) { o->mx_native = 0; }
        else { flag_error(flag, value, "expected dequant or native"); }
    } else if (strcmp(flag, "--mx-scale-rounding") == 0) {
        if (strcmp(value, "floor") == 0) { o->mx_floor = 1; }
        else if (strcmp(value, "ceil") == 0) { o->mx_floor = 0; }
        else { flag_error(flag, value, "expected ceil or floor"); }
    } else if (strcmp(flag, "--fp8-scaling") == 0) {
        if (strcmp(value, "delayed") == 0) { o->scaling = FP8_SCALING_DELAYED; }
        else if (strcmp(value, "current") == 0) { o->scaling = FP8_SCALING_CURRENT; }
        else { flag_error(flag, value, "expected delayed or current"); }
    } else if (strcmp(flag, "--amax-history") == 0) {
        o->amax_history = (int)parse_long_flag(flag, value, 1, 1 << 20);
    } else if (strcmp(flag, "--amax-algo") == 0) {
        if (strcmp(value, "max") == 0) { o->amax_algo = FP8_AMAX_MAX; }
        else if (strcmp(value, "most_recent") == 0) { o->amax_algo = FP8_AMAX_MOST_RECENT; }
        else { flag_error(flag, value, "expected max or most_recent"); }
    } else if (strcmp(flag, "--fp8-margin") == 0) {
        o->margin = (int)parse_long_flag(flag, value, 0, FP8_MARGIN_MAX);
    } else if (strcmp(flag, "--fp8-format") == 0) {
        if (strcmp(value, "hybrid") == 0) { o->hybrid = 1; }
        else if (strcmp(value, "e4m3") == 0) { o->hybrid = 0; }
        else { flag_error(flag, value, "expected hybrid or e4m3"); }
    } else if (strcmp(flag, "--lm-head") == 0) {
        if (strcmp(value, "fp8") == 0) { o->lm_head_fp8 = 1; }
        else if (strcmp(value, "bf16") == 0) { o->lm_head_fp8 = 0; }
        else { flag_error(flag, value, "expected fp8 or bf16"); }
        o->lm_head_set = 1;
    } else if (strcmp(flag, "--bf16-layers") == 0) {
        const char* why = bf16_layers_parse(value, -1, NULL);
        if (why != NULL) { flag_error(flag, value, why); }
        o->bf16_layers = value;
        o->bf16_layers_set = 1;
    } else if (strcmp(flag, "--fp8-stats") == 0) {
        o->stats_every = (int)parse_long_flag(flag, value, 0, INT_MAX);
    } else if (strcmp(flag, "--attention") == 0) {
        if (strcmp(value, "fp8") == 0) { o->att_fp8 = 1; }
        else if (strcmp(value, "bf16") == 0) { o->att_fp8 = 0; }
        else { flag_error(flag, value, "expected fp8 or bf16"); }
    } else if (strcmp(flag, "--zero-fp8-gather") == 0) {
        o->zero_fp8_gather = (int)parse_long_flag(flag, value, 0, 1);
    } else {
        return 0;
    }
    return 1;
}

static inline void linear_options_help(void) {
    LinearOptions d;
    linear_options_defaults(&d);
    printf("  --precision bf16|fp8|mxfp8|nvfp4  GEMMs of the linear layers        (default %s)\n", d.fp8 ? "fp8" : "bf16");
    printf("  --mx-gemm dequant|native       mxfp8/nvfp4 GEMMs: dequantized to BF16, or\n"
           "                                 native: cuBLASLt's block-scaled GEMM (Blackwell),\n"
           "                                 the wgmma kernel (Hopper, mxfp8 only;\n"
           "                                 nvfp4 refused there)                 (default dequant)\n");
    printf("  --mx-scale-rounding ceil|floor MXFP8 block scales: NVIDIA's round-up, or\n"
           "                                 the OCP spec's floor                 (default ceil)\n");
    printf("  --fp8-scaling delayed|current  scales from an amax history, or from\n"
           "                                 each tensor's own amax               (default delayed)\n");
    printf("  --amax-history N               steps of amax history (delayed)      (default %d)\n", d.amax_history);
    printf("  --amax-algo max|most_recent    amax of the history (delayed)        (default max)\n");
    printf("  --fp8-margin N                 scale = fp8_max / (amax * 2^N)       (default %d)\n", d.margin);
    printf("  --fp8-format hybrid|e4m3       hybrid: E5M2 gradients, E4M3 else    (default hybrid)\n");
    printf("  --lm-head fp8|bf16             LM head quantized (fp8: in the run's format)\n"
           "                                 or BF16 (default fp8; bf16 in mxfp8/nvfp4)\n");
    printf("  --bf16-layers SPEC             blocks kept in BF16: none, 0,10,11,\n"
           "                                 first:1,last:2         (default none; last:2 in nvfp4)\n");
    printf("  --fp8-stats N                  every N steps, per FP8 tensor: amax, scale, saturated\n"
           "                                 and flushed fractions; 0 = off       (default 0)\n");
    printf("  --attention fp8|bf16           under --precision fp8: QK^T, PV and their backward\n"
           "                                 in FP8 (all GEMMs FP8; about BF16's speed with its\n"
           "                                 casts, see README), or BF16 (default bf16;\n"
           "                                 always bf16 in other modes and --bf16-layers blocks)\n");
    printf("  --zero-fp8-gather 1|0          with -z 1, gather the updated weights as\n"
           "                                 FP8 codes (half the bytes) instead of BF16 (default %d)\n", d.zero_fp8_gather);
}

static inline const char* linear_precision_name(const LinearContext* lc) { return lc->name; }

// the kernel of --mx-gemm native's GEMMs, which the GPU decides; NULL in other modes
static inline const char* linear_native_gemm_name(const LinearContext* lc) { return mx_native_gemm_name(&lc->mx); }

// ------------------------------------------------------------------------------------------
// tensors and buffers

static inline int fp8_linear_index(const LinearContext* lc, LinearKind kind, int layer) {
    return kind == LINEAR_LMHEAD ? 4 * lc->num_layers : (int)kind * lc->num_layers + layer;
}

static inline int fp8_tensor(int linear, Fp8Role role) { return linear * FP8_ROLES + role; }

// 1: tensor t is a gradient (a linear's dy, attention's dO and dS), cast to the gradient format.
// att0: the first attention tensor (tensors from it on are ATT8_TENSORS per layer).
static inline FP8_HD int fp8_tensor_is_grad(int t, int att0) {
    return t < att0 ? t % FP8_ROLES == FP8_ROLE_DY : (t - att0) % ATT8_TENSORS >= ATT8_DOUT;
}

static inline Fp8Format fp8_tensor_format(const LinearContext* lc, int t) {
    return fp8_tensor_is_grad(t, lc->att_tensor0) && lc->opt.hybrid ? FP8_E5M2 : FP8_E4M3;
}

// "fc.3.dy", "lmhead.x", "att.3.ds"
static inline void fp8_tensor_name(const LinearContext* lc, int t, char* buf, size_t n) {
    static const char* const att_names[ATT8_TENSORS] = {"q", "k", "v", "dout", "ds"};
    if (t >= lc->att_tensor0) {
        int a = t - lc->att_tensor0;
        snprintf(buf, n, "att.%d.%s", a / ATT8_TENSORS, att_names[a % ATT8_TENSORS]);
        return;
    }
    int linear = t / FP8_ROLES, L = lc->num_layers;
    const char* role = FP8_ROLE_NAMES[t % FP8_ROLES];
    if (linear == 4 * L) { snprintf(buf, n, "lmhead.%s", role); }
    else { snprintf(buf, n, "%s.%d.%s", LINEAR_KIND_NAMES[linear / L], linear % L, role); }
}

// (OC, IC) of a GPT-2 linear of width C and padded vocabulary Vp
static inline void fp8_kind_shape(LinearKind kind, int C, int Vp, int* OC, int* IC) {
    const int oc[LINEAR_KINDS] = {3 * C, C, 4 * C, C, Vp}, ic[LINEAR_KINDS] = {C, C, C, 4 * C, C};
    *OC = oc[kind]; *IC = ic[kind];
}

// The FP8 path needs the linear enabled and every GEMM dimension a multiple of 16 (cuBLASLt's
// FP8 kernels); anything else (e.g. sampling's single short sequence) runs in BF16.
static inline int fp8_runs(const LinearContext* lc, int linear, int N, int IC, int OC) {
    return lc->opt.fp8 && lc->use_fp8[linear] && N % 16 == 0 && IC % 16 == 0 && OC % 16 == 0;
}

// The block-scaled path (llmc/linear_mx.cuh) takes the linear in --precision mxfp8|nvfp4.
static inline int mx_linear_runs(const LinearContext* lc, int linear, int N, int IC, int OC) {
    return lc->opt.mx && lc->use_fp8[linear] && mx_runs(N, IC, OC);
}

// 1 when linear (kind, layer), over micro-batches of N rows, keeps its input from its forward
// to its backward, in FP8 or (MXFP8, NVFP4) as the weight gradient's quantized x^T: the model
// need not keep the BF16 input for the backward.
static inline int linear_keeps_input(const LinearContext* lc, LinearKind kind, int layer, int N, int IC, int OC) {
    int layernorm_input = kind == LINEAR_QKV || kind == LINEAR_FC || kind == LINEAR_LMHEAD;
    int id = fp8_linear_index(lc, kind, layer);
    return layernorm_input && (fp8_runs(lc, id, N, IC, OC) || mx_linear_runs(lc, id, N, IC, OC));
}

// 1 when linear (kind, layer)'s backward over N rows reads its BF16 input: not when the layer
// kept a quantized copy, nor for the FC projection in FP8, whose input came out of a GELU and is
// re-made from the pre_gelu its backward is given (no GELU recompute in the model).
static inline int linear_backward_reads_input(const LinearContext* lc, LinearKind kind, int layer, int N, int IC, int OC) {
    if (linear_keeps_input(lc, kind, layer, N, IC, OC)) { return 0; }
    return !(kind == LINEAR_FCPROJ && lc->opt.fp8 && fp8_runs(lc, fp8_linear_index(lc, kind, layer), N, IC, OC));
}

// Scratch of a backward call over N rows: W^T (IC,OC), dy (N,OC), dy^T (OC,N), x^T (IC,N).
static inline size_t fp8_arena_need(int N, int IC, int OC) {
    return align256((size_t)OC * IC) + 2 * align256((size_t)N * OC) + (size_t)N * IC;
}
// where x^T (the last, written after the call's GEMMs begin) starts: what a producer of dy, dy^T
// for the call may not share
static inline size_t fp8_arena_dy_end(int N, int IC, int OC) { return align256((size_t)OC * IC) + 2 * align256((size_t)N * OC); }

#define FP8_ARENA_MIN (64u << 20)   // chunked scratch is at least this: chunks of hundreds of rows, not a few

// Rows of a backward chunk: all N, or the most (a multiple of 16) whose scratch fits the budget.
static inline int fp8_chunk_rows(const LinearContext* lc, int N, int IC, int OC) {
    if (lc->arena_budget == 0 || fp8_arena_need(N, IC, OC) <= lc->arena_budget) { return N; }
    long room = (long)lc->arena_budget - (long)align256((size_t)OC * IC) - 2 * 256;
    long rows = room / (2L * OC + IC) / 16 * 16;
    return rows < 16 ? 16 : (int)rows;
}

// The arena, grown to at least `bytes` (growing waits for the GPU: only at warm-up).
static inline uint8_t* fp8_arena(LinearContext* lc, size_t bytes) {
    if (bytes > lc->arena_bytes) {
        cudaCheck(cudaDeviceSynchronize());
        if (lc->arena != NULL) { cudaCheck(cudaFree(lc->arena)); }
        lc->arena = (uint8_t*)cuda_malloc_or_die(bytes, "FP8 activation and gradient copies");
        lc->arena_bytes = bytes;
    }
    return lc->arena;
}

// The FP8 copy of linear's input (rows, IC), grown to `rows` (growing waits for the GPU: only
// at warm-up or in tests; linear_reserve allocates them up front).
static inline uint8_t* fp8_saved_x(LinearContext* lc, int linear, int rows, int IC) {
    if (rows > lc->saved_rows[linear]) {
        cudaCheck(cudaDeviceSynchronize());
        if (lc->saved_x[linear] != NULL) { cudaCheck(cudaFree(lc->saved_x[linear])); }
        lc->saved_x[linear] = (uint8_t*)cuda_malloc_or_die((size_t)rows * IC, "FP8 copies of the linears' inputs");
        lc->saved_rows[linear] = rows;
    }
    return lc->saved_x[linear];
}

static inline void fp8_weight_alloc(LinearContext* lc, int linear, int OC, int IC) {
    Fp8Weight* w = &lc->weights[linear];
    if (w->OC == OC && w->IC == IC) { return; }
    if (w->w != NULL) { cudaCheck(cudaFree(w->w)); }
    w->w = (uint8_t*)cuda_malloc_or_die((size_t)OC * IC, "FP8 weight copies");
    w->OC = OC; w->IC = IC; w->src = NULL; w->stale = 1;
}

// ------------------------------------------------------------------------------------------
// scaling kernels (one thread per tensor; the per-tensor rules are in llmc/fp8_scaling.h)

__global__ void fp8_fold_kernel(float* blk, int NT, int H, int pos, int filled, Fp8AmaxAlgo algo, int margin,
                                float dy_max, int att0) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= NT) { return; }
    float fmax = fp8_tensor_is_grad(t, att0) ? dy_max : FP8_E4M3_MAX;
    fp8_fold_tensor(blk, NT, H, t, pos, filled, algo, fmax, margin);
}

__global__ void fp8_current_scale_kernel(float* blk, int NT, int H, int t, float fmax, int margin) {
    fp8_current_scale_tensor(blk, NT, H, t, fmax, margin);
}

// An FP8-output GEMM of tensor t (GemmOut8 at out8): its scale copied where cuBLASLt can read
// it before, and the step's amax raised with the GEMM's after.
__global__ void fp8_out8_scale_kernel(float* out8, const float* blk, int NT, int t) { out8[0] = fp8_scale((float*)blk, NT)[t]; }
__global__ void fp8_out8_amax_kernel(float* blk, const float* out8, int t) {
    fp8_amax_step(blk)[t] = fp8_amax_max(fp8_amax_step(blk)[t], out8[4]);
}

// Casts in (rows, cols) to tensor t's format and scale, into out (rows, cols) and/or out_t
// (cols, rows) (NULL: not wanted). record = 1 for the tensor's cast proper: current scaling
// measures its amax and sets its scale first, delayed scaling raises the step's amax, a stats
// step counts. record = 0 re-casts with the scale in place (backward's x^T: same bits as a
// copy kept from the forward would have).
// The start of tensor t's cast proper, of all of in (n): current scaling measures its amax and
// sets its scale; returns the amax the casts raise (delayed scaling), else NULL.
static inline float* fp8_cast_begin(LinearContext* lc, int t, const floatX* in, long n, cudaStream_t s) {
    int NT = lc->num_tensors, H = lc->sc.history_len;
    float* blk = lc->sc_block;
    fp8_note_cast(&lc->sc, t);
    if (!fp8_needs_own_amax(&lc->sc, t)) { return fp8_amax_step(blk) + t; }
    absmax_bf16(fp8_amax_cur(blk, NT, H) + t, in, n, s);
    fp8_current_scale_kernel<<<1, 1, 0, s>>>(blk, NT, H, t, fp8_format_max(fp8_tensor_format(lc, t)), lc->sc.margin);
    cudaCheckLaunch();
    return NULL;
}

// Casts in (rows, cols) with tensor t's scale into out (rows, cols) and/or out_t (cols, rows)
// (NULL: not wanted), raising amax (NULL: not) and, when record and a stats step, the counts.
// With out_t: colsum (NULL: none) gets the column sums' partials, and xf (with aux or sg) says
// what is cast (cast_transpose_to_fp8).
static inline void fp8_cast_rows(LinearContext* lc, int t, uint8_t* out, uint8_t* out_t, const floatX* in, int rows,
                                 int cols, float* amax, int record, float* colsum, CastXform xf, const floatX* aux,
                                 const SoftmaxGrad* sg, cudaStream_t s) {
    long n = (long)rows * cols;
    Fp8Format f = fp8_tensor_format(lc, t);
    unsigned long long* counts = NULL;
    if (record && lc->stats_step) { counts = lc->counts + 2 * t; lc->counted[t] += (double)n; }
    const float* scale = fp8_scale(lc->sc_block, lc->num_tensors) + t;
    if (out_t != NULL) { cast_transpose_to_fp8(out, out_t, in, rows, cols, f, scale, amax, counts, colsum, xf, aux, sg, s); }
    else if (colsum != NULL || xf != CAST_PLAIN) { die("internal: column sums or GELU in a plain FP8 cast"); }
    else { cast_to_fp8(out, in, n, f, scale, amax, counts, s); }
}

static inline void fp8_quantize(LinearContext* lc, int t, uint8_t* out, uint8_t* out_t, const floatX* in, int rows,
                                int cols, int record, cudaStream_t s) {
    float* amax = record ? fp8_cast_begin(lc, t, in, (long)rows * cols, s) : NULL;
    fp8_cast_rows(lc, t, out, out_t, in, rows, cols, amax, record, NULL, CAST_PLAIN, NULL, NULL, s);
}

// The FP8 copies of a weight (OC,IC), cast when stale.
static inline Fp8Weight* fp8_weight_ready(LinearContext* lc, int linear, const floatX* weight, int OC, int IC,
                                          cudaStream_t s) {
    fp8_weight_alloc(lc, linear, OC, IC);
    Fp8Weight* w = &lc->weights[linear];
    if (w->src != weight) { w->src = weight; w->stale = 1; }
    if (w->stale) {
        fp8_quantize(lc, fp8_tensor(linear, FP8_ROLE_W), w->w, NULL, weight, OC, IC, 1, s);
        w->stale = 0;
        prof_mark(lc->prof, "fp8 weights", "cast w");
    }
    return w;
}

// ------------------------------------------------------------------------------------------
// FP8 GEMM

static inline cudaDataType_t fp8_cuda_type(Fp8Format f) { return f == FP8_E4M3 ? CUDA_R_8F_E4M3 : CUDA_R_8F_E5M2; }

// Row-major FP8 GEMM, both operands K-major (the only layout of cuBLASLt's FP8 kernels, "TN"):
//   C (M,N) = (a_scale_inv * A (M,K)) @ (b_scale_inv * B (N,K))^T + beta * C  [+ bias (N)]
// with gemm_bf16's GELU epilogues (aux (M,N) bf16). A, B fp8 (at most one E5M2); scale_invs are
// device floats; C bf16; FP32 accumulation. fast_accum lets Hopper keep partial sums in its
// faster, less precise FP8 accumulator (the forward only, as Transformer Engine's recipe does).
// M, N, K multiples of 16. Returns 0, having done nothing, when cuBLASLt has no FP8 kernel for
// the GELU epilogue or the E4M3 output asked for; any other failure is fatal.
// Column-major, cuBLASLt computes C^T (N,M) = B (N,K) . A^T (K,M): its first operand is our B,
// transposed, its second our A, so its A scale is b_scale_inv and its B scale a_scale_inv.
// An E4M3 output of an FP8 GEMM instead of C: q (M,N) = the result times *scale, rounded once
// from FP32 and saturated to +-448; *amax set (not raised) to max |result| before the scale.
// cuBLASLt takes only 16-byte aligned scalars.
typedef struct { uint8_t* q; const float* scale; float* amax; } GemmOut8;

// gemm_fp8 writing q8 (C unused but for its layout; beta 0) when q8 is not NULL
static inline int gemm_fp8_out(GemmContext* g, floatX* C, const GemmOut8* q8, const uint8_t* A, Fp8Format fa,
                               const float* a_scale_inv, const uint8_t* B, Fp8Format fb, const float* b_scale_inv,
                               const floatX* bias, int M, int N, int K, float beta, int fast_accum, GemmGelu gelu,
                               floatX* aux, cudaStream_t stream) {
    if (q8 != NULL && beta != 0.0f) { die("internal: an FP8-output GEMM cannot accumulate"); }
    if (M % 16 != 0 || N % 16 != 0 || K % 16 != 0) { die("internal: FP8 GEMM M=%d N=%d K=%d needs multiples of 16", M, N, K); }
    if (fa == FP8_E5M2 && fb == FP8_E5M2) { die("internal: FP8 GEMM with two E5M2 operands (unsupported)"); }
    cublasLtMatmulDesc_t desc;
    cublasCheck(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t opT = CUBLAS_OP_T, opN = CUBLAS_OP_N;
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opT, sizeof(opT)));
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opN, sizeof(opN)));
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &b_scale_inv, sizeof(b_scale_inv)));
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &a_scale_inv, sizeof(a_scale_inv)));
    int8_t fast = fast_accum ? 1 : 0;
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof(fast)));
    gemm_set_epilogue(desc, bias, gelu, aux, N);
    if (q8 != NULL) {
        cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_D_SCALE_POINTER, &q8->scale, sizeof(q8->scale)));
        cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_AMAX_D_POINTER, &q8->amax, sizeof(q8->amax)));
    }
    cublasLtMatrixLayout_t la, lb, lc, ld;   // cuBLASLt's A = our B (K,N), its B = our A (K,M), C and D (N,M)
    cublasCheck(cublasLtMatrixLayoutCreate(&la, fp8_cuda_type(fb), K, N, K));
    cublasCheck(cublasLtMatrixLayoutCreate(&lb, fp8_cuda_type(fa), K, M, K));
    cublasCheck(cublasLtMatrixLayoutCreate(&lc, CUDA_R_16BF, N, M, N));
    cublasCheck(cublasLtMatrixLayoutCreate(&ld, q8 != NULL ? CUDA_R_8F_E4M3 : CUDA_R_16BF, N, M, N));
    GemmKey key = {{2, M, N, K, fa, fb, q8 != NULL, gelu, bias != NULL, beta != 0.0f, fast_accum, 0, 0, 0, 0, 0}};
    void* D = q8 != NULL ? (void*)q8->q : (void*)C;
    size_t d_bytes = (size_t)M * N * (q8 != NULL ? 1 : sizeof(floatX));
    // some epilogues pass the heuristic with FP8 operands and are refused only when run
    cublasStatus_t st = gemm_matmul(g, &key, desc, la, lb, lc, ld, 1.0f, B, A, beta, C, D, d_bytes, 2.0 * M * N * K, stream);
    int unsupported = st == CUBLAS_STATUS_NOT_SUPPORTED;
    if (!unsupported) { cublasCheck(st); }
    cublasCheck(cublasLtMatrixLayoutDestroy(la));
    cublasCheck(cublasLtMatrixLayoutDestroy(lb));
    cublasCheck(cublasLtMatrixLayoutDestroy(lc));
    cublasCheck(cublasLtMatrixLayoutDestroy(ld));
    cublasCheck(cublasLtMatmulDescDestroy(desc));
    if (unsupported && gelu == GEMM_NO_GELU && q8 == NULL) {
        die("cuBLASLt has no FP8 algorithm for M=%d N=%d K=%d (A %s, B %s)", M, N, K,
            fa == FP8_E4M3 ? "e4m3" : "e5m2", fb == FP8_E4M3 ? "e4m3" : "e5m2");
    }
    return !unsupported;
}

static inline int gemm_fp8(GemmContext* g, floatX* C, const uint8_t* A, Fp8Format fa, const float* a_scale_inv,
                           const uint8_t* B, Fp8Format fb, const float* b_scale_inv, const floatX* bias,
                           int M, int N, int K, float beta, int fast_accum, GemmGelu gelu, floatX* aux,
                           cudaStream_t stream) {
    return gemm_fp8_out(g, C, NULL, A, fa, a_scale_inv, B, fb, b_scale_inv, bias, M, N, K, beta, fast_accum, gelu, aux, stream);
}

// ------------------------------------------------------------------------------------------
// context

static inline void linear_context_init(LinearContext* lc, const LinearOptions* o, int num_layers) {
    memset(lc, 0, sizeof(*lc));
    gemm_context_init(&lc->gemm);
    attention_init();
    lc->opt = *o;
    lc->num_layers = num_layers;
    lc->fused_gelu = 1;
    lc->fused_inputs = 1;
    lc->fused_gelu_out = 1;
    lc->att8_keep = 1;
    lc->fused_dy = 1;
    if (!o->fp8 && !o->mx) { snprintf(lc->name, sizeof(lc->name), "bf16"); return; }
    int L = num_layers;
    if (o->mx) {   // the block-scaled modes' defaults: BF16 LM head; NVFP4 keeps the last 2 blocks in BF16
        if (!o->lm_head_set) { lc->opt.lm_head_fp8 = 0; }
        if (o->mx == MX_NVFP4 && !o->bf16_layers_set && L >= 6) { lc->opt.bf16_layers = "last:2"; }
        o = &lc->opt;
    }
    lc->num_linears = 4 * L + 1;
    lc->att_tensor0 = FP8_ROLES * lc->num_linears;
    lc->num_tensors = lc->att_tensor0 + (o->fp8 && o->att_fp8 ? ATT8_TENSORS * L : 0);
    int NT = lc->num_tensors, H = o->amax_history;
    unsigned char* bf16_block = (unsigned char*)calloc_or_die(L, 1, "bf16 layer mask");
    const char* why = bf16_layers_parse(o->bf16_layers, L, bf16_block);
    if (why != NULL) { die("--bf16-layers %s: %s (the model has %d layers)", o->bf16_layers, why, L); }
    lc->use_fp8 = (unsigned char*)calloc_or_die(lc->num_linears, 1, "fp8 linear mask");
    int nbf16 = 0;
    for (int l = 0; l < L; l++) {
        nbf16 += bf16_block[l];
        for (int k = 0; k < 4; k++) { lc->use_fp8[k * L + l] = !bf16_block[l]; }
    }
    lc->use_fp8[4 * L] = (unsigned char)o->lm_head_fp8;
    free(bf16_block);
    if (o->mx) {
        mx_linear_init(&lc->mx, &lc->gemm, (MxMode)o->mx, o->mx_native, o->mx_floor ? MX_SCALE_FLOOR : MX_SCALE_CEIL, o->hybrid,
                       lc->num_linears);
        int n = snprintf(lc->name, sizeof(lc->name), "%s%s %s %s", mx_mode_name((MxMode)o->mx),
                         o->mx == MX_MXFP8 ? (o->hybrid ? " hybrid" : " e4m3") : "",
                         o->mx == MX_MXFP8 ? (o->mx_floor ? "floor" : "ceil") : "rht+sr", o->mx_native ? "native" : "dequant");
        if (!o->lm_head_fp8) { n += snprintf(lc->name + n, sizeof(lc->name) - n, " lmhead:bf16"); }
        if (nbf16 > 0) { snprintf(lc->name + n, sizeof(lc->name) - n, " bf16-blocks:%d", nbf16); }
        return;
    }
    lc->weights = (Fp8Weight*)calloc_or_die(lc->num_linears, sizeof(Fp8Weight), "fp8 weights");
    lc->saved_x = (uint8_t**)calloc_or_die(lc->num_linears, sizeof(uint8_t*), "fp8 inputs");
    lc->saved_rows = (int*)calloc_or_die(lc->num_linears, sizeof(int), "fp8 inputs");
    lc->x_ready = (unsigned char*)calloc_or_die(lc->num_linears, 1, "fp8 inputs");
    fp8_scaling_init(&lc->sc, NT, o->scaling, o->amax_algo, H, o->margin);
    float* host = (float*)malloc_or_die(fp8_block_floats(NT, H) * sizeof(float), "fp8 scaling state");
    fp8_block_init(host, NT, H);
    lc->sc_block = (float*)cuda_malloc_or_die(fp8_block_floats(NT, H) * sizeof(float), "fp8 scaling state");
    cudaCheck(cudaMemcpy(lc->sc_block, host, fp8_block_floats(NT, H) * sizeof(float), cudaMemcpyHostToDevice));
    free(host);
    lc->counts = (unsigned long long*)cuda_malloc_or_die(2 * (size_t)NT * sizeof(unsigned long long), "fp8 statistics");
    cudaCheck(cudaMemset(lc->counts, 0, 2 * (size_t)NT * sizeof(unsigned long long)));
    lc->counted = (double*)calloc_or_die(NT, sizeof(double), "fp8 statistics");
    lc->part_amax = (float*)cuda_malloc_or_die(lc->num_linears * sizeof(float), "fp8 weight part amaxes");
    lc->out8 = (float*)cuda_malloc_or_die(8 * sizeof(float), "fp8 GEMM output scale");
    int n = snprintf(lc->name, sizeof(lc->name), "fp8 %s %s", o->hybrid ? "hybrid" : "e4m3",
                     o->scaling == FP8_SCALING_CURRENT ? "current" : "delayed");
    if (o->scaling == FP8_SCALING_DELAYED) {
        n += snprintf(lc->name + n, sizeof(lc->name) - n, ":%s/%d", o->amax_algo == FP8_AMAX_MAX ? "max" : "most_recent", H);
    }
    n += snprintf(lc->name + n, sizeof(lc->name) - n, " m%d", o->margin);
    if (!o->lm_head_fp8) { n += snprintf(lc->name + n, sizeof(lc->name) - n, " lmhead:bf16"); }
    if (o->att_fp8) { n += snprintf(lc->name + n, sizeof(lc->name) - n, " att:fp8"); }
    if (nbf16 > 0) { snprintf(lc->name + n, sizeof(lc->name) - n, " bf16-blocks:%d", nbf16); }
}

static inline void linear_context_free(LinearContext* lc) {
    grad_partials_free(&lc->qkv_bias);
    if (lc->opt.mx) { mx_linear_free(&lc->mx); free(lc->use_fp8); }
    if (lc->opt.fp8) {
        for (int i = 0; i < lc->num_linears; i++) {
            if (lc->weights[i].w != NULL) { cudaCheck(cudaFree(lc->weights[i].w)); }
            if (lc->saved_x[i] != NULL) { cudaCheck(cudaFree(lc->saved_x[i])); }
        }
        if (lc->arena != NULL) { cudaCheck(cudaFree(lc->arena)); }
        free(lc->saved_x); free(lc->saved_rows); free(lc->x_ready);
        cudaCheck(cudaFree(lc->sc_block));
        cudaCheck(cudaFree(lc->counts));
        cudaCheck(cudaFree(lc->part_amax));
        cudaCheck(cudaFree(lc->out8));
        fp8_scaling_free(&lc->sc);
        free(lc->use_fp8); free(lc->weights); free(lc->counted);
    }
    gemm_context_free(&lc->gemm);
}

// Allocates the FP8 copies up front, for micro-batches of up to max_rows tokens of a GPT-2 of
// width C and padded vocabulary Vp, so that the memory in use after set-up includes them
// (without it they are allocated at first use). The arena is sized for the largest block
// linear; the LM head's backward runs in chunks of rows that fit it. Block-scaled modes: the
// quantized weights, kept inputs and the arena of the largest call; with native GEMMs, the room
// of their three shapes at max_rows (cuBLASLt's scratch or the split-K partial sums; fewer rows
// can still want more partial sums, grown at first use).
static inline void linear_reserve(LinearContext* lc, int max_rows, int C, int Vp) {
    if (lc->opt.mx) {
        size_t need = 0;
        for (int k = 0; k < LINEAR_KINDS; k++) {
            int OC, IC;
            fp8_kind_shape((LinearKind)k, C, Vp, &OC, &IC);
            for (int l = 0; l < (k == LINEAR_LMHEAD ? 1 : lc->num_layers); l++) {
                int id = fp8_linear_index(lc, (LinearKind)k, l);
                if (!mx_linear_runs(lc, id, max_rows, IC, OC)) { continue; }
                mx_weight_alloc(&lc->mx, id, OC, IC);
                int keep = linear_keeps_input(lc, (LinearKind)k, l, max_rows, IC, OC);
                if (keep) { mx_saved_alloc(&lc->mx, id, max_rows, IC); }
                if (lc->mx.native) {   // fprop, dgrad, wgrad
                    mx_gemm_native_reserve(&lc->mx, max_rows, OC, IC);
                    mx_gemm_native_reserve(&lc->mx, max_rows, IC, OC);
                    mx_gemm_native_reserve(&lc->mx, OC, IC, max_rows);
                }
                size_t b = mx_call_bytes(&lc->mx, max_rows, IC, OC, keep);
                need = b > need ? b : need;
            }
        }
        if (need > 0) { mx_arena(&lc->mx, need); }
        return;
    }
    if (!lc->opt.fp8) { return; }
    size_t need = 0, need_all = 0;
    for (int k = 0; k < LINEAR_KINDS; k++) {
        int OC, IC;
        fp8_kind_shape((LinearKind)k, C, Vp, &OC, &IC);
        for (int l = 0; l < (k == LINEAR_LMHEAD ? 1 : lc->num_layers); l++) {
            int id = fp8_linear_index(lc, (LinearKind)k, l);
            if (!fp8_runs(lc, id, max_rows, IC, OC)) { continue; }
            fp8_weight_alloc(lc, id, OC, IC);
            if (linear_keeps_input(lc, (LinearKind)k, l, max_rows, IC, OC)) { fp8_saved_x(lc, id, max_rows, IC); }
            size_t b = fp8_arena_need(max_rows, IC, OC);
            if (k != LINEAR_LMHEAD) { need = b > need ? b : need; }
            need_all = b > need_all ? b : need_all;
        }
    }
    // the block linears' need, but room for chunks of hundreds of rows of the LM head; when
    // only the LM head is FP8 it alone sets the size
    size_t floor = need_all < FP8_ARENA_MIN ? need_all : FP8_ARENA_MIN;
    need = need == 0 ? need_all : need > floor ? need : floor;
    if (need > 0) {
        fp8_arena(lc, need);
        lc->arena_budget = need;
    }
}

// Tells the layer that the BF16 weights changed (an optimizer update, a load): their FP8
// copies are re-cast at the next use. Until it is first called, each linear_backward marks
// its weight stale instead, which is as correct but re-casts weights every micro-batch.
static inline void linear_weights_changed(LinearContext* lc) {
    if (lc->opt.mx) { mx_linear_weights_changed(&lc->mx); }
    if (!lc->opt.fp8) { return; }
    lc->weights_hook = 1;
    for (int i = 0; i < lc->num_linears; i++) { lc->weights[i].stale = 1; }
}

// Before the first micro-batch of a step: the previous step's amaxes enter the histories and
// give this step's scales, and the weights are marked for a re-cast with them. Launched on
// the legacy default stream, which orders it after and before the model's (blocking) stream.
static inline void linear_set_comm(LinearContext* lc, const MultiGpu* mg) { lc->comm = mg->nranks > 1 ? mg : NULL; }

// 1: the step that began is a --fp8-stats step
static inline int linear_stats_due(const LinearContext* lc) { return lc->opt.fp8 && lc->stats_step; }

static inline void linear_step_begin(LinearContext* lc) {
    if (!lc->opt.fp8) { return; }
    int NT = lc->num_tensors;
    // every rank folds the same amaxes into the same scales: the max over ranks of this step's
    if (lc->comm != NULL) { multi_gpu_allreduce_f32(lc->comm, fp8_amax_step(lc->sc_block), NT, 1, 0); }
    float dy_max = lc->opt.hybrid ? FP8_E5M2_MAX : FP8_E4M3_MAX;
    fp8_fold_kernel<<<ceil_div(NT, 256), 256>>>(lc->sc_block, NT, lc->sc.history_len, fp8_fold_pos(&lc->sc),
                                               fp8_fold_filled(&lc->sc), lc->sc.algo, lc->sc.margin, dy_max,
                                               lc->att_tensor0);
    cudaCheckLaunch();
    fp8_scaling_end_fold(&lc->sc);
    for (int i = 0; i < lc->num_linears; i++) { lc->weights[i].stale = 1; }
    lc->stats_step = lc->opt.stats_every > 0 && lc->sc.step % lc->opt.stats_every == 0;
    if (lc->stats_step) {
        cudaCheck(cudaMemsetAsync(lc->counts, 0, 2 * (size_t)NT * sizeof(unsigned long long), 0));
        memset(lc->counted, 0, NT * sizeof(double));
    }
}

// Checkpointed: the scaling state (histories, scales, the pending step's amaxes); the FP8
// weight copies are re-cast from the restored weights. 0 bytes in BF16 mode, so BF16
// checkpoints are the BF16 trainer's.
// Block-scaled modes: the mode, and the count of stochastic-rounding quantizations, which
// seeds them and the RHT.
static inline size_t linear_state_bytes(const LinearContext* lc) {
    return lc->opt.fp8 ? fp8_state_bytes(&lc->sc) : lc->opt.mx ? 2 * sizeof(uint64_t) : 0;
}

static inline void linear_state_save(const LinearContext* lc, void* dst) {
    if (lc->opt.mx) {
        uint64_t st[2] = {(uint64_t)lc->opt.mx, lc->mx.calls};
        memcpy(dst, st, sizeof(st));
    }
    if (!lc->opt.fp8) { return; }
    void* p = fp8_state_save_host(&lc->sc, dst);
    size_t bytes = fp8_saved_floats(lc->num_tensors, lc->sc.history_len) * sizeof(float);
    cudaCheck(cudaMemcpy(p, lc->sc_block, bytes, cudaMemcpyDeviceToHost));
}

static inline void linear_state_load(LinearContext* lc, const void* src) {
    if (lc->opt.mx) {
        uint64_t st[2];
        memcpy(st, src, sizeof(st));
        if (st[0] != (uint64_t)lc->opt.mx) { die("resume: the checkpoint was written in another precision mode (not %s)", mx_mode_name(lc->mx.mode)); }
        lc->mx.calls = st[1];
        mx_linear_weights_changed(&lc->mx);
    }
    if (!lc->opt.fp8) { return; }
    const void* p = fp8_state_load_host(&lc->sc, src);
    size_t bytes = fp8_saved_floats(lc->num_tensors, lc->sc.history_len) * sizeof(float);
    cudaCheck(cudaMemcpy(lc->sc_block, p, bytes, cudaMemcpyHostToDevice));
    for (int i = 0; i < lc->num_linears; i++) { lc->weights[i].stale = 1; }
}

// ------------------------------------------------------------------------------------------
// ZeRO-1 weight gather in FP8 (driven by gpt2_gather_weights in llmc/gpt2.cuh)
//
// Under -z 1 each rank updates one shard of the flat weights. Rather than all-gathering BF16
// weights and casting every FP8 weight whole on every rank, each rank casts the parts of the
// FP8 weights inside its shard with the step's scales, and the codes travel: half the bytes.
// The codes are those of a local cast bit for bit (same BF16 values, same scale). A part's
// amax joins the step's amax, which linear_step_begin max-reduces over ranks anyway; where a
// scale needs the weight's own amax first (current scaling, an empty history), the parts'
// amaxes are max-reduced before the casts. The LM head's weight is the embedding table, which
// must arrive in BF16 for the encoder: it is cast locally as before.

typedef struct {
    LinearKind kind;
    int layer;
    const floatX* src;    // (n) BF16 part of the weight inside this rank's shard
    uint8_t* dst;         // (n) its E4M3 codes
    long n;
} LinearWeightPart;

// 1: the weight (OC,IC) of linear (kind, layer) travels as FP8 codes under -z 1.
static inline int linear_weight_gathers_fp8(const LinearContext* lc, LinearKind kind, int layer, int OC, int IC) {
    if (!lc->opt.fp8 || !lc->opt.zero_fp8_gather || kind == LINEAR_LMHEAD) { return 0; }
    return fp8_runs(lc, fp8_linear_index(lc, kind, layer), 16, IC, OC);
}

// tensor t (the weight of linear `linear`): current scaling from the max over ranks of its parts' amaxes
__global__ void fp8_part_scale_kernel(float* blk, int NT, int H, const float* part_amax, int linear, int t, float fmax, int margin) {
    fp8_amax_cur(blk, NT, H)[t] = part_amax[linear];
    fp8_current_scale_tensor(blk, NT, H, t, fmax, margin);
}

// Casts this rank's parts of the gathered weights (collective when a scale needs the weight's
// own amax: every rank must call it, with or without parts).
static inline void linear_weight_parts_cast(LinearContext* lc, const LinearWeightPart* parts, int nparts, cudaStream_t s) {
    int NT = lc->num_tensors, H = lc->sc.history_len;
    float* blk = lc->sc_block;
    int own = 0;   // the same on every rank: the host scaling state is
    for (int id = 0; id < lc->num_linears; id++) { own |= lc->use_fp8[id] && fp8_needs_own_amax(&lc->sc, fp8_tensor(id, FP8_ROLE_W)); }
    if (own) {
        cudaCheck(cudaMemsetAsync(lc->part_amax, 0, lc->num_linears * sizeof(float), s));
        for (int i = 0; i < nparts; i++) {
            absmax_bf16(lc->part_amax + fp8_linear_index(lc, parts[i].kind, parts[i].layer), parts[i].src, parts[i].n, s);
        }
        if (lc->comm != NULL) { multi_gpu_allreduce_f32(lc->comm, lc->part_amax, lc->num_linears, 1, s); }
        for (int id = 0; id < lc->num_linears; id++) {
            if (id == 4 * lc->num_layers || !lc->use_fp8[id] || !fp8_needs_own_amax(&lc->sc, fp8_tensor(id, FP8_ROLE_W))) { continue; }
            fp8_part_scale_kernel<<<1, 1, 0, s>>>(blk, NT, H, lc->part_amax, id, fp8_tensor(id, FP8_ROLE_W), FP8_E4M3_MAX, lc->sc.margin);
            cudaCheckLaunch();
        }
    }
    for (int i = 0; i < nparts; i++) {
        const LinearWeightPart* p = &parts[i];
        int t = fp8_tensor(fp8_linear_index(lc, p->kind, p->layer), FP8_ROLE_W);
        float* amax = fp8_needs_own_amax(&lc->sc, t) ? NULL : fp8_amax_step(blk) + t;
        unsigned long long* counts = NULL;
        if (lc->stats_step) { counts = lc->counts + 2 * t; lc->counted[t] += (double)p->n; }   // this rank's parts only
        cast_to_fp8(p->dst, p->src, p->n, FP8_E4M3, fp8_scale(blk, NT) + t, amax, counts, s);
    }
}

// The gathered codes of the weight (OC,IC) of linear (kind, layer), in n pieces (piece p:
// elements [end[p-1], end[p]) at src[p]), placed in its FP8 copy; no re-cast this step.
static inline void linear_weight_received(LinearContext* lc, LinearKind kind, int layer, const floatX* weight, int OC, int IC,
                                          const uint8_t* const* src, const long* end, int n, cudaStream_t s) {
    int id = fp8_linear_index(lc, kind, layer);
    if (n > FP8_MAX_PIECES) { die("a weight of linear %s.%d arrived in %d pieces: more ranks than this build supports (%d per weight)",
                                  LINEAR_KIND_NAMES[kind], layer, n, FP8_MAX_PIECES); }
    Fp8Pieces pieces;
    pieces.n = n;
    for (int p = 0; p < n; p++) { pieces.src[p] = src[p]; pieces.end[p] = end[p]; }
    fp8_weight_alloc(lc, id, OC, IC);
    Fp8Weight* w = &lc->weights[id];
    place_fp8(w->w, NULL, &pieces, OC, IC, s);
    w->src = weight;
    w->stale = 0;
    fp8_note_cast(&lc->sc, fp8_tensor(id, FP8_ROLE_W));
}

// ------------------------------------------------------------------------------------------
// the linear layer

// 1 when the producer of linear (kind, layer)'s input (N,IC) is to write it in FP8 this call,
// into *out, and not in BF16: delayed scaling with a scale in place (current scaling needs the
// tensor's amax before the cast), outside --fp8-stats steps (whose casts count saturation).
// The next linear_forward of (kind, layer) then reads it as it is.
static inline int linear_input_fp8(LinearContext* lc, LinearKind kind, int layer, int N, int IC, int OC, Fp8Out* out) {
    int id = fp8_linear_index(lc, kind, layer), tx = fp8_tensor(id, FP8_ROLE_X);
    if (!lc->opt.fp8 || !lc->fused_inputs || !linear_keeps_input(lc, kind, layer, N, IC, OC) || lc->stats_step ||
        fp8_needs_own_amax(&lc->sc, tx)) {
        return 0;
    }
    out->q = fp8_saved_x(lc, id, N, IC);
    out->scale = fp8_scale(lc->sc_block, lc->num_tensors) + tx;
    out->amax = fp8_amax_step(lc->sc_block) + tx;
    fp8_note_cast(&lc->sc, tx);
    lc->x_ready[id] = 1;
    return 1;
}

// The FC of `layer` (IC -> OC = 4 IC over N rows) writes GELU's output in E4M3 straight into the
// FC projection's FP8 input, where its forward reads it (the arena): no BF16 GELU output and no
// cast pass. Needs the projection's scale ahead (delayed scaling; not in --fp8-stats steps, whose
// casts count saturation) and the FC's own input outside the arena (kept). Returns where, or NULL.
static inline uint8_t* fc_gelu_out8(LinearContext* lc, int layer, int N, int IC, int OC) {
    int proj = fp8_linear_index(lc, LINEAR_FCPROJ, layer);
    if (!lc->fused_gelu || !lc->fused_gelu_out || lc->stats_step || !fp8_runs(lc, proj, N, OC, IC) ||
        !linear_keeps_input(lc, LINEAR_FC, layer, N, IC, OC) || linear_keeps_input(lc, LINEAR_FCPROJ, layer, N, OC, IC) ||
        fp8_needs_own_amax(&lc->sc, fp8_tensor(proj, FP8_ROLE_X))) {
        return NULL;
    }
    return fp8_arena(lc, fp8_arena_need(N, OC, IC));   // the projection's forward asks for the same room
}

// out (N,OC) = inp (N,IC) @ weight (OC,IC)^T + bias (OC); bias may be NULL.
// With pre_gelu (N,OC): pre_gelu = that sum and out = gelu(pre_gelu) (in FP8, the FC may leave
// out unwritten: see fc_gelu_out8).
static inline void linear_forward(LinearContext* lc, LinearKind kind, int layer, floatX* out, floatX* pre_gelu,
                                  const floatX* inp, const floatX* weight, const floatX* bias, int N, int IC, int OC,
                                  cudaStream_t s) {
    int id = fp8_linear_index(lc, kind, layer);
    const char* name = LINEAR_KIND_NAMES[kind];
    if (mx_linear_runs(lc, id, N, IC, OC)) {
        mx_linear_forward(&lc->mx, &lc->gemm, id, linear_keeps_input(lc, kind, layer, N, IC, OC), out, pre_gelu, inp, weight,
                          bias, N, IC, OC, s);
        prof_mark(lc->prof, name, "mx forward");
        return;
    }
    if (!fp8_runs(lc, id, N, IC, OC)) {
        bf16_linear_forward(&lc->gemm, lc->prof, name, out, pre_gelu, inp, weight, bias, N, IC, OC, s);
        return;
    }
    int tx = fp8_tensor(id, FP8_ROLE_X), tw = fp8_tensor(id, FP8_ROLE_W);
    Fp8Weight* w = fp8_weight_ready(lc, id, weight, OC, IC, s);
    int keep = linear_keeps_input(lc, kind, layer, N, IC, OC);
    uint8_t* x8 = keep ? fp8_saved_x(lc, id, N, IC) : fp8_arena(lc, fp8_arena_need(N, IC, OC));   // (N,IC)
    if (!lc->x_ready[id]) { fp8_quantize(lc, tx, x8, NULL, inp, N, IC, 1, s); prof_mark(lc->prof, name, "cast x"); }
    lc->x_ready[id] = 0;
    const float* sx = fp8_scale_inv_at(lc->sc_block, lc->num_tensors, tx);
    const float* sw = fp8_scale_inv_at(lc->sc_block, lc->num_tensors, tw);
    uint8_t* g8 = kind == LINEAR_FC && pre_gelu != NULL ? fc_gelu_out8(lc, layer, N, IC, OC) : NULL;
    if (g8 != NULL) {
        int proj = fp8_linear_index(lc, LINEAR_FCPROJ, layer), tp = fp8_tensor(proj, FP8_ROLE_X);
        fp8_out8_scale_kernel<<<1, 1, 0, s>>>(lc->out8, lc->sc_block, lc->num_tensors, tp);
        cudaCheckLaunch();
        GemmOut8 q8 = {g8, lc->out8, lc->out8 + 4};
        if (gemm_fp8_out(&lc->gemm, out, &q8, x8, FP8_E4M3, sx, w->w, FP8_E4M3, sw, bias, N, OC, IC, 0.0f, 1, GEMM_GELU_FORWARD,
                         pre_gelu, s)) {
            fp8_out8_amax_kernel<<<1, 1, 0, s>>>(lc->sc_block, lc->out8, tp);
            cudaCheckLaunch();
            fp8_note_cast(&lc->sc, tp);
            lc->x_ready[proj] = 1;
            lc->gelu_out8++;
            prof_mark(lc->prof, name, "fprop gemm, fp8 gelu out");
            return;
        }
    }
    if (pre_gelu == NULL) {
        gemm_fp8(&lc->gemm, out, x8, FP8_E4M3, sx, w->w, FP8_E4M3, sw, bias, N, OC, IC, 0.0f, 1, GEMM_NO_GELU, NULL, s);
    } else if (!(lc->fused_gelu &&
                 gemm_fp8(&lc->gemm, out, x8, FP8_E4M3, sx, w->w, FP8_E4M3, sw, bias, N, OC, IC, 0.0f, 1, GEMM_GELU_FORWARD, pre_gelu, s))) {
        gemm_fp8(&lc->gemm, pre_gelu, x8, FP8_E4M3, sx, w->w, FP8_E4M3, sw, bias, N, OC, IC, 0.0f, 1, GEMM_NO_GELU, NULL, s);
        gelu_forward(out, pre_gelu, (long)N * OC, s);
        lc->unfused_gelu++;
    }
    prof_mark(lc->prof, name, "fprop gemm");
}

// The FP8 backward of linear_backward, with GELU's two backward halves movable between calls:
// dout_pre (N,OC) (NULL: none): the output gradient is dout * gelu'(dout_pre), applied by the
// cast; dgelu_dinp: dinp gets its gelu'(pre_gelu) here (else the caller passes it on as the
// next call's dout_pre). dout_sg (NULL: none): dout holds logits, and the output gradient is
// their softmax's, made by the cast.
static inline void fp8_linear_backward(LinearContext* lc, LinearKind kind, int layer, floatX* dinp, floatX* dweight,
                                       floatX* dbias, float* scratch, const floatX* dout, const floatX* dout_pre,
                                       const SoftmaxGrad* dout_sg, const floatX* inp, const floatX* pre_gelu,
                                       int dgelu_dinp, const floatX* weight, int N, int IC, int OC, cudaStream_t s) {
    int id = fp8_linear_index(lc, kind, layer);
    const char* name = LINEAR_KIND_NAMES[kind];
    int keep = linear_keeps_input(lc, kind, layer, N, IC, OC);
    if (keep && lc->saved_rows[id] < N) { die("internal: FP8 backward of %s.%d over %d rows without its forward", LINEAR_KIND_NAMES[kind], layer, N); }
    int tx = fp8_tensor(id, FP8_ROLE_X), tw = fp8_tensor(id, FP8_ROLE_W), tdy = fp8_tensor(id, FP8_ROLE_DY);
    Fp8Format fdy = fp8_tensor_format(lc, tdy);
    const float* sdy = fp8_scale_inv_at(lc->sc_block, lc->num_tensors, tdy);
    const float* sw = fp8_scale_inv_at(lc->sc_block, lc->num_tensors, tw);
    const float* sx = fp8_scale_inv_at(lc->sc_block, lc->num_tensors, tx);
    Fp8Weight* w = fp8_weight_ready(lc, id, weight, OC, IC, s);
    const uint8_t* x8 = keep ? lc->saved_x[id] : NULL;         // (N,IC) the forward's FP8 input
    // Chunks of rows (one chunk but for the LM head): each casts its rows of dout, computes
    // their input gradient, and adds their share of the weight gradient into dweight. The extra
    // BF16 roundings of a few chunks (2^-9 relative each) are small beside the FP8 wgrad's own
    // error (~4%, dev/test_fp8), and save an FP32 accumulator of the LM head's size.
    int rows = fp8_chunk_rows(lc, N, IC, OC);
    float* colsum = dbias != NULL && rows == N ? scratch : NULL;   // the bias gradient, summed by the dy cast
    if (dout_pre != NULL && (fp8_needs_own_amax(&lc->sc, tdy) || fp8_chunk_rows(lc, N, IC, OC) < N)) {
        die("internal: GELU's backward moved into a cast that needs its amax first, or runs in chunks");
    }
    if (dout_sg != NULL && (fp8_needs_own_amax(&lc->sc, tdy) || dbias != NULL)) {
        die("internal: a softmax gradient made by a cast that needs its amax first, or with a bias");
    }
    // attention's backward wrote dy8, dy^T8 where this call keeps them, and the bias partials
    int ready = kind == LINEAR_QKV && lc->dy_ready == layer + 1;
    lc->dy_ready = 0;
    if (ready && (rows < N || dout_pre != NULL || dout_sg != NULL)) { die("internal: an FP8 output gradient made ahead for a chunked call"); }
    if (ready) { colsum = NULL; }
    float* amax = ready ? NULL : fp8_cast_begin(lc, tdy, dout, (long)N * OC, s);
    if (!ready && amax == NULL) { prof_mark(lc->prof, name, "amax dy"); }
    uint8_t* wt8 = fp8_arena(lc, fp8_arena_need(rows, IC, OC)); // (IC,OC)
    uint8_t* dy8 = wt8 + align256((size_t)OC * IC);             // (n,OC)
    uint8_t* dyt8 = dy8 + align256((size_t)rows * OC);          // (OC,n)
    uint8_t* xt8 = dyt8 + align256((size_t)rows * OC);          // (IC,n)
    transpose_fp8(wt8, w->w, OC, IC, s);
    prof_mark(lc->prof, name, "transpose w");
    for (int r0 = 0; r0 < N; r0 += rows) {
        int n = N - r0 < rows ? N - r0 : rows;
        const floatX* dp = dout_pre != NULL ? dout_pre + (size_t)r0 * OC : NULL;
        SoftmaxGrad sg;
        if (dout_sg != NULL) { sg = *dout_sg; sg.lse += r0; sg.targets += r0; }
        CastXform xf = dp ? CAST_DGELU : dout_sg ? CAST_SOFTMAX_GRAD : CAST_PLAIN;
        if (!ready) {
            fp8_cast_rows(lc, tdy, dy8, dyt8, dout + (size_t)r0 * OC, n, OC, amax, 1, colsum, xf, dp, dout_sg ? &sg : NULL, s);
            prof_mark(lc->prof, name, dp ? "dgelu + cast dy + dy^T + bias" : dout_sg ? "softmax grad + cast dy + dy^T" :
                                      colsum ? "cast dy + dy^T + bias" : "cast dy + dy^T");
        }
        const floatX* pg = pre_gelu != NULL ? pre_gelu + (size_t)r0 * IC : NULL;
        if (keep) { transpose_fp8(xt8, x8 + (size_t)r0 * IC, n, IC, s); prof_mark(lc->prof, name, "transpose x"); }
        else {
            fp8_cast_rows(lc, tx, NULL, xt8, pg ? pg : inp + (size_t)r0 * IC, n, IC, NULL, 0, NULL, pg ? CAST_GELU : CAST_PLAIN, NULL, NULL, s);
            prof_mark(lc->prof, name, pg ? "gelu + cast x^T" : "cast x^T");
        }
        floatX* di = dinp + (size_t)r0 * IC;
        // cuBLASLt's FP8 kernel with the DGELU epilogue ran at a sixth of the plain one's speed
        // (H100, dev/test_fp8's timings): GELU's backward comes after (here, or in the next cast)
        gemm_fp8(&lc->gemm, di, dy8, fdy, sdy, wt8, FP8_E4M3, sw, NULL, n, IC, OC, 0.0f, 0, GEMM_NO_GELU, NULL, s);
        prof_mark(lc->prof, name, "dgrad gemm");
        if (pg != NULL && dgelu_dinp) { gelu_backward_inplace(di, pg, (long)n * IC, s); prof_mark(lc->prof, name, "dgelu"); }
        gemm_fp8(&lc->gemm, dweight, dyt8, fdy, sdy, xt8, FP8_E4M3, sx, NULL, OC, IC, n, 1.0f, 0, GEMM_NO_GELU, NULL, s);
        prof_mark(lc->prof, name, "wgrad gemm");
    }
    if (ready && dbias != NULL) { if (!grad_partials_end(&lc->qkv_bias, layer, dbias, OC, s)) { die("internal: QKV bias partials missing"); } }
    else if (colsum != NULL) { add_partials(dbias, colsum, colsum_num_chunks(N), OC, OC, s); }
    else if (dbias != NULL) { bias_backward(dbias, dout, scratch, N, OC, s); }
    if (dbias != NULL) { prof_mark(lc->prof, name, "bias grad"); }
    if (!lc->weights_hook) { w->stale = 1; }
}


// dinp (N,IC) = dout (N,OC) @ weight (OC,IC)      (overwritten), times gelu'(pre_gelu (N,IC)) when
//                                                 pre_gelu is given: the input came out of a GELU
// dweight (OC,IC) += dout^T @ inp (N,IC)          (accumulated over micro-batches)
// dbias (OC) += column sums of dout, when dbias != NULL; scratch: colsum_num_chunks(N) * OC floats
// inp must be what this micro-batch's forward read; the weight gradient uses the quantized copy
// the forward kept (linear_keeps_input: inp is not read), or in FP8 re-casts inp with the forward's
// scale (from gelu(pre_gelu) when pre_gelu is given: inp is not read, see linear_backward_reads_input).
static inline void linear_backward(LinearContext* lc, LinearKind kind, int layer, floatX* dinp, floatX* dweight,
                                   floatX* dbias, float* scratch, const floatX* dout, const floatX* inp,
                                   const floatX* pre_gelu, const floatX* weight, int N, int IC, int OC, cudaStream_t s) {
    int id = fp8_linear_index(lc, kind, layer);
    const char* name = LINEAR_KIND_NAMES[kind];
    if (mx_linear_runs(lc, id, N, IC, OC)) {
        mx_linear_backward(&lc->mx, &lc->gemm, id, linear_keeps_input(lc, kind, layer, N, IC, OC), dinp, dweight, dbias, scratch,
                           dout, inp, pre_gelu, weight, N, IC, OC, s);
        prof_mark(lc->prof, name, "mx backward");
        return;
    }
    if (!fp8_runs(lc, id, N, IC, OC)) {
        bf16_linear_backward(&lc->gemm, lc->prof, name, dinp, dweight, dbias, scratch, dout, inp, pre_gelu, weight, N, IC, OC,
                             kind == LINEAR_QKV ? &lc->qkv_bias : NULL, layer, s);   // QKV: attention's sums
        return;
    }
    fp8_linear_backward(lc, kind, layer, dinp, dweight, dbias, scratch, dout, NULL, NULL, inp, pre_gelu, 1, weight, N, IC, OC, s);
}

// 1 when the LM head's backward over N rows makes the logits' gradient itself from the logits
// (linear_backward_lmhead with a SoftmaxGrad), so the classifier need only measure the loss:
// in FP8 with the gradient's scale known ahead (delayed scaling). That saves writing the BF16
// gradient (N,Vp) and reading it back.
static inline int linear_lmhead_makes_dlogits(const LinearContext* lc, int N, int C, int Vp) {
    int id = fp8_linear_index(lc, LINEAR_LMHEAD, 0);
    return fp8_runs(lc, id, N, C, Vp) && !fp8_needs_own_amax(&lc->sc, fp8_tensor(id, FP8_ROLE_DY));
}

// The LM head's backward: linear_backward of (N,C) -> (N,Vp) with no bias, dout = dlogits; or,
// with sg (when linear_lmhead_makes_dlogits), dout = the logits and the gradient made from them.
static inline void linear_backward_lmhead(LinearContext* lc, floatX* dinp, floatX* dweight, float* scratch,
                                          const floatX* dout, const SoftmaxGrad* sg, const floatX* inp,
                                          const floatX* weight, int N, int C, int Vp, cudaStream_t s) {
    if (sg == NULL) { linear_backward(lc, LINEAR_LMHEAD, 0, dinp, dweight, NULL, scratch, dout, inp, NULL, weight, N, C, Vp, s); return; }
    if (!linear_lmhead_makes_dlogits(lc, N, C, Vp)) { die("internal: LM head backward from logits where it cannot make their gradient"); }
    fp8_linear_backward(lc, LINEAR_LMHEAD, 0, dinp, dweight, NULL, scratch, dout, NULL, sg, inp, NULL, 1, weight, N, C, Vp, s);
}

// The MLP's backward, the FC projection's then the FC's (the model's (N,C) -> (N,4C) -> (N,C)):
//   dfch (N,4C) = GELU's backward of dproj (N,C) @ fcproj_w (C,4C)   (scratch the FC reads)
//   dln (N,C) = dfch @ fc_w (4C,C), and both weight and bias gradients, as two linear_backward
// calls would. In FP8 with the FC's gradient scale known ahead (delayed scaling), GELU's backward
// rides in the FC's gradient cast instead of a pass of its own: dfch holds the projection's raw
// input gradient, and the FP8 copies are those of the two calls, bit for bit.
static inline void linear_backward_mlp(LinearContext* lc, int layer, floatX* dln, floatX* dfch, floatX* dw_fc, floatX* db_fc,
                                       floatX* dw_proj, floatX* db_proj, float* scratch, const floatX* dproj,
                                       const floatX* ln2, const floatX* fch, const floatX* fch_gelu, const floatX* w_fc,
                                       const floatX* w_proj, int N, int C, cudaStream_t s) {
    int fc = fp8_linear_index(lc, LINEAR_FC, layer), proj = fp8_linear_index(lc, LINEAR_FCPROJ, layer);
    int fuse = fp8_runs(lc, fc, N, C, 4 * C) && fp8_runs(lc, proj, N, 4 * C, C) &&
               !fp8_needs_own_amax(&lc->sc, fp8_tensor(fc, FP8_ROLE_DY)) && fp8_chunk_rows(lc, N, C, 4 * C) == N;
    if (!fuse) {
        linear_backward(lc, LINEAR_FCPROJ, layer, dfch, dw_proj, db_proj, scratch, dproj, fch_gelu, fch, w_proj, N, 4 * C, C, s);
        linear_backward(lc, LINEAR_FC, layer, dln, dw_fc, db_fc, scratch, dfch, ln2, NULL, w_fc, N, C, 4 * C, s);
        return;
    }
    fp8_linear_backward(lc, LINEAR_FCPROJ, layer, dfch, dw_proj, db_proj, scratch, dproj, NULL, NULL, fch_gelu, fch, 0, w_proj, N, 4 * C, C, s);
    fp8_linear_backward(lc, LINEAR_FC, layer, dln, dw_fc, db_fc, scratch, dfch, fch, NULL, ln2, NULL, 1, w_fc, N, C, 4 * C, s);
    lc->fused_mlp++;
}

// ------------------------------------------------------------------------------------------
// attention (llmc/attention_fp8.cuh): in FP8 under --precision fp8 --attention fp8, in the blocks
// that run in FP8. The forward casts Q, K, V once into all six FP8 copies the forward and the
// backward read, and keeps them in place of the BF16 QKV activation (the same bytes when T is a
// multiple of 64), so the backward casts only dO; without that room the copies live in the arena
// and the backward re-casts them from the BF16 Q, K, V. Each layer's Q, K, V, dO, dS have scales
// of their own, delayed or current like the linears'; current scaling (and an empty history)
// measures each before its cast.

static inline int linear_attention_fp8(const LinearContext* lc, int layer) {
    return lc->opt.fp8 && lc->opt.att_fp8 && lc->use_fp8[fp8_linear_index(lc, LINEAR_QKV, layer)];
}

// 1 when layer's attention over (B,T) keeps its FP8 copies of Q, K, V in `room` bytes (the QKV
// activation's) from its forward to its backward.
static inline int linear_attention_keeps_qkv(const LinearContext* lc, int layer, int B, int T, int NH, size_t room) {
    return linear_attention_fp8(lc, layer) && lc->att8_keep && attention_fp8_qkv_bytes(B, T, NH) <= room;
}

// The arena room attention needs for micro-batches of (B, T), NH heads.
static inline void linear_reserve_attention(LinearContext* lc, int B, int T, int NH) {
    for (int l = 0; l < lc->num_layers; l++) {
        if (linear_attention_fp8(lc, l)) {   // the backward's copies follow the QKV backward's dy, dy^T
            size_t at = fp8_arena_dy_end(B * T, NH * ATT_HS, 3 * NH * ATT_HS);
            fp8_arena(lc, at + attention_fp8_qkv_bytes(B, T, NH) + attention_fp8_dout_bytes(B, T, NH));
            return;
        }
    }
}

// Before the casts of attention tensors t0 + first .. t0 + last: returns where the casts raise
// the step's amax (the layer's ATT8_TENSORS base), or NULL when their scales needed their own
// amax, which `measure` (raising amax_cur from the layer's base) has just taken.
template <typename F>
static inline float* att8_cast_begin(LinearContext* lc, int t0, int first, int last, F measure, cudaStream_t s) {
    int NT = lc->num_tensors, H = lc->sc.history_len;
    float* blk = lc->sc_block;
    for (int i = first; i <= last; i++) { fp8_note_cast(&lc->sc, t0 + i); }
    if (!fp8_needs_own_amax(&lc->sc, t0 + first)) { return fp8_amax_step(blk) + t0; }   // the tensors are cast together
    measure(fp8_amax_cur(blk, NT, H) + t0);
    for (int i = first; i <= last; i++) {
        fp8_current_scale_kernel<<<1, 1, 0, s>>>(blk, NT, H, t0 + i, fp8_format_max(fp8_tensor_format(lc, t0 + i)), lc->sc.margin);
        cudaCheckLaunch();
    }
    return NULL;
}

// A stats step counts the saturated and flushed values of tensors t0 + first .. t0 + last.
static inline unsigned long long* att8_counts(LinearContext* lc, int t0, int first, int last, double n) {
    if (!lc->stats_step) { return NULL; }
    for (int i = first; i <= last; i++) { lc->counted[t0 + i] += n; }
    return lc->counts + 2 * (size_t)t0;
}

// out (B,T,C) = causal attention of qkv (B,T,3C); saved: the log-sum-exp (attention_saved_bytes).
// kept8: where the FP8 copies of Q, K, V stay for the backward (linear_attention_keeps_qkv), or NULL.
static inline void linear_attention_forward(LinearContext* lc, int layer, floatX* out, void* saved, const floatX* qkv,
                                            void* kept8, int B, int T, int C, int NH, float sm_scale, cudaStream_t s) {
    if (!linear_attention_fp8(lc, layer)) {
        if (kept8 != NULL) { die("internal: BF16 attention keeps no copies of Q, K, V (layer %d)", layer); }
        attention_forward(out, saved, qkv, B, T, C, NH, sm_scale, s);
        prof_mark(lc->prof, "attention", "forward");
        return;
    }
    attention_check_shape(C, NH, T);
    int t0 = lc->att_tensor0 + ATT8_TENSORS * layer;
    const float* sc = fp8_scale(lc->sc_block, lc->num_tensors) + t0;
    size_t nq = attention_fp8_qkv_bytes(B, T, NH);
    uint8_t* q8 = kept8 != NULL ? (uint8_t*)kept8 : fp8_arena(lc, nq + attention_fp8_dout_bytes(B, T, NH));
    Att8Copies c = attention_fp8_carve(q8, NULL, B, T, NH);
    float* amax = att8_cast_begin(lc, t0, ATT8_Q, ATT8_V, [&](float* cur) {
        attention_fp8_cast_qkv(&c, qkv, B, T, NH, sc, cur, NULL, ATT8_MEASURE, s);
    }, s);
    attention_fp8_cast_qkv(&c, qkv, B, T, NH, sc, amax, att8_counts(lc, t0, ATT8_Q, ATT8_V, (double)B * T * C),
                           kept8 != NULL ? ATT8_FWD | ATT8_BWD : ATT8_FWD, s);
    prof_mark(lc->prof, "attention", "fp8 cast qkv");
    attention_fp8_forward(out, (float*)saved, &c, B, T, NH, sm_scale, sc, s);
    prof_mark(lc->prof, "attention", "fp8 forward");
}

// What attention's backward of `layer` over (B,T) writes for the QKV linear's backward (fed
// straight with dqkv): in FP8 with delayed scaling, dy8 and dy^T8 where that backward keeps them
// (the arena's first fp8_arena_need(N, C, 3C) bytes) and the bias partials, so it casts nothing;
// for a BF16 QKV linear the bias partials. Else nothing.
static inline AttGradOut att_grad_out(LinearContext* lc, int layer, int B, int T, int C) {
    AttGradOut go = {NULL, NULL, NULL, NULL, NULL, 0};
    int id = fp8_linear_index(lc, LINEAR_QKV, layer), N = B * T, tdy = fp8_tensor(id, FP8_ROLE_DY);
    int bf16 = !mx_linear_runs(lc, id, N, C, 3 * C) && !fp8_runs(lc, id, N, C, 3 * C);
    int fp8 = fp8_runs(lc, id, N, C, 3 * C) && lc->fused_dy && !lc->stats_step && T % ATT_TILE == 0 &&
              !fp8_needs_own_amax(&lc->sc, tdy) && fp8_chunk_rows(lc, N, C, 3 * C) == N;
    if (!bf16 && !fp8) { return go; }
    go.colsum = grad_partials_begin(&lc->qkv_bias, layer, attention_grad_chunks(B, T), 3 * C);
    if (fp8) {
        uint8_t* wt8 = fp8_arena(lc, fp8_arena_need(N, C, 3 * C));   // fp8_linear_backward's layout
        go.q8 = wt8 + align256((size_t)3 * C * C);
        go.q8t = go.q8 + align256((size_t)N * 3 * C);
        go.scale = fp8_scale(lc->sc_block, lc->num_tensors) + tdy;
        go.amax = fp8_amax_step(lc->sc_block) + tdy;
        go.e5m2 = fp8_tensor_format(lc, tdy) == FP8_E5M2;
        fp8_note_cast(&lc->sc, tdy);
        lc->dy_ready = layer + 1;
    }
    return go;
}

// dqkv (B,T,3C) from dout (B,T,C), given the forward's out, saved state, and its kept8 copies
// (else qkv, re-cast); scratch: attention_scratch_bytes. feeds_qkv: dqkv goes straight to the QKV
// linear's backward (not with --qk-norm), which may then take its input from att_grad_out.
static inline void linear_attention_backward(LinearContext* lc, int layer, floatX* dqkv, void* scratch, const floatX* dout,
                                             const floatX* out, const floatX* qkv, const void* kept8, const void* saved, int B,
                                             int T, int C, int NH, float sm_scale, int feeds_qkv, cudaStream_t s) {
    AttGradOut go = {NULL, NULL, NULL, NULL, NULL, 0};
    // the copies of FP8 attention follow the QKV backward's dy, dy^T in the arena (grown first:
    // growing moves it); its W^T and x^T are written after attention is done
    size_t nq = attention_fp8_qkv_bytes(B, T, NH), at = fp8_arena_dy_end(B * T, C, 3 * C);
    if (linear_attention_fp8(lc, layer)) { fp8_arena(lc, at + nq + attention_fp8_dout_bytes(B, T, NH)); }
    if (feeds_qkv) { go = att_grad_out(lc, layer, B, T, C); }
    if (!linear_attention_fp8(lc, layer)) {
        if (kept8 != NULL) { die("internal: BF16 attention keeps no copies of Q, K, V (layer %d)", layer); }
        attention_backward(dqkv, scratch, dout, out, qkv, saved, B, T, C, NH, sm_scale, &go, s);
        prof_mark(lc->prof, "attention", "backward");
        return;
    }
    attention_check_shape(C, NH, T);
    int t0 = lc->att_tensor0 + ATT8_TENSORS * layer;
    const float* sc = fp8_scale(lc->sc_block, lc->num_tensors) + t0;
    Fp8Format g = fp8_tensor_format(lc, t0 + ATT8_DOUT);
    float* delta = (float*)scratch;
    const float* lse = (const float*)saved;
    uint8_t* arena = fp8_arena(lc, at + nq + attention_fp8_dout_bytes(B, T, NH)) + at;
    Att8Copies c = kept8 != NULL ? attention_fp8_carve((uint8_t*)kept8, arena, B, T, NH) : attention_fp8_carve(arena, arena + nq, B, T, NH);
    if (kept8 == NULL) {   // Q, K, V again with the forward's scales: the forward's codes, in the backward's orientations
        attention_fp8_cast_qkv(&c, qkv, B, T, NH, sc, NULL, NULL, ATT8_BWD, s);
    }
    float* amax = att8_cast_begin(lc, t0, ATT8_DOUT, ATT8_DOUT, [&](float* cur) {
        attention_fp8_cast_dout(&c, NULL, dout, out, B, T, NH, sc, cur, NULL, g, 1, s);
    }, s);
    attention_fp8_cast_dout(&c, delta, dout, out, B, T, NH, sc, amax, att8_counts(lc, t0, ATT8_DOUT, ATT8_DOUT, (double)B * T * C),
                            g, 0, s);
    prof_mark(lc->prof, "attention", "fp8 cast backward");
    amax = att8_cast_begin(lc, t0, ATT8_DS, ATT8_DS, [&](float* cur) {
        attention_fp8_measure_ds(cur, &c, lse, delta, B, T, NH, sm_scale, sc, g, s);
    }, s);
    attention_fp8_backward(dqkv, &c, lse, delta, B, T, NH, sm_scale, sc, amax, g, &go, s);
    prof_mark(lc->prof, "attention", "fp8 backward");
}

// ------------------------------------------------------------------------------------------
// statistics

typedef struct {
    float amax;          // max |x| over the step's casts
    float scale;         // the scale in place at the end of the step
    double saturated;    // fraction of the elements cast with |x * scale| > the format's max
    double flushed;      // fraction that were nonzero and became 0
    double elements;     // elements cast in the step (0: the tensor was not cast, or stats were off)
} Fp8TensorStats;

// Per quantized tensor statistics of the step that just ran (out: num_tensors entries;
// counts are taken only in stats steps, see --fp8-stats). Synchronizes.
static inline void linear_fp8_stats(const LinearContext* lc, Fp8TensorStats* out) {
    int NT = lc->num_tensors;
    float* f = (float*)malloc_or_die(2 * (size_t)NT * sizeof(float), "fp8 statistics");
    unsigned long long* c = (unsigned long long*)malloc_or_die(2 * (size_t)NT * sizeof(unsigned long long), "fp8 statistics");
    cudaCheck(cudaMemcpy(f, lc->sc_block, 2 * (size_t)NT * sizeof(float), cudaMemcpyDeviceToHost));   // amax_step, scale
    cudaCheck(cudaMemcpy(c, lc->counts, 2 * (size_t)NT * sizeof(unsigned long long), cudaMemcpyDeviceToHost));
    for (int t = 0; t < NT; t++) {
        double n = lc->counted[t];
        out[t].amax = f[t];
        out[t].scale = f[NT + t];
        out[t].elements = n;
        out[t].saturated = n > 0 ? (double)c[2 * t] / n : 0.0;
        out[t].flushed = n > 0 ? (double)c[2 * t + 1] / n : 0.0;
    }
    free(f); free(c);
}

// After a step: in stats steps (every --fp8-stats N), one JSON line per FP8 tensor cast in
// the step; `step` numbered as the trainer's log (1-based, the step just completed).
static inline void linear_stats_log(const LinearContext* lc, FILE* log) {
    if (!lc->opt.fp8 || !lc->stats_step || log == NULL) { return; }
    Fp8TensorStats* st = (Fp8TensorStats*)malloc_or_die(lc->num_tensors * sizeof(Fp8TensorStats), "fp8 statistics");
    linear_fp8_stats(lc, st);
    for (int t = 0; t < lc->num_tensors; t++) {
        // attention's dS is cast inside the attention kernels, which count nothing: amax and scale only
        int counted = st[t].elements > 0;
        if (!counted && !(t >= lc->att_tensor0 && st[t].amax > 0.0f)) { continue; }
        char name[48];
        fp8_tensor_name(lc, t, name, sizeof(name));
        fprintf(log, "{\"step\":%d,\"fp8_tensor\":\"%s\",\"amax\":%.6g,\"scale\":%.6g", lc->sc.step, name, st[t].amax, st[t].scale);
        if (counted) { fprintf(log, ",\"saturated\":%.6g,\"flushed\":%.6g", st[t].saturated, st[t].flushed); }
        fprintf(log, "}\n");
    }
    fflush(log);
    free(st);
}

#endif // LLMC_LINEAR_FP8_CUH
