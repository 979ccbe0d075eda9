// Causal multi-head attention, fused (flash-attention style): the T x T scores never
// reach global memory. Forward keeps only the per-row log-sum-exp; backward recomputes
// the probabilities from Q, K, V and it.
//
// Layout: Q, K, V are read in place from the QKV GEMM's output (B,T,3,NH,HS) and the
// output is written as (B,T,NH,HS) = (B,T,C), so no permute passes. Head size 64.
// Tensor cores through mma.sync m16n8k16 (BF16 in, FP32 accumulate); softmax statistics
// in FP32. Tiles of 64 queries x 64 keys; a block of 4 warps, each owning 16 rows.
//
// Backward is split in two kernels so every output element is written by exactly one
// thread (deterministic, no atomics): one per key tile (dK, dV), one per query tile (dQ).
#ifndef LLMC_ATTENTION_CUH
#define LLMC_ATTENTION_CUH

#include <math.h>
#include "cuda_common.h"

#define ATT_HS 64          // head size
#define ATT_TILE 64        // queries and keys per tile
#define ATT_LD 72          // shared-memory row stride in elements: the 16-byte pad avoids ldmatrix bank conflicts
#define ATT_THREADS 128    // 4 warps x 16 rows
#define ATT_LOG2E 1.4426950408889634f

// ---------------------------------------------------------------------------------------
// mma.sync helpers. Fragment layouts (PTX ISA, m16n8k16): for lane l, g = l/4, q = l%4,
// C/D element e of n-tile nt sits at row g + 8*(e/2), column 8*nt + 2q + (e%2).

__device__ __forceinline__ void ldsm_x4(uint32_t* r, const floatX* p) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}

__device__ __forceinline__ void ldsm_x4_trans(uint32_t* r, const floatX* p) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}

// c (16x8) += a (16x16) @ b (16x8)
__device__ __forceinline__ void mma_bf16_16816(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
}

// Starts copying rows [row0, row0+64) of a (T, 64) head slice with row stride ld into smem
// (64, ATT_LD) without going through registers (cp.async); rows >= T are filled with 0.
// Complete with att_wait<n> (at most n copy groups left in flight) and a barrier.
__device__ __forceinline__ void att_load_tile(floatX* s, const floatX* g, int row0, int T, long ld) {
    for (int i = threadIdx.x; i < ATT_TILE * 8; i += ATT_THREADS) {
        int r = i / 8, c = (i % 8) * 8;
        int valid = row0 + r < T;
        const floatX* src = valid ? g + (long)(row0 + r) * ld + c : g;
        uint32_t dst = (uint32_t)__cvta_generic_to_shared(s + r * ATT_LD + c);
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(dst), "l"(src), "r"(valid ? 16 : 0));
    }
}

__device__ __forceinline__ void att_commit(void) { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void att_wait(void) { asm volatile("cp.async.wait_group %0;\n" :: "n"(N)); }

// Double buffering: starts copying tile `next` of two (T, 64) slices a, b (row strides lda, ldb)
// into smem sa, sb when next <= last, then waits for the copies of the current tile. A barrier
// must follow before the current tile is read.
__device__ __forceinline__ void att_next_tiles(floatX* sa, floatX* sb, const floatX* a, const floatX* b,
                                               long lda, long ldb, int next, int last, int T) {
    if (next <= last) {
        att_load_tile(sa, a, next * ATT_TILE, T, lda);
        att_load_tile(sb, b, next * ATT_TILE, T, ldb);
        att_commit();
        att_wait<1>();
    } else {
        att_wait<0>();
    }
}

// A fragments (16 rows x 64) of smem rows [row0, row0+16): f[kstep][4]
__device__ __forceinline__ void att_load_a(uint32_t f[4][4], const floatX* s, int row0, int lane) {
    for (int ks = 0; ks < 4; ks++) {
        ldsm_x4(f[ks], s + (row0 + (lane % 8) + ((lane / 8) % 2) * 8) * ATT_LD + ks * 16 + (lane / 16) * 8);
    }
}

// acc (16 x 64, 8 n-tiles) += a (16 x 64) @ S^T, where smem S is (64 n, 64 k) row-major: "A @ S^T"
__device__ __forceinline__ void att_mma_abt(float acc[8][4], const uint32_t a[4][4], const floatX* s, int lane) {
    for (int ks = 0; ks < 4; ks++) {
        for (int np = 0; np < 4; np++) {
            uint32_t b[4];
            ldsm_x4(b, s + (np * 16 + (lane % 8) + (lane / 16) * 8) * ATT_LD + ks * 16 + ((lane / 8) % 2) * 8);
            mma_bf16_16816(acc[2 * np], a[ks], b[0], b[1]);
            mma_bf16_16816(acc[2 * np + 1], a[ks], b[2], b[3]);
        }
    }
}

// acc (16 x 64) += p (16 x 64 as A fragments) @ S, where smem S is (64 k, 64 n) row-major: "A @ S"
__device__ __forceinline__ void att_mma_ab(float acc[8][4], const uint32_t p[4][4], const floatX* s, int lane) {
    for (int ks = 0; ks < 4; ks++) {
        for (int np = 0; np < 4; np++) {
            uint32_t b[4];
            ldsm_x4_trans(b, s + (ks * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * ATT_LD + np * 16 + (lane / 16) * 8);
            mma_bf16_16816(acc[2 * np], p[ks], b[0], b[1]);
            mma_bf16_16816(acc[2 * np + 1], p[ks], b[2], b[3]);
        }
    }
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

__device__ __forceinline__ void att_zero(float c[8][4]) {
    for (int i = 0; i < 8; i++) { for (int e = 0; e < 4; e++) { c[i][e] = 0.0f; } }
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

// One key tile of the forward's online softmax for a warp's 16 query rows (row[2]: the two rows
// this lane holds): s (16 x 64 scores of keys key0..) becomes the probabilities relative to the
// running row max m (log2 units, scores times sl2), whose change rescales the row sums l and the
// output accumulator o. With `masked`, keys after the row or at/after T get probability 0.
__device__ __forceinline__ void att_online_softmax(float s[8][4], float m[2], float l[2], float o[8][4], int masked,
                                                   const int row[2], int key0, int T, float sl2, int lane) {
    float mx[2] = {-INFINITY, -INFINITY};
    for (int nt = 0; nt < 8; nt++) {
        for (int e = 0; e < 4; e++) {
            int key = key0 + nt * 8 + (lane % 4) * 2 + (e % 2);
            float x = (masked && (key > row[e / 2] || key >= T)) ? -INFINITY : s[nt][e] * sl2;
            s[nt][e] = x;
            mx[e / 2] = fmaxf(mx[e / 2], x);
        }
    }
    float corr[2];
    for (int i = 0; i < 2; i++) {   // the 4 lanes of a quad share a row
        mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
        mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
        float mn = fmaxf(m[i], mx[i]);
        corr[i] = exp2f(m[i] - mn);   // 0 on the first tile (m = -inf); key 0 is never masked, so mn is finite
        m[i] = mn;
        l[i] *= corr[i];
    }
    for (int nt = 0; nt < 8; nt++) {
        for (int e = 0; e < 4; e++) {
            float p = exp2f(s[nt][e] - m[e / 2]);
            s[nt][e] = p;
            l[e / 2] += p;
            o[nt][e] *= corr[e / 2];
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
// Forward. grid (T/64 query tiles, NH, B), longest (last) query tiles first.
// out (B,T,C); lse (B,NH,T) natural-log sum of exp of the scaled scores of each row.
__global__ void __launch_bounds__(ATT_THREADS) attention_forward_kernel(floatX* out, float* lse, const floatX* qkv,
                                                                        int T, int NH, float scale) {
    // Q tile, and K and V tiles double-buffered: the next tile loads while this one computes
    __shared__ alignas(16) floatX sq[ATT_TILE * ATT_LD], sk[2][ATT_TILE * ATT_LD], sv[2][ATT_TILE * ATT_LD];
    int qt = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
    int C = NH * ATT_HS;
    long ld = 3L * C;
    const floatX* q = qkv + (long)b * T * ld + h * ATT_HS;
    const floatX* k = q + C;
    const floatX* v = q + 2 * C;
    att_load_tile(sq, q, qt * ATT_TILE, T, ld);
    att_load_tile(sk[0], k, 0, T, ld);
    att_load_tile(sv[0], v, 0, T, ld);
    att_commit();
    uint32_t qf[4][4];
    float o[8][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    att_zero(o);
    float sl2 = scale * ATT_LOG2E;   // scores in log2 units, so exp2 does the softmax
    int row[2] = {qt * ATT_TILE + warp * 16 + lane / 4, qt * ATT_TILE + warp * 16 + lane / 4 + 8};
    for (int kt = 0; kt <= qt; kt++) {
        int buf = kt % 2;
        att_next_tiles(sk[buf ^ 1], sv[buf ^ 1], k, v, ld, ld, kt + 1, qt, T);
        __syncthreads();
        if (kt == 0) { att_load_a(qf, sq, warp * 16, lane); }
        float s[8][4];
        att_zero(s);
        att_mma_abt(s, qf, sk[buf], lane);
        // only the diagonal tile and the tile holding T need masks
        att_online_softmax(s, m, l, o, kt == qt || (kt + 1) * ATT_TILE > T, row, kt * ATT_TILE, T, sl2, lane);
        uint32_t pf[4][4];
        att_c_to_a(pf, s);
        att_mma_ab(o, pf, sv[buf], lane);
        __syncthreads();   // this buffer is refilled two tiles from now
    }
    att_finish_rows(out + (long)b * T * C + h * ATT_HS, lse + ((long)b * NH + h) * T, o, m, l, row, qt * ATT_TILE + warp * 16,
                    T, C, 1.0f, lane);
}

// ---------------------------------------------------------------------------------------
// Backward, step 0: delta (B,NH,T) = rowsum(dout * out) per head; one thread per 8 channels.
__global__ void attention_delta_kernel(float* delta, const floatX* dout, const floatX* out, int B, int T, int NH) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;   // (b, t, h, chunk of 8)
    if (i >= (long)B * T * NH * 8) { return; }
    x8 d = load16(dout + i * 8), o = load16(out + i * 8);
    float s = 0.0f;
    for (int e = 0; e < 8; e++) { s += __bfloat162float(d.v[e]) * __bfloat162float(o.v[e]); }
    s += __shfl_xor_sync(0xffffffffu, s, 1);
    s += __shfl_xor_sync(0xffffffffu, s, 2);
    s += __shfl_xor_sync(0xffffffffu, s, 4);
    if (i % 8 == 0) {
        long row = i / 8;
        int h = row % NH, t = (row / NH) % T, b = row / ((long)NH * T);
        delta[((long)b * NH + h) * T + t] = s;
    }
}

// Probabilities of a warp's 16 x 64 block of scores s (rows row0.., columns col0..): p = exp2(s * sl2 - lse2),
// lse2 the row's (queries as rows) or the column's (keys as rows) log-sum-exp in log2 units. With
// `masked`, entries above the causal diagonal or beyond T get 0; blocks wholly inside skip the test.
__device__ __forceinline__ void att_probs(float s[8][4], float sl2, const float lse2_rows[2], const float* lse2_cols,
                                          int row0, int col0, int rows_are_queries, int masked, int T, int lane) {
    for (int nt = 0; nt < 8; nt++) {
        for (int e = 0; e < 4; e++) {
            int r = row0 + lane / 4 + (e / 2) * 8;
            int c = col0 + nt * 8 + (lane % 4) * 2 + (e % 2);
            float l2 = rows_are_queries ? lse2_rows[e / 2] : lse2_cols[c - col0];
            float p = exp2f(s[nt][e] * sl2 - l2);
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

// Rows [row0, row0+64) of a (T) float vector, times `scale`, into smem; 0 beyond T.
__device__ __forceinline__ void att_load_row_stats(float* s, const float* g, int row0, int T, float scale) {
    if (threadIdx.x < ATT_TILE) {
        int r = row0 + threadIdx.x;
        s[threadIdx.x] = r < T ? g[r] * scale : 0.0f;
    }
}

// dK, dV of one key tile: grid (T/64 key tiles, NH, B). Each warp owns 16 keys and walks
// the query tiles at or after its key tile (the next one loading while this one computes):
//   P^T = exp(K Q^T * scale - lse);  dV += P^T dO;  dP^T = V dO^T;  dS^T = P^T (dP^T - delta);  dK += dS^T Q * scale
__global__ void __launch_bounds__(ATT_THREADS) attention_backward_dkdv_kernel(floatX* dqkv, const floatX* dout,
                                                                              const floatX* qkv, const float* lse,
                                                                              const float* delta, int T, int NH, float scale) {
    __shared__ alignas(16) floatX sq[2][ATT_TILE * ATT_LD], sdo[2][ATT_TILE * ATT_LD];
    __shared__ float slse[2][ATT_TILE], sdelta[2][ATT_TILE];
    int kt = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
    int C = NH * ATT_HS, ntiles = (T + ATT_TILE - 1) / ATT_TILE;
    long ld = 3L * C;
    const floatX* q = qkv + (long)b * T * ld + h * ATT_HS;
    const floatX* k = q + C;
    const floatX* v = q + 2 * C;
    const floatX* dO = dout + (long)b * T * C + h * ATT_HS;
    const float* lse_bh = lse + ((long)b * NH + h) * T;
    const float* delta_bh = delta + ((long)b * NH + h) * T;
    // this warp's K and V rows as A fragments, staged through buffer 1; buffer 0 gets the first query tile
    att_load_tile(sq[1], k, kt * ATT_TILE, T, ld);
    att_load_tile(sdo[1], v, kt * ATT_TILE, T, ld);
    att_load_tile(sq[0], q, kt * ATT_TILE, T, ld);
    att_load_tile(sdo[0], dO, kt * ATT_TILE, T, C);
    att_commit();
    att_load_row_stats(slse[0], lse_bh, kt * ATT_TILE, T, ATT_LOG2E);
    att_load_row_stats(sdelta[0], delta_bh, kt * ATT_TILE, T, 1.0f);
    att_wait<0>();
    __syncthreads();
    uint32_t kf[4][4], vf[4][4];
    att_load_a(kf, sq[1], warp * 16, lane);
    att_load_a(vf, sdo[1], warp * 16, lane);
    __syncthreads();
    float dk[8][4], dv[8][4];
    att_zero(dk);
    att_zero(dv);
    float sl2 = scale * ATT_LOG2E;
    int key0 = kt * ATT_TILE + warp * 16;
    for (int qt = kt; qt < ntiles; qt++) {
        int buf = (qt - kt) % 2;
        if (qt + 1 < ntiles) {
            att_load_row_stats(slse[buf ^ 1], lse_bh, (qt + 1) * ATT_TILE, T, ATT_LOG2E);
            att_load_row_stats(sdelta[buf ^ 1], delta_bh, (qt + 1) * ATT_TILE, T, 1.0f);
        }
        att_next_tiles(sq[buf ^ 1], sdo[buf ^ 1], q, dO, ld, C, qt + 1, ntiles - 1, T);
        __syncthreads();
        int masked = qt == kt || (qt + 1) * ATT_TILE > T;
        float p[8][4], dp[8][4];
        att_zero(p);
        att_mma_abt(p, kf, sq[buf], lane);                   // S^T (16 keys x 64 queries)
        att_probs(p, sl2, NULL, slse[buf], key0, qt * ATT_TILE, 0, masked, T, lane);
        uint32_t pf[4][4];
        att_c_to_a(pf, p);
        att_mma_ab(dv, pf, sdo[buf], lane);                  // dV += P^T dO
        att_zero(dp);
        att_mma_abt(dp, vf, sdo[buf], lane);                 // dP^T = V dO^T
        att_ds(dp, p, 1.0f, sdelta[buf], NULL, lane);           // dS^T = P^T (dP^T - delta)
        uint32_t dsf[4][4];
        att_c_to_a(dsf, dp);
        att_mma_ab(dk, dsf, sq[buf], lane);                  // dK += dS^T Q
        __syncthreads();
    }
    floatX* dk_out = dqkv + (long)b * T * ld + C + h * ATT_HS;
    att_store_rows(dk_out, ld, key0, T, dk, scale, lane);
    att_store_rows(dk_out + C, ld, key0, T, dv, 1.0f, lane);
}

// dQ of one query tile: grid (T/64 query tiles, NH, B). Each warp owns 16 queries:
//   P = exp(Q K^T * scale - lse);  dP = dO V^T;  dS = P (dP - delta);  dQ += dS K * scale
__global__ void __launch_bounds__(ATT_THREADS) attention_backward_dq_kernel(floatX* dqkv, const floatX* dout,
                                                                            const floatX* qkv, const float* lse,
                                                                            const float* delta, int T, int NH, float scale) {
    __shared__ alignas(16) floatX sk[2][ATT_TILE * ATT_LD], sv[2][ATT_TILE * ATT_LD];
    int qt = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
    int C = NH * ATT_HS;
    long ld = 3L * C;
    const floatX* q = qkv + (long)b * T * ld + h * ATT_HS;
    const floatX* k = q + C;
    const floatX* v = q + 2 * C;
    const floatX* dO = dout + (long)b * T * C + h * ATT_HS;
    // Q and dO rows as A fragments, staged through buffer 1; buffer 0 gets the first key tile
    att_load_tile(sk[1], q, qt * ATT_TILE, T, ld);
    att_load_tile(sv[1], dO, qt * ATT_TILE, T, C);
    att_load_tile(sk[0], k, 0, T, ld);
    att_load_tile(sv[0], v, 0, T, ld);
    att_commit();
    att_wait<0>();
    __syncthreads();
    uint32_t qf[4][4], dof[4][4];
    att_load_a(qf, sk[1], warp * 16, lane);
    att_load_a(dof, sv[1], warp * 16, lane);
    __syncthreads();
    int q0 = qt * ATT_TILE + warp * 16;
    float lse2[2], dl[2];
    for (int i = 0; i < 2; i++) {
        int r = q0 + lane / 4 + i * 8;
        lse2[i] = r < T ? lse[((long)b * NH + h) * T + r] * ATT_LOG2E : 0.0f;
        dl[i] = r < T ? delta[((long)b * NH + h) * T + r] : 0.0f;
    }
    float dq[8][4];
    att_zero(dq);
    float sl2 = scale * ATT_LOG2E;
    for (int kt = 0; kt <= qt; kt++) {
        int buf = kt % 2;
        att_next_tiles(sk[buf ^ 1], sv[buf ^ 1], k, v, ld, ld, kt + 1, qt, T);
        __syncthreads();
        int masked = kt == qt || (qt + 1) * ATT_TILE > T;
        float p[8][4], dp[8][4];
        att_zero(p);
        att_mma_abt(p, qf, sk[buf], lane);                   // S (16 queries x 64 keys)
        att_probs(p, sl2, lse2, NULL, q0, kt * ATT_TILE, 1, masked, T, lane);
        att_zero(dp);
        att_mma_abt(dp, dof, sv[buf], lane);                 // dP = dO V^T
        att_ds(dp, p, 1.0f, NULL, dl, lane);                   // dS = P (dP - delta)
        uint32_t dsf[4][4];
        att_c_to_a(dsf, dp);
        att_mma_ab(dq, dsf, sk[buf], lane);                  // dQ += dS K
        __syncthreads();
    }
    att_store_rows(dqkv + (long)b * T * ld + h * ATT_HS, ld, q0, T, dq, scale, lane);
}

// ---------------------------------------------------------------------------------------
// Bytes of per-layer state attention keeps for backward: the log-sum-exp (B,NH,T).
static inline size_t attention_saved_bytes(int B, int T, int NH) { return (size_t)B * NH * T * sizeof(float); }
// Scratch shared by all layers: delta (B,NH,T).
static inline size_t attention_scratch_bytes(int B, int T, int NH) { return (size_t)B * NH * T * sizeof(float); }

static inline void attention_check_shape(int C, int NH) {
    if (C / NH != ATT_HS || C % NH != 0) { die("attention supports head size %d only (C=%d, NH=%d)", ATT_HS, C, NH); }
}

// out (B,T,C) = causal attention of qkv (B,T,3C); saved: attention_saved_bytes of state for backward
// scale: the softmax's, 1/sqrt(ATT_HS) for GPT-2 (a fixed other one with --qk-norm)
static inline void attention_forward(floatX* out, void* saved, const floatX* qkv, int B, int T, int C, int NH, float scale,
                                     cudaStream_t s) {
    attention_check_shape(C, NH);
    dim3 grid(ceil_div(T, ATT_TILE), NH, B);
    attention_forward_kernel<<<grid, ATT_THREADS, 0, s>>>(out, (float*)saved, qkv, T, NH, scale);
    cudaCheckLaunch();
}

// dqkv (B,T,3C) = attention backward, given dout (B,T,C), the forward's out (B,T,C), qkv and saved state
static inline void attention_backward(floatX* dqkv, void* scratch, const floatX* dout, const floatX* out, const floatX* qkv,
                                      const void* saved, int B, int T, int C, int NH, float scale, cudaStream_t s) {
    attention_check_shape(C, NH);
    float* delta = (float*)scratch;
    const float* lse = (const float*)saved;
    attention_delta_kernel<<<ceil_div((long)B * T * NH * 8, 256), 256, 0, s>>>(delta, dout, out, B, T, NH);
    cudaCheckLaunch();
    dim3 grid(ceil_div(T, ATT_TILE), NH, B);
    attention_backward_dkdv_kernel<<<grid, ATT_THREADS, 0, s>>>(dqkv, dout, qkv, lse, delta, T, NH, scale);
    cudaCheckLaunch();
    attention_backward_dq_kernel<<<grid, ATT_THREADS, 0, s>>>(dqkv, dout, qkv, lse, delta, T, NH, scale);
    cudaCheckLaunch();
}

#endif // LLMC_ATTENTION_CUH
