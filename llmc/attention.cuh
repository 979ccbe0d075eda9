// Causal multi-head attention, fused (flash-attention style): the T x T scores never
// reach global memory. Forward keeps only the per-row log-sum-exp; backward recomputes
// the probabilities from Q, K, V and it.
//
// Layout: Q, K, V are read in place from the QKV GEMM's output (B,T,3,NH,HS) and the
// output is written as (B,T,NH,HS) = (B,T,C), so no permute passes. Head size 64.
// Tensor cores (BF16 in, FP32 accumulate): wgmma on Hopper, mma.sync m16n8k16 elsewhere;
// softmax statistics in FP32. Tiles of 64 queries x 64 keys; a block of 4 warps (one
// warpgroup), each owning 16 rows.
//
// Backward is split in two kernels so every output element is written by exactly one
// thread (deterministic, no atomics): one per query tile (dQ, and delta = rowsum(dO * O), which
// it computes first), then one per key tile (dK, dV).
// The kernels are written once over an operand set (below): BF16 here, FP8 in
// llmc/attention_fp8.cuh.
#ifndef LLMC_ATTENTION_CUH
#define LLMC_ATTENTION_CUH

#include <limits.h>
#include <math.h>
#include <cuda_fp8.h>
#include "cuda_common.h"

#define ATT_HS 64          // head size
#define ATT_TILE 64        // queries and keys per tile
#define ATT_THREADS 128    // 4 warps x 16 rows
#define ATT_LOG2E 1.4426950408889634f

// ---------------------------------------------------------------------------------------
// Tiles and tensor-core products. A tile is 64 rows of one head (64 BF16 = 128 bytes each) in
// shared memory, 1024-byte aligned, in the 128-byte swizzle: 16-byte chunk c of row r sits at
// chunk c ^ (r % 8). Both MMA cores read that layout: ldmatrix without bank conflicts, and
// Hopper's wgmma through descriptors.
// Fragment layouts (PTX ISA, m16n8k16, also each warp's share of wgmma m64n64k16): for lane l,
// g = l/4, q = l%4, C/D element e of n-tile nt sits at row g + 8*(e/2), column 8*nt + 2q + (e%2).
// Products: each warp multiplies its 16 rows (A fragments in registers, from ldmatrix or from a
// previous product's accumulator) by a tile in shared memory. On sm_90a the block's 4 warps are
// one warpgroup and issue wgmma m64n64k16, which reads the tile once for all 64 rows; elsewhere
// (sm_80, sm_100) each warp runs mma.sync and reads it through ldmatrix.
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define ATT_WGMMA 1
#endif

// byte offset of 16-byte chunk c of row r of a swizzled tile
__device__ __forceinline__ int att_swz(int r, int c) { return r * 128 + ((c ^ (r % 8)) << 4); }

__device__ __forceinline__ void ldsm_x4(uint32_t* r, uint32_t a) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
}

__device__ __forceinline__ void att_zero(float c[8][4]) {
    for (int i = 0; i < 8; i++) { for (int e = 0; e < 4; e++) { c[i][e] = 0.0f; } }
}

// Starts copying rows [row0, row0+64) of a (T, 64) head slice with row stride ld into a swizzled
// tile without going through registers (cp.async); rows >= T are filled with 0.
// Complete with att_wait<n> (at most n copy groups left in flight) and att_tiles_ready.
// A thread copies chunk tid % 8 of rows tid / 8 + 16 j: those rows share r % 8, so their swizzled
// places are one offset 16 rows apart, and offsets in the slice (T * ld < 2^31) are 32-bit. The
// generic loop cost about 20 instructions a copy, a fifth of the backward kernels' instructions.
__device__ __forceinline__ void att_load_tile(floatX* s, const floatX* g, int row0, int T, long ld) {
    constexpr int STEP = ATT_THREADS / 8;   // rows a pass
    int r = threadIdx.x / 8, c = threadIdx.x % 8, ldi = (int)ld;
    uint32_t dst = (uint32_t)__cvta_generic_to_shared(s) + att_swz(r, c);
    int off = (row0 + r) * ldi + c * 8;
    int rows = T - row0 - r;   // rows of the slice from this thread's first
    for (int j = 0; j < ATT_TILE / STEP; j++) {
        int valid = j * STEP < rows;
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
                     :: "r"(dst + j * STEP * 128), "l"(g + (valid ? off + j * STEP * ldi : 0)), "r"(valid ? 16 : 0));
    }
}

__device__ __forceinline__ void att_commit(void) { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void att_wait(void) { asm volatile("cp.async.wait_group %0;\n" :: "n"(N)); }

// After att_wait: makes this thread's copies visible to wgmma's (async proxy) reads; then the
// block's barrier makes everyone's visible.
__device__ __forceinline__ void att_tiles_ready(void) {
#ifdef ATT_WGMMA
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
    __syncthreads();
}

// A fragments (16 rows x 64) of tile rows [row0, row0+16): f[kstep][4]
__device__ __forceinline__ void att_load_a(uint32_t f[4][4], const floatX* s, int row0, int lane) {
    uint32_t base = (uint32_t)__cvta_generic_to_shared(s);
    for (int ks = 0; ks < 4; ks++) {
        ldsm_x4(f[ks], base + att_swz(row0 + (lane % 8) + ((lane / 8) % 2) * 8, 2 * ks + lane / 16));
    }
}

#ifdef ATT_WGMMA
// wgmma descriptor of a swizzled tile's k-step at saddr: 8-row groups 1024 bytes apart (both
// for K-major operands, rows = m or n, and an N-major B, rows = k, whose 64 columns are one
// swizzle atom); the leading offset is unused at these shapes.
// Shared addresses are below 2^18, so the descriptor of saddr + off is this one plus off >> 4: a
// k-step's descriptor is one add.
__device__ __forceinline__ uint64_t att_desc(uint32_t saddr) {
    return (uint64_t)((saddr & 0x3FFFF) >> 4) | ((uint64_t)(1024 >> 4) << 16) | ((uint64_t)(1024 >> 4) << 32) |
           ((uint64_t)1 << 62);
}

#define ATT_ACC_OPERANDS(acc)                                                                                     \
    "+f"(acc[0][0]), "+f"(acc[0][1]), "+f"(acc[0][2]), "+f"(acc[0][3]), "+f"(acc[1][0]), "+f"(acc[1][1]),         \
    "+f"(acc[1][2]), "+f"(acc[1][3]), "+f"(acc[2][0]), "+f"(acc[2][1]), "+f"(acc[2][2]), "+f"(acc[2][3]),         \
    "+f"(acc[3][0]), "+f"(acc[3][1]), "+f"(acc[3][2]), "+f"(acc[3][3]), "+f"(acc[4][0]), "+f"(acc[4][1]),         \
    "+f"(acc[4][2]), "+f"(acc[4][3]), "+f"(acc[5][0]), "+f"(acc[5][1]), "+f"(acc[5][2]), "+f"(acc[5][3]),         \
    "+f"(acc[6][0]), "+f"(acc[6][1]), "+f"(acc[6][2]), "+f"(acc[6][3]), "+f"(acc[7][0]), "+f"(acc[7][1]),         \
    "+f"(acc[7][2]), "+f"(acc[7][3])
#define ATT_ACC_REGS "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}"

// acc (the warpgroup's 64 x 64, this thread's 32 in the C layout) (+)= A (64 x 16, K-major) @ B
// (16 x 64, stored as (n, k) rows) at descriptors da, db, async
__device__ __forceinline__ void att_wgmma_ss(float acc[8][4], uint64_t da, uint64_t db, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " ATT_ACC_REGS ", %32, %33, p, 1, 1, 0, 0;\n}\n"
                 : ATT_ACC_OPERANDS(acc) : "l"(da), "l"(db), "r"(accumulate));
}

// acc += a (this warp's 16 rows x 16 of the warpgroup's 64, in registers) @ B (16 x 64, stored
// as (k, n) rows) at descriptor db, async
__device__ __forceinline__ void att_wgmma_rs(float acc[8][4], const uint32_t a[4], uint64_t db) {
    asm volatile("wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " ATT_ACC_REGS ", {%32,%33,%34,%35}, %36, 1, 1, 1, 1;\n"
                 : ATT_ACC_OPERANDS(acc) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));
}

__device__ __forceinline__ void att_wgmma_begin(void) { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void att_wgmma_commit(void) { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
#else
// c (16x8) += a (16x16) @ b (16x8)
__device__ __forceinline__ void mma_bf16_16816(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldsm_x4_trans(uint32_t* r, uint32_t a) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}
#endif

// Products. On Hopper they are issued asynchronously, so that two independent ones run back
// to back: att_mma_wait(acc) completes every product issued so far and makes acc readable
// (call it for each accumulator read next). Elsewhere they complete at once.
//
// acc (16 x 64 per warp) = A @ B^T, tiles A (64 m, 64 k) and B (64 n, 64 k); a warp's rows are
// 16 * warp.. of A. Both operands from shared memory: A fragments held in registers across a
// loop's iterations met a ptxas (CUDA 13.0) register-allocation fault with wgmma (their
// registers were reused after the first product), so the kept tiles stay in shared memory.
__device__ __forceinline__ void att_mma_abt(float acc[8][4], const floatX* sa, const floatX* sb, int lane) {
    uint32_t ba = (uint32_t)__cvta_generic_to_shared(sa), bb = (uint32_t)__cvta_generic_to_shared(sb);
#ifdef ATT_WGMMA
    att_wgmma_begin();
    for (int ks = 0; ks < 4; ks++) {   // a k-step: 16 columns, 32 bytes into every row
        att_wgmma_ss(acc, att_desc(ba) + 2 * ks, att_desc(bb) + 2 * ks, ks > 0);
    }
    att_wgmma_commit();
#else
    uint32_t a[4][4];
    att_load_a(a, sa, (threadIdx.x / WARP_SIZE) * 16, lane);
    att_zero(acc);
    for (int ks = 0; ks < 4; ks++) {
        for (int np = 0; np < 4; np++) {
            uint32_t b[4];
            ldsm_x4(b, bb + att_swz(np * 16 + (lane % 8) + (lane / 16) * 8, 2 * ks + (lane / 8) % 2));
            mma_bf16_16816(acc[2 * np], a[ks], b[0], b[1]);
            mma_bf16_16816(acc[2 * np + 1], a[ks], b[2], b[3]);
        }
    }
#endif
}

// acc (16 x 64 per warp) += p (16 x 64, registers) @ S, where tile S is (64 k, 64 n); p must
// stay unchanged until att_mma_wait
__device__ __forceinline__ void att_mma_ab(float acc[8][4], const uint32_t p[4][4], const floatX* s, int lane) {
    uint32_t base = (uint32_t)__cvta_generic_to_shared(s);
#ifdef ATT_WGMMA
    att_wgmma_begin();
    for (int ks = 0; ks < 4; ks++) { att_wgmma_rs(acc, p[ks], att_desc(base) + 128 * ks); }   // 16 rows (2048 bytes) a k-step
    att_wgmma_commit();
#else
    for (int ks = 0; ks < 4; ks++) {
        for (int np = 0; np < 4; np++) {
            uint32_t b[4];
            ldsm_x4_trans(b, base + att_swz(ks * 16 + (lane % 8) + ((lane / 8) % 2) * 8, 2 * np + lane / 16));
            mma_bf16_16816(acc[2 * np], p[ks], b[0], b[1]);
            mma_bf16_16816(acc[2 * np + 1], p[ks], b[2], b[3]);
        }
    }
#endif
}

__device__ __forceinline__ void att_mma_wait(float acc[8][4]) {
#ifdef ATT_WGMMA
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
    for (int i = 0; i < 8; i++) {
        for (int e = 0; e < 4; e++) { asm volatile("" : "+f"(acc[i][e]) :: "memory"); }
    }
#endif
}

// C fragments of a 16 x 64 product -> BF16 A fragments for the next product over those 64 columns.
__device__ __forceinline__ void att_c_to_a(uint32_t a[4][4], const float c[8][4]) {
    for (int j = 0; j < 4; j++) {
        a[j][0] = pack_bf16x2(c[2 * j][0], c[2 * j][1]);
        a[j][1] = pack_bf16x2(c[2 * j][2], c[2 * j][3]);
        a[j][2] = pack_bf16x2(c[2 * j + 1][0], c[2 * j + 1][1]);
        a[j][3] = pack_bf16x2(c[2 * j + 1][2], c[2 * j + 1][3]);
    }
}

// Writes a warp's 16 x 64 accumulator times `scale` to rows [row0, row0+16) of a (T, 64) slice.
__device__ __forceinline__ void att_store_rows(floatX* g, long ld, int row0, int T, const float c[8][4], float scale, int lane) {
    for (int nt = 0; nt < 8; nt++) {
        for (int half = 0; half < 2; half++) {
            int r = row0 + lane / 4 + half * 8;
            if (r < T) {
                __nv_bfloat162 v = __floats2bfloat162_rn(c[nt][2 * half] * scale, c[nt][2 * half + 1] * scale);
                *reinterpret_cast<__nv_bfloat162*>(g + (long)r * ld + nt * 8 + (lane % 4) * 2) = v;
            }
        }
    }
}

// 2^x by ex2.approx.ftz: exp2f adds a fix-up for subnormal results (3 instructions a value);
// probabilities below 2^-126 of the row's largest become 0 instead
__device__ __forceinline__ float att_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// One key tile of the forward's online softmax for a warp's 16 query rows (row[2]: the two rows
// this lane holds): s (16 x 64 scores of keys key0..) becomes the probabilities relative to the
// running row max m (log2 units: scores times sl2 > 0), whose change rescales the row sums l
// and the output accumulator o. With `masked`, keys after the row or at/after T get probability
// 0. The max is taken over the raw scores, and the scale and shift are one FMA.
__device__ __forceinline__ void att_online_softmax(float s[8][4], float m[2], float l[2], float o[8][4], int masked,
                                                   const int row[2], int key0, int T, float sl2, int lane) {
    float mx[2] = {-INFINITY, -INFINITY};
    for (int nt = 0; nt < 8; nt++) {
        for (int e = 0; e < 4; e++) {
            int key = key0 + nt * 8 + (lane % 4) * 2 + (e % 2);
            if (masked && (key > row[e / 2] || key >= T)) { s[nt][e] = -INFINITY; }
            mx[e / 2] = fmaxf(mx[e / 2], s[nt][e]);
        }
    }
    float corr[2];
    for (int i = 0; i < 2; i++) {   // the 4 lanes of a quad share a row
        mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
        mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
        float mn = fmaxf(m[i], mx[i] * sl2);
        corr[i] = att_exp2(m[i] - mn);   // 0 on the first tile (m = -inf); key 0 is never masked, so mn is finite
        m[i] = mn;
    }
    // the rescale is exact; skipped when no row of the warp has a new max (most tiles after the first)
    if (__any_sync(0xffffffffu, corr[0] != 1.0f || corr[1] != 1.0f)) {
        for (int i = 0; i < 2; i++) { l[i] *= corr[i]; }
        for (int nt = 0; nt < 8; nt++) {
            for (int e = 0; e < 4; e++) { o[nt][e] *= corr[e / 2]; }
        }
    }
    for (int nt = 0; nt < 8; nt++) {
        for (int e = 0; e < 4; e++) {
            float p = att_exp2(fmaf(s[nt][e], sl2, -m[e / 2]));
            s[nt][e] = p;
            l[e / 2] += p;
        }
    }
}

// The end of a forward: row sums over the quad's lanes, the output normalised by them (times
// o_scale, which undoes operand scales) written to rows row0.. of out (row stride ld), and each
// row's log-sum-exp (natural log) of the scaled scores to lse (T).
__device__ __forceinline__ void att_finish_rows(floatX* out, float* lse, float o[8][4], const float m[2], float l[2],
                                                const int row[2], int row0, int T, long ld, float o_scale, int lane) {
    for (int i = 0; i < 2; i++) {
        l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
        l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
    }
    for (int nt = 0; nt < 8; nt++) {
        for (int e = 0; e < 4; e++) { o[nt][e] = o[nt][e] / l[e / 2] * o_scale; }
    }
    att_store_rows(out, ld, row0, T, o, 1.0f, lane);
    if (lane % 4 == 0) {
        for (int i = 0; i < 2; i++) {
            if (row[i] < T) { lse[row[i]] = (m[i] + log2f(l[i])) / ATT_LOG2E; }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Backward steps shared by both kernels.

// Probabilities of a warp's 16 x 64 block of scores s (rows row0.., columns col0..): p = exp2(s * sl2 - lse2),
// lse2 the row's (queries as rows: lse2_rows, this lane's 2) or the column's (keys as rows:
// lse2_cols, the tile's 64) log-sum-exp in log2 units. With
// `masked`, entries above the causal diagonal or beyond T get 0; blocks wholly inside skip the test.
__device__ __forceinline__ void att_probs(float s[8][4], float sl2, const float lse2_rows[2], const float* lse2_cols,
                                          int row0, int col0, int rows_are_queries, int masked, int T, int lane) {
    for (int nt = 0; nt < 8; nt++) {
        for (int e = 0; e < 4; e++) {
            int r = row0 + lane / 4 + (e / 2) * 8;
            int c = col0 + nt * 8 + (lane % 4) * 2 + (e % 2);
            float l2 = rows_are_queries ? lse2_rows[e / 2] : lse2_cols[c - col0];
            float p = att_exp2(fmaf(s[nt][e], sl2, -l2));
            if (masked) {
                int query = rows_are_queries ? r : c, key = rows_are_queries ? c : r;
                p = (key > query || key >= T || query >= T) ? 0.0f : p;
            }
            s[nt][e] = p;
        }
    }
}

// dS = P (dP * dp_scale - delta) in place of a warp's 16 x 64 block dP, delta per column (keys as
// rows: delta_cols, the tile's 64) or per row (queries as rows: delta_rows, this lane's 2). Returns
// max |dS| as float bits (NaN above inf), the amax an FP8 cast of dS needs.
__device__ __forceinline__ uint32_t att_ds(float dp[8][4], const float p[8][4], float dp_scale, const float* delta_cols,
                                           const float delta_rows[2], int lane) {
    uint32_t amax = 0u;
    for (int nt = 0; nt < 8; nt++) {
        for (int e = 0; e < 4; e++) {
            float d = delta_cols != NULL ? delta_cols[nt * 8 + (lane % 4) * 2 + (e % 2)] : delta_rows[e / 2];
            float ds = p[nt][e] * (dp[nt][e] * dp_scale - d);
            amax = max(amax, __float_as_uint(fabsf(ds)));
            dp[nt][e] = ds;
        }
    }
    return amax;
}

// Starts copying rows [row0, row0+64) of two (T) float vectors, lse and delta, into smem (cp.async,
// a value a thread), 0 beyond T; they complete with the tiles copied with them, and then
// att_lse_to_log2 scales the lse.
__device__ __forceinline__ void att_load_row_stats(float* slse, float* sdelta, const float* lse, const float* delta,
                                                   int row0, int T) {
    int i = threadIdx.x % ATT_TILE, r = row0 + i, valid = r < T;
    float* dst = threadIdx.x < ATT_TILE ? slse + i : sdelta + i;
    const float* src = (threadIdx.x < ATT_TILE ? lse : delta) + (valid ? r : 0);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n"
                 :: "r"((uint32_t)__cvta_generic_to_shared(dst)), "l"(src), "r"(valid ? 4 : 0));
}

// After att_wait, before att_tiles_ready: the lse a thread copied, into log2 units.
__device__ __forceinline__ void att_lse_to_log2(float* slse) {
    if (threadIdx.x < ATT_TILE) { slse[threadIdx.x] *= ATT_LOG2E; }
}

// The block's max of `bits` (|x| as float bits: NaN above inf, like the casts' amax) raised into *amax
__device__ __forceinline__ void att_commit_amax(uint32_t bits, float* amax) {
    __shared__ uint32_t part[ATT_THREADS / WARP_SIZE];
    bits = __reduce_max_sync(0xffffffffu, bits);
    if (threadIdx.x % WARP_SIZE == 0) { part[threadIdx.x / WARP_SIZE] = bits; }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < ATT_THREADS / WARP_SIZE; w++) { bits = max(bits, part[w]); }
        atomicMax(reinterpret_cast<unsigned int*>(amax), bits);
    }
}

// What the backward also writes for the QKV linear's backward, which then reads dqkv (B*T, 3C)
// no more (members NULL: not written):
//   colsum (B * ceil(T/64), 3C): per 64-row tile of a batch row, the column sums of dqkv's BF16
//     values (the bias gradient's partials; the same numbers as summing dqkv, in another order);
//   q8 (B*T, 3C) and q8t (3C, B*T): dqkv's BF16 values times *scale in E4M3 or E5M2 (e5m2),
//     rounded and saturated as llmc/fp8_cast.cuh's casts do, and *amax raised to their max |x|;
//     then dqkv itself is not written (T a multiple of 64).
typedef struct {
    float* colsum;
    uint8_t *q8, *q8t;
    const float* scale;
    float* amax;
    int e5m2;
} AttGradOut;

// Writes a 64-row tile's gradient (warp w: rows row0 = tile0 + 16 w .. +16 of its accumulator c
// times `scale`) at column col0 of dqkv (B*T rows from tok0 = b*T, 3C = C3 columns), and what go
// asks for; chunk: the tile's colsum row. All threads of the block call it; it reuses `smem`
// (>= 2 * 64 * 80 + 4 * 64 * 4 bytes), free after the kernel's last __syncthreads.
__device__ __forceinline__ void att_store_grad(floatX* dqkv, const AttGradOut& go, long tok0, int col0, int C3, int tile0,
                                            int T, const float c[8][4], float scale, uint8_t* smem, long chunk, long NT) {
    int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
    constexpr int LD = 80;                                                   // staged tiles' row stride
    uint8_t* rows8 = smem;                                                   // [64 rows][LD]
    uint8_t* cols8 = smem + 64 * LD;                                         // [64 cols][LD]
    float(*wsum)[ATT_TILE] = reinterpret_cast<float(*)[ATT_TILE]>(smem + 2 * 64 * LD);   // [4 warps][64]
    if (go.q8 == NULL) { att_store_rows(dqkv + tok0 * C3 + col0, C3, tile0 + warp * 16, T, c, scale, lane); }
    float qs = go.q8 != NULL ? *go.scale : 0.0f;
    uint32_t amax16 = 0u;
    float sum[8][2];
    for (int nt = 0; nt < 8; nt++) {
        sum[nt][0] = sum[nt][1] = 0.0f;
        for (int half = 0; half < 2; half++) {
            int rl = warp * 16 + lane / 4 + half * 8, r = tile0 + rl, cl = nt * 8 + (lane % 4) * 2;
            __nv_bfloat162 v = __floats2bfloat162_rn(c[nt][2 * half] * scale, c[nt][2 * half + 1] * scale);
            if (r >= T) { continue; }
            if (go.q8 != NULL) {
                float2 f = make_float2(__low2float(v) * qs, __high2float(v) * qs);
                __nv_fp8x2_storage_t q = __nv_cvt_float2_to_fp8x2(f, __NV_SATFINITE, go.e5m2 ? __NV_E5M2 : __NV_E4M3);
                rows8[rl * LD + cl] = (uint8_t)(q & 0xFF);
                rows8[rl * LD + cl + 1] = (uint8_t)(q >> 8);
                cols8[cl * LD + rl] = (uint8_t)(q & 0xFF);
                cols8[(cl + 1) * LD + rl] = (uint8_t)(q >> 8);
                amax16 = max(amax16, max(__bfloat16_as_ushort(__low2bfloat16(v)) & 0x7FFFu, __bfloat16_as_ushort(__high2bfloat16(v)) & 0x7FFFu));
            }
            sum[nt][0] += __low2float(v);
            sum[nt][1] += __high2float(v);
        }
    }
    if (go.colsum != NULL) {   // the warp's 16 rows, then the 4 warps in order: a fixed order
        for (int nt = 0; nt < 8; nt++) {
            for (int e = 0; e < 2; e++) {
                float x = sum[nt][e];
                x += __shfl_xor_sync(0xffffffffu, x, 4);
                x += __shfl_xor_sync(0xffffffffu, x, 8);
                x += __shfl_xor_sync(0xffffffffu, x, 16);
                if (lane < 4) { wsum[warp][nt * 8 + lane * 2 + e] = x; }
            }
        }
    }
    __syncthreads();
    if (go.colsum != NULL && threadIdx.x < ATT_TILE) {
        int j = threadIdx.x;
        go.colsum[chunk * C3 + col0 + j] = ((wsum[0][j] + wsum[1][j]) + wsum[2][j]) + wsum[3][j];
    }
    if (go.q8 != NULL) {   // 64 rows and 64 columns of 64 codes, 16 bytes a store
        for (int i = threadIdx.x; i < 2 * 64 * 4; i += ATT_THREADS) {
            int t = i / 256, r = (i / 4) % 64, j = (i % 4) * 16;
            if (t == 0) { *reinterpret_cast<uint4*>(go.q8 + (tok0 + tile0 + r) * C3 + col0 + j) = *reinterpret_cast<const uint4*>(rows8 + r * LD + j); }
            else { *reinterpret_cast<uint4*>(go.q8t + (long)(col0 + r) * NT + tok0 + tile0 + j) = *reinterpret_cast<const uint4*>(cols8 + r * LD + j); }
        }
        att_commit_amax(amax16 << 16, go.amax);
    }
    __syncthreads();   // smem is reused by the next call
}

// ---------------------------------------------------------------------------------------
// Operand sets. The kernels below are written once over an operand set `Ops`, which says where
// the tiles come from and how products multiply them: AttBf16 here (BF16 read in place from the
// QKV output), AttFp8<G> in llmc/attention_fp8.cuh (FP8 copies made by its casts). Ops gives:
//   TILE_BYTES            one 64 x 64 operand tile in shared memory
//   SEPARATE_T            products acc += A @ tile read a transposed copy (an FP8 operand must be
//                         K-major); BF16 reads the row tile itself, transposed by the tensor core
//   QUANTIZED             the kernels record dS's amax
//   Args                  kernel argument: the sources and the device scales (sc)
//   View view(args, b, h, T, NH), view.load(tile, operand, t): starts copying tile t of an
//                         AttOperand of head (b, h) into shared memory (cp.async)
//   abt<FA, FB>(acc, sa, sb, lane)   acc (16 x 64 per warp) = A @ B^T, tiles A (64 m, 64 k), B (64 n, 64 k)
//   ab<FA, FB>(acc, frag, s, lane)   acc += frag @ tile s (the row tile, or its transposed copy)
//   to_frag<F>(frag, acc, scale)     an accumulator times scale -> A fragments of the next product
//   scales(sm_scale, sc)             the AttScales that undo operand scales
// FA, FB say each operand's role: X = Q, K, V, P (E4M3 under FP8), G = dO, dS (the gradient format).
typedef enum { ATT_Q, ATT_K, ATT_V, ATT_DO, ATT_QT, ATT_KT, ATT_VT, ATT_DOT } AttOperand;
typedef enum { ATT_X, ATT_G } AttRole;

typedef struct {
    float sl2;                 // scores -> log2 units: softmax scale * log2(e) / (Q, K scales)
    float p, ds;               // P and dS are cast times these
    float o, dp, dq, dk, dv;   // what O, dP, dQ, dK, dV are multiplied by on the way out
} AttScales;

struct AttBf16 {
    static constexpr int TILE_BYTES = ATT_TILE * ATT_HS * (int)sizeof(floatX);
    static constexpr bool SEPARATE_T = false;
    static constexpr bool QUANTIZED = false;
    struct Frag { uint32_t r[4][4]; };
    struct Args { const floatX* qkv; const floatX* dout; const float* sc; };   // qkv (B,T,3C), dout (B,T,C); sc unused
    struct View {
        const floatX* src[4];   // Q, K, V, dO of the head: rows of time
        long ld[4];
        int T;
        __device__ __forceinline__ void load(uint8_t* tile, int op, int t) const {
            att_load_tile(reinterpret_cast<floatX*>(tile), src[op], t * ATT_TILE, T, ld[op]);
        }
    };
    static __device__ __forceinline__ View view(const Args& a, int b, int h, int T, int NH) {
        int C = NH * ATT_HS;
        const floatX* q = a.qkv + (long)b * T * 3 * C + h * ATT_HS;
        View v = {{q, q + C, q + 2 * C, a.dout + (long)b * T * C + h * ATT_HS}, {3L * C, 3L * C, 3L * C, C}, T};
        return v;
    }
    template <AttRole FA, AttRole FB>
    static __device__ __forceinline__ void abt(float acc[8][4], const uint8_t* sa, const uint8_t* sb, int lane) {
        att_mma_abt(acc, reinterpret_cast<const floatX*>(sa), reinterpret_cast<const floatX*>(sb), lane);
    }
    template <AttRole FA, AttRole FB>
    static __device__ __forceinline__ void ab(float acc[8][4], const Frag& a, const uint8_t* s, int lane) {
        att_mma_ab(acc, a.r, reinterpret_cast<const floatX*>(s), lane);
    }
    template <AttRole F>
    static __device__ __forceinline__ void to_frag(Frag& a, const float c[8][4], float scale) { att_c_to_a(a.r, c); }
    static __device__ __forceinline__ AttScales scales(float sm_scale, const float* sc) {
        AttScales s = {sm_scale * ATT_LOG2E, 1.0f, 1.0f, 1.0f, 1.0f, sm_scale, sm_scale, 1.0f};
        return s;
    }
};

// The backward kernels' double buffering, one barrier a tile: att_wait<0> and att_tiles_ready
// make the current tile visible, and every warp is then done with the other buffer, where this
// starts copying tile t of operands ops[0..n) (into tiles[0..n)).
template <class View>
__device__ __forceinline__ void att_load_tiles(const View& v, uint8_t* const* tiles, const int* ops, int n, int t) {
    for (int i = 0; i < n; i++) { v.load(tiles[i], ops[i], t); }
    att_commit();
}

// ---------------------------------------------------------------------------------------
// Forward. grid (T/64 query tiles, NH, B), longest (last) query tiles first.
// out (B,T,C); lse (B,NH,T) natural-log sum of exp of the scaled scores of each row.
//   S = Q K^T;  online softmax;  O += P V
template <class Ops>
__global__ void __launch_bounds__(ATT_THREADS) attention_forward_kernel(floatX* out, float* lse, typename Ops::Args args,
                                                                        int T, int NH, float sm_scale) {
    // Q tile, and K and V tiles double-buffered: the next tile loads while this one computes
    constexpr int TB = Ops::TILE_BYTES;
    __shared__ __align__(1024) uint8_t smem[5 * TB];
    uint8_t* sq = smem;
    auto sk = [&](int buf) { return smem + (1 + buf) * TB; };
    auto sv = [&](int buf) { return smem + (3 + buf) * TB; };
    int qt = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
    int C = NH * ATT_HS;
    const int v_op = Ops::SEPARATE_T ? ATT_VT : ATT_V;
    typename Ops::View v = Ops::view(args, b, h, T, NH);
    v.load(sq, ATT_Q, qt);
    v.load(sk(0), ATT_K, 0);
    v.load(sv(0), v_op, 0);
    att_commit();
    if (qt > 0) {
        v.load(sk(1), ATT_K, 1);
        v.load(sv(1), v_op, 1);
    }
    att_commit();
    AttScales sc = Ops::scales(sm_scale, args.sc);
    float o[8][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}, s[8][4];
    att_zero(o);
    int row[2] = {qt * ATT_TILE + warp * 16 + lane / 4, qt * ATT_TILE + warp * 16 + lane / 4 + 8};
    att_wait<1>();
    att_tiles_ready();
    Ops::template abt<ATT_X, ATT_X>(s, sq, sk(0), lane);
    att_mma_wait(s);
    // tile kt: softmax of its scores s, then O += P V issued together with the next tile's scores
    for (int kt = 0; kt <= qt; kt++) {
        int buf = kt % 2;
        // only the diagonal tile and the tile holding T need masks
        att_online_softmax(s, m, l, o, kt == qt || (kt + 1) * ATT_TILE > T, row, kt * ATT_TILE, T, sc.sl2, lane);
        typename Ops::Frag pf;
        Ops::template to_frag<ATT_X>(pf, s, sc.p);
        Ops::template ab<ATT_X, ATT_X>(o, pf, sv(buf), lane);
        if (kt < qt) {
            att_wait<0>();   // tile kt + 1
            att_tiles_ready();
            Ops::template abt<ATT_X, ATT_X>(s, sq, sk(buf ^ 1), lane);
        }
        att_mma_wait(o);
        att_mma_wait(s);
        __syncthreads();   // every warp is done with this buffer: tile kt + 2 goes there
        if (kt + 2 <= qt) {
            v.load(sk(buf), ATT_K, kt + 2);
            v.load(sv(buf), v_op, kt + 2);
            att_commit();
        }
    }
    att_finish_rows(out + (long)b * T * C + h * ATT_HS, lse + ((long)b * NH + h) * T, o, m, l, row, qt * ATT_TILE + warp * 16,
                    T, C, sc.o, lane);
}

// ---------------------------------------------------------------------------------------
// Backward. Shared memory (dynamic: BF16's is past the 48 KB of static memory): two kept tiles,
// two buffers of up to four double-buffered ones, the double-buffered row statistics, and room
// to align the tiles.
template <class Ops>
constexpr int att_bwd_smem(void) {
    return (2 + 2 * (Ops::SEPARATE_T ? 4 : 2)) * Ops::TILE_BYTES + 4 * ATT_TILE * (int)sizeof(float) + 1024;
}

// the tiles of dynamic shared memory, from its first 1024-byte boundary
__device__ __forceinline__ uint8_t* att_bwd_tiles(void) {
    extern __shared__ uint8_t att_smem_raw[];
    uint32_t raw = (uint32_t)__cvta_generic_to_shared(att_smem_raw);
    return att_smem_raw + (((raw + 1023) & ~1023u) - raw);
}

// dK, dV of one key tile: grid (T/64 key tiles, NH, B). Each warp owns 16 keys and walks
// the query tiles at or after its key tile (the next one loading while this one computes).
// Under QUANTIZED, dS^T's amax is raised into amax (NULL: not recorded).
//   P^T = exp(K Q^T * scale - lse);  dV += P^T dO;  dP^T = V dO^T;  dS^T = P^T (dP^T - delta);  dK += dS^T Q * scale
// Three blocks an SM (at most 168 registers): unbounded, pairing the products took 196 registers
// and two blocks and was 15% slower than one product at a time; bounded, it is 2% faster.
template <class Ops>
__global__ void __launch_bounds__(ATT_THREADS, 3) attention_backward_dkdv_kernel(floatX* dqkv, typename Ops::Args args,
                                                                              const float* lse, const float* delta, int T,
                                                                              int NH, float sm_scale, float* amax, AttGradOut go) {
    // tiles: K and V (64 keys, 64) kept; then per buffer Q, dO (64 queries, 64) and, when
    // SEPARATE_T, their transposed copies
    constexpr int TB = Ops::TILE_BYTES, PER = Ops::SEPARATE_T ? 4 : 2;
    uint8_t* sk = att_bwd_tiles();
    uint8_t* sv = sk + TB;
    auto tile = [&](int buf, int i) { return sk + (2 + PER * buf + i) * TB; };
    // what a product acc += A @ tile reads of tile i: its transposed copy (i + 2) or the tile itself
    auto tcopy = [&](int buf, int i) { return tile(buf, Ops::SEPARATE_T ? i + 2 : i); };
    float (*slse)[ATT_TILE] = reinterpret_cast<float (*)[ATT_TILE]>(sk + (2 + 2 * PER) * TB);   // [2][64]
    float (*sdelta)[ATT_TILE] = slse + 2;                                                      // [2][64]
    const int ops[4] = {ATT_Q, ATT_DO, ATT_QT, ATT_DOT};
    int kt = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
    int C = NH * ATT_HS, ntiles = gridDim.x;
    const float* lse_bh = lse + ((long)b * NH + h) * T;
    const float* delta_bh = delta + ((long)b * NH + h) * T;
    typename Ops::View v = Ops::view(args, b, h, T, NH);
    v.load(sk, ATT_K, kt);
    v.load(sv, ATT_V, kt);
    att_load_row_stats(slse[0], sdelta[0], lse_bh, delta_bh, kt * ATT_TILE, T);
    uint8_t* first[4] = {tile(0, 0), tile(0, 1), tcopy(0, 0), tcopy(0, 1)};
    att_load_tiles(v, first, ops, PER, kt);
    AttScales sc = Ops::scales(sm_scale, args.sc);
    float dk[8][4], dv[8][4];
    att_zero(dk);
    att_zero(dv);
    uint32_t ds_max = 0u;
    int key0 = kt * ATT_TILE + warp * 16;
    for (int qt = kt; qt < ntiles; qt++) {
        int buf = (qt - kt) % 2;
        att_wait<0>();
        att_lse_to_log2(slse[buf]);
        att_tiles_ready();
        if (qt + 1 < ntiles) {
            att_load_row_stats(slse[buf ^ 1], sdelta[buf ^ 1], lse_bh, delta_bh, (qt + 1) * ATT_TILE, T);
            uint8_t* next[4] = {tile(buf ^ 1, 0), tile(buf ^ 1, 1), tcopy(buf ^ 1, 0), tcopy(buf ^ 1, 1)};
            att_load_tiles(v, next, ops, PER, qt + 1);
        }
        uint8_t *sq = tile(buf, 0), *sdo = tile(buf, 1), *sqt = tcopy(buf, 0), *sdot = tcopy(buf, 1);
        int masked = qt == kt || (qt + 1) * ATT_TILE > T;
        float p[8][4], dp[8][4];
        // the products in two pairs, each waited for once
        Ops::template abt<ATT_X, ATT_X>(p, sk, sq, lane);          // S^T (16 keys x 64 queries)
        Ops::template abt<ATT_X, ATT_G>(dp, sv, sdo, lane);         // dP^T = V dO^T
        att_mma_wait(p);
        att_mma_wait(dp);
        att_probs(p, sc.sl2, NULL, slse[buf], key0, qt * ATT_TILE, 0, masked, T, lane);
        uint32_t m = att_ds(dp, p, sc.dp, sdelta[buf], NULL, lane);   // dS^T = P^T (dP^T - delta)
        if (Ops::QUANTIZED) { ds_max = max(ds_max, m); }
        typename Ops::Frag pf, dsf;
        Ops::template to_frag<ATT_X>(pf, p, sc.p);
        Ops::template to_frag<ATT_G>(dsf, dp, sc.ds);
        Ops::template ab<ATT_X, ATT_G>(dv, pf, sdot, lane);         // dV += P^T dO
        Ops::template ab<ATT_G, ATT_X>(dk, dsf, sqt, lane);         // dK += dS^T Q
        att_mma_wait(dv);
        att_mma_wait(dk);
    }
    __syncthreads();   // every warp is done with the tiles: att_store_grad reuses them
    if (Ops::QUANTIZED && amax != NULL) { att_commit_amax(ds_max, amax); }
    long tok0 = (long)b * T, chunk = (long)b * ntiles + kt, NT = (long)gridDim.z * T;
    att_store_grad(dqkv, go, tok0, C + h * ATT_HS, 3 * C, kt * ATT_TILE, T, dk, sc.dk, sk, chunk, NT);
    att_store_grad(dqkv, go, tok0, 2 * C + h * ATT_HS, 3 * C, kt * ATT_TILE, T, dv, sc.dv, sk, chunk, NT);
}

// delta (B,NH,T) = rowsum(dO * O) per head, when the dQ kernel computes it (members NULL: it reads
// delta instead): dout and out (B,T,C) in BF16.
typedef struct {
    const floatX *dout, *out;
    float* delta;
} AttRowDelta;

// delta of a lane's two rows (row0 + lane/4 and + 8; 0 at or beyond T) of (T, 64) head slices of
// dO and O (row stride ld), written to delta (T). A quad's 4 lanes share a row, 16 channels each.
__device__ __forceinline__ void att_row_delta(float dl[2], float* delta, const floatX* dout, const floatX* out, long ld,
                                              int row0, int T, int lane) {
    for (int i = 0; i < 2; i++) {
        int r = row0 + lane / 4 + 8 * i;
        float s[2] = {0.0f, 0.0f};
        if (r < T) {
            for (int k = 0; k < 2; k++) {
                long at = (long)r * ld + (lane % 4) * 16 + k * 8;
                x8 d = load16(dout + at), o = load16(out + at);
                for (int e = 0; e < 8; e++) { s[k] += __bfloat162float(d.v[e]) * __bfloat162float(o.v[e]); }
            }
        }
        float x = s[0] + s[1];
        x += __shfl_xor_sync(0xffffffffu, x, 1);
        x += __shfl_xor_sync(0xffffffffu, x, 2);
        dl[i] = x;
        if (lane % 4 == 0 && r < T) { delta[r] = x; }
    }
}

// dQ of one query tile: grid (T/64 query tiles, NH, B). Each warp owns 16 queries:
//   P = exp(Q K^T * scale - lse);  dP = dO V^T;  dS = P (dP - delta);  dQ += dS K * scale
// MEASURE (an FP8 set's current scaling): no dQ, only dS's amax, raised into amax.
// With rd set, the kernel computes delta (a pass less; the dK/dV kernel then runs after it).
template <class Ops, bool MEASURE>
__global__ void __launch_bounds__(ATT_THREADS) attention_backward_dq_kernel(floatX* dqkv, typename Ops::Args args,
                                                                            const float* lse, const float* delta, int T,
                                                                            int NH, float sm_scale, float* amax, AttGradOut go,
                                                                            AttRowDelta rd) {
    // tiles: Q and dO (64 queries, 64) kept; then per buffer K, V (64 keys, 64) and, when
    // SEPARATE_T, K's transposed copy
    constexpr int TB = Ops::TILE_BYTES, BUF = Ops::SEPARATE_T ? 4 : 2, PER = Ops::SEPARATE_T && !MEASURE ? 3 : 2;
    uint8_t* sq = att_bwd_tiles();
    uint8_t* sdo = sq + TB;
    auto tile = [&](int buf, int i) { return sq + (2 + BUF * buf + i) * TB; };
    auto tcopy = [&](int buf, int i) { return tile(buf, Ops::SEPARATE_T ? i + 2 : i); };   // as in dK/dV
    const int ops[3] = {ATT_K, ATT_V, ATT_KT};
    int qt = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
    int C = NH * ATT_HS;
    typename Ops::View v = Ops::view(args, b, h, T, NH);
    v.load(sq, ATT_Q, qt);
    v.load(sdo, ATT_DO, qt);
    uint8_t* first[3] = {tile(0, 0), tile(0, 1), tcopy(0, 0)};
    att_load_tiles(v, first, ops, PER, 0);
    int q0 = qt * ATT_TILE + warp * 16;
    float lse2[2], dl[2];
    long bh = (long)b * NH + h;
    for (int i = 0; i < 2; i++) {
        int r = q0 + lane / 4 + i * 8;
        lse2[i] = r < T ? lse[bh * T + r] * ATT_LOG2E : 0.0f;
        if (rd.delta == NULL) { dl[i] = r < T ? delta[bh * T + r] : 0.0f; }
    }
    if (rd.delta != NULL) {
        long off = (long)b * T * C + h * ATT_HS;
        att_row_delta(dl, rd.delta + bh * T, rd.dout + off, rd.out + off, C, q0, T, lane);
    }
    AttScales sc = Ops::scales(sm_scale, args.sc);
    float dq[8][4];
    att_zero(dq);
    uint32_t ds_max = 0u;
    for (int kt = 0; kt <= qt; kt++) {
        int buf = kt % 2;
        att_wait<0>();
        att_tiles_ready();
        if (kt < qt) {
            uint8_t* next[3] = {tile(buf ^ 1, 0), tile(buf ^ 1, 1), tcopy(buf ^ 1, 0)};
            att_load_tiles(v, next, ops, PER, kt + 1);
        }
        uint8_t *sk = tile(buf, 0), *sv = tile(buf, 1), *skt = tcopy(buf, 0);
        int masked = kt == qt || (qt + 1) * ATT_TILE > T;
        float p[8][4], dp[8][4];
        Ops::template abt<ATT_X, ATT_X>(p, sq, sk, lane);           // S (16 queries x 64 keys)
        Ops::template abt<ATT_G, ATT_X>(dp, sdo, sv, lane);         // dP = dO V^T
        att_mma_wait(p);
        att_mma_wait(dp);
        att_probs(p, sc.sl2, lse2, NULL, q0, kt * ATT_TILE, 1, masked, T, lane);
        uint32_t m = att_ds(dp, p, sc.dp, NULL, dl, lane);           // dS = P (dP - delta)
        if (MEASURE) {
            ds_max = max(ds_max, m);
        } else {
            typename Ops::Frag dsf;
            Ops::template to_frag<ATT_G>(dsf, dp, sc.ds);
            Ops::template ab<ATT_G, ATT_X>(dq, dsf, skt, lane);     // dQ += dS K
            att_mma_wait(dq);
        }
    }
    __syncthreads();   // as in dK/dV
    if (MEASURE) { att_commit_amax(ds_max, amax); }
    else {
        long tok0 = (long)b * T, chunk = (long)b * gridDim.x + qt, NT = (long)gridDim.z * T;
        att_store_grad(dqkv, go, tok0, h * ATT_HS, 3 * C, qt * ATT_TILE, T, dq, sc.dq, sq, chunk, NT);
    }
}

// Lets a backward kernel of `Ops` have its dynamic shared memory (once, at setup: the attribute
// is per device and function).
template <class Ops>
static inline void attention_allow_smem(void) {
    cudaCheck(cudaFuncSetAttribute(attention_backward_dkdv_kernel<Ops>, cudaFuncAttributeMaxDynamicSharedMemorySize, att_bwd_smem<Ops>()));
    cudaCheck(cudaFuncSetAttribute(attention_backward_dq_kernel<Ops, false>, cudaFuncAttributeMaxDynamicSharedMemorySize, att_bwd_smem<Ops>()));
    if constexpr (Ops::QUANTIZED) {
        cudaCheck(cudaFuncSetAttribute(attention_backward_dq_kernel<Ops, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, att_bwd_smem<Ops>()));
    }
}

// ---------------------------------------------------------------------------------------
// BF16 attention: kernels of AttBf16.

// Bytes of per-layer state attention keeps for backward: the log-sum-exp (B,NH,T).
static inline size_t attention_saved_bytes(int B, int T, int NH) { return (size_t)B * NH * T * sizeof(float); }
// Scratch shared by all layers: delta (B,NH,T).
static inline size_t attention_scratch_bytes(int B, int T, int NH) { return (size_t)B * NH * T * sizeof(float); }

// T: the longest sequence; the tile copies' offsets in a batch row of the QKV output are 32-bit
static inline void attention_check_shape(int C, int NH, int T) {
    if (C / NH != ATT_HS || C % NH != 0) { die("attention supports head size %d only (C=%d, NH=%d)", ATT_HS, C, NH); }
    if ((long)(T + ATT_TILE) * 3 * C > INT_MAX) { die("attention: T=%d with C=%d exceeds 32-bit offsets in a batch row", T, C); }
}

// Once per device, before the first attention_backward.
static inline void attention_init(void) { attention_allow_smem<AttBf16>(); }

// out (B,T,C) = causal attention of qkv (B,T,3C); saved: attention_saved_bytes of state for backward
// scale: the softmax's, 1/sqrt(ATT_HS) for GPT-2 (a fixed other one with --qk-norm)
static inline void attention_forward(floatX* out, void* saved, const floatX* qkv, int B, int T, int C, int NH, float scale,
                                     cudaStream_t s) {
    attention_check_shape(C, NH, T);
    dim3 grid(ceil_div(T, ATT_TILE), NH, B);
    AttBf16::Args args = {qkv, NULL, NULL};
    attention_forward_kernel<AttBf16><<<grid, ATT_THREADS, 0, s>>>(out, (float*)saved, args, T, NH, scale);
    cudaCheckLaunch();
}

// The rows of AttGradOut's colsum for (B, T)
static inline int attention_grad_chunks(int B, int T) { return B * ceil_div(T, ATT_TILE); }

static inline AttGradOut attention_grad_out_checked(const AttGradOut* go, int T) {
    AttGradOut none = {NULL, NULL, NULL, NULL, NULL, 0};
    if (go == NULL) { return none; }
    if (go->q8 != NULL && (T % ATT_TILE != 0 || go->q8t == NULL || go->scale == NULL || go->amax == NULL)) {
        die("internal: attention's FP8 gradient output needs T a multiple of %d and both copies, scale and amax", ATT_TILE);
    }
    return *go;
}

// dqkv (B,T,3C) = attention backward, given dout (B,T,C), the forward's out (B,T,C), qkv and saved
// state; go (NULL: none): what it also writes for the QKV linear (AttGradOut)
static inline void attention_backward(floatX* dqkv, void* scratch, const floatX* dout, const floatX* out, const floatX* qkv,
                                      const void* saved, int B, int T, int C, int NH, float scale, const AttGradOut* go,
                                      cudaStream_t s) {
    attention_check_shape(C, NH, T);
    AttGradOut g = attention_grad_out_checked(go, T);
    float* delta = (float*)scratch;
    const float* lse = (const float*)saved;
    dim3 grid(ceil_div(T, ATT_TILE), NH, B);
    AttBf16::Args args = {qkv, dout, NULL};
    constexpr int smem = att_bwd_smem<AttBf16>();
    AttRowDelta rd = {dout, out, delta};   // the dQ kernel computes delta; dK/dV reads it
    attention_backward_dq_kernel<AttBf16, false><<<grid, ATT_THREADS, smem, s>>>(dqkv, args, lse, delta, T, NH, scale, NULL, g, rd);
    cudaCheckLaunch();
    attention_backward_dkdv_kernel<AttBf16><<<grid, ATT_THREADS, smem, s>>>(dqkv, args, lse, delta, T, NH, scale, NULL, g);
    cudaCheckLaunch();
}

#endif // LLMC_ATTENTION_CUH
