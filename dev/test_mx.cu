// GPU tests and timings of llmc/mx_cast.cuh, the MXFP8 and NVFP4 cast and dequantization kernels.
//   dev/test_mx               every check, then kernel timings at GPT-2 shapes
//   dev/test_mx --no-timing   checks only
// Every check is bit for bit against llmc/mx.h run on the host on the same BF16 values (mx.h is
// itself checked by dev/test_mx_host and dev/mx_mldtypes_check.py). Inputs: values spread over
// BF16's whole range with zeros, an all-zero block, subnormals, values near BF16's largest, and
// +-inf and NaN; Gaussian rows of different magnitudes with outliers; all 65536 BF16 patterns.
// Shapes include non-square ones, ones that are not multiples of the kernels' tiles, and
// NVFP4 shapes with R % 32 == 16. Per (input, shape):
//  - MXFP8 rows and transposed columns, E4M3 and E5M2, ceil and floor scale rules: codes, scales
//  - MXFP8 dequantization of the host's codes: BF16 bits
//  - NVFP4 tensor scale on the device (amax, then s_t), plain and after the RHT
//  - NVFP4 rows (s_t as a value and from the device; stochastic rounding), 16x16 tiles (codes,
//    scales, transposed codes, and the tiles of W^T), columns transposed (RHT x SR)
//  - NVFP4 dequantization (rows and tiles) of the host's codes: BF16 bits
// NVFP4 codes are packed two per byte on the device: its codes are unpacked with mx.h's
// mx_e2m1_unpack before the comparison (and nothing may be written past the packed half of
// the buffer), the host's are packed before they are dequantized.
// Once: the packed layout (host pack/unpack inverses; the device's nibble order on a known
// block); the dequantized products are exact in BF16 where mx_cast.cuh says so (every code and scale).
// Self-checks make sure a flipped bit, the other scale rule, round-to-nearest instead of SR,
// another SR seed and a missing RHT would all be caught.
// Prints `PASS|FAIL name ...` per check and ends with `N passed, N failed`.
// Exit status: 0 all passed, 1 a check failed, 77 no GPU or one below compute capability 9.0 (skipped).
// Build (from the repository root):
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xcompiler -Wall,-Wno-unused-function
//        -o dev/test_mx dev/test_mx.cu -lcublasLt
#include <functional>
#include "../llmc/mx_cast.cuh"
#include "test_util.cuh"   // VF, Bits, rng, round_bf16, to_dev, get_bits, fmt, check_count, time_ms, ...

typedef Bytes Codes;
struct Quant { Codes q, s; };   // codes and block scales

static const uint32_t SR_SEED = 0x5eedu;
static const uint64_t RHT_SEED = 0xC0FFEEull;

// NVFP4 codes as the device keeps them, two per byte: n codes from the device, one per byte,
// and the host's one-per-byte codes packed onto the device
static Codes get_e2m1(const uint8_t* d, size_t n) {
    Codes p = get_bytes(d, n / 2), q(n);
    mx_e2m1_unpack(q.data(), p.data(), (long)n);
    return q;
}
static uint8_t* e2m1_to_dev(const Codes& q) {
    Codes p(q.size() / 2);
    mx_e2m1_pack(p.data(), q.data(), (long)q.size());
    return bytes_to_dev(p);
}
template <typename T> static std::vector<T> transpose(const std::vector<T>& a, int R, int C) {   // (C,R) of (R,C)
    std::vector<T> t(a.size());
    for (int r = 0; r < R; r++) { for (int c = 0; c < C; c++) { t[(size_t)c * R + r] = a[(size_t)r * C + c]; } }
    return t;
}
static const char* fname(Fp8Format f) { return f == FP8_E4M3 ? "e4m3" : "e5m2"; }
static const char* rname(MxScaleRule r) { return r == MX_SCALE_CEIL ? "ceil" : "floor"; }

// Differing elements of two (?, cols) arrays, the first three printed with their position.
// BF16 outputs compare NaN equal to any NaN (the device's NaN payload is its own).
static bool bf16_same(uint16_t a, uint16_t b) { return a == b || ((a & 0x7FFF) > 0x7F80 && (b & 0x7FFF) > 0x7F80); }
template <typename T> static long diff(const char* what, const std::vector<T>& got, const std::vector<T>& want, int cols) {
    long bad = 0;
    for (size_t i = 0; i < want.size(); i++) {
        bool same = sizeof(T) == 2 ? bf16_same((uint16_t)got[i], (uint16_t)want[i]) : got[i] == want[i];
        if (!same && bad++ < 3) {
            printf("  %s (%zu,%zu): device 0x%0*x, host 0x%0*x\n", what, i / cols, i % cols, (int)(2 * sizeof(T)),
                   (unsigned)got[i], (int)(2 * sizeof(T)), (unsigned)want[i]);
        }
    }
    return bad;
}

// ------------------------------------------------------------------------------------------
// host references: llmc/mx.h on the BF16 values as floats

static Quant ref_mxfp8_rows(const VF& x, Fp8Format f, MxScaleRule rule) {
    Quant o = {Codes(x.size()), Codes(x.size() / MXFP8_BLOCK)};
    for (size_t b = 0; b < o.s.size(); b++) {
        o.s[b] = mxfp8_quantize_block(&o.q[b * MXFP8_BLOCK], &x[b * MXFP8_BLOCK], MXFP8_BLOCK, f, rule);
    }
    return o;
}

// round to nearest: mx_nvfp4_quantize_rows itself; SR: its steps with mx_e2m1_encode_sr and
// the bits mx_cast.cuh draws for each output index
static Quant ref_nvfp4_rows(const VF& x, int R, int C, float s_t, bool sr) {
    Quant o = {Codes(x.size()), Codes(x.size() / NVFP4_BLOCK)};
    if (!sr) {
        mx_nvfp4_quantize_rows(o.q.data(), o.s.data(), x.data(), R, C, s_t);
        return o;
    }
    for (size_t b = 0; b < o.s.size(); b++) {
        const float* xb = &x[b * NVFP4_BLOCK];
        o.s[b] = mx_nvfp4_block_scale(mx_absmax(xb, NVFP4_BLOCK), s_t);
        float f = mx_nvfp4_factor(o.s[b], s_t);
        for (int i = 0; i < NVFP4_BLOCK; i++) {
            long idx = (long)b * NVFP4_BLOCK + i;
            o.q[idx] = mx_e2m1_encode_sr(xb[i] * f, mx_sr_bits(SR_SEED, idx));
        }
    }
    return o;
}

// x (R,C) -> x^T (C,R), the RHT applied along its rows when rht
static VF transposed(const VF& x, int R, int C, bool rht) {
    VF t = transpose(x, R, C);
    if (rht) { mx_rht_forward(t.data(), (long)t.size(), RHT_SEED); }
    return t;
}

static Bits ref_mxfp8_dequant(const Quant& h, Fp8Format f) {
    Bits b(h.q.size());
    for (size_t i = 0; i < b.size(); i++) {
        float y;
        mxfp8_dequantize_block(&y, &h.q[i], 1, h.s[i / MXFP8_BLOCK], f);
        b[i] = float_to_bits(y);
    }
    return b;
}

// code * block scale (no 1/s_t); scales (R, C/16), or (R/16, C/16) with tiles
static Bits ref_nvfp4_dequant(const Quant& h, int C, bool tiles) {
    Bits b(h.q.size());
    for (size_t i = 0; i < b.size(); i++) {
        size_t r = i / C, c = i % C, si = tiles ? (r / 16) * (C / 16) + c / 16 : i / 16;
        b[i] = float_to_bits(mx_e2m1_decode(h.q[i]) * fp8_decode(h.s[si], FP8_E4M3));
    }
    return b;
}

// ------------------------------------------------------------------------------------------
// inputs

enum Kind { WIDE_SPECIALS, WIDE_FINITE, GAUSS, ALL_BF16 };
static const char* kind_name(Kind k) {
    return k == WIDE_SPECIALS ? "wide+inf/nan" : k == WIDE_FINITE ? "wide" : k == GAUSS ? "gauss" : "all-bf16";
}
static uint32_t rand_u32() { return (uint32_t)(rng_u64(&rng) >> 32); }

static VF make_input(Kind kind, int R, int C) {
    size_t n = (size_t)R * C;
    VF x(n);
    if (kind == ALL_BF16) {   // every pattern (n = 65536), shuffled so that blocks mix magnitudes
        for (size_t i = 0; i < n; i++) { x[i] = bits_to_float((uint16_t)i); }
        for (size_t i = n - 1; i > 0; i--) { std::swap(x[i], x[rand_u32() % (i + 1)]); }
        return x;
    }
    if (kind == GAUSS) {      // rows 2^0..2^-24 in magnitude, a few outliers
        for (int r = 0; r < R; r++) {
            float mag = ldexpf(1.0f, -(int)(rand_u32() % 25));
            for (int c = 0; c < C; c++) { x[(size_t)r * C + c] = round_bf16(mag * (float)rng_normal(&rng)); }
        }
        for (int k = 0; k < 20; k++) { x[rand_u32() % n] = round_bf16(50.0f * (float)rng_normal(&rng)); }
        return x;
    }
    // 16-value segments of magnitude 2^-140..2^124 (BF16 subnormals and zeros at the bottom)
    for (size_t s = 0; s < n; s += 16) {
        int e = (int)(rand_u32() % 265) - 140;
        for (size_t i = s; i < s + 16; i++) { x[i] = round_bf16(ldexpf((float)rng_normal(&rng), e)); }
    }
    for (size_t k = 0; k < n / 20; k++) { x[rand_u32() % n] = 0.0f; }
    size_t seg = (n / 32 / 2) * 32;   // an all-zero 32-block, then one of subnormals, then huge with tiny
    for (size_t i = seg; i < seg + 32; i++) { x[i] = 0.0f; }
    seg = (seg + 32) % n;
    for (size_t i = seg; i < seg + 32; i++) { x[i] = bits_to_float((uint16_t)((rand_u32() & 0x807F) | 1)); }
    seg = (seg + 32) % n;
    for (size_t i = seg; i < seg + 32; i++) { x[i] = bits_to_float((uint16_t)(i % 2 ? 0x7F7F - (rand_u32() & 0x3F) : 0x0001)); }
    x[seg + 5] = -bits_to_float(0x7F7F);   // BF16's largest magnitude
    if (kind == WIDE_SPECIALS) {
        const float sp[4] = {INFINITY, -INFINITY, NAN, -NAN};
        for (int k = 0; k < 6; k++) { x[rand_u32() % n] = sp[k % 4]; }
    }
    return x;
}

// ------------------------------------------------------------------------------------------
// one input at one shape (R and C multiples of 16, as the NVFP4 kernels need): every NVFP4
// kernel, and the MXFP8 ones whose shape rules it meets

static void test_case(Kind kind, int R, int C) {
    size_t n = (size_t)R * C;
    VF x = make_input(kind, R, C), xt = transposed(x, R, C, false), xr = transposed(x, R, C, true);
    char tag[64];   // fmt's buffers rotate: names that live across several fmt calls are copied
    snprintf(tag, sizeof(tag), "(%d,%d) %s", R, C, kind_name(kind));
    floatX* d_x = to_dev(x);
    uint8_t *d_q = dev_alloc<uint8_t>(n), *d_qt = dev_alloc<uint8_t>(n), *d_s = dev_alloc<uint8_t>(n / 16);
    floatX* d_y = dev_alloc<floatX>(n);
    float* d_f = dev_alloc<float>(4);   // s_t, amax, s_t of the RHT'd tensor, its amax
    auto poison = [&]() {
        cudaCheck(cudaMemset(d_q, 0xAA, n)); cudaCheck(cudaMemset(d_qt, 0xAA, n)); cudaCheck(cudaMemset(d_s, 0xAA, n / 16));
    };
    // packed NVFP4 codes fill the first n/2 bytes of a poisoned buffer: bytes written beyond
    auto past_half = [&](const uint8_t* d) { Codes c = get_bytes(d, n); return count_diff(Codes(c.begin() + n / 2, c.end()), Codes(n - n / 2, 0xAA)); };

    // MXFP8: four variants each, summed into one line per kernel
    bool mx_rows = C % 32 == 0, mx_cols = R % 32 == 0 && C % 8 == 0;
    if (mx_rows || mx_cols) {
        long bad_r = 0, bad_c = 0, bad_dq = 0;
        for (int fi = 0; fi < 2; fi++) {
            Fp8Format f = (Fp8Format)fi;
            for (int ri = 0; ri < 2; ri++) {
                MxScaleRule rule = (MxScaleRule)ri;
                char v[16];
                snprintf(v, sizeof(v), "%s %s", fname(f), rname(rule));
                if (mx_rows) {
                    poison();
                    mxfp8_quantize_rows(d_q, d_s, d_x, R, C, f, rule, 0);
                    Quant h = ref_mxfp8_rows(x, f, rule);
                    bad_r += diff(fmt("mxfp8 rows %s codes", v), get_bytes(d_q, n), h.q, C) +
                             diff(fmt("mxfp8 rows %s scales", v), get_bytes(d_s, n / 32), h.s, C / 32);
                    // dequantize the host's codes, so that a quantizer bug cannot hide a dequantizer bug
                    uint8_t *hq = bytes_to_dev(h.q), *hs = bytes_to_dev(h.s);
                    cudaCheck(cudaMemset(d_y, 0xFF, n * 2));
                    mxfp8_dequantize(d_y, hq, hs, R, C, f, 0);
                    bad_dq += diff(fmt("mxfp8 dequant %s", v), get_bits(d_y, n), ref_mxfp8_dequant(h, f), C);
                }
                if (mx_cols) {
                    poison();
                    mxfp8_quantize_cols_t(d_qt, d_s, d_x, R, C, f, rule, 0);
                    Quant h = ref_mxfp8_rows(xt, f, rule);
                    bad_c += diff(fmt("mxfp8 cols %s codes_t", v), get_bytes(d_qt, n), h.q, R) +
                             diff(fmt("mxfp8 cols %s scales_t", v), get_bytes(d_s, n / 32), h.s, R / 32);
                }
            }
        }
        if (mx_rows) {
            check_count(fmt("mxfp8 rows %s: codes and scales, e4m3/e5m2 x ceil/floor", tag), bad_r);
            check_count(fmt("mxfp8 dequant %s: bf16 bits of the host's decode * 2^k", tag), bad_dq);
        }
        if (mx_cols) { check_count(fmt("mxfp8 cols %s: transposed codes and scales, e4m3/e5m2 x ceil/floor", tag), bad_c); }
    }

    // NVFP4 tensor scales on the device, against the host's
    float s_t = mx_nvfp4_tensor_scale(mx_absmax(x.data(), (int)n));
    float s_r = mx_nvfp4_tensor_scale(mx_absmax(xr.data(), (int)n));
    nvfp4_tensor_scale(d_f, d_f + 1, d_x, (long)n, 0);
    nvfp4_tensor_scale_rht(d_f + 2, d_f + 3, d_x, R, C, RHT_SEED, 0);
    VF dev_f = get_f32(d_f, 4);
    long bad_st = (fp8_float_bits(dev_f[0]) != fp8_float_bits(s_t)) + (fp8_float_bits(dev_f[2]) != fp8_float_bits(s_r));
    check_count(fmt("nvfp4 tensor scale %s: s_t %g (after the RHT %g) from the device amax", tag, s_t, s_r), bad_st,
                bad_st ? fmt("(device %g, %g)", dev_f[0], dev_f[2]) : "");
    const float* d_st = d_f;
    const float* d_sr = d_f + 2;

    // NVFP4 rows: s_t as a value and from the device, then SR
    long bad = 0;
    Quant h = ref_nvfp4_rows(x, R, C, s_t, false);
    for (int k = 0; k < 2; k++) {
        poison();
        nvfp4_quantize_rows(d_q, d_s, d_x, R, C, k == 0 ? nvfp4_scale_value(s_t) : nvfp4_scale_device(d_st), false, 0, 0);
        bad += diff("nvfp4 rows codes", get_e2m1(d_q, n), h.q, C) + diff("nvfp4 rows scales", get_bytes(d_s, n / 16), h.s, C / 16) +
               past_half(d_q);
    }
    check_count(fmt("nvfp4 rows %s: packed codes and scales, s_t by value and from the device", tag), bad);
    poison();
    nvfp4_quantize_rows(d_q, d_s, d_x, R, C, nvfp4_scale_device(d_st), true, SR_SEED, 0);
    Quant hsr = ref_nvfp4_rows(x, R, C, s_t, true);
    bad = diff("nvfp4 rows SR codes", get_e2m1(d_q, n), hsr.q, C) + diff("nvfp4 rows SR scales", get_bytes(d_s, n / 16), hsr.s, C / 16);
    check_count(fmt("nvfp4 rows SR %s: codes and scales with the host's hash bits", tag), bad);
    uint8_t *hq = e2m1_to_dev(h.q), *hs = bytes_to_dev(h.s);
    cudaCheck(cudaMemset(d_y, 0xFF, n * 2));
    nvfp4_dequantize(d_y, hq, hs, R, C, false, 0);
    bad = diff("nvfp4 dequant rows", get_bits(d_y, n), ref_nvfp4_dequant(h, C, false), C);
    check_count(fmt("nvfp4 dequant rows %s: bf16 bits of code * block scale, from packed codes", tag), bad);

    // NVFP4 16x16 tiles, with the transposed codes
    Quant ht = {Codes(n), Codes(n / 256)}, htt = {Codes(n), Codes(n / 256)};
    mx_nvfp4_quantize_tiles(ht.q.data(), ht.s.data(), x.data(), R, C, s_t);
    mx_nvfp4_quantize_tiles(htt.q.data(), htt.s.data(), xt.data(), C, R, s_t);
    poison();
    nvfp4_quantize_tiles(d_q, d_qt, d_s, d_x, R, C, nvfp4_scale_value(s_t), 0);
    Codes qt = get_e2m1(d_qt, n);
    bad = diff("nvfp4 tiles codes", get_e2m1(d_q, n), ht.q, C) + diff("nvfp4 tiles scales", get_bytes(d_s, n / 256), ht.s, C / 16) +
          diff("nvfp4 tiles codes_t", qt, transpose(ht.q, R, C), R) + diff("nvfp4 tiles of W^T", qt, htt.q, R) +
          past_half(d_q) + past_half(d_qt);
    check_count(fmt("nvfp4 tiles %s: packed codes, scales, transposed codes = transpose = tiles of W^T", tag), bad);
    poison();
    nvfp4_quantize_tiles(d_q, NULL, d_s, d_x, R, C, nvfp4_scale_device(d_st), 0);
    bad = diff("nvfp4 tiles (no codes_t) codes", get_e2m1(d_q, n), ht.q, C) + count_diff(get_bytes(d_qt, n), Codes(n, 0xAA));
    check_count(fmt("nvfp4 tiles %s: without codes_t (s_t from the device), codes_t left untouched", tag), bad);
    hq = e2m1_to_dev(ht.q); hs = bytes_to_dev(ht.s);
    cudaCheck(cudaMemset(d_y, 0xFF, n * 2));
    nvfp4_dequantize(d_y, hq, hs, R, C, true, 0);
    bad = diff("nvfp4 dequant tiles", get_bits(d_y, n), ref_nvfp4_dequant(ht, C, true), C);
    check_count(fmt("nvfp4 dequant tiles %s: bf16 bits of code * tile scale, from packed codes", tag), bad);

    // NVFP4 columns, transposed: RHT x SR; the RHT variants on the RHT'd tensor's s_t
    bad = 0;
    for (int v = 0; v < 4; v++) {
        bool rht = v & 1, sr = v & 2;
        poison();
        nvfp4_quantize_cols_t(d_qt, d_s, d_x, R, C, nvfp4_scale_device(rht ? d_sr : d_st), rht, RHT_SEED, sr, SR_SEED, 0);
        Quant hc = ref_nvfp4_rows(rht ? xr : xt, C, R, rht ? s_r : s_t, sr);
        char what[32];
        snprintf(what, sizeof(what), "nvfp4 cols%s%s", rht ? " rht" : "", sr ? " sr" : "");
        bad += diff(fmt("%s codes_t", what), get_e2m1(d_qt, n), hc.q, R) + diff(fmt("%s scales_t", what), get_bytes(d_s, n / 16), hc.s, R / 16) +
               past_half(d_qt);
    }
    check_count(fmt("nvfp4 cols %s: packed transposed codes and scales, plain / RHT / SR / RHT+SR", tag), bad);
    dev_free_all();
}

// ------------------------------------------------------------------------------------------
// the dequantization kernels' exactness claims, over every code and scale: a finite product is
// a BF16 value (so the BF16 GEMM of path (a) multiplies exactly the quantized operands), for
// MXFP8 down to the scale mx_cast.cuh names (and not below it), for NVFP4 always

static bool bf16_exact(float y) { return (fp8_float_bits(y) & 0xFFFFu) == 0; }

static void test_dequant_exact() {
    for (int fi = 0; fi < 2; fi++) {
        Fp8Format f = (Fp8Format)fi;
        int kmin = f == FP8_E4M3 ? -124 : -117;
        long inexact = 0, below = 0;
        for (int sc = 0; sc < E8M0_NAN; sc++) {
            for (int q = 0; q < 256; q++) {
                float y = fp8_decode((uint8_t)q, f) * mx_e8m0_decode((uint8_t)sc);
                if (!isfinite(y) || bf16_exact(y)) { continue; }
                if (sc - E8M0_BIAS >= kmin) { inexact++; } else if (sc - E8M0_BIAS == kmin - 1) { below++; }
            }
        }
        check_count(fmt("mxfp8 %s: every finite code * 2^k with k >= %d is a bf16 value (and some with k = %d are not: %ld)",
                        fname(f), kmin, kmin - 1, below), inexact + (below == 0));
    }
    long inexact = 0;
    for (int sc = 0; sc < 256; sc++) {
        for (int q = 0; q < 16; q++) {
            float y = mx_e2m1_decode((uint8_t)q) * fp8_decode((uint8_t)sc, FP8_E4M3);
            inexact += isfinite(y) && !bf16_exact(y);
        }
    }
    check_count("nvfp4: every e2m1 code * e4m3 scale is a bf16 value", inexact);
}

// ------------------------------------------------------------------------------------------
// the packed NVFP4 layout: the host's pack and unpack invert each other on every byte, and the
// kernels put element 2i in the low nibble of byte i (the comparisons above unpack with mx.h)

static void test_packing() {
    Codes all(256), q(512), p(256);
    for (int i = 0; i < 256; i++) { all[i] = (uint8_t)i; }
    mx_e2m1_unpack(q.data(), all.data(), 512);
    mx_e2m1_pack(p.data(), q.data(), 512);
    check_count("e2m1 pack/unpack: inverses on all 256 bytes; pack2(1, 2) = 0x21", count_diff(p, all) + (mx_e2m1_pack2(1, 2) != 0x21));
    // one block (0, 1, -0.5, 0...): s_t = 2688 makes the factor 6, codes 0, 6 (0x7), -3 (0xD), 0...
    VF x(16, 0.0f);
    x[1] = 1.0f; x[2] = -0.5f;
    floatX* d_x = to_dev(x);
    uint8_t *d_q = dev_alloc<uint8_t>(8), *d_s = dev_alloc<uint8_t>(1);
    nvfp4_quantize_rows(d_q, d_s, d_x, 1, 16, nvfp4_scale_value(mx_nvfp4_tensor_scale(1.0f)), false, 0, 0);
    Codes want(8, 0);
    want[0] = 0x70; want[1] = 0x0D;
    check_count("nvfp4 rows: packed bytes 70 0d 00.. for codes 0, 7, d, 0..", count_diff(get_bytes(d_q, 8), want));
    dev_free_all();
}

// ------------------------------------------------------------------------------------------
// self-checks: the comparisons above catch what they are meant to

static void test_self_checks() {
    const int R = 256, C = 512;
    size_t n = (size_t)R * C;
    VF x = make_input(GAUSS, R, C);
    floatX* d_x = to_dev(x);
    uint8_t *d_q = dev_alloc<uint8_t>(n), *d_s = dev_alloc<uint8_t>(n / 16);
    floatX* d_y = dev_alloc<floatX>(n);
    float s_t = mx_nvfp4_tensor_scale(mx_absmax(x.data(), (int)n));

    nvfp4_quantize_rows(d_q, d_s, d_x, R, C, nvfp4_scale_value(s_t), false, 0, 0);
    Codes got = get_e2m1(d_q, n);
    Quant h = ref_nvfp4_rows(x, R, C, s_t, false);
    long same = count_diff(got, h.q);
    got[rand_u32() % n] ^= (uint8_t)(1u << (rand_u32() % 4));
    check_count("self-check: one flipped code bit is caught (exactly 1 difference)", !(same == 0 && count_diff(got, h.q) == 1));

    mxfp8_quantize_rows(d_q, d_s, d_x, R, C, FP8_E4M3, MX_SCALE_CEIL, 0);
    long d = count_diff(get_bytes(d_s, n / 32), ref_mxfp8_rows(x, FP8_E4M3, MX_SCALE_FLOOR).s);
    check_count(fmt("self-check: ceil-rule scales differ from the floor rule's (%ld of %zu blocks)", d, n / 32), d == 0);

    uint8_t *hq = e2m1_to_dev(h.q), *hs = bytes_to_dev(h.s);
    nvfp4_dequantize(d_y, hq, hs, R, C, false, 0);
    Bits y = get_bits(d_y, n), want = ref_nvfp4_dequant(h, C, false);
    y[rand_u32() % n] ^= 1;
    check_count("self-check: one flipped bf16 bit of a dequantized value is caught", count_diff(y, want) != 1);

    nvfp4_quantize_rows(d_q, d_s, d_x, R, C, nvfp4_scale_value(s_t), true, SR_SEED, 0);
    Codes sr = get_e2m1(d_q, n);
    nvfp4_quantize_rows(d_q, d_s, d_x, R, C, nvfp4_scale_value(s_t), true, SR_SEED + 1, 0);
    long d_rne = count_diff(sr, h.q), d_seed = count_diff(sr, get_e2m1(d_q, n));
    check_count(fmt("self-check: SR codes differ from round-to-nearest (%ld) and from another seed's (%ld)", d_rne, d_seed),
                d_rne == 0 || d_seed == 0);

    nvfp4_quantize_cols_t(d_q, d_s, d_x, R, C, nvfp4_scale_value(s_t), true, RHT_SEED, false, 0, 0);
    d = count_diff(get_e2m1(d_q, n), ref_nvfp4_rows(transposed(x, R, C, false), C, R, s_t, false).q);
    check_count(fmt("self-check: RHT'd codes differ from plain ones (%ld of %zu)", d, n), d == 0);
    dev_free_all();
}

// ------------------------------------------------------------------------------------------
// timings

static void run_timing() {
    const int shapes[2][2] = {{65536, 768}, {16384, 6400}};
    printf("\nmx_cast.cuh kernels, median of %d runs: time and bytes moved (read + written) per second\n", TEST_TIME_REPS);
    printf("%-44s %14s %10s %9s\n", "kernel", "shape", "us", "GB/s");
    for (auto& sh : shapes) {
        int R = sh[0], C = sh[1];
        size_t n = (size_t)R * C;
        floatX *d_x = dev_alloc<floatX>(n), *d_y = dev_alloc<floatX>(n);
        uint8_t *d_q = dev_alloc<uint8_t>(n), *d_qt = dev_alloc<uint8_t>(n), *d_s = dev_alloc<uint8_t>(n / 16);
        float* d_f = dev_alloc<float>(4);
        Bits b(n);   // finite values of magnitude 2^-7..2^1, either sign
        uint32_t z = 12345u;
        for (size_t i = 0; i < n; i++) { z = z * 1664525u + 1013904223u; b[i] = (uint16_t)(0x3C00u + ((z >> 8) & 0x3FFu) + ((z >> 31) << 15)); }
        cudaCheck(cudaMemcpy(d_x, b.data(), n * 2, cudaMemcpyHostToDevice));
        nvfp4_tensor_scale(d_f, d_f + 1, d_x, (long)n, 0);
        nvfp4_tensor_scale_rht(d_f + 2, d_f + 3, d_x, R, C, RHT_SEED, 0);
        Nvfp4Scale st = nvfp4_scale_device(d_f), sr = nvfp4_scale_device(d_f + 2);
        mxfp8_quantize_rows(d_q, d_s, d_x, R, C, FP8_E4M3, MX_SCALE_CEIL, 0);   // valid codes to dequantize
        double N = (double)n;
        struct Entry { const char* name; double bytes; std::function<void()> run; };
        std::vector<Entry> entries = {
            {"bf16 copy (cudaMemcpyAsync, reference)", 4 * N, [&] { cudaCheck(cudaMemcpyAsync(d_y, d_x, n * 2, cudaMemcpyDeviceToDevice, 0)); }},
            {"nvfp4_tensor_scale (amax + s_t)", 2 * N, [&] { nvfp4_tensor_scale(d_f, d_f + 1, d_x, (long)n, 0); }},
            {"nvfp4_tensor_scale_rht", 2 * N, [&] { nvfp4_tensor_scale_rht(d_f + 2, d_f + 3, d_x, R, C, RHT_SEED, 0); }},
            {"mxfp8_quantize_rows e4m3", 3 * N + N / 32, [&] { mxfp8_quantize_rows(d_q, d_s, d_x, R, C, FP8_E4M3, MX_SCALE_CEIL, 0); }},
            {"mxfp8_quantize_rows e5m2", 3 * N + N / 32, [&] { mxfp8_quantize_rows(d_q, d_s, d_x, R, C, FP8_E5M2, MX_SCALE_CEIL, 0); }},
            {"mxfp8_quantize_cols_t e4m3", 3 * N + N / 32, [&] { mxfp8_quantize_cols_t(d_qt, d_s, d_x, R, C, FP8_E4M3, MX_SCALE_CEIL, 0); }},
            {"nvfp4_quantize_rows", 2.5 * N + N / 16, [&] { nvfp4_quantize_rows(d_q, d_s, d_x, R, C, st, false, 0, 0); }},
            {"nvfp4_quantize_rows sr", 2.5 * N + N / 16, [&] { nvfp4_quantize_rows(d_q, d_s, d_x, R, C, st, true, SR_SEED, 0); }},
            {"nvfp4_quantize_tiles (codes only)", 2.5 * N + N / 256, [&] { nvfp4_quantize_tiles(d_q, NULL, d_s, d_x, R, C, st, 0); }},
            {"nvfp4_quantize_tiles (codes + codes_t)", 3 * N + N / 256, [&] { nvfp4_quantize_tiles(d_q, d_qt, d_s, d_x, R, C, st, 0); }},
            {"nvfp4_quantize_cols_t", 2.5 * N + N / 16, [&] { nvfp4_quantize_cols_t(d_qt, d_s, d_x, R, C, st, false, 0, false, 0, 0); }},
            {"nvfp4_quantize_cols_t rht + sr", 2.5 * N + N / 16, [&] { nvfp4_quantize_cols_t(d_qt, d_s, d_x, R, C, sr, true, RHT_SEED, true, SR_SEED, 0); }},
            {"mxfp8_dequantize e4m3", 3 * N + N / 32, [&] { mxfp8_dequantize(d_y, d_q, d_s, R, C, FP8_E4M3, 0); }},
            {"nvfp4_dequantize rows", 2.5 * N + N / 16, [&] { nvfp4_dequantize(d_y, d_q, d_s, R, C, false, 0); }},
            {"nvfp4_dequantize tiles", 2.5 * N + N / 256, [&] { nvfp4_dequantize(d_y, d_q, d_s, R, C, true, 0); }},
        };
        for (auto& e : entries) {
            float ms = time_ms(e.run);
            printf("%-44s %6d x %-5d %10.1f %9.0f\n", e.name, R, C, ms * 1e3, e.bytes / (ms * 1e-3) / 1e9);
        }
        dev_free_all();
    }
}

int main(int argc, char** argv) {
    bool timing = !(argc > 1 && strcmp(argv[1], "--no-timing") == 0);
    cudaDeviceProp prop;
    if (!gpu_found("test_mx", &prop)) { return 77; }
    if (prop.major < 9) {
        printf("test_mx: the FP8 casts need compute capability 9.0 (this GPU is %d.%d), skipped\n", prop.major, prop.minor);
        return 77;
    }
    rng_seed(&rng, 0x3a5c0de5u);
    const struct { Kind kind; int R, C; } cases[] = {
        {WIDE_SPECIALS, 32, 32}, {WIDE_SPECIALS, 96, 160}, {WIDE_FINITE, 160, 96}, {GAUSS, 48, 80}, {GAUSS, 16, 48},
        {WIDE_FINITE, 1056, 800}, {GAUSS, 1056, 800}, {WIDE_SPECIALS, 512, 2304}, {GAUSS, 4096, 768},
        {ALL_BF16, 256, 256}, {ALL_BF16, 128, 512}, {ALL_BF16, 512, 128},
    };
    test_packing();
    for (auto& c : cases) { test_case(c.kind, c.R, c.C); }
    test_dequant_exact();
    test_self_checks();
    if (timing) { run_timing(); }
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed == 0 ? 0 : 1;
}
