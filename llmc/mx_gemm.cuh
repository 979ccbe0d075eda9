// MXFP8 GEMM on Hopper's FP8 tensor cores (issue 7, path (b) of llmc/mx.h):
//   C (M,N) bf16 = alpha * sum_kb (A_kb @ B_kb^T) * 2^(sA[m,kb]-127) * 2^(sB[n,kb]-127) + beta * C  [+ bias (N)]
// A (M,K) and B (N,K) are FP8 codes, row-major (both K-major, "TN"), E4M3 or E5M2 each; sA (M, K/32)
// and sB (N, K/32) are their E8M0 block scales, one per 32 consecutive K (llmc/mx.h; 255 = NaN).
//
// Numerics: every 32-wide K block is one wgmma per 64x64 output slice into a fresh FP32
// fragment (scale-d = 0); that fragment is multiplied by the block's two scales (powers of two:
// exact) and added into the FP32 accumulator with one rounding (fmaf): the "promotion" DeepGEMM
// does per 128-wide block, here per MX block. The tensor core never accumulates across blocks,
// so its reduced internal precision (Hopper truncates FP8 sums to ~13 fraction bits) only
// touches 32-term partial sums; everything across blocks is plain FP32. Exactness of the scaling
// assumes block sums times 2^(eA + eB - 254) stay in FP32's normal range (MX scales near the
// data). A NaN scale makes its outputs NaN (NaN * finite); so do NaN/inf codes.
//
// Cost: the promotion is two FP32 instructions per output and block (a multiply, an fma) against
// 32 tensor-core FMAs: on Hopper (128 FP32 lanes and 4096 FP8 MMA FMAs per SM and clock) it takes
// twice the MMA's time, so even perfectly overlapped the kernel's ceiling is about half the FP8
// peak, i.e. BF16's. It also needs a fragment beside the accumulator (registers), which keeps
// the block tile at 128x128: measured on the H100 (BENCHMARKS.md, issue 7), the cp.async load
// pipeline of such tiles alone takes 70% of the kernel's time; the rest is the promotion.
//
// Kernel: 128x128 block tile, two warpgroups of 64 rows each (256 threads, one block per SM);
// each warpgroup computes two 64x64 column slices, one wgmma m64n64k32 per slice and K block,
// with two fragments in turn: a slice's wgmma runs while the previous slice is promoted.
// K runs in stages of 128 bytes (4 MX blocks) through a MXW_STAGES-deep cp.async ring, 3 stages
// in flight; each operand's stage tile is (rows, 128 bytes) in wgmma's 128-byte swizzle (the
// 16-byte chunk c of row r at chunk c ^ (r % 8)), so the smem descriptors read it directly; the
// k-th block of a stage is the descriptor's start address + 32k. Scales of a stage are decoded
// into shared floats a stage ahead, their bytes loaded three stages ahead into registers.
// Split-K (gridDim.z) when the tiles would not fill the GPU: FP32 partial sums into the caller's
// workspace, summed in a fixed order by a second kernel (deterministic).
// Shapes: M % 16 == 0, N % 16 == 0, K % 32 == 0 (ragged tiles are zero-filled and not stored);
// A, B 16-byte aligned; C, bias 4-byte aligned. All GPT-2 shapes qualify (K = 1600 included).
// wgmma is sm_90a's alone: compiled for another target (e.g. sm_100a, whose MX GEMMs go through
// cuBLASLt, llmc/mx_gemm_cublaslt.cuh), the kernel only traps.
#ifndef LLMC_MX_GEMM_CUH
#define LLMC_MX_GEMM_CUH

#include "cuda_common.h"
#include "mx.h"

#define MXW_WGS 2                           // consumer warpgroups, 64 rows each
#define MXW_BM (64 * MXW_WGS)               // block tile rows (M)
#define MXW_NH 2                            // wgmma n64 column slices of a block tile
#define MXW_BN (64 * MXW_NH)                // block tile cols (N)
#define MXW_BK 128                          // K bytes per stage: one 128-byte swizzle row
#define MXW_KB (MXW_BK / MXFP8_BLOCK)       // MX blocks per stage: 4
#define MXW_STAGES 5                        // ring of stages; MXW_STAGES - 2 loads in flight
#define MXW_SC_BUFS 3                       // decoded scales: stages kt-1 (its last block), kt, kt+1
#define MXW_THREADS (128 * MXW_WGS)
#define MXW_A_BYTES (MXW_BM * MXW_BK)       // A's stage tile: (BM, 128) bytes
#define MXW_STAGE_BYTES (MXW_A_BYTES + MXW_BN * MXW_BK)   // + B's (BN, 128)
#define MXW_SB_PITCH (MXW_BN / 4 + 4)       // floats per lane-quad row of B scales (+ 4 against bank conflicts)
#define MXW_KB_FLOATS (MXW_BM + 4 * MXW_SB_PITCH)         // one block's decoded scales: [A BM | B 4 x pitch]
#define MXW_SC_ROWS ((MXW_BM + MXW_BN + MXW_THREADS - 1) / MXW_THREADS)   // scale rows per thread
#define MXW_SCALE_FLOATS (MXW_KB * MXW_KB_FLOATS)         // one stage's
#define MXW_SMEM_BYTES (MXW_STAGES * MXW_STAGE_BYTES + MXW_SC_BUFS * MXW_SCALE_FLOATS * 4 + 1024)   // + alignment

// FP32 scratch of split-K partial sums (owned by the caller, e.g. MxLinear): mx_gemm_reserve
// grows it up front, or the GEMM at a shape that needs more
typedef struct { float* buf; size_t floats; int num_sms; } MxGemmWorkspace;

static inline void mx_gemm_workspace_free(MxGemmWorkspace* ws) {
    if (ws->buf != NULL) { cudaCheck(cudaFree(ws->buf)); }
    ws->buf = NULL; ws->floats = 0;
}

// 16-byte copy global -> shared without registers; bytes 0 fills the 16 bytes with zeros
__device__ __forceinline__ void mxw_cp16(uint32_t dst, const void* src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(dst), "l"(src), "r"(bytes));
}

// wgmma shared-memory descriptor of a K-major tile in the 128-byte swizzle: start address,
// stride between 8-row groups 1024 bytes (8 rows of 128), leading offset unused (K fits one row).
__device__ __forceinline__ uint64_t mxw_desc(uint32_t saddr) {
    return (uint64_t)((saddr & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) | ((uint64_t)1 << 62);
}

// d (this thread's 32 floats of the warpgroup's 64x64 f32 tile) = A (64x32) @ B (64x32)^T, async
template <Fp8Format FA, Fp8Format FB>
__device__ __forceinline__ void mxw_wgmma(float* d, uint64_t da, uint64_t db) {
#define MXW_WGMMA(TA, TB)                                                                                  \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 0, 0;\n"                                              \
                 "wgmma.mma_async.sync.aligned.m64n64k32.f32." TA "." TB " {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1;\n}\n" \
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]) : "l"(da), "l"(db))
    if constexpr (FA == FP8_E4M3 && FB == FP8_E4M3) { MXW_WGMMA("e4m3", "e4m3"); }
    else if constexpr (FA == FP8_E4M3) { MXW_WGMMA("e4m3", "e5m2"); }
    else if constexpr (FB == FP8_E4M3) { MXW_WGMMA("e5m2", "e4m3"); }
    else { MXW_WGMMA("e5m2", "e5m2"); }
#undef MXW_WGMMA
}

// keeps the compiler from moving reads of an async accumulator across the wait
__device__ __forceinline__ void mxw_fence_regs(float* d) {
#pragma unroll
    for (int i = 0; i < 32; i++) { asm volatile("" : "+f"(d[i]) :: "memory"); }
}

// acc += frag * sA[row] * sB[col] for a half's 32 outputs: rows r0 and r0 + 8 of the warpgroup's
// 64 (sa: their two scales), the half's cols 8j + 2t + e (sb: this lane quad's 16 scales of the
// half, col 8j + 2t + e at 2j + e). The multiply and the fma are exact but for the fma's rounding.
__device__ __forceinline__ void mxw_promote(float* acc, const float* frag, float2 sa, const float* sb) {
#pragma unroll
    for (int q = 0; q < 4; q++) {
        float4 b = *reinterpret_cast<const float4*>(sb + 4 * q);   // cols of n8 tiles 2q and 2q + 1
        const float bs[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int j = 2 * q + h;
#pragma unroll
            for (int e = 0; e < 4; e++) {   // frag[4j + e]: row r0 + 8 (e / 2), col 8j + 2t + e % 2
                acc[4 * j + e] = fmaf(frag[4 * j + e] * (e < 2 ? sa.x : sa.y), bs[2 * h + e % 2], acc[4 * j + e]);
            }
        }
    }
}

// grid (ceil(N/128), ceil(M/MXW_BM), splits), MXW_THREADS threads, MXW_SMEM_BYTES dynamic shared
// memory. splits == 1: C = alpha * acc + beta * C + bias (bf16); else stage range blockIdx.z's
// FP32 partial sums into part (splits, M, N).
template <Fp8Format FA, Fp8Format FB>
__global__ void __launch_bounds__(MXW_THREADS, 1)
mx_gemm_wgmma_kernel(floatX* C, float* part, const uint8_t* A, const uint8_t* sA, const uint8_t* B, const uint8_t* sB,
                     const floatX* bias, int M, int N, int K, float alpha, float beta, int stages_per_split) {
#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
    __trap();   // no wgmma on this target (see the header)
#else
    extern __shared__ uint8_t mxw_smem_raw[];
    // [stage][A tile | B tile], 1024-aligned for the swizzle; then [MXW_SC_BUFS] decoded scales
    const uint32_t raw = (uint32_t)__cvta_generic_to_shared(mxw_smem_raw);
    const uint32_t tiles = (raw + 1023) & ~1023u;
    float* fsc = reinterpret_cast<float*>(mxw_smem_raw + (tiles - raw) + MXW_STAGES * MXW_STAGE_BYTES);
    int tid = threadIdx.x, wg = tid / 128, warp = (tid % 128) / 32, lane = tid % 32;
    int m0 = blockIdx.y * MXW_BM, n0 = blockIdx.x * MXW_BN;
    int nblocks = K / MXFP8_BLOCK, kstages = (K + MXW_BK - 1) / MXW_BK;
    int st0 = blockIdx.z * stages_per_split;
    int st1 = min(kstages, st0 + stages_per_split), nst = st1 - st0;

    // scale bytes: rows tid + MXW_THREADS * u of the tile's A rows then B rows, 4 codes a stage;
    // decoded position: A row r (warpgroup r/64, warp, g = r%8, half) at ((r/16)*8 + r%8)*2 + (r/8)%2;
    // B col c = 8j + 2t + e at MXW_BM + t * MXW_SB_PITCH + 2j + e
    const uint8_t* sptr[MXW_SC_ROWS];   // (K/32) codes of the row; NULL: none or past M, N
    int spos[MXW_SC_ROWS];              // -1: no row
#pragma unroll
    for (int u = 0; u < MXW_SC_ROWS; u++) {
        int x = tid + MXW_THREADS * u, sop = x >= MXW_BM, sr = sop ? x - MXW_BM : x, srow = (sop ? n0 : m0) + sr;
        bool own = x < MXW_BM + MXW_BN;
        sptr[u] = own && srow < (sop ? N : M) ? (sop ? sB : sA) + (long)srow * nblocks : NULL;
        spos[u] = !own ? -1 : sop ? MXW_BM + ((sr % 8) / 2) * MXW_SB_PITCH + (sr / 8) * 2 + sr % 2
                                  : ((sr / 16) * 8 + sr % 8) * 2 + (sr / 8) % 2;
    }
    // a stage's 4 codes packed in a word, loaded 3 stages ahead (the tiles' distance: their
    // latency is hidden the same way); 127 (1.0) past the edges: finite times zeros
    auto load_scales = [&](int kt, uint32_t* w) {
#pragma unroll
        for (int u = 0; u < MXW_SC_ROWS; u++) {
            w[u] = 0;
#pragma unroll
            for (int q = 0; q < MXW_KB; q++) {
                int kb = kt * MXW_KB + q;
                w[u] |= (uint32_t)((sptr[u] != NULL && kt < st1 && kb < nblocks) ? __ldg(sptr[u] + kb) : (uint8_t)E8M0_BIAS) << (8 * q);
            }
        }
    };
    auto store_scales = [&](int kt, const uint32_t* w) {
        float* f = fsc + (kt % MXW_SC_BUFS) * MXW_SCALE_FLOATS;
#pragma unroll
        for (int u = 0; u < MXW_SC_ROWS; u++) {
            if (spos[u] < 0) { continue; }
#pragma unroll
            for (int q = 0; q < MXW_KB; q++) { f[q * MXW_KB_FLOATS + spos[u]] = mx_e8m0_decode((uint8_t)(w[u] >> (8 * q))); }
        }
    };
    // stage kt of A (BM rows from m0) and B (128 rows from n0): 8 threads copy a 128-byte row;
    // zero fill beyond M, N, K
    auto load_tile = [&](int kt) {
        uint32_t st = tiles + (kt % MXW_STAGES) * MXW_STAGE_BYTES;
        int k0 = kt * MXW_BK;
        constexpr int chunks = MXW_STAGE_BYTES / 16;
#pragma unroll
        for (int j = 0; j < (chunks + MXW_THREADS - 1) / MXW_THREADS; j++) {
            int id = tid + j * MXW_THREADS;
            if (chunks % MXW_THREADS != 0 && id >= chunks) { break; }
            int r = id / 8, ch = id % 8, op = r >= MXW_BM, grow = op ? n0 + r - MXW_BM : m0 + r, k = k0 + ch * 16;
            bool ok = grow < (op ? N : M) && k < K;
            const uint8_t* src = (op ? B : A) + (ok ? (long)grow * K + k : 0);
            mxw_cp16(st + r * MXW_BK + ((ch ^ (r % 8)) << 4), src, ok ? 16 : 0);   // B's rows follow A's
        }
    };

    // accumulators of the column slices (64 cols each) and two block fragments used in turn
    // (rows/cols as mxw_promote)
    float acc[MXW_NH][32], frag[2][32];
#pragma unroll
    for (int i = 0; i < 32; i++) {
#pragma unroll
        for (int h = 0; h < MXW_NH; h++) { acc[h][i] = 0.0f; }
        frag[1][i] = 0.0f;
    }
    int g = lane / 4, t = lane % 4;
    int sa_off = ((wg * 4 + warp) * 8 + g) * 2, sb_off = MXW_BM + t * MXW_SB_PITCH;

    for (int s = 0; s < MXW_STAGES - 2; s++) {
        if (st0 + s < st1) { load_tile(st0 + s); }
        asm volatile("cp.async.commit_group;\n" ::);
    }
    // the first block's first slice promotes a zero fragment "of stage st0-1", with scales 1
    uint32_t sc0[MXW_SC_ROWS], sc1[MXW_SC_ROWS], sc2[MXW_SC_ROWS], sc3[MXW_SC_ROWS];   // stages kt..kt+3
#pragma unroll
    for (int u = 0; u < MXW_SC_ROWS; u++) { sc0[u] = 0x7F7F7F7Fu; }
    store_scales(st0 + MXW_SC_BUFS - 1, sc0);
    load_scales(st0, sc0);
    store_scales(st0, sc0);
    load_scales(st0 + 1, sc1);
    load_scales(st0 + 2, sc2);
    load_scales(st0 + 3, sc3);

    for (int i = 0; i < nst; i++) {
        int kt = st0 + i;
        asm volatile("cp.async.wait_group %0;\n" :: "n"(MXW_STAGES - 3));   // stage kt landed (this thread's copies)
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");      // ... visible to wgmma's async proxy
        __syncthreads();   // everyone's; stage kt-2's wgmmas all retired (each warpgroup waited on them)
        if (kt + MXW_STAGES - 2 < st1) { load_tile(kt + MXW_STAGES - 2); }  // into stage kt-2's buffer
        asm volatile("cp.async.commit_group;\n" ::);
        store_scales(kt + 1, sc1);   // read after the next barrier; the buffer's last reader was stage kt-2
#pragma unroll
        for (int u = 0; u < MXW_SC_ROWS; u++) { sc1[u] = sc2[u]; sc2[u] = sc3[u]; }
        load_scales(kt + 4, sc3);
        uint32_t ta = tiles + (kt % MXW_STAGES) * MXW_STAGE_BYTES, tb = ta + MXW_A_BYTES;
        ta += wg * 64 * MXW_BK;
        const float* fs = fsc + (kt % MXW_SC_BUFS) * MXW_SCALE_FLOATS;
        const float* fprev = fsc + ((kt + MXW_SC_BUFS - 1) % MXW_SC_BUFS) * MXW_SCALE_FLOATS;
        // each block's column slices in turn, fragments alternating: issue one slice's wgmma, then
        // promote the slice issued before it (stage kt-1's last first), whose wgmma is then the
        // only one to wait for
#pragma unroll
        for (int kb = 0; kb < MXW_KB; kb++) {
#pragma unroll
            for (int h = 0; h < MXW_NH; h++) {
                const int p = h % 2, hp = h == 0 ? MXW_NH - 1 : h - 1;   // fragment; the previous slice
                // stage kt-1's last slice retires before this stage's first wgmma: ptxas serializes
                // every wgmma when a wait_group 1 retires one issued in an earlier loop iteration
                if (kb == 0 && h == 0) { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
                asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
                mxw_wgmma<FA, FB>(frag[p], mxw_desc(ta + 32 * kb), mxw_desc(tb + 64 * h * MXW_BK + 32 * kb));
                asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
                if (kb != 0 || h != 0) { asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory"); }
                mxw_fence_regs(frag[1 - p]);
                const float* f = h > 0 ? fs + kb * MXW_KB_FLOATS : kb > 0 ? fs + (kb - 1) * MXW_KB_FLOATS
                                                                        : fprev + (MXW_KB - 1) * MXW_KB_FLOATS;
                mxw_promote(acc[hp], frag[1 - p], *reinterpret_cast<const float2*>(f + sa_off), f + sb_off + 16 * hp);
            }
        }
    }
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
    mxw_fence_regs(frag[1]);
    if (nst > 0) {   // the last slice
        const float* f = fsc + ((st1 - 1) % MXW_SC_BUFS) * MXW_SCALE_FLOATS + (MXW_KB - 1) * MXW_KB_FLOATS;
        mxw_promote(acc[MXW_NH - 1], frag[1], *reinterpret_cast<const float2*>(f + sa_off), f + sb_off + 16 * (MXW_NH - 1));
    }

    // epilogue: rows r0, r0 + 8, cols 64 hf + 8j + 2t, +1
    int r0 = m0 + wg * 64 + warp * 16 + g;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        int row = r0 + 8 * h;
        if (row >= M) { continue; }
#pragma unroll
        for (int hf = 0; hf < MXW_NH; hf++) {
#pragma unroll
            for (int j = 0; j < 8; j++) {
                int col = n0 + 64 * hf + 8 * j + 2 * t;
                if (col >= N) { continue; }
                float v0 = acc[hf][4 * j + 2 * h], v1 = acc[hf][4 * j + 2 * h + 1];
                if (part != NULL) {
                    *reinterpret_cast<float2*>(part + ((long)blockIdx.z * M + row) * N + col) = make_float2(v0, v1);
                    continue;
                }
                v0 *= alpha; v1 *= alpha;
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
#endif
}

// C (M,N) = alpha * sum_z part[z] + beta * C + bias, the splits summed in order; two outputs a thread
__global__ void mx_gemm_splitk_sum_kernel(floatX* C, const float* part, const floatX* bias, int M, int N, int splits,
                                          float alpha, float beta) {
    long i = 2 * ((long)blockIdx.x * blockDim.x + threadIdx.x), MN = (long)M * N;
    if (i >= MN) { return; }
    float2 a = *reinterpret_cast<const float2*>(part + i);
    for (int z = 1; z < splits; z++) {
        float2 p = *reinterpret_cast<const float2*>(part + z * MN + i);
        a.x += p.x;
        a.y += p.y;
    }
    float v0 = alpha * a.x, v1 = alpha * a.y;
    __nv_bfloat162* c = reinterpret_cast<__nv_bfloat162*>(C + i);
    if (beta != 0.0f) {
        float2 o = __bfloat1622float2(*c);
        v0 = fmaf(beta, o.x, v0);
        v1 = fmaf(beta, o.y, v1);
    }
    if (bias != NULL) {
        float2 bb = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(bias + i % N));
        v0 += bb.x;
        v1 += bb.y;
    }
    *c = __floats2bfloat162_rn(v0, v1);
}

// Splits of K (1-16, each at least 8 stages): the fewest that fill the SMs' waves of blocks
// clearly better (tiles * splits over whole waves) than fewer splits do.
static inline int mx_gemm_splits(int M, int N, int K, int num_sms) {
    int tiles = ceil_div(M, MXW_BM) * ceil_div(N, MXW_BN), kstages = ceil_div(K, MXW_BK);
    auto fill = [&](int s) { long b = (long)tiles * s; return (double)b / (double)(ceil_div(b, (long)num_sms) * num_sms); };
    int best = 1;
    for (int s = 2; s <= 16 && kstages / s >= 8; s++) {
        if (fill(s) > fill(best) + 0.05) { best = s; }
    }
    return best;
}

// The K stages per split of an (M,N,K) GEMM, with ws grown to the splits' partial sums (a device
// sync when it grows: call it at set-up for every shape to come, e.g. from linear_reserve).
static inline int mx_gemm_reserve(MxGemmWorkspace* ws, int M, int N, int K) {
    if (ws->num_sms == 0) {
        int dev;
        cudaCheck(cudaGetDevice(&dev));
        cudaCheck(cudaDeviceGetAttribute(&ws->num_sms, cudaDevAttrMultiProcessorCount, dev));
    }
    int kstages = ceil_div(K, MXW_BK), per = ceil_div(kstages, mx_gemm_splits(M, N, K, ws->num_sms));
    int splits = ceil_div(kstages, per);   // no empty split
    size_t need = splits > 1 ? (size_t)splits * M * N : 0;
    if (need > ws->floats) {
        cudaCheck(cudaDeviceSynchronize());
        mx_gemm_workspace_free(ws);
        ws->buf = (float*)cuda_malloc_or_die(need * sizeof(float), "MXFP8 GEMM split-K partial sums");
        ws->floats = need;
    }
    return per;
}

template <Fp8Format FA, Fp8Format FB>
static void mx_gemm_launch(floatX* C, const uint8_t* A, const uint8_t* sA, const uint8_t* B, const uint8_t* sB,
                           const floatX* bias, int M, int N, int K, float alpha, float beta, MxGemmWorkspace* ws,
                           cudaStream_t stream) {
    static bool smem_set = false;   // once per instantiation (one device per process)
    if (!smem_set) {
        cudaCheck(cudaFuncSetAttribute(mx_gemm_wgmma_kernel<FA, FB>, cudaFuncAttributeMaxDynamicSharedMemorySize, MXW_SMEM_BYTES));
        smem_set = true;
    }
    int per = mx_gemm_reserve(ws, M, N, K), splits = ceil_div(ceil_div(K, MXW_BK), per);
    float* part = splits > 1 ? ws->buf : NULL;
    dim3 grid(ceil_div(N, MXW_BN), ceil_div(M, MXW_BM), splits);
    mx_gemm_wgmma_kernel<FA, FB><<<grid, MXW_THREADS, MXW_SMEM_BYTES, stream>>>(C, part, A, sA, B, sB, bias, M, N, K,
                                                                                 alpha, beta, per);
    cudaCheckLaunch();
    if (splits > 1) {
        long pairs = (long)M * N / 2;
        mx_gemm_splitk_sum_kernel<<<(unsigned)ceil_div(pairs, 256), 256, 0, stream>>>(C, part, bias, M, N, splits, alpha, beta);
        cudaCheckLaunch();
    }
}

// C (M,N) bf16 = alpha * MXFP8(A (M,K) fa, sA (M,K/32)) @ MXFP8(B (N,K) fb, sB (N,K/32))^T + beta * C [+ bias (N)]
// beta 0 never reads C. bias may be NULL. Any format pair (E4M3/E5M2 each). ws: split-K scratch,
// grown here when a shape needs it and mx_gemm_reserve did not (a device sync then).
static inline void mx_gemm_mxfp8(floatX* C, const uint8_t* A, Fp8Format fa, const uint8_t* sA,
                                 const uint8_t* B, Fp8Format fb, const uint8_t* sB, const floatX* bias,
                                 int M, int N, int K, float alpha, float beta, MxGemmWorkspace* ws, cudaStream_t stream) {
    if (M <= 0 || N <= 0 || K <= 0 || M % 16 != 0 || N % 16 != 0 || K % MXFP8_BLOCK != 0) {
        die("internal: MXFP8 GEMM M=%d N=%d K=%d needs M, N multiples of 16 and K of 32", M, N, K);
    }
    if (((uintptr_t)A | (uintptr_t)B) % 16 != 0 || ((uintptr_t)C | (uintptr_t)bias) % 4 != 0) {
        die("internal: MXFP8 GEMM operands misaligned (A, B need 16 bytes; C, bias 4)");
    }
    if (fa == FP8_E4M3 && fb == FP8_E4M3) { mx_gemm_launch<FP8_E4M3, FP8_E4M3>(C, A, sA, B, sB, bias, M, N, K, alpha, beta, ws, stream); }
    else if (fa == FP8_E4M3) { mx_gemm_launch<FP8_E4M3, FP8_E5M2>(C, A, sA, B, sB, bias, M, N, K, alpha, beta, ws, stream); }
    else if (fb == FP8_E4M3) { mx_gemm_launch<FP8_E5M2, FP8_E4M3>(C, A, sA, B, sB, bias, M, N, K, alpha, beta, ws, stream); }
    else { mx_gemm_launch<FP8_E5M2, FP8_E5M2>(C, A, sA, B, sB, bias, M, N, K, alpha, beta, ws, stream); }
}

#endif // LLMC_MX_GEMM_CUH
