// The two FP8 formats of the low-precision trainer (OCP 8-bit floats) and their per-tensor
// scale rule, written once for host and device: CPU tests check this encoder exhaustively,
// and the CUDA cast kernels must reproduce it bit for bit.
//   E4M3 ("fn"): bias 7, 3 mantissa bits, largest 448 (0x7E), no infinities, NaN 0x7F/0xFF
//   E5M2:        bias 15, 2 mantissa bits, largest 57344 (0x7B), +-inf 0x7C/0xFC, NaN 0x7D..0x7F
// Plain C99 (gcc) and CUDA (nvcc, where the functions are __host__ __device__).
#ifndef LLMC_FP8_H
#define LLMC_FP8_H

#include <stdint.h>
#include <string.h>
#include <float.h>

#ifdef __CUDACC__
#define FP8_HD __host__ __device__
#else
#define FP8_HD
#endif

typedef enum { FP8_E4M3 = 0, FP8_E5M2 = 1 } Fp8Format;

#define FP8_E4M3_MAX 448.0f
#define FP8_E5M2_MAX 57344.0f
#define FP8_NAN_CODE 0x7F          // what a NaN encodes to in both formats (sign dropped, as cvt does)

static inline FP8_HD uint32_t fp8_float_bits(float x) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(x);
#else
    uint32_t u;
    memcpy(&u, &x, sizeof(u));
    return u;
#endif
}

static inline FP8_HD float fp8_bits_float(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float x;
    memcpy(&x, &u, sizeof(x));
    return x;
#endif
}

static inline FP8_HD int fp8_mant_bits(Fp8Format f) { return f == FP8_E4M3 ? 3 : 2; }
static inline FP8_HD int fp8_exp_bias(Fp8Format f) { return f == FP8_E4M3 ? 7 : 15; }
static inline FP8_HD int fp8_max_code(Fp8Format f) { return f == FP8_E4M3 ? 0x7E : 0x7B; }
static inline FP8_HD float fp8_format_max(Fp8Format f) { return f == FP8_E4M3 ? FP8_E4M3_MAX : FP8_E5M2_MAX; }

// float -> fp8 code, rounding to nearest even. Magnitudes beyond the largest finite value,
// infinities included, saturate to +-max (cvt.rn.satfinite, what FP8 training uses: an
// overflow clips one value instead of poisoning the GEMM). NaN -> 0x7F. Results below the
// smallest subnormal round to a zero of the input's sign.
static inline FP8_HD uint8_t fp8_encode(float x, Fp8Format f) {
    uint32_t u = fp8_float_bits(x);
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) { return FP8_NAN_CODE; }
    uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
    if (a < 0x00800000u) { return sign; }          // zero or a float subnormal (< 2^-126)
    int m = fp8_mant_bits(f);
    int emin = 1 - fp8_exp_bias(f);                // exponent of the smallest normal
    int e = (int)(a >> 23) - 127;
    uint32_t sig = (a & 0x7FFFFFu) | 0x800000u;    // |x| = sig * 2^(e-23)
    // Count |x| in quanta of the fp8 spacing at its exponent (fixed below the normal range).
    int shift = 23 - m + (e < emin ? emin - e : 0);
    if (shift > 25) { shift = 25; }                // sig < 2^24 < half a quantum: rounds to 0
    uint32_t q = sig >> shift;
    uint32_t rem = sig & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) { q++; }
    // Codes are consecutive quanta: subnormal codes are q itself, and in a binade the code is
    // its first code plus (q - 2^m), so a carry out of the mantissa lands in the next binade.
    int code = (e < emin ? 0 : (e - emin) << m) + (int)q;
    int maxc = fp8_max_code(f);
    if (code > maxc) { code = maxc; }
    return (uint8_t)(sign | code);
}

// fp8 code -> float, exact.
static inline FP8_HD float fp8_decode(uint8_t c, Fp8Format f) {
    int m = fp8_mant_bits(f), bias = fp8_exp_bias(f);
    uint32_t sign = (uint32_t)(c & 0x80) << 24;
    int mag = c & 0x7F, e = mag >> m, mant = mag & ((1 << m) - 1);
    if (f == FP8_E4M3 && mag == 0x7F) { return fp8_bits_float(sign | 0x7FC00000u); }
    if (f == FP8_E5M2 && e == 31) { return fp8_bits_float(sign | (mant == 0 ? 0x7F800000u : 0x7FC00000u)); }
    if (e == 0) {   // subnormal: mant * 2^(1 - bias - m), a power-of-two multiple: exact
        float quantum = fp8_bits_float((uint32_t)(127 + 1 - bias - m) << 23);
        return fp8_bits_float(sign | fp8_float_bits((float)mant * quantum));
    }
    return fp8_bits_float(sign | (uint32_t)(e - bias + 127) << 23 | (uint32_t)mant << (23 - m));
}

// Orders amaxes (non-negative) by their bits: NaN > inf > finite, as the device's atomicMax on
// float bits does, so a NaN anywhere in a step or a history survives into its amax.
static inline FP8_HD float fp8_amax_max(float a, float b) {
    return fp8_float_bits(b) > fp8_float_bits(a) ? b : a;
}

#define FP8_MARGIN_MAX 32

// Per-tensor scale: values are multiplied by `scale` before the cast so that amax lands
// 2^margin below the format's largest value: scale = fmt_max / (amax * 2^margin).
// amax 0 (an all-zero tensor says nothing about range) or not finite keeps prev_scale; a
// scale beyond float's range (amax tiny) is clamped to FLT_MAX. margin in [0, FP8_MARGIN_MAX].
static inline FP8_HD float fp8_scale_from_amax(float amax, float prev_scale, float fmt_max, int margin) {
    if (!(amax > 0.0f && amax <= FLT_MAX)) { return prev_scale; }
    float s = fmt_max / amax;
    s *= fp8_bits_float((uint32_t)(127 - margin) << 23);   // exact power of two 2^-margin
    return s > FLT_MAX ? FLT_MAX : s;
}

// Dequantization factor (what cuBLASLt's A/B scale pointers take): x ~= decode(q) * scale_inv.
static inline FP8_HD float fp8_scale_inv(float scale) { return 1.0f / scale; }

#endif // LLMC_FP8_H
