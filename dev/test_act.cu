// Tests and timings for llmc/qk_norm.cuh (QK RMSNorm, frozen unit gains) and
// llmc/act_stats.cuh (residual-stream kurtosis). GPU needed.
//   dev/test_act               every check, then the timings
//   dev/test_act --no-timing   checks only
// As in dev/test_kernels.cu: inputs drawn on the host (bf16-rounded where the GPU reads bf16),
// an FP64 CPU reference, outputs poisoned (0xFF bytes: NaN) before the kernel runs, so an
// element never written fails. The QK-norm backward is also checked against central finite
// differences of a scalar loss through the CPU forward, and that check is shown to reject a
// wrong gradient formula. Prints `PASS|FAIL name err=... tol=...` per check and ends with
// `N passed, N failed`. Exit status: 0 all passed, 1 a check failed, 77 no GPU (skipped).
// Build (from the repository root):
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xcompiler -Wall,-Wno-unused-function
//        -o dev/test_act dev/test_act.cu -lcublasLt
#include "../llmc/cuda_common.h"
#include "../llmc/qk_norm.cuh"
#include "../llmc/act_stats.cuh"
#include "../llmc/rand.h"
#include "test_util.cuh"   // VF, VD, Bits, randn, put/get, fmt, report, check_close, time_ms, ...

// Tolerances.
// TOL_ROUND1: outputs whose error is one final bf16 rounding after fp32 math (at most 2^-8 =
//   3.9e-3 relative per element, ~1.6e-3 RMS), measured as the worst relative L2 error of any
//   one 64-value head vector; the backward adds the bf16 rounding of its input y (the stored
//   forward output). A CPU emulation of the kernels gives 1.7e-3..2.7e-3 on these shapes: ~3x
//   margin (the repository's one-rounding tolerance).
// TOL_QKN_FD: GPU backward (through the GPU forward's bf16 y and fp32 rstd) against finite
//   differences of the exact loss: the same roundings, emulation 1.7e-3..2.5e-3.
// TOL_UNIT_RMS: |mean(y^2) - 1| of a normalized head vector: each y_j within 2^-8 relative, so
//   y_j^2 within 2^-7 = 7.8e-3, plus eps / mean(x^2) < 1e-3 at the smallest scale used (1/8).
// TOL_FD: the FP64 gradient formula against FP64 central differences (step 1e-4 of the vector's
//   RMS: truncation ~1e-9, cancellation ~1e-11).
// TOL_F32: fp32 scalars (rstd, kurtosis): rsqrtf (2 ulp) and fp32 sums give ~1e-6 relative.
#define TOL_ROUND1 8e-3
#define TOL_QKN_FD 8e-3
#define TOL_FD 1e-6
#define TOL_UNIT_RMS 1e-2
#define TOL_F32 1e-5

template <typename T> static void poison(T* d, size_t n) { cudaCheck(cudaMemset(d, 0xFF, n * sizeof(T))); }

// ------------------------------------------------------------------------------------------
// QK-norm: CPU reference in FP64

// Head vector v of qkv (N,3C), v over (token, q|k, head) in (N,2,NH) order: its first element.
static size_t vec_off(long v, int C) {
    int per_token = 2 * (C / QKN_HS);
    return (size_t)(v / per_token) * 3 * C + (size_t)(v % per_token) * QKN_HS;
}
static bool in_qk(size_t i, int C) { return (long)(i % (3 * (size_t)C)) < 2L * C; }

// y (64) = x * r, returns r = 1/sqrt(mean(x^2) + eps)
template <typename T> static double rmsnorm_ref(const T* x, double* y) {
    double ms = 0.0;
    for (int j = 0; j < QKN_HS; j++) { ms += (double)x[j] * x[j]; }
    double r = 1.0 / sqrt(ms / QKN_HS + (double)QKN_EPS);
    for (int j = 0; j < QKN_HS; j++) { y[j] = x[j] * r; }
    return r;
}
// dx (64) = r * (dy - y * mean(dy * y))
template <typename T> static void rmsnorm_backward_ref(const T* dy, const T* y, double r, double* dx) {
    double s = 0.0;
    for (int j = 0; j < QKN_HS; j++) { s += (double)dy[j] * y[j]; }
    s /= QKN_HS;
    for (int j = 0; j < QKN_HS; j++) { dx[j] = r * ((double)dy[j] - (double)y[j] * s); }
}
// g . rmsnorm(x) for one head vector: the scalar loss whose gradient the backward computes
static double rmsnorm_loss(const double* x, const double* g) {
    double y[QKN_HS], l = 0.0;
    rmsnorm_ref(x, y);
    for (int j = 0; j < QKN_HS; j++) { l += g[j] * y[j]; }
    return l;
}
// dx (64) = d(g . rmsnorm(x))/dx by central differences, step 1e-4 of the vector's RMS
// (1e-8 for a zero vector, where eps dominates the mean square)
static void rmsnorm_grad_fd(const double* x, const double* g, double* dx) {
    double ms = 0.0, xp[QKN_HS];
    for (int j = 0; j < QKN_HS; j++) { ms += x[j] * x[j]; xp[j] = x[j]; }
    double h = ms > 0.0 ? 1e-4 * sqrt(ms / QKN_HS) : 1e-8;
    for (int j = 0; j < QKN_HS; j++) {
        xp[j] = x[j] + h;
        double lp = rmsnorm_loss(xp, g);
        xp[j] = x[j] - h;
        double lm = rmsnorm_loss(xp, g);
        xp[j] = x[j];
        dx[j] = (lp - lm) / (2.0 * h);
    }
}

// worst relative L2 error of one head vector among the nv vectors of out/ref (N,3C); any
// non-finite output fails
static void check_close_per_vec(const char* name, const VF& out, const VD& ref, int C, long nv, double tol) {
    double worst = 0.0;
    long bad = 0;
    for (long v = 0; v < nv; v++) {
        size_t o = vec_off(v, C);
        double e2 = 0.0, r2 = 0.0;
        for (int j = 0; j < QKN_HS; j++) {
            if (!isfinite(out[o + j])) { bad++; continue; }
            double d = out[o + j] - ref[o + j];
            e2 += d * d;
            r2 += ref[o + j] * ref[o + j];
        }
        worst = fmax(worst, sqrt(e2 / (r2 > 0.0 ? r2 : 1e-300)));
    }
    report(bad == 0 && worst <= tol, name, worst, tol, bad ? fmt("(%ld non-finite: unwritten or NaN)", bad) : "(worst head vector)");
}
// worst |out - ref| / |ref| over scalars; any non-finite output fails
static void check_rel_each(const char* name, const VF& out, const VD& ref, double tol) {
    double worst = 0.0;
    long bad = 0;
    for (size_t i = 0; i < ref.size(); i++) {
        if (!isfinite(out[i])) { bad++; continue; }
        worst = fmax(worst, fabs(out[i] - ref[i]) / fmax(fabs(ref[i]), 1e-300));
    }
    report(bad == 0 && worst <= tol, name, worst, tol, bad ? fmt("(%ld non-finite: unwritten or NaN)", bad) : "");
}

// The backward formula against finite differences, all in FP64 on random vectors of several
// scales; then the same check must reject the formula without its projection term (dx = r dy),
// so a wrong derivation cannot pass.
static void test_qk_norm_derivation() {
    const int nvec = 64;
    double worst_ok = 0.0, worst_wrong = 0.0;
    for (int v = 0; v < nvec; v++) {
        double x[QKN_HS], g[QKN_HS], y[QKN_HS], dx[QKN_HS], fd[QKN_HS];
        double scale = v == 0 ? 0.0 : exp(3.0 * (2.0 * rng_uniform(&rng) - 1.0));   // vector 0: all zero
        for (int j = 0; j < QKN_HS; j++) { x[j] = scale * rng_normal(&rng); g[j] = rng_normal(&rng); }
        double r = rmsnorm_ref(x, y);
        rmsnorm_backward_ref(g, y, r, dx);
        rmsnorm_grad_fd(x, g, fd);
        double e_ok = 0.0, e_wrong = 0.0, n2 = 0.0;
        for (int j = 0; j < QKN_HS; j++) {
            e_ok += (dx[j] - fd[j]) * (dx[j] - fd[j]);
            e_wrong += (r * g[j] - fd[j]) * (r * g[j] - fd[j]);
            n2 += fd[j] * fd[j];
        }
        worst_ok = fmax(worst_ok, sqrt(e_ok / n2));
        if (v > 0) { worst_wrong = fmax(worst_wrong, sqrt(e_wrong / n2)); }   // at x = 0 the two agree
    }
    report(worst_ok <= TOL_FD, "qk_norm.backward_formula_vs_finite_differences", worst_ok, TOL_FD, "(fp64, worst of 64 vectors)");
    report(worst_wrong > 100 * TOL_FD, "qk_norm.finite_differences_reject_dx=r*dy", worst_wrong, 100 * TOL_FD,
           "(err must exceed tol)");
}

// qk_norm_forward / qk_norm_backward on qkv (B,T,3C): head vectors of q and k at scales
// spread over 1/8..8 (a norm over the wrong span, or a shared rstd, then fails), one vector all
// zero (eps keeps it finite: y = 0, rstd = 1/sqrt(eps)).
static void test_qk_norm(int B, int T, int NH) {
    const int C = NH * QKN_HS, N = B * T;
    const size_t n = (size_t)N * 3 * C;
    const long nv = (long)N * 2 * NH;
    VF x = randn(n, 1.0);
    for (long v = 0; v < nv; v++) {
        double scale = v == nv / 2 ? 0.0 : exp(log(8.0) * (2.0 * rng_uniform(&rng) - 1.0));
        for (int j = 0; j < QKN_HS; j++) { x[vec_off(v, C) + j] = round_bf16((float)(scale * x[vec_off(v, C) + j])); }
    }
    floatX* d_qkv = to_dev(x);
    float* d_rstd = dev_alloc<float>(nv);
    poison(d_rstd, nv);
    qk_norm_forward(d_qkv, d_rstd, B, T, C, NH, 0);
    device_sync();
    VF y = get(d_qkv, n), r = get_f32(d_rstd, nv);
    Bits ybits = get_bits(d_qkv, n);

    // forward: y and rstd against FP64; v bit for bit untouched; every q, k head of unit RMS
    VD yref(n), rref(nv);
    for (size_t i = 0; i < n; i++) { yref[i] = x[i]; }
    for (long v = 0; v < nv; v++) { rref[v] = rmsnorm_ref(&x[vec_off(v, C)], &yref[vec_off(v, C)]); }
    check_close_per_vec("qk_norm_forward.qk", y, yref, C, nv, TOL_ROUND1);
    check_rel_each("qk_norm_forward.rstd", r, rref, TOL_F32);
    long v_changed = 0;
    for (size_t i = 0; i < n; i++) { v_changed += !in_qk(i, C) && ybits[i] != float_to_bits(x[i]); }
    check_count("qk_norm_forward.v_untouched", v_changed);
    double worst_rms = 0.0;
    for (long v = 0; v < nv; v++) {
        if (v == nv / 2) { continue; }   // the zero vector stays 0
        double ms = 0.0;
        for (int j = 0; j < QKN_HS; j++) { ms += (double)y[vec_off(v, C) + j] * y[vec_off(v, C) + j]; }
        worst_rms = fmax(worst_rms, fabs(ms / QKN_HS - 1.0));
    }
    report(worst_rms <= TOL_UNIT_RMS, "qk_norm_forward.unit_rms(|q.k|<=64)", worst_rms, TOL_UNIT_RMS, "(worst |mean(y^2) - 1|)");

    // backward, from the forward's stored (bf16) y and rstd: against FP64 on the same y and rstd,
    // and against finite differences of g . qknorm(x) at the raw x; v bit for bit untouched
    VF g = randn(n, 1.0);
    floatX* d_dqkv = to_dev(g);
    qk_norm_backward(d_dqkv, d_qkv, d_rstd, B, T, C, NH, 0);
    device_sync();
    VF dx = get(d_dqkv, n);
    Bits dxbits = get_bits(d_dqkv, n);
    VD dref(n), dfd(n);
    for (size_t i = 0; i < n; i++) { dref[i] = dfd[i] = g[i]; }
    for (long v = 0; v < nv; v++) {
        size_t o = vec_off(v, C);
        rmsnorm_backward_ref(&g[o], &y[o], (double)r[v], &dref[o]);
        double xd[QKN_HS], gd[QKN_HS];
        for (int j = 0; j < QKN_HS; j++) { xd[j] = x[o + j]; gd[j] = g[o + j]; }
        rmsnorm_grad_fd(xd, gd, &dfd[o]);
    }
    check_close_per_vec("qk_norm_backward.dqk", dx, dref, C, nv, TOL_ROUND1);
    check_close_per_vec("qk_norm_backward.dqk_vs_finite_differences", dx, dfd, C, nv, TOL_QKN_FD);
    v_changed = 0;
    for (size_t i = 0; i < n; i++) { v_changed += !in_qk(i, C) && dxbits[i] != float_to_bits(g[i]); }
    check_count("qk_norm_backward.dv_untouched", v_changed);
}

// ------------------------------------------------------------------------------------------
// residual kurtosis

// C * sum_j m_j^2 / (sum_j m_j)^2, m_j = mean over rows of x (N,C)^2 column j; 0 if x is all zero
static double kurtosis_ref(const VF& x, int N, int C) {
    VD m(C, 0.0);
    for (int r = 0; r < N; r++) {
        for (int j = 0; j < C; j++) { m[j] += (double)x[(size_t)r * C + j] * x[(size_t)r * C + j]; }
    }
    double s1 = 0.0, s2 = 0.0;
    for (int j = 0; j < C; j++) { s1 += m[j] / N; s2 += (m[j] / N) * (m[j] / N); }
    return s1 > 0.0 ? C * s2 / (s1 * s1) : 0.0;
}

// GPU kurtosis of x (N,C) into slot 2 of 4 poisoned slots, with poisoned scratch; returns the
// slot's value; `name` checks it against FP64 and that the other slots were not written.
static float check_kurtosis(const char* name, const VF& x, int N, int C) {
    floatX* d_x = to_dev(x);
    float* d_out = dev_alloc<float>(4);
    size_t ns = residual_kurtosis_scratch_floats(N, C);
    float* d_scratch = dev_alloc<float>(ns);
    poison(d_out, 4);
    poison(d_scratch, ns);
    residual_kurtosis(d_out + 2, d_x, N, C, d_scratch, 0);
    device_sync();
    VF out = get_f32(d_out, 4);
    double ref = kurtosis_ref(x, N, C);
    check_rel_each(name, VF(1, out[2]), VD(1, ref), TOL_F32);
    uint32_t bits[4];
    memcpy(bits, out.data(), sizeof(bits));
    check_count(fmt("%s.writes_only_its_slot", name), (bits[0] != ~0u) + (bits[1] != ~0u) + (bits[3] != ~0u));
    return out[2];
}

// x (N,C): unit-variance channels (kurtosis ~1 + 2/N), then one outlier channel at 100x
// (kurtosis ~ C * 1e8 / (1e4 + C)^2, a large fraction of C), then the same values times
// 2^40 (m_j^2 ~ 1e48 overflows fp32: the final reduction must be in double), all zero (0),
// and a second run bit for bit equal.
static void test_kurtosis(int N, int C) {
    snprintf(shape_tag, sizeof(shape_tag), "N%dC%d/", N, C);
    VF x = randn((size_t)N * C, 1.0);
    float k = check_kurtosis("kurtosis.uniform", x, N, C);
    if (N >= 1000) {   // a sample of N rows: |k - 1| ~ 2/N
        report(fabs(k - 1.0) <= 10.0 / N, "kurtosis.uniform_is_near_1", fabs(k - 1.0), 10.0 / N, "(|k - 1|)");
    }
    int j0 = C / 3;
    for (int r = 0; r < N; r++) { x[(size_t)r * C + j0] = round_bf16(100.0f * x[(size_t)r * C + j0]); }
    k = check_kurtosis("kurtosis.outlier_channel", x, N, C);
    if (N >= 1000) {   // with few rows the outlier channel's own sample may be small
        report(k >= C / 4.0, "kurtosis.outlier_channel_is_large", k, C / 4.0, "(k must reach tol = C/4)");
    }
    VF big(x);
    for (float& f : big) { f = ldexpf(f, 40); }   // exact in bf16
    float kb = check_kurtosis("kurtosis.outlier_channel_times_2^40", big, N, C);
    check_count("kurtosis.scale_invariant", kb != k, fmt("(%.9g vs %.9g)", kb, k));
    VF zero((size_t)N * C, 0.0f);
    check_kurtosis("kurtosis.all_zero_gives_0", zero, N, C);

    floatX* d_x = to_dev(x);
    float* d_out = dev_alloc<float>(2);
    float* d_scratch = dev_alloc<float>(residual_kurtosis_scratch_floats(N, C));
    residual_kurtosis(d_out, d_x, N, C, d_scratch, 0);
    residual_kurtosis(d_out + 1, d_x, N, C, d_scratch, 0);
    device_sync();
    VF two = get_f32(d_out, 2);
    check_count("kurtosis.deterministic", memcmp(&two[0], &two[1], sizeof(float)) != 0);
    dev_free_all();
}

// ------------------------------------------------------------------------------------------
// timing: GB/s over the bytes each call must read and write (values do not matter: memset)

static void run_timing() {
    const int B = 16, T = 1024, N = B * T;
    printf("\ntiming: median of 50 runs after 5 warm-up runs, B=%d T=%d\n", B, T);
    for (int NH : {12, 25}) {
        int C = NH * QKN_HS;
        floatX *qkv = dev_alloc<floatX>((size_t)N * 3 * C), *dqkv = dev_alloc<floatX>((size_t)N * 3 * C);
        float* rstd = dev_alloc<float>(qk_norm_saved_floats(B, T, NH));
        cudaCheck(cudaMemset(qkv, 0x3F, (size_t)N * 3 * C * sizeof(floatX)));   // bf16 0x3F3F = 0.746
        cudaCheck(cudaMemset(dqkv, 0x3F, (size_t)N * 3 * C * sizeof(floatX)));
        double qk = 2.0 * N * 2 * C, r = 4.0 * N * 2 * NH;   // bytes of q|k, of rstd
        float ms = time_ms([&] { qk_norm_forward(qkv, rstd, B, T, C, NH, 0); });
        printf("%-44s %9.3f ms %9.1f GB/s\n", fmt("qk_norm_forward (C=%d)", C), ms, (2 * qk + r) / (ms * 1e-3) / 1e9);
        ms = time_ms([&] { qk_norm_backward(dqkv, qkv, rstd, B, T, C, NH, 0); });
        printf("%-44s %9.3f ms %9.1f GB/s\n", fmt("qk_norm_backward (C=%d)", C), ms, (3 * qk + r) / (ms * 1e-3) / 1e9);
        float* out = dev_alloc<float>(1);
        float* scratch = dev_alloc<float>(residual_kurtosis_scratch_floats(N, C));
        ms = time_ms([&] { residual_kurtosis(out, qkv, N, C, scratch, 0); });
        printf("%-44s %9.3f ms %9.1f GB/s\n", fmt("residual_kurtosis (N=%d, C=%d)", N, C), ms, 2.0 * N * C / (ms * 1e-3) / 1e9);
        dev_free_all();
    }
}

int main(int argc, char** argv) {
    bool timing = !(argc > 1 && strcmp(argv[1], "--no-timing") == 0);
    cudaDeviceProp prop;
    if (!gpu_found("test_act", &prop)) { return 77; }
    rng_seed(&rng, 0x5eed2025u);

    test_qk_norm_derivation();
    // one token and one head; T not a multiple of 8 and NH odd (a warp's 4 vectors span tokens);
    // d12's 12 heads; vector counts not a multiple of the 32 per block
    struct { int B, T, NH; } shapes[5] = {{1, 1, 1}, {2, 64, 2}, {3, 37, 3}, {5, 264, 5}, {2, 100, 12}};
    for (auto& s : shapes) {
        snprintf(shape_tag, sizeof(shape_tag), "B%dT%dNH%d/", s.B, s.T, s.NH);
        test_qk_norm(s.B, s.T, s.NH);
        dev_free_all();
    }
    // one row; rows within one 256-row chunk with C not a multiple of 256; a 1-row last chunk
    // over three 256-column blocks; d48's width
    struct { int N, C; } kshapes[4] = {{1, 8}, {1000, 320}, {4097, 768}, {3000, 1600}};
    for (auto& s : kshapes) { test_kurtosis(s.N, s.C); }
    shape_tag[0] = '\0';
    if (timing) { run_timing(); }
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}
