// BF16 -> block-scaled cast kernels for the MXFP8 and NVFP4 modes (issue 7), and their
// dequantization to BF16. Bit-identical to the host+device reference in llmc/mx.h: the kernels
// call its functions for every scale, factor and E2M1 code; only the FP8 element casts use
// cvt.rn.satfinite, which is bit-identical to fp8_encode (dev/test_fp8 checks every BF16 input).
// MXFP8 codes are one per byte, as in mx.h; NVFP4 codes are packed two per byte wherever these
// kernels write or read them (mx.h's order: mx_e2m1_pack), so (R,C) codes take R*C/2 bytes.
// dev/test_mx checks every kernel against mx.h.
//   MXFP8 rows          codes (R,C), one E8M0 scale per 32 along C
//   MXFP8 columns       codes_t (C,R), one scale per 32 along R: the K-major copy of the
//                       transpose for a GEMM that contracts over R (wgrad: dW = dY^T X)
//   NVFP4 rows          E2M1 codes (R,C), one E4M3 scale per 16 along C, tensor scale s_t;
//                       optional stochastic rounding
//   NVFP4 16x16 tiles   weights: W and W^T quantize identically; codes and optionally codes_t
//   NVFP4 columns       codes_t (C,R), 16-blocks along R, optional 16-point random Hadamard
//                       transform along R (the wgrad GEMM's inputs) and stochastic rounding
//   dequantization      codes and block scales -> BF16, exact (MXFP8: but for blocks of tiny
//                       magnitude, see mxfp8_dequantize_kernel), for "path (a)" in mx.h: a
//                       BF16 GEMM with FP32 accumulation of exactly the quantized values
// Stochastic rounding takes its random bits from hash_u32 of (seed, index of the code in its
// output array), so results do not depend on the launch and the host reproduces them.
// One thread owns 16 or 32 values of a block in registers (an MXFP8 row block: two threads and
// one shuffle); inputs and codes move in 16-byte vectors (16 packed NVFP4 codes: 8 bytes); the
// column variants stage the tile in shared memory so that both the BF16 reads and the
// transposed code writes are coalesced.
#ifndef LLMC_MX_CAST_CUH
#define LLMC_MX_CAST_CUH

#include <cuda_fp16.h>
#include "fp8_cast.cuh"   // cuda_fp8.h, u8x16, absmax_bf16, fp8_check_aligned
#include "mx.h"

#define MX_THREADS 256
#define MX_COL_TILE_R 128   // column kernels: a block quantizes 128 rows x 64 columns,
#define MX_COL_TILE_C 64    // a thread 32 consecutive rows of one column
#define MX_W_TILE 64        // 16x16-tile kernel: a block covers 64x64 (4x4 tiles)

// NVFP4's per-tensor scale s_t (mx_nvfp4_tensor_scale): a value the host knows, or a device
// float written earlier on the stream (nvfp4_tensor_scale*), which needs no host sync.
typedef struct { float value; const float* dev; } Nvfp4Scale;
static inline Nvfp4Scale nvfp4_scale_value(float s_t) { Nvfp4Scale s = {s_t, NULL}; return s; }
static inline Nvfp4Scale nvfp4_scale_device(const float* s_t) { Nvfp4Scale s = {0.0f, s_t}; return s; }
__device__ __forceinline__ float nvfp4_scale_get(const Nvfp4Scale& s) { return s.dev != NULL ? *s.dev : s.value; }

// Stochastic rounding's random bits for the code at index i of its output array. The high
// half of i goes into the seed so that tensors beyond 2^32 elements do not repeat the bits.
__host__ __device__ __forceinline__ uint32_t mx_sr_bits(uint32_t seed, long i) {
    return hash_u32((uint32_t)i, seed ^ (uint32_t)((unsigned long)i >> 32));
}

// ------------------------------------------------------------------------------------------
// device pieces: one block in registers

// v[0..16) = 16 consecutive bf16 values at p (16-byte aligned)
__device__ __forceinline__ void load16_bf16(float* v, const floatX* p) {
    x8 a = load16_cs(p), b = load16_cs(p + 8);
#pragma unroll
    for (int k = 0; k < 8; k++) { v[k] = __bfloat162float(a.v[k]); v[k + 8] = __bfloat162float(b.v[k]); }
}

// 1 / decode(sc) exactly (a power of two, 2^127 for code 0 included; NaN for NaN): multiplying
// by it rounds x / scale once, as mxfp8_quantize_block's division does.
__device__ __forceinline__ float mx_e8m0_inverse(uint8_t sc) {
    return mx_e8m0_decode(sc == E8M0_NAN ? (uint8_t)E8M0_NAN : (uint8_t)(254 - sc));
}

// q[k] = fp8(v[k] * inv), k < N (even)
template <Fp8Format F, int N>
__device__ __forceinline__ void mxfp8_encode(uint8_t* q, const float* v, float inv) {
    constexpr __nv_fp8_interpretation_t kind = F == FP8_E4M3 ? __NV_E4M3 : __NV_E5M2;
#pragma unroll
    for (int k = 0; k < N; k += 2) {
        __nv_fp8x2_storage_t p = __nv_cvt_float2_to_fp8x2(make_float2(v[k] * inv, v[k + 1] * inv), __NV_SATFINITE, kind);
        q[k] = (uint8_t)(p & 0xFF);   // low byte: the first value
        q[k + 1] = (uint8_t)(p >> 8);
    }
}

// 16 E2M1 codes (one per byte) -> 8 packed bytes at p (8-byte aligned)
__device__ __forceinline__ void store_e2m1x16(uint8_t* p, const uint8_t* q) {
    uint32_t w[2] = {0u, 0u};
#pragma unroll
    for (int k = 0; k < 8; k++) { w[k / 4] |= (uint32_t)mx_e2m1_pack2(q[2 * k], q[2 * k + 1]) << (8 * (k % 4)); }
    *reinterpret_cast<uint2*>(p) = make_uint2(w[0], w[1]);
}

// q[0..16) = the 16 E2M1 codes packed in the 8 bytes at p (8-byte aligned)
__device__ __forceinline__ void load_e2m1x16(uint8_t* q, const uint8_t* p) {
    uint2 v = __ldcs(reinterpret_cast<const uint2*>(p));
#pragma unroll
    for (int k = 0; k < 8; k++) {
        uint32_t b = ((k < 4 ? v.x : v.y) >> (8 * (k % 4))) & 0xFFu;
        q[2 * k] = (uint8_t)(b & 0xFu);
        q[2 * k + 1] = (uint8_t)(b >> 4);
    }
}

// One NVFP4 block of 16 values: writes the E2M1 codes, returns the E4M3 scale; SR uses the
// random bits of output indices idx0..idx0+15. The steps and their order are mx.h's.
template <bool SR>
__device__ __forceinline__ uint8_t nvfp4_block(uint8_t* q, const float* v, float s_t, uint32_t seed, long idx0) {
    uint8_t sc = mx_nvfp4_block_scale(mx_absmax(v, NVFP4_BLOCK), s_t);
    float f = mx_nvfp4_factor(sc, s_t);
#pragma unroll
    for (int k = 0; k < NVFP4_BLOCK; k++) {
        q[k] = SR ? mx_e2m1_encode_sr(v[k] * f, mx_sr_bits(seed, idx0 + k)) : mx_e2m1_encode(v[k] * f);
    }
    return sc;
}

// ------------------------------------------------------------------------------------------
// row blocks: thread t quantizes elements [16t, 16t + 16) of the flattened tensor

// codes (n), scales (n / 32) from in (n), n % 32 == 0. Threads 2k and 2k+1 share a block: one
// shuffle of their amaxes (as float bits: |x| orders like its bits, NaN above inf, as mx_absmax).
template <Fp8Format F>
__global__ void __launch_bounds__(MX_THREADS)
mxfp8_quantize_rows_kernel(uint8_t* codes, uint8_t* scales, const floatX* in, long n, MxScaleRule rule) {
    long i = ((long)blockIdx.x * blockDim.x + threadIdx.x) * 16;
    bool live = i < n;   // both threads of a pair, or neither: every lane reaches the shuffle
    float v[16] = {0.0f};
    if (live) { load16_bf16(v, in + i); }
    uint32_t m = fp8_float_bits(mx_absmax(v, 16));
    m = max(m, __shfl_xor_sync(0xffffffffu, m, 1));
    uint8_t sc = mx_block_scale(fp8_bits_float(m), F, rule);
    if (live) {
        u8x16 o;
        mxfp8_encode<F, 16>(o.v, v, mx_e8m0_inverse(sc));
        store16(codes + i, o);
        if ((threadIdx.x & 1) == 0) { scales[i / MXFP8_BLOCK] = sc; }
    }
}

// codes (n, packed: n / 2 bytes), scales (n / 16) from in (n), n % 16 == 0
template <bool SR>
__global__ void __launch_bounds__(MX_THREADS)
nvfp4_quantize_rows_kernel(uint8_t* codes, uint8_t* scales, const floatX* in, long n, Nvfp4Scale st, uint32_t seed) {
    long i = ((long)blockIdx.x * blockDim.x + threadIdx.x) * 16;
    if (i >= n) { return; }
    float v[16];
    load16_bf16(v, in + i);
    uint8_t q[16];
    scales[i / NVFP4_BLOCK] = nvfp4_block<SR>(q, v, nvfp4_scale_get(st), seed, i);
    store_e2m1x16(codes + i / 2, q);
}

// ------------------------------------------------------------------------------------------
// column blocks, written transposed: codes_t (C,R), scales_t (C, R / block)

// The per-format part of the column kernel: quantizes the 32 values v of output row c starting
// at column r (codes into q, one per byte), writes their scales; rows: the output's row length
// (R). PACK: codes per byte of the output.
template <Fp8Format F>
struct Mxfp8ColQuant {
    static constexpr int PACK = 1;
    MxScaleRule rule;
    __device__ __forceinline__ void operator()(uint8_t* q, float* v, uint8_t* scales_t, int rows, int c, int r) const {
        uint8_t sc = mx_block_scale(mx_absmax(v, MXFP8_BLOCK), F, rule);
        mxfp8_encode<F, MXFP8_BLOCK>(q, v, mx_e8m0_inverse(sc));
        scales_t[(long)c * (rows / MXFP8_BLOCK) + r / MXFP8_BLOCK] = sc;
    }
};

// Two 16-blocks; the second is past the end when R % 32 == 16. RHT: mx_rht_forward on each
// block before its amax (x <- H16 D x / 4, along R).
template <bool RHT, bool SR>
struct Nvfp4ColQuant {
    static constexpr int PACK = 2;
    Nvfp4Scale st;
    uint64_t rht_seed;
    uint32_t sr_seed;
    __device__ __forceinline__ void operator()(uint8_t* q, float* v, uint8_t* scales_t, int rows, int c, int r) const {
        float s_t = nvfp4_scale_get(st);
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int rb = r + h * NVFP4_BLOCK;
            if (rb >= rows) { break; }
            if (RHT) { mx_rht_forward(v + h * NVFP4_BLOCK, NVFP4_BLOCK, rht_seed); }
            long idx = (long)c * rows + rb;
            scales_t[idx / NVFP4_BLOCK] = nvfp4_block<SR>(q + h * NVFP4_BLOCK, v + h * NVFP4_BLOCK, s_t, sr_seed, idx);
        }
    }
};

// in (R,C) -> codes_t (C,R), scales_t. R a multiple of the block (32 or 16), C of 8. Three
// phases: the 128x64 BF16 tile into shared memory (16-byte loads, whole rows); thread (j, k)
// quantizes rows 32k..32k+31 of tile column j (a warp reads 32 adjacent columns of one row:
// no bank conflicts) and stages its 32 codes (packed: 16 bytes) in the transposed tile `out`;
// then each output row segment of 128 codes is written 16 codes (16 or 8 bytes) per thread.
// `out` rows are padded by 16 (packed: 8) bytes so that the staging stores of adjacent columns
// (144 or 72 bytes apart) fall into distinct banks.
template <class Q>
__global__ void __launch_bounds__(MX_THREADS)
mx_quantize_cols_kernel(uint8_t* codes_t, uint8_t* scales_t, const floatX* in, int rows, int cols, Q quant) {
    constexpr int P = Q::PACK;
    __shared__ __align__(16) floatX tile[MX_COL_TILE_R][MX_COL_TILE_C];
    __shared__ __align__(16) uint8_t out[MX_COL_TILE_C][(MX_COL_TILE_R + 16) / P];
    int r0 = blockIdx.y * MX_COL_TILE_R, c0 = blockIdx.x * MX_COL_TILE_C;
    for (int id = threadIdx.x; id < MX_COL_TILE_R * MX_COL_TILE_C / 8; id += blockDim.x) {
        int r = id / (MX_COL_TILE_C / 8), c = (id % (MX_COL_TILE_C / 8)) * 8;
        if (r0 + r < rows && c0 + c < cols) { store16(&tile[r][c], load16_cs(in + (size_t)(r0 + r) * cols + c0 + c)); }
    }
    __syncthreads();
    int j = threadIdx.x % MX_COL_TILE_C, k = threadIdx.x / MX_COL_TILE_C;
    if (c0 + j < cols && r0 + 32 * k < rows) {
        float v[32];
#pragma unroll
        for (int i = 0; i < 32; i++) { v[i] = __bfloat162float(tile[32 * k + i][j]); }
        __align__(16) uint8_t q[32];
        quant(q, v, scales_t, rows, c0 + j, r0 + 32 * k);
        uint8_t* o = &out[j][32 * k / P];
        if (P == 1) {
            *reinterpret_cast<u8x16*>(o) = *reinterpret_cast<const u8x16*>(q);
            *reinterpret_cast<u8x16*>(o + 16) = *reinterpret_cast<const u8x16*>(q + 16);
        } else {
            store_e2m1x16(o, q);
            store_e2m1x16(o + 8, q + 16);
        }
    }
    __syncthreads();
    for (int id = threadIdx.x; id < MX_COL_TILE_C * MX_COL_TILE_R / 16; id += blockDim.x) {
        int c = id / (MX_COL_TILE_R / 16), r = (id % (MX_COL_TILE_R / 16)) * 16;
        if (c0 + c < cols && r0 + r < rows) {
            uint8_t* dst = codes_t + ((size_t)(c0 + c) * rows + r0 + r) / P;
            if (P == 1) { store16(dst, *reinterpret_cast<const u8x16*>(&out[c][r])); }
            else { *reinterpret_cast<uint2*>(dst) = *reinterpret_cast<const uint2*>(&out[c][r / 2]); }
        }
    }
}

// ------------------------------------------------------------------------------------------
// NVFP4 16x16 tiles (mx_nvfp4_quantize_tiles): codes (R,C), scales (R/16, C/16), codes_t (C,R)
// when not NULL (codes packed); R and C multiples of 16. A block covers 64x64: thread t holds
// row t % 16 of tile t / 16 (16 values), the tile's amax is a shuffle over its 16 lanes (a
// half-warp). The transposed copy goes through shared memory as in cast_transpose_to_fp8_kernel:
// each 16-row group of the staging tile sits 16 bytes further right, which keeps both passes
// conflict-free.
__global__ void __launch_bounds__(MX_THREADS)
nvfp4_quantize_tiles_kernel(uint8_t* codes, uint8_t* codes_t, uint8_t* scales, const floatX* in, int rows, int cols,
                            Nvfp4Scale st) {
    __shared__ __align__(16) uint8_t tile[MX_W_TILE][MX_W_TILE + 48];
    int r0 = blockIdx.y * MX_W_TILE, c0 = blockIdx.x * MX_W_TILE;
    int tt = threadIdx.x / 16, ti = tt / 4, tj = tt % 4;          // tile within the block
    int tr = 16 * ti + threadIdx.x % 16, tc = 16 * tj;            // row, first column in the block
    bool live = r0 + 16 * ti < rows && c0 + tc < cols;            // the whole 16x16 tile, or none of it
    float v[16] = {0.0f};
    if (live) { load16_bf16(v, in + (size_t)(r0 + tr) * cols + c0 + tc); }
    uint32_t m = fp8_float_bits(mx_absmax(v, 16));
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) { m = max(m, __shfl_xor_sync(0xffffffffu, m, o)); }   // within the half-warp
    float s_t = nvfp4_scale_get(st);
    uint8_t sc = mx_nvfp4_block_scale(fp8_bits_float(m), s_t);
    float f = mx_nvfp4_factor(sc, s_t);
    if (live) {
        u8x16 o;
#pragma unroll
        for (int k = 0; k < 16; k++) { o.v[k] = mx_e2m1_encode(v[k] * f); }
        store_e2m1x16(codes + ((size_t)(r0 + tr) * cols + c0 + tc) / 2, o.v);
        if (threadIdx.x % 16 == 0) { scales[(long)((r0 + tr) / 16) * (cols / 16) + (c0 + tc) / 16] = sc; }
        if (codes_t != NULL) { *reinterpret_cast<u8x16*>(&tile[tr][(tr / 16) * 16 + tc]) = o; }
    }
    if (codes_t == NULL) { return; }
    __syncthreads();
    int j = threadIdx.x / 4, k = threadIdx.x % 4;   // block column, 16-row group
    if (c0 + j < cols && r0 + 16 * k < rows) {
        u8x16 o;
#pragma unroll
        for (int q = 0; q < 16; q++) { o.v[q] = tile[16 * k + q][16 * k + j]; }
        store_e2m1x16(codes_t + ((size_t)(c0 + j) * rows + r0 + 16 * k) / 2, o.v);
    }
}

// ------------------------------------------------------------------------------------------
// NVFP4 tensor scale on the device

// s_t (1 float) from amax (1 float)
__global__ void nvfp4_tensor_scale_kernel(float* s_t, const float* amax) { *s_t = mx_nvfp4_tensor_scale(*amax); }

// amax = max(amax, max |R x| over in (R,C)), the transform along R as nvfp4 columns with RHT
// apply it; R % 16 == 0, C % 8 == 0. Thread: 16 rows x 8 columns (16-byte loads).
__global__ void __launch_bounds__(MX_THREADS)
nvfp4_rht_absmax_kernel(float* amax, const floatX* in, int rows, int cols, uint64_t seed) {
    __shared__ uint32_t part[MX_THREADS / WARP_SIZE];
    long g = (long)blockIdx.x * blockDim.x + threadIdx.x;
    int ncg = cols / 8;
    uint32_t m = 0;
    if (g < (long)ncg * (rows / 16)) {
        const floatX* p = in + (size_t)(g / ncg) * 16 * cols + (g % ncg) * 8;
        x8 x[16];
#pragma unroll
        for (int i = 0; i < 16; i++) { x[i] = load16_cs(p + (size_t)i * cols); }
#pragma unroll
        for (int c = 0; c < 8; c++) {
            float v[16];
#pragma unroll
            for (int i = 0; i < 16; i++) { v[i] = __bfloat162float(x[i].v[c]); }
            mx_rht_forward(v, 16, seed);
            m = max(m, fp8_float_bits(mx_absmax(v, 16)));
        }
    }
    m = __reduce_max_sync(0xffffffffu, m);
    if (threadIdx.x % WARP_SIZE == 0) { part[threadIdx.x / WARP_SIZE] = m; }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)blockDim.x / WARP_SIZE; w++) { m = max(m, part[w]); }
        atomicMax(reinterpret_cast<unsigned int*>(amax), m);
    }
}

// ------------------------------------------------------------------------------------------
// dequantization to BF16: thread t converts elements [16t, 16t + 16)

// out (n) = decode(codes (n)) * 2^(scales (n/32)), as __float2bfloat16_rn of mx.h's float
// product. Exact (an FP8 value has at most 4 significant bits) for every finite product with a
// scale of at least 2^-124 (E4M3) or 2^-117 (E5M2) (dev/test_mx checks every code and scale).
// Below that (blocks whose amax is under about 2^-116 for E4M3, 2^-102 for E5M2) a product
// can fall between BF16's subnormals and rounds; a block reaching the top 1/16 of BF16's largest binade can
// round up to 2^128, inf (the host's float product does the same). A NaN scale gives NaN.
template <Fp8Format F>
__global__ void __launch_bounds__(MX_THREADS)
mxfp8_dequantize_kernel(floatX* out, const uint8_t* codes, const uint8_t* scales, long n) {
    constexpr __nv_fp8_interpretation_t kind = F == FP8_E4M3 ? __NV_E4M3 : __NV_E5M2;
    long i = ((long)blockIdx.x * blockDim.x + threadIdx.x) * 16;
    if (i >= n) { return; }
    u8x16 q = load16_cs(codes + i);
    float s = mx_e8m0_decode(scales[i / MXFP8_BLOCK]);
    x8 o[2];
#pragma unroll
    for (int k = 0; k < 16; k += 2) {   // fp8 -> half is exact for both formats (fp8_decode's values)
        float2 f = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)(q.v[k] | q.v[k + 1] << 8), kind)));
        __nv_bfloat162 b = __floats2bfloat162_rn(f.x * s, f.y * s);
        o[k / 8].v[k % 8] = b.x;
        o[k / 8].v[k % 8 + 1] = b.y;
    }
    store16(out + i, o[0]);
    store16(out + i + 8, o[1]);
}

// out (n) = decode_e2m1(codes (n, packed)) * decode_e4m3(block scale), without 1/s_t (it goes
// into the GEMM's alpha): exact, a product of at most 2 + 4 significant bits within [2^-10, 2688].
// Scales (R, C/16) for rows, (R/16, C/16) for TILES.
template <bool TILES>
__global__ void __launch_bounds__(MX_THREADS)
nvfp4_dequantize_kernel(floatX* out, const uint8_t* codes, const uint8_t* scales, long n, int cols) {
    long i = ((long)blockIdx.x * blockDim.x + threadIdx.x) * 16;
    if (i >= n) { return; }
    long si = TILES ? (i / cols / 16) * (cols / 16) + (i % cols) / 16 : i / 16;
    float d = fp8_decode(scales[si], FP8_E4M3);
    uint8_t q[16];
    load_e2m1x16(q, codes + i / 2);
    x8 o[2];
#pragma unroll
    for (int k = 0; k < 16; k++) { o[k / 8].v[k % 8] = __float2bfloat16_rn(mx_e2m1_decode(q[k]) * d); }
    store16(out + i, o[0]);
    store16(out + i + 8, o[1]);
}

// ------------------------------------------------------------------------------------------
// host wrappers: shapes and alignment checked, then one launch on stream s

static inline void mx_check_shape(bool ok, const char* what, int rows, int cols, const char* need) {
    if (!ok) { die("internal: %s of (%d,%d): %s", what, rows, cols, need); }
}

static inline int mx_grid16(long n) { return ceil_div(n / 16, MX_THREADS); }   // a thread per 16 elements

// codes (R,C), scales (R, C/32); C % 32 == 0
static inline void mxfp8_quantize_rows(uint8_t* codes, uint8_t* scales, const floatX* in, int rows, int cols, Fp8Format f,
                                       MxScaleRule rule, cudaStream_t s) {
    mx_check_shape(cols % MXFP8_BLOCK == 0, "MXFP8 row cast", rows, cols, "columns not a multiple of 32");
    fp8_check_aligned(in, "input");
    fp8_check_aligned(codes, "codes");
    long n = (long)rows * cols;
    if (f == FP8_E4M3) { mxfp8_quantize_rows_kernel<FP8_E4M3><<<mx_grid16(n), MX_THREADS, 0, s>>>(codes, scales, in, n, rule); }
    else { mxfp8_quantize_rows_kernel<FP8_E5M2><<<mx_grid16(n), MX_THREADS, 0, s>>>(codes, scales, in, n, rule); }
    cudaCheckLaunch();
}

static inline dim3 mx_cols_grid(int rows, int cols) { return dim3(ceil_div(cols, MX_COL_TILE_C), ceil_div(rows, MX_COL_TILE_R)); }

// in (R,C) -> codes_t (C,R), scales_t (C, R/32); R % 32 == 0, C % 8 == 0
static inline void mxfp8_quantize_cols_t(uint8_t* codes_t, uint8_t* scales_t, const floatX* in, int rows, int cols, Fp8Format f,
                                         MxScaleRule rule, cudaStream_t s) {
    mx_check_shape(rows % MXFP8_BLOCK == 0 && cols % 8 == 0, "MXFP8 column cast", rows, cols,
                   "rows not a multiple of 32 or columns not of 8");
    fp8_check_aligned(in, "input");
    fp8_check_aligned(codes_t, "transposed codes");
    dim3 grid = mx_cols_grid(rows, cols);
    if (f == FP8_E4M3) { mx_quantize_cols_kernel<<<grid, MX_THREADS, 0, s>>>(codes_t, scales_t, in, rows, cols, Mxfp8ColQuant<FP8_E4M3>{rule}); }
    else { mx_quantize_cols_kernel<<<grid, MX_THREADS, 0, s>>>(codes_t, scales_t, in, rows, cols, Mxfp8ColQuant<FP8_E5M2>{rule}); }
    cudaCheckLaunch();
}

// codes (R,C) packed (R*C/2 bytes), scales (R, C/16); C % 16 == 0. sr: stochastic rounding with sr_seed.
static inline void nvfp4_quantize_rows(uint8_t* codes, uint8_t* scales, const floatX* in, int rows, int cols, Nvfp4Scale st,
                                       bool sr, uint32_t sr_seed, cudaStream_t s) {
    mx_check_shape(cols % NVFP4_BLOCK == 0, "NVFP4 row cast", rows, cols, "columns not a multiple of 16");
    fp8_check_aligned(in, "input");
    fp8_check_aligned(codes, "codes");
    long n = (long)rows * cols;
    if (sr) { nvfp4_quantize_rows_kernel<true><<<mx_grid16(n), MX_THREADS, 0, s>>>(codes, scales, in, n, st, sr_seed); }
    else { nvfp4_quantize_rows_kernel<false><<<mx_grid16(n), MX_THREADS, 0, s>>>(codes, scales, in, n, st, sr_seed); }
    cudaCheckLaunch();
}

// codes (R,C) packed, scales (R/16, C/16), codes_t (C,R) packed or NULL; R, C multiples of 16
static inline void nvfp4_quantize_tiles(uint8_t* codes, uint8_t* codes_t, uint8_t* scales, const floatX* in, int rows, int cols,
                                        Nvfp4Scale st, cudaStream_t s) {
    mx_check_shape(rows % NVFP4_BLOCK == 0 && cols % NVFP4_BLOCK == 0, "NVFP4 16x16 tile cast", rows, cols,
                   "not multiples of 16");
    fp8_check_aligned(in, "input");
    fp8_check_aligned(codes, "codes");
    if (codes_t != NULL) { fp8_check_aligned(codes_t, "transposed codes"); }
    dim3 grid(ceil_div(cols, MX_W_TILE), ceil_div(rows, MX_W_TILE));
    nvfp4_quantize_tiles_kernel<<<grid, MX_THREADS, 0, s>>>(codes, codes_t, scales, in, rows, cols, st);
    cudaCheckLaunch();
}

// in (R,C) -> codes_t (C,R) packed, scales_t (C, R/16); R % 16 == 0, C % 8 == 0. rht: the random
// Hadamard transform with rht_seed along R first; st must then cover the transformed values
// (nvfp4_tensor_scale_rht). sr: stochastic rounding with sr_seed.
static inline void nvfp4_quantize_cols_t(uint8_t* codes_t, uint8_t* scales_t, const floatX* in, int rows, int cols, Nvfp4Scale st,
                                         bool rht, uint64_t rht_seed, bool sr, uint32_t sr_seed, cudaStream_t s) {
    mx_check_shape(rows % NVFP4_BLOCK == 0 && cols % 8 == 0, "NVFP4 column cast", rows, cols,
                   "rows not a multiple of 16 or columns not of 8");
    fp8_check_aligned(in, "input");
    fp8_check_aligned(codes_t, "transposed codes");
    dim3 grid = mx_cols_grid(rows, cols);
    if (rht && sr) { mx_quantize_cols_kernel<<<grid, MX_THREADS, 0, s>>>(codes_t, scales_t, in, rows, cols, Nvfp4ColQuant<true, true>{st, rht_seed, sr_seed}); }
    else if (rht) { mx_quantize_cols_kernel<<<grid, MX_THREADS, 0, s>>>(codes_t, scales_t, in, rows, cols, Nvfp4ColQuant<true, false>{st, rht_seed, sr_seed}); }
    else if (sr) { mx_quantize_cols_kernel<<<grid, MX_THREADS, 0, s>>>(codes_t, scales_t, in, rows, cols, Nvfp4ColQuant<false, true>{st, rht_seed, sr_seed}); }
    else { mx_quantize_cols_kernel<<<grid, MX_THREADS, 0, s>>>(codes_t, scales_t, in, rows, cols, Nvfp4ColQuant<false, false>{st, rht_seed, sr_seed}); }
    cudaCheckLaunch();
}

// s_t (1 device float) = mx_nvfp4_tensor_scale(max |in (n)|); amax (1 device float) is scratch,
// left holding the amax. n % 16 == 0. Stream-ordered: no host sync.
static inline void nvfp4_tensor_scale(float* s_t, float* amax, const floatX* in, long n, cudaStream_t s) {
    cudaCheck(cudaMemsetAsync(amax, 0, sizeof(float), s));
    absmax_bf16(amax, in, n, s);
    nvfp4_tensor_scale_kernel<<<1, 1, 0, s>>>(s_t, amax);
    cudaCheckLaunch();
}

// the same for the tensor that nvfp4_quantize_cols_t quantizes with rht: the amax of the
// transformed values (|R x| can reach 4 max |x|); in (R,C), R % 16 == 0, C % 8 == 0
static inline void nvfp4_tensor_scale_rht(float* s_t, float* amax, const floatX* in, int rows, int cols, uint64_t rht_seed,
                                          cudaStream_t s) {
    mx_check_shape(rows % NVFP4_BLOCK == 0 && cols % 8 == 0, "NVFP4 RHT amax", rows, cols,
                   "rows not a multiple of 16 or columns not of 8");
    fp8_check_aligned(in, "input");
    cudaCheck(cudaMemsetAsync(amax, 0, sizeof(float), s));
    nvfp4_rht_absmax_kernel<<<ceil_div((long)(cols / 8) * (rows / 16), MX_THREADS), MX_THREADS, 0, s>>>(amax, in, rows, cols, rht_seed);
    cudaCheckLaunch();
    nvfp4_tensor_scale_kernel<<<1, 1, 0, s>>>(s_t, amax);
    cudaCheckLaunch();
}

// out (R,C) BF16 from codes (R,C) and scales (R, C/32); C % 32 == 0
static inline void mxfp8_dequantize(floatX* out, const uint8_t* codes, const uint8_t* scales, int rows, int cols, Fp8Format f,
                                    cudaStream_t s) {
    mx_check_shape(cols % MXFP8_BLOCK == 0, "MXFP8 dequantization", rows, cols, "columns not a multiple of 32");
    fp8_check_aligned(out, "output");
    fp8_check_aligned(codes, "codes");
    long n = (long)rows * cols;
    if (f == FP8_E4M3) { mxfp8_dequantize_kernel<FP8_E4M3><<<mx_grid16(n), MX_THREADS, 0, s>>>(out, codes, scales, n); }
    else { mxfp8_dequantize_kernel<FP8_E5M2><<<mx_grid16(n), MX_THREADS, 0, s>>>(out, codes, scales, n); }
    cudaCheckLaunch();
}

// out (R,C) BF16 = code * block scale (no 1/s_t), from codes (R,C) packed and scales (R, C/16),
// or (R/16, C/16) with tiles; C % 16 == 0, and R % 16 == 0 with tiles
static inline void nvfp4_dequantize(floatX* out, const uint8_t* codes, const uint8_t* scales, int rows, int cols, bool tiles,
                                    cudaStream_t s) {
    mx_check_shape(cols % NVFP4_BLOCK == 0 && (!tiles || rows % NVFP4_BLOCK == 0), "NVFP4 dequantization", rows, cols,
                   "not multiples of 16");
    fp8_check_aligned(out, "output");
    fp8_check_aligned(codes, "codes");
    long n = (long)rows * cols;
    if (tiles) { nvfp4_dequantize_kernel<true><<<mx_grid16(n), MX_THREADS, 0, s>>>(out, codes, scales, n, cols); }
    else { nvfp4_dequantize_kernel<false><<<mx_grid16(n), MX_THREADS, 0, s>>>(out, codes, scales, n, cols); }
    cudaCheckLaunch();
}

#endif // LLMC_MX_CAST_CUH
