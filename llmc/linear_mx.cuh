// Block-scaled linear layers (issue 7): --precision mxfp8 and nvfp4, included by
// llmc/linear_fp8.cuh, which dispatches its linear_forward/linear_backward here in those modes.
// Every GEMM operand is quantized along that GEMM's reduction axis, from the BF16 tensor:
//   fprop  out (N,OC) = x (N,IC) @ W (OC,IC)^T     x rows and W rows: blocks along IC
//   dgrad  dx (N,IC)  = dy (N,OC) @ W (OC,IC)      dy rows, W columns: blocks along OC
//   wgrad  dW (OC,IC) += dy^T @ x                   dy and x columns: blocks along N
// MXFP8: E4M3 values (E5M2 gradients in hybrid), one E8M0 scale per 32 (round-up rule, or the
// OCP floor rule). NVFP4: E2M1 values, one E4M3 scale per 16 and an FP32 tensor scale s_t;
// weights in 16x16 tiles (W and W^T quantize identically, so one quantization serves fprop and
// dgrad); the wgrad operands through a 16-point random Hadamard transform along N (the same
// signs for both, so it cancels in the product); gradients with stochastic rounding.
// GEMMs: the FP32 GEMM of the exactly dequantized operands, on one of two paths:
//   dequant  codes -> BF16 (exact: E4M3/E5M2 x 2^k and E2M1 x E4M3 are BF16 values), then
//            cuBLASLt BF16 with FP32 accumulation; NVFP4's 1/(s_tA s_tB) is the GEMM's alpha
//   native   the kernel picked by the GPU at run time (mx_gemm_native):
//            MXFP8 on Hopper: llmc/mx_gemm.cuh, FP8 wgmma per 32-wide K block, scaled and
//            accumulated in FP32 registers (numerically exact, as dequant);
//            Blackwell (compute capability 10+): cuBLASLt's block-scaled GEMM
//            (llmc/mx_gemm_cublaslt.cuh; MXFP8 VEC32_UE8M0, NVFP4 VEC16_UE4M3 with
//            alpha = 1/(s_tA s_tB)), the scales swizzled into a scratch buffer of its own.
//            NVFP4 weights: fprop takes the tiles' codes (OC,IC), dgrad W^T's codes (IC,OC)
//            (written by the same tile pass, kept), each with the 16x16 tile scales expanded
//            to per-16 row scales in the arena; the same codes and scales as dequant, so the
//            same product up to FP32 summation order. cuBLASLt has no E5M2 x E5M2 kernel; none
//            arises: the second operand (a weight or an input) is always E4M3.
//            NOT YET RUN ON A BLACKWELL GPU (none available); a binary for one needs sm_100a
//            code (GPU_ARCH in the Makefile). Hopper has no FP4 tensor cores and NVFP4 no
//            native kernel there: mx_linear_init refuses nvfp4 native below compute capability 10.
// Storage: what lives from call to call is codes and scales only, NVFP4's codes two per byte:
// 8.25 bits per value (MXFP8), 4.5 (NVFP4 rows), 4.03 (NVFP4 weight tiles).
//  - Weights: MXFP8 keeps none; each call quantizes the BF16 weight into its arena, rows for
//    fprop, columns for dgrad (deterministic: the codes do not depend on when they are made;
//    a pass over OC*IC values, small beside the GEMM, and 2 bytes per parameter not kept).
//    NVFP4 keeps its tiles (both GEMMs; quantized once per optimizer step: the tensor scale
//    costs a host sync), native also W^T's codes (4 more bits per parameter). The dequant path
//    dequantizes the tiles into the call's arena; native expands their scales there (OC*IC/16
//    bytes per call: a pass as small as the scale swizzle's, and the arena's room is one
//    call's, where keeping them would cost 1 bit per parameter of every linear).
//  - The wgrad's x^T of the linears whose input comes from a LayerNorm (QKV, FC, a quantized
//    LM head): quantized in forward and kept to the backward (MxSaved), so the model keeps no
//    BF16 copy of that input (linear_keeps_input); NVFP4 picks the wgrad's Hadamard signs then.
//    The other linears' inputs (attention's output, GELU's) stay BF16 in the model, and their
//    x^T is quantized in backward.
//  - The rest (x rows, dy in both orientations, BF16 dequantizations) is scratch of one call,
//    in one arena (mx_call_bytes).
// NVFP4's tensor scales are computed on the device and read back for alpha: one host sync per
// quantized activation (the price of exactness with a host alpha).
#ifndef LLMC_LINEAR_MX_CUH
#define LLMC_LINEAR_MX_CUH

#include "matmul.cuh"
#include "reduce.cuh"
#include "gelu.cuh"
#include "mx_cast.cuh"
#include "mx_gemm.cuh"
#include "mx_gemm_cublaslt.cuh"

typedef enum { MX_NONE = 0, MX_MXFP8 = 1, MX_NVFP4 = 2 } MxMode;

typedef struct {
    const floatX* src;   // the BF16 weight quantized, stale when it changed
    int OC, IC, stale;
    uint8_t* rows;       // NVFP4: (OC,IC) tiles' codes, then scales (both GEMMs); MXFP8: NULL (per call)
    uint8_t* codes_t;    // NVFP4 native: W^T's codes (IC,OC), dgrad's, after rows' in its allocation; else NULL
    float st;            // NVFP4 tensor scale
} MxWeight;

typedef struct {
    uint8_t* buf;        // x^T (IC,N): codes, then scales (IC, N/block)
    size_t bytes;        // room in buf
    int rows;            // N of the forward that filled it; 0 once its backward used it
    float st;            // NVFP4 tensor scale
    uint64_t rht_seed;   // NVFP4: the wgrad's Hadamard signs (dy^T's too)
} MxSaved;

typedef struct {
    MxMode mode;
    int native;          // GEMMs on the native kernels (1) or dequantized to BF16 (0)
    MxScaleRule rule;
    int hybrid;          // E5M2 gradients (MXFP8)
    MxWeight* w;         // (num_linears)
    MxSaved* saved;      // (num_linears) kept inputs
    int num_linears;
    uint8_t* arena;      // codes, scales and dequantized operands of one call
    size_t arena_bytes;
    float* st_dev;       // (4) device: NVFP4 tensor scales and amax scratch
    uint64_t calls;      // stochastic-rounding quantizations so far: the seeds (checkpointed)
    MxGemmWorkspace gemm_ws;   // split-K partial sums of the wgmma kernel (Hopper)
    MxLtContext lt;            // the GPU's compute capability; cuBLASLt for Blackwell's native GEMMs
    uint8_t* lt_scratch;       // their swizzled scales, one GEMM's (of the mode's block)
    size_t lt_scratch_bytes;
} MxLinear;

static inline const char* mx_mode_name(MxMode m) { return m == MX_MXFP8 ? "mxfp8" : m == MX_NVFP4 ? "nvfp4" : "none"; }

// g: the cuBLASLt handle and workspace of Blackwell's native GEMMs (kept, not owned). Dies
// for NVFP4 native GEMMs below Blackwell (nothing runs them there), before any training.
static inline void mx_linear_init(MxLinear* mx, GemmContext* g, MxMode mode, int native, MxScaleRule rule, int hybrid,
                                  int num_linears) {
    memset(mx, 0, sizeof(*mx));
    mx->mode = mode; mx->native = native; mx->rule = rule; mx->hybrid = hybrid; mx->num_linears = num_linears;
    mx_lt_context_init(&mx->lt, g);
    if (mode == MX_NVFP4 && native && !mx_gemm_cublaslt_available(&mx->lt)) {
        die("--precision nvfp4 --mx-gemm native needs cuBLASLt's block-scaled FP4 GEMM, on a Blackwell GPU (compute "
            "capability 10.0+); this GPU is sm_%d%d, which has no FP4 tensor cores: use --mx-gemm dequant",
            mx->lt.cc_major, mx->lt.cc_minor);
    }
    mx->w = (MxWeight*)calloc_or_die(num_linears, sizeof(MxWeight), "block-scaled weights");
    mx->saved = (MxSaved*)calloc_or_die(num_linears, sizeof(MxSaved), "block-scaled inputs");
    mx->st_dev = (float*)cuda_malloc_or_die(4 * sizeof(float), "NVFP4 tensor scales");
}

static inline void mx_weight_free(MxWeight* w) {
    if (w->rows != NULL) { cudaCheck(cudaFree(w->rows)); }
    memset(w, 0, sizeof(*w));
}

static inline void mx_linear_free(MxLinear* mx) {
    for (int i = 0; i < mx->num_linears; i++) {
        mx_weight_free(&mx->w[i]);
        if (mx->saved[i].buf != NULL) { cudaCheck(cudaFree(mx->saved[i].buf)); }
    }
    if (mx->arena != NULL) { cudaCheck(cudaFree(mx->arena)); }
    if (mx->lt_scratch != NULL) { cudaCheck(cudaFree(mx->lt_scratch)); }
    cudaCheck(cudaFree(mx->st_dev));
    mx_gemm_workspace_free(&mx->gemm_ws);
    free(mx->w); free(mx->saved);
}

static inline void mx_linear_weights_changed(MxLinear* mx) {
    for (int i = 0; i < mx->num_linears; i++) { mx->w[i].stale = 1; }
}

// Shapes the block-scaled path takes: every dimension a multiple of 32 (MXFP8 blocks, NVFP4
// tiles and the column kernels' tiles); anything else runs in BF16.
static inline int mx_runs(int N, int IC, int OC) { return N % 32 == 0 && IC % 32 == 0 && OC % 32 == 0; }

// Bytes of n quantized values: codes (NVFP4 two per byte), then block scales (one per 32
// values in MXFP8, per 16 in NVFP4, per 256 in NVFP4's 16x16 tiles), each 256-byte aligned.
static inline size_t mx_codes_bytes(const MxLinear* mx, long n) { return align256(mx->mode == MX_NVFP4 ? n / 2 : n); }
static inline size_t mx_packed_bytes(const MxLinear* mx, long n, int tiles) {
    long scales = mx->mode == MX_MXFP8 ? n / MXFP8_BLOCK : n / (tiles ? NVFP4_BLOCK * NVFP4_BLOCK : NVFP4_BLOCK);
    return mx_codes_bytes(mx, n) + align256(scales);
}
// bytes of n dequantized BF16 values: only the dequant path makes them
static inline size_t mx_deq_bytes(const MxLinear* mx, long n) { return mx->native ? 0 : align256(2 * n); }
// bytes of an operand quantized into the arena: codes, scales, dequantization
static inline size_t mx_scratch_bytes(const MxLinear* mx, long n) { return mx_packed_bytes(mx, n, 0) + mx_deq_bytes(mx, n); }

// bytes of the weight's operand in the arena: MXFP8 codes, scales and dequantization; NVFP4
// (its codes persist) the dequantization, or native the tile scales expanded to row scales
static inline size_t mx_weight_bytes(const MxLinear* mx, long nw) {
    if (mx->mode == MX_MXFP8) { return mx_scratch_bytes(mx, nw); }
    return mx->native ? align256(nw / NVFP4_BLOCK) : mx_deq_bytes(mx, nw);
}

// Arena of one call at N rows, the most of: forward's W and x; dgrad's W and dy; wgrad's dy^T
// and x^T (kept: only x^T's dequantization).
static inline size_t mx_call_bytes(const MxLinear* mx, int N, int IC, int OC, int keep) {
    long nw = (long)OC * IC, nx = (long)N * IC, ny = (long)N * OC;
    size_t f = mx_weight_bytes(mx, nw) + mx_scratch_bytes(mx, nx), d = mx_weight_bytes(mx, nw) + mx_scratch_bytes(mx, ny);
    size_t w = mx_scratch_bytes(mx, ny) + (keep ? mx_deq_bytes(mx, nx) : mx_scratch_bytes(mx, nx));
    size_t m = f > d ? f : d;
    return m > w ? m : w;
}

// *buf with room for need bytes: reallocated when *have is less, which waits for the GPU (only
// at warm-up or in tests; linear_reserve allocates the buffers up front)
static inline uint8_t* mx_grow(uint8_t** buf, size_t* have, size_t need, const char* what) {
    if (need > *have) {
        cudaCheck(cudaDeviceSynchronize());
        if (*buf != NULL) { cudaCheck(cudaFree(*buf)); }
        *buf = (uint8_t*)cuda_malloc_or_die(need, what);
        *have = need;
    }
    return *buf;
}

static inline uint8_t* mx_arena(MxLinear* mx, size_t bytes) {
    return mx_grow(&mx->arena, &mx->arena_bytes, bytes, "block-scaled activations and gradients");
}

// A quantized operand: codes and scales (mx_packed_bytes' layout), its BF16 dequantization
// (NULL: none, the native path), NVFP4's tensor scale.
typedef struct { uint8_t* codes; uint8_t* scales; floatX* deq; float st; } MxOperand;

static inline MxOperand mx_operand_at(const MxLinear* mx, uint8_t* p, long n, uint8_t* deq) {
    MxOperand o = {p, p + mx_codes_bytes(mx, n), mx->native ? NULL : (floatX*)deq, 1.0f};
    return o;
}

// an operand of n values quantized into the arena at p, its dequantization after it
static inline MxOperand mx_scratch_operand(const MxLinear* mx, uint8_t* p, long n) {
    return mx_operand_at(mx, p, n, p + mx_packed_bytes(mx, n, 0));
}

// Seeds. Stochastic rounding (gradients only) takes the next value of the counter; a wgrad's
// RHT seed mixes the counter with the linear's id without advancing it. Forwards (where the
// kept x^T's seed is picked) thus leave the counter alone: evaluation and sampling between
// steps change no training seed, and a resumed run draws what the uninterrupted one did.
static inline uint32_t mx_next_seed(MxLinear* mx) { return hash_u32((uint32_t)mx->calls++, 0x6d7866u); }
static inline uint64_t mx_rht_seed(const MxLinear* mx, int id) { return hash_u32((uint32_t)mx->calls, 0x726874u + (uint32_t)id); }

// NVFP4 tensor scale of in (R,C), on the device, read back (a host sync): rht uses the amax of
// the transformed values.
static inline float mx_nvfp4_scale(MxLinear* mx, const floatX* in, int R, int C, int rht, uint64_t rht_seed, cudaStream_t s) {
    if (rht) { nvfp4_tensor_scale_rht(mx->st_dev, mx->st_dev + 1, in, R, C, rht_seed, s); }
    else { nvfp4_tensor_scale(mx->st_dev, mx->st_dev + 1, in, (long)R * C, s); }
    float st;
    cudaCheck(cudaMemcpyAsync(&st, mx->st_dev, sizeof(float), cudaMemcpyDeviceToHost, s));
    cudaCheck(cudaStreamSynchronize(s));
    return st;
}

// o's codes (R,C) -> o->deq (R,C), exactly (NVFP4 without 1/s_t, the GEMM's alpha); nothing
// without o->deq. tiles: NVFP4 16x16 tiles.
static inline void mx_dequantize(const MxLinear* mx, const MxOperand* o, int R, int C, Fp8Format f, int tiles, cudaStream_t s) {
    if (o->deq == NULL) { return; }
    if (mx->mode == MX_MXFP8) { mxfp8_dequantize(o->deq, o->codes, o->scales, R, C, f, s); }
    else { nvfp4_dequantize(o->deq, o->codes, o->scales, R, C, tiles != 0, s); }
}

// in (R,C) quantized with blocks along C (rows), then dequantized; NVFP4 gradients (grad) with
// stochastic rounding.
static inline void mx_quantize_rows(MxLinear* mx, MxOperand* o, const floatX* in, int R, int C, Fp8Format f, int grad,
                                    cudaStream_t s) {
    if (mx->mode == MX_MXFP8) {
        mxfp8_quantize_rows(o->codes, o->scales, in, R, C, f, mx->rule, s);
    } else {
        o->st = mx_nvfp4_scale(mx, in, R, C, 0, 0, s);
        nvfp4_quantize_rows(o->codes, o->scales, in, R, C, nvfp4_scale_value(o->st), grad != 0, grad ? mx_next_seed(mx) : 0, s);
    }
    mx_dequantize(mx, o, R, C, f, 0, s);
}

// in (R,C) quantized with blocks along R, as the transposed (C,R) operand, then dequantized;
// NVFP4 with the RHT of rht_seed along R (wgrad), stochastic rounding for gradients.
static inline void mx_quantize_cols(MxLinear* mx, MxOperand* o, const floatX* in, int R, int C, Fp8Format f, int grad,
                                    uint64_t rht_seed, cudaStream_t s) {
    if (mx->mode == MX_MXFP8) {
        mxfp8_quantize_cols_t(o->codes, o->scales, in, R, C, f, mx->rule, s);
    } else {
        o->st = mx_nvfp4_scale(mx, in, R, C, 1, rht_seed, s);
        nvfp4_quantize_cols_t(o->codes, o->scales, in, R, C, nvfp4_scale_value(o->st), true, rht_seed, grad != 0,
                              grad ? mx_next_seed(mx) : 0, s);
    }
    mx_dequantize(mx, o, C, R, f, 0, s);
}

// Buffers of linear id's weight (OC,IC): its codes and scales (NVFP4 native: and W^T's codes).
static inline void mx_weight_alloc(MxLinear* mx, int id, int OC, int IC) {
    MxWeight* w = &mx->w[id];
    if (w->OC == OC && w->IC == IC) { return; }
    mx_weight_free(w);
    long n = (long)OC * IC;
    w->OC = OC; w->IC = IC; w->stale = 1;
    if (mx->mode != MX_NVFP4) { return; }
    size_t tiles = mx_packed_bytes(mx, n, 1);
    w->rows = (uint8_t*)cuda_malloc_or_die(tiles + (mx->native ? mx_codes_bytes(mx, n) : 0), "block-scaled weights");
    if (mx->native) { w->codes_t = w->rows + tiles; }
}

// The weight of linear id: NVFP4's tiles quantized when stale; MXFP8 only notes the source.
static inline MxWeight* mx_weight_ready(MxLinear* mx, int id, const floatX* weight, int OC, int IC, cudaStream_t s) {
    mx_weight_alloc(mx, id, OC, IC);
    MxWeight* w = &mx->w[id];
    if (w->src != weight) { w->src = weight; w->stale = 1; }
    if (!w->stale || mx->mode == MX_MXFP8) { return w; }
    MxOperand r = mx_operand_at(mx, w->rows, (long)OC * IC, NULL);
    w->st = mx_nvfp4_scale(mx, weight, OC, IC, 0, 0, s);
    nvfp4_quantize_tiles(r.codes, w->codes_t, r.scales, weight, OC, IC, nvfp4_scale_value(w->st), s);
    w->stale = 0;
    return w;
}

// The weight as a GEMM operand in the arena at p (mx_weight_bytes), its rows (OC,IC) for fprop
// or with cols its columns (IC,OC) for dgrad: MXFP8 quantized there; NVFP4's kept tiles, native
// as their codes or W^T's with the tile scales expanded there, dequant dequantized there as
// (OC,IC) for both GEMMs (the BF16 GEMM transposes it for dgrad).
static inline MxOperand mx_weight_operand(MxLinear* mx, const MxWeight* w, int cols, uint8_t* p, cudaStream_t s) {
    if (mx->mode == MX_MXFP8) {
        MxOperand o = mx_scratch_operand(mx, p, (long)w->OC * w->IC);
        if (cols) { mx_quantize_cols(mx, &o, w->src, w->OC, w->IC, FP8_E4M3, 0, 0, s); }
        else { mx_quantize_rows(mx, &o, w->src, w->OC, w->IC, FP8_E4M3, 0, s); }
        return o;
    }
    MxOperand o = mx_operand_at(mx, w->rows, (long)w->OC * w->IC, p);
    o.st = w->st;
    if (mx->native) {
        nvfp4_tile_scales_expand(p, o.scales, w->OC, w->IC, cols, s);   // (OC, IC/16) or (IC, OC/16)
        o.scales = p;
        if (cols) { o.codes = w->codes_t; }
        return o;
    }
    mx_dequantize(mx, &o, w->OC, w->IC, FP8_E4M3, 1, s);
    return o;
}

// Linear id's kept x^T (IC,N), with room for N rows (mx_grow).
static inline MxSaved* mx_saved_alloc(MxLinear* mx, int id, int N, int IC) {
    MxSaved* sv = &mx->saved[id];
    mx_grow(&sv->buf, &sv->bytes, mx_packed_bytes(mx, (long)N * IC, 0), "block-scaled copies of the linears' inputs");
    return sv;
}

static inline Fp8Format mx_grad_format(const MxLinear* mx) { return mx->hybrid ? FP8_E5M2 : FP8_E4M3; }

// 1: the native GEMMs run on cuBLASLt's block-scaled kernels (a Blackwell GPU), else on the
// wgmma kernel (Hopper, MXFP8 only: mx_linear_init refuses NVFP4 there)
static inline int mx_native_cublaslt(const MxLinear* mx) { return mx->native && mx_gemm_cublaslt_available(&mx->lt); }

// the native GEMMs' kernel, NULL without them
static inline const char* mx_native_gemm_name(const MxLinear* mx) {
    if (!mx->native) { return NULL; }
    if (!mx_native_cublaslt(mx)) { return "wgmma MXFP8 (Hopper)"; }
    return mx->mode == MX_NVFP4 ? "cuBLASLt block-scaled NVFP4 (Blackwell)" : "cuBLASLt block-scaled MXFP8 (Blackwell)";
}

// cuBLASLt's scratch for the swizzled scales of an (M,N,K) GEMM (mx_grow): one per block of 32
// (MXFP8) or 16 (NVFP4) along K, each operand's
static inline uint8_t* mx_lt_scratch(MxLinear* mx, int M, int N, int K) {
    int block = mx->mode == MX_NVFP4 ? NVFP4_BLOCK : MXFP8_BLOCK;
    return mx_grow(&mx->lt_scratch, &mx->lt_scratch_bytes, mx_gemm_cublaslt_scratch_bytes(M, N, K, block),
                   "swizzled block scales of the cuBLASLt block-scaled GEMM");
}

// Room for the native GEMM C (M,N) = A (M,K) @ B (N,K)^T, ahead of it: the cuBLASLt scratch (of
// the mode's scales) or the wgmma kernel's split-K partial sums.
static inline void mx_gemm_native_reserve(MxLinear* mx, int M, int N, int K) {
    if (mx_native_cublaslt(mx)) { mx_lt_scratch(mx, M, N, K); }
    else { mx_gemm_reserve(&mx->gemm_ws, M, N, K); }
}

// C (M,N) = a (M,K) @ b (N,K)^T + beta * C [+ bias (N)] on the native GEMM. MXFP8: a in format fa
// (an input or a gradient), b E4M3 (a weight or an input), so never the E5M2 x E5M2 pair that
// cuBLASLt lacks. NVFP4 (fa unused): packed codes, per-16 row scales, 1/(s_ta s_tb) in alpha.
static inline void mx_gemm_native(MxLinear* mx, floatX* C, const MxOperand* a, Fp8Format fa, const MxOperand* b,
                                  const floatX* bias, int M, int N, int K, float beta, cudaStream_t s) {
    if (mx->mode == MX_NVFP4) {
        mx_gemm_cublaslt_nvfp4(&mx->lt, C, a->codes, a->scales, a->st, b->codes, b->scales, b->st, bias, M, N, K, beta,
                               mx_lt_scratch(mx, M, N, K), s);
    } else if (mx_native_cublaslt(mx)) {
        mx_gemm_cublaslt_mxfp8(&mx->lt, C, a->codes, fa, a->scales, b->codes, FP8_E4M3, b->scales, bias, M, N, K, 1.0f, beta,
                               mx_lt_scratch(mx, M, N, K), s);
    } else {
        mx_gemm_mxfp8(C, a->codes, fa, a->scales, b->codes, FP8_E4M3, b->scales, bias, M, N, K, 1.0f, beta, &mx->gemm_ws, s);
    }
}

// out (N,OC) = inp (N,IC) @ weight (OC,IC)^T + bias, GELU into out with pre_gelu (see
// linear_forward). keep: x^T is also quantized, for the wgrad, and kept until the backward.
static inline void mx_linear_forward(MxLinear* mx, GemmContext* g, int id, int keep, floatX* out, floatX* pre_gelu,
                                     const floatX* inp, const floatX* weight, const floatX* bias, int N, int IC, int OC,
                                     cudaStream_t s) {
    MxWeight* w = mx_weight_ready(mx, id, weight, OC, IC, s);
    if (keep) {
        MxSaved* sv = mx_saved_alloc(mx, id, N, IC);
        MxOperand xt = mx_operand_at(mx, sv->buf, (long)N * IC, NULL);   // (IC,N)
        sv->rht_seed = mx_rht_seed(mx, id);
        mx_quantize_cols(mx, &xt, inp, N, IC, FP8_E4M3, 0, sv->rht_seed, s);
        sv->st = xt.st;
        sv->rows = N;
    }
    uint8_t* arena = mx_arena(mx, mx_call_bytes(mx, N, IC, OC, keep));
    MxOperand wr = mx_weight_operand(mx, w, 0, arena, s);                                        // (OC,IC)
    MxOperand x = mx_scratch_operand(mx, arena + mx_weight_bytes(mx, (long)OC * IC), (long)N * IC);  // (N,IC)
    mx_quantize_rows(mx, &x, inp, N, IC, FP8_E4M3, 0, s);
    if (mx->native) {
        mx_gemm_native(mx, pre_gelu ? pre_gelu : out, &x, FP8_E4M3, &wr, bias, N, OC, IC, 0.0f, s);
        if (pre_gelu) { gelu_forward(out, pre_gelu, (long)N * OC, s); }
        return;
    }
    float alpha = mx->mode == MX_NVFP4 ? 1.0f / (x.st * wr.st) : 1.0f;
    gemm_bf16(g, out, x.deq, wr.deq, bias, N, OC, IC, 0, 1, alpha, 0.0f, 1, 0, 0, 0,
              pre_gelu ? GEMM_GELU_FORWARD : GEMM_NO_GELU, pre_gelu, s);
}

// dinp, dweight, dbias as linear_backward; keep: x^T is the forward's (inp is not read)
static inline void mx_linear_backward(MxLinear* mx, GemmContext* g, int id, int keep, floatX* dinp, floatX* dweight,
                                      floatX* dbias, float* scratch, const floatX* dout, const floatX* inp,
                                      const floatX* pre_gelu, const floatX* weight, int N, int IC, int OC, cudaStream_t s) {
    MxSaved* sv = &mx->saved[id];
    if (keep && sv->rows != N) { die("internal: block-scaled backward of linear %d over %d rows without its forward", id, N); }
    MxWeight* w = mx_weight_ready(mx, id, weight, OC, IC, s);
    Fp8Format fdy = mx_grad_format(mx);
    long nw = (long)OC * IC, nx = (long)N * IC, ny = (long)N * OC;
    uint8_t* arena = mx_arena(mx, mx_call_bytes(mx, N, IC, OC, keep));
    // dgrad: dy rows (blocks along OC) against W's blocks along OC: W^T (IC,OC) (MXFP8's columns,
    // NVFP4 native's transposed tile codes), NVFP4 dequant's tiles (OC,IC), which the GEMM transposes
    int mxfp8 = mx->mode == MX_MXFP8;
    MxOperand wt = mx_weight_operand(mx, w, 1, arena, s);
    MxOperand dy = mx_scratch_operand(mx, arena + mx_weight_bytes(mx, nw), ny);   // (N,OC)
    mx_quantize_rows(mx, &dy, dout, N, OC, fdy, 1, s);
    if (mx->native) {
        mx_gemm_native(mx, dinp, &dy, fdy, &wt, NULL, N, IC, OC, 0.0f, s);
        if (pre_gelu) { gelu_backward_inplace(dinp, pre_gelu, (long)N * IC, s); }
    } else {
        float alpha = mxfp8 ? 1.0f : 1.0f / (dy.st * wt.st);
        gemm_bf16(g, dinp, dy.deq, wt.deq, NULL, N, IC, OC, 0, mxfp8, alpha, 0.0f, 1, 0, 0, 0,
                  pre_gelu ? GEMM_GELU_BACKWARD : GEMM_NO_GELU, (floatX*)pre_gelu, s);
    }
    // wgrad: dy^T and x^T (blocks along N), the same Hadamard signs for both
    uint64_t rht_seed = keep ? sv->rht_seed : mx_rht_seed(mx, id);
    MxOperand dyt = mx_scratch_operand(mx, arena, ny);                          // (OC,N)
    mx_quantize_cols(mx, &dyt, dout, N, OC, fdy, 1, rht_seed, s);
    uint8_t* p = arena + mx_scratch_bytes(mx, ny);
    MxOperand xt;                                                               // (IC,N)
    if (keep) {
        xt = mx_operand_at(mx, sv->buf, nx, p);
        xt.st = sv->st;
        mx_dequantize(mx, &xt, IC, N, FP8_E4M3, 0, s);
        sv->rows = 0;
    } else {
        xt = mx_scratch_operand(mx, p, nx);
        mx_quantize_cols(mx, &xt, inp, N, IC, FP8_E4M3, 0, rht_seed, s);
    }
    if (mx->native) {
        mx_gemm_native(mx, dweight, &dyt, fdy, &xt, NULL, OC, IC, N, 1.0f, s);
    } else {
        float alpha = mxfp8 ? 1.0f : 1.0f / (dyt.st * xt.st);
        gemm_bf16(g, dweight, dyt.deq, xt.deq, NULL, OC, IC, N, 0, 1, alpha, 1.0f, 1, 0, 0, 0, GEMM_NO_GELU, NULL, s);
    }
    if (dbias != NULL) { bias_backward(dbias, dout, scratch, N, OC, s); }
}

#endif // LLMC_LINEAR_MX_CUH
