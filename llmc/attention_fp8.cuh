// Causal attention with FP8 operands: QK^T, PV and the four products of the backward on FP8
// tensor cores with FP32 accumulation (wgmma m64n64k32 on Hopper, mma.sync m16n8k32 elsewhere).
// The kernels are llmc/attention.cuh's, run over the operand set AttFp8 below: 64 x 64 tiles,
// one warpgroup of 4 warps of 16 rows, online softmax, the log-sum-exp saved, the backward
// split into a dK/dV and a dQ kernel (deterministic, no atomics on gradients).
//
// Quantized: Q, K, V in E4M3, each with its per-tensor scale; the probabilities P in E4M3 times
// 2^8 (P <= 1 needs no amax: 1 -> 256, and values down to 2^-17 survive as subnormals); dO and
// dS in the gradient format g (E5M2 under --fp8-format hybrid). Scales are device floats of the
// trainer's scaling block; the casts raise the amaxes of Q, K, V, dO and the dK/dV kernel dS's,
// so delayed scaling costs no extra pass. Current scaling measures first (ATT8_MEASURE, and
// attention_fp8_measure_ds, the dQ kernel without its product).
//
// FP8 tensor-core products take both operands K-major and ldmatrix cannot transpose bytes, so
// the casts write every operand in the orientation its products read: "rows" (B,NH,Tp,64) for Q,
// K, V, dO, "cols" (B,NH,64,Tp) for V^T, Q^T, K^T, dO^T, Tp = T rounded up to 64, zeros beyond T.
// A cols operand always meets an A operand made from an accumulator (P, dS), where a lane holds
// columns 2q, 2q+1, 8+2q, 9+2q of each 16 (q = lane % 4) but the product expects 4q..4q+3 (the
// same in mma.sync's and wgmma's register fragments): the casts store T in that order within
// each 16 (att8_pos), so accumulators feed the next product with no shuffle.
// On Hopper, FP8 runs only on wgmma (ptxas lowers FP8 mma.sync to FP16 HMMA plus unpacks, 1.6x
// the BF16 kernels' time). wgmma's FP8 accumulation keeps fewer bits than FP32
// (dev/test_attention_fp8's bounds). On sm_89 (Ada) FP8 mma.sync is native.
#ifndef LLMC_ATTENTION_FP8_CUH
#define LLMC_ATTENTION_FP8_CUH

#include "attention.cuh"
#include "fp8_cast.cuh"

#define ATT8_LD 80                          // the casts' staging tile: row stride (bytes) of a 64-byte row, padded
#define ATT8_TILE_BYTES (ATT_TILE * ATT8_LD)
#define ATT8_P_SCALE 256.0f                 // probabilities are cast times 2^8 (exact to undo)
// The quantized tensors of one layer's attention; a layer's scales (and amaxes) are ATT8_TENSORS
// consecutive floats in this order.
typedef enum { ATT8_Q, ATT8_K, ATT8_V, ATT8_DOUT, ATT8_DS, ATT8_TENSORS } Att8Tensor;

// attention_fp8_cast_qkv: what to write
#define ATT8_FWD 1       // q, k rows and v^T: the forward's operands
#define ATT8_BWD 2       // q, k, v rows and q^T, k^T: the backward's
#define ATT8_MEASURE 4   // only raise the amaxes (current scaling's first pass)

// FP8 copies of one layer's operands: rows (B,NH,Tp,64), cols (B,NH,64,Tp). The six of Q, K, V
// (attention_fp8_qkv_bytes) can outlive the forward in place of the BF16 QKV activation (the
// trainer's --attention fp8: the backward then casts only dO); dO's two live in scratch.
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
static inline size_t attention_fp8_qkv_bytes(int B, int T, int NH) { return 6 * attention_fp8_copy_bytes(B, T, NH); }
static inline size_t attention_fp8_dout_bytes(int B, int T, int NH) { return 2 * attention_fp8_copy_bytes(B, T, NH); }

// The copies of Q, K, V in qkv8 (attention_fp8_qkv_bytes) and of dO in dout8 (attention_fp8_dout_bytes)
static inline Att8Copies attention_fp8_carve(uint8_t* qkv8, uint8_t* dout8, int B, int T, int NH) {
    size_t n = attention_fp8_copy_bytes(B, T, NH);
    Att8Copies c;
    c.q = qkv8; c.k = qkv8 + n; c.v = qkv8 + 2 * n; c.vt = qkv8 + 3 * n; c.qt = qkv8 + 4 * n; c.kt = qkv8 + 5 * n;
    c.dout = dout8; c.doutt = dout8 + n;
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

// Operand tiles: 64 rows of 64 bytes in shared memory, 512-byte aligned, in the 64-byte swizzle
// (16-byte chunk c of row r at chunk c ^ ((r / 2) % 4)): wgmma reads them through descriptors,
// ldmatrix without bank conflicts.
#define ATT8_OP_TILE (ATT_TILE * 64)

__device__ __forceinline__ int att8_off(int r, int c) { return r * 64 + ((c ^ ((r >> 1) & 3)) << 4); }

// Starts copying a 64 x 64-byte tile (row stride ld bytes, inside the padded Tp) into smem.
// A thread copies chunk tid % 4 of rows tid / 4 + 32 j, which share their swizzle (as att_load_tile).
__device__ __forceinline__ void att8_load_tile(uint8_t* s, const uint8_t* g, long ld) {
    constexpr int STEP = ATT_THREADS / 4;   // rows a pass
    int r = threadIdx.x / 4, c = threadIdx.x % 4;
    uint32_t dst = (uint32_t)__cvta_generic_to_shared(s) + att8_off(r, c);
    const uint8_t* src = g + r * ld + c * 16;
    for (int j = 0; j < ATT_TILE / STEP; j++) {
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(dst + j * STEP * 64), "l"(src + j * STEP * ld));
    }
}

#ifdef ATT_WGMMA
// descriptor of a k-step of a tile at saddr: 8-row groups 512 bytes apart, 64-byte swizzle (a
// k-step 32 bytes on is this plus 2, as att_desc)
__device__ __forceinline__ uint64_t att8_desc(uint32_t saddr) {
    return (uint64_t)((saddr & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(512 >> 4) << 32) | ((uint64_t)2 << 62);
}

// Calls M(type of A, type of B) with the PTX type names of FA, FB.
#define ATT8_TYPED(FA, FB, M)                                                                                     \
    if constexpr (FA == FP8_E4M3 && FB == FP8_E4M3) { M("e4m3", "e4m3"); }                                        \
    else if constexpr (FA == FP8_E4M3) { M("e4m3", "e5m2"); }                                                     \
    else if constexpr (FB == FP8_E4M3) { M("e5m2", "e4m3"); }                                                     \
    else { M("e5m2", "e5m2"); }

// acc (the warpgroup's 64 x 64) (+)= A (64 x 32) @ B^T, B (64 n, 32 k) at descriptor db; A at
// descriptor da (SS) or this warp's 16 rows in registers (RS); async
template <Fp8Format FA, Fp8Format FB>
__device__ __forceinline__ void att8_wgmma_ss(float acc[8][4], uint64_t da, uint64_t db, int accumulate) {
#define ATT8_SS(TA, TB)                                                                                           \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                                    \
                 "wgmma.mma_async.sync.aligned.m64n64k32.f32." TA "." TB " " ATT_ACC_REGS ", %32, %33, p, 1, 1;\n}\n" \
                 : ATT_ACC_OPERANDS(acc) : "l"(da), "l"(db), "r"(accumulate))
    ATT8_TYPED(FA, FB, ATT8_SS)
#undef ATT8_SS
}

template <Fp8Format FA, Fp8Format FB>
__device__ __forceinline__ void att8_wgmma_rs(float acc[8][4], const uint32_t a[4], uint64_t db) {
#define ATT8_RS(TA, TB)                                                                                           \
    asm volatile("wgmma.mma_async.sync.aligned.m64n64k32.f32." TA "." TB " " ATT_ACC_REGS ", {%32,%33,%34,%35}, %36, 1, 1, 1;\n" \
                 : ATT_ACC_OPERANDS(acc) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db))
    ATT8_TYPED(FA, FB, ATT8_RS)
#undef ATT8_RS
}
#undef ATT8_TYPED
#else
__device__ __forceinline__ void att8_ldsm_x4(uint32_t* r, uint32_t a) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}

// acc (16 x 64) (+)= a (16 x 64 bytes of k) @ S^T, tile S (64 n, 64 k)
template <Fp8Format FA, Fp8Format FB>
__device__ __forceinline__ void att8_mma_sync_abt(float acc[8][4], const uint32_t a[2][4], uint32_t bb, int accumulate, int lane) {
    if (!accumulate) { att_zero(acc); }
    for (int ks = 0; ks < 2; ks++) {
        for (int np = 0; np < 4; np++) {
            uint32_t b[4];
            att8_ldsm_x4(b, bb + att8_off(np * 16 + (lane % 8) + (lane / 16) * 8, 2 * ks + (lane / 8) % 2));
            att8_mma<FA, FB>(acc[2 * np], a[ks], b[0], b[1]);
            att8_mma<FA, FB>(acc[2 * np + 1], a[ks], b[2], b[3]);
        }
    }
}
#endif

// Products, issued as llmc/attention.cuh's (att_mma_wait completes them); AttFp8's abt and ab.
// Every B operand is a K-major tile.
// acc (16 x 64 per warp) = A @ B^T, tiles A (64 m, 64 k) and B (64 n, 64 k): operands kept across
// the key loop stay in shared memory (see llmc/attention.cuh's att_mma_abt)
template <Fp8Format FA, Fp8Format FB>
__device__ __forceinline__ void att8_mma_tt(float acc[8][4], const uint8_t* sa, const uint8_t* sb, int lane) {
    uint32_t ba = (uint32_t)__cvta_generic_to_shared(sa), bb = (uint32_t)__cvta_generic_to_shared(sb);
#ifdef ATT_WGMMA
    att_wgmma_begin();
    for (int ks = 0; ks < 2; ks++) { att8_wgmma_ss<FA, FB>(acc, att8_desc(ba) + 2 * ks, att8_desc(bb) + 2 * ks, ks > 0); }
    att_wgmma_commit();
#else
    uint32_t a[2][4];
    int row0 = (threadIdx.x / WARP_SIZE) % 4 * 16;
    for (int ks = 0; ks < 2; ks++) {
        att8_ldsm_x4(a[ks], ba + att8_off(row0 + (lane % 8) + ((lane / 8) % 2) * 8, 2 * ks + lane / 16));
    }
    att8_mma_sync_abt<FA, FB>(acc, a, bb, 0, lane);
#endif
}

// acc (16 x 64 per warp) += a (16 x 64 bytes, registers; unchanged until att_mma_wait) @ S^T, tile S (64 n, 64 k)
template <Fp8Format FA, Fp8Format FB>
__device__ __forceinline__ void att8_mma_abt(float acc[8][4], const uint32_t a[2][4], const uint8_t* s, int lane) {
    uint32_t bb = (uint32_t)__cvta_generic_to_shared(s);
#ifdef ATT_WGMMA
    att_wgmma_begin();
    for (int ks = 0; ks < 2; ks++) { att8_wgmma_rs<FA, FB>(acc, a[ks], att8_desc(bb) + 2 * ks); }
    att_wgmma_commit();
#else
    att8_mma_sync_abt<FA, FB>(acc, a, bb, 1, lane);
#endif
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

// The operand set of the shared kernels (llmc/attention.cuh) for FP8 copies; G is the format of
// dO and dS.
template <Fp8Format G>
struct AttFp8 {
    static constexpr int TILE_BYTES = ATT8_OP_TILE;
    static constexpr bool SEPARATE_T = true;
    static constexpr bool QUANTIZED = true;
    struct Frag { uint32_t r[2][4]; };
    struct Args { Att8Copies c; const float* sc; };   // sc: the layer's ATT8_TENSORS scales
    struct View {
        const uint8_t* rows[4];   // Q, K, V, dO of the head: (Tp, 64)
        const uint8_t* cols[4];   // Q^T, K^T, V^T, dO^T: (64, Tp)
        int Tp;
        __device__ __forceinline__ void load(uint8_t* tile, int op, int t) const {
            if (op < ATT_QT) { att8_load_tile(tile, rows[op] + (long)t * ATT_TILE * ATT_HS, ATT_HS); }
            else { att8_load_tile(tile, cols[op - ATT_QT] + (long)t * ATT_TILE, Tp); }
        }
    };
    static __device__ __forceinline__ View view(const Args& a, int b, int h, int T, int NH) {
        int Tp = attention_fp8_tp(T);
        long o = ((long)b * NH + h) * Tp * ATT_HS;
        const Att8Copies& c = a.c;
        View v = {{c.q + o, c.k + o, c.v + o, c.dout + o}, {c.qt + o, c.kt + o, c.vt + o, c.doutt + o}, Tp};
        return v;
    }
    static constexpr __host__ __device__ Fp8Format fmt(AttRole r) { return r == ATT_X ? FP8_E4M3 : G; }
    template <AttRole FA, AttRole FB>
    static __device__ __forceinline__ void abt(float acc[8][4], const uint8_t* sa, const uint8_t* sb, int lane) {
        att8_mma_tt<fmt(FA), fmt(FB)>(acc, sa, sb, lane);
    }
    template <AttRole FA, AttRole FB>
    static __device__ __forceinline__ void ab(float acc[8][4], const Frag& a, const uint8_t* s, int lane) {
        att8_mma_abt<fmt(FA), fmt(FB)>(acc, a.r, s, lane);
    }
    template <AttRole F>
    static __device__ __forceinline__ void to_frag(Frag& a, const float c[8][4], float scale) { att8_c_to_a<fmt(F)>(a.r, c, scale); }
    static __device__ __forceinline__ AttScales scales(float sm_scale, const float* sc) {
        float ds = sc[ATT8_DS];
        AttScales s = {sm_scale * ATT_LOG2E / (sc[ATT8_Q] * sc[ATT8_K]), ATT8_P_SCALE, ds, 1.0f / (ATT8_P_SCALE * sc[ATT8_V]),
                       1.0f / (sc[ATT8_V] * sc[ATT8_DOUT]), sm_scale / (ds * sc[ATT8_K]), sm_scale / (ds * sc[ATT8_Q]),
                       1.0f / (ATT8_P_SCALE * sc[ATT8_DOUT])};
        return s;
    }
};
// its backward's shared memory stays within the 48 KB a launch may take without an attribute
static_assert(att_bwd_smem<AttFp8<FP8_E4M3>>() <= 48 * 1024, "FP8 attention backward: shared memory over 48 KB");

// ---------------------------------------------------------------------------------------
// Casts. grid (Tp/64, NH, B), 128 threads: a thread casts 32 values of one row of the tile (of
// each of Q, K, V, loaded together), writes them as rows, and stages them for the cols copies,
// which a thread writes 16 positions at a time from a column of the staged tile (a warp reads
// 32 consecutive bytes of a row).

// Writes a staged 64 x 64 tile (rows of time) as the cols copy of times tile*64.. of a (64, Tp) slice.
__device__ __forceinline__ void att8_write_cols(uint8_t* cols, const uint8_t* tile, int tt, int Tp) {
    int d = threadIdx.x % ATT_HS;
    for (int g = threadIdx.x / ATT_HS; g < 4; g += ATT_THREADS / ATT_HS) {
        u8x16 o;
        for (int p = 0; p < 16; p++) { o.v[p] = tile[(16 * g + att8_time_at(p)) * ATT8_LD + d]; }
        store16(cols + (long)d * Tp + (long)tt * ATT_TILE + 16 * g, o);
    }
}

// One thread's 32 values of row t (< T, else zeros) of a head slice src (row stride ld)
__device__ __forceinline__ void att8_load32(x8 v[4], const floatX* src, int t, int T, long ld) {
    for (int j = 0; j < 4; j++) {
        if (t < T) { v[j] = load16(src + (long)t * ld + 8 * j); }
        else { for (int e = 0; e < 8; e++) { v[j].v[e] = __float2bfloat16(0.0f); } }
    }
}

// ... cast into code[32]
template <Fp8Format F, bool STATS>
__device__ __forceinline__ void att8_cast32(uint8_t code[32], const x8 v[4], float scale, CastAcc& acc) {
    for (int j = 0; j < 4; j++) { cast8<F, STATS>(code + 8 * j, v[j], scale, acc); }
}

template <bool STATS>
__global__ void __launch_bounds__(ATT_THREADS) attention_fp8_cast_qkv_kernel(Att8Copies c, const floatX* qkv, int T, int NH,
                                                                             const float* sc, float* amax,
                                                                             unsigned long long* counts, int flags) {
    __shared__ alignas(16) uint8_t tile[3][ATT8_TILE_BYTES];
    int tt = blockIdx.x, h = blockIdx.y, b = blockIdx.z, Tp = gridDim.x * ATT_TILE, C = NH * ATT_HS;
    int r = threadIdx.x / 2, half = threadIdx.x % 2, t = tt * ATT_TILE + r;
    long bh = (long)b * NH + h;
    int measure = flags & ATT8_MEASURE, fwd = flags & ATT8_FWD, bwd = flags & ATT8_BWD;
    x8 v[3][4];   // q, k, v: all loads in flight together
    for (int w = 0; w < 3; w++) { att8_load32(v[w], qkv + (long)b * T * 3 * C + w * C + h * ATT_HS + half * 32, t, T, 3L * C); }
    uint8_t* cols[3];
    for (int w = 0; w < 3; w++) {
        uint8_t* rows = measure || (w == 2 && !bwd) ? NULL : w == 0 ? c.q : w == 1 ? c.k : c.v;
        cols[w] = measure || (w < 2 ? !bwd : !fwd) ? NULL : w == 0 ? c.qt : w == 1 ? c.kt : c.vt;
        alignas(16) uint8_t code[32];
        CastAcc acc = {0u, 0u, 0u};
        att8_cast32<FP8_E4M3, STATS>(code, v[w], measure ? 1.0f : sc[w], acc);
        if (rows != NULL) {
            uint8_t* dst = rows + (bh * Tp + t) * ATT_HS + half * 32;
            store16(dst, *reinterpret_cast<u8x16*>(code));
            store16(dst + 16, *reinterpret_cast<u8x16*>(code + 16));
        }
        if (cols[w] != NULL) {
            for (int j = 0; j < 32; j += 16) { *reinterpret_cast<u8x16*>(tile[w] + r * ATT8_LD + half * 32 + j) = *reinterpret_cast<u8x16*>(code + j); }
        }
        if (amax != NULL || STATS) {
            cast_acc_commit<STATS>(acc, amax != NULL ? amax + w : NULL, counts + 2 * w);
            __syncthreads();   // the commit's partials are reused
        }
    }
    __syncthreads();
    for (int w = 0; w < 3; w++) {   // uniform over the block
        if (cols[w] != NULL) { att8_write_cols(cols[w] + bh * ATT_HS * Tp, tile[w], tt, Tp); }
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
    x8 v[4];
    att8_load32(v, dout + off, t, T, C);
    att8_cast32<F, STATS>(code, v, scale, acc);
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
    AttFp8<FP8_E4M3>::Args args = {*c, sc};
    attention_forward_kernel<AttFp8<FP8_E4M3>><<<grid, ATT_THREADS, 0, s>>>(out, lse, args, T, NH, sm_scale);
    cudaCheckLaunch();
}

// With measure: amax[ATT8_DS] raised with max |dS| (current scaling's pass before the cast);
// else dqkv (B,T,3C) from the copies of cast_qkv (ATT8_BWD) and cast_dout, the forward's lse and
// delta, dS's amax raised into amax[ATT8_DS] (amax NULL: not recorded).
template <Fp8Format G>
static inline void att8_backward_launch(floatX* dqkv, const Att8Copies* c, const float* lse, const float* delta, int B, int T,
                                        int NH, float sm_scale, const float* sc, float* amax, int measure,
                                        const AttGradOut* go, cudaStream_t s) {
    dim3 grid(attention_fp8_tp(T) / ATT_TILE, NH, B);
    typename AttFp8<G>::Args args = {*c, sc};
    constexpr int smem = att_bwd_smem<AttFp8<G>>();
    float* ads = amax != NULL ? amax + ATT8_DS : NULL;
    AttGradOut g = attention_grad_out_checked(go, T);
    AttRowDelta rd = {NULL, NULL, NULL};   // delta comes from the dO cast
    if (measure) {
        attention_backward_dq_kernel<AttFp8<G>, true><<<grid, ATT_THREADS, smem, s>>>(NULL, args, lse, delta, T, NH, sm_scale, ads, g, rd);
    } else {
        attention_backward_dkdv_kernel<AttFp8<G>><<<grid, ATT_THREADS, smem, s>>>(dqkv, args, lse, delta, T, NH, sm_scale, ads, g);
        cudaCheckLaunch();
        attention_backward_dq_kernel<AttFp8<G>, false><<<grid, ATT_THREADS, smem, s>>>(dqkv, args, lse, delta, T, NH, sm_scale, NULL, g, rd);
    }
    cudaCheckLaunch();
}

// go (NULL: none): what it also writes for the QKV linear (AttGradOut, llmc/attention.cuh)
static inline void attention_fp8_backward(floatX* dqkv, const Att8Copies* c, const float* lse, const float* delta, int B,
                                          int T, int NH, float sm_scale, const float* sc, float* amax, Fp8Format g,
                                          const AttGradOut* go, cudaStream_t s) {
    if (g == FP8_E4M3) { att8_backward_launch<FP8_E4M3>(dqkv, c, lse, delta, B, T, NH, sm_scale, sc, amax, 0, go, s); }
    else { att8_backward_launch<FP8_E5M2>(dqkv, c, lse, delta, B, T, NH, sm_scale, sc, amax, 0, go, s); }
}

// amax[ATT8_DS] raised with max |dS|, the backward's dS before its cast
static inline void attention_fp8_measure_ds(float* amax, const Att8Copies* c, const float* lse, const float* delta, int B,
                                            int T, int NH, float sm_scale, const float* sc, Fp8Format g, cudaStream_t s) {
    if (g == FP8_E4M3) { att8_backward_launch<FP8_E4M3>(NULL, c, lse, delta, B, T, NH, sm_scale, sc, amax, 1, NULL, s); }
    else { att8_backward_launch<FP8_E5M2>(NULL, c, lse, delta, B, T, NH, sm_scale, sc, amax, 1, NULL, s); }
}

#endif // LLMC_ATTENTION_FP8_CUH
