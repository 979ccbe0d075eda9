// CPU tests of llmc/mx.h, the block-scaled formats: E8M0 over all codes; MXFP8 block scales
// against their definitions by independent double arithmetic (random blocks and edge cases);
// E2M1 rounding over every BF16 pattern against a nearest-value search; stochastic rounding's
// probabilities exactly and its mean by sampling; NVFP4 error bounds and the transpose
// invariance of 16x16 tiles; the random Hadamard transform. Self-checks make sure wrong
// rounding or a wrong scale rule would be caught.
//   dev/test_mx_host              the tests; PASS/FAIL lines, then `N passed, N failed`
//   dev/test_mx_host --dump FILE  writes what dev/mx_mldtypes_check.py compares with ml_dtypes
//                                 (the layout is at dump() below)
// Build: gcc -O2 -Wall -Wextra -o dev/test_mx_host dev/test_mx_host.c -lm
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../llmc/mx.h"
#include "../llmc/rand.h"
#include "test_check.h"

static float bf16_to_float(uint16_t b) { return fp8_bits_float((uint32_t)b << 16); }
static const char* fmt_name(Fp8Format f) { return f == FP8_E4M3 ? "e4m3" : "e5m2"; }

static Rng rng;
static uint32_t rand_u32(void) { return (uint32_t)(rng_u64(&rng) >> 32); }

// ------------------------------------------------------------------------------------------
// E8M0

static void test_e8m0(void) {
    long bad = 0;
    for (int c = 0; c < 256; c++) {
        float v = mx_e8m0_decode((uint8_t)c);
        int ok = c == 255 ? isnan(v) : (double)v == ldexp(1.0, c - 127);
        ok = ok && mx_e8m0_encode(v) == c;
        if (!ok && bad++ < 5) { printf("  code %d: decodes to %g, encodes back to %d\n", c, v, mx_e8m0_encode(v)); }
    }
    check(bad == 0, "e8m0: all 256 codes decode to 2^(c-127) (255 NaN) and encode back (%ld bad)", bad);
    // encode rounds up to a power of two and clamps
    int ok = mx_e8m0_encode(3.0f) == 129 && mx_e8m0_encode(4.0f) == 129 && mx_e8m0_encode(4.0001f) == 130 &&
             mx_e8m0_encode(0.0f) == 0 && mx_e8m0_encode(-1.0f) == 0 && mx_e8m0_encode(1e-45f) == 0 &&
             mx_e8m0_encode(FLT_MAX) == 254 && mx_e8m0_encode(INFINITY) == 255 && mx_e8m0_encode(NAN) == 255;
    check(ok, "e8m0: encode rounds up to powers of two, clamps 0 / tiny / FLT_MAX, NaN and inf to 255");
}

// ------------------------------------------------------------------------------------------
// MXFP8 block scales

// the scale exponent by definition, in double: ceil: the least k with amax <= fmt_max * 2^k;
// floor: floor(log2(amax)) - emax. Clamped to -127..127. amax > 0 finite.
static int scale_exp_ref(float amax, Fp8Format f, MxScaleRule rule) {
    int ex;
    frexp((double)amax, &ex);        // amax = m 2^ex, m in [1/2, 1): floor(log2) = ex - 1
    int k;
    if (rule == MX_SCALE_FLOOR) {
        k = ex - 1 - (f == FP8_E4M3 ? 8 : 15);
    } else {
        double M = fp8_format_max(f);
        k = (int)ceil(log2((double)amax / M)) - 2;    // a guess below, then exact steps up
        while ((double)amax > ldexp(M, k)) { k++; }
    }
    return k < -127 ? -127 : k > 127 ? 127 : k;
}

// mismatches of a scale rule against the reference over blocks given by their amax
static long scale_mismatches(uint8_t (*rule_fn)(float, Fp8Format, MxScaleRule), const float* amax, long n,
                             Fp8Format f, MxScaleRule rule, long* saturated) {
    long bad = 0;
    *saturated = 0;
    for (long i = 0; i < n; i++) {
        uint8_t c = rule_fn(amax[i], f, rule);
        if (c != mx_e8m0_from_exp(scale_exp_ref(amax[i], f, rule))) { bad++; }
        if ((double)amax[i] / mx_e8m0_decode(c) > fp8_format_max(f)) { (*saturated)++; }
    }
    return bad;
}

// deliberately wrong: the ceil rule computed as 2^round(log2(amax / max)) in float
static uint8_t scale_rounded_log(float amax, Fp8Format f, MxScaleRule rule) {
    (void)rule;
    return mx_e8m0_from_exp((int)lrintf(log2f(amax / fp8_format_max(f))));
}

static float random_amax(void) {   // positive, log-uniform over the float range, subnormals included
    for (;;) {
        float a = fp8_bits_float(rand_u32() & 0x7FFFFFFFu);
        if (a > 0.0f && a <= FLT_MAX) { return a; }
    }
}

static void test_mxfp8_scales(void) {
    const Fp8Format fmts[2] = {FP8_E4M3, FP8_E5M2};
    long n = 1L << 20;
    float* amax = (float*)malloc(n * sizeof(float));
    for (long i = 0; i < n; i++) { amax[i] = random_amax(); }
    for (int fi = 0; fi < 2; fi++) {
        Fp8Format f = fmts[fi];
        long sat, bad = scale_mismatches(mx_block_scale, amax, n, f, MX_SCALE_CEIL, &sat);
        check(bad == 0 && sat == 0, "%s ceil rule: %ld random amaxes match the definition (%ld bad), none saturates (%ld)",
              fmt_name(f), n, bad, sat);
        bad = scale_mismatches(mx_block_scale, amax, n, f, MX_SCALE_FLOOR, &sat);
        check(bad == 0 && sat > 0, "%s floor rule: %ld random amaxes match the definition (%ld bad; %ld saturate, as the OCP rule allows)",
              fmt_name(f), n, bad, sat);
        // edge cases: amax = max * 2^j exactly (scale 2^j, amax / scale = max), its float neighbours,
        // powers of two, denormals, the largest float
        long m = 0, bad_edge = 0, sat_edge = 0, exact_bad = 0;
        float* edge = (float*)malloc(2000 * sizeof(float));
        for (int j = -140; j <= 120; j++) {
            float a = ldexpf(fp8_format_max(f), j);
            if (!(a > 0.0f) || isinf(a)) { continue; }
            edge[m++] = a;
            edge[m++] = nextafterf(a, 0.0f);
            edge[m++] = nextafterf(a, INFINITY);
            edge[m++] = ldexpf(1.0f, j);
            if (j >= -119 && mx_block_scale(a, f, MX_SCALE_CEIL) != mx_e8m0_from_exp(j)) { exact_bad++; }
        }
        edge[m++] = 1e-45f; edge[m++] = 1e-40f; edge[m++] = 1.1754942e-38f; edge[m++] = FLT_MIN; edge[m++] = FLT_MAX;
        for (int r = 0; r < 2; r++) {
            long s;
            bad_edge += scale_mismatches(mx_block_scale, edge, m, f, (MxScaleRule)r, &s);
            if (r == MX_SCALE_CEIL) { sat_edge = s; }
        }
        check(bad_edge == 0 && sat_edge == 0 && exact_bad == 0,
              "%s: %ld edge amaxes (max*2^j and neighbours, powers of two, denormals, FLT_MAX) match both rules (%ld bad, %ld saturated; max*2^j -> 2^j: %ld bad)",
              fmt_name(f), m, bad_edge, sat_edge, exact_bad);
        free(edge);
        int ok = mx_block_scale(0.0f, f, MX_SCALE_CEIL) == 0 && mx_block_scale(0.0f, f, MX_SCALE_FLOOR) == 0 &&
                 mx_block_scale(NAN, f, MX_SCALE_CEIL) == E8M0_NAN && mx_block_scale(INFINITY, f, MX_SCALE_FLOOR) == E8M0_NAN &&
                 mx_block_scale(1e-45f, f, MX_SCALE_CEIL) == 0 &&
                 mx_block_scale(FLT_MAX, f, MX_SCALE_CEIL) == mx_e8m0_from_exp(f == FP8_E4M3 ? 120 : 113);
        check(ok, "%s: amax 0 -> code 0 (2^-127), NaN/inf -> 255, 2^-149 clamps to code 0, FLT_MAX -> 2^%d",
              fmt_name(f), f == FP8_E4M3 ? 120 : 113);
    }
    long sat, bad = scale_mismatches(scale_rounded_log, amax, n, FP8_E4M3, MX_SCALE_CEIL, &sat);
    check(bad > 0 && sat > 0, "self-check: a ceil rule by rounded float log2 is caught (%ld mismatches, %ld saturating)", bad, sat);
    free(amax);
}

// ------------------------------------------------------------------------------------------
// MXFP8 blocks

static double fp8_half_spacing(double v, Fp8Format f) {   // half the code spacing at |v| (v <= max)
    int m = fp8_mant_bits(f), emin = 1 - fp8_exp_bias(f), ex;
    frexp(fabs(v), &ex);
    int e = v == 0.0 ? emin : ex - 1;
    if (e < emin) { e = emin; }
    return ldexp(1.0, e - m - 1);
}

static void test_mxfp8_blocks(void) {
    const Fp8Format fmts[2] = {FP8_E4M3, FP8_E5M2};
    for (int fi = 0; fi < 2; fi++) {
        Fp8Format f = fmts[fi];
        long bad = 0, bad_exact = 0, blocks = 20000;
        float x[MXFP8_BLOCK], y[MXFP8_BLOCK];
        uint8_t q[MXFP8_BLOCK];
        for (long b = 0; b < blocks; b++) {
            int ex = (int)(rand_u32() % 200) - 100;    // block magnitude 2^-100 .. 2^99
            for (int i = 0; i < MXFP8_BLOCK; i++) { x[i] = ldexpf((float)rng_normal(&rng), ex); }
            uint8_t sc = mxfp8_quantize_block(q, x, MXFP8_BLOCK, f, MX_SCALE_CEIL);
            mxfp8_dequantize_block(y, q, MXFP8_BLOCK, sc, f);
            double s = mx_e8m0_decode(sc);
            for (int i = 0; i < MXFP8_BLOCK; i++) {
                double err = fabs((double)y[i] - x[i]), lim = fp8_half_spacing(x[i] / s, f) * s;
                if (!(err <= lim)) { bad++; }
            }
            // codes times the scale are representable: quantizing them again is the identity
            uint8_t q2[MXFP8_BLOCK];
            uint8_t sc2 = mxfp8_quantize_block(q2, y, MXFP8_BLOCK, f, MX_SCALE_CEIL);
            for (int i = 0; i < MXFP8_BLOCK; i++) {
                if (fp8_decode(q2[i], f) * mx_e8m0_decode(sc2) != y[i]) { bad_exact++; }
            }
        }
        check(bad == 0, "%s: %ld random blocks, ceil rule: every element within half a code spacing (%ld bad)", fmt_name(f), blocks, bad);
        check(bad_exact == 0, "%s: dequantized blocks re-quantize to the same values (%ld bad)", fmt_name(f), bad_exact);
    }
    // a block whose amax sits just above max * 2^j: ceil doubles the scale, floor saturates it
    float x[MXFP8_BLOCK] = {0};
    uint8_t q[MXFP8_BLOCK];
    x[7] = -nextafterf(FP8_E4M3_MAX * 4.0f, INFINITY);
    x[3] = 1.0f;
    uint8_t c = mxfp8_quantize_block(q, x, MXFP8_BLOCK, FP8_E4M3, MX_SCALE_CEIL);
    uint8_t cf = mxfp8_quantize_block(q, x, MXFP8_BLOCK, FP8_E4M3, MX_SCALE_FLOOR);
    check(c == mx_e8m0_from_exp(3) && cf == mx_e8m0_from_exp(2),
          "e4m3: amax just above 448*4 -> ceil scale 2^3 (got 2^%d), floor scale 2^(10-8) (got 2^%d)", c - 127, cf - 127);
    float xn[MXFP8_BLOCK] = {0}, yn[MXFP8_BLOCK];
    xn[5] = NAN; xn[6] = 3.0f;
    c = mxfp8_quantize_block(q, xn, MXFP8_BLOCK, FP8_E4M3, MX_SCALE_CEIL);
    mxfp8_dequantize_block(yn, q, MXFP8_BLOCK, c, FP8_E4M3);
    check(c == E8M0_NAN && isnan(yn[0]) && isnan(yn[6]), "a NaN in a block makes its scale NaN and the whole block dequantize to NaN");
}

// ------------------------------------------------------------------------------------------
// E2M1

static const double E2M1_MAG[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};

// nearest code by exact comparison, ties to the even code (or away from zero, for the self-check)
static uint8_t e2m1_ref_ties(float x, int ties_away) {
    if (isnan(x)) { return 0x7; }
    uint8_t sign = signbit(x) ? 8 : 0;
    double a = fabs((double)x);
    if (a >= 6.0) { return (uint8_t)(sign | 7); }
    int lo = 0;
    while (E2M1_MAG[lo + 1] <= a) { lo++; }
    double two = 2.0 * a, sum = E2M1_MAG[lo] + E2M1_MAG[lo + 1];
    int c = two < sum ? lo : two > sum ? lo + 1 : ties_away ? lo + 1 : ((lo & 1) ? lo + 1 : lo);
    return (uint8_t)(sign | c);
}
static uint8_t e2m1_ref(float x) { return e2m1_ref_ties(x, 0); }
static uint8_t e2m1_ties_away(float x) { return e2m1_ref_ties(x, 1); }

static long e2m1_mismatches(uint8_t (*enc)(float), float scale, int verbose) {
    long bad = 0;
    for (uint32_t b = 0; b < 65536; b++) {
        float x = bf16_to_float((uint16_t)b) * scale;
        uint8_t got = enc(x), want = e2m1_ref(x);
        if (got != want && bad++ < 5 && verbose) { printf("  bf16 0x%04x * %g = %g: got 0x%x, want 0x%x\n", b, scale, x, got, want); }
    }
    return bad;
}

static void test_e2m1(void) {
    long bad = 0;
    for (int c = 0; c < 16; c++) {
        double want = (c & 8) ? -E2M1_MAG[c & 7] : E2M1_MAG[c & 7];
        float got = mx_e2m1_decode((uint8_t)c);
        if (!((double)got == want && !!signbit(got) == ((c & 8) != 0))) { bad++; }
    }
    check(bad == 0, "e2m1: decode of all 16 codes");
    const float scales[] = {1.0f, 0.75f, 3.0f, 1.0f / 3.0f, 1e-3f};
    for (size_t k = 0; k < sizeof(scales) / sizeof(scales[0]); k++) {
        bad = e2m1_mismatches(mx_e2m1_encode, scales[k], 1);
        check(bad == 0, "e2m1: encode of all 65536 bf16 patterns * %g matches the nearest-value search (%ld mismatches)", scales[k], bad);
    }
    long n = 1L << 22;
    bad = 0;
    for (long i = 0; i < n; i++) {
        float x = fp8_bits_float(rand_u32());
        bad += mx_e2m1_encode(x) != e2m1_ref(x);
    }
    check(bad == 0, "e2m1: encode of %ld random float32 patterns (%ld mismatches)", n, bad);
    bad = 0;   // every midpoint and its float neighbours
    for (int c = 0; c < 7; c++) {
        float mid = (float)((E2M1_MAG[c] + E2M1_MAG[c + 1]) / 2);
        float v[3] = {nextafterf(mid, 0.0f), mid, nextafterf(mid, INFINITY)};
        for (int i = 0; i < 3; i++) { bad += mx_e2m1_encode(v[i]) != e2m1_ref(v[i]) || mx_e2m1_encode(-v[i]) != e2m1_ref(-v[i]); }
    }
    check(bad == 0, "e2m1: midpoints go to the even code, their neighbours to the nearer (%ld bad)", bad);
    long wrong = e2m1_mismatches(e2m1_ties_away, 1.0f, 0);
    check(wrong > 0, "self-check: an e2m1 encoder rounding ties away from zero is caught (%ld mismatches)", wrong);
}

// Stochastic rounding. The rounding is up iff r < T(x) for a threshold T, so bisection over r
// finds T, and T / 2^32 must equal (|x| - lo) / (hi - lo) exactly (a 24-bit |x| over a
// power-of-two spacing: exact in double), for every bf16 |x| < 6, then random floats.
static void test_e2m1_sr(void) {
    long bad = 0, bad_range = 0, checked = 0, n_rand = 200000;
    for (uint32_t b = 0; b < 65536 + n_rand; b++) {
        float x = b < 65536 ? bf16_to_float((uint16_t)b) : (float)(12.0 * rng_uniform(&rng) - 6.0);
        double a = fabs((double)x);
        if (isnan(x) || a >= 6.0 || a < ldexp(1.0, -9)) { continue; }   // below 2^-9 the probability is cut
        int lo = 0;
        while (E2M1_MAG[lo + 1] <= a) { lo++; }
        uint8_t s = signbit(x) ? 8 : 0;
        uint8_t clo = (uint8_t)(s | lo), chi = (uint8_t)(s | (lo + 1));
        // up iff r < T: T = the number of r rounding up
        uint64_t t_lo = 0, t_hi = 1ull << 32;      // T in [t_lo, t_hi]
        while (t_lo < t_hi) {
            uint64_t mid = (t_lo + t_hi) / 2;      // is r = mid rounding up? then T > mid
            if (mx_e2m1_encode_sr(x, (uint32_t)mid) == chi) { t_lo = mid + 1; } else { t_hi = mid; }
        }
        double p = (a - E2M1_MAG[lo]) / (E2M1_MAG[lo + 1] - E2M1_MAG[lo]);
        if ((double)t_lo != p * 4294967296.0) { if (bad++ < 5) { printf("  x = %g: P(up) = %.17g, want %.17g\n", x, t_lo / 4294967296.0, p); } }
        for (int k = 0; k < 16; k++) {
            uint8_t c = mx_e2m1_encode_sr(x, rand_u32());
            if (c != clo && c != chi) { bad_range++; }
        }
        uint8_t c0 = mx_e2m1_encode_sr(x, 0), c1 = mx_e2m1_encode_sr(x, 0xFFFFFFFFu);
        if ((p > 0 && c0 != chi) || c1 != clo) { bad_range++; }
        checked++;
    }
    check(bad == 0, "e2m1 SR: P(round up) = (|x|-lo)/(hi-lo) exactly for %ld bf16 and random float values, |x| in [2^-9, 6) (%ld bad)", checked, bad);
    check(bad_range == 0, "e2m1 SR: never outside the two neighbours of x (%ld bad)", bad_range);
    int ok = mx_e2m1_encode_sr(7.5f, 0) == 7 && mx_e2m1_encode_sr(-INFINITY, 123) == 0xF && mx_e2m1_encode_sr(NAN, 5) == 7 &&
             mx_e2m1_encode_sr(6.0f, 0) == 7 && mx_e2m1_encode_sr(-0.0f, 0) == 8 && mx_e2m1_encode_sr(1.0f, 0) == 2;
    check(ok, "e2m1 SR: saturates beyond 6, NaN -> 0x7, exact codes and signed zero stay put");
    // the mean by sampling: one draw has variance p(1-p) d^2 (d = hi - lo), the mean of N draws
    // a standard deviation sqrt(p(1-p)/N) d; 6 of them bound it (a false alarm ~1e-9)
    const float xs[] = {0.1f, 0.3f, 0.7f, 1.2345f, -1.75f, 2.5f, 3.3f, 4.1f, -5.9f, 5.999f, 1e-4f};
    long N = 1000000;
    for (size_t k = 0; k < sizeof(xs) / sizeof(xs[0]); k++) {
        double sum = 0, a = fabs((double)xs[k]);
        for (long i = 0; i < N; i++) { sum += mx_e2m1_decode(mx_e2m1_encode_sr(xs[k], rand_u32())); }
        int lo = 0;
        while (E2M1_MAG[lo + 1] <= a) { lo++; }
        double d = E2M1_MAG[lo + 1] - E2M1_MAG[lo], p = (a - E2M1_MAG[lo]) / d;
        double mean = sum / N, bound = 6.0 * sqrt(p * (1 - p) / N) * d + 1e-12;
        check(fabs(mean - xs[k]) <= bound, "e2m1 SR: mean of %ld draws at x = %g is %.6f (|diff| %.2e <= %.2e)",
              N, xs[k], mean, fabs(mean - xs[k]), bound);
    }
    double sum = 0;   // self-check: round to nearest is biased at x = 0.3 (always 0.5)
    for (long i = 0; i < 1000; i++) { sum += mx_e2m1_decode(mx_e2m1_encode(0.3f)); }
    check(fabs(sum / 1000 - 0.3) > 6.0 * sqrt(0.6 * 0.4 / 1000) * 0.5, "self-check: round-to-nearest fails the unbiasedness bound");
}

// ------------------------------------------------------------------------------------------
// NVFP4

// |err| in units of the element (y = x * factor): the rounding bound of E2M1 (a quarter below
// 1, a quarter of |y| above: half spacing relative to the binade's start) or saturation's |y| - 6
static double nvfp4_err_bound(double y) {
    double a = fabs(y), r = a / 4 > 0.25 ? a / 4 : 0.25;
    return a - 6 > r ? a - 6 : r;
}

// checks x against its NVFP4 dequantization; returns the bad count, adds to squared errors
static long nvfp4_check(const float* x, const uint8_t* q, const uint8_t* scales, int rows, int cols, float s_t,
                        int tiles, double* err2, double* x2, long* over) {
    long bad = 0;
    int nbc = (cols + 15) / 16;
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) {
            uint8_t sc = tiles ? scales[(r / 16) * nbc + c / 16] : scales[r * nbc + c / 16];
            double xv = x[(long)r * cols + c];
            double y = mx_nvfp4_dequant(q[(long)r * cols + c], sc, s_t);
            double d = fp8_decode(sc, FP8_E4M3), fct = d == 0 ? 0 : (double)s_t / d;
            double lim = d == 0 ? fabs(xv) : nvfp4_err_bound(xv * fct) * d / s_t * (1 + 1e-6) + 1e-30;
            if (!(fabs(y - xv) <= lim)) { if (bad++ < 5) { printf("  (%d,%d) x %g -> %g, bound %g\n", r, c, xv, y, lim); } }
            if (d >= ldexp(1.0, -6) && fabs(xv * fct) > 6.375 * (1 + 1e-6)) { (*over)++; }   // normal scales: saturation <= 1/16
            *err2 += (y - xv) * (y - xv);
            *x2 += xv * xv;
        }
    }
    return bad;
}

static void test_nvfp4(void) {
    int rows = 96, cols = 200;     // cols not a multiple of 16: ragged last blocks
    long n = (long)rows * cols;
    float* x = (float*)malloc(n * sizeof(float));
    float* xt = (float*)malloc(n * sizeof(float));
    uint8_t* q = (uint8_t*)malloc(n);
    uint8_t* qt = (uint8_t*)malloc(n);
    uint8_t* sc = (uint8_t*)malloc(n);
    uint8_t* sct = (uint8_t*)malloc(n);
    for (int trial = 0; trial < 3; trial++) {
        // rows of Gaussian values with magnitudes spread over 2^-24..2^0 (trial 0), plus outliers (1),
        // or one huge value making most block scales E4M3 subnormals or zero (2)
        for (int r = 0; r < rows; r++) {
            float mag = trial == 0 ? ldexpf(1.0f, -(int)(rand_u32() % 25)) : 1.0f;
            for (int c = 0; c < cols; c++) { x[(long)r * cols + c] = mag * (float)rng_normal(&rng); }
        }
        if (trial == 1) { for (int k = 0; k < 20; k++) { x[rand_u32() % n] = 50.0f * (float)rng_normal(&rng); } }
        if (trial == 2) { x[17] = 3e6f; }
        float s_t = mx_nvfp4_tensor_scale(mx_absmax(x, (int)n));
        double e2 = 0, x2 = 0;
        long over = 0;
        mx_nvfp4_quantize_rows(q, sc, x, rows, cols, s_t);
        long bad = nvfp4_check(x, q, sc, rows, cols, s_t, 0, &e2, &x2, &over);
        check(bad == 0 && over == 0, "nvfp4 1x16 (trial %d): every element within the E2M1 rounding/saturation bound (%ld bad, %ld over 6.375); relative rms error %.3f",
              trial, bad, over, sqrt(e2 / x2));
        e2 = x2 = 0;
        mx_nvfp4_quantize_tiles(q, sc, x, rows, cols, s_t);
        bad = nvfp4_check(x, q, sc, rows, cols, s_t, 1, &e2, &x2, &over);
        check(bad == 0 && over == 0, "nvfp4 16x16 (trial %d): every element within the bound (%ld bad, %ld over); relative rms error %.3f",
              trial, bad, over, sqrt(e2 / x2));
        // the transpose quantizes to the transposed codes and scales
        for (int r = 0; r < rows; r++) { for (int c = 0; c < cols; c++) { xt[(long)c * rows + r] = x[(long)r * cols + c]; } }
        mx_nvfp4_quantize_tiles(qt, sct, xt, cols, rows, s_t);
        int tr = (rows + 15) / 16, tc = (cols + 15) / 16;
        long diff = 0;
        for (int r = 0; r < rows; r++) { for (int c = 0; c < cols; c++) { diff += q[(long)r * cols + c] != qt[(long)c * rows + r]; } }
        for (int i = 0; i < tr; i++) { for (int j = 0; j < tc; j++) { diff += sc[i * tc + j] != sct[j * tr + i]; } }
        check(diff == 0, "nvfp4 16x16 (trial %d): quantize(W^T) == quantize(W)^T bit for bit, codes and scales (%ld differ)", trial, diff);
        if (trial == 0) {   // self-check: 1x16 row blocks are not transpose-invariant
            mx_nvfp4_quantize_rows(q, sc, x, rows, cols, s_t);
            mx_nvfp4_quantize_rows(qt, sct, xt, cols, rows, s_t);
            diff = 0;
            for (int r = 0; r < rows; r++) { for (int c = 0; c < cols; c++) { diff += q[(long)r * cols + c] != qt[(long)c * rows + r]; } }
            check(diff > 0, "self-check: 1x16 row blocks fail the transpose comparison (%ld codes differ)", diff);
        }
    }
    // tensor scale and block-scale edge cases
    float s1 = mx_nvfp4_tensor_scale(2688.0f);
    uint8_t b = mx_nvfp4_block_scale(2688.0f, s1);
    int ok = s1 == 1.0f && b == 0x7E && mx_nvfp4_tensor_scale(0.0f) == 1.0f && mx_nvfp4_tensor_scale(NAN) == 1.0f &&
             mx_nvfp4_tensor_scale(1e-44f) == FLT_MAX && (mx_nvfp4_block_scale(NAN, 1.0f) & 0x7F) == 0x7F &&
             isnan(mx_nvfp4_dequant(3, mx_nvfp4_block_scale(NAN, 1.0f), 1.0f)) && mx_nvfp4_factor(0, 5.0f) == 0.0f;
    check(ok, "nvfp4: amax 2688 -> s_t 1, block scale 448; amax 0/NaN -> s_t 1, tiny -> FLT_MAX; NaN block -> NaN scale; zero scale -> factor 0");
    free(x); free(xt); free(q); free(qt); free(sc); free(sct);
}

// ------------------------------------------------------------------------------------------
// random Hadamard transform

static void test_rht(void) {
    const uint64_t seeds[] = {0, 1, 42, 0xDEADBEEFull};
    for (size_t k = 0; k < sizeof(seeds) / sizeof(seeds[0]); k++) {
        uint64_t seed = seeds[k];
        double R[16][16];     // columns: the transform of unit vectors
        for (int j = 0; j < 16; j++) {
            float e[16] = {0};
            e[j] = 1.0f;
            mx_rht_forward(e, 16, seed);
            for (int i = 0; i < 16; i++) { R[i][j] = e[i]; }
        }
        uint32_t s = mx_rht_signs(seed);
        double worst = 0, worst_def = 0;
        for (int i = 0; i < 16; i++) {
            for (int j = 0; j < 16; j++) {
                double dot = 0;
                for (int l = 0; l < 16; l++) { dot += R[i][l] * R[j][l]; }
                worst = fmax(worst, fabs(dot - (i == j)));
                int h = __builtin_popcount((unsigned)(i & j)) & 1;   // Sylvester: (-1)^popcount(i & j)
                double def = (h ? -0.25 : 0.25) * ((s >> j & 1u) ? -1 : 1);
                worst_def = fmax(worst_def, fabs(R[i][j] - def));
            }
        }
        check(worst_def == 0 && worst <= 1e-12, "rht seed %llu: matrix is H16 diag(signs) / 4 exactly, R R^T = I (max |dev| %.1e)",
              (unsigned long long)seed, worst);
        long n = 16 * 64;
        float x[16 * 64], y[16 * 64];
        for (long i = 0; i < n; i++) { x[i] = y[i] = (float)rng_normal(&rng) * (i % 37 == 0 ? 100.0f : 1.0f); }
        mx_rht_forward(y, n, seed);
        double n2x = 0, n2y = 0, err = 0;
        for (long i = 0; i < n; i++) { n2x += (double)x[i] * x[i]; n2y += (double)y[i] * y[i]; }
        mx_rht_inverse(y, n, seed);
        for (long i = 0; i < n; i++) { err = fmax(err, fabs((double)y[i] - x[i]) / 100.0); }
        check(fabs(n2y / n2x - 1) < 1e-5 && err < 1e-5, "rht seed %llu: norm preserved (ratio-1 %.1e), inverse recovers x (max err %.1e of the scale)",
              (unsigned long long)seed, n2y / n2x - 1, err);
    }
    check(mx_rht_signs(1) != mx_rht_signs(2), "rht: different seeds give different signs");
}

// ------------------------------------------------------------------------------------------
// dump for dev/mx_mldtypes_check.py. Little-endian, in this order:
//   uint32 magic MX_DUMP_MAGIC, n_sweep, n_bs, 0
//   float32[256] mx_e8m0_decode(c), uint8[256] mx_e8m0_encode(mx_e8m0_decode(c)), c = 0..255
//   float32[16]  mx_e2m1_decode(c), c = 0..15
//   float32[n_sweep] x, uint8[n_sweep] mx_e2m1_encode(x): every 2^11-th float32 pattern (all
//     binades, both signs, inf and NaN), every 2^7-th float in [2^-10, 8), every float within
//     512 ulps of each E2M1 value and midpoint (both signs), every BF16 pattern
//   float32[n_bs] block amax, float32[n_bs] s_t, uint8[n_bs] mx_nvfp4_block_scale(amax, s_t):
//     s_t of random tensor amaxes 2^-30..2^30, block amaxes up to 2^-24 below them, and equal

#define MX_DUMP_MAGIC 0x4D584450u
#define DUMP_BS 200000

static int write_all(FILE* f, const void* p, size_t size, size_t n) { return fwrite(p, size, n, f) == n; }

static int dump(const char* path) {
    static const double points[] = {0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.5, 3, 3.5, 4, 5, 6};
    const int npoints = (int)(sizeof(points) / sizeof(points[0]));
    uint32_t n_sweep = (1u << 21) + (13u << 16) + (uint32_t)npoints * 2 * 1025 + 65536, k = 0;
    float* x = (float*)malloc((size_t)n_sweep * sizeof(float));
    uint8_t* q = (uint8_t*)malloc(n_sweep);
    float* amax = (float*)malloc(DUMP_BS * sizeof(float));
    float* s_t = (float*)malloc(DUMP_BS * sizeof(float));
    uint8_t* bs = (uint8_t*)malloc(DUMP_BS);
    if (!x || !q || !amax || !s_t || !bs) { fprintf(stderr, "dump: out of memory\n"); return 1; }
    for (uint32_t i = 0; i < (1u << 21); i++) { x[k++] = fp8_bits_float(i << 11); }
    for (uint32_t b = 0x3A800000u; b < 0x41000000u; b += 1u << 7) { x[k++] = fp8_bits_float(b); }   // [2^-10, 8)
    for (int p = 0; p < npoints; p++) {
        for (int sg = 0; sg < 2; sg++) {
            uint32_t c = fp8_float_bits((float)points[p]) | (sg ? 0x80000000u : 0u);
            for (int d = -512; d <= 512; d++) {   // ulps across zero stay in the sign's magnitudes
                int64_t m = (int64_t)(c & 0x7FFFFFFFu) + d;
                x[k++] = fp8_bits_float((uint32_t)(m < 0 ? -m : m) | (c & 0x80000000u));
            }
        }
    }
    for (uint32_t b = 0; b < 65536; b++) { x[k++] = bf16_to_float((uint16_t)b); }
    if (k != n_sweep) { fprintf(stderr, "dump: sweep has %u values, expected %u\n", k, n_sweep); return 1; }
    for (uint32_t i = 0; i < n_sweep; i++) { q[i] = mx_e2m1_encode(x[i]); }
    for (int i = 0; i < DUMP_BS; i++) {
        float t = ldexpf(1.0f + (float)rng_uniform(&rng), (int)(rand_u32() % 61) - 30);
        s_t[i] = mx_nvfp4_tensor_scale(t);
        amax[i] = i % 10 == 0 ? t : t * ldexpf((float)rng_uniform(&rng), -(int)(rand_u32() % 25));
        bs[i] = mx_nvfp4_block_scale(amax[i], s_t[i]);
    }
    float e8[256], e2[16];
    uint8_t e8c[256];
    for (int c = 0; c < 256; c++) { e8[c] = mx_e8m0_decode((uint8_t)c); e8c[c] = mx_e8m0_encode(e8[c]); }
    for (int c = 0; c < 16; c++) { e2[c] = mx_e2m1_decode((uint8_t)c); }
    uint32_t n_bs = DUMP_BS, header[4] = {MX_DUMP_MAGIC, n_sweep, n_bs, 0};
    FILE* f = fopen(path, "wb");
    int ok = f != NULL && write_all(f, header, 4, 4) && write_all(f, e8, 4, 256) && write_all(f, e8c, 1, 256) &&
             write_all(f, e2, 4, 16) && write_all(f, x, 4, n_sweep) && write_all(f, q, 1, n_sweep) &&
             write_all(f, amax, 4, n_bs) && write_all(f, s_t, 4, n_bs) && write_all(f, bs, 1, n_bs);
    if (f != NULL && fclose(f) != 0) { ok = 0; }
    free(x); free(q); free(amax); free(s_t); free(bs);
    if (!ok) { fprintf(stderr, "dump: cannot write '%s'\n", path); return 1; }
    printf("wrote %s: e8m0 and e2m1 codes, %u e2m1 encodings, %u nvfp4 block scales\n", path, n_sweep, n_bs);
    return 0;
}

int main(int argc, char** argv) {
    rng_seed(&rng, 1234);
    if (argc == 3 && strcmp(argv[1], "--dump") == 0) { return dump(argv[2]); }
    if (argc != 1) { fprintf(stderr, "usage: %s [--dump FILE]\n", argv[0]); return 2; }
    test_e8m0();
    test_mxfp8_scales();
    test_mxfp8_blocks();
    test_e2m1();
    test_e2m1_sr();
    test_nvfp4();
    test_rht();
    return check_summary();
}
