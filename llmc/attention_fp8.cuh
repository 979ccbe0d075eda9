// Causal attention with FP8 operands: QK^T, PV and the four products of the backward as FP8
// mma.sync m16n8k32 with FP32 accumulation; otherwise the scheme of
// llmc/attention.cuh: 64 x 64 tiles, 4 warps of 16 rows, online softmax, the log-sum-exp saved,
// the backward split into a dK/dV and a dQ kernel (deterministic, no atomics on gradients).
//
// Quantized: Q, K, V in E4M3, each with its per-tensor scale; the probabilities P in E4M3 times
// 2^8 (P <= 1 needs no amax: 1 -> 256, and values down to 2^-17 survive as subnormals); dO and
// dS in the gradient format g (E5M2 under --fp8-format hybrid). Scales are device floats of the
// trainer's scaling block; the casts raise the amaxes of Q, K, V, dO and the dK/dV kernel dS's,
// so delayed scaling costs no extra pass. Current scaling measures first (ATT8_MEASURE, and
// attention_fp8_measure_ds, the dQ kernel without its product).
//
// FP8 mma.sync takes both operands K-major and ldmatrix cannot transpose bytes, so the casts
// write every operand in the orientation its products read: "rows" (B,NH,Tp,64) for Q, K, V, dO,
// "cols" (B,NH,64,Tp) for V^T, Q^T, K^T, dO^T, Tp = T rounded up to 64, zeros beyond T. A cols
// operand always meets an A operand made from an accumulator (P, dS), where a lane holds columns
// 2q, 2q+1, 8+2q, 9+2q of each 16 (q = lane % 4) but the mma expects 4q..4q+3: the casts store T
// in that order within each 16 (att8_pos), so accumulators feed the next product with no shuffle.
// Speed on Hopper: sm_90 has FP8 tensor cores only behind wgmma. ptxas lowers FP8 mma.sync to
// F2FP.F16.E4M3.UNPACK_B + HMMA.16816 (FP16) (cuobjdump), so these kernels do the BF16 kernels'
// HMMAs plus the unpacks, and take ~1.6x the time of the BF16 kernels (which run on wgmma;
// BENCHMARKS.md, issue 4). They give FP8 attention's numerics (--attention fp8); the speed needs
// a wgmma version, which can keep these casts' layouts (every B operand is already K-major, as
// wgmma's FP8 form requires) and, like the BF16 kernels, must keep the operands it holds across
// the key loop in shared memory (ptxas reused such register operands' registers). On sm_89 (Ada)
// FP8 mma.sync is native.
#ifndef LLMC_ATTENTION_FP8_CUH
#define LLMC_ATTENTION_FP8_CUH

#include "attention.cuh"
#include "fp8_cast.cuh"

#define ATT8_LD 80                          // smem row stride (bytes) of a 64-byte row: ldmatrix rows hit distinct banks
#define ATT8_TILE_BYTES (ATT_TILE * ATT8_LD)
#define ATT8_P_SCALE 256.0f                 // probabilities are cast times 2^8 (exact to undo)
// The quantized tensors of one layer's attention; a layer's scales (and amaxes) are ATT8_TENSORS
// consecutive floats in this order.
typedef enum { ATT8_Q, ATT8_K, ATT8_V, ATT8_DOUT, ATT8_DS, ATT8_TENSORS } Att8Tensor;

// attention_fp8_cast_qkv: what to write
#define ATT8_FWD 1       // q, k rows and v^T: the forward's operands
#define ATT8_BWD 2       // q, k, v rows and q^T, k^T: the backward's
#define ATT8_MEASURE 4   // only raise the amaxes (current scaling's first pass)

// FP8 copies of one layer's operands, in scratch: rows (B,NH,Tp,64), cols (B,NH,64,Tp). vt and v
// share a buffer (the forward reads v^T, the backward v).
typedef struct { uint8_t *q, *k, *v, *vt, *qt, *kt, *dout, *doutt; } Att8Copies;

static inline __host__ __device__ int attention_fp8_tp(int T) { return (T + ATT_TILE - 1) / ATT_TILE * ATT_TILE; }

// Position of time t in a cols operand: within each 16, the order of an accumulator's columns.
static inline __host__ __device__ int att8_pos(int t) {
    int u = t % 16;
    return t - u + 4 * ((u % 8) / 2) + (u % 2) + 2 * (u / 8);
}
// its inverse within a 16: the t % 16 stored at position p % 16
static inline __host__ __device__ int att8_time_at(int p) { return 2 * (p / 4) + (p % 2) + 8 * ((p % 4) / 2); }

static inline size_t attention_fp8_copy_bytes(int B, int T, int NH) {
    return ((size_t)B * NH * attention_fp8_tp(T) * ATT_HS + 255) & ~(size_t)255;
}
static inline size_t attention_fp8_scratch_bytes(int B, int T, int NH) { return 7 * attention_fp8_copy_bytes(B, T, NH); }

static inline Att8Copies attention_fp8_carve(uint8_t* scratch, int B, int T, int NH) {
    size_t n = attention_fp8_copy_bytes(B, T, NH);
    Att8Copies c;
    c.q = scratch; c.k = scratch + n; c.v = scratch + 2 * n; c.vt = c.v;
    c.qt = scratch + 3 * n; c.kt = scratch + 4 * n; c.dout = scratch + 5 * n; c.doutt = scratch + 6 * n;
    return c;
}

// ---------------------------------------------------------------------------------------
// FP8 fragments. m16n8k32 layouts (PTX ISA): A regs (row g, k 4q..4q+3), (g+8, same), (g, 16+4q..),
// (g+8, 16+4q..); B regs (k 4q..4q+3, n g), (k 16+4q.., n g); C as m16n8k16. An 8x8 b16 ldmatrix
// of 8 rows x 16 bytes hands lane l row l/4, bytes 4(l%4)..: exactly these fragments.

// c (16x8) += a (16x32) @ b (32x8)
template <Fp8Format FA, Fp8Format FB>
__device__ __forceinline__ void att8_mma(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 890
    __trap();   // FP8 mma.sync needs sm_89+
#else
#define ATT8_MMA(TA, TB)                                                                                      \
    asm volatile("mma.sync.aligned.m16n8k32.row.col.f32." TA "." TB ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, " \
                 "{%0,%1,%2,%3};\n"                                                                           \
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])                                             \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1))
    if constexpr (FA == FP8_E4M3 && FB == FP8_E4M3) { ATT8_MMA("e4m3", "e4m3"); }
    else if constexpr (FA == FP8_E4M3) { ATT8_MMA("e4m3", "e5m2"); }
    else if constexpr (FB == FP8_E4M3) { ATT8_MMA("e5m2", "e4m3"); }
    else { ATT8_MMA("e5m2", "e5m2"); }
#undef ATT8_MMA
#endif
}

__device__ __forceinline__ void att8_ldsm_x4(uint32_t* r, const uint8_t* p) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}

// Starts copying a 64 x 64-byte tile (row stride ld bytes, inside the padded Tp) into smem.
__device__ __forceinline__ void att8_load_tile(uint8_t* s, const uint8_t* g, long ld) {
    for (int i = threadIdx.x; i < ATT_TILE * 4; i += ATT_THREADS) {
        int r = i / 4, c = (i % 4) * 16;
        uint32_t dst = (uint32_t)__cvta_generic_to_shared(s + r * ATT8_LD + c);
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(dst), "l"(g + r * ld + c));
    }
}

// A fragments (16 rows x 64 bytes) of smem rows [row0, row0+16): f[kstep][4]
__device__ __forceinline__ void att8_load_a(uint32_t f[2][4], const uint8_t* s, int row0, int lane) {
    for (int ks = 0; ks < 2; ks++) {
        att8_ldsm_x4(f[ks], s + (row0 + (lane % 8) + ((lane / 8) % 2) * 8) * ATT8_LD + ks * 32 + (lane / 16) * 16);
    }
}

// acc (16 x 64) += a (16 x 64) @ S^T, smem S (64 n, 64 k) K-major
template <Fp8Format FA, Fp8Format FB>
__device__ __forceinline__ void att8_mma_abt(float acc[8][4], const uint32_t a[2][4], const uint8_t* s, int lane) {
    for (int ks = 0; ks < 2; ks++) {
        for (int np = 0; np < 4; np++) {
            uint32_t b[4];
            att8_ldsm_x4(b, s + (np * 16 + (lane % 8) + (lane / 16) * 8) * ATT8_LD + ks * 32 + ((lane / 8) % 2) * 16);
            att8_mma<FA, FB>(acc[2 * np], a[ks], b[0], b[1]);
            att8_mma<FA, FB>(acc[2 * np + 1], a[ks], b[2], b[3]);
        }
    }
}

template <Fp8Format F>
__device__ __forceinline__ uint32_t att8_pack4(float a, float b, float c, float d, float scale) {
    constexpr __nv_fp8_interpretation_t kind = F == FP8_E4M3 ? __NV_E4M3 : __NV_E5M2;
    uint32_t lo = __nv_cvt_float2_to_fp8x2(make_float2(a * scale, b * scale), __NV_SATFINITE, kind);   // low byte: a
    uint32_t hi = __nv_cvt_float2_to_fp8x2(make_float2(c * scale, d * scale), __NV_SATFINITE, kind);
    return lo | (hi << 16);
}

// C fragments of a 16 x 64 product, times scale, -> FP8 A fragments over those 64 columns, in
// the column order of the cols layout (see the top).
template <Fp8Format F>
__device__ __forceinline__ void att8_c_to_a(uint32_t a[2][4], const float c[8][4], float scale) {
    for (int j = 0; j < 2; j++) {
        for (int half = 0; half < 2; half++) {   // k 0-15 and 16-31 of the step: n-tiles 4j+2half, +1
            const float* x = c[4 * j + 2 * half];
            const float* y = c[4 * j + 2 * half + 1];
            a[j][2 * half] = att8_pack4<F>(x[0], x[1], y[0], y[1], scale);       // row g
            a[j][2 * half + 1] = att8_pack4<F>(x[2], x[3], y[2], y[3], scale);   // row g+8
        }
    }
}

// Starts copying tile `next` of up to 4 operands (rows: tile row stride 64; cols: column offset
// in a (64, Tp) slice) when next <= last, then waits for the current tile's copies. A barrier must
// follow. rows_mask bit i: operand i is rows.
__device__ __forceinline__ void att8_next_tiles(uint8_t* const* dst, const uint8_t* const* src, int n, int rows_mask,
                                                int next, int last, int Tp) {
    if (next <= last) {
        for (int i = 0; i < n; i++) {
            int rows = (rows_mask >> i) & 1;
            att8_load_tile(dst[i], src[i] + (rows ? (long)next * ATT_TILE * ATT_HS : (long)next * ATT_TILE), rows ? ATT_HS : Tp);
        }
        att_commit();
        att_wait<1>();
    } else {
        att_wait<0>();
    }
}

// max |x| as float bits (NaN above inf, like the casts' amax) over the block, raised into *amax
__device__ __forceinline__ void att8_commit_amax(uint32_t bits, float* amax) {
    __shared__ uint32_t part[ATT_THREADS / WARP_SIZE];
    bits = __reduce_max_sync(0xffffffffu, bits);
    if (threadIdx.x % WARP_SIZE == 0) { part[threadIdx.x / WARP_SIZE] = bits; }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < ATT_THREADS / WARP_SIZE; w++) { bits = max(bits, part[w]); }
        atomicMax(reinterpret_cast<unsigned int*>(amax), bits);
    }
}

// ---------------------------------------------------------------------------------------
// Casts. grid (Tp/64, NH, B), 128 threads: a thread casts 32 values of one row of the tile,
// writes them as rows, and stages them for the cols copy, which a thread writes 16 positions
// at a time from a column of the staged tile (a warp reads 32 consecutive bytes of a row).

// Writes a staged 64 x 64 tile (rows of time) as the cols copy of times tile*64.. of a (64, Tp) slice.
__device__ __forceinline__ void att8_write_cols(uint8_t* cols, const uint8_t* tile, int tt, int Tp) {
    int d = threadIdx.x % ATT_HS;
    for (int g = threadIdx.x / ATT_HS; g < 4; g += ATT_THREADS / ATT_HS) {
        u8x16 o;
        for (int p = 0; p < 16; p++) { o.v[p] = tile[(16 * g + att8_time_at(p)) * ATT8_LD + d]; }
        store16(cols + (long)d * Tp + (long)tt * ATT_TILE + 16 * g, o);
    }
}

// One thread's 32 values of row t (< T, else zeros) of a head slice src (row stride ld) cast into code[32].
template <Fp8Format F, bool STATS>
__device__ __forceinline__ void att8_cast32(uint8_t code[32], const floatX* src, int t, int T, long ld, float scale,
                                            CastAcc& acc) {
    for (int j = 0; j < 4; j++) {
        x8 v;
        if (t < T) { v = load16(src + (long)t * ld + 8 * j); }
        else { for (int e = 0; e < 8; e++) { v.v[e] = __float2bfloat16(0.0f); } }
        cast8<F, STATS>(code + 8 * j, v, scale, acc);
    }
}

template <bool STATS>
__global__ void __launch_bounds__(ATT_THREADS) attention_fp8_cast_qkv_kernel(Att8Copies c, const floatX* qkv, int T, int NH,
                                                                             const float* sc, float* amax,
                                                                             unsigned long long* counts, int flags) {
    __shared__ alignas(16) uint8_t tile[ATT8_TILE_BYTES];
    int tt = blockIdx.x, h = blockIdx.y, b = blockIdx.z, Tp = gridDim.x * ATT_TILE, C = NH * ATT_HS;
    int r = threadIdx.x / 2, half = threadIdx.x % 2, t = tt * ATT_TILE + r;
    long bh = (long)b * NH + h;
    int measure = flags & ATT8_MEASURE, bwd = flags & ATT8_BWD;
    for (int w = 0; w < 3; w++) {   // q, k, v
        uint8_t* rows = measure || (w == 2 && !bwd) ? NULL : w == 0 ? c.q : w == 1 ? c.k : c.v;
        uint8_t* cols = measure ? NULL : bwd ? (w == 0 ? c.qt : w == 1 ? c.kt : NULL) : (w == 2 ? c.vt : NULL);
        alignas(16) uint8_t code[32];
        CastAcc acc = {0u, 0u, 0u};
        att8_cast32<FP8_E4M3, STATS>(code, qkv + (long)b * T * 3 * C + w * C + h * ATT_HS + half * 32, t, T, 3L * C,
                                     measure ? 1.0f : sc[w], acc);
        if (rows != NULL) {
            uint8_t* dst = rows + (bh * Tp + t) * ATT_HS + half * 32;
            store16(dst, *reinterpret_cast<u8x16*>(code));
            store16(dst + 16, *reinterpret_cast<u8x16*>(code + 16));
        }
        if (cols != NULL) {   // uniform over the block
            for (int j = 0; j < 32; j += 16) { *reinterpret_cast<u8x16*>(tile + r * ATT8_LD + half * 32 + j) = *reinterpret_cast<u8x16*>(code + j); }
            __syncthreads();
            att8_write_cols(cols + bh * ATT_HS * Tp, tile, tt, Tp);
        }
        if (amax != NULL || STATS) { cast_acc_commit<STATS>(acc, amax != NULL ? amax + w : NULL, counts + 2 * w); }
        __syncthreads();   // the tile and the commit's partials are reused
    }
}

// dO: rows and cols copies in format F, and delta (B,NH,T) = rowsum(dequantized dO * out) per head,
// which keeps each row of dS = P (dP - delta) summing to zero with the dP the quantized dO makes.
template <Fp8Format F, bool STATS>
__global__ void __launch_bounds__(ATT_THREADS) attention_fp8_cast_dout_kernel(Att8Copies c, float* delta, const floatX* dout,
                                                                              const floatX* out, int T, int NH,
                                                                              const float* sc, float* amax,
                                                                              unsigned long long* counts, int measure) {
    __shared__ alignas(16) uint8_t tile[ATT8_TILE_BYTES];
    int tt = blockIdx.x, h = blockIdx.y, b = blockIdx.z, Tp = gridDim.x * ATT_TILE, C = NH * ATT_HS;
    int r = threadIdx.x / 2, half = threadIdx.x % 2, t = tt * ATT_TILE + r;
    long bh = (long)b * NH + h, off = (long)b * T * C + h * ATT_HS + half * 32;
    float scale = measure ? 1.0f : sc[ATT8_DOUT];
    alignas(16) uint8_t code[32];
    CastAcc acc = {0u, 0u, 0u};
    att8_cast32<F, STATS>(code, dout + off, t, T, C, scale, acc);
    if (!measure) {
        uint8_t* dst = c.dout + (bh * Tp + t) * ATT_HS + half * 32;
        store16(dst, *reinterpret_cast<u8x16*>(code));
        store16(dst + 16, *reinterpret_cast<u8x16*>(code + 16));
        for (int j = 0; j < 32; j += 16) { *reinterpret_cast<u8x16*>(tile + r * ATT8_LD + half * 32 + j) = *reinterpret_cast<u8x16*>(code + j); }
        constexpr __nv_fp8_interpretation_t kind = F == FP8_E4M3 ? __NV_E4M3 : __NV_E5M2;
        float d = 0.0f;
        if (t < T) {
            for (int j = 0; j < 4; j++) {
                x8 o = load16(out + off + (long)t * C + 8 * j);
                for (int e = 0; e < 8; e += 2) {
                    __half2 q = __half2(__nv_cvt_fp8x2_to_halfraw2(code[8 * j + e] | (code[8 * j + e + 1] << 8), kind));
                    float2 qf = __half22float2(q);
                    d += qf.x * __bfloat162float(o.v[e]) + qf.y * __bfloat162float(o.v[e + 1]);
                }
            }
        }
        d += __shfl_xor_sync(0xffffffffu, d, 1);
        if (half == 0 && t < T) { delta[bh * T + t] = d / scale; }
        __syncthreads();
        att8_write_cols(c.doutt + bh * ATT_HS * Tp, tile, tt, Tp);
    }
    if (amax != NULL || STATS) { cast_acc_commit<STATS>(acc, amax != NULL ? amax + ATT8_DOUT : NULL, counts + 2 * ATT8_DOUT); }
}

// ---------------------------------------------------------------------------------------
// Forward. grid (Tp/64 query tiles, NH, B), longest (last) query tiles first.
//   S = Q K^T / (sq sk);  online softmax;  O += fp8(P * 256) V^T^T / (256 sv)
__global__ void __launch_bounds__(ATT_THREADS) attention_fp8_forward_kernel(floatX* out, float* lse, Att8Copies c, int T,
                                                                            int NH, float sm_scale, const float* sc) {
    __shared__ alignas(16) uint8_t sq[ATT8_TILE_BYTES], sk[2][ATT8_TILE_BYTES], sv[2][ATT8_TILE_BYTES];
    int qt = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z, Tp = gridDim.x * ATT_TILE, C = NH * ATT_HS;
    int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
    long bh = (long)b * NH + h;
    const uint8_t* src[2] = {c.k + bh * Tp * ATT_HS, c.vt + bh * ATT_HS * Tp};
    att8_load_tile(sq, c.q + (bh * Tp + (long)qt * ATT_TILE) * ATT_HS, ATT_HS);
    att8_load_tile(sk[0], src[0], ATT_HS);
    att8_load_tile(sv[0], src[1], Tp);
    att_commit();
    uint32_t qf[2][4];
    float o[8][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    att_zero(o);
    float sl2 = sm_scale * ATT_LOG2E / (sc[ATT8_Q] * sc[ATT8_K]);
    int row[2] = {qt * ATT_TILE + warp * 16 + lane / 4, qt * ATT_TILE + warp * 16 + lane / 4 + 8};
    for (int kt = 0; kt <= qt; kt++) {
        int buf = kt % 2;
        uint8_t* dst[2] = {sk[buf ^ 1], sv[buf ^ 1]};
        att8_next_tiles(dst, src, 2, 1, kt + 1, qt, Tp);
        __syncthreads();
        if (kt == 0) { att8_load_a(qf, sq, warp * 16, lane); }
        float s[8][4];
        att_zero(s);
        att8_mma_abt<FP8_E4M3, FP8_E4M3>(s, qf, sk[buf], lane);
        att_online_softmax(s, m, l, o, kt == qt || (kt + 1) * ATT_TILE > T, row, kt * ATT_TILE, T, sl2, lane);
        uint32_t pf[2][4];
        att8_c_to_a<FP8_E4M3>(pf, s, ATT8_P_SCALE);
        att8_mma_abt<FP8_E4M3, FP8_E4M3>(o, pf, sv[buf], lane);
        __syncthreads();   // this buffer is refilled two tiles from now
    }
    att_finish_rows(out + (long)b * T * C + h * ATT_HS, lse + bh * T, o, m, l, row, qt * ATT_TILE + warp * 16, T, C,
                    1.0f / (ATT8_P_SCALE * sc[ATT8_V]), lane);
}

// ---------------------------------------------------------------------------------------
// Backward.

// dK, dV of one key tile: grid (Tp/64 key tiles, NH, B); a warp owns 16 keys and walks the query
// tiles from its own on. dS^T's amax (float bits) is raised into amax (NULL: not recorded).
//   P^T = exp(K Q^T s - lse);  dV += fp8(256 P^T) dO;  dP^T = V dO^T;  dS^T = P^T (dP^T - delta);
//   dK += fp8(dS^T) Q s
template <Fp8Format G>
__global__ void __launch_bounds__(ATT_THREADS) attention_fp8_backward_dkdv_kernel(floatX* dqkv, Att8Copies c,
                                                                                  const float* lse, const float* delta,
                                                                                  int T, int NH, float sm_scale,
                                                                                  const float* sc, float* amax) {
    __shared__ alignas(16) uint8_t sq[2][ATT8_TILE_BYTES], sqt[2][ATT8_TILE_BYTES], sdo[2][ATT8_TILE_BYTES],
        sdot[2][ATT8_TILE_BYTES];
    __shared__ float slse[2][ATT_TILE], sdelta[2][ATT_TILE];
    int kt = blockIdx.x, h = blockIdx.y, b = blockIdx.z, Tp = gridDim.x * ATT_TILE, C = NH * ATT_HS;
    int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE, ntiles = gridDim.x;
    long bh = (long)b * NH + h, rows0 = bh * Tp * ATT_HS;
    const float* lse_bh = lse + bh * T;
    const float* delta_bh = delta + bh * T;
    const uint8_t* src[4] = {c.q + rows0, c.qt + rows0, c.dout + rows0, c.doutt + rows0};   // rows, cols, rows, cols
    // this warp's K and V rows as A fragments, staged through buffer 1; buffer 0 gets query tile kt
    att8_load_tile(sq[1], c.k + rows0 + (long)kt * ATT_TILE * ATT_HS, ATT_HS);
    att8_load_tile(sdo[1], c.v + rows0 + (long)kt * ATT_TILE * ATT_HS, ATT_HS);
    uint8_t* first[4] = {sq[0], sqt[0], sdo[0], sdot[0]};
    for (int i = 0; i < 4; i++) {
        att8_load_tile(first[i], src[i] + (i % 2 == 0 ? (long)kt * ATT_TILE * ATT_HS : (long)kt * ATT_TILE), i % 2 == 0 ? ATT_HS : Tp);
    }
    att_commit();
    att_load_row_stats(slse[0], lse_bh, kt * ATT_TILE, T, ATT_LOG2E);
    att_load_row_stats(sdelta[0], delta_bh, kt * ATT_TILE, T, 1.0f);
    att_wait<0>();
    __syncthreads();
    uint32_t kf[2][4], vf[2][4];
    att8_load_a(kf, sq[1], warp * 16, lane);
    att8_load_a(vf, sdo[1], warp * 16, lane);
    __syncthreads();
    float dk[8][4], dv[8][4];
    att_zero(dk);
    att_zero(dv);
    float sl2 = sm_scale * ATT_LOG2E / (sc[ATT8_Q] * sc[ATT8_K]);
    float dp_scale = 1.0f / (sc[ATT8_V] * sc[ATT8_DOUT]), ds_scale = sc[ATT8_DS];
    uint32_t ds_max = 0u;
    int key0 = kt * ATT_TILE + warp * 16;
    for (int qt = kt; qt < ntiles; qt++) {
        int buf = (qt - kt) % 2;
        if (qt + 1 < ntiles) {
            att_load_row_stats(slse[buf ^ 1], lse_bh, (qt + 1) * ATT_TILE, T, ATT_LOG2E);
            att_load_row_stats(sdelta[buf ^ 1], delta_bh, (qt + 1) * ATT_TILE, T, 1.0f);
        }
        uint8_t* dst[4] = {sq[buf ^ 1], sqt[buf ^ 1], sdo[buf ^ 1], sdot[buf ^ 1]};
        att8_next_tiles(dst, src, 4, 0x5, qt + 1, ntiles - 1, Tp);
        __syncthreads();
        int masked = qt == kt || (qt + 1) * ATT_TILE > T;
        float p[8][4], dp[8][4];
        att_zero(p);
        att8_mma_abt<FP8_E4M3, FP8_E4M3>(p, kf, sq[buf], lane);             // S^T (16 keys x 64 queries)
        att_probs(p, sl2, NULL, slse[buf], key0, qt * ATT_TILE, 0, masked, T, lane);
        uint32_t pf[2][4];
        att8_c_to_a<FP8_E4M3>(pf, p, ATT8_P_SCALE);
        att8_mma_abt<FP8_E4M3, G>(dv, pf, sdot[buf], lane);                // dV += P^T dO
        att_zero(dp);
        att8_mma_abt<FP8_E4M3, G>(dp, vf, sdo[buf], lane);                 // dP^T = V dO^T
        ds_max = max(ds_max, att_ds(dp, p, dp_scale, sdelta[buf], NULL, lane));   // dS^T
        uint32_t dsf[2][4];
        att8_c_to_a<G>(dsf, dp, ds_scale);
        att8_mma_abt<G, FP8_E4M3>(dk, dsf, sqt[buf], lane);                // dK += dS^T Q
        __syncthreads();
    }
    floatX* dk_out = dqkv + (long)b * T * 3 * C + C + h * ATT_HS;
    att_store_rows(dk_out, 3L * C, key0, T, dk, sm_scale / (ds_scale * sc[ATT8_Q]), lane);
    att_store_rows(dk_out + C, 3L * C, key0, T, dv, 1.0f / (ATT8_P_SCALE * sc[ATT8_DOUT]), lane);
    if (amax != NULL) { att8_commit_amax(ds_max, amax); }
}

// dQ of one query tile: grid (Tp/64 query tiles, NH, B); a warp owns 16 queries.
//   P = exp(Q K^T s - lse);  dP = dO V^T;  dS = P (dP - delta);  dQ += fp8(dS) K s
// MEASURE: only dS's amax, raised into amax (current scaling's pass before the backward).
template <Fp8Format G, bool MEASURE>
__global__ void __launch_bounds__(ATT_THREADS) attention_fp8_backward_dq_kernel(floatX* dqkv, Att8Copies c, const float* lse,
                                                                                const float* delta, int T, int NH,
                                                                                float sm_scale, const float* sc,
                                                                                float* amax) {
    __shared__ alignas(16) uint8_t sk[2][ATT8_TILE_BYTES], sv[2][ATT8_TILE_BYTES], skt[2][ATT8_TILE_BYTES];
    int qt = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z, Tp = gridDim.x * ATT_TILE, C = NH * ATT_HS;
    int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
    long bh = (long)b * NH + h, rows0 = bh * Tp * ATT_HS;
    const uint8_t* src[3] = {c.k + rows0, c.v + rows0, c.kt + rows0};   // rows, rows, cols
    const int nsrc = MEASURE ? 2 : 3;
    // Q and dO rows as A fragments, staged through buffer 1; buffer 0 gets key tile 0
    att8_load_tile(sk[1], c.q + rows0 + (long)qt * ATT_TILE * ATT_HS, ATT_HS);
    att8_load_tile(sv[1], c.dout + rows0 + (long)qt * ATT_TILE * ATT_HS, ATT_HS);
    att8_load_tile(sk[0], src[0], ATT_HS);
    att8_load_tile(sv[0], src[1], ATT_HS);
    if (!MEASURE) { att8_load_tile(skt[0], src[2], Tp); }
    att_commit();
    att_wait<0>();
    __syncthreads();
    uint32_t qf[2][4], dof[2][4];
    att8_load_a(qf, sk[1], warp * 16, lane);
    att8_load_a(dof, sv[1], warp * 16, lane);
    __syncthreads();
    int q0 = qt * ATT_TILE + warp * 16;
    float lse2[2], dl[2];
    for (int i = 0; i < 2; i++) {
        int r = q0 + lane / 4 + i * 8;
        lse2[i] = r < T ? lse[bh * T + r] * ATT_LOG2E : 0.0f;
        dl[i] = r < T ? delta[bh * T + r] : 0.0f;
    }
    float dq[8][4];
    att_zero(dq);
    float sl2 = sm_scale * ATT_LOG2E / (sc[ATT8_Q] * sc[ATT8_K]);
    float dp_scale = 1.0f / (sc[ATT8_V] * sc[ATT8_DOUT]), ds_scale = sc[ATT8_DS];
    uint32_t ds_max = 0u;
    for (int kt = 0; kt <= qt; kt++) {
        int buf = kt % 2;
        uint8_t* dst[3] = {sk[buf ^ 1], sv[buf ^ 1], skt[buf ^ 1]};
        att8_next_tiles(dst, src, nsrc, 0x3, kt + 1, qt, Tp);
        __syncthreads();
        int masked = kt == qt || (qt + 1) * ATT_TILE > T;
        float p[8][4], dp[8][4];
        att_zero(p);
        att8_mma_abt<FP8_E4M3, FP8_E4M3>(p, qf, sk[buf], lane);             // S (16 queries x 64 keys)
        att_probs(p, sl2, lse2, NULL, q0, kt * ATT_TILE, 1, masked, T, lane);
        att_zero(dp);
        att8_mma_abt<G, FP8_E4M3>(dp, dof, sv[buf], lane);                 // dP = dO V^T
        ds_max = max(ds_max, att_ds(dp, p, dp_scale, NULL, dl, lane));           // dS
        if (!MEASURE) {
            uint32_t dsf[2][4];
            att8_c_to_a<G>(dsf, dp, ds_scale);
            att8_mma_abt<G, FP8_E4M3>(dq, dsf, skt[buf], lane);            // dQ += dS K
        }
        __syncthreads();
    }
    if (MEASURE) { att8_commit_amax(ds_max, amax); }
    else { att_store_rows(dqkv + (long)b * T * 3 * C + h * ATT_HS, 3L * C, q0, T, dq, sm_scale / (ds_scale * sc[ATT8_K]), lane); }
}

// ---------------------------------------------------------------------------------------
// Launchers. sc: the layer's ATT8_TENSORS scales; amax: its ATT8_TENSORS amaxes, raised (NULL:
// not); counts: (ATT8_TENSORS, 2) saturated and flushed counts of a stats step (NULL: none).

// q, k, v of qkv (B,T,3C) cast into c as flags say (ATT8_FWD | ATT8_BWD, or with ATT8_MEASURE only amax)
static inline void attention_fp8_cast_qkv(const Att8Copies* c, const floatX* qkv, int B, int T, int NH, const float* sc,
                                          float* amax, unsigned long long* counts, int flags, cudaStream_t s) {
    dim3 grid(attention_fp8_tp(T) / ATT_TILE, NH, B);
    if (counts != NULL && !(flags & ATT8_MEASURE)) {
        attention_fp8_cast_qkv_kernel<true><<<grid, ATT_THREADS, 0, s>>>(*c, qkv, T, NH, sc, amax, counts, flags);
    } else {
        attention_fp8_cast_qkv_kernel<false><<<grid, ATT_THREADS, 0, s>>>(*c, qkv, T, NH, sc, amax, NULL, flags);
    }
    cudaCheckLaunch();
}

// dout (B,T,C) cast into c->dout, c->doutt in format g; delta (B,NH,T) from it and out (B,T,C)
static inline void attention_fp8_cast_dout(const Att8Copies* c, float* delta, const floatX* dout, const floatX* out, int B,
                                           int T, int NH, const float* sc, float* amax, unsigned long long* counts,
                                           Fp8Format g, int measure, cudaStream_t s) {
    dim3 grid(attention_fp8_tp(T) / ATT_TILE, NH, B);
    int stats = counts != NULL && !measure;
#define ATT8_CAST_DOUT(F, ST) \
    attention_fp8_cast_dout_kernel<F, ST><<<grid, ATT_THREADS, 0, s>>>(*c, delta, dout, out, T, NH, sc, amax, counts, measure)
    if (g == FP8_E4M3) { if (stats) { ATT8_CAST_DOUT(FP8_E4M3, true); } else { ATT8_CAST_DOUT(FP8_E4M3, false); } }
    else { if (stats) { ATT8_CAST_DOUT(FP8_E5M2, true); } else { ATT8_CAST_DOUT(FP8_E5M2, false); } }
#undef ATT8_CAST_DOUT
    cudaCheckLaunch();
}

// out (B,T,C), lse (B,NH,T) from the copies of a cast with ATT8_FWD
static inline void attention_fp8_forward(floatX* out, float* lse, const Att8Copies* c, int B, int T, int NH, float sm_scale,
                                         const float* sc, cudaStream_t s) {
    dim3 grid(attention_fp8_tp(T) / ATT_TILE, NH, B);
    attention_fp8_forward_kernel<<<grid, ATT_THREADS, 0, s>>>(out, lse, *c, T, NH, sm_scale, sc);
    cudaCheckLaunch();
}

// dqkv (B,T,3C) from the copies of cast_qkv (ATT8_BWD) and cast_dout, the forward's lse and delta
static inline void attention_fp8_backward(floatX* dqkv, const Att8Copies* c, const float* lse, const float* delta, int B,
                                          int T, int NH, float sm_scale, const float* sc, float* amax, Fp8Format g,
                                          cudaStream_t s) {
    dim3 grid(attention_fp8_tp(T) / ATT_TILE, NH, B);
    float* ads = amax != NULL ? amax + ATT8_DS : NULL;
    if (g == FP8_E4M3) {
        attention_fp8_backward_dkdv_kernel<FP8_E4M3><<<grid, ATT_THREADS, 0, s>>>(dqkv, *c, lse, delta, T, NH, sm_scale, sc, ads);
        cudaCheckLaunch();
        attention_fp8_backward_dq_kernel<FP8_E4M3, false><<<grid, ATT_THREADS, 0, s>>>(dqkv, *c, lse, delta, T, NH, sm_scale, sc, NULL);
    } else {
        attention_fp8_backward_dkdv_kernel<FP8_E5M2><<<grid, ATT_THREADS, 0, s>>>(dqkv, *c, lse, delta, T, NH, sm_scale, sc, ads);
        cudaCheckLaunch();
        attention_fp8_backward_dq_kernel<FP8_E5M2, false><<<grid, ATT_THREADS, 0, s>>>(dqkv, *c, lse, delta, T, NH, sm_scale, sc, NULL);
    }
    cudaCheckLaunch();
}

// amax[ATT8_DS] raised with max |dS|, the backward's dS before its cast
static inline void attention_fp8_measure_ds(float* amax, const Att8Copies* c, const float* lse, const float* delta, int B,
                                            int T, int NH, float sm_scale, const float* sc, Fp8Format g, cudaStream_t s) {
    dim3 grid(attention_fp8_tp(T) / ATT_TILE, NH, B);
    if (g == FP8_E4M3) {
        attention_fp8_backward_dq_kernel<FP8_E4M3, true><<<grid, ATT_THREADS, 0, s>>>(NULL, *c, lse, delta, T, NH, sm_scale, sc, amax + ATT8_DS);
    } else {
        attention_fp8_backward_dq_kernel<FP8_E5M2, true><<<grid, ATT_THREADS, 0, s>>>(NULL, *c, lse, delta, T, NH, sm_scale, sc, amax + ATT8_DS);
    }
    cudaCheckLaunch();
}

#endif // LLMC_ATTENTION_FP8_CUH
