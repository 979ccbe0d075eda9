// Tests and timings of the FP8 attention, llmc/attention_fp8.cuh (GPU needed).
//   dev/test_attention_fp8               every check, then FP8 vs BF16 attention timings
//   dev/test_attention_fp8 --no-timing   checks only
// At each shape (B,NH,T) (T not always a multiple of the 64-row tiles), q, k, v, dout ~ N(0,1)
// rounded to bf16, per-tensor scales fmax/amax computed on the host, sm_scale 1/8:
//  - cast_qkv with ATT8_MEASURE and cast_dout with measure: the amaxes of q, k, v, dout exact,
//    the scratch (poisoned with 0xAB) and delta untouched
//  - cast_qkv ATT8_FWD (q, k rows, v^T cols), ATT8_BWD (q, k, v rows, q^T, k^T cols) and
//    cast_dout (dout rows, dout^T cols): code for code fp8_encode (llmc/fp8.h) at the layouts
//    of the header, zero padding of t >= T included; amaxes exact; saturated and flushed counts
//    exact (the scales leave none saturated)
//  - delta of cast_dout against FP64 from the dequantized dout codes and the GPU's out
//  - forward (out, lse) and backward (dq, dk, dv) against an FP64 CPU attention of the
//    dequantized operands (code / scale); measure_ds's max|dS| against the CPU's from the GPU's
//    lse and delta (the kernel's inputs); the backward's amax against measure_ds's; the backward
//    deterministic; and all outputs against the BF16 kernels of llmc/attention.cuh on the
//    original bf16 q, k, v, dout
// The gradient format g (dout, dS) is E5M2, the trainer's hybrid format, at every shape and E4M3
// at one. Prints `PASS|FAIL name err=... tol=...` per check and ends with `N passed, N failed`.
// Exit status: 0 all passed, 1 a check failed, 77 no GPU (skipped).
// Build (from the repository root):
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xcompiler -Wall,-Wno-unused-function
//        -o dev/test_attention_fp8 dev/test_attention_fp8.cu -lcublasLt
#include "../llmc/attention_fp8.cuh"
#include "../llmc/rand.h"
#include "test_util.cuh"   // VF, VD, Bits, randn, put/get, fmt, report, check_close, time_ms, ...

// Relative L2 errors ||out - ref|| / ||ref||. In parentheses: what a CPU emulation of the kernels'
// roundings (P, dS, outputs; exact arithmetic otherwise) gives at these shapes.
// Measured on the H100 (2026-11-22), worst over the shapes: out 1.9e-2, lse 4.5e-8, dq/dk 5.4e-2
// (E4M3 dS: 2.8e-2), dv 2.5e-2; against BF16: out 4.8e-2, lse 4.8e-3, dq/dk 9.3e-2, dv 6.8e-2;
// delta 3.1e-8, max|dS| 1.7e-7: the emulation's figures.
// TOL_ATT8_LSE: the scores are the exact code products summed by the tensor cores times
//   1/(sq sk), then exp2/log2 in FP32. Emulated FP8 mma.sync (sm_89, non-"a" sm_90 builds) sums
//   in FP32: 4.5e-8. Hopper's FP8 wgmma (sm_90a) keeps about 14 fraction bits in its
//   accumulation (DeepSeek-V3 measured ~14 bits), ~6e-5 of the summed terms' scale: measured
//   1.6e-5 on the H100 (2026-11-22), ~6x margin.
// TOL_ATT8_FWD: P is rounded to E4M3 (times 256): 3 mantissa bits, relative error <= 2^-4,
//   2^-4/sqrt(3) = 3.6% RMS at the bottom of a binade, ~2.5% over one. out = sum_j P_j v_j / l
//   with the unrounded l and independent v_j, so its relative error is that RMS weighted by
//   P_j^2; the largest P_j of a row (1 on the first key, exact) weigh most (1.5-2.0%), plus
//   bf16's 0.16%: 2x margin.
// TOL_ATT8_BWD: dS is rounded to g: E5M2 keeps 2 mantissa bits, <= 2^-3 relative, ~5% RMS:
//   dq, dk 5.1-5.4% (2.7-3.0% with g = E4M3); dv has the E4M3 P's 2.5%: ~2x margin.
// TOL_ATT8_BF16_*: against the BF16 kernels on the unquantized inputs, which adds the E4M3
//   rounding of q, k, v (~2.5% RMS each; scores ~N(0,1) err by ~0.035) and g's of dout: out
//   3.9-4.7%, lse 1.2e-3..5e-3, dq, dk 8.3-9.1%, dv 6.3-6.6% (BF16's own ~0.3% aside): ~2x margin.
// TOL_ATT8_DELTA: 64 products summed in FP32 (the codes decoded exactly), one division: ~1e-7.
// TOL_ATT8_AMAX (relative, of max|dS|): the CPU's max from the same lse and delta differs only by
//   the score and dP sums: ~1e-6 with FP32 sums; with wgmma's (above) dP - delta loses a few
//   more bits to cancellation: measured 3.4e-4 (sm_90a, 2026-11-22), ~6x margin. The backward
//   recomputes the same dS as measure_ds.
#define TOL_ATT8_LSE 1e-4
#define TOL_ATT8_FWD 4e-2
#define TOL_ATT8_BWD 1e-1
#define TOL_ATT8_BF16_FWD 1e-1
#define TOL_ATT8_BF16_LSE 1.5e-2
#define TOL_ATT8_BF16_BWD 2e-1
#define TOL_ATT8_DELTA 1e-5
#define TOL_ATT8_AMAX 2e-3

#define SM_SCALE 0.125f   // 1/sqrt(64)

typedef std::vector<uint8_t> Codes;  // fp8 codes
typedef unsigned long long ull;

static const char* fname(Fp8Format f) { return f == FP8_E4M3 ? "e4m3" : "e5m2"; }
static Codes get_codes(const uint8_t* d, size_t n) {
    Codes c(n);
    cudaCheck(cudaMemcpy(c.data(), d, n, cudaMemcpyDeviceToHost));
    return c;
}
template <typename T> static void poison(T* d, size_t n) { cudaCheck(cudaMemset(d, 0xFF, n * sizeof(T))); }
static VD to_vd(const VF& x) { return VD(x.begin(), x.end()); }
static double rel_err(double x, double ref) { return fabs(x - ref) / fabs(ref); }
static float host_amax(const VF& x) {
    float a = 0.0f;
    for (float v : x) { a = fmaxf(a, fabsf(v)); }
    return a;
}
// fmax / amax, lowered by ulps until amax * scale (in float, as the casts multiply) <= fmax
static float fit_scale(float fmax, float amax) {
    float s = fmax / amax;
    while (amax * s > fmax) { s = nextafterf(s, 0.0f); }
    return s;
}

// The (T, 64) head slices of x (B,T,ld), head h at columns col0 + h*64, as (B*NH, T, 64)
static VF head_slices(const VF& x, int B, int T, int NH, long ld, int col0) {
    VF r((size_t)B * NH * T * ATT_HS);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int t = 0; t < T; t++) {
                const float* src = &x[((size_t)b * T + t) * ld + col0 + h * ATT_HS];
                std::copy(src, src + ATT_HS, &r[(((size_t)b * NH + h) * T + t) * ATT_HS]);
            }
        }
    }
    return r;
}

// Position of time t in a cols copy: permuted within each group of 16
static int cols_pos(int t) {
    int u = t % 16;
    return 16 * (t / 16) + 4 * ((u % 8) / 2) + (u % 2) + 2 * (u / 8);
}

// What a cast must write for head slices x (BH, T, 64): rows (BH, Tp, 64), cols (BH, 64, Tp) at
// the permuted positions, code 0 for t >= T; and its stats (values saturated, nonzero values flushed)
struct Copies8 { Codes rows, cols; ull saturated, flushed; };
static Copies8 expect_copies(const VF& x, int BH, int T, int Tp, float scale, Fp8Format f) {
    size_t n = (size_t)BH * Tp * ATT_HS;
    Copies8 c = {Codes(n, 0), Codes(n, 0), 0, 0};
    for (int bh = 0; bh < BH; bh++) {
        for (int t = 0; t < T; t++) {
            for (int d = 0; d < ATT_HS; d++) {
                float v = x[((size_t)bh * T + t) * ATT_HS + d] * scale;
                uint8_t code = fp8_encode(v, f);
                c.rows[((size_t)bh * Tp + t) * ATT_HS + d] = code;
                c.cols[((size_t)bh * ATT_HS + d) * Tp + cols_pos(t)] = code;
                c.saturated += fabsf(v) > fp8_format_max(f);
                c.flushed += v != 0.0f && (code & 0x7F) == 0;
            }
        }
    }
    return c;
}
// dequantized rows (BH, T, 64): decode(code) / scale
static VD dequant(const Codes& rows, int BH, int T, int Tp, float scale, Fp8Format f) {
    VD r((size_t)BH * T * ATT_HS);
    for (int bh = 0; bh < BH; bh++) {
        for (int t = 0; t < T; t++) {
            for (int d = 0; d < ATT_HS; d++) {
                r[((size_t)bh * T + t) * ATT_HS + d] = fp8_decode(rows[((size_t)bh * Tp + t) * ATT_HS + d], f) / (double)scale;
            }
        }
    }
    return r;
}

// FP64 causal attention of head slices q, k, v (BH, T, 64) with softmax scale sm: out (BH,T,64),
// lse (BH,T); and its backward for dout (BH,T,64): dq, dk, dv (BH,T,64)
struct AttRef { VD out, lse, dq, dk, dv; };
static AttRef attention_ref(const VD& q, const VD& k, const VD& v, const VD& dout, int BH, int T, double sm) {
    size_t n = (size_t)BH * T * ATT_HS;
    AttRef r = {VD(n, 0.0), VD((size_t)BH * T), VD(n, 0.0), VD(n, 0.0), VD(n, 0.0)};
    VD s(T), p(T), dp(T);
    for (int bh = 0; bh < BH; bh++) {
        auto row = [&](const VD& x, int t) { return &x[((size_t)bh * T + t) * ATT_HS]; };
        auto grow = [&](VD& x, int t) { return &x[((size_t)bh * T + t) * ATT_HS]; };
        for (int t = 0; t < T; t++) {
            const double *qt = row(q, t), *dy = row(dout, t);
            double m = -INFINITY, z = 0.0, delta = 0.0;
            for (int j = 0; j <= t; j++) {
                const double* kj = row(k, j);
                double a = 0.0;
                for (int d = 0; d < ATT_HS; d++) { a += qt[d] * kj[d]; }
                s[j] = a * sm;
                m = fmax(m, s[j]);
            }
            for (int j = 0; j <= t; j++) { p[j] = exp(s[j] - m); z += p[j]; }
            r.lse[(size_t)bh * T + t] = m + log(z);
            double* o = grow(r.out, t);
            for (int j = 0; j <= t; j++) {
                p[j] /= z;
                const double* vj = row(v, j);
                double* dvj = grow(r.dv, j);
                double a = 0.0;
                for (int d = 0; d < ATT_HS; d++) { o[d] += p[j] * vj[d]; a += dy[d] * vj[d]; dvj[d] += p[j] * dy[d]; }
                dp[j] = a;
                delta += p[j] * a;
            }
            double* dqt = grow(r.dq, t);
            for (int j = 0; j <= t; j++) {
                double ds = sm * p[j] * (dp[j] - delta);   // gradient of the unscaled score q.k
                const double* kj = row(k, j);
                double* dkj = grow(r.dk, j);
                for (int d = 0; d < ATT_HS; d++) { dqt[d] += ds * kj[d]; dkj[d] += ds * qt[d]; }
            }
        }
    }
    return r;
}

// max |dS|, dS = P (dP - delta) the gradient of the scaled scores, P = exp(sm q.k - lse), dP = dout.v,
// from the given lse and delta (BH, T)
static double max_ds_ref(const VD& q, const VD& k, const VD& v, const VD& dout, const VF& lse, const VF& delta, int BH,
                         int T, double sm) {
    double mx = 0.0;
    for (int bh = 0; bh < BH; bh++) {
        for (int t = 0; t < T; t++) {
            const double *qt = &q[((size_t)bh * T + t) * ATT_HS], *dy = &dout[((size_t)bh * T + t) * ATT_HS];
            for (int j = 0; j <= t; j++) {
                const double *kj = &k[((size_t)bh * T + j) * ATT_HS], *vj = &v[((size_t)bh * T + j) * ATT_HS];
                double s = 0.0, dp = 0.0;
                for (int d = 0; d < ATT_HS; d++) { s += qt[d] * kj[d]; dp += dy[d] * vj[d]; }
                double p = exp(s * sm - lse[(size_t)bh * T + t]);
                mx = fmax(mx, fabs(p * (dp - delta[(size_t)bh * T + t])));
            }
        }
    }
    return mx;
}

// device counts (ATT8_TENSORS, 2) against the expected saturated / flushed counts of tensors [t0, t1)
static void check_counts(const char* name, const ull* d_counts, const Copies8* ex, int t0, int t1) {
    std::vector<ull> got(2 * ATT8_TENSORS);
    cudaCheck(cudaMemcpy(got.data(), d_counts, got.size() * sizeof(ull), cudaMemcpyDeviceToHost));
    long bad = 0;
    ull sat = 0, fl = 0;
    for (int i = 0; i < ATT8_TENSORS; i++) {
        bool in = i >= t0 && i < t1;
        bad += got[2 * i] != (in ? ex[i].saturated : 0) || got[2 * i + 1] != (in ? ex[i].flushed : 0);
        if (in) { sat += ex[i].saturated; fl += ex[i].flushed; }
    }
    check_count(name, bad, fmt("(tensors wrong; %llu saturated, %llu flushed expected)", sat, fl));
}
// device amax (ATT8_TENSORS) against want: exact
static void check_amax(const char* name, const float* d_amax, const float* want) {
    VF got = get_f32(d_amax, ATT8_TENSORS);
    long bad = 0;
    for (int i = 0; i < ATT8_TENSORS; i++) { bad += got[i] != want[i]; }
    check_count(name, bad, fmt("(amax q %g k %g v %g dout %g ds %g)", got[0], got[1], got[2], got[3], got[4]));
}

// ------------------------------------------------------------------------------------------
// correctness at one shape

static void test_attention_fp8(int B, int NH, int T, Fp8Format g) {
    const int C = NH * ATT_HS, Tp = attention_fp8_tp(T), BH = B * NH;
    const size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, nlse = (size_t)BH * T, ncopy = (size_t)BH * Tp * ATT_HS;
    snprintf(shape_tag, sizeof(shape_tag), "B%dNH%dT%d/%s/", B, NH, T, fname(g));
    VF qkv = randn(nqkv, 1.0), dout = randn(nout, 1.0);
    // host side: q, k, v, dout head slices (BH, T, 64), amaxes, scales, expected copies, dequantized values
    const Fp8Format f[4] = {FP8_E4M3, FP8_E4M3, FP8_E4M3, g};
    VF x[4] = {head_slices(qkv, B, T, NH, 3L * C, 0), head_slices(qkv, B, T, NH, 3L * C, C),
               head_slices(qkv, B, T, NH, 3L * C, 2 * C), head_slices(dout, B, T, NH, C, 0)};
    float amax[ATT8_TENSORS] = {0.0f}, sc[ATT8_TENSORS];
    Copies8 ex[ATT8_TENSORS];
    VD xd[4];
    for (int i = 0; i < 4; i++) {
        amax[i] = host_amax(x[i]);
        sc[i] = fit_scale(fp8_format_max(f[i]), amax[i]);
        ex[i] = expect_copies(x[i], BH, T, Tp, sc[i], f[i]);
        xd[i] = dequant(ex[i].rows, BH, T, Tp, sc[i], f[i]);
    }
    ex[ATT8_DS] = {Codes(), Codes(), 0, 0};
    sc[ATT8_DS] = 1.0f;   // set from measure_ds below
    AttRef ref = attention_ref(xd[0], xd[1], xd[2], xd[3], BH, T, SM_SCALE);

    floatX *d_qkv = to_dev(qkv), *d_dout = to_dev(dout);
    size_t nscratch = attention_fp8_qkv_bytes(B, T, NH) + attention_fp8_dout_bytes(B, T, NH);
    uint8_t* d_scratch = dev_alloc<uint8_t>(nscratch);
    Att8Copies c = attention_fp8_carve(d_scratch, d_scratch + attention_fp8_qkv_bytes(B, T, NH), B, T, NH);
    float* d_sc = dev_alloc<float>(ATT8_TENSORS);
    float* d_amax = dev_alloc<float>(4 * ATT8_TENSORS);   // fresh arrays: measure, casts, measure_ds, backward
    float *am_measure = d_amax, *am_cast = d_amax + ATT8_TENSORS, *am_ds = d_amax + 2 * ATT8_TENSORS, *am_bwd = d_amax + 3 * ATT8_TENSORS;
    ull* d_counts = dev_alloc<ull>(2 * ATT8_TENSORS);
    floatX *d_out = dev_alloc<floatX>(nout), *d_dqkv = dev_alloc<floatX>(nqkv);
    float *d_lse = dev_alloc<float>(nlse), *d_delta = dev_alloc<float>(nlse);
    put_f32(d_sc, VF(sc, sc + ATT8_TENSORS));
    cudaCheck(cudaMemset(d_amax, 0, 4 * ATT8_TENSORS * sizeof(float)));

    // a. measuring casts: amaxes only
    cudaCheck(cudaMemset(d_scratch, 0xAB, nscratch));
    poison(d_delta, nlse);
    poison(d_out, nout);
    attention_fp8_cast_qkv(&c, d_qkv, B, T, NH, d_sc, am_measure, d_counts, ATT8_FWD | ATT8_MEASURE, 0);
    attention_fp8_cast_qkv(&c, d_qkv, B, T, NH, d_sc, am_measure, d_counts, ATT8_BWD | ATT8_MEASURE, 0);
    attention_fp8_cast_dout(&c, d_delta, d_dout, d_out, B, T, NH, d_sc, am_measure, d_counts, g, 1, 0);
    device_sync();
    check_amax("measure.amax_q_k_v_dout_exact", am_measure, amax);
    Codes scr = get_codes(d_scratch, nscratch);
    VF dl = get_f32(d_delta, nlse);
    long changed = 0;
    for (uint8_t b : scr) { changed += b != 0xAB; }
    for (float v : dl) { changed += fp8_float_bits(v) != 0xFFFFFFFFu; }
    check_count("measure.scratch_and_delta_untouched", changed);

    // b. ATT8_FWD cast, then the forward
    cudaCheck(cudaMemset(d_scratch, 0xAB, nscratch));
    cudaCheck(cudaMemset(d_counts, 0, 2 * ATT8_TENSORS * sizeof(ull)));
    attention_fp8_cast_qkv(&c, d_qkv, B, T, NH, d_sc, am_cast, d_counts, ATT8_FWD, 0);
    device_sync();
    check_count("cast_qkv(FWD).q_rows", count_diff(get_codes(c.q, ncopy), ex[ATT8_Q].rows));
    check_count("cast_qkv(FWD).k_rows", count_diff(get_codes(c.k, ncopy), ex[ATT8_K].rows));
    check_count("cast_qkv(FWD).vt_cols", count_diff(get_codes(c.vt, ncopy), ex[ATT8_V].cols));
    check_counts("cast_qkv(FWD).counts", d_counts, ex, ATT8_Q, ATT8_DOUT);
    poison(d_out, nout);
    poison(d_lse, nlse);
    attention_fp8_forward(d_out, d_lse, &c, B, T, NH, SM_SCALE, d_sc, 0);
    device_sync();
    VF out8 = get(d_out, nout), lse8 = get_f32(d_lse, nlse), out8h = head_slices(out8, B, T, NH, C, 0);
    check_close("forward.out", out8h, ref.out, TOL_ATT8_FWD);
    check_close("forward.lse", lse8, ref.lse, TOL_ATT8_LSE);

    // ATT8_BWD cast
    cudaCheck(cudaMemset(d_scratch, 0xAB, nscratch));
    cudaCheck(cudaMemset(d_counts, 0, 2 * ATT8_TENSORS * sizeof(ull)));
    attention_fp8_cast_qkv(&c, d_qkv, B, T, NH, d_sc, am_cast, d_counts, ATT8_BWD, 0);
    device_sync();
    check_count("cast_qkv(BWD).q_rows", count_diff(get_codes(c.q, ncopy), ex[ATT8_Q].rows));
    check_count("cast_qkv(BWD).k_rows", count_diff(get_codes(c.k, ncopy), ex[ATT8_K].rows));
    check_count("cast_qkv(BWD).v_rows", count_diff(get_codes(c.v, ncopy), ex[ATT8_V].rows));
    check_count("cast_qkv(BWD).qt_cols", count_diff(get_codes(c.qt, ncopy), ex[ATT8_Q].cols));
    check_count("cast_qkv(BWD).kt_cols", count_diff(get_codes(c.kt, ncopy), ex[ATT8_K].cols));
    check_counts("cast_qkv(BWD).counts", d_counts, ex, ATT8_Q, ATT8_DOUT);
    // both at once (the trainer's forward, keeping the copies for its backward): all six
    cudaCheck(cudaMemset(d_scratch, 0xAB, nscratch));
    attention_fp8_cast_qkv(&c, d_qkv, B, T, NH, d_sc, NULL, NULL, ATT8_FWD | ATT8_BWD, 0);
    device_sync();
    long bad6 = 0;
    for (int k = 0; k < 3; k++) {
        const uint8_t* rows[3] = {c.q, c.k, c.v};
        const uint8_t* cols[3] = {c.qt, c.kt, c.vt};
        bad6 += count_diff(get_codes(rows[k], ncopy), ex[ATT8_Q + k].rows) + count_diff(get_codes(cols[k], ncopy), ex[ATT8_Q + k].cols);
    }
    check_count("cast_qkv(FWD|BWD).q_k_v_rows_and_cols", bad6);

    // d. cast_dout and delta = sum_d dequant(dout code) * out, from the GPU's out
    cudaCheck(cudaMemset(d_counts, 0, 2 * ATT8_TENSORS * sizeof(ull)));
    poison(d_delta, nlse);
    attention_fp8_cast_dout(&c, d_delta, d_dout, d_out, B, T, NH, d_sc, am_cast, d_counts, g, 0, 0);
    device_sync();
    check_count("cast_dout.dout_rows", count_diff(get_codes(c.dout, ncopy), ex[ATT8_DOUT].rows));
    check_count("cast_dout.doutt_cols", count_diff(get_codes(c.doutt, ncopy), ex[ATT8_DOUT].cols));
    check_counts("cast_dout.counts", d_counts, ex, ATT8_DOUT, ATT8_DS);
    check_amax("casts.amax_q_k_v_dout_exact", am_cast, amax);
    VD delta_ref(nlse, 0.0);
    for (size_t r = 0; r < nlse; r++) {
        for (int d = 0; d < ATT_HS; d++) { delta_ref[r] += xd[ATT8_DOUT][r * ATT_HS + d] * out8h[r * ATT_HS + d]; }
    }
    VF delta8 = get_f32(d_delta, nlse);
    check_close("cast_dout.delta", delta8, delta_ref, TOL_ATT8_DELTA);

    // max|dS| measured, its scale set on the host, then the backward
    attention_fp8_measure_ds(am_ds, &c, d_lse, d_delta, B, T, NH, SM_SCALE, d_sc, g, 0);
    device_sync();
    VF amds = get_f32(am_ds, ATT8_TENSORS);
    double ds_ref = max_ds_ref(xd[0], xd[1], xd[2], xd[3], lse8, delta8, BH, T, SM_SCALE);
    bool others0 = amds[0] == 0.0f && amds[1] == 0.0f && amds[2] == 0.0f && amds[3] == 0.0f;
    double e = rel_err(amds[ATT8_DS], ds_ref);
    report(others0 && e <= TOL_ATT8_AMAX, "measure_ds.amax_ds", e, TOL_ATT8_AMAX,
           fmt("(GPU %.6g, CPU %.6g%s)", amds[ATT8_DS], ds_ref, others0 ? "" : "; other amaxes raised"));
    sc[ATT8_DS] = fp8_format_max(g) / amds[ATT8_DS];
    put_f32(d_sc, VF(sc, sc + ATT8_TENSORS));
    poison(d_dqkv, nqkv);
    attention_fp8_backward(d_dqkv, &c, d_lse, d_delta, B, T, NH, SM_SCALE, d_sc, am_bwd, g, NULL, 0);
    device_sync();
    Bits g1 = get_bits(d_dqkv, nqkv);
    VF dg = get(d_dqkv, nqkv);
    const char* part[3] = {"dq", "dk", "dv"};
    const VD* dref[3] = {&ref.dq, &ref.dk, &ref.dv};
    for (int k = 0; k < 3; k++) {
        check_close(fmt("backward.%s", part[k]), head_slices(dg, B, T, NH, 3L * C, k * C), *dref[k], TOL_ATT8_BWD);
    }
    VF amb = get_f32(am_bwd, ATT8_TENSORS);
    others0 = amb[0] == 0.0f && amb[1] == 0.0f && amb[2] == 0.0f && amb[3] == 0.0f;
    e = rel_err(amb[ATT8_DS], amds[ATT8_DS]);
    report(others0 && e <= TOL_ATT8_AMAX, "backward.amax_ds_vs_measure_ds", e, TOL_ATT8_AMAX,
           fmt("(%.6g%s)", amb[ATT8_DS], others0 ? "" : "; other amaxes raised"));
    poison(d_dqkv, nqkv);
    attention_fp8_backward(d_dqkv, &c, d_lse, d_delta, B, T, NH, SM_SCALE, d_sc, NULL, g, NULL, 0);
    device_sync();
    check_count("backward.deterministic(2nd run amax NULL)", count_diff(g1, get_bits(d_dqkv, nqkv)));

    // the BF16 kernels on the original bf16 inputs as a second reference
    floatX *d_out16 = dev_alloc<floatX>(nout), *d_dqkv16 = dev_alloc<floatX>(nqkv);
    float *d_lse16 = dev_alloc<float>(nlse), *d_scr16 = dev_alloc<float>(attention_scratch_bytes(B, T, NH) / sizeof(float));
    attention_forward(d_out16, d_lse16, d_qkv, B, T, C, NH, SM_SCALE, 0);
    attention_backward(d_dqkv16, d_scr16, d_dout, d_out16, d_qkv, d_lse16, B, T, C, NH, SM_SCALE, NULL, 0);
    device_sync();
    check_close("vs_bf16.out", out8, to_vd(get(d_out16, nout)), TOL_ATT8_BF16_FWD);
    check_close("vs_bf16.lse", lse8, to_vd(get_f32(d_lse16, nlse)), TOL_ATT8_BF16_LSE);
    VF dg16 = get(d_dqkv16, nqkv);
    for (int k = 0; k < 3; k++) {
        check_close(fmt("vs_bf16.%s", part[k]), head_slices(dg, B, T, NH, 3L * C, k * C),
                    to_vd(head_slices(dg16, B, T, NH, 3L * C, k * C)), TOL_ATT8_BF16_BWD);
    }
}

// ------------------------------------------------------------------------------------------
// timing

// Large inputs are filled on the device: std * sqrt(6) * (u1 + u2 - 1), u1, u2 uniform from a
// hash of (seed, i): unit variance times std, |x| < 2.45 std
__global__ void fill_random_kernel(floatX* x, long n, float std, uint32_t seed) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) { return; }
    float u1 = (hash_u32((uint32_t)i, seed) >> 8) * (1.0f / 16777216.0f);
    float u2 = (hash_u32((uint32_t)i, seed ^ 0x5bd1e995u) >> 8) * (1.0f / 16777216.0f);
    x[i] = __float2bfloat16_rn(std * 2.4494897f * (u1 + u2 - 1.0f));
}
static void fill_random(floatX* x, long n, float std) {
    static uint32_t seed = 7;
    fill_random_kernel<<<ceil_div(n, 256), 256>>>(x, n, std, seed++);
    cudaCheckLaunch();
}
// bytes > 0: prints GB/s (bytes read + written); flops > 0: TFLOP/s; neither: the time only
static void timing_row(const char* name, float ms, double bytes, double flops) {
    printf("  %-44s %9.3f ms", name, ms);
    if (bytes > 0) { printf(" %9.1f GB/s", bytes / (ms * 1e-3) / 1e9); }
    if (flops > 0) { printf(" %9.1f TFLOP/s", flops / (ms * 1e-3) / 1e12); }
    printf("\n");
}

// BF16 and FP8 attention at the GPT-2 shapes of dev/test_kernels.cu, gradient format g. The FP8
// backward as under delayed scaling (the scales known, amax recorded on the way; no measure pass).
static void run_timing(Fp8Format g) {
    struct { int B, NH, T; } shapes[3] = {{64, 12, 1024}, {16, 25, 1024}, {8, 25, 2048}};
    printf("\nattention, FP8 (g = %s) vs BF16: median of %d runs, causal, HS=64; TFLOP/s by flash-attention's\n"
           "convention (4*B*NH*T*T*64/2 forward, 2.5x that backward); casts in GB/s (bytes read + written)\n",
           fname(g), TEST_TIME_REPS);
    for (auto& sh : shapes) {
        const int B = sh.B, NH = sh.NH, T = sh.T, C = NH * ATT_HS;
        const size_t N = (size_t)B * T, ncopy = (size_t)B * NH * attention_fp8_tp(T) * ATT_HS, nlse = (size_t)B * NH * T;
        floatX *qkv = dev_alloc<floatX>(N * 3 * C), *dqkv = dev_alloc<floatX>(N * 3 * C);
        floatX *out = dev_alloc<floatX>(N * C), *dout = dev_alloc<floatX>(N * C);
        float *lse = dev_alloc<float>(nlse), *delta = dev_alloc<float>(nlse);
        float* scr16 = dev_alloc<float>(attention_scratch_bytes(B, T, NH) / sizeof(float));
        uint8_t* scratch = dev_alloc<uint8_t>(attention_fp8_qkv_bytes(B, T, NH) + attention_fp8_dout_bytes(B, T, NH));
        Att8Copies c = attention_fp8_carve(scratch, scratch + attention_fp8_qkv_bytes(B, T, NH), B, T, NH);
        float *sc = dev_alloc<float>(ATT8_TENSORS), *amax = dev_alloc<float>(ATT8_TENSORS);
        fill_random(qkv, (long)(N * 3 * C), 1.0f);
        fill_random(dout, (long)(N * C), 1.0f);
        // scales for |x| < 2.5; dS's from a measure_ds below
        VF s = {448.0f / 2.5f, 448.0f / 2.5f, 448.0f / 2.5f, fp8_format_max(g) / 2.5f, 1.0f};
        put_f32(sc, s);
        cudaCheck(cudaMemset(amax, 0, ATT8_TENSORS * sizeof(float)));
        double flops = 4.0 * B * NH * (double)T * T * ATT_HS / 2;
        printf("B=%d NH=%d T=%d\n", B, NH, T);

        float f16 = time_ms([&] { attention_forward(out, lse, qkv, B, T, C, NH, SM_SCALE, 0); });
        float b16 = time_ms([&] { attention_backward(dqkv, scr16, dout, out, qkv, lse, B, T, C, NH, SM_SCALE, NULL, 0); });
        // FP8, in the order of a step; the trainer's forward casts all six copies at once (cc6) and
        // its backward then casts only dO
        float cc6 = time_ms([&] { attention_fp8_cast_qkv(&c, qkv, B, T, NH, sc, amax, NULL, ATT8_FWD | ATT8_BWD, 0); });
        float ccf = time_ms([&] { attention_fp8_cast_qkv(&c, qkv, B, T, NH, sc, amax, NULL, ATT8_FWD, 0); });
        float f8 = time_ms([&] { attention_fp8_forward(out, lse, &c, B, T, NH, SM_SCALE, sc, 0); });
        float ccb = time_ms([&] { attention_fp8_cast_qkv(&c, qkv, B, T, NH, sc, amax, NULL, ATT8_BWD, 0); });
        float ccd = time_ms([&] { attention_fp8_cast_dout(&c, delta, dout, out, B, T, NH, sc, amax, NULL, g, 0, 0); });
        attention_fp8_measure_ds(amax, &c, lse, delta, B, T, NH, SM_SCALE, sc, g, 0);
        device_sync();
        s[ATT8_DS] = fp8_format_max(g) / get_f32(amax, ATT8_TENSORS)[ATT8_DS];
        put_f32(sc, s);
        float mds = time_ms([&] { attention_fp8_measure_ds(amax, &c, lse, delta, B, T, NH, SM_SCALE, sc, g, 0); });
        float b8 = time_ms([&] { attention_fp8_backward(dqkv, &c, lse, delta, B, T, NH, SM_SCALE, sc, amax, g, NULL, 0); });

        double bf = 2.0 * N * C;   // bytes of one bf16 (B,T,C) tensor
        timing_row("bf16 forward", f16, 0, flops);
        timing_row("bf16 backward (dQ with delta, dK/dV)", b16, 0, 2.5 * flops);
        timing_row("fp8 forward kernel", f8, 0, flops);
        timing_row("fp8 backward kernels (dK/dV, dQ)", b8, 0, 2.5 * flops);
        timing_row("fp8 cast_qkv FWD (q, k, v^T)", ccf, 3 * bf + 3.0 * ncopy, 0);
        timing_row("fp8 cast_qkv BWD (q, k, v, q^T, k^T)", ccb, 3 * bf + 5.0 * ncopy, 0);
        timing_row("fp8 cast_qkv FWD|BWD (all six)", cc6, 3 * bf + 6.0 * ncopy, 0);
        timing_row("fp8 cast_dout (dout, dout^T, delta)", ccd, 2 * bf + 2.0 * ncopy + 4.0 * nlse, 0);
        timing_row("fp8 measure_ds (current scaling only)", mds, 0, 0);
        timing_row("fp8 forward total (cast FWD + forward)", ccf + f8, 0, flops);
        timing_row("fp8 backward total (casts BWD, dout + backward)", ccb + ccd + b8, 0, 2.5 * flops);
        float t16 = f16 + b16, t8 = ccf + f8 + ccb + ccd + b8, t8k = cc6 + f8 + ccd + b8;
        printf("  fwd+bwd: bf16 %.3f ms, fp8 %.3f ms: fp8/bf16 time %.3f (fwd %.3f, bwd %.3f)\n", t16, t8, t8 / t16,
               (ccf + f8) / f16, (ccb + ccd + b8) / b16);
        printf("  fwd+bwd, the copies of Q, K, V kept from forward to backward (the trainer): fp8 %.3f ms, fp8/bf16 time %.3f\n",
               t8k, t8k / t16);
        dev_free_all();
    }
}

int main(int argc, char** argv) {
    bool timing = !(argc > 1 && strcmp(argv[1], "--no-timing") == 0);
    cudaDeviceProp prop;
    if (!gpu_found("test_attention_fp8", &prop)) { return 77; }
    attention_init();
    rng_seed(&rng, 0xa77e8f00u);
    // T a multiple of the 64-row tile, below one tile, two and three tiles (the first reuse of a
    // double buffer), ragged over several, d12's heads at T=1000
    struct { int B, NH, T; Fp8Format g; } shapes[] = {
        {2, 2, 64, FP8_E5M2}, {3, 3, 40, FP8_E5M2}, {1, 2, 128, FP8_E5M2}, {1, 2, 192, FP8_E5M2}, {5, 5, 264, FP8_E5M2},
        {2, 12, 1000, FP8_E5M2}, {5, 5, 264, FP8_E4M3}};
    for (auto& s : shapes) {
        test_attention_fp8(s.B, s.NH, s.T, s.g);
        dev_free_all();
    }
    shape_tag[0] = '\0';
    if (timing) { run_timing(FP8_E5M2); }
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}
