// The linear-layer (GEMM) layer of the BF16 trainer. Every weight GEMM of the model
// goes through linear_forward / linear_backward, identified by its kind and layer, so
// a low-precision trainer can provide the same functions (and keep per-tensor state
// such as FP8 scales keyed by kind and layer) while the model code stays shared.
#ifndef LLMC_LINEAR_BF16_CUH
#define LLMC_LINEAR_BF16_CUH

#include "linear_gemms_bf16.cuh"
#include "train_args.h"
#include "multi_gpu.h"
#include "fp8_cast.cuh"
#include "attention.cuh"

#define LLMC_LINEAR_DEFINED 1

typedef enum { LINEAR_QKV, LINEAR_ATTPROJ, LINEAR_FC, LINEAR_FCPROJ, LINEAR_LMHEAD, LINEAR_KINDS } LinearKind;
static const char* const LINEAR_KIND_NAMES[LINEAR_KINDS] = {"qkv", "attproj", "fc", "fcproj", "lmhead"};

// Interface every linear-layer header provides to llmc/gpt2.cuh and llmc/trainer.cuh:
//   LinearOptions, linear_options_defaults/parse/help   the precision's own flags
//   LinearContext (with a GemmContext `gemm` for BF16 work such as attention, and a
//                  Profiler* `prof` that the model sets when --profile is on)
//   linear_context_init/free, linear_precision_name
//   linear_native_gemm_name                            the kernel the GPU picked for the GEMMs, or NULL
//   linear_reserve                                     allocate working memory up front
//   linear_set_comm                                    the ranks to reduce per-step statistics over
//   linear_step_begin                                  before the first micro-batch of a step
//   linear_weights_changed                             after the optimizer (or a load) changed weights
//   linear_state_bytes/save/load                       extra checkpoint state (e.g. FP8 scales)
//   linear_stats_log, linear_stats_due                per-step statistics into the run's log
//   linear_forward, linear_backward
//   linear_backward_mlp                                the FC projection's and FC's backward together
//   linear_lmhead_makes_dlogits, linear_backward_lmhead   the LM head's backward, from the logits
//                                                      themselves where the layer can (FP8)
//   linear_keeps_input                                 the layer keeps its input for backward itself
//   linear_backward_reads_input                        backward reads the BF16 input it is given
//   linear_input_fp8                                   the input's producer writes it in FP8 (Fp8Out)
//   linear_reserve_attention, linear_attention_forward/backward
//                                                      attention, in the layer's precision
//   linear_attention_keeps_qkv                         ... keeping its own Q, K, V copies instead of BF16's
//   LinearWeightPart, linear_weight_gathers_fp8,       ZeRO-1 weights that travel in a low
//   linear_weight_parts_cast,                          precision (see llmc/linear_fp8.cuh);
//   linear_weight_received                             none here
typedef struct { int unused; } LinearOptions;

typedef struct {
    GemmContext gemm;
    Profiler* prof;
    GradPartials qkv_bias;   // the QKV bias gradient's partials, summed by attention's backward
} LinearContext;

static inline void linear_options_defaults(LinearOptions* o) { o->unused = 0; }

// Accepts --precision bf16 so run scripts can pass the same flag to every trainer.
static inline int linear_options_parse(LinearOptions* o, const char* flag, const char* value) {
    (void)o;
    if (strcmp(flag, "--precision") != 0) { return 0; }
    if (strcmp(value, "bf16") != 0) { flag_error(flag, value, "this is the BF16 trainer; use train_gpt2_fp8 for other precisions"); }
    return 1;
}

static inline void linear_options_help(void) {
    printf("  --precision bf16   the only precision of this trainer (train_gpt2_fp8 has the others)\n");
}

static inline const char* linear_precision_name(const LinearContext* lc) { (void)lc; return "bf16"; }
static inline const char* linear_native_gemm_name(const LinearContext* lc) { (void)lc; return NULL; }

static inline void linear_context_init(LinearContext* lc, const LinearOptions* o, int num_layers) {
    (void)o; (void)num_layers;
    memset(lc, 0, sizeof(*lc));
    gemm_context_init(&lc->gemm);
    attention_init();
}

static inline void linear_context_free(LinearContext* lc) {
    grad_partials_free(&lc->qkv_bias);
    gemm_context_free(&lc->gemm);
}

static inline void linear_reserve(LinearContext* lc, int max_rows, int C, int Vp) { (void)lc; (void)max_rows; (void)C; (void)Vp; }
static inline void linear_set_comm(LinearContext* lc, const MultiGpu* mg) { (void)lc; (void)mg; }
static inline void linear_reserve_attention(LinearContext* lc, int B, int T, int NH) { (void)lc; (void)B; (void)T; (void)NH; }
static inline void linear_step_begin(LinearContext* lc) { (void)lc; }
static inline void linear_weights_changed(LinearContext* lc) { (void)lc; }
static inline void linear_stats_log(const LinearContext* lc, FILE* log) { (void)lc; (void)log; }
static inline int linear_stats_due(const LinearContext* lc) { (void)lc; return 0; }

typedef struct { LinearKind kind; int layer; const floatX* src; uint8_t* dst; long n; } LinearWeightPart;
static inline int linear_weight_gathers_fp8(const LinearContext* lc, LinearKind kind, int layer, int OC, int IC) {
    (void)lc; (void)kind; (void)layer; (void)OC; (void)IC; return 0;
}
static inline void linear_weight_parts_cast(LinearContext* lc, const LinearWeightPart* parts, int nparts, cudaStream_t s) {
    (void)lc; (void)parts; (void)nparts; (void)s;
}
static inline void linear_weight_received(LinearContext* lc, LinearKind kind, int layer, const floatX* weight, int OC, int IC,
                                          const uint8_t* const* src, const long* end, int n, cudaStream_t s) {
    (void)lc; (void)kind; (void)layer; (void)weight; (void)OC; (void)IC; (void)src; (void)end; (void)n; (void)s;
}

static inline int linear_keeps_input(const LinearContext* lc, LinearKind kind, int layer, int N, int IC, int OC) {
    (void)lc; (void)kind; (void)layer; (void)N; (void)IC; (void)OC; return 0;
}
static inline int linear_backward_reads_input(const LinearContext* lc, LinearKind kind, int layer, int N, int IC, int OC) {
    (void)lc; (void)kind; (void)layer; (void)N; (void)IC; (void)OC; return 1;
}
static inline int linear_input_fp8(LinearContext* lc, LinearKind kind, int layer, int N, int IC, int OC, Fp8Out* out) {
    (void)lc; (void)kind; (void)layer; (void)N; (void)IC; (void)OC; (void)out; return 0;
}

static inline size_t linear_state_bytes(const LinearContext* lc) { (void)lc; return 0; }
static inline void linear_state_save(const LinearContext* lc, void* dst) { (void)lc; (void)dst; }
static inline void linear_state_load(LinearContext* lc, const void* src) { (void)lc; (void)src; }

// out (N,OC) = inp (N,IC) @ weight (OC,IC)^T + bias (OC); bias may be NULL.
// With pre_gelu (N,OC): pre_gelu = that sum and out = gelu(pre_gelu), in the GEMM's epilogue.
static inline void linear_forward(LinearContext* lc, LinearKind kind, int layer, floatX* out, floatX* pre_gelu,
                                  const floatX* inp, const floatX* weight, const floatX* bias, int N, int IC, int OC,
                                  cudaStream_t s) {
    (void)layer;
    bf16_linear_forward(&lc->gemm, lc->prof, LINEAR_KIND_NAMES[kind], out, pre_gelu, inp, weight, bias, N, IC, OC, s);
}

// dinp (N,IC) = dout (N,OC) @ weight (OC,IC)      (overwritten), times gelu'(pre_gelu (N,IC)) when
//                                                 pre_gelu is given: the input came out of a GELU
// dweight (OC,IC) += dout^T @ inp (N,IC)          (accumulated over micro-batches)
// dbias (OC) += column sums of dout, when dbias != NULL; scratch: colsum_num_chunks(N) * OC floats
static inline void linear_backward(LinearContext* lc, LinearKind kind, int layer, floatX* dinp, floatX* dweight,
                                   floatX* dbias, float* scratch, const floatX* dout, const floatX* inp,
                                   const floatX* pre_gelu, const floatX* weight, int N, int IC, int OC, cudaStream_t s) {
    bf16_linear_backward(&lc->gemm, lc->prof, LINEAR_KIND_NAMES[kind], dinp, dweight, dbias, scratch, dout, inp, pre_gelu,
                         weight, N, IC, OC, kind == LINEAR_QKV ? &lc->qkv_bias : NULL, layer, s);   // QKV: attention's sums
}

static inline int linear_lmhead_makes_dlogits(const LinearContext* lc, int N, int C, int Vp) {
    (void)lc; (void)N; (void)C; (void)Vp; return 0;
}

// The LM head's backward, dout = dlogits (N,Vp) (sg: only where linear_lmhead_makes_dlogits).
static inline void linear_backward_lmhead(LinearContext* lc, floatX* dinp, floatX* dweight, float* scratch,
                                          const floatX* dout, const SoftmaxGrad* sg, const floatX* inp,
                                          const floatX* weight, int N, int C, int Vp, cudaStream_t s) {
    if (sg != NULL) { die("internal: the BF16 LM head takes the logits' gradient, not the logits"); }
    linear_backward(lc, LINEAR_LMHEAD, 0, dinp, dweight, NULL, scratch, dout, inp, NULL, weight, N, C, Vp, s);
}

// The MLP's backward, the FC projection's then the FC's (the model's (N,C) -> (N,4C) -> (N,C)):
// dfch (N,4C) = GELU's backward of dproj (N,C) @ fcproj_w (C,4C), dln (N,C) = dfch @ fc_w (4C,C),
// and the weight and bias gradients. A low-precision layer may move GELU's backward between them.
static inline void linear_backward_mlp(LinearContext* lc, int layer, floatX* dln, floatX* dfch, floatX* dw_fc, floatX* db_fc,
                                       floatX* dw_proj, floatX* db_proj, float* scratch, const floatX* dproj,
                                       const floatX* ln2, const floatX* fch, const floatX* fch_gelu, const floatX* w_fc,
                                       const floatX* w_proj, int N, int C, cudaStream_t s) {
    linear_backward(lc, LINEAR_FCPROJ, layer, dfch, dw_proj, db_proj, scratch, dproj, fch_gelu, fch, w_proj, N, 4 * C, C, s);
    linear_backward(lc, LINEAR_FC, layer, dln, dw_fc, db_fc, scratch, dfch, ln2, NULL, w_fc, N, C, 4 * C, s);
}

// Attention (llmc/attention.cuh), BF16 here; a low-precision layer may run it in its format, and
// keep its own copies of Q, K, V from forward to backward in `room` bytes (kept8: see
// llmc/linear_fp8.cuh), in place of the BF16 QKV activation. BF16 keeps none.
static inline int linear_attention_keeps_qkv(const LinearContext* lc, int layer, int B, int T, int NH, size_t room) {
    (void)lc; (void)layer; (void)B; (void)T; (void)NH; (void)room;
    return 0;
}

static inline void linear_attention_forward(LinearContext* lc, int layer, floatX* out, void* saved, const floatX* qkv,
                                            void* kept8, int B, int T, int C, int NH, float sm_scale, cudaStream_t s) {
    if (kept8 != NULL) { die("internal: BF16 attention keeps no copies of Q, K, V (layer %d)", layer); }
    attention_forward(out, saved, qkv, B, T, C, NH, sm_scale, s);
    prof_mark(lc->prof, "attention", "forward");
}

// feeds_qkv: dqkv goes straight to the QKV linear's backward, whose bias gradient attention's
// backward then sums (AttGradOut's colsum; not with --qk-norm, whose backward changes dqkv first).
static inline void linear_attention_backward(LinearContext* lc, int layer, floatX* dqkv, void* scratch, const floatX* dout,
                                             const floatX* out, const floatX* qkv, const void* kept8, const void* saved, int B,
                                             int T, int C, int NH, float sm_scale, int feeds_qkv, cudaStream_t s) {
    if (kept8 != NULL) { die("internal: BF16 attention keeps no copies of Q, K, V (layer %d)", layer); }
    AttGradOut go = {NULL, NULL, NULL, NULL, NULL, 0};
    if (feeds_qkv) { go.colsum = grad_partials_begin(&lc->qkv_bias, layer, attention_grad_chunks(B, T), 3 * C); }
    attention_backward(dqkv, scratch, dout, out, qkv, saved, B, T, C, NH, sm_scale, &go, s);
    prof_mark(lc->prof, "attention", "backward");
}

#endif // LLMC_LINEAR_BF16_CUH
