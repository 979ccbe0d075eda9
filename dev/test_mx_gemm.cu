// GPU tests and timings of the MXFP8 GEMM, llmc/mx_gemm.cuh (issue 7, path (b)).
//   dev/test_mx_gemm               every check, then TFLOP/s at GPT-2 d12/d48 shapes next to cuBLASLt
//   dev/test_mx_gemm --no-timing   checks only
// Reference: an FP64 CPU GEMM of the operands dequantized exactly with llmc/mx.h
// (mxfp8_dequantize_block: code * 2^(scale-127) is exact in FP32), times alpha, plus beta * C and
// bias. Per output, with S = sum_k |a_k b_k| (the dequantized values) and r the reference:
//   |out - r| <= 2^-8 |r| + 1.01 * (eps * |alpha| S + 3 * 2^-24 * (|alpha| S + |beta C| + |bias|))
//   2^-8 |r|: the final BF16 rounding (half an ulp of an 8-significant-bit number is <= 2^-8 of it);
//   eps * S: the FP32 sum over K/32 block partials, one rounding each (fmaf): (K/32 + 2) * 2^-24 of
//     S by the classic recursive-summation bound; the scaling itself is exact (powers of two);
//   3 * 2^-24: alpha * acc, + beta * C, + bias, one FP32 rounding each.
// Two kinds of data:
//  - grid: codes with values in {0, +-0.5, +-1, +-1.5, +-2, +-3, +-4}. Products are multiples of
//    1/4 up to 16, so a 32-term block sum fits 12 bits and the tensor core's sum is exact whatever
//    its internal alignment (Hopper keeps ~13 fraction bits): the bound above is the whole error,
//    "within FP32 rounding". Also checked: over outputs whose accumulation bound is below 2^-14
//    |r|, max |out - r| / |r| <= 2^-8 * 1.03 (BF16 rounding only), and >= 99% of the finite
//    outputs are the correctly rounded BF16 of r.
//  - full: uniformly random finite codes (subnormals to the format's max). The tensor core's
//    internal sum of a block is not exact on Hopper (products aligned to the largest with ~13
//    fraction bits, truncated): 32 terms lose < 32 * 2^-13 = 2^-8 of the block's largest product,
//    plus a 2^-13 truncation of the sum; eps gets + 2^-7 for that (a model bound; each check's
//    note prints the observed "excess/S", the error beyond BF16 rounding relative to S).
// Scales are random E8M0 codes 127 +- 8; beta * C and bias are sized to the outputs they meet, so
// dropping either would fail. A wrong fragment layout, swizzle, scale position or
// pipeline hazard gives errors of the order of S: a clear FAIL. Further checks: NaN scales (the
// row's / column's outputs, and only those, are NaN); a perturbed A or B scale must be detected
// (exactly its row / column fails); beta = 1 accumulation, bias, alpha; ragged M, N (multiples of
// 16) and K (multiple of 32 but not 64); every E4M3/E5M2 pairing; GPT-2 shapes on sampled rows;
// bit-identical repeat runs.
// Prints `PASS|FAIL name ...` per check and ends with `N passed, N failed`.
// Exit status: 0 all passed, 1 a check failed, 77 no GPU or not a Hopper GPU (skipped).
// Build (from the repository root):
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xcompiler -Wall,-Wno-unused-function
//        -o dev/test_mx_gemm dev/test_mx_gemm.cu -lcublasLt
#include "../llmc/mx_gemm.cuh"
#include "../llmc/matmul.cuh"
#define TEST_TIME_REPS 30   // time_ms: median of 30 timed runs after 3 untimed ones
#define TEST_TIME_WARM 3
#include "test_util.cuh"    // VF, VD, randn, put/get, fmt, report, check_count, time_ms, ...

enum DataKind { DATA_GRID, DATA_FULL };

static const char* fname(Fp8Format f) { return f == FP8_E4M3 ? "e4m3" : "e5m2"; }

// one MXFP8 operand: codes q (rows, K) row-major, scales s (rows, K/32)
struct MxMat {
    int rows, K;
    Fp8Format f;
    Bytes q, s;
};

static uint8_t grid_code[2][13];   // [format]: codes of 0, +-0.5, +-1, +-1.5, +-2, +-3, +-4

static void init_grid_codes() {
    const float v[13] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f};
    for (int f = 0; f < 2; f++) {
        for (int i = 0; i < 13; i++) {
            grid_code[f][i] = fp8_encode(v[i], (Fp8Format)f);
            if (fp8_decode(grid_code[f][i], (Fp8Format)f) != v[i]) { die("internal: %g not exact in %s", v[i], fname((Fp8Format)f)); }
        }
    }
}

static bool code_finite(uint8_t c, Fp8Format f) { return f == FP8_E4M3 ? (c & 0x7F) != 0x7F : (c & 0x7F) < 0x7C; }

static MxMat make_mx(int rows, int K, Fp8Format f, DataKind d) {
    MxMat m{rows, K, f, Bytes((size_t)rows * K), Bytes((size_t)rows * (K / MXFP8_BLOCK))};
    for (size_t i = 0; i < m.q.size(); i++) {
        uint64_t r = rng_u64(&rng);
        if (d == DATA_GRID) { m.q[i] = grid_code[f][r % 13]; continue; }
        uint8_t c = (uint8_t)r;
        while (!code_finite(c, f)) { c = (uint8_t)rng_u64(&rng); }
        m.q[i] = c;
    }
    for (size_t i = 0; i < m.s.size(); i++) { m.s[i] = (uint8_t)(E8M0_BIAS - 8 + rng_u64(&rng) % 17); }
    return m;
}

// row r of m dequantized exactly: out (K)
static void dequant_row(const MxMat& m, int r, float* out) {
    int nb = m.K / MXFP8_BLOCK;
    for (int b = 0; b < nb; b++) {
        mxfp8_dequantize_block(out + b * MXFP8_BLOCK, &m.q[(size_t)r * m.K + b * MXFP8_BLOCK], MXFP8_BLOCK,
                               m.s[(size_t)r * nb + b], m.f);
    }
}

// FP64 reference for the listed rows of C, all N columns: dot[i*N + n] = A[rows[i]] . B[n],
// absdot = sum |a b| (alpha, beta, bias applied later)
struct Ref { VD dot, absdot; };
static Ref reference(const MxMat& A, const MxMat& B, const std::vector<int>& rows) {
    int N = B.rows, K = A.K;
    VF db((size_t)N * K), da(K);   // B dequantized (N,K); one row of A (K)
    for (int n = 0; n < N; n++) { dequant_row(B, n, &db[(size_t)n * K]); }
    Ref r{VD(rows.size() * N), VD(rows.size() * N)};
    for (size_t i = 0; i < rows.size(); i++) {
        dequant_row(A, rows[i], da.data());
        for (int n = 0; n < N; n++) {
            const float* b = &db[(size_t)n * K];
            double s = 0.0, sa = 0.0;
            for (int k = 0; k < K; k++) {
                double p = (double)da[k] * (double)b[k];
                s += p;
                sa += fabs(p);
            }
            r.dot[i * N + n] = s;
            r.absdot[i * N + n] = sa;
        }
    }
    return r;
}

// device copies
struct DevMx { uint8_t *q, *s; };
static DevMx mx_to_dev(const MxMat& m) {
    DevMx d{dev_alloc<uint8_t>(m.q.size()), dev_alloc<uint8_t>(m.s.size())};
    cudaCheck(cudaMemcpy(d.q, m.q.data(), m.q.size(), cudaMemcpyHostToDevice));
    cudaCheck(cudaMemcpy(d.s, m.s.data(), m.s.size(), cudaMemcpyHostToDevice));
    return d;
}

// One GEMM problem: C (M,N) = alpha * A (M,K) @ B (N,K)^T + beta * c0 (M,N) + bias (N)
struct Problem {
    MxMat A, B;
    VF c0, bias;   // (M,N) when beta != 0, (N) when there is a bias; else empty
    float alpha, beta;
    DataKind data;
};

static MxGemmWorkspace ws;   // split-K scratch of every GEMM the test runs

// runs the GPU GEMM on p; C starts as c0 (beta != 0) or NaN poison. Returns C (M,N).
static VF run_gpu(const Problem& p) {
    int M = p.A.rows, N = p.B.rows, K = p.A.K;
    DevMx a = mx_to_dev(p.A), b = mx_to_dev(p.B);
    floatX* c = dev_alloc<floatX>((size_t)M * N);
    if (p.beta != 0.0f) { put(c, p.c0); } else { cudaCheck(cudaMemset(c, 0xFF, (size_t)M * N * 2)); }
    floatX* bias = p.bias.empty() ? NULL : to_dev(p.bias);
    mx_gemm_mxfp8(c, a.q, p.A.f, a.s, b.q, p.B.f, b.s, bias, M, N, K, p.alpha, p.beta, &ws, 0);
    device_sync();
    VF out = get(c, (size_t)M * N);
    dev_free_all();
    return out;
}

// nearest BF16 of a double (through float: a double rounding only within 2^-29 of a midpoint)
static double bf16_nearest(double x) { return round_bf16((float)x); }

struct Tally {
    long n = 0, finite = 0, bad = 0, exact = 0, wellcond = 0;
    double worst = 0.0;     // max |out - r| / tol
    double wc_rel = 0.0;    // max |out - r| / |r| over well-conditioned outputs
    double excess = 0.0;    // max (|out - r| - 2^-8 |r|) / (|alpha| S): error beyond BF16 rounding, relative to S
    std::vector<std::pair<int, int>> bad_at;   // (row, col) of out-of-tolerance outputs
};

// out (M,N) against the reference of rows `rows`
static Tally evaluate(const VF& out, const Ref& ref, const std::vector<int>& rows, const Problem& p) {
    int N = p.B.rows, K = p.A.K;
    double u = ldexp(1.0, -24);
    double eps = (K / MXFP8_BLOCK + 2) * u + (p.data == DATA_FULL ? ldexp(1.0, -7) : 0.0);
    Tally t;
    for (size_t i = 0; i < rows.size(); i++) {
        int m = rows[i];
        for (int n = 0; n < N; n++) {
            size_t j = i * N + n;
            double c0 = p.beta != 0.0f ? (double)p.beta * p.c0[(size_t)m * N + n] : 0.0;
            double bias = p.bias.empty() ? 0.0 : (double)p.bias[n];
            double r = (double)p.alpha * ref.dot[j] + c0 + bias;
            double o = out[(size_t)m * N + n];
            double as = fabs((double)p.alpha) * ref.absdot[j];
            t.n++;
            bool ok;
            if (isnan(r)) {
                ok = isnan(o);
            } else if (!isfinite(o)) {
                ok = false;
            } else {
                t.finite++;
                double accb = eps * as + 3.0 * u * (as + fabs(c0) + fabs(bias));
                double tol = ldexp(fabs(r), -8) + 1.01 * accb;
                double err = fabs(o - r);
                ok = err <= tol;
                t.worst = fmax(t.worst, tol > 0.0 ? err / tol : (err > 0.0 ? INFINITY : 0.0));
                t.exact += o == bf16_nearest(r);
                if (accb <= ldexp(fabs(r), -14) && r != 0.0) {
                    t.wellcond++;
                    t.wc_rel = fmax(t.wc_rel, err / fabs(r));
                }
                if (as > 0.0) { t.excess = fmax(t.excess, (err - ldexp(fabs(r), -8)) / as); }
            }
            if (!ok) {
                if (t.bad < 4) {
                    printf("     out[%d,%d] = %.9g, reference %.9g (S = %.4g)\n", m, n, o, r, as);
                }
                t.bad++;
                t.bad_at.push_back({m, n});
            }
        }
    }
    return t;
}

// `count` rows spread over [0, M): the first and last included
static std::vector<int> sample_rows(int M, int count) {
    std::vector<int> r;
    if (count <= 0 || count >= M) {
        for (int i = 0; i < M; i++) { r.push_back(i); }
        return r;
    }
    for (int i = 0; i < count; i++) { r.push_back((int)((long)i * (M - 1) / (count - 1))); }
    return r;
}

static Problem make_problem(int M, int N, int K, Fp8Format fa, Fp8Format fb, DataKind d, float alpha, float beta) {
    return Problem{make_mx(M, K, fa, d), make_mx(N, K, fb, d), VF(), VF(), alpha, beta, d};
}

// C before the GEMM (when beta != 0) and the bias, each of the order of the outputs they meet (the
// scales spread outputs over 2^+-16, so fixed magnitudes would vanish under the bf16 rounding of
// most): c0[m,n] ~ N(0,1) |alpha dot[m,n]| on the reference rows (N(0,1) elsewhere), bias[n] ~
// N(0,1) times the rms of column n over the reference rows.
static void add_c0_bias(Problem& p, const Ref& ref, const std::vector<int>& rows, bool bias) {
    int M = p.A.rows, N = p.B.rows;
    if (p.beta != 0.0f) {
        p.c0.assign((size_t)M * N, 0.0f);
        for (size_t i = 0; i < p.c0.size(); i++) { p.c0[i] = round_bf16((float)rng_normal(&rng)); }
        for (size_t i = 0; i < rows.size(); i++) {
            for (int n = 0; n < N; n++) {
                double d = fabs((double)p.alpha * ref.dot[i * N + n]);
                p.c0[(size_t)rows[i] * N + n] = round_bf16((float)(rng_normal(&rng) * (d > 0.0 ? d : 1.0)));
            }
        }
    }
    if (bias) {
        p.bias.assign(N, 0.0f);
        for (int n = 0; n < N; n++) {
            double s2 = 0.0;
            for (size_t i = 0; i < rows.size(); i++) { double d = (double)p.alpha * ref.dot[i * N + n]; s2 += isfinite(d) ? d * d : 0.0; }
            double rms = sqrt(s2 / rows.size());
            p.bias[n] = round_bf16((float)(rng_normal(&rng) * (rms > 0.0 ? rms : 1.0)));
        }
    }
}

// a problem with its reference on `rows`
static Problem setup(int M, int N, int K, Fp8Format fa, Fp8Format fb, DataKind d, float alpha, float beta, bool bias,
                     const std::vector<int>& rows, Ref* ref) {
    Problem p = make_problem(M, N, K, fa, fb, d, alpha, beta);
    *ref = reference(p.A, p.B, rows);
    add_c0_bias(p, *ref, rows, bias);
    return p;
}

static const char* problem_tag(const Problem& p) {
    return fmt("%s x %s %s (%d,%d,%d) alpha=%g beta=%g%s", fname(p.A.f), fname(p.B.f), p.data == DATA_GRID ? "grid" : "full",
               p.A.rows, p.B.rows, p.A.K, p.alpha, p.beta, p.bias.empty() ? "" : " bias");
}

// the tolerance check, and for grid data the BF16-only checks
static void check_problem(const Problem& p, const VF& out, const Ref& ref, const std::vector<int>& rows, const char* what) {
    char tag[200];
    snprintf(tag, sizeof(tag), "%s%s", problem_tag(p), what);
    Tally t = evaluate(out, ref, rows, p);
    report(t.bad == 0, fmt("mx_gemm %s: all %ld outputs within bf16 rounding + fp32 accumulation bound", tag, t.n), t.worst, 1.0,
           fmt("(err = max |out-ref|/tol; %ld bad; %.2f%% exactly rounded; excess/S %.2e)", t.bad, 100.0 * t.exact / fmax(1.0, t.finite), t.excess));
    if (p.data == DATA_GRID) {
        // where the accumulation bound is under 2^-14 |r|: |out - r| <= 2^-8 |r| (1 + 2^-6 + 2^-14)
        double lim = ldexp(1.0, -8) * 1.03;
        if (t.wellcond > 0) {
            report(t.wc_rel <= lim, fmt("mx_gemm %s: error is bf16 rounding only (max |out-ref|/|ref| over the %ld outputs with accumulation bound < 2^-14 |ref|)", tag, t.wellcond),
                   t.wc_rel, lim);
        } else {
            printf("     (%s: no output has an accumulation bound under 2^-14 of itself at this K; bf16-only check not applicable)\n", tag);
        }
        report(t.exact >= 0.99 * t.finite, fmt("mx_gemm %s: >= 99%% of finite outputs are the correctly rounded bf16 of the fp64 result", tag),
               1.0 - (double)t.exact / fmax(1.0, t.finite), 0.01);
    }
}

// whole-matrix checks at small shapes
static void test_exact() {
    const int shapes[][3] = {
        {128, 128, 128},    // one tile, one k stage
        {256, 384, 1024},   // 2x3 tiles, 8 k stages of 128 (more than the pipeline holds)
        {144, 208, 96},     // ragged: M % 128 = 16, N % 128 = 80, K % 128 = 96 (a 3-block stage)
        {384, 192, 1056},   // half-empty last column of tiles; K % 128 = 32
    };
    struct { int shape; DataKind d; float alpha, beta; bool bias; } variants[] = {
        {0, DATA_GRID, 1.0f, 0.0f, false}, {1, DATA_GRID, 0.5f, 1.0f, true}, {2, DATA_GRID, 1.0f, 0.0f, true},
        {3, DATA_GRID, 0.3f, 1.0f, false}, {1, DATA_FULL, 1.0f, 0.0f, false}, {2, DATA_FULL, 1.0f, 1.0f, true},
    };
    for (int fa = 0; fa < 2; fa++) {
        for (int fb = 0; fb < 2; fb++) {
            for (auto& v : variants) {
                const int* s = shapes[v.shape];
                std::vector<int> rows = sample_rows(s[0], 0);
                Ref ref;
                Problem p = setup(s[0], s[1], s[2], (Fp8Format)fa, (Fp8Format)fb, v.d, v.alpha, v.beta, v.bias, rows, &ref);
                VF out = run_gpu(p);
                check_problem(p, out, ref, rows, "");
                if (v.beta == 0.0f && v.shape == 1) {
                    check_count(fmt("mx_gemm %s: a second run is bit-identical", problem_tag(p)), count_diff(run_gpu(p), out));
                }
            }
        }
    }
    // a long K loop
    std::vector<int> rows = sample_rows(128, 0);
    Ref ref;
    Problem p = setup(128, 256, 4096, FP8_E4M3, FP8_E4M3, DATA_GRID, 1.0f, 0.0f, true, rows, &ref);
    check_problem(p, run_gpu(p), ref, rows, "");
}

// GPT-2 shapes (d12 C=768, d48 C=1600, vocab 50304) with fewer tokens, checked on sampled rows
static void test_gpt2_shapes() {
    struct { int M, N, K; Fp8Format fa, fb; DataKind d; float beta; bool bias; const char* what; } cases[] = {
        {512, 2304, 768, FP8_E4M3, FP8_E4M3, DATA_GRID, 0.0f, true, "d12 qkv forward"},
        {512, 768, 3072, FP8_E5M2, FP8_E4M3, DATA_GRID, 0.0f, false, "d12 fcproj dgrad"},
        {768, 768, 65536, FP8_E5M2, FP8_E4M3, DATA_GRID, 1.0f, false, "d12 attproj wgrad, 64K tokens, accumulated"},
        {256, 50304, 768, FP8_E4M3, FP8_E4M3, DATA_GRID, 0.0f, false, "d12 lm head forward"},
        {256, 768, 50304, FP8_E5M2, FP8_E4M3, DATA_GRID, 0.0f, false, "d12 lm head dgrad"},
        {512, 4800, 1600, FP8_E4M3, FP8_E4M3, DATA_GRID, 0.0f, true, "d48 qkv forward (N, K not multiples of 128)"},
        {512, 1600, 6400, FP8_E5M2, FP8_E4M3, DATA_FULL, 0.0f, false, "d48 fcproj dgrad"},
    };
    for (auto& c : cases) {
        std::vector<int> rows = sample_rows(c.M, 16);
        Ref ref;
        Problem p = setup(c.M, c.N, c.K, c.fa, c.fb, c.d, 1.0f, c.beta, c.bias, rows, &ref);
        check_problem(p, run_gpu(p), ref, rows, fmt(" [%s, 16 rows]", c.what));
    }
}

// NaN scales: one A block scale and one B block scale set to 255; exactly that row and column are NaN
static void test_nan_scales() {
    for (int combo = 0; combo < 2; combo++) {
        Fp8Format fa = combo ? FP8_E5M2 : FP8_E4M3;
        int mr = 77, nc = 130, M = 256, N = 256;
        Problem p = make_problem(M, N, 256, fa, FP8_E4M3, DATA_GRID, 1.0f, combo ? 1.0f : 0.0f);
        p.A.s[(size_t)mr * 8 + 3] = E8M0_NAN;
        p.B.s[(size_t)nc * 8 + 6] = E8M0_NAN;
        std::vector<int> rows = sample_rows(M, 0);
        Ref ref = reference(p.A, p.B, rows);
        add_c0_bias(p, ref, rows, combo == 1);
        VF out = run_gpu(p);
        check_problem(p, out, ref, rows, " NaN scales at A(77, kb 3), B(130, kb 6)");
        long nans = 0, misplaced = 0;
        for (int m = 0; m < M; m++) {
            for (int n = 0; n < N; n++) {
                bool nan = isnan(out[(size_t)m * N + n]);
                nans += nan;
                misplaced += nan != (m == mr || n == nc);
            }
        }
        check_count(fmt("mx_gemm %s: NaN outputs are exactly row %d and column %d (%ld NaNs, want %d)", problem_tag(p), mr, nc, nans, M + N - 1),
                    misplaced);
    }
}

// The check must be able to fail: a scale one binade off must show as failures in its row (A) or
// column (B), and nowhere else. The perturbed block is the line's largest-scale one: with scales
// spread over +-8 binades a small block's share of an output can sit below bf16 resolution, where no
// GEMM could be told apart.
static void test_perturbed_scales() {
    const int M = 256, N = 384, K = 512, nb = K / MXFP8_BLOCK;
    std::vector<int> rows = sample_rows(M, 0);
    Ref ref;
    Problem p = setup(M, N, K, FP8_E4M3, FP8_E5M2, DATA_GRID, 1.0f, 0.0f, true, rows, &ref);
    for (int which = 0; which < 2; which++) {
        Problem q = p;
        int line = which == 0 ? 200 : 17;
        uint8_t* s = (which == 0 ? q.A.s : q.B.s).data() + (size_t)line * nb;   // the line's nb scales
        int kb = (int)(std::max_element(s, s + nb) - s);
        s[kb] += 1;
        VF out = run_gpu(q);
        printf("     (perturbed %s scale: out-of-tolerance outputs expected, first ones below)\n", which == 0 ? "A" : "B");
        Tally t = evaluate(out, ref, rows, p);
        long in_line = 0;
        for (auto& b : t.bad_at) { in_line += (which == 0 ? b.first : b.second) == line; }
        long want = 1;   // how many outputs of the line move past BF16 resolution depends on the data
        bool ok = in_line >= want && in_line == t.bad;
        report(ok, fmt("mx_gemm: scale of %s (%d, kb %d) one binade off is detected: %ld failures in its %s (>= %ld wanted), %ld elsewhere",
                       which == 0 ? "A" : "B", line, kb, in_line, which == 0 ? "row" : "column", want, t.bad - in_line),
               (double)(t.bad - in_line), 0.0);
    }
}

// ------------------------------------------------------------------------------------------
// timings

// fills n bytes with finite random FP8 codes (E4M3 and E5M2: exponent field's low bit cleared) or
// E8M0 scales 127 +- 8
__global__ void fill_codes_kernel(uint8_t* p, long n, uint32_t seed, int scales) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) { return; }
    uint32_t h = hash_u32((uint32_t)i ^ (uint32_t)(i >> 32) * 0x85EBCA6Bu, seed);
    p[i] = scales ? (uint8_t)(E8M0_BIAS - 8 + h % 17) : (uint8_t)(h & 0xF7);
}
// bf16 values +-[1/128, 1/64)
__global__ void fill_bf16_kernel(floatX* p, long n, uint32_t seed) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) { return; }
    uint32_t h = hash_u32((uint32_t)i ^ (uint32_t)(i >> 32) * 0x85EBCA6Bu, seed);
    p[i] = __ushort_as_bfloat16((unsigned short)(0x3C00u | (h & 0x807Fu)));
}
static void fill_codes(uint8_t* p, long n, uint32_t seed, int scales) {
    fill_codes_kernel<<<ceil_div(n, 256), 256>>>(p, n, seed, scales);
    cudaCheckLaunch();
}

// A cuBLASLt matmul set up once (descriptors, heuristic), run many times: row-major
// C (M,N) = A (M,K) @ B (N,K)^T + beta C, bf16 out, fp32 compute; bf16 or e4m3 operands
// (e4m3: per-tensor scales d_one, fast accumulation or not).
struct LtPlan {
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;   // cuBLASLt's A = our B (K,N col-major), its B = our A (K,M), C (N,M)
    cublasLtMatmulHeuristicResult_t heur;
    int found;
};
static void lt_plan(GemmContext* g, LtPlan* p, bool fp8, int fast, const float* d_one, int M, int N, int K) {
    cublasCheck(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t opT = CUBLAS_OP_T, opN = CUBLAS_OP_N;
    cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opT, sizeof(opT)));
    cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opN, sizeof(opN)));
    cudaDataType_t t = fp8 ? CUDA_R_8F_E4M3 : CUDA_R_16BF;
    if (fp8) {
        cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &d_one, sizeof(d_one)));
        cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &d_one, sizeof(d_one)));
        int8_t f = (int8_t)fast;
        cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &f, sizeof(f)));
    }
    cublasCheck(cublasLtMatrixLayoutCreate(&p->la, t, K, N, K));
    cublasCheck(cublasLtMatrixLayoutCreate(&p->lb, t, K, M, K));
    cublasCheck(cublasLtMatrixLayoutCreate(&p->lc, CUDA_R_16BF, N, M, N));
    cublasStatus_t st = gemm_pick_algo(g, p->desc, p->la, p->lb, p->lc, p->lc, &p->heur, &p->found);
    if (st != CUBLAS_STATUS_SUCCESS) { p->found = 0; }
}
static void lt_run(GemmContext* g, LtPlan* p, floatX* C, const void* A, const void* B, float beta) {
    float alpha = 1.0f;
    cublasCheck(cublasLtMatmul(g->handle, p->desc, &alpha, B, p->la, A, p->lb, &beta, C, p->lc, C, p->lc,
                               &p->heur.algo, g->workspace, g->workspace_bytes, 0));
}
static void lt_free(LtPlan* p) {
    cublasCheck(cublasLtMatrixLayoutDestroy(p->la));
    cublasCheck(cublasLtMatrixLayoutDestroy(p->lb));
    cublasCheck(cublasLtMatrixLayoutDestroy(p->lc));
    cublasCheck(cublasLtMatmulDescDestroy(p->desc));
}

static void run_timing() {
    struct { const char* model; const char* name; int M, N, K; float beta; } shapes[] = {
        {"d12", "qkv fwd", 65536, 2304, 768, 0.0f},      {"d12", "attproj fwd", 65536, 768, 768, 0.0f},
        {"d12", "fc fwd", 65536, 3072, 768, 0.0f},       {"d12", "fcproj fwd", 65536, 768, 3072, 0.0f},
        {"d12", "lmhead fwd", 65536, 50304, 768, 0.0f},  {"d12", "wgrad CxC", 768, 768, 65536, 1.0f},
        {"d12", "lmhead dgrad", 65536, 768, 50304, 0.0f},
        {"d48", "qkv fwd", 16384, 4800, 1600, 0.0f},     {"d48", "attproj fwd", 16384, 1600, 1600, 0.0f},
        {"d48", "fc fwd", 16384, 6400, 1600, 0.0f},      {"d48", "fcproj fwd", 16384, 1600, 6400, 0.0f},
    };
    GemmContext g;
    gemm_context_init(&g);
    printf("\nTFLOP/s = 2MNK / median of %d runs (CUDA events), e4m3 operands; cuBLASLt fp8: per-tensor scales\n", TEST_TIME_REPS);
    printf("%-4s %-13s %6s %6s %6s %4s | %9s %8s | %9s %9s %9s\n", "", "gemm", "M", "N", "K", "beta", "mx_gemm", "ms",
           "lt bf16", "lt fp8", "fp8 fast");
    for (auto& s : shapes) {
        int M = s.M, N = s.N, K = s.K;
        uint8_t *a = dev_alloc<uint8_t>((size_t)M * K), *b = dev_alloc<uint8_t>((size_t)N * K);         // (M,K), (N,K)
        uint8_t *sa = dev_alloc<uint8_t>((size_t)M * (K / 32)), *sb = dev_alloc<uint8_t>((size_t)N * (K / 32));
        floatX *abf = dev_alloc<floatX>((size_t)M * K), *bbf = dev_alloc<floatX>((size_t)N * K);        // (M,K), (N,K)
        floatX* c = dev_alloc<floatX>((size_t)M * N);                                                     // (M,N)
        float* one = dev_alloc<float>(1);
        put_f32(one, VF{1.0f});
        fill_codes(a, (long)M * K, 1, 0); fill_codes(b, (long)N * K, 2, 0);
        fill_codes(sa, (long)M * (K / 32), 3, 1); fill_codes(sb, (long)N * (K / 32), 4, 1);
        fill_bf16_kernel<<<ceil_div((long)M * K, 256), 256>>>(abf, (long)M * K, 5);
        fill_bf16_kernel<<<ceil_div((long)N * K, 256), 256>>>(bbf, (long)N * K, 6);
        cudaCheckLaunch();
        cudaCheck(cudaMemset(c, 0, (size_t)M * N * 2));
        double flop = 2.0 * M * N * K;
        auto tflops = [&](float ms) { return ms > 0.0f ? flop / (ms * 1e-3) / 1e12 : 0.0; };
        float t_mx = time_ms([&] { mx_gemm_mxfp8(c, a, FP8_E4M3, sa, b, FP8_E4M3, sb, NULL, M, N, K, 1.0f, s.beta, &ws, 0); });
        float t_lt[3] = {0.0f, 0.0f, 0.0f};
        for (int v = 0; v < 3; v++) {
            LtPlan p;
            lt_plan(&g, &p, v > 0, v == 2, one, M, N, K);
            if (p.found) {
                const void* A = v > 0 ? (const void*)a : (const void*)abf;
                const void* B = v > 0 ? (const void*)b : (const void*)bbf;
                t_lt[v] = time_ms([&] { lt_run(&g, &p, c, A, B, s.beta); });
            }
            lt_free(&p);
        }
        printf("%-4s %-13s %6d %6d %6d %4g | %9.1f %8.3f | %9.1f %9.1f %9.1f\n", s.model, s.name, M, N, K, s.beta,
               tflops(t_mx), t_mx, tflops(t_lt[0]), tflops(t_lt[1]), tflops(t_lt[2]));
        dev_free_all();
    }
    gemm_context_free(&g);
}

int main(int argc, char** argv) {
    bool timing = !(argc > 1 && strcmp(argv[1], "--no-timing") == 0);
    cudaDeviceProp prop;
    if (!gpu_found("test_mx_gemm", &prop)) { return 77; }
    if (prop.major != 9) {
        printf("test_mx_gemm: built for sm_90a (Hopper); this GPU is %d.%d, skipped\n", prop.major, prop.minor);
        return 77;
    }
    rng_seed(&rng, 0x3a3a5c5cu);
    init_grid_codes();
    test_exact();
    test_nan_scales();
    test_perturbed_scales();
    test_gpt2_shapes();
    if (timing) { run_timing(); }
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed == 0 ? 0 : 1;
}
