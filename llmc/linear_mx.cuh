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
// GEMMs on Hopper, numerically exact (the FP32 GEMM of the exactly dequantized operands):
//   dequant  codes -> BF16 (exact: E4M3/E5M2 x 2^k and E2M1 x E4M3 are BF16 values), then
//            cuBLASLt BF16 with FP32 accumulation; NVFP4's 1/(s_tA s_tB) is the GEMM's alpha
//   native   MXFP8 only: llmc/mx_gemm.cuh, FP8 mma.sync per 32-wide K block, scaled and
//            accumulated in FP32 registers
// Weights are quantized once per optimizer step. Activations are quantized again in backward
// from the BF16 tensors the model keeps (no packed copies are kept: no memory saving yet).
// NVFP4's tensor scales are computed on the device and read back for alpha: one host sync per
// quantized activation (the price of exactness with a host alpha).
#ifndef LLMC_LINEAR_MX_CUH
#define LLMC_LINEAR_MX_CUH

#include "matmul.cuh"
#include "reduce.cuh"
#include "gelu.cuh"
#include "mx_cast.cuh"
#include "mx_gemm.cuh"

typedef enum { MX_NONE = 0, MX_MXFP8 = 1, MX_NVFP4 = 2 } MxMode;

typedef struct {
    const floatX* src;   // the BF16 weight of the cache, stale when it changed
    int OC, IC, stale;
    floatX* deq_rows;    // (OC,IC) dequantized, blocks along IC (NVFP4: tiles, for both GEMMs)
    floatX* deq_cols;    // (IC,OC) dequantized, blocks along OC (MXFP8 dequant path)
    uint8_t* codes;      // (OC,IC) codes, then (OC,IC/32) scales (MXFP8 native)
    uint8_t* codes_t;    // (IC,OC) codes, then (IC,OC/32) scales (MXFP8 native)
    float st;            // NVFP4 tensor scale of the weight
} MxWeight;

typedef struct {
    MxMode mode;
    int native;          // MXFP8 GEMMs on mx_gemm (1) or dequantized to BF16 (0)
    MxScaleRule rule;
    int hybrid;          // E5M2 gradients (MXFP8)
    MxWeight* w;         // (num_linears)
    int num_linears;
    uint8_t* arena;      // codes, scales and dequantized operands of one call
    size_t arena_bytes;
    float* st_dev;       // (4) device: NVFP4 tensor scales and amax scratch
    uint64_t calls;      // quantizations so far: seeds of the RHT and stochastic rounding (checkpointed)
    MxGemmWorkspace gemm_ws;   // split-K partial sums of the native GEMM
} MxLinear;

static inline const char* mx_mode_name(MxMode m) { return m == MX_MXFP8 ? "mxfp8" : m == MX_NVFP4 ? "nvfp4" : "none"; }

static inline void mx_linear_init(MxLinear* mx, MxMode mode, int native, MxScaleRule rule, int hybrid, int num_linears) {
    memset(mx, 0, sizeof(*mx));
    mx->mode = mode; mx->native = native; mx->rule = rule; mx->hybrid = hybrid; mx->num_linears = num_linears;
    mx->w = (MxWeight*)calloc_or_die(num_linears, sizeof(MxWeight), "block-scaled weights");
    mx->st_dev = (float*)cuda_malloc_or_die(4 * sizeof(float), "NVFP4 tensor scales");
}

static inline void mx_weight_free(MxWeight* w) {
    if (w->deq_rows != NULL) { cudaCheck(cudaFree(w->deq_rows)); }
    if (w->deq_cols != NULL) { cudaCheck(cudaFree(w->deq_cols)); }
    if (w->codes != NULL) { cudaCheck(cudaFree(w->codes)); }
    if (w->codes_t != NULL) { cudaCheck(cudaFree(w->codes_t)); }
    memset(w, 0, sizeof(*w));
}

static inline void mx_linear_free(MxLinear* mx) {
    for (int i = 0; i < mx->num_linears; i++) { mx_weight_free(&mx->w[i]); }
    if (mx->arena != NULL) { cudaCheck(cudaFree(mx->arena)); }
    cudaCheck(cudaFree(mx->st_dev));
    mx_gemm_workspace_free(&mx->gemm_ws);
    free(mx->w);
}

static inline void mx_linear_weights_changed(MxLinear* mx) {
    for (int i = 0; i < mx->num_linears; i++) { mx->w[i].stale = 1; }
}

// Shapes the block-scaled path takes: every dimension a multiple of 32 (MXFP8 blocks, NVFP4
// tiles and the column kernels' tiles); anything else runs in BF16.
static inline int mx_runs(int N, int IC, int OC) { return N % 32 == 0 && IC % 32 == 0 && OC % 32 == 0; }

// bytes of one quantized (R,C) operand: codes, scales, and its BF16 dequantization
static inline size_t mx_operand_bytes(long R, long C) { return align256(R * C) + align256(R * C / 16) + align256(2 * R * C); }

static inline uint8_t* mx_arena(MxLinear* mx, size_t bytes) {
    if (bytes > mx->arena_bytes) {
        cudaCheck(cudaDeviceSynchronize());
        if (mx->arena != NULL) { cudaCheck(cudaFree(mx->arena)); }
        mx->arena = (uint8_t*)cuda_malloc_or_die(bytes, "block-scaled activations and gradients");
        mx->arena_bytes = bytes;
    }
    return mx->arena;
}

// A quantized operand inside the arena.
typedef struct { uint8_t* codes; uint8_t* scales; floatX* deq; float st; } MxOperand;

static inline MxOperand mx_operand_at(uint8_t* p, long R, long C) {
    MxOperand o;
    o.codes = p;
    o.scales = p + align256(R * C);
    o.deq = (floatX*)(o.scales + align256(R * C / 16));
    o.st = 1.0f;
    return o;
}

static inline uint32_t mx_next_seed(MxLinear* mx) { return hash_u32((uint32_t)mx->calls++, 0x6d7866u); }

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

// in (R,C) quantized with blocks along C (rows), dequantized into o->deq (R,C) unless native.
static inline void mx_quantize_rows(MxLinear* mx, MxOperand* o, const floatX* in, int R, int C, Fp8Format f, int grad,
                                    cudaStream_t s) {
    if (mx->mode == MX_MXFP8) {
        mxfp8_quantize_rows(o->codes, o->scales, in, R, C, f, mx->rule, s);
        if (!mx->native) { mxfp8_dequantize(o->deq, o->codes, o->scales, R, C, f, s); }
    } else {
        o->st = mx_nvfp4_scale(mx, in, R, C, 0, 0, s);
        nvfp4_quantize_rows(o->codes, o->scales, in, R, C, nvfp4_scale_value(o->st), grad != 0, mx_next_seed(mx), s);
        nvfp4_dequantize(o->deq, o->codes, o->scales, R, C, false, s);
    }
}

// in (R,C) quantized with blocks along R, as the transposed (C,R) operand; NVFP4 with the RHT
// of rht_seed along R (wgrad), stochastic rounding for gradients.
static inline void mx_quantize_cols(MxLinear* mx, MxOperand* o, const floatX* in, int R, int C, Fp8Format f, int grad,
                                    uint64_t rht_seed, cudaStream_t s) {
    if (mx->mode == MX_MXFP8) {
        mxfp8_quantize_cols_t(o->codes, o->scales, in, R, C, f, mx->rule, s);
        if (!mx->native) { mxfp8_dequantize(o->deq, o->codes, o->scales, C, R, f, s); }
    } else {
        o->st = mx_nvfp4_scale(mx, in, R, C, 1, rht_seed, s);
        nvfp4_quantize_cols_t(o->codes, o->scales, in, R, C, nvfp4_scale_value(o->st), true, rht_seed, grad != 0,
                              mx_next_seed(mx), s);
        nvfp4_dequantize(o->deq, o->codes, o->scales, C, R, false, s);
    }
}

// Buffers of linear id's weight (OC,IC).
static inline void mx_weight_alloc(MxLinear* mx, int id, int OC, int IC) {
    MxWeight* w = &mx->w[id];
    if (w->OC != OC || w->IC != IC) {
        mx_weight_free(w);
        size_t n = (size_t)OC * IC;
        w->OC = OC; w->IC = IC;
        if (mx->mode == MX_MXFP8 && mx->native) {
            w->codes = (uint8_t*)cuda_malloc_or_die(n + n / 32, "MXFP8 weights");
            w->codes_t = (uint8_t*)cuda_malloc_or_die(n + n / 32, "MXFP8 weights");
        } else {
            w->deq_rows = (floatX*)cuda_malloc_or_die(n * sizeof(floatX), "dequantized weights");
            if (mx->mode == MX_MXFP8) { w->deq_cols = (floatX*)cuda_malloc_or_die(n * sizeof(floatX), "dequantized weights"); }
            w->codes = (uint8_t*)cuda_malloc_or_die(n + n / 16, "block-scaled weight codes");
        }
        w->stale = 1;
    }
}

// Scratch of one call at N rows: forward's x, dgrad's dy, or wgrad's dy^T and x^T.
static inline size_t mx_call_bytes(int N, int IC, int OC) {
    size_t f = mx_operand_bytes(N, IC), d = mx_operand_bytes(N, OC), w = mx_operand_bytes(OC, N) + mx_operand_bytes(IC, N);
    return f > d ? (f > w ? f : w) : (d > w ? d : w);
}

// The weight's quantized forms, made when stale.
static inline MxWeight* mx_weight_ready(MxLinear* mx, int id, const floatX* weight, int OC, int IC, cudaStream_t s) {
    mx_weight_alloc(mx, id, OC, IC);
    MxWeight* w = &mx->w[id];
    if (w->src != weight) { w->src = weight; w->stale = 1; }
    if (!w->stale) { return w; }
    size_t n = (size_t)OC * IC;
    if (mx->mode == MX_MXFP8 && mx->native) {
        mxfp8_quantize_rows(w->codes, w->codes + n, weight, OC, IC, FP8_E4M3, mx->rule, s);
        mxfp8_quantize_cols_t(w->codes_t, w->codes_t + n, weight, OC, IC, FP8_E4M3, mx->rule, s);
    } else if (mx->mode == MX_MXFP8) {
        mxfp8_quantize_rows(w->codes, w->codes + n, weight, OC, IC, FP8_E4M3, mx->rule, s);
        mxfp8_dequantize(w->deq_rows, w->codes, w->codes + n, OC, IC, FP8_E4M3, s);
        mxfp8_quantize_cols_t(w->codes, w->codes + n, weight, OC, IC, FP8_E4M3, mx->rule, s);
        mxfp8_dequantize(w->deq_cols, w->codes, w->codes + n, IC, OC, FP8_E4M3, s);
    } else {
        w->st = mx_nvfp4_scale(mx, weight, OC, IC, 0, 0, s);
        nvfp4_quantize_tiles(w->codes, NULL, w->codes + n, weight, OC, IC, nvfp4_scale_value(w->st), s);
        nvfp4_dequantize(w->deq_rows, w->codes, w->codes + n, OC, IC, true, s);
    }
    w->stale = 0;
    return w;
}

static inline Fp8Format mx_grad_format(const MxLinear* mx) { return mx->hybrid ? FP8_E5M2 : FP8_E4M3; }

// out (N,OC) = inp (N,IC) @ weight (OC,IC)^T + bias, GELU into out with pre_gelu (see linear_forward)
static inline void mx_linear_forward(MxLinear* mx, GemmContext* g, int id, floatX* out, floatX* pre_gelu, const floatX* inp,
                                     const floatX* weight, const floatX* bias, int N, int IC, int OC, cudaStream_t s) {
    MxWeight* w = mx_weight_ready(mx, id, weight, OC, IC, s);
    MxOperand x = mx_operand_at(mx_arena(mx, mx_call_bytes(N, IC, OC)), N, IC);
    mx_quantize_rows(mx, &x, inp, N, IC, FP8_E4M3, 0, s);
    if (mx->native) {
        size_t n = (size_t)OC * IC;
        mx_gemm_mxfp8(pre_gelu ? pre_gelu : out, x.codes, FP8_E4M3, x.scales, w->codes, FP8_E4M3, w->codes + n, bias, N, OC, IC,
                      1.0f, 0.0f, &mx->gemm_ws, s);
        if (pre_gelu) { gelu_forward(out, pre_gelu, (long)N * OC, s); }
        return;
    }
    float alpha = mx->mode == MX_NVFP4 ? 1.0f / (x.st * w->st) : 1.0f;
    gemm_bf16(g, out, x.deq, w->deq_rows, bias, N, OC, IC, 0, 1, alpha, 0.0f, 1, 0, 0, 0,
              pre_gelu ? GEMM_GELU_FORWARD : GEMM_NO_GELU, pre_gelu, s);
}

// dinp, dweight, dbias as linear_backward
static inline void mx_linear_backward(MxLinear* mx, GemmContext* g, int id, floatX* dinp, floatX* dweight, floatX* dbias,
                                      float* scratch, const floatX* dout, const floatX* inp, const floatX* pre_gelu,
                                      const floatX* weight, int N, int IC, int OC, cudaStream_t s) {
    MxWeight* w = mx_weight_ready(mx, id, weight, OC, IC, s);
    Fp8Format fdy = mx_grad_format(mx);
    uint8_t* arena = mx_arena(mx, mx_call_bytes(N, IC, OC));
    // dgrad: dy rows (blocks along OC) against W's blocks along OC
    MxOperand dy = mx_operand_at(arena, N, OC);
    mx_quantize_rows(mx, &dy, dout, N, OC, fdy, 1, s);
    if (mx->native) {
        size_t n = (size_t)OC * IC;
        mx_gemm_mxfp8(dinp, dy.codes, fdy, dy.scales, w->codes_t, FP8_E4M3, w->codes_t + n, NULL, N, IC, OC, 1.0f, 0.0f, &mx->gemm_ws, s);
        if (pre_gelu) { gelu_backward_inplace(dinp, pre_gelu, (long)N * IC, s); }
    } else {
        float alpha = mx->mode == MX_NVFP4 ? 1.0f / (dy.st * w->st) : 1.0f;
        const floatX* wd = mx->mode == MX_MXFP8 ? w->deq_cols : w->deq_rows;   // (IC,OC) | tiles: (OC,IC)
        gemm_bf16(g, dinp, dy.deq, wd, NULL, N, IC, OC, 0, mx->mode == MX_MXFP8, alpha, 0.0f, 1, 0, 0, 0,
                  pre_gelu ? GEMM_GELU_BACKWARD : GEMM_NO_GELU, (floatX*)pre_gelu, s);
    }
    // wgrad: dy^T and x^T (blocks along N), the same Hadamard signs for both
    uint64_t rht_seed = mx_next_seed(mx);
    MxOperand dyt = mx_operand_at(arena, OC, N), xt = mx_operand_at(arena + mx_operand_bytes(OC, N), IC, N);
    mx_quantize_cols(mx, &dyt, dout, N, OC, fdy, 1, rht_seed, s);
    mx_quantize_cols(mx, &xt, inp, N, IC, FP8_E4M3, 0, rht_seed, s);
    if (mx->native) {
        mx_gemm_mxfp8(dweight, dyt.codes, fdy, dyt.scales, xt.codes, FP8_E4M3, xt.scales, NULL, OC, IC, N, 1.0f, 1.0f, &mx->gemm_ws, s);
    } else {
        float alpha = mx->mode == MX_NVFP4 ? 1.0f / (dyt.st * xt.st) : 1.0f;
        gemm_bf16(g, dweight, dyt.deq, xt.deq, NULL, OC, IC, N, 0, 1, alpha, 1.0f, 1, 0, 0, 0, GEMM_NO_GELU, NULL, s);
    }
    if (dbias != NULL) { bias_backward(dbias, dout, scratch, N, OC, s); }
}

#endif // LLMC_LINEAR_MX_CUH
