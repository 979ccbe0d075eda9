// Blackwell's native block-scaled GEMMs through cuBLASLt (issue 7), MXFP8 and NVFP4:
//   C (M,N) bf16 = alpha * A (M,K) @ B (N,K)^T + beta * C  [+ bias (N)]
// with A and B quantized along K (both K-major, "TN", as gemm_fp8 in llmc/linear_fp8.cuh):
//   MXFP8  codes one byte each, E4M3 or E5M2 (not both E5M2: cuBLASLt has no such kernel);
//          scales (rows, K/32) E8M0, CUBLASLT_MATMUL_MATRIX_SCALE_VEC32_UE8M0
//   NVFP4  E2M1 codes packed two per byte, (rows, K/2) bytes, element 2i in the low nibble of
//          byte i and 2i+1 in the high one: CUDA's __nv_fp4x2 order (__nv_cvt_float2_to_fp4x2
//          puts .x low), which the cuBLAS guide's CUDA_R_4F_E2M1 refers to without spelling out
//          the nibbles; scales (rows, K/16) E4M3, CUBLASLT_MATMUL_MATRIX_SCALE_VEC16_UE4M3;
//          the tensor scales s_t (llmc/mx.h) go into alpha = 1 / (s_tA s_tB), as in
//          llmc/linear_mx.cuh's dequantized path
// The scales arrive row-major, as llmc/mx_cast.cuh writes them; each call swizzles them into
// cuBLASLt's tiled layout (llmc/mx_blackwell.h) in scratch memory the caller provides
// (mx_gemm_cublaslt_scratch_bytes), then runs cuBLASLt with FP32 accumulation. NVFP4 weights,
// quantized in 16x16 tiles, come as their codes (W's, or the transposed tile codes for W^T)
// and the tile scales expanded to row scales (nvfp4_tile_scales_expand), which
// llmc/linear_mx.cuh does per call.
//
// Needs compute capability 10.0+ (the cuBLAS guide lists both scale modes for 10.0+ only).
// mx_gemm_cublaslt_available says whether this GPU qualifies; the GEMMs die on any other GPU
// rather than fall back. Written against the CUDA 13 headers and the cuBLAS guide, compiled for
// sm_90a and sm_100a, its layout and the tile-scale expansion checked on the CPU
// (dev/test_mx_blackwell); the swizzle and expansion kernels (any GPU), the GEMMs and the
// NVFP4 linear layer on them against its dequantized path (Blackwell) have tests in
// dev/test_mx_blackwell_gpu. NOT YET RUN ON A BLACKWELL GPU (none available): MXFP8 and
// NVFP4 are both wired into --mx-gemm native, compiled, unexecuted.
// A binary for Blackwell must carry code the GPU can run for the swizzle and expansion
// kernels: sm_100a SASS or PTX of a non-"a" target (sm_90a code does not run there).
#ifndef LLMC_MX_GEMM_CUBLASLT_CUH
#define LLMC_MX_GEMM_CUBLASLT_CUH

#include "matmul.cuh"       // GemmContext, cublasCheck, gemm_pick_algo, gemm_set_epilogue
#include "mx_blackwell.h"

#if CUBLAS_VERSION < 120800
#error "llmc/mx_gemm_cublaslt.cuh needs cuBLAS 12.8+ (block-scaled scale modes, CUDA_R_4F_E2M1)"
#endif

#define MX_SF_THREADS 256

// What the block-scaled GEMMs need to know: the cuBLASLt handle and workspace, and the GPU's
// compute capability, read once when the context is made (for the current device).
typedef struct {
    GemmContext* gemm;
    int device;
    int cc_major, cc_minor;
} MxLtContext;

static inline void mx_lt_context_init(MxLtContext* c, GemmContext* g) {
    c->gemm = g;
    cudaCheck(cudaGetDevice(&c->device));
    cudaCheck(cudaDeviceGetAttribute(&c->cc_major, cudaDevAttrComputeCapabilityMajor, c->device));
    cudaCheck(cudaDeviceGetAttribute(&c->cc_minor, cudaDevAttrComputeCapabilityMinor, c->device));
}

// 1 when cuBLASLt can run the block-scaled GEMMs on the context's GPU (Blackwell and later)
static inline int mx_gemm_cublaslt_available(const MxLtContext* c) { return c->cc_major >= 10; }

// ------------------------------------------------------------------------------------------
// scale swizzle

// out (mx_sf_bytes(R, KB) bytes, swizzled) <- in (R, KB) row-major, padding MX_SF_PAD.
// Thread w writes output bytes 4w..4w+3, which are (r, kb..kb+3) of one row (mx_sf_position):
// one coalesced 4-byte store, and four adjacent bytes of one input row.
__global__ void __launch_bounds__(MX_SF_THREADS)
mx_sf_swizzle_kernel(uint32_t* out, const uint8_t* in, int R, int KB, long words) {
    long w = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (w >= words) { return; }
    long r, kb;
    mx_sf_position(4 * w, KB, &r, &kb);
    uint32_t v = 0;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        uint32_t b = r < R && kb + j < KB ? in[r * KB + kb + j] : (uint32_t)MX_SF_PAD;
        v |= b << (8 * j);   // little-endian: byte 4w + j
    }
    out[w] = v;
}

// out must be 16-byte aligned (cuBLASLt's requirement for scale arrays)
static inline void mx_sf_swizzle(uint8_t* out, const uint8_t* in, int R, int KB, cudaStream_t stream) {
    if (((uintptr_t)out & 15) != 0) { die("internal: swizzled scales at %p are not 16-byte aligned", (void*)out); }
    long words = mx_sf_bytes(R, KB) / 4;
    mx_sf_swizzle_kernel<<<ceil_div(words, MX_SF_THREADS), MX_SF_THREADS, 0, stream>>>((uint32_t*)out, in, R, KB, words);
    cudaCheckLaunch();
}

// ------------------------------------------------------------------------------------------
// NVFP4 weights: tile scales expanded to row scales (llmc/mx_blackwell.h)

// out (R, C/16), or with t (C, R/16), from the 16x16 tile scales (R/16, C/16) of W (R,C): one
// thread per output byte (the arrays are small: R*C/16 bytes)
__global__ void __launch_bounds__(MX_SF_THREADS)
nvfp4_tile_scales_expand_kernel(uint8_t* out, const uint8_t* tiles, int R, int C, int t) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x, kbs = (t ? R : C) / NVFP4_BLOCK;
    if (i >= (long)R * C / NVFP4_BLOCK) { return; }
    out[i] = tiles[mx_nvfp4_tile_scale_src(i / kbs, i % kbs, C, t)];
}

static inline void nvfp4_tile_scales_expand(uint8_t* out, const uint8_t* tiles, int R, int C, int t, cudaStream_t stream) {
    if (R % NVFP4_BLOCK != 0 || C % NVFP4_BLOCK != 0) { die("internal: NVFP4 tile scales of (%d,%d): not multiples of 16", R, C); }
    long n = (long)R * C / NVFP4_BLOCK;
    nvfp4_tile_scales_expand_kernel<<<ceil_div(n, MX_SF_THREADS), MX_SF_THREADS, 0, stream>>>(out, tiles, R, C, t);
    cudaCheckLaunch();
}

// ------------------------------------------------------------------------------------------
// GEMMs

// Scratch bytes of one GEMM: A's swizzled scales, then B's, each starting 256-byte aligned.
// block: MXFP8_BLOCK or NVFP4_BLOCK.
static inline size_t mx_gemm_cublaslt_scratch_bytes(int M, int N, int K, int block) {
    return align256((size_t)mx_sf_bytes(M, K / block)) + align256((size_t)mx_sf_bytes(N, K / block));
}

// Shared body. ta/tb: the operands' cuBLAS types; sA (M, K/block), sB (N, K/block) row-major.
// Column-major, cuBLASLt computes C^T (N,M) = B (N,K) . A^T (K,M), as in gemm_fp8: its first
// operand is our B, so its A scale is B's and its B scale A's. Each operand's scales are laid
// out by its own rows ("outer": M for cuBLASLt's A, which is our N; N for its B, our M).
static inline void mx_gemm_cublaslt(const MxLtContext* c, const char* what, floatX* C, const void* A, cudaDataType_t ta,
                                    const uint8_t* sA, const void* B, cudaDataType_t tb, const uint8_t* sB, int block,
                                    cublasLtMatmulMatrixScale_t mode, const floatX* bias, int M, int N, int K, float alpha,
                                    float beta, uint8_t* scratch, cudaStream_t stream) {
    if (!mx_gemm_cublaslt_available(c)) {
        die("the cuBLASLt block-scaled GEMM (%s) needs a Blackwell GPU (compute capability 10.0 or later); "
            "this GPU is sm_%d%d. On Hopper use the dequantized or wgmma MX paths (--mx-gemm dequant|native)",
            what, c->cc_major, c->cc_minor);
    }
    int dev;
    cudaCheck(cudaGetDevice(&dev));
    if (dev != c->device) { die("internal: %s GEMM on device %d with a context made for device %d", what, dev, c->device); }
    // 16-byte alignment of pointers and leading dimensions (cuBLASLt's FP8/FP4 rules); K % 32
    // also makes whole MX blocks and 16-byte FP4 rows
    if (M % 16 != 0 || N % 16 != 0 || K % 32 != 0) { die("internal: %s GEMM M=%d N=%d K=%d needs M and N multiples of 16, K of 32", what, M, N, K); }
    const void* ptrs[4] = {A, B, C, scratch};
    const char* names[4] = {"A", "B", "C", "scratch"};
    for (int i = 0; i < 4; i++) {
        if (((uintptr_t)ptrs[i] & 15) != 0) { die("internal: %s GEMM %s at %p is not 16-byte aligned", what, names[i], ptrs[i]); }
    }
    int KB = K / block;
    uint8_t* swA = scratch;                                        // (mx_sf_bytes(M, KB)) A's scales, swizzled
    uint8_t* swB = scratch + align256((size_t)mx_sf_bytes(M, KB)); // (mx_sf_bytes(N, KB)) B's
    mx_sf_swizzle(swA, sA, M, KB, stream);
    mx_sf_swizzle(swB, sB, N, KB, stream);

    cublasLtMatmulDesc_t desc;
    cublasCheck(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t opT = CUBLAS_OP_T, opN = CUBLAS_OP_N;
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opT, sizeof(opT)));
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opN, sizeof(opN)));
    int32_t m32 = (int32_t)mode;   // the scale-mode attributes are int32_t
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &m32, sizeof(m32)));
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &m32, sizeof(m32)));
    const void* lt_a_scale = swB;
    const void* lt_b_scale = swA;
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &lt_a_scale, sizeof(lt_a_scale)));
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &lt_b_scale, sizeof(lt_b_scale)));
    gemm_set_epilogue(desc, bias, GEMM_NO_GELU, NULL, N);
    // layouts count elements, FP4 ones too (two per byte): cuBLASLt's A = our B (K,N), its
    // B = our A (K,M), C (N,M), all column-major with the contiguous dimension first
    cublasLtMatrixLayout_t la, lb, lc;
    cublasCheck(cublasLtMatrixLayoutCreate(&la, tb, K, N, K));
    cublasCheck(cublasLtMatrixLayoutCreate(&lb, ta, K, M, K));
    cublasCheck(cublasLtMatrixLayoutCreate(&lc, CUDA_R_16BF, N, M, N));
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    cublasStatus_t st = gemm_pick_algo(c->gemm, desc, la, lb, lc, lc, &heur, &found);
    if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
        die("cuBLASLt has no %s block-scaled algorithm for M=%d N=%d K=%d%s (status %d) on sm_%d%d", what, M, N, K,
            bias ? " with bias" : "", (int)st, c->cc_major, c->cc_minor);
    }
    cublasCheck(cublasLtMatmul(c->gemm->handle, desc, &alpha, B, la, A, lb, &beta, C, lc, C, lc, &heur.algo,
                               c->gemm->workspace, c->gemm->workspace_bytes, stream));
    cublasCheck(cublasLtMatrixLayoutDestroy(la));
    cublasCheck(cublasLtMatrixLayoutDestroy(lb));
    cublasCheck(cublasLtMatrixLayoutDestroy(lc));
    cublasCheck(cublasLtMatmulDescDestroy(desc));
}

static inline cudaDataType_t mx_lt_fp8_type(Fp8Format f) { return f == FP8_E4M3 ? CUDA_R_8F_E4M3 : CUDA_R_8F_E5M2; }

// MXFP8: C (M,N) = alpha * dequant(A) @ dequant(B)^T + beta * C [+ bias (N)]
//   A (M,K) codes (format fa), sA (M, K/32) E8M0; B (N,K) codes (fb), sB (N, K/32) E8M0
//   scratch: mx_gemm_cublaslt_scratch_bytes(M, N, K, MXFP8_BLOCK) bytes, 16-byte aligned
static inline void mx_gemm_cublaslt_mxfp8(const MxLtContext* c, floatX* C, const uint8_t* A, Fp8Format fa, const uint8_t* sA,
                                          const uint8_t* B, Fp8Format fb, const uint8_t* sB, const floatX* bias, int M, int N,
                                          int K, float alpha, float beta, uint8_t* scratch, cudaStream_t stream) {
    if (fa == FP8_E5M2 && fb == FP8_E5M2) { die("internal: MXFP8 GEMM with two E5M2 operands (cuBLASLt has none)"); }
    mx_gemm_cublaslt(c, "MXFP8", C, A, mx_lt_fp8_type(fa), sA, B, mx_lt_fp8_type(fb), sB, MXFP8_BLOCK,
                     CUBLASLT_MATMUL_MATRIX_SCALE_VEC32_UE8M0, bias, M, N, K, alpha, beta, scratch, stream);
}

// NVFP4: C (M,N) = dequant(A) @ dequant(B)^T / (st_a st_b) + beta * C [+ bias (N)]
//   A (M, K/2) bytes of packed E2M1 codes, sA (M, K/16) E4M3, st_a its tensor scale (x ~=
//   decode(code) * decode(scale) / s_t); B (N, K/2), sB (N, K/16), st_b likewise
//   scratch: mx_gemm_cublaslt_scratch_bytes(M, N, K, NVFP4_BLOCK) bytes, 16-byte aligned
static inline void mx_gemm_cublaslt_nvfp4(const MxLtContext* c, floatX* C, const uint8_t* A, const uint8_t* sA, float st_a,
                                          const uint8_t* B, const uint8_t* sB, float st_b, const floatX* bias, int M, int N,
                                          int K, float beta, uint8_t* scratch, cudaStream_t stream) {
    mx_gemm_cublaslt(c, "NVFP4", C, A, CUDA_R_4F_E2M1, sA, B, CUDA_R_4F_E2M1, sB, NVFP4_BLOCK,
                     CUBLASLT_MATMUL_MATRIX_SCALE_VEC16_UE4M3, bias, M, N, K, 1.0f / (st_a * st_b), beta, scratch, stream);
}

#endif // LLMC_MX_GEMM_CUBLASLT_CUH
