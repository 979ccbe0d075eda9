// CPU tests of llmc/fp8.h and llmc/fp8_scaling.h: the FP8 encoder against a slow, independent
// reference (nearest value among the decoded codes by exact comparison, ties to the even code)
// over every BF16 bit pattern, with and without scales, and over random and borderline floats;
// decoding of all 256 codes; the scale rule; delayed and current scaling over simulated steps;
// the checkpointed state. Self-checks make sure a wrong encoder or decoder would be caught.
//   dev/test_fp8_host              the tests; PASS/FAIL lines, then `N passed, N failed`
//   dev/test_fp8_host --dump FILE  writes the E4M3 then the E5M2 code of every BF16 pattern
//                                  (2 x 65536 bytes, by pattern) for dev/fp8_mldtypes_check.py
// Build: gcc -O2 -Wall -Wextra -o dev/test_fp8_host dev/test_fp8_host.c -lm
#include <math.h>
#include "../llmc/fp8.h"
#include "../llmc/fp8_scaling.h"
#include "test_check.h"

static float bf16_to_float(uint16_t b) { return fp8_bits_float((uint32_t)b << 16); }
static const char* fmt_name(Fp8Format f) { return f == FP8_E4M3 ? "e4m3" : "e5m2"; }

// ------------------------------------------------------------------------------------------
// reference: decode by the formula, encode by search

// value of a code from sign, exponent and mantissa fields (double, exact)
static double decode_ref(uint8_t c, Fp8Format f) {
    int s = c >> 7;
    double v;
    if (f == FP8_E4M3) {
        int e = (c >> 3) & 15, m = c & 7;
        if (e == 15 && m == 7) { return NAN; }
        v = e == 0 ? ldexp(m, -9) : ldexp(8 + m, e - 10);     // 2^-6 * m/8, 2^(e-7) * (1 + m/8)
    } else {
        int e = (c >> 2) & 31, m = c & 3;
        if (e == 31) { return m == 0 ? (s ? -INFINITY : INFINITY) : NAN; }
        v = e == 0 ? ldexp(m, -16) : ldexp(4 + m, e - 17);    // 2^-14 * m/4, 2^(e-15) * (1 + m/4)
    }
    return s ? -v : v;
}

typedef enum { TIES_EVEN, TIES_AWAY } Ties;

static double mag_table[2][128];   // decode_ref of codes 0..max_code, increasing
static void mag_table_init(void) {
    for (int f = 0; f < 2; f++) {
        for (int c = 0; c <= fp8_max_code((Fp8Format)f); c++) { mag_table[f][c] = decode_ref((uint8_t)c, (Fp8Format)f); }
    }
}

// nearest code by exact comparison: NaN -> 0x7F, beyond max -> +-max, else the code of the
// largest value <= |x| or the next one, whichever is nearer (2|x| against their sum: exact in
// double), a tie going to the even code (or away from zero for the self-check's wrong encoder)
static uint8_t encode_ref_ties(float x, Fp8Format f, Ties ties) {
    if (isnan(x)) { return 0x7F; }
    uint8_t sign = signbit(x) ? 0x80 : 0x00;
    double ax = fabs((double)x);
    int maxc = fp8_max_code(f);
    if (ax >= mag_table[f][maxc]) { return (uint8_t)(sign | maxc); }
    int lo = 0, hi = maxc;                 // invariant: mag[lo] <= ax < mag[hi]
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (mag_table[f][mid] <= ax) { lo = mid; } else { hi = mid; }
    }
    double two_x = 2.0 * ax, sum = mag_table[f][lo] + mag_table[f][hi];
    int c;
    if (two_x < sum) { c = lo; }
    else if (two_x > sum) { c = hi; }
    else { c = ties == TIES_AWAY ? hi : ((lo & 1) ? hi : lo); }
    return (uint8_t)(sign | c);
}
static uint8_t encode_ref(float x, Fp8Format f) { return encode_ref_ties(x, f, TIES_EVEN); }

typedef uint8_t (*Encoder)(float, Fp8Format);
typedef float (*Decoder)(uint8_t, Fp8Format);

// deliberately wrong implementations, for the self-checks
static uint8_t encode_ties_away(float x, Fp8Format f) { return encode_ref_ties(x, f, TIES_AWAY); }
static uint8_t encode_no_saturation(float x, Fp8Format f) {
    if (fabsf(x) > fp8_format_max(f) && !isnan(x)) { return f == FP8_E4M3 ? 0x7F : (uint8_t)(signbit(x) ? 0xFC : 0x7C); }
    return fp8_encode(x, f);
}
static float decode_subnormals_as_normals(uint8_t c, Fp8Format f) {
    int m = fp8_mant_bits(f);
    if (((c & 0x7F) >> m) == 0 && (c & ((1 << m) - 1)) != 0) { return fp8_decode((uint8_t)(c | (1 << m)), f); }
    return fp8_decode(c, f);
}

// ------------------------------------------------------------------------------------------
// comparisons

// mismatches of enc against the reference over every BF16 pattern times scale
static long encode_bf16_mismatches(Encoder enc, Fp8Format f, float scale, int verbose) {
    long bad = 0;
    for (uint32_t b = 0; b < 65536; b++) {
        float x = bf16_to_float((uint16_t)b) * scale;
        uint8_t got = enc(x, f), want = encode_ref(x, f);
        if (got != want) {
            if (verbose && bad < 5) { printf("  bf16 0x%04x * %g = %.9g: got 0x%02x, want 0x%02x\n", b, scale, x, got, want); }
            bad++;
        }
    }
    return bad;
}

static int same_value(double a, double b) {
    if (isnan(a) || isnan(b)) { return isnan(a) && isnan(b); }
    return a == b && signbit(a) == signbit(b);
}

static long decode_mismatches(Decoder dec, Fp8Format f) {
    long bad = 0;
    for (int c = 0; c < 256; c++) { bad += !same_value((double)dec((uint8_t)c, f), decode_ref((uint8_t)c, f)); }
    return bad;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rand_u32(void) {   // xorshift64*
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

static void test_codes(void) {
    const Fp8Format fmts[2] = {FP8_E4M3, FP8_E5M2};
    for (int i = 0; i < 2; i++) {
        Fp8Format f = fmts[i];
        check(decode_mismatches(fp8_decode, f) == 0, "%s: decode of all 256 codes matches the field formula", fmt_name(f));
        check(fp8_decode(fp8_max_code(f), f) == fp8_format_max(f) && decode_ref((uint8_t)fp8_max_code(f), f) == fp8_format_max(f),
              "%s: largest code 0x%02x is %g", fmt_name(f), fp8_max_code(f), fp8_format_max(f));
        const float scales[] = {1.0f, 0.5f, 3.7f, 1.0f / 448.0f, 1e-3f, 300.0f, 1048576.0f, 2.9e-39f};
        for (size_t k = 0; k < sizeof(scales) / sizeof(scales[0]); k++) {
            long bad = encode_bf16_mismatches(fp8_encode, f, scales[k], 1);
            check(bad == 0, "%s: encode of all 65536 bf16 patterns * %g matches the reference (%ld mismatches)",
                  fmt_name(f), scales[k], bad);
        }
        long bad = 0, n = 1L << 22;
        for (long k = 0; k < n; k++) {
            float x = fp8_bits_float(rand_u32());
            bad += fp8_encode(x, f) != encode_ref(x, f);
        }
        check(bad == 0, "%s: encode of %ld random float32 patterns (%ld mismatches)", fmt_name(f), n, bad);
        // each midpoint between neighbouring codes and the floats next to it: ties and their neighbours
        bad = 0;
        int maxc = fp8_max_code(f);
        for (int c = 0; c <= maxc; c++) {
            double hi = c < maxc ? mag_table[f][c + 1] : 2.0 * mag_table[f][c] - mag_table[f][c - 1];
            float mid = (float)((mag_table[f][c] + hi) / 2.0);   // exact: few significant bits
            float xs[5] = {mid, nextafterf(mid, 0.0f), nextafterf(mid, INFINITY),
                           nextafterf(nextafterf(mid, 0.0f), 0.0f), nextafterf(nextafterf(mid, INFINITY), INFINITY)};
            for (int j = 0; j < 5; j++) {
                bad += fp8_encode(xs[j], f) != encode_ref(xs[j], f);
                bad += fp8_encode(-xs[j], f) != encode_ref(-xs[j], f);
            }
        }
        check(bad == 0, "%s: encode at every midpoint between codes and 2 floats either side (%ld mismatches)", fmt_name(f), bad);
        bad = 0;
        for (int c = 0; c < 256; c++) {
            float v = fp8_decode((uint8_t)c, f);
            if (isnan(v)) { continue; }
            uint8_t want = isinf(v) ? (uint8_t)((c & 0x80) | maxc) : (uint8_t)c;   // inf saturates
            bad += fp8_encode(v, f) != want;
        }
        check(bad == 0, "%s: encode(decode(c)) == c for every non-NaN code, infinities saturating", fmt_name(f));
    }
    // hand-checked values
    struct { float x; Fp8Format f; uint8_t want; const char* what; } cases[] = {
        {NAN, FP8_E4M3, 0x7F, "NaN"}, {-NAN, FP8_E5M2, 0x7F, "-NaN"},
        {INFINITY, FP8_E4M3, 0x7E, "+inf saturates"}, {-INFINITY, FP8_E4M3, 0xFE, "-inf saturates"},
        {INFINITY, FP8_E5M2, 0x7B, "+inf saturates"}, {-INFINITY, FP8_E5M2, 0xFB, "-inf saturates"},
        {464.0f, FP8_E4M3, 0x7E, "464 (max + half ulp) saturates"}, {-1e30f, FP8_E4M3, 0xFE, "-1e30 saturates"},
        {61440.0f, FP8_E5M2, 0x7B, "61440 saturates"}, {-0.0f, FP8_E4M3, 0x80, "-0 keeps its sign"},
        {0x1p-10f, FP8_E4M3, 0x00, "half the smallest subnormal: tie to 0"},
        {0x1.8p-9f, FP8_E4M3, 0x02, "1.5 subnormal quanta: tie to even 2"},
        {0x1.4p-9f, FP8_E4M3, 0x01, "1.25 quanta -> 1"}, {-0x1p-17f, FP8_E5M2, 0x80, "-2^-17: tie to -0"},
        {0x1.000002p-17f, FP8_E5M2, 0x01, "just above half the smallest subnormal -> 1"},
        {0x1.ep-7f, FP8_E4M3, 0x08, "0.9375 * 2^-6: rounds up into the smallest normal"},
        {1.0f, FP8_E4M3, 0x38, "1.0"}, {1.0f, FP8_E5M2, 0x3C, "1.0"},
        {1.0625f, FP8_E4M3, 0x38, "1 + 1/16: tie to even 1.0"}, {1.1875f, FP8_E4M3, 0x3A, "1 + 3/16: tie to even 1.25"},
        {240.0f, FP8_E4M3, 0x77, "240 -> 240"}, {15.5f, FP8_E4M3, 0x58, "15.5 -> 16 (carry into the exponent)"},
    };
    long bad = 0;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        uint8_t got = fp8_encode(cases[k].x, cases[k].f);
        if (got != cases[k].want) {
            printf("  %s %s: %.9g -> 0x%02x, want 0x%02x\n", fmt_name(cases[k].f), cases[k].what, cases[k].x, got, cases[k].want);
            bad++;
        }
    }
    check(bad == 0, "%zu hand-checked encodings (NaN, infinities, saturation, ties, subnormals, signed zero)",
          sizeof(cases) / sizeof(cases[0]));
}

// the comparisons above must be able to fail
static void test_self_checks(void) {
    long a = encode_bf16_mismatches(encode_ties_away, FP8_E4M3, 1.0f, 0);
    check(a > 0, "self-check: an encoder rounding ties away from zero is caught (%ld mismatches)", a);
    long b = encode_bf16_mismatches(encode_no_saturation, FP8_E5M2, 1.0f, 0);
    check(b > 0, "self-check: an encoder without saturation is caught (%ld mismatches)", b);
    long c = decode_mismatches(decode_subnormals_as_normals, FP8_E4M3);
    check(c > 0, "self-check: a decoder treating subnormals as normals is caught (%ld mismatches)", c);
}

// ------------------------------------------------------------------------------------------
// scales and scaling state

static void test_scale_rule(void) {
    float prev = 3.0f;
    check(fp8_scale_from_amax(0.0f, prev, FP8_E4M3_MAX, 0) == prev, "scale: amax 0 keeps the previous scale");
    check(fp8_scale_from_amax(NAN, prev, FP8_E4M3_MAX, 0) == prev, "scale: amax NaN keeps the previous scale");
    check(fp8_scale_from_amax(INFINITY, prev, FP8_E4M3_MAX, 0) == prev, "scale: amax inf keeps the previous scale");
    check(fp8_scale_from_amax(448.0f, prev, FP8_E4M3_MAX, 0) == 1.0f, "scale: e4m3 amax 448 -> 1");
    check(fp8_scale_from_amax(1.0f, prev, FP8_E4M3_MAX, 0) == 448.0f, "scale: e4m3 amax 1 -> 448");
    check(fp8_scale_from_amax(1.0f, prev, FP8_E4M3_MAX, 3) == 56.0f, "scale: e4m3 amax 1, margin 3 -> 56");
    check(fp8_scale_from_amax(0.25f, prev, FP8_E5M2_MAX, 1) == 114688.0f, "scale: e5m2 amax 0.25, margin 1 -> 114688");
    check(fp8_scale_from_amax(3.0f, prev, FP8_E4M3_MAX, 0) == 448.0f / 3.0f, "scale: amax 3 -> 448/3 rounded once");
    check(fp8_scale_from_amax(1e-45f, prev, FP8_E4M3_MAX, 0) == FLT_MAX, "scale: tiny amax clamps to FLT_MAX");
    float s = fp8_scale_from_amax(FLT_MAX, prev, FP8_E4M3_MAX, 0);
    check(s > 0.0f && s == 448.0f / FLT_MAX, "scale: amax FLT_MAX gives a tiny positive scale");
    // amax * scale never exceeds the format's max: no overflow of the tensor that set the scale
    long bad = 0;
    for (uint32_t b = 0x0080; b < 0x7F80; b++) {
        float amax = bf16_to_float((uint16_t)b);
        for (int margin = 0; margin <= 2; margin++) {
            float sc = fp8_scale_from_amax(amax, 1.0f, FP8_E4M3_MAX, margin);
            uint8_t q = fp8_encode(amax * sc, FP8_E4M3);
            bad += sc < FLT_MAX && fp8_decode(q, FP8_E4M3) > FP8_E4M3_MAX / (float)(1 << margin);
        }
    }
    check(bad == 0, "scale: every normal bf16 amax, scaled, encodes within max / 2^margin (%ld exceed)", bad);
    check(fp8_amax_max(1.0f, NAN) != fp8_amax_max(1.0f, NAN) && fp8_amax_max(INFINITY, 2.0f) == INFINITY,
          "amax order: NaN > inf > finite");
}

// One simulated step of tensor t: casts with the given own amaxes (micro-batches), as
// llmc/linear_fp8.cuh does on the device: current scaling sets the scale from each cast's own
// amax, delayed scaling uses the scale in place and raises the step's amax. Returns the scale
// the last cast used.
static float sim_casts(Fp8Scaling* sc, float* blk, int t, const float* amaxes, int n) {
    int NT = sc->num_tensors, H = sc->history_len;
    for (int i = 0; i < n; i++) {
        if (fp8_needs_own_amax(sc, t)) {
            fp8_amax_cur(blk, NT, H)[t] = amaxes[i];
            fp8_current_scale_tensor(blk, NT, H, t, FP8_E4M3_MAX, sc->margin);
        } else {
            fp8_amax_step(blk)[t] = fp8_amax_max(fp8_amax_step(blk)[t], amaxes[i]);
        }
        fp8_note_cast(sc, t);
    }
    return fp8_scale(blk, NT)[t];
}

static void sim_step_begin(Fp8Scaling* sc, float* blk) {
    for (int t = 0; t < sc->num_tensors; t++) {
        fp8_fold_tensor(blk, sc->num_tensors, sc->history_len, t, fp8_fold_pos(sc), fp8_fold_filled(sc), sc->algo,
                        FP8_E4M3_MAX, sc->margin);
    }
    fp8_scaling_end_fold(sc);
}

static void test_delayed_scaling(Fp8AmaxAlgo algo) {
    const int NT = 2, H = 3;
    Fp8Scaling sc;
    fp8_scaling_init(&sc, NT, FP8_SCALING_DELAYED, algo, H, 0);
    float* blk = (float*)malloc(fp8_block_floats(NT, H) * sizeof(float));
    fp8_block_init(blk, NT, H);
    const char* an = algo == FP8_AMAX_MAX ? "max" : "most_recent";
    // tensor 0, per step: the micro-batches' amaxes, and the scale the step must use. Every
    // step begins with a fold; the one before step 0 puts a 0 in the ring. Comments: the ring
    // each step's scale comes from, oldest first.
    float nanf_ = NAN;
    struct { float a[2]; int n; float want_max, want_recent; } steps[] = {
        {{2.0f, 0.5f}, 2, 0.0f, 0.0f},      // empty history: each micro-batch its own amax (see below)
        {{4.0f, 3.0f}, 2, 224.0f, 224.0f},  // 0 2
        {{1.0f}, 1, 112.0f, 112.0f},        // 0 2 4
        {{0.0f}, 1, 112.0f, 448.0f},        // 2 4 1
        {{0.0f}, 1, 112.0f, 448.0f},        // 4 1 0: most recent 0 keeps the scale
        {{0.0f}, 1, 448.0f, 448.0f},        // 1 0 0: the 4 left the ring
        {{nanf_}, 1, 448.0f, 448.0f},       // 0 0 0: amax 0 keeps the scale
        {{8.0f}, 1, 448.0f, 448.0f},        // 0 0 NaN: NaN keeps the scale
        {{8.0f}, 1, 448.0f, 56.0f},         // 0 NaN 8
        {{8.0f}, 1, 448.0f, 56.0f},         // NaN 8 8
        {{1.0f}, 1, 56.0f, 56.0f},          // 8 8 8
    };
    int nsteps = (int)(sizeof(steps) / sizeof(steps[0]));
    long bad = 0;
    for (int s = 0; s < nsteps; s++) {
        sim_step_begin(&sc, blk);
        float used = sim_casts(&sc, blk, 0, steps[s].a, steps[s].n);
        float want = algo == FP8_AMAX_MAX ? steps[s].want_max : steps[s].want_recent;
        if (s == 0) { want = 896.0f; }   // the last micro-batch's own amax, 0.5 (the first used 448/2)
        if (used != want) { printf("  %s step %d: scale %g, want %g\n", an, s, used, want); bad++; }
        if (*fp8_scale_inv_at(blk, NT, 0) != 1.0f / used) { bad++; }
        if (s == 1 && fp8_amax_step(blk)[0] != 4.0f) { printf("  step amax is not the max over micro-batches\n"); bad++; }
    }
    check(bad == 0, "delayed (%s, history %d): first step uses its own amax, then the history before each step; "
          "micro-batches max; 0 and NaN keep the scale; ring drops old steps", an, H);
    // tensor 1 was never cast: still on its own amax, its scale untouched by the empty folds
    check(fp8_needs_own_amax(&sc, 1) && fp8_scale(blk, NT)[1] == 1.0f, "delayed (%s): a tensor never cast keeps scale 1 and its own-amax start", an);
    float a5 = 5.0f;
    check(sim_casts(&sc, blk, 1, &a5, 1) == 448.0f / 5.0f, "delayed (%s): a tensor first cast late starts from its own amax", an);
    check(sc.step == nsteps && sc.filled == H && sc.pos == nsteps % H, "delayed (%s): ring position and fill count", an);
    fp8_scaling_free(&sc);
    free(blk);
}

static void test_current_scaling(void) {
    const int NT = 1, H = 4;
    Fp8Scaling sc;
    fp8_scaling_init(&sc, NT, FP8_SCALING_CURRENT, FP8_AMAX_MAX, H, 1);
    float* blk = (float*)malloc(fp8_block_floats(NT, H) * sizeof(float));
    fp8_block_init(blk, NT, H);
    const float a[] = {2.0f, 100.0f, 0.0f, NAN, 7.0f};
    const float want[] = {112.0f, 2.24f, 2.24f, 2.24f, 32.0f};   // 448 / (amax * 2^1), 0 and NaN keep
    long bad = 0;
    for (int s = 0; s < 5; s++) {
        sim_step_begin(&sc, blk);
        float used = sim_casts(&sc, blk, 0, &a[s], 1);
        if (used != want[s]) { printf("  current step %d: scale %g, want %g\n", s, used, want[s]); bad++; }
        if (fp8_amax_cur(blk, NT, H)[0] != 0.0f) { bad++; }
    }
    check(bad == 0, "current (margin 1): each cast from its own amax; 0 and NaN keep the scale; amax_cur cleared");
    fp8_scaling_free(&sc);
    free(blk);
}

// save mid-run, load into a fresh state, continue both: identical bits
static void test_state_roundtrip(void) {
    const int NT = 6, H = 5;
    Fp8Scaling a, b;
    fp8_scaling_init(&a, NT, FP8_SCALING_DELAYED, FP8_AMAX_MAX, H, 0);
    fp8_scaling_init(&b, NT, FP8_SCALING_DELAYED, FP8_AMAX_MAX, H, 0);
    size_t nf = fp8_block_floats(NT, H);
    float* ba = (float*)malloc(nf * sizeof(float));
    float* bb = (float*)malloc(nf * sizeof(float));
    fp8_block_init(ba, NT, H);
    fp8_block_init(bb, NT, H);
    for (int s = 0; s < 7; s++) {
        sim_step_begin(&a, ba);
        for (int t = 0; t < NT - 1; t++) { float x = (float)((s * 7 + t * 3) % 11) + 0.5f; sim_casts(&a, ba, t, &x, 1); }
    }
    size_t bytes = fp8_state_bytes(&a);
    char* buf = (char*)malloc(bytes);
    char* p = (char*)fp8_state_save_host(&a, buf);
    memcpy(p, ba, fp8_saved_floats(NT, H) * sizeof(float));
    const char* q = (const char*)fp8_state_load_host(&b, buf);
    memcpy(bb, q, fp8_saved_floats(NT, H) * sizeof(float));
    check((size_t)(p - buf) + fp8_saved_floats(NT, H) * sizeof(float) == bytes, "state: %zu bytes, as fp8_state_bytes says", bytes);
    for (int s = 7; s < 12; s++) {
        Fp8Scaling* st[2] = {&a, &b};
        float* bl[2] = {ba, bb};
        for (int k = 0; k < 2; k++) {
            sim_step_begin(st[k], bl[k]);
            for (int t = 0; t < NT; t++) { float x = (float)((s * 5 + t) % 9); sim_casts(st[k], bl[k], t, &x, 1); }
        }
    }
    int same = memcmp(ba, bb, nf * sizeof(float)) == 0 && a.pos == b.pos && a.filled == b.filled && a.step == b.step &&
               memcmp(a.folded, b.folded, NT * sizeof(int32_t)) == 0 && memcmp(a.pending, b.pending, NT * sizeof(int32_t)) == 0;
    check(same, "state: saved after 7 steps, loaded, 5 more steps: bit-identical to the uninterrupted state");
    check(fp8_needs_own_amax(&b, NT - 1) == 0 && b.folded[NT - 1] == 4,
          "state: a tensor first cast after the load has its 4 folds counted");
    fp8_scaling_free(&a); fp8_scaling_free(&b);
    free(ba); free(bb); free(buf);
}

static int dump(const char* path) {
    FILE* f = fopen_or_die(path, "wb");
    uint8_t codes[65536];
    for (int k = 0; k < 2; k++) {
        for (uint32_t b = 0; b < 65536; b++) { codes[b] = fp8_encode(bf16_to_float((uint16_t)b), (Fp8Format)k); }
        fwrite_or_die(codes, 1, sizeof(codes), f, path);
    }
    fclose_or_die(f, path);
    printf("wrote %s: e4m3 then e5m2 codes of the 65536 bf16 patterns\n", path);
    return 0;
}

int main(int argc, char** argv) {
    mag_table_init();
    if (argc == 3 && strcmp(argv[1], "--dump") == 0) { return dump(argv[2]); }
    if (argc != 1) { fprintf(stderr, "usage: %s [--dump FILE]\n", argv[0]); return 2; }
    test_codes();
    test_self_checks();
    test_scale_rule();
    test_delayed_scaling(FP8_AMAX_MAX);
    test_delayed_scaling(FP8_AMAX_MOST_RECENT);
    test_current_scaling();
    test_state_roundtrip();
    return check_summary();
}
