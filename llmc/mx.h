// Block-scaled low-precision formats (issue 7, "MXFP8 and NVFP4 modes"): the host+device
// reference that the CPU tests check and the CUDA cast kernels must reproduce bit for bit.
//   E8M0:  power-of-two scale 2^(e-127), e in 0..254, 255 = NaN (no sign, no zero)
//   MXFP8: 32 consecutive values share one E8M0 scale; elements E4M3 or E5M2 (llmc/fp8.h)
//   E2M1:  4-bit float, magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6; sign in bit 3
//   NVFP4: E2M1 elements, one E4M3 scale per 16 values, one FP32 scale per tensor
//   RHT:   16-point random Hadamard transform, spreading outliers before FP4 quantization
// Codes are one per byte here (an FP4 kernel packs two per byte); plain C99 and nvcc.
//
// Wired in by llmc/mx_cast.cuh (the cast kernels), llmc/linear_mx.cuh (the linear layer of
// --precision mxfp8|nvfp4) and llmc/mx_gemm.cuh (path (b) below). The design notes as written:
//  - The interface stays linear_forward/linear_backward. fp8_quantize grows a block mode: one
//    kernel takes each block's amax in registers (a warp covers a 32-block), derives the scale
//    with the functions below and writes codes plus a scale array. Block scales are "current
//    scaling" at block granularity, so MXFP8 needs no amax history; NVFP4 keeps one per-tensor
//    amax (s_t below), which can come from the existing delayed or current scaling state.
//  - Scales run along K only (the GEMM's reduction axis). The transposed copies the cast
//    already writes for dgrad/wgrad therefore need blocks along the other axis: their own
//    amaxes and scales, not a transpose of the plain copy's. The exception is NVFP4 weights
//    in 16x16 tiles (mx_nvfp4_quantize_tiles): W and W^T quantize identically, so fprop and
//    dgrad see the same weight, and one quantization serves both.
//  - Fp8Weight gains scale arrays beside w/wt; gemm_fp8 takes a scale mode beside its
//    scale_inv pointers (which then point at the block-scale arrays).
// Hopper (sm_90, our target) has no block-scaled MMA and no FP4 tensor cores. Two paths:
//  (a) dequantize tiles to BF16 in shared memory, then BF16 wgmma. Exact: an E4M3/E5M2 value
//      times a power of two is a BF16 value (BF16 has float's exponent range and 8 significant
//      bits), and so is E2M1 (2 bits) times an E4M3 scale (4 bits), a product of at most 6
//      significant bits; NVFP4's 1/s_t is not a power of two, so 1/(s_tA s_tB) goes into the
//      GEMM's alpha instead. Costs BF16 tensor-core throughput; checks numerics only.
//  (b) MXFP8 on FP8 wgmma: accumulate each 32-wide K block in FP32 registers, multiply by
//      scaleA[m,kb] * scaleB[n,kb] (a power of two: exact) and add into the main accumulator
//      ("promotion" per K block, as DeepSeek-V3 does per 128): llmc/mx_gemm.cuh.
// Blackwell (sm_100) through cuBLASLt's block-scaled GEMMs (VEC32_UE8M0, VEC16_UE4M3):
// llmc/mx_gemm_cublaslt.cuh, with the scale-factor tile layout in llmc/mx_blackwell.h.
#ifndef LLMC_MX_H
#define LLMC_MX_H

#include "fp8.h"

#define MX_HD FP8_HD

#define MXFP8_BLOCK 32
#define NVFP4_BLOCK 16
#define E8M0_NAN 0xFF
#define E8M0_BIAS 127
#define E2M1_MAX 6.0f
#define E2M1_MAX_CODE 0x7
#define E2M1_NAN_CODE 0x7   // E2M1 has no NaN: a NaN saturates (NVFP4 carries it in the block scale)

// ------------------------------------------------------------------------------------------
// exact exponent arithmetic on floats (integer bit manipulation, no log2f: it is neither
// exact nor identical on host and device)

// a > 0 finite (subnormals included) as sig * 2^(e - 23) with sig in [2^23, 2^24).
static inline MX_HD void mx_float_parts(float a, int* e, uint32_t* sig) {
    uint32_t u = fp8_float_bits(a) & 0x7FFFFFFFu;
    int ex = (int)(u >> 23);
    uint32_t m = u & 0x7FFFFFu;
    if (ex == 0) {                       // subnormal: m * 2^-149; normalize
        ex = 1;
        while (!(m & 0x800000u)) { m <<= 1; ex--; }
    } else {
        m |= 0x800000u;
    }
    *e = ex - 127;
    *sig = m;
}

static inline MX_HD int mx_floor_log2(float a) {   // a > 0 finite
    int e; uint32_t sig;
    mx_float_parts(a, &e, &sig);
    return e;
}

// ------------------------------------------------------------------------------------------
// E8M0 scales

static inline MX_HD float mx_e8m0_decode(uint8_t c) {
    if (c == E8M0_NAN) { return fp8_bits_float(0x7FC00000u); }
    if (c == 0) { return fp8_bits_float(0x00400000u); }   // 2^-127: a float subnormal
    return fp8_bits_float((uint32_t)c << 23);
}

// the code of 2^k, k clamped to the representable -127..127
static inline MX_HD uint8_t mx_e8m0_from_exp(int k) {
    if (k < -E8M0_BIAS) { k = -E8M0_BIAS; }
    if (k > E8M0_BIAS) { k = E8M0_BIAS; }
    return (uint8_t)(k + E8M0_BIAS);
}

// s rounded up to a power of two, clamped; NaN/inf -> NaN, s <= 0 -> the smallest (code 0)
static inline MX_HD uint8_t mx_e8m0_encode(float s) {
    uint32_t u = fp8_float_bits(s);
    if ((u & 0x7F800000u) == 0x7F800000u) { return E8M0_NAN; }
    if (!(s > 0.0f)) { return 0; }
    int e; uint32_t sig;
    mx_float_parts(s, &e, &sig);
    return mx_e8m0_from_exp(e + (sig != 0x800000u));
}

// ------------------------------------------------------------------------------------------
// MXFP8

typedef enum {
    MX_SCALE_CEIL = 0,    // 2^ceil(log2(amax / fmt_max)): NVIDIA's MXFP8 recipe, amax never saturates
    MX_SCALE_FLOOR = 1,   // 2^(floor(log2(amax)) - emax_elem): the OCP MX spec; amax can saturate
} MxScaleRule;

// exponent of the format's largest normal binade: 448 = 1.75 * 2^8, 57344 = 1.75 * 2^15
static inline MX_HD int mx_emax_elem(Fp8Format f) { return f == FP8_E4M3 ? 8 : 15; }

// E8M0 code of a block's scale from its amax (>= 0; a NaN or inf anywhere makes the amax so:
// fp8_amax_max keeps them). amax 0 -> code 0 (2^-127): any scale quantizes zeros exactly and
// the smallest keeps dequantization of the block at exact zeros. NaN/inf -> E8M0_NAN, which
// dequantizes the whole block to NaN, as the OCP spec has it. Exact:
// ceil: amax = sa * 2^ea, max = sm * 2^em (sig in [2^23, 2^24)); amax / max = (sa/sm) 2^(ea-em)
//   with sa/sm in (1/2, 2), so the ceil of its log2 is ea - em, plus 1 when sa > sm. The
//   result is at most 127 - 8 + 1 = 120 (E4M3): clamping only ever raises it (tiny amax),
//   so amax / scale <= max always.
// floor: floor(log2(amax)) is ea.
static inline MX_HD uint8_t mx_block_scale(float amax, Fp8Format f, MxScaleRule rule) {
    uint32_t u = fp8_float_bits(amax) & 0x7FFFFFFFu;
    if (u >= 0x7F800000u) { return E8M0_NAN; }
    if (u == 0) { return 0; }
    int ea; uint32_t sa;
    mx_float_parts(amax, &ea, &sa);
    if (rule == MX_SCALE_FLOOR) { return mx_e8m0_from_exp(ea - mx_emax_elem(f)); }
    int em; uint32_t sm;
    mx_float_parts(fp8_format_max(f), &em, &sm);
    return mx_e8m0_from_exp(ea - em + (sa > sm));
}

// |x| max over n values, NaN-propagating (NaN > inf > finite, as the device's atomicMax on bits)
static inline MX_HD float mx_absmax(const float* x, int n) {
    float a = 0.0f;
    for (int i = 0; i < n; i++) { a = fp8_amax_max(a, fp8_bits_float(fp8_float_bits(x[i]) & 0x7FFFFFFFu)); }
    return a;
}

// One block of n (<= 32) values: returns its scale code, writes n element codes. x / scale is
// exact (a power of two) unless it falls below float's normal range, far under the formats'
// smallest subnormal, where the encoder gives zero either way: one rounding, the encoder's.
static inline MX_HD uint8_t mxfp8_quantize_block(uint8_t* q, const float* x, int n, Fp8Format f, MxScaleRule rule) {
    uint8_t sc = mx_block_scale(mx_absmax(x, n), f, rule);
    float s = mx_e8m0_decode(sc);
    for (int i = 0; i < n; i++) { q[i] = fp8_encode(x[i] / s, f); }
    return sc;
}

// exact unless the block's amax rounded up past FLT_MAX
static inline MX_HD void mxfp8_dequantize_block(float* y, const uint8_t* q, int n, uint8_t sc, Fp8Format f) {
    float s = mx_e8m0_decode(sc);
    for (int i = 0; i < n; i++) { y[i] = fp8_decode(q[i], f) * s; }
}

// ------------------------------------------------------------------------------------------
// E2M1

static inline MX_HD float mx_e2m1_decode(uint8_t c) {
    // code = exponent field (2 bits, bias 1) and mantissa bit: 0, 0.5 subnormal, then 2^(e-1)(1+m/2)
    int mag = c & 7, e = mag >> 1, m = mag & 1;
    float v = e == 0 ? 0.5f * (float)m : (float)(2 + m) * fp8_bits_float((uint32_t)(127 + e - 2) << 23);
    return (c & 8) ? -v : v;
}

// |x| in quanta of E2M1's spacing at its binade (0.5 below 2, then 1, then 2): |x| = (q + rem
// / 2^shift) quanta with q an integer; codes are consecutive quanta as in fp8_encode.
static inline MX_HD int mx_e2m1_quanta(uint32_t a, uint32_t* q, uint32_t* rem, int* shift) {
    int e = (int)(a >> 23) - 127;
    uint32_t sig = (a & 0x7FFFFFu) | 0x800000u;
    *shift = 22 + (e < 0 ? -e : 0);      // emin = 0, one mantissa bit
    if (*shift > 31) {                   // below 2^-9: q = 0, the remainder goes in 32 bits
        int s = *shift - 31;
        *q = 0; *rem = s > 31 ? 0 : sig >> s; *shift = 31;
    } else {
        *q = sig >> *shift; *rem = sig & ((1u << *shift) - 1u);
    }
    return e < 0 ? 0 : e << 1;           // the first code of the binade
}

// float -> E2M1 code, round to nearest even, saturating to +-6 (infinities too); NaN -> 0x7.
// The sign of zero is kept, as fp8_encode does.
static inline MX_HD uint8_t mx_e2m1_encode(float x) {
    uint32_t u = fp8_float_bits(x), a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) { return E2M1_NAN_CODE; }
    uint8_t sign = (uint8_t)((u >> 28) & 8u);
    if (a < 0x00800000u) { return sign; }
    uint32_t q, rem; int shift;
    int code = mx_e2m1_quanta(a, &q, &rem, &shift);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) { q++; }
    code += (int)q;
    return (uint8_t)(sign | (code > E2M1_MAX_CODE ? E2M1_MAX_CODE : code));
}

// Stochastic rounding with r uniform in [0, 2^32): rounds |x| up to the next code with
// probability (|x| - lo) / (hi - lo), so E[decode] = x for |x| <= 6 (beyond: saturates).
// The probability is rem / 2^shift, realized as r < rem * 2^(32 - shift): exact, because
// shift <= 31 keeps every remainder bit, except below 2^-9 where the remainder is cut to 31
// bits (bias under 2^-32 quanta). Never leaves the two neighbours of x. NaN -> 0x7.
static inline MX_HD uint8_t mx_e2m1_encode_sr(float x, uint32_t r) {
    uint32_t u = fp8_float_bits(x), a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) { return E2M1_NAN_CODE; }
    uint8_t sign = (uint8_t)((u >> 28) & 8u);
    if (a >= 0x40C00000u) { return (uint8_t)(sign | E2M1_MAX_CODE); }   // |x| >= 6
    if (a < 0x00800000u) { return sign; }
    uint32_t q, rem; int shift;
    int code = mx_e2m1_quanta(a, &q, &rem, &shift);
    if ((uint64_t)r < ((uint64_t)rem << (32 - shift))) { q++; }
    return (uint8_t)(sign | (code + (int)q));
}

// Packed E2M1, the device's storage: two codes per byte, element 2i in the low nibble of
// byte i and element 2i+1 in the high nibble. n even.
static inline MX_HD uint8_t mx_e2m1_pack2(uint8_t lo, uint8_t hi) { return (uint8_t)((lo & 0xF) | (hi & 0xF) << 4); }

static inline MX_HD void mx_e2m1_pack(uint8_t* p, const uint8_t* q, long n) {
    for (long i = 0; i < n / 2; i++) { p[i] = mx_e2m1_pack2(q[2 * i], q[2 * i + 1]); }
}

static inline MX_HD void mx_e2m1_unpack(uint8_t* q, const uint8_t* p, long n) {
    for (long i = 0; i < n / 2; i++) { q[2 * i] = p[i] & 0xF; q[2 * i + 1] = p[i] >> 4; }
}

// ------------------------------------------------------------------------------------------
// NVFP4: x ~= decode(q) * decode_e4m3(block_scale) / s_t

// Per-tensor scale s_t = (448 * 6) / amax: NVIDIA's recipe maps the tensor's amax onto the
// largest product of an E4M3 block scale (448) and an E2M1 element (6), so block scales use
// E4M3's whole range, the largest block's scale landing at 448. amax 0 or not finite -> 1
// (nothing to range; a NaN still reaches the output through its block scale); a tiny amax
// clamps s_t to FLT_MAX.
static inline MX_HD float mx_nvfp4_tensor_scale(float amax) {
    if (!(amax > 0.0f && amax <= FLT_MAX)) { return 1.0f; }
    float s = (FP8_E4M3_MAX * E2M1_MAX) / amax;
    return s > FLT_MAX ? FLT_MAX : s;
}

// E4M3 block scale: encode((block_amax / 6) * s_t). A NaN block amax gives 0x7F (NaN).
static inline MX_HD uint8_t mx_nvfp4_block_scale(float block_amax, float s_t) {
    return fp8_encode((block_amax / E2M1_MAX) * s_t, FP8_E4M3);
}

// Element factor s_t / decode(block scale), then q = E2M1(x * factor): the order the device
// must follow. A block scale that rounds to zero (the block is below 2^-10 of its share of
// the tensor's range) gives factor 0: the block quantizes to signed zeros.
static inline MX_HD float mx_nvfp4_factor(uint8_t block_scale, float s_t) {
    float d = fp8_decode(block_scale, FP8_E4M3);
    return d == 0.0f ? 0.0f : s_t / d;
}

static inline MX_HD float mx_nvfp4_dequant(uint8_t q, uint8_t block_scale, float s_t) {
    return mx_e2m1_decode(q) * fp8_decode(block_scale, FP8_E4M3) / s_t;
}

// (rows, cols) row-major, 1x16 blocks along each row (the last one of a row may be short):
// q (rows, cols), scales (rows, ceil(cols / 16)).
static inline MX_HD void mx_nvfp4_quantize_rows(uint8_t* q, uint8_t* scales, const float* x, int rows, int cols, float s_t) {
    int nb = (cols + NVFP4_BLOCK - 1) / NVFP4_BLOCK;
    for (int r = 0; r < rows; r++) {
        for (int b = 0; b < nb; b++) {
            int c0 = b * NVFP4_BLOCK, n = cols - c0 < NVFP4_BLOCK ? cols - c0 : NVFP4_BLOCK;
            const float* xb = x + (long)r * cols + c0;
            uint8_t sc = mx_nvfp4_block_scale(mx_absmax(xb, n), s_t);
            float fct = mx_nvfp4_factor(sc, s_t);
            scales[(long)r * nb + b] = sc;
            for (int i = 0; i < n; i++) { q[(long)r * cols + c0 + i] = mx_e2m1_encode(xb[i] * fct); }
        }
    }
}

// 16x16 tiles (ragged at the edges), one scale per tile: scales (ceil(rows/16), ceil(cols/16)).
// A tile's amax and every element's rounding depend on the tile's set of values only, so the
// transpose quantizes to the transposed codes and scales, bit for bit.
static inline MX_HD void mx_nvfp4_quantize_tiles(uint8_t* q, uint8_t* scales, const float* x, int rows, int cols, float s_t) {
    int tr = (rows + NVFP4_BLOCK - 1) / NVFP4_BLOCK, tc = (cols + NVFP4_BLOCK - 1) / NVFP4_BLOCK;
    for (int bi = 0; bi < tr; bi++) {
        for (int bj = 0; bj < tc; bj++) {
            int r0 = bi * NVFP4_BLOCK, c0 = bj * NVFP4_BLOCK;
            int r1 = r0 + NVFP4_BLOCK < rows ? r0 + NVFP4_BLOCK : rows;
            int c1 = c0 + NVFP4_BLOCK < cols ? c0 + NVFP4_BLOCK : cols;
            float amax = 0.0f;
            for (int r = r0; r < r1; r++) { amax = fp8_amax_max(amax, mx_absmax(x + (long)r * cols + c0, c1 - c0)); }
            uint8_t sc = mx_nvfp4_block_scale(amax, s_t);
            float fct = mx_nvfp4_factor(sc, s_t);
            scales[(long)bi * tc + bj] = sc;
            for (int r = r0; r < r1; r++) {
                for (int c = c0; c < c1; c++) { q[(long)r * cols + c] = mx_e2m1_encode(x[(long)r * cols + c] * fct); }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// 16-point random Hadamard transform: R = H16 D / 4, H16 Sylvester's (H[i][j] = (-1)^popcount(i & j),
// symmetric, H H^T = 16 I), D = diag of random signs from a seed. R R^T = H D D H / 16 = I:
// orthogonal, so the inverse is R^T = D H / 4. Applied to each group of 16 consecutive values.

// bit j set: sign j is -1. Sixteen bits of a 64-bit mix of the seed (splitmix64's finalizer).
static inline MX_HD uint32_t mx_rht_signs(uint64_t seed) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (uint32_t)((z ^ (z >> 31)) & 0xFFFFu);
}

// in-place fast Walsh-Hadamard transform of 16 values (4 butterfly stages), times 1/4 (exact)
static inline MX_HD void mx_wht16(float* v) {
    for (int h = 1; h < 16; h <<= 1) {
        for (int i = 0; i < 16; i += 2 * h) {
            for (int j = i; j < i + h; j++) {
                float a = v[j], b = v[j + h];
                v[j] = a + b;
                v[j + h] = a - b;
            }
        }
    }
    for (int i = 0; i < 16; i++) { v[i] *= 0.25f; }
}

// x (n values, n % 16 == 0) <- R x per group of 16; inverse: x <- R^T x
static inline MX_HD void mx_rht_forward(float* x, long n, uint64_t seed) {
    uint32_t s = mx_rht_signs(seed);
    for (long g = 0; g < n; g += 16) {
        for (int j = 0; j < 16; j++) { if (s >> j & 1u) { x[g + j] = -x[g + j]; } }
        mx_wht16(x + g);
    }
}

static inline MX_HD void mx_rht_inverse(float* x, long n, uint64_t seed) {
    uint32_t s = mx_rht_signs(seed);
    for (long g = 0; g < n; g += 16) {
        mx_wht16(x + g);
        for (int j = 0; j < 16; j++) { if (s >> j & 1u) { x[g + j] = -x[g + j]; } }
    }
}

#endif // LLMC_MX_H
