// BF16 -> FP8 cast kernels: x * scale (a per-tensor device float) to E4M3 or E5M2 with
// cvt's round-to-nearest-even and saturation (bit-identical to fp8_encode in llmc/fp8.h),
// recording the tensor's amax on the way, plain or with a transposed copy written in the same
// pass (cuBLASLt's FP8 GEMMs want both operands K-major). 16-byte loads and stores.
// amax is kept as float bits and raised with atomicMax on them: |x| >= 0 orders like its bits
// (NaN above inf), and max does not depend on the order of the atomics, so it is deterministic.
#ifndef LLMC_FP8_CAST_CUH
#define LLMC_FP8_CAST_CUH

#include <cuda_fp8.h>
#include "cuda_common.h"
#include "reduce.cuh"
#include "gelu.cuh"
#include "classifier.cuh"
#include "fp8.h"

typedef Vec16<uint8_t> u8x16;   // 16 fp8 codes

// Where a producer kernel (a LayerNorm, say) writes the FP8 copy of its output that a GEMM
// reads, instead of a BF16 tensor and a separate cast: E4M3 codes of bf16(value) * *scale at
// q, and max |bf16(value)| raised into *amax (NULL: not recorded). The codes are those
// cast_to_fp8 would make of the BF16 output, bit for bit.
typedef struct {
    uint8_t* q;
    const float* scale;
    float* amax;
} Fp8Out;

typedef enum { CAST_PLAIN, CAST_GELU, CAST_DGELU, CAST_SOFTMAX_GRAD } CastXform;   // what a transposed cast casts (see below)

// The logits' gradient made from the logits by CAST_SOFTMAX_GRAD, as fused_classifier writes it
// (llmc/classifier.cuh), for rows [0, R) of the cast
typedef struct {
    const float* lse;      // (R) log of each row's softmax normaliser
    const int* targets;    // (R)
    float dloss;           // gradient of the total loss per position's loss
    int V;                 // real vocabulary: columns from V on get 0
} SoftmaxGrad;

#define FP8_TILE 64             // transposed cast: 64x64 tiles, 256 threads of 16 elements
#define FP8_CAST_THREADS 256

// A thread's share of a cast: max |x| as the high 16 bits of its float (bf16 bits without the
// sign), and, when statistics are on, how many values saturated (|x*scale| > max) and how many
// nonzero values became zero.
typedef struct { uint32_t amax16, saturated, flushed; } CastAcc;

// out8[0..8) = codes of in (8) * scale
template <Fp8Format F, bool STATS>
__device__ __forceinline__ void cast8(uint8_t* out8, const x8& in, float scale, CastAcc& acc) {
    constexpr __nv_fp8_interpretation_t kind = F == FP8_E4M3 ? __NV_E4M3 : __NV_E5M2;
#pragma unroll
    for (int k = 0; k < 8; k += 2) {
        float2 f = make_float2(__bfloat162float(in.v[k]) * scale, __bfloat162float(in.v[k + 1]) * scale);
        __nv_fp8x2_storage_t q = __nv_cvt_float2_to_fp8x2(f, __NV_SATFINITE, kind);   // low byte: f.x
        out8[k] = (uint8_t)(q & 0xFF);
        out8[k + 1] = (uint8_t)(q >> 8);
        uint32_t a0 = __bfloat16_as_ushort(in.v[k]) & 0x7FFFu, a1 = __bfloat16_as_ushort(in.v[k + 1]) & 0x7FFFu;
        acc.amax16 = max(acc.amax16, max(a0, a1));
        if (STATS) {
            const float fmax = F == FP8_E4M3 ? FP8_E4M3_MAX : FP8_E5M2_MAX;
            acc.saturated += (fabsf(f.x) > fmax) + (fabsf(f.y) > fmax);
            acc.flushed += (a0 != 0 && (q & 0x7F) == 0) + (a1 != 0 && ((q >> 8) & 0x7F) == 0);
        }
    }
}

// Adds the block's accumulators to the tensor's: amax (float bits) and counts[0..2). Called by
// every thread of the block.
template <bool STATS>
__device__ __forceinline__ void cast_acc_commit(const CastAcc& acc, float* amax, unsigned long long* counts) {
    __shared__ uint32_t part[3][32];
    int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE, nwarps = blockDim.x / WARP_SIZE;
    uint32_t m = __reduce_max_sync(0xffffffffu, acc.amax16);
    uint32_t sat = STATS ? __reduce_add_sync(0xffffffffu, acc.saturated) : 0u;
    uint32_t fl = STATS ? __reduce_add_sync(0xffffffffu, acc.flushed) : 0u;
    if (lane == 0) { part[0][warp] = m; part[1][warp] = sat; part[2][warp] = fl; }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < nwarps; w++) { m = max(m, part[0][w]); sat += part[1][w]; fl += part[2][w]; }
        if (amax != NULL) { atomicMax(reinterpret_cast<unsigned int*>(amax), m << 16); }
        if (STATS) {
            atomicAdd(counts, (unsigned long long)sat);
            atomicAdd(counts + 1, (unsigned long long)fl);
        }
    }
}

// out (n) = fp8(in (n) * *scale); amax (NULL: not recorded) = max(amax, |in|); counts += stats.
// 16 elements per thread, n a multiple of 16.
template <Fp8Format F, bool STATS>
__global__ void cast_to_fp8_kernel(uint8_t* out, const floatX* in, long n, const float* scale, float* amax,
                                   unsigned long long* counts) {
    float s = *scale;
    long i = ((long)blockIdx.x * blockDim.x + threadIdx.x) * 16;
    CastAcc acc = {0u, 0u, 0u};
    if (i < n) {
        x8 a = load16_cs(in + i), b = load16_cs(in + i + 8);
        u8x16 o;
        cast8<F, STATS>(o.v, a, s, acc);
        cast8<F, STATS>(o.v + 8, b, s, acc);
        store16(out + i, o);
    }
    if (amax != NULL || STATS) { cast_acc_commit<STATS>(acc, amax, counts); }
}

// out (R,C) (NULL: not written) and out_t (C,R) = fp8(in (R,C) * *scale), amax and counts as
// above; R and C multiples of 16. A block casts a column of `tiles` 64x64 tiles: in each, each
// thread casts 16 consecutive elements of a row and stages them in shared memory, then writes
// 16 consecutive rows of one column as one 16-byte store. Each 16-row group of the tile sits
// 16 bytes further right, so the column reads of a warp (4 row groups x 8 columns) fall into
// distinct banks.
// XF: what is cast, bit for bit as the BF16 tensor the unfused kernels would write:
//   CAST_PLAIN in;  CAST_GELU bf16(gelu(in)) (gelu_forward);  CAST_DGELU bf16(in * gelu'(aux))
//   with aux (R,C) (gelu_backward_inplace);  CAST_SOFTMAX_GRAD the gradient of logits in, sg.
// COLSUM: colsum (R / (64 tiles), C) = per block, the FP32 sums of its rows' values per column
// (a bias gradient's partials, summed in a fixed order: deterministic).
// Launch bounds of at least 2 blocks per SM: without a minimum ptxas aimed at 42 registers and
// scheduled the DGELU cast 1.4x slower (0.646 against 0.462 ms at d12's FC; 60-77 registers now).
template <Fp8Format F, bool STATS, bool COLSUM, CastXform XF>
__global__ void __launch_bounds__(FP8_CAST_THREADS, 2)
cast_transpose_to_fp8_kernel(uint8_t* out, uint8_t* out_t, const floatX* in, const floatX* aux, SoftmaxGrad sg, int R,
                             int C, int tiles, const float* scale, float* amax, unsigned long long* counts, float* colsum) {
    __shared__ __align__(16) uint8_t tile[FP8_TILE][FP8_TILE + 48];
    float s = *scale;
    int c0 = blockIdx.x * FP8_TILE;
    int tr = threadIdx.x / 4, tc = (threadIdx.x % 4) * 16;     // row, first column in the tile
    int j = threadIdx.x / 4, k = threadIdx.x % 4;               // transposed store: tile column, row group
    CastAcc acc = {0u, 0u, 0u};
    float sum[16];
    if (COLSUM) {
#pragma unroll
        for (int q = 0; q < 16; q++) { sum[q] = 0.0f; }
    }
    for (int t = 0; t < tiles; t++) {
        int r0 = (blockIdx.y * tiles + t) * FP8_TILE;
        if (r0 >= R) { break; }
        if (t > 0) { __syncthreads(); }   // the previous tile's column reads are done
        if (r0 + tr < R && c0 + tc < C) {
            size_t at = (size_t)(r0 + tr) * C + c0 + tc;
            x8 v[2] = {load16_cs(in + at), load16_cs(in + at + 8)}, a[2];
            if (XF == CAST_DGELU) { a[0] = load16_cs(aux + at); a[1] = load16_cs(aux + at + 8); }
            float log_z = 0.0f;
            int target = 0;
            if (XF == CAST_SOFTMAX_GRAD) { log_z = sg.lse[r0 + tr]; target = sg.targets[r0 + tr]; }
#pragma unroll
            for (int h = 0; h < 2; h++) {
#pragma unroll
                for (int q = 0; q < 8; q++) {
                    float f = __bfloat162float(v[h].v[q]);
                    if (XF == CAST_GELU) { v[h].v[q] = __float2bfloat16_rn(gelu_f(f)); }
                    if (XF == CAST_DGELU) { v[h].v[q] = __float2bfloat16_rn(f * gelu_grad_f(__bfloat162float(a[h].v[q]))); }
                    if (XF == CAST_SOFTMAX_GRAD) {
                        v[h].v[q] = __float2bfloat16_rn(softmax_grad(f, log_z, c0 + tc + 8 * h + q, target, sg.V, sg.dloss));
                    }
                    if (COLSUM) { sum[8 * h + q] += __bfloat162float(v[h].v[q]); }
                }
            }
            u8x16 o;
            cast8<F, STATS>(o.v, v[0], s, acc);
            cast8<F, STATS>(o.v + 8, v[1], s, acc);
            if (out != NULL) { store16(out + (size_t)(r0 + tr) * C + c0 + tc, o); }
            *reinterpret_cast<u8x16*>(&tile[tr][(tr / 16) * 16 + tc]) = o;
        }
        __syncthreads();
        if (c0 + j < C && r0 + 16 * k < R) {
            u8x16 o;
#pragma unroll
            for (int q = 0; q < 16; q++) { o.v[q] = tile[16 * k + q][16 * k + j]; }
            store16(out_t + (size_t)(c0 + j) * R + r0 + 16 * k, o);
        }
    }
    if (COLSUM) {   // the 64 row threads' sums of each column, added in row order
        __shared__ float part[FP8_TILE][FP8_TILE + 1];
#pragma unroll
        for (int q = 0; q < 16; q++) { part[tr][tc + q] = sum[q]; }
        __syncthreads();
        if (threadIdx.x < FP8_TILE && c0 + threadIdx.x < C) {
            float total = 0.0f;
            for (int r = 0; r < FP8_TILE; r++) { total += part[r][threadIdx.x]; }
            colsum[(size_t)blockIdx.y * C + c0 + threadIdx.x] = total;
        }
    }
    if (amax != NULL || STATS) { cast_acc_commit<STATS>(acc, amax, counts); }
}

// FP8 codes of an (R,C) tensor that arrived in pieces (ZeRO-1 FP8 gather: a weight split
// between ranks' chunks): piece p holds elements [end[p-1], end[p]) (end[-1] = 0) at src[p],
// every end a multiple of 16, so no 16-byte vector straddles two pieces.
#define FP8_MAX_PIECES 8
typedef struct {
    const uint8_t* src[FP8_MAX_PIECES];
    long end[FP8_MAX_PIECES];
    int n;
} Fp8Pieces;

// out (R,C) = the pieces in one buffer and/or out_t (C,R) their transpose (NULL: not written),
// in one pass; R and C multiples of 16. The tiling of the transposed cast above.
__global__ void __launch_bounds__(FP8_CAST_THREADS)
place_fp8_kernel(uint8_t* out, uint8_t* out_t, Fp8Pieces pieces, int R, int C) {
    __shared__ __align__(16) uint8_t tile[FP8_TILE][FP8_TILE + 48];
    int r0 = blockIdx.y * FP8_TILE, c0 = blockIdx.x * FP8_TILE;
    int tr = threadIdx.x / 4, tc = (threadIdx.x % 4) * 16;
    if (r0 + tr < R && c0 + tc < C) {
        long e = (long)(r0 + tr) * C + c0 + tc;
        int p = 0;
        while (p < pieces.n - 1 && e >= pieces.end[p]) { p++; }
        u8x16 v = load16(pieces.src[p] + (e - (p > 0 ? pieces.end[p - 1] : 0)));
        if (out != NULL) { store16(out + e, v); }
        *reinterpret_cast<u8x16*>(&tile[tr][(tr / 16) * 16 + tc]) = v;
    }
    __syncthreads();
    int j = threadIdx.x / 4, k = threadIdx.x % 4;
    if (out_t != NULL && c0 + j < C && r0 + 16 * k < R) {
        u8x16 o;
#pragma unroll
        for (int q = 0; q < 16; q++) { o.v[q] = tile[16 * k + q][16 * k + j]; }
        store16(out_t + (size_t)(c0 + j) * R + r0 + 16 * k, o);
    }
}

// amax = max(amax, max |in (n)|), n a multiple of 16; a bounded grid strides over the tensor
// so that few blocks contend for the one atomic.
__global__ void absmax_bf16_kernel(float* amax, const floatX* in, long n) {
    CastAcc acc = {0u, 0u, 0u};
    for (long i = ((long)blockIdx.x * blockDim.x + threadIdx.x) * 8; i < n; i += (long)gridDim.x * blockDim.x * 8) {
        x8 a = load16(in + i);
#pragma unroll
        for (int k = 0; k < 8; k++) { acc.amax16 = max(acc.amax16, (uint32_t)(__bfloat16_as_ushort(a.v[k]) & 0x7FFFu)); }
    }
    cast_acc_commit<false>(acc, amax, NULL);
}

static inline void fp8_check_aligned(const void* p, const char* what) {
    if (((uintptr_t)p & 15) != 0) { die("internal: FP8 cast %s pointer %p is not 16-byte aligned", what, p); }
}

static inline void cast_to_fp8(uint8_t* out, const floatX* in, long n, Fp8Format f, const float* scale, float* amax,
                               unsigned long long* counts, cudaStream_t s) {
    if (n % 16 != 0) { die("internal: FP8 cast of %ld elements, not a multiple of 16", n); }
    fp8_check_aligned(in, "input");
    fp8_check_aligned(out, "output");
    int grid = ceil_div(n / 16, FP8_CAST_THREADS);
    if (f == FP8_E4M3 && counts == NULL) { cast_to_fp8_kernel<FP8_E4M3, false><<<grid, FP8_CAST_THREADS, 0, s>>>(out, in, n, scale, amax, counts); }
    else if (f == FP8_E4M3) { cast_to_fp8_kernel<FP8_E4M3, true><<<grid, FP8_CAST_THREADS, 0, s>>>(out, in, n, scale, amax, counts); }
    else if (counts == NULL) { cast_to_fp8_kernel<FP8_E5M2, false><<<grid, FP8_CAST_THREADS, 0, s>>>(out, in, n, scale, amax, counts); }
    else { cast_to_fp8_kernel<FP8_E5M2, true><<<grid, FP8_CAST_THREADS, 0, s>>>(out, in, n, scale, amax, counts); }
    cudaCheckLaunch();
}

#define FP8_COLSUM_TILES (COLSUM_ROWS_PER_CHUNK / FP8_TILE)   // a column-sum block: bias_backward's chunk of rows
// A softmax-gradient block casts 8 tiles down a column: 0.361 against 0.383 ms a d12 LM-head chunk
// (H100). The plain and GELU casts are fastest with one (0.220 against 0.240 ms at d12's qkv).
#define FP8_SOFTMAX_TILES 8

template <bool COLSUM, CastXform XF>
static inline void cast_transpose_launch(uint8_t* out, uint8_t* out_t, const floatX* in, const floatX* aux, SoftmaxGrad sg,
                                         int R, int C, Fp8Format f, const float* scale, float* amax,
                                         unsigned long long* counts, float* colsum, cudaStream_t s) {
    int tiles = COLSUM ? FP8_COLSUM_TILES : XF == CAST_SOFTMAX_GRAD ? FP8_SOFTMAX_TILES : 1;
    dim3 grid(ceil_div(C, FP8_TILE), ceil_div(R, FP8_TILE * tiles));
    if (f == FP8_E4M3 && counts == NULL) {
        cast_transpose_to_fp8_kernel<FP8_E4M3, false, COLSUM, XF><<<grid, FP8_CAST_THREADS, 0, s>>>(out, out_t, in, aux, sg, R, C, tiles, scale, amax, counts, colsum);
    } else if (f == FP8_E4M3) {
        cast_transpose_to_fp8_kernel<FP8_E4M3, true, COLSUM, XF><<<grid, FP8_CAST_THREADS, 0, s>>>(out, out_t, in, aux, sg, R, C, tiles, scale, amax, counts, colsum);
    } else if (counts == NULL) {
        cast_transpose_to_fp8_kernel<FP8_E5M2, false, COLSUM, XF><<<grid, FP8_CAST_THREADS, 0, s>>>(out, out_t, in, aux, sg, R, C, tiles, scale, amax, counts, colsum);
    } else {
        cast_transpose_to_fp8_kernel<FP8_E5M2, true, COLSUM, XF><<<grid, FP8_CAST_THREADS, 0, s>>>(out, out_t, in, aux, sg, R, C, tiles, scale, amax, counts, colsum);
    }
    cudaCheckLaunch();
}

// colsum (NULL: none): (colsum_num_chunks(R), C) floats, the column sums of each chunk of rows
// of what is cast, which add_partials turns into a bias gradient (bias_backward's partials).
// xf, aux (R,C), sg: what is cast (see the kernel); aux is read by CAST_DGELU only, sg (NULL
// otherwise) by CAST_SOFTMAX_GRAD.
static inline void cast_transpose_to_fp8(uint8_t* out, uint8_t* out_t, const floatX* in, int R, int C, Fp8Format f,
                                         const float* scale, float* amax, unsigned long long* counts, float* colsum,
                                         CastXform xf, const floatX* aux, const SoftmaxGrad* sgp, cudaStream_t s) {
    if (R % 16 != 0 || C % 16 != 0) { die("internal: FP8 transposed cast of (%d,%d), not multiples of 16", R, C); }
    fp8_check_aligned(in, "input");
    fp8_check_aligned(out_t, "transposed output");
    if (out != NULL) { fp8_check_aligned(out, "output"); }
    if (xf == CAST_DGELU) { fp8_check_aligned(aux, "GELU input"); }
    if ((xf == CAST_SOFTMAX_GRAD) != (sgp != NULL)) { die("internal: FP8 cast of a softmax gradient without its rows' data"); }
    SoftmaxGrad sg = {NULL, NULL, 0.0f, 0};
    if (sgp != NULL) { sg = *sgp; }
    if (xf == CAST_PLAIN && colsum == NULL) { cast_transpose_launch<false, CAST_PLAIN>(out, out_t, in, aux, sg, R, C, f, scale, amax, counts, colsum, s); }
    else if (xf == CAST_PLAIN) { cast_transpose_launch<true, CAST_PLAIN>(out, out_t, in, aux, sg, R, C, f, scale, amax, counts, colsum, s); }
    else if (xf == CAST_GELU && colsum == NULL) { cast_transpose_launch<false, CAST_GELU>(out, out_t, in, aux, sg, R, C, f, scale, amax, counts, colsum, s); }
    else if (xf == CAST_DGELU && colsum != NULL) { cast_transpose_launch<true, CAST_DGELU>(out, out_t, in, aux, sg, R, C, f, scale, amax, counts, colsum, s); }
    else if (xf == CAST_DGELU) { cast_transpose_launch<false, CAST_DGELU>(out, out_t, in, aux, sg, R, C, f, scale, amax, counts, colsum, s); }
    else if (xf == CAST_SOFTMAX_GRAD && colsum == NULL) { cast_transpose_launch<false, CAST_SOFTMAX_GRAD>(out, out_t, in, aux, sg, R, C, f, scale, amax, counts, colsum, s); }
    else { die("internal: FP8 transposed cast of gelu(x) or a softmax gradient with column sums"); }
}

static inline void place_fp8(uint8_t* out, uint8_t* out_t, const Fp8Pieces* pieces, int R, int C, cudaStream_t s) {
    if (R % 16 != 0 || C % 16 != 0) { die("internal: FP8 codes of (%d,%d), not multiples of 16", R, C); }
    if (pieces->n < 1 || pieces->n > FP8_MAX_PIECES || pieces->end[pieces->n - 1] != (long)R * C) {
        die("internal: FP8 codes of (%d,%d) in %d pieces", R, C, pieces->n);
    }
    for (int p = 0; p < pieces->n; p++) {
        fp8_check_aligned(pieces->src[p], "piece");
        if (pieces->end[p] % 16 != 0) { die("internal: FP8 piece ends at %ld, not a multiple of 16", pieces->end[p]); }
    }
    if (out != NULL) { fp8_check_aligned(out, "output"); }
    if (out_t != NULL) { fp8_check_aligned(out_t, "output"); }
    dim3 grid(ceil_div(C, FP8_TILE), ceil_div(R, FP8_TILE));
    place_fp8_kernel<<<grid, FP8_CAST_THREADS, 0, s>>>(out, out_t, *pieces, R, C);
    cudaCheckLaunch();
}

// out_t (C,R) = the transpose of the FP8 codes in (R,C): backward's K-major copy of an input
// the forward kept in FP8. R and C multiples of 16.
static inline void transpose_fp8(uint8_t* out_t, const uint8_t* in, int R, int C, cudaStream_t s) {
    Fp8Pieces one;
    one.n = 1; one.src[0] = in; one.end[0] = (long)R * C;
    place_fp8(NULL, out_t, &one, R, C, s);
}

static inline void absmax_bf16(float* amax, const floatX* in, long n, cudaStream_t s) {
    if (n % 16 != 0) { die("internal: amax of %ld elements, not a multiple of 16", n); }
    fp8_check_aligned(in, "input");
    int grid = ceil_div(n / 8, FP8_CAST_THREADS);
    if (grid > 1024) { grid = 1024; }
    absmax_bf16_kernel<<<grid, FP8_CAST_THREADS, 0, s>>>(amax, in, n);
    cudaCheckLaunch();
}

#endif // LLMC_FP8_CAST_CUH
