// MXFP8 GEMM on Hopper's FP8 tensor cores (issue 7, path (b) of llmc/mx.h):
//   C (M,N) bf16 = alpha * sum_kb (A_kb @ B_kb^T) * 2^(sA[m,kb]-127) * 2^(sB[n,kb]-127) + beta * C  [+ bias (N)]
// A (M,K) and B (N,K) are FP8 codes, row-major (both K-major, "TN"), E4M3 or E5M2 each; sA (M, K/32)
// and sB (N, K/32) are their E8M0 block scales, one per 32 consecutive K (llmc/mx.h; 255 = NaN).
//
// Numerics: every 32-wide K block is one m16n8k32 MMA per 16x8 output tile into a zeroed FP32
// fragment; that fragment is multiplied by the block's two scales (powers of two: exact) and added
// into the FP32 accumulator with one rounding (fmaf). The tensor core never accumulates across
// blocks, so its reduced internal precision (Hopper reportedly truncates FP8 sums to ~13 fraction
// bits) only touches 32-term partial sums; everything across blocks is plain FP32. Exactness of the scaling
// assumes block sums times 2^(eA + eB - 254) stay in FP32's normal range (MX scales near the data).
// A NaN scale makes its outputs NaN (NaN * finite); so do NaN/inf codes.
//
// Kernel: 128x128 block tile, 8 warps in 2 (M) x 4 (N), each warp 64x32 = 4x4 MMA tiles, one block
// per SM (255 registers, no spills with nvcc 13). K runs in 64-byte stages (2 MX blocks) through a
// MXG_STAGES-deep cp.async pipeline; shared rows are 64 bytes with an XOR swizzle of their four
// 16-byte chunks, so ldmatrix.x4 and cp.async are conflict-free.
// The FP8 fragments of m16n8k32 (g = lane/4, t = lane%4) are byte for byte those of BF16 m16n8k16,
// so ldmatrix .b16 loads them: A regs 0-3 = (row g, k 4t..4t+3), (g+8, same k), (g, 16+4t..),
// (g+8, 16+4t..); B regs 0-1 = (n g, k 4t..4t+3), (n g, k 16+4t..) of the (N,K) tile; C/D as usual.
// Scales: one thread per tile row loads its two codes one stage ahead into registers, decodes them
// (mx_e8m0_decode) into shared floats, permuted so each thread reads its 8 rows (cols) with two
// conflict-free 16-byte loads.
// Shapes: M % 16 == 0, N % 16 == 0, K % 32 == 0 (ragged tiles are zero-filled and not stored);
// A, B 16-byte aligned; C, bias 4-byte aligned. All GPT-2 shapes qualify (K = 1600 included).
#ifndef LLMC_MX_GEMM_CUH
#define LLMC_MX_GEMM_CUH

#include "cuda_common.h"
#include "mx.h"

#define MXG_BM 128                         // block tile rows (M)
#define MXG_BN 128                         // block tile cols (N)
#define MXG_BK 64                          // K bytes per stage
#define MXG_KB (MXG_BK / MXFP8_BLOCK)      // MX blocks per stage: 2
#define MXG_STAGES 6
#define MXG_THREADS 256
#define MXG_TILE_BYTES (MXG_BM * MXG_BK)   // one operand's stage tile: (128, 64) bytes
#define MXG_SCALE_FLOATS (2 * 2 * MXG_KB * 128)   // [buf 2][operand 2][kb 2][128 rows, permuted]
#define MXG_SMEM_BYTES (MXG_STAGES * 2 * MXG_TILE_BYTES + MXG_SCALE_FLOATS * 4)

// 16-byte copy global -> shared without registers; bytes 0 fills the 16 bytes with zeros
__device__ __forceinline__ void mxg_cp16(uint32_t dst, const void* src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(dst), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void mxg_commit(void) { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void mxg_wait(void) { asm volatile("cp.async.wait_group %0;\n" :: "n"(N)); }

__device__ __forceinline__ void mxg_ldsm_x4(uint32_t* r, uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}

// d (16x8 f32) = a (16x32 fp8, 4 regs) @ b (32x8 fp8, 2 regs), accumulator input zero
template <Fp8Format FA, Fp8Format FB>
__device__ __forceinline__ void mxg_mma(float* d, const uint32_t* a, uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 890
    __trap();   // FP8 mma.sync needs sm_89+
    d[0] = d[1] = d[2] = d[3] = 0.0f;
#else
#define MXG_MMA(TA, TB)                                                                                   \
    asm("mma.sync.aligned.m16n8k32.row.col.f32." TA "." TB ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, " \
        "{%10,%10,%10,%10};\n"                                                                            \
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])                                                  \
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "f"(0.0f))
    if constexpr (FA == FP8_E4M3 && FB == FP8_E4M3) { MXG_MMA("e4m3", "e4m3"); }
    else if constexpr (FA == FP8_E4M3) { MXG_MMA("e4m3", "e5m2"); }
    else if constexpr (FB == FP8_E4M3) { MXG_MMA("e5m2", "e4m3"); }
    else { MXG_MMA("e5m2", "e5m2"); }
#undef MXG_MMA
#endif
}

// Byte offset of (row, 16-byte chunk) in a (rows, 64) stage tile: chunk XOR bits 1-2 of the row, so
// the 8 rows an ldmatrix phase reads (one chunk each) hit 8 distinct 16-byte bank groups.
__device__ __forceinline__ int mxg_swz(int row, int chunk) { return row * MXG_BK + ((chunk ^ ((row >> 1) & 3)) << 4); }

// Positions of decoded scales in shared memory, so that each thread reads its 8 rows (cols) as two
// float4 and each float4 load of a warp is one contiguous 128 (64) bytes. A row r, warp row g + 8j
// (j = 2 * m16 tile + half): (j/4)*32 + g*4 + j%4 of its warp's 64. B col c, warp col 8*nj + 2t + e,
// i = 2*nj + e: (i/4)*16 + t*4 + i%4 of its warp's 32.
__device__ __forceinline__ int mxg_pos_a(int r) { return (r & 64) + ((r >> 5) & 1) * 32 + (r & 7) * 4 + ((r >> 3) & 3); }
__device__ __forceinline__ int mxg_pos_b(int c) { return (c & ~31) + ((c >> 4) & 1) * 16 + ((c & 7) >> 1) * 4 + ((c >> 3) & 1) * 2 + (c & 1); }

// FP32 scratch of split-K partial sums, grown on demand (owned by the caller, e.g. MxLinear)
typedef struct { float* buf; size_t floats; } MxGemmWorkspace;

static inline void mx_gemm_workspace_free(MxGemmWorkspace* ws) {
    if (ws->buf != NULL) { cudaCheck(cudaFree(ws->buf)); }
    ws->buf = NULL; ws->floats = 0;
}

// grid (ceil(N/128), ceil(M/128)), MXG_THREADS threads, MXG_SMEM_BYTES dynamic shared memory
template <Fp8Format FA, Fp8Format FB>
__global__ void __launch_bounds__(MXG_THREADS, 1)
mx_gemm_kernel(floatX* C, const uint8_t* A, const uint8_t* sA, const uint8_t* B, const uint8_t* sB,
               const floatX* bias, int M, int N, int K, float alpha, float beta) {
    extern __shared__ __align__(128) uint8_t mxg_smem[];
    // tiles: [stage][A (128,64) | B (128,64)] swizzled; fsc: decoded scales [buf][op][kb][128]
    float* fsc = reinterpret_cast<float*>(mxg_smem + MXG_STAGES * 2 * MXG_TILE_BYTES);
    const uint32_t tiles = (uint32_t)__cvta_generic_to_shared(mxg_smem);
    int tid = threadIdx.x, warp = tid / WARP_SIZE, lane = tid % WARP_SIZE;
    int wm = warp / 4, wn = warp % 4;
    int m0 = blockIdx.y * MXG_BM, n0 = blockIdx.x * MXG_BN;
    int ktiles = (K + MXG_BK - 1) / MXG_BK, nblocks = K / MXFP8_BLOCK;

    // this thread's scale row: A row m0 + tid (tid < 128) or B row n0 + tid - 128
    int sop = tid / 128, sr = tid % 128, srow = (sop ? n0 : m0) + sr;
    bool srow_ok = srow < (sop ? N : M);
    const uint8_t* sptr = (sop ? sB : sA) + (long)(srow_ok ? srow : 0) * nblocks;   // (K/32) codes
    int spos = sop ? mxg_pos_b(sr) : mxg_pos_a(sr);
    uint8_t snext[MXG_KB];   // codes of a stage ahead; 127 (1.0) past the edges: finite times zeros

    auto load_scales = [&](int kt) {
#pragma unroll
        for (int q = 0; q < MXG_KB; q++) {
            int kb = kt * MXG_KB + q;
            snext[q] = (srow_ok && kb < nblocks) ? __ldg(sptr + kb) : (uint8_t)E8M0_BIAS;
        }
    };
    auto store_scales = [&](int buf) {
#pragma unroll
        for (int q = 0; q < MXG_KB; q++) { fsc[((buf * 2 + sop) * MXG_KB + q) * 128 + spos] = mx_e8m0_decode(snext[q]); }
    };
    // stage kt of A (128 rows from m0) and B (128 rows from n0), 64 bytes of K each; zero fill
    // beyond M, N, K. Each warp copies 8 whole 64-byte rows per instruction.
    auto load_tile = [&](int kt) {
        uint32_t st = tiles + (kt % MXG_STAGES) * 2 * MXG_TILE_BYTES;
        int k0 = kt * MXG_BK;
#pragma unroll
        for (int j = 0; j < 2 * MXG_TILE_BYTES / 16 / MXG_THREADS; j++) {
            int id = tid + j * MXG_THREADS, op = id / (MXG_TILE_BYTES / 16), c = id % (MXG_TILE_BYTES / 16);
            int r = c / 4, ch = c % 4, grow = (op ? n0 : m0) + r, k = k0 + ch * 16;
            bool ok = grow < (op ? N : M) && k < K;
            const uint8_t* src = (op ? B : A) + (ok ? (long)grow * K + k : 0);
            mxg_cp16(st + op * MXG_TILE_BYTES + mxg_swz(r, ch), src, ok ? 16 : 0);
        }
    };

    // ldmatrix.x4 lane offsets in a stage tile, per k-block: A matrices (rows 0-7, k 0-15), (rows 8-15,
    // k 0-15), (rows 0-7, k 16-31), (rows 8-15, k 16-31) = a0..a3 of m16n8k32; B matrices (n 0-7,
    // k 0-15), (n 0-7, k 16-31), (n 8-15, k 0-15), (n 8-15, k 16-31) = b0, b1 of two n8 tiles. The
    // swizzle depends on row bits 1-2 only, i.e. on the lane: further tiles are +16 rows (immediates).
    uint32_t a_off[MXG_KB], b_off[MXG_KB];
#pragma unroll
    for (int kb = 0; kb < MXG_KB; kb++) {
        a_off[kb] = mxg_swz(wm * 64 + (lane & 7) + ((lane >> 3) & 1) * 8, kb * 2 + (lane >> 4));
        b_off[kb] = mxg_swz(wn * 32 + (lane & 7) + (lane >> 4) * 8, kb * 2 + ((lane >> 3) & 1));
    }
    int g = lane / 4, t = lane % 4;
    int sa_off = wm * 64 + g * 4, sb_off = MXG_KB * 128 + wn * 32 + t * 4;   // this thread's decoded scales
    // warps wholly past M or N (ragged edge tiles) skip the math
    bool active = m0 + wm * 64 < M && n0 + wn * 32 < N;

    float acc[4][4][4];   // [m16 tile][n8 tile][C fragment]
#pragma unroll
    for (int i = 0; i < 4; i++) {
#pragma unroll
        for (int j = 0; j < 4; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) { acc[i][j][e] = 0.0f; }
        }
    }

    for (int s = 0; s < MXG_STAGES - 1; s++) {
        if (s < ktiles) { load_tile(s); }
        mxg_commit();
    }
    load_scales(0);
    store_scales(0);
    load_scales(1);

    for (int kt = 0; kt < ktiles; kt++) {
        mxg_wait<MXG_STAGES - 2>();   // stage kt has landed (this thread's copies)
        __syncthreads();              // ... everyone's; scales of kt stored; stage kt-1 and its scales free
        if (kt + MXG_STAGES - 1 < ktiles) { load_tile(kt + MXG_STAGES - 1); }
        mxg_commit();
        store_scales((kt + 1) & 1);   // stage kt+1's, read after the next barrier
        load_scales(kt + 2);
        if (active) {
            uint32_t st = tiles + (kt % MXG_STAGES) * 2 * MXG_TILE_BYTES;   // A tile; B at + MXG_TILE_BYTES
            const float* fs = fsc + (kt & 1) * 2 * MXG_KB * 128;
#pragma unroll
            for (int kb = 0; kb < MXG_KB; kb++) {
                uint32_t a[4][4], b[2][4];
#pragma unroll
                for (int mi = 0; mi < 4; mi++) { mxg_ldsm_x4(a[mi], st + a_off[kb] + mi * 16 * MXG_BK); }
#pragma unroll
                for (int np = 0; np < 2; np++) { mxg_ldsm_x4(b[np], st + MXG_TILE_BYTES + b_off[kb] + np * 16 * MXG_BK); }
                float sa[8], sb[8];   // scales of this thread's rows g + 8j and cols 8*nj + 2t + e
                *reinterpret_cast<float4*>(sa) = *reinterpret_cast<const float4*>(fs + kb * 128 + sa_off);
                *reinterpret_cast<float4*>(sa + 4) = *reinterpret_cast<const float4*>(fs + kb * 128 + sa_off + 32);
                *reinterpret_cast<float4*>(sb) = *reinterpret_cast<const float4*>(fs + kb * 128 + sb_off);
                *reinterpret_cast<float4*>(sb + 4) = *reinterpret_cast<const float4*>(fs + kb * 128 + sb_off + 16);
#pragma unroll
                for (int nj = 0; nj < 4; nj++) {
#pragma unroll
                    for (int mi = 0; mi < 4; mi++) {
                        float d[4];
                        mxg_mma<FA, FB>(d, a[mi], b[nj / 2][(nj % 2) * 2], b[nj / 2][(nj % 2) * 2 + 1]);
#pragma unroll
                        for (int e = 0; e < 4; e++) {   // d[e]: row g + 8*(e/2), col 2t + e%2
                            acc[mi][nj][e] = fmaf(d[e] * sa[mi * 2 + e / 2], sb[nj * 2 + e % 2], acc[mi][nj][e]);
                        }
                    }
                }
            }
        }
    }

    // epilogue: C = alpha * acc (+ beta * C) (+ bias), bf16 pairs
#pragma unroll
    for (int mi = 0; mi < 4; mi++) {
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int row = m0 + wm * 64 + mi * 16 + h * 8 + g;
#pragma unroll
            for (int nj = 0; nj < 4; nj++) {
                int col = n0 + wn * 32 + nj * 8 + 2 * t;
                if (row >= M || col >= N) { continue; }
                float v0 = alpha * acc[mi][nj][2 * h], v1 = alpha * acc[mi][nj][2 * h + 1];
                __nv_bfloat162* p = reinterpret_cast<__nv_bfloat162*>(C + (long)row * N + col);
                if (beta != 0.0f) {
                    float2 o = __bfloat1622float2(*p);
                    v0 = fmaf(beta, o.x, v0);
                    v1 = fmaf(beta, o.y, v1);
                }
                if (bias != NULL) {
                    float2 bb = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(bias + col));
                    v0 += bb.x;
                    v1 += bb.y;
                }
                *p = __floats2bfloat162_rn(v0, v1);
            }
        }
    }
}

template <Fp8Format FA, Fp8Format FB>
static void mx_gemm_launch(floatX* C, const uint8_t* A, const uint8_t* sA, const uint8_t* B, const uint8_t* sB,
                           const floatX* bias, int M, int N, int K, float alpha, float beta, cudaStream_t stream) {
    static bool smem_set = false;   // once per instantiation (one device per process)
    if (!smem_set) {
        cudaCheck(cudaFuncSetAttribute(mx_gemm_kernel<FA, FB>, cudaFuncAttributeMaxDynamicSharedMemorySize, MXG_SMEM_BYTES));
        smem_set = true;
    }
    dim3 grid(ceil_div(N, MXG_BN), ceil_div(M, MXG_BM));
    mx_gemm_kernel<FA, FB><<<grid, MXG_THREADS, MXG_SMEM_BYTES, stream>>>(C, A, sA, B, sB, bias, M, N, K, alpha, beta);
    cudaCheckLaunch();
}

// C (M,N) bf16 = alpha * MXFP8(A (M,K) fa, sA (M,K/32)) @ MXFP8(B (N,K) fb, sB (N,K/32))^T + beta * C [+ bias (N)]
// beta 0 never reads C. bias may be NULL. Any format pair (E4M3/E5M2 each).
static inline void mx_gemm_mxfp8(floatX* C, const uint8_t* A, Fp8Format fa, const uint8_t* sA,
                                 const uint8_t* B, Fp8Format fb, const uint8_t* sB, const floatX* bias,
                                 int M, int N, int K, float alpha, float beta, MxGemmWorkspace* ws, cudaStream_t stream) {
    (void)ws;
    if (M <= 0 || N <= 0 || K <= 0 || M % 16 != 0 || N % 16 != 0 || K % MXFP8_BLOCK != 0) {
        die("internal: MXFP8 GEMM M=%d N=%d K=%d needs M, N multiples of 16 and K of 32", M, N, K);
    }
    if (((uintptr_t)A | (uintptr_t)B) % 16 != 0 || ((uintptr_t)C | (uintptr_t)bias) % 4 != 0) {
        die("internal: MXFP8 GEMM operands misaligned (A, B need 16 bytes; C, bias 4)");
    }
    if (fa == FP8_E4M3 && fb == FP8_E4M3) { mx_gemm_launch<FP8_E4M3, FP8_E4M3>(C, A, sA, B, sB, bias, M, N, K, alpha, beta, stream); }
    else if (fa == FP8_E4M3) { mx_gemm_launch<FP8_E4M3, FP8_E5M2>(C, A, sA, B, sB, bias, M, N, K, alpha, beta, stream); }
    else if (fb == FP8_E4M3) { mx_gemm_launch<FP8_E5M2, FP8_E4M3>(C, A, sA, B, sB, bias, M, N, K, alpha, beta, stream); }
    else { mx_gemm_launch<FP8_E5M2, FP8_E5M2>(C, A, sA, B, sB, bias, M, N, K, alpha, beta, stream); }
}

#endif // LLMC_MX_GEMM_CUH
