// Kernel tests and timings for the headers in llmc/ (GPU needed).
//   dev/test_kernels               every check, then the timing table
//   dev/test_kernels --no-timing   checks only
// Each check draws fresh random inputs on the host (rounded to bf16 where the GPU reads
// bf16, so both sides see the same numbers), computes a double-precision CPU reference,
// poisons the outputs on the device (0xFF bytes: NaN in bf16 and fp32; outputs that are
// accumulated into start from random values instead), runs the kernel, and compares:
// a NaN left in an output means an element was never written.
// Prints `PASS|FAIL name err=... tol=...` per check and ends with `N passed, N failed`.
// Exit status: 0 all passed, 1 a check failed, 77 no GPU (skipped).
// Build (from the repository root):
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xcompiler -Wall,-Wno-unused-function
//        -o dev/test_kernels dev/test_kernels.cu -lcublasLt
#include "../llmc/cuda_common.h"
#include "../llmc/linear_bf16.cuh"
#include "../llmc/encoder.cuh"
#include "../llmc/layernorm.cuh"
#include "../llmc/gelu.cuh"
#include "../llmc/attention.cuh"
#include "../llmc/fp8.h"
#include "../llmc/classifier.cuh"
#include "../llmc/adamw.cuh"
#include "../llmc/rand.h"
#include "test_util.cuh"   // VF, VD, Bits, randn, put/get, fmt, report, check_close, time_ms, ...

// Tolerances on the relative L2 error ||out - ref|| / ||ref||.
// bf16 keeps 8 significant bits: rounding to nearest errs by at most 2^-8 = 3.9e-3 relative,
// about 1.6e-3 RMS on random data, and the relative L2 error of a tensor is that RMS.
// TOL_ROUND1: outputs whose only error is one final bf16 rounding (the fp32 arithmetic before
//   it, GEMM accumulation included, adds < 1e-5): 5x the RMS, 2x the worst case per element.
// TOL_ATT_FWD / TOL_ATT_BWD: attention rounds its probabilities (and in backward dS) to bf16
//   before the second product, and its outputs; a CPU emulation of those roundings gives
//   2.2e-3..3.5e-3 (forward) and 2.8e-3..4.2e-3 (backward) for T=40..264: ~3x margin.
// TOL_F32: fp32 outputs (LayerNorm mean/rstd, losses, norms, AdamW state): float arithmetic
//   (and __expf, a few ulp) gives ~1e-7..1e-6 relative.
#define TOL_ROUND1 8e-3
#define TOL_ATT_FWD 1e-2
#define TOL_ATT_BWD 1.2e-2
#define TOL_F32 1e-5

// ------------------------------------------------------------------------------------------
// host helpers beyond dev/test_util.cuh


template <typename T> static void poison(T* d, size_t n) { cudaCheck(cudaMemset(d, 0xFF, n * sizeof(T))); }
template <typename T> static void copy_dev(T* dst, const T* src, size_t n) {
    cudaCheck(cudaMemcpy(dst, src, n * sizeof(T), cudaMemcpyDeviceToDevice));
}
// the elements i of x for which keep(i)
template <typename V, typename F> static V pick(const V& x, F keep) {
    V r;
    for (size_t i = 0; i < x.size(); i++) { if (keep(i)) { r.push_back(x[i]); } }
    return r;
}
// bytes > 0: memory-bound, prints GB/s (bytes read + written); else flops, prints TFLOP/s
static void timing_row(const char* name, float ms, double bytes, double flops) {
    if (bytes > 0) { printf("%-44s %9.3f ms %9.1f GB/s\n", name, ms, bytes / (ms * 1e-3) / 1e9); }
    else { printf("%-44s %9.3f ms %9.1f TFLOP/s\n", name, ms, flops / (ms * 1e-3) / 1e12); }
}

// Large tensors (timing, determinism) are filled on the device: mean + std * noise with unit
// variance (sum of two uniforms) from a hash of (seed, i).
__device__ __forceinline__ void store_val(floatX* p, float v) { *p = __float2bfloat16_rn(v); }
__device__ __forceinline__ void store_val(float* p, float v) { *p = v; }
template <typename T>
__global__ void fill_random_kernel(T* x, long n, float std, float mean, uint32_t seed) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) { return; }
    float u1 = (hash_u32((uint32_t)i, seed) >> 8) * (1.0f / 16777216.0f);
    float u2 = (hash_u32((uint32_t)i, seed ^ 0x68e31da4u) >> 8) * (1.0f / 16777216.0f);
    store_val(x + i, mean + std * 2.4494897f * (u1 + u2 - 1.0f));
}
template <typename T> static void fill_random(T* x, long n, float std, float mean = 0.0f) {
    static uint32_t seed = 1;
    fill_random_kernel<<<ceil_div(n, 256), 256>>>(x, n, std, mean, seed++);
    cudaCheckLaunch();
}

// Token groups of `tok` (BT) built on the host, copied to the device.
static TokenGroups groups_to_dev(const std::vector<int>& tok, int V) {
    int BT = (int)tok.size();
    std::vector<int> gtok(BT), gstart(BT + 1), gpos(BT), count(V);
    TokenGroups h = {0, gtok.data(), gstart.data(), gpos.data()};
    token_groups_build(&h, tok.data(), BT, V, count.data());
    TokenGroups d = {h.num_groups, to_dev_int(gtok), to_dev_int(gstart), to_dev_int(gpos)};
    return d;
}
// BT tokens below V, half of them from a few hot tokens, so groups have many positions
static std::vector<int> tokens_with_repeats(int BT, int V) {
    const int hot[5] = {0, 7, 42, 464, V - 1};
    std::vector<int> tok(BT);
    for (int i = 0; i < BT; i++) { tok[i] = (i % 2) ? hot[rand_int(5)] % V : rand_int(V); }
    tok[0] = V - 1;
    return tok;
}

// ------------------------------------------------------------------------------------------
// correctness checks

#define SQRT_2_OVER_PI 0.79788456080286535588
static double gelu_ref(double x) { return 0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))); }
static double gelu_grad_ref(double x) {
    double s = SQRT_2_OVER_PI, th = tanh(s * (x + 0.044715 * x * x * x));
    return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * s * (1.0 + 3.0 * 0.044715 * x * x);
}

// linear_forward:  out (N,OC) = inp (N,IC) @ w (OC,IC)^T [+ b (OC)]; with GELU: pre (N,OC) = that, out = gelu(pre)
// linear_backward: dinp (N,IC) = dout (N,OC) @ w [* gelu'(pre_in (N,IC))]; dw (OC,IC) += dout^T @ inp;
//                  db (OC) += column sums of dout
static void test_linear(LinearContext* lc, int N, int IC, int OC, bool with_bias, bool gelu) {
    VF inp = randn((size_t)N * IC, 1.0), w = randn((size_t)OC * IC, 0.5), b = randn(OC, 1.0);
    VF dout = randn((size_t)N * OC, 1.0), pre_in = randn((size_t)N * IC, 1.5);
    // accumulated gradients start at the size of one micro-batch's contribution (~sqrt(N)),
    // so losing either the old value or the new term fails
    VF dw0 = randn((size_t)OC * IC, sqrt((double)N)), db0 = randn(OC, sqrt((double)N));
    floatX *d_inp = to_dev(inp), *d_w = to_dev(w), *d_b = with_bias ? to_dev(b) : NULL, *d_dout = to_dev(dout);
    floatX *d_dw = to_dev(dw0), *d_db = to_dev(db0);
    floatX* d_out = dev_alloc<floatX>((size_t)N * OC);
    floatX* d_dinp = dev_alloc<floatX>((size_t)N * IC);
    floatX* d_pre = gelu ? dev_alloc<floatX>((size_t)N * OC) : NULL;      // forward's pre-activation output
    floatX* d_pre_in = gelu ? to_dev(pre_in) : NULL;                     // backward's: the input came out of a GELU
    if (gelu) { poison(d_pre, (size_t)N * OC); }
    size_t nscratch = (size_t)colsum_num_chunks(N) * OC;
    float* d_scratch = dev_alloc<float>(nscratch);
    poison(d_out, (size_t)N * OC);
    poison(d_dinp, (size_t)N * IC);
    poison(d_scratch, nscratch);
    linear_forward(lc, LINEAR_FC, 0, d_out, d_pre, d_inp, d_w, d_b, N, IC, OC, 0);
    linear_backward(lc, LINEAR_FC, 0, d_dinp, d_dw, with_bias ? d_db : NULL, d_scratch, d_dout, d_inp, d_pre_in, d_w, N, IC, OC, 0);
    device_sync();
    VD out((size_t)N * OC), pre((size_t)N * OC), dinp((size_t)N * IC, 0.0), dw(dw0.begin(), dw0.end()), db(db0.begin(), db0.end());
    for (int n = 0; n < N; n++) {
        const float* x = &inp[(size_t)n * IC];
        double* dx = &dinp[(size_t)n * IC];
        for (int o = 0; o < OC; o++) {
            const float* wr = &w[(size_t)o * IC];
            double* dwr = &dw[(size_t)o * IC];
            double s = with_bias ? b[o] : 0.0, g = dout[(size_t)n * OC + o];
            for (int i = 0; i < IC; i++) { s += (double)x[i] * wr[i]; dx[i] += g * wr[i]; dwr[i] += g * x[i]; }
            pre[(size_t)n * OC + o] = s;
            out[(size_t)n * OC + o] = gelu ? gelu_ref(s) : s;
            db[o] += g;
        }
    }
    if (gelu) { for (size_t i = 0; i < dinp.size(); i++) { dinp[i] *= gelu_grad_ref(pre_in[i]); } }
    const char* tag = gelu ? ".gelu" : with_bias ? "" : ".nobias";
    check_close(fmt("linear_forward%s.out", tag), get(d_out, out.size()), out, TOL_ROUND1);
    if (gelu) { check_close("linear_forward.gelu.pre_activation", get(d_pre, pre.size()), pre, TOL_ROUND1); }
    check_close(fmt("linear_backward%s.dinp", tag), get(d_dinp, dinp.size()), dinp, TOL_ROUND1);
    check_close(fmt("linear_backward%s.dweight", tag), get(d_dw, dw.size()), dw, TOL_ROUND1);
    if (with_bias) { check_close(fmt("linear_backward%s.dbias", tag), get(d_db, db.size()), db, TOL_ROUND1); }
}

// Batched gemm_bf16, all four (transA, transB): C (M,N) = alpha op(A) @ op(B) + beta C per batch item,
// with batch strides larger than the matrices so the strides are really used.
static void test_gemm_batched(GemmContext* g) {
    const int batch = 3, M = 40, N = 72, K = 56, pad = 24;
    const long sA = (long)M * K + pad, sB = (long)K * N + pad, sC = (long)M * N + pad;
    for (int ta = 0; ta < 2; ta++) {
        for (int tb = 0; tb < 2; tb++) {
            float alpha = (ta && tb) ? 0.5f : 1.0f, beta = (ta != tb) ? 1.0f : 0.0f;
            VF A = randn(batch * sA, 1.0), B = randn(batch * sB, 1.0), C0 = randn(batch * sC, 4.0);
            floatX *dA = to_dev(A), *dB = to_dev(B), *dC = to_dev(C0);
            if (beta == 0.0f) { poison(dC, batch * sC); }   // beta = 0: C must not be read
            gemm_bf16(g, dC, dA, dB, NULL, M, N, K, ta, tb, alpha, beta, batch, sA, sB, sC, GEMM_NO_GELU, NULL, 0);
            device_sync();
            VF outall = get(dC, batch * sC), out;
            VD ref;
            for (int b = 0; b < batch; b++) {
                for (int i = 0; i < M; i++) {
                    for (int j = 0; j < N; j++) {
                        double s = 0.0;
                        for (int k = 0; k < K; k++) {
                            double a = ta ? A[b * sA + (long)k * M + i] : A[b * sA + (long)i * K + k];   // stored (K,M) or (M,K)
                            double bb = tb ? B[b * sB + (long)j * K + k] : B[b * sB + (long)k * N + j];  // stored (N,K) or (K,N)
                            s += a * bb;
                        }
                        long c = b * sC + (long)i * N + j;
                        ref.push_back(alpha * s + beta * C0[c]);
                        out.push_back(outall[c]);
                    }
                }
            }
            check_close(fmt("gemm_bf16.batched.transA%d.transB%d", ta, tb), out, ref, TOL_ROUND1);
        }
    }
}

// --gemm-tune: the linear layers' GEMMs with every candidate timed (tune 2) still match the
// reference, an accumulated weight gradient included (the timed runs must leave it alone); then a
// context given the saved choices (a resumed run) times nothing and computes the same bits.
static void test_gemm_tuning() {
    LinearOptions lopt;
    linear_options_defaults(&lopt);
    LinearContext lt;
    linear_context_init(&lt, &lopt, 1);
    lt.gemm.tune = 2;
    snprintf(shape_tag, sizeof(shape_tag), "tuned/");
    test_linear(&lt, 1320, 320, 960, true, false);
    test_linear(&lt, 1320, 320, 1280, true, true);
    shape_tag[0] = '\0';
    report(lt.gemm.tuned >= 1 && lt.gemm.tuned <= lt.gemm.nalgos,
           fmt("gemm tuning: %d of %d GEMM shapes timed (those with more than one candidate)", lt.gemm.tuned, lt.gemm.nalgos),
           lt.gemm.tuned, 1);
    int n = gemm_algos_count(&lt.gemm);
    std::vector<int64_t> words((size_t)n * GEMM_ALGO_WORDS);
    gemm_algos_save(&lt.gemm, words.data());
    GemmContext g2;
    gemm_context_init(&g2);
    g2.tune = 2;
    std::vector<int64_t> bad(words);
    bad[GEMM_KEY_WORDS] = GEMM_TUNE_CANDIDATES;   // a choice past the candidates: a corrupt file
    report(gemm_algos_load(&g2, bad.data(), n) == 0 && g2.nalgos == 0, "gemm tuning: a corrupt choice is refused", 0, 0);
    report(gemm_algos_load(&g2, words.data(), n) == 1, "gemm tuning: the saved choices load", 0, 0);
    const int M = 960, N = 320, K = 1320;   // test_linear's first weight gradient, accumulated
    floatX *dA = to_dev(randn((size_t)K * M, 1.0)), *dB = to_dev(randn((size_t)K * N, 1.0));
    VF C0 = randn((size_t)M * N, 30.0);
    floatX *c1 = to_dev(C0), *c2 = to_dev(C0);
    gemm_bf16(&lt.gemm, c1, dA, dB, NULL, M, N, K, 1, 0, 1.0f, 1.0f, 1, 0, 0, 0, GEMM_NO_GELU, NULL, 0);
    gemm_bf16(&g2, c2, dA, dB, NULL, M, N, K, 1, 0, 1.0f, 1.0f, 1, 0, 0, 0, GEMM_NO_GELU, NULL, 0);
    device_sync();
    report(g2.tuned == 0 && g2.nalgos == n, fmt("gemm tuning: %d saved choices loaded, none timed again", n), g2.tuned, 0);
    check_count("gemm tuning: the loaded choice computes the tuned one's bits",
                count_diff(get_bits(c1, (size_t)M * N), get_bits(c2, (size_t)M * N)));
    gemm_context_free(&g2);
    linear_context_free(&lt);
}

// encoder_forward:  out (B,T,C) = wte[tok] (Vp,C) + wpe[t] (maxT,C)
// encoder_backward: dwte[tok] += dout rows of that token; dwpe[t] += sum over b of dout (B,T,C)
static void test_encoder(int B, int T, int C) {
    const int V = 100, Vp = 128, maxT = T + 24, BT = B * T;
    std::vector<int> tok = tokens_with_repeats(BT, V);
    VF wte = randn((size_t)Vp * C, 1.0), wpe = randn((size_t)maxT * C, 1.0), dout = randn((size_t)BT * C, 1.0);
    VF dwte0 = randn((size_t)Vp * C, 3.0), dwpe0 = randn((size_t)maxT * C, 1.0);
    int* d_tok = to_dev_int(tok);
    floatX *d_wte = to_dev(wte), *d_wpe = to_dev(wpe), *d_dout = to_dev(dout), *d_dwte = to_dev(dwte0), *d_dwpe = to_dev(dwpe0);
    floatX* d_out = dev_alloc<floatX>((size_t)BT * C);
    poison(d_out, (size_t)BT * C);
    TokenGroups groups = groups_to_dev(tok, V);
    encoder_forward(d_out, d_tok, d_wte, d_wpe, B, T, C, 0);
    encoder_backward(d_dwte, d_dwpe, d_dout, &groups, B, T, C, 0);
    device_sync();
    VD out((size_t)BT * C), dwte(dwte0.begin(), dwte0.end()), dwpe(dwpe0.begin(), dwpe0.end());
    for (int bt = 0; bt < BT; bt++) {
        int t = bt % T;
        for (int c = 0; c < C; c++) {
            out[(size_t)bt * C + c] = (double)wte[(size_t)tok[bt] * C + c] + wpe[(size_t)t * C + c];
            dwte[(size_t)tok[bt] * C + c] += dout[(size_t)bt * C + c];
            dwpe[(size_t)t * C + c] += dout[(size_t)bt * C + c];
        }
    }
    check_close("encoder_forward.out", get(d_out, out.size()), out, TOL_ROUND1);
    check_close(fmt("encoder_backward.dwte(%d_groups)", groups.num_groups), get(d_dwte, dwte.size()), dwte, TOL_ROUND1);
    check_close("encoder_backward.dwpe", get(d_dwpe, dwpe.size()), dwpe, TOL_ROUND1);
}

// LayerNorm of the rows of x (N,C): out (N,C), mean (N), rstd (N)
static void layernorm_ref(const VF& x, const VF& w, const VF& b, int N, int C, VD& out, VD& mean, VD& rstd) {
    out.assign((size_t)N * C, 0.0);
    mean.assign(N, 0.0);
    rstd.assign(N, 0.0);
    for (int r = 0; r < N; r++) {
        const float* xr = &x[(size_t)r * C];
        double m = 0.0, v = 0.0;
        for (int c = 0; c < C; c++) { m += xr[c]; }
        m /= C;
        for (int c = 0; c < C; c++) { v += (xr[c] - m) * (xr[c] - m); }
        double rs = 1.0 / sqrt(v / C + (double)LN_EPS);
        for (int c = 0; c < C; c++) { out[(size_t)r * C + c] = (xr[c] - m) * rs * w[c] + b[c]; }
        mean[r] = m;
        rstd[r] = rs;
    }
}

// layernorm_forward, residual_layernorm_forward, layernorm_backward on rows (N,C)
static void test_layernorm(int N, int C) {
    size_t NC = (size_t)N * C;
    VF w = randn(C, 0.2, 1.0), b = randn(C, 0.2);
    floatX *d_w = to_dev(w), *d_b = to_dev(b);
    floatX *d_out = dev_alloc<floatX>(NC), *d_res = dev_alloc<floatX>(NC);
    float *d_mean = dev_alloc<float>(N), *d_rstd = dev_alloc<float>(N);
    VD out, mean, rstd;

    // forward: inp (N,C) -> out (N,C), mean, rstd (N)
    VF x = randn(NC, 1.5, 0.5);
    floatX* d_x = to_dev(x);
    poison(d_out, NC); poison(d_mean, N); poison(d_rstd, N);
    layernorm_forward(d_out, d_mean, d_rstd, d_x, d_w, d_b, N, C, NULL, 0);
    device_sync();
    layernorm_ref(x, w, b, N, C, out, mean, rstd);
    check_close("layernorm_forward.out", get(d_out, NC), out, TOL_ROUND1);
    check_close("layernorm_forward.mean", get_f32(d_mean, N), mean, TOL_F32);
    check_close("layernorm_forward.rstd", get_f32(d_rstd, N), rstd, TOL_F32);

    // residual: residual (N,C) = a + c, out = LN(residual rounded to bf16, as the kernel normalizes it)
    VF a = randn(NC, 1.0, 0.3), c = randn(NC, 1.0, 0.2), res_bf(NC);
    VD res(NC);
    for (size_t i = 0; i < NC; i++) { res[i] = (double)a[i] + c[i]; res_bf[i] = round_bf16(a[i] + c[i]); }
    floatX *d_a = to_dev(a), *d_c = to_dev(c);
    poison(d_res, NC); poison(d_out, NC); poison(d_mean, N); poison(d_rstd, N);
    residual_layernorm_forward(d_res, d_out, d_mean, d_rstd, d_a, d_c, d_w, d_b, N, C, NULL, 0);
    device_sync();
    layernorm_ref(res_bf, w, b, N, C, out, mean, rstd);
    check_close("residual_layernorm_forward.residual", get(d_res, NC), res, TOL_ROUND1);
    check_close("residual_layernorm_forward.out", get(d_out, NC), out, TOL_ROUND1);
    check_close("residual_layernorm_forward.mean", get_f32(d_mean, N), mean, TOL_F32);
    check_close("residual_layernorm_forward.rstd", get_f32(d_rstd, N), rstd, TOL_F32);

    // backward of LN(x): dinp (N,C) += ..., dw, db (C) += ...; mean/rstd are the fp32 values forward would save
    layernorm_ref(x, w, b, N, C, out, mean, rstd);
    VF meanf(mean.begin(), mean.end()), rstdf(rstd.begin(), rstd.end());   // rounded to float
    VF dout = randn(NC, 1.0), dinp0 = randn(NC, 1.0), dw0 = randn(C, sqrt((double)N)), db0 = randn(C, sqrt((double)N));
    floatX *d_dout = to_dev(dout), *d_dinp = to_dev(dinp0), *d_dw = to_dev(dw0), *d_db = to_dev(db0);
    put_f32(d_mean, meanf);
    put_f32(d_rstd, rstdf);
    size_t nscratch = (size_t)colsum_num_chunks(N) * 2 * C;
    float* d_scratch = dev_alloc<float>(nscratch);
    poison(d_scratch, nscratch);
    layernorm_backward(d_dinp, d_dw, d_db, d_scratch, d_dout, d_x, d_w, d_mean, d_rstd, N, C, 0);
    device_sync();
    VD dinp(dinp0.begin(), dinp0.end()), dw(dw0.begin(), dw0.end()), db(db0.begin(), db0.end());
    for (int r = 0; r < N; r++) {
        const float *xr = &x[(size_t)r * C], *dr = &dout[(size_t)r * C];
        double m = meanf[r], rs = rstdf[r], s1 = 0.0, s2 = 0.0;
        for (int k = 0; k < C; k++) { s1 += dr[k] * w[k]; s2 += dr[k] * w[k] * (xr[k] - m) * rs; }
        s1 /= C;
        s2 /= C;
        for (int k = 0; k < C; k++) {
            double n = (xr[k] - m) * rs;
            dinp[(size_t)r * C + k] += rs * (dr[k] * w[k] - s1 - n * s2);
            dw[k] += dr[k] * n;
            db[k] += dr[k];
        }
    }
    check_close("layernorm_backward.dinp", get(d_dinp, NC), dinp, TOL_ROUND1);
    check_close("layernorm_backward.dweight", get(d_dw, C), dw, TOL_ROUND1);
    check_close("layernorm_backward.dbias", get(d_db, C), db, TOL_ROUND1);
}

// gelu_forward: out (n) = gelu(inp)
static void test_gelu(long n) {
    VF x = randn(n, 2.0);
    floatX *d_x = to_dev(x), *d_out = dev_alloc<floatX>(n);
    poison(d_out, n);
    gelu_forward(d_out, d_x, n, 0);
    device_sync();
    VD out(n);
    for (long i = 0; i < n; i++) { out[i] = gelu_ref(x[i]); }
    check_close("gelu_forward.out", get(d_out, n), out, TOL_ROUND1);
}

// fused_classifier on logits (N,Vp) whose padded columns hold NaN (must be ignored):
// losses (N) = logsumexp(logits[:V]) - logits[target]; with write_grad the logits become
// dlogits = (softmax - onehot(target)) * dloss on the first V columns, exactly 0 on the padding
static void test_classifier(int N, int V, int Vp, double logit_std) {
    size_t n = (size_t)N * Vp;
    VF logits = randn(n, logit_std);
    std::vector<int> target(N);
    for (int r = 0; r < N; r++) {
        target[r] = r == 0 ? V - 1 : r == 1 ? 0 : rand_int(V);
        for (int j = V; j < Vp; j++) { logits[(size_t)r * Vp + j] = NAN; }
    }
    float dloss = 1.0f / N;
    VD loss(N), dlogits(n, 0.0);
    for (int r = 0; r < N; r++) {
        const float* x = &logits[(size_t)r * Vp];
        double m = -INFINITY, z = 0.0;
        for (int j = 0; j < V; j++) { m = fmax(m, (double)x[j]); }
        for (int j = 0; j < V; j++) { z += exp(x[j] - m); }
        double logz = m + log(z);
        loss[r] = logz - x[target[r]];
        for (int j = 0; j < V; j++) { dlogits[(size_t)r * Vp + j] = (exp(x[j] - logz) - (j == target[r])) * (double)dloss; }
    }
    floatX* d_logits = to_dev(logits);
    int* d_target = to_dev_int(target);
    float* d_losses = dev_alloc<float>(N);
    Bits before = get_bits(d_logits, n);
    char name[64];
    snprintf(name, sizeof(name), "fused_classifier(V=%d,Vp=%d)", V, Vp);

    // losses only: the logits must stay untouched
    poison(d_losses, N);
    fused_classifier(d_logits, d_losses, NULL, d_target, dloss, N, V, Vp, 0, 0);
    device_sync();
    check_close(fmt("%s.losses_no_grad", name), get_f32(d_losses, N), loss, TOL_F32);
    check_count(fmt("%s.logits_unchanged_no_grad", name), count_diff(before, get_bits(d_logits, n)));

    // losses and dlogits in place
    poison(d_losses, N);
    fused_classifier(d_logits, d_losses, NULL, d_target, dloss, N, V, Vp, 1, 0);
    device_sync();
    check_close(fmt("%s.losses", name), get_f32(d_losses, N), loss, TOL_F32);
    VF dl = get(d_logits, n);
    // target entries (~ -dloss) would hide errors in the small probabilities: check them apart
    auto is_target = [&](size_t i) { return (int)(i % Vp) == target[i / Vp]; };
    auto not_target = [&](size_t i) { return (int)(i % Vp) != target[i / Vp]; };
    check_close(fmt("%s.dlogits_target", name), pick(dl, is_target), pick(dlogits, is_target), TOL_ROUND1);
    check_close(fmt("%s.dlogits_other", name), pick(dl, not_target), pick(dlogits, not_target), TOL_ROUND1);
    long pad_nonzero = 0;
    for (size_t i = 0; i < n; i++) { pad_nonzero += (int)(i % Vp) >= V && !(dl[i] == 0.0f); }
    check_count(fmt("%s.dlogits_padding_zero", name), pad_nonzero);
}

// attention_forward: out (B,T,C) = causal softmax(q k^T / sqrt(HS)) v per head, qkv (B,T,3C) = q|k|v,
// head h at columns h*HS..; saved lse (B,NH,T). attention_backward: dqkv (B,T,3C) from dout (B,T,C).
// With dump_dir, also writes inputs and outputs for dev/attention_torch.py.
static void test_attention(int B, int T, int C, int NH, const char* dump_dir = NULL) {
    int HS = C / NH;
    size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, nlse = (size_t)B * NH * T;
    double scale = 1.0 / sqrt((double)HS);
    VF qkv = randn(nqkv, 1.0), dout = randn(nout, 1.0);
    VD out(nout, 0.0), lse(nlse, 0.0), dqkv(nqkv, 0.0);
    std::vector<double> s(T), p(T), dp(T);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            auto q = [&](int t) { return &qkv[((size_t)b * T + t) * 3 * C + h * HS]; };
            auto dq = [&](int t) { return &dqkv[((size_t)b * T + t) * 3 * C + h * HS]; };
            for (int t = 0; t < T; t++) {
                const float *qt = q(t), *dy = &dout[((size_t)b * T + t) * C + h * HS];
                double m = -INFINITY, z = 0.0, pdp = 0.0;
                for (int j = 0; j <= t; j++) {
                    const float* kj = q(j) + C;
                    s[j] = 0.0;
                    for (int d = 0; d < HS; d++) { s[j] += (double)qt[d] * kj[d]; }
                    s[j] *= scale;
                    m = fmax(m, s[j]);
                }
                for (int j = 0; j <= t; j++) { p[j] = exp(s[j] - m); z += p[j]; }
                lse[((size_t)b * NH + h) * T + t] = m + log(z);
                for (int j = 0; j <= t; j++) {
                    p[j] /= z;
                    const float* vj = q(j) + 2 * C;
                    double* dvj = dq(j) + 2 * C;
                    dp[j] = 0.0;
                    for (int d = 0; d < HS; d++) {
                        out[((size_t)b * T + t) * C + h * HS + d] += p[j] * vj[d];
                        dp[j] += (double)dy[d] * vj[d];
                        dvj[d] += p[j] * dy[d];
                    }
                    pdp += p[j] * dp[j];
                }
                for (int j = 0; j <= t; j++) {
                    double ds = scale * p[j] * (dp[j] - pdp);   // gradient of the pre-scale score
                    const float* kj = q(j) + C;
                    double *dqt = dq(t), *dkj = dq(j) + C;
                    for (int d = 0; d < HS; d++) { dqt[d] += ds * kj[d]; dkj[d] += ds * qt[d]; }
                }
            }
        }
    }
    floatX *d_qkv = to_dev(qkv), *d_dout = to_dev(dout);
    floatX *d_out = dev_alloc<floatX>(nout), *d_dqkv = dev_alloc<floatX>(nqkv);
    float* d_lse = dev_alloc<float>(nlse);
    float* d_scratch = dev_alloc<float>(attention_scratch_bytes(B, T, NH) / sizeof(float));
    poison(d_out, nout);
    cudaCheck(cudaMemset(d_lse, 0xFF, nlse * sizeof(float)));
    attention_forward(d_out, d_lse, d_qkv, B, T, C, NH, 0.125f, 0);
    device_sync();
    VF o = get(d_out, nout), l = get_f32(d_lse, nlse);
    check_close("attention_forward.out", o, out, TOL_ATT_FWD);
    check_close("attention_forward.lse", l, lse, TOL_F32 * 10);
    poison(d_dqkv, nqkv);
    attention_backward(d_dqkv, d_scratch, d_dout, d_out, d_qkv, d_lse, B, T, C, NH, 0.125f, NULL, 0);
    device_sync();
    Bits g1 = get_bits(d_dqkv, nqkv);
    VF dg = get(d_dqkv, nqkv);
    const char* part[3] = {"dq", "dk", "dv"};
    for (int k = 0; k < 3; k++) {
        auto in_part = [&](size_t i) { return (int)((i % (3 * C)) / C) == k; };
        check_close(fmt("attention_backward.%s", part[k]), pick(dg, in_part), pick(dqkv, in_part), TOL_ATT_BWD);
    }
    attention_backward(d_dqkv, d_scratch, d_dout, d_out, d_qkv, d_lse, B, T, C, NH, 0.125f, NULL, 0);
    device_sync();
    check_count("attention_backward.deterministic", count_diff(g1, get_bits(d_dqkv, nqkv)));
    // What the backward also writes for the QKV linear (AttGradOut): each 64-row tile's column
    // sums of dqkv (FP32 sums of its BF16 values, against FP64 sums of the same values), and for
    // T a multiple of 64 the E5M2 codes of dqkv and their transpose, bit for bit the host cast's,
    // with amax, instead of dqkv.
    {
        int Tt = ceil_div(T, ATT_TILE), chunks = attention_grad_chunks(B, T), C3 = 3 * C, NT = B * T;
        float* d_cs = dev_alloc<float>((size_t)chunks * C3);
        cudaCheck(cudaMemset(d_cs, 0xFF, (size_t)chunks * C3 * sizeof(float)));
        AttGradOut go = {d_cs, NULL, NULL, NULL, NULL, 0};
        attention_backward(d_dqkv, d_scratch, d_dout, d_out, d_qkv, d_lse, B, T, C, NH, 0.125f, &go, 0);
        device_sync();
        VF cs = get_f32(d_cs, (size_t)chunks * C3);
        double err = 0.0, big = 0.0;
        for (int b = 0; b < B; b++) {
            for (int tile = 0; tile < Tt; tile++) {
                for (int j = 0; j < C3; j++) {
                    double ref = 0.0;
                    for (int t = tile * ATT_TILE; t < T && t < (tile + 1) * ATT_TILE; t++) { ref += dg[((size_t)b * T + t) * C3 + j]; }
                    err = fmax(err, fabs(cs[((size_t)b * Tt + tile) * C3 + j] - ref));
                    big = fmax(big, fabs(ref));
                }
            }
        }
        report(err <= 1e-5 * big, "attention_backward.colsum (per 64-row tile) vs fp64 sums of dqkv", err / big, 1e-5);
        check_count("attention_backward.colsum: dqkv still written, unchanged", count_diff(g1, get_bits(d_dqkv, nqkv)));
        if (T % ATT_TILE == 0) {
            float amax_ref = 0.0f;
            for (float v : dg) { amax_ref = fmaxf(amax_ref, fabsf(v)); }
            float scale = 0.5f * 57344.0f / amax_ref;   // E5M2, as the trainer's hybrid format
            uint8_t *d_q8 = dev_alloc<uint8_t>((size_t)NT * C3), *d_q8t = dev_alloc<uint8_t>((size_t)NT * C3);
            float* d_sa = dev_alloc<float>(2);
            VF sa = {scale, 0.0f};
            put_f32(d_sa, sa);
            AttGradOut g8 = {d_cs, d_q8, d_q8t, d_sa, d_sa + 1, 1};
            poison(d_dqkv, nqkv);
            Bits poisoned = get_bits(d_dqkv, nqkv);
            attention_backward(d_dqkv, d_scratch, d_dout, d_out, d_qkv, d_lse, B, T, C, NH, 0.125f, &g8, 0);
            device_sync();
            Bytes q = get_bytes(d_q8, (size_t)NT * C3), qt = get_bytes(d_q8t, (size_t)NT * C3);
            long bad = 0;
            for (int n = 0; n < NT; n++) {
                for (int j = 0; j < C3; j++) {
                    uint8_t want = fp8_encode(dg[(size_t)n * C3 + j] * scale, FP8_E5M2);
                    bad += (q[(size_t)n * C3 + j] != want) + (qt[(size_t)j * NT + n] != want);
                }
            }
            check_count("attention_backward.fp8: dqkv's E5M2 codes and their transpose = the host cast's", bad);
            float amax = get_f32(d_sa + 1, 1)[0];
            check_count(fmt("attention_backward.fp8: amax %g = max |dqkv| %g", amax, amax_ref), amax != amax_ref);
            check_count("attention_backward.fp8: dqkv not written", count_diff(poisoned, get_bits(d_dqkv, nqkv)));
            check_count("attention_backward.fp8: colsum unchanged", count_diff(get_f32(d_cs, (size_t)chunks * C3), cs));
        }
    }
    if (dump_dir != NULL) {   // header int32 {B, T, C, NH}, then bf16 qkv, dout, out, dqkv, then fp32 lse
        char path[4096];
        snprintf(path, sizeof(path), "%s/attention.bin", dump_dir);
        FILE* f = fopen_or_die(path, "wb");
        int hdr[4] = {B, T, C, NH};
        fwrite_or_die(hdr, sizeof(int), 4, f, path);
        Bits bq = get_bits(d_qkv, nqkv), bd = get_bits(d_dout, nout), bo = get_bits(d_out, nout);
        fwrite_or_die(bq.data(), 2, nqkv, f, path);
        fwrite_or_die(bd.data(), 2, nout, f, path);
        fwrite_or_die(bo.data(), 2, nout, f, path);
        fwrite_or_die(g1.data(), 2, nqkv, f, path);
        fwrite_or_die(l.data(), 4, nlse, f, path);
        fclose_or_die(f, path);
        printf("wrote %s\n", path);
    }
}

// adamw_update on a slice (n) at `offset` of the flat parameter vector, against AdamW in double
// computed with the kernel's (float) hyperparameters; then the stochastic rounding of params.
static void test_adamw() {
    const long n = (1 << 20) + 3, offset = 123457;
    VF master0 = randn(n, 0.05, 0.0, false), m0 = randn(n, 0.003, 0.0, false), v0(n), grad = randn(n, 0.01);
    for (long i = 0; i < n; i++) { v0[i] = (float)(1e-5 + 2e-4 * rng_uniform(&rng)); }
    AdamWStep h;
    int t = 3;
    h.lr = 1e-2f; h.beta1 = 0.9f; h.beta2 = 0.95f; h.eps = 1e-8f; h.weight_decay = 0.1f;
    h.beta1_correction = 1.0f - powf(h.beta1, (float)t);
    h.beta2_correction = 1.0f - powf(h.beta2, (float)t);
    h.grad_scale = 0.8f;
    floatX *d_params = dev_alloc<floatX>(n), *d_grad = to_dev(grad);
    float *d_master = dev_alloc<float>(n), *d_m = dev_alloc<float>(n), *d_v = dev_alloc<float>(n);
    auto run = [&](uint32_t seed) {   // from the same starting state every time
        put_f32(d_master, master0); put_f32(d_m, m0); put_f32(d_v, v0);
        poison(d_params, n);
        h.seed = seed;
        adamw_update(d_params, d_master, d_grad, d_m, d_v, n, offset, h, 0);
        device_sync();
        return get_bits(d_params, n);
    };
    const uint32_t seed = 0x1234567u;
    Bits p1 = run(seed);
    VF mst = get_f32(d_master, n);
    VD ref_dp(n), ref_m(n), ref_v(n), ref_mst(n);
    for (long i = 0; i < n; i++) {
        double g = (double)grad[i] * h.grad_scale;
        double m = h.beta1 * (double)m0[i] + (1.0 - h.beta1) * g;
        double v = h.beta2 * (double)v0[i] + (1.0 - h.beta2) * g * g;
        double mhat = m / h.beta1_correction, vhat = v / h.beta2_correction, p = master0[i];
        ref_dp[i] = -h.lr * (mhat / (sqrt(vhat) + h.eps) + h.weight_decay * p);   // the update, compared apart from p
        ref_m[i] = m;
        ref_v[i] = v;
    }
    VF dp(n);
    for (long i = 0; i < n; i++) { dp[i] = (float)((double)mst[i] - master0[i]); }
    check_close("adamw.master_update", dp, ref_dp, TOL_F32);
    check_close("adamw.m", get_f32(d_m, n), ref_m, TOL_F32);
    check_close("adamw.v", get_f32(d_v, n), ref_v, TOL_F32);

    // params: one of the two bf16 neighbours of the new master value (toward / away from zero),
    // rounding up with probability equal to the fraction f of the way to the upper neighbour;
    // so the mean error in ulps is 0 for f < 1/2 and for f >= 1/2 separately (std <= 0.5/sqrt(count)).
    // Round-to-nearest would give -0.25 / +0.25, truncation -0.25 / -0.75.
    long not_neighbour = 0, cnt[2] = {0, 0};
    double esum[2] = {0.0, 0.0};
    for (long i = 0; i < n; i++) {
        uint32_t mb;
        memcpy(&mb, &mst[i], 4);
        uint16_t lo = (uint16_t)(mb >> 16), hi = (uint16_t)(lo + 1);
        bool exact = (mb & 0xffffu) == 0;
        if (!(p1[i] == lo || (!exact && p1[i] == hi))) { not_neighbour++; continue; }
        if (exact) { continue; }
        double x = fabs((double)mst[i]), l = fabs((double)bits_to_float(lo)), ulp = fabs((double)bits_to_float(hi)) - l;
        double f = (x - l) / ulp, e = (fabs((double)bits_to_float(p1[i])) - x) / ulp;
        esum[f >= 0.5] += e;
        cnt[f >= 0.5]++;
    }
    check_count("adamw.params_bf16_neighbour_of_master", not_neighbour);
    for (int k = 0; k < 2; k++) {
        double bias = cnt[k] ? fabs(esum[k] / cnt[k]) : 1.0;
        report(bias <= 5e-3, k ? "adamw.sr_unbiased(frac>=0.5)" : "adamw.sr_unbiased(frac<0.5)", bias, 5e-3,
               fmt("(mean error in ulps over %ld values)", cnt[k]));
    }
    check_count("adamw.same_seed_same_bits", count_diff(p1, run(seed)));
    long differ = count_diff(p1, run(seed ^ 0x9e3779b9u));
    check_count("adamw.other_seed_other_bits", differ < n / 10, fmt("(%.1f%% of params differ, expect ~33%%)", 100.0 * differ / n));
}

// squared_norm: sum of squares of x (n), n not a multiple of 8, up to several grid-stride passes
static void test_squared_norm() {
    const long sizes[4] = {5, 1003, (1 << 20) + 3, 3000005};
    float *d_out = dev_alloc<float>(1), *d_scratch = dev_alloc<float>(NORM_BLOCKS);
    for (long n : sizes) {
        VF x = randn(n, 1.0);
        VD ref(1, 0.0);
        for (long i = 0; i < n; i++) { ref[0] += (double)x[i] * x[i]; }
        floatX* d_x = to_dev(x);
        poison(d_out, 1);
        poison(d_scratch, NORM_BLOCKS);
        squared_norm(d_out, d_scratch, d_x, n, 0);
        device_sync();
        check_close(fmt("squared_norm(n=%ld)", n), get_f32(d_out, 1), ref, TOL_F32);
    }
}

// runs `run` (which restores its inputs first) twice; the outputs must match bit for bit
template <typename F> static void check_deterministic(const char* name, F run, const std::vector<std::pair<floatX*, size_t>>& outs) {
    Bits r[2];
    for (int k = 0; k < 2; k++) {
        run();
        device_sync();
        for (auto& o : outs) { Bits b = get_bits(o.first, o.second); r[k].insert(r[k].end(), b.begin(), b.end()); }
    }
    check_count(name, count_diff(r[0], r[1]));
}

// Determinism at the GPT-2 d12 shape (several row chunks, thousands of positions per hot token)
static void test_determinism() {
    const int B = 8, T = 1024, C = 768, N = B * T, V = 50257, Vp = 50304, OC = 4 * C;
    size_t NC = (size_t)N * C;
    floatX *dout = dev_alloc<floatX>((size_t)N * OC), *x = dev_alloc<floatX>(NC), *lnout = dev_alloc<floatX>(NC);
    floatX *w = dev_alloc<floatX>(C), *b = dev_alloc<floatX>(C);
    floatX *dinp0 = dev_alloc<floatX>(NC), *dinp = dev_alloc<floatX>(NC);
    floatX *dpar0 = dev_alloc<floatX>(OC), *dpar = dev_alloc<floatX>(OC);   // dw|db of LN, or dbias
    floatX *dwte0 = dev_alloc<floatX>((size_t)Vp * C), *dwte = dev_alloc<floatX>((size_t)Vp * C);
    floatX *dwpe0 = dev_alloc<floatX>((size_t)T * C), *dwpe = dev_alloc<floatX>((size_t)T * C);
    float *mean = dev_alloc<float>(N), *rstd = dev_alloc<float>(N);
    float* scratch = dev_alloc<float>((size_t)colsum_num_chunks(N) * OC);
    fill_random(dout, (long)N * OC, 1.0f); fill_random(x, (long)NC, 1.0f, 0.2f);
    fill_random(w, C, 0.2f, 1.0f); fill_random(b, C, 0.2f);
    fill_random(dinp0, (long)NC, 1.0f); fill_random(dpar0, OC, 10.0f);
    fill_random(dwte0, (long)Vp * C, 1.0f); fill_random(dwpe0, (long)T * C, 1.0f);
    layernorm_forward(lnout, mean, rstd, x, w, b, N, C, NULL, 0);
    TokenGroups groups = groups_to_dev(tokens_with_repeats(N, V), V);
    check_deterministic("determinism.layernorm_backward", [&] {
        copy_dev(dinp, dinp0, NC); copy_dev(dpar, dpar0, 2 * C);
        layernorm_backward(dinp, dpar, dpar + C, scratch, dout, x, w, mean, rstd, N, C, 0);
    }, {{dinp, NC}, {dpar, 2 * (size_t)C}});
    check_deterministic("determinism.bias_backward", [&] {
        copy_dev(dpar, dpar0, OC);
        bias_backward(dpar, dout, scratch, N, OC, 0);
    }, {{dpar, (size_t)OC}});
    check_deterministic("determinism.encoder_backward", [&] {
        copy_dev(dwte, dwte0, (size_t)Vp * C); copy_dev(dwpe, dwpe0, (size_t)T * C);
        encoder_backward(dwte, dwpe, dout, &groups, B, T, C, 0);
    }, {{dwte, (size_t)Vp * C}, {dwpe, (size_t)T * C}});
}

// ------------------------------------------------------------------------------------------
// timing at the GPT-2 d12 shape

static void run_timing(LinearContext* lc) {
    const int B = 16, T = 1024, C = 768, NH = 12, V = 50257, Vp = 50304, N = B * T;
    const long nparams = 124475904;   // GPT-2 d12 with Vp = 50304
    const double NC = (double)N * C, n4 = 4.0 * NC;
    printf("\ntiming: median of 50 runs after 5 warm-up runs, B=%d T=%d C=%d NH=%d Vp=%d\n", B, T, C, NH, Vp);
    printf("(GB/s: bytes of distinct data read + written, each tensor once per kernel (wte/wpe rows once);\n"
           " times include gemm_bf16's host-side setup)\n");
    floatX *a = dev_alloc<floatX>((size_t)N * 4 * C), *o = dev_alloc<floatX>((size_t)N * 4 * C), *d = dev_alloc<floatX>((size_t)N * 4 * C);
    floatX *logits = dev_alloc<floatX>((size_t)N * Vp), *w = dev_alloc<floatX>((size_t)Vp * C), *dw = dev_alloc<floatX>((size_t)Vp * C);
    floatX *wpe = dev_alloc<floatX>((size_t)T * C), *bias = dev_alloc<floatX>(4 * C), *dbias = dev_alloc<floatX>(4 * C);
    float *mean = dev_alloc<float>(N), *rstd = dev_alloc<float>(N), *losses = dev_alloc<float>(N);
    float* scratch = dev_alloc<float>(std::max((size_t)colsum_num_chunks(N) * 4 * C, (size_t)NORM_BLOCKS));
    floatX *params = dev_alloc<floatX>(nparams), *grads = dev_alloc<floatX>(nparams);
    float *master = dev_alloc<float>(nparams), *m = dev_alloc<float>(nparams), *v = dev_alloc<float>(nparams);
    fill_random(a, (long)n4, 1.0f); fill_random(d, (long)n4, 1.0f); fill_random(o, (long)n4, 1.0f);
    fill_random(logits, (long)N * Vp, 2.0f); fill_random(w, (long)Vp * C, 0.02f); fill_random(dw, (long)Vp * C, 0.02f);
    fill_random(wpe, (long)T * C, 0.02f); fill_random(bias, 4 * C, 0.02f); fill_random(dbias, 4 * C, 0.02f);
    fill_random(grads, nparams, 1e-3f); fill_random(master, nparams, 0.02f);
    cudaCheck(cudaMemset(m, 0, nparams * sizeof(float)));
    cudaCheck(cudaMemset(v, 0, nparams * sizeof(float)));
    // Zipf-like tokens, P(k) ~ 1/(k+1) (the top token ~9% of positions), as in real text
    std::vector<int> tok(N), tgt(N);
    for (int i = 0; i < N; i++) {
        tok[i] = std::min(V - 1, (int)(exp(rng_uniform(&rng) * log(V + 1.0)) - 1.0));
        tgt[i] = rand_int(V);
    }
    int *d_tok = to_dev_int(tok), *d_tgt = to_dev_int(tgt);
    TokenGroups groups = groups_to_dev(tok, V);
    layernorm_forward(o, mean, rstd, a, w, bias, N, C, NULL, 0);   // sensible mean/rstd for backward
    device_sync();
    float ms;

    ms = time_ms([&] { encoder_forward(o, d_tok, w, wpe, B, T, C, 0); });
    timing_row("encoder_forward", ms, 2 * (NC + (double)groups.num_groups * C + (double)T * C) + 4.0 * N, 0);
    ms = time_ms([&] { encoder_backward(dw, o, d, &groups, B, T, C, 0); });
    timing_row(fmt("encoder_backward (%d distinct tokens)", groups.num_groups), ms, 2 * (2 * NC + 2.0 * groups.num_groups * C + 2.0 * T * C) + 4.0 * (2 * N), 0);
    ms = time_ms([&] { layernorm_forward(o, mean, rstd, a, w, bias, N, C, NULL, 0); });
    timing_row("layernorm_forward", ms, 2 * (2 * NC) + 8.0 * N, 0);
    ms = time_ms([&] { residual_layernorm_forward(o, o + (size_t)N * C, mean, rstd, a, d, w, bias, N, C, NULL, 0); });
    timing_row("residual_layernorm_forward", ms, 2 * (4 * NC) + 8.0 * N, 0);
    ms = time_ms([&] { layernorm_backward(o, dbias, dbias + C, scratch, d, a, w, mean, rstd, N, C, 0); });
    timing_row("layernorm_backward", ms, 2 * (6 * NC) + 16.0 * N, 0);
    ms = time_ms([&] { gelu_forward(o, a, (long)n4, 0); });
    timing_row("gelu_forward (B,T,4C)", ms, 2 * (2 * n4), 0);
    ms = time_ms([&] { bias_backward(dbias, d, scratch, N, 4 * C, 0); });
    timing_row("bias_backward (B*T,4C)", ms, 2 * n4, 0);
    ms = time_ms([&] { fused_classifier(logits, losses, NULL, d_tgt, 1.0f / N, N, V, Vp, 0, 0); });
    timing_row("fused_classifier (loss only)", ms, 2.0 * N * Vp + 8.0 * N, 0);
    ms = time_ms([&] { fused_classifier(logits, losses, NULL, d_tgt, 1.0f / N, N, V, Vp, 1, 0); });
    timing_row("fused_classifier (write_grad)", ms, 2 * (2.0 * N * Vp) + 8.0 * N, 0);

    struct { const char* name; int IC, OC; bool bias; } lin[5] = {
        {"qkv", C, 3 * C, true}, {"attproj", C, C, true}, {"fc", C, 4 * C, true}, {"fcproj", 4 * C, C, true}, {"lmhead", C, Vp, false}};
    for (auto& L : lin) {
        floatX* out = L.OC == Vp ? logits : o;
        ms = time_ms([&] { linear_forward(lc, LINEAR_FC, 0, out, NULL, a, w, L.bias ? bias : NULL, N, L.IC, L.OC, 0); });
        timing_row(fmt("linear_forward %s (%d->%d)", L.name, L.IC, L.OC), ms, 0, 2.0 * N * L.IC * L.OC);
    }
    for (auto& L : lin) {
        floatX* dout = L.OC == Vp ? logits : d;
        ms = time_ms([&] { linear_backward(lc, LINEAR_FC, 0, o, dw, L.bias ? dbias : NULL, scratch, dout, a, NULL, w, N, L.IC, L.OC, 0); });
        timing_row(fmt("linear_backward %s (%d->%d)", L.name, L.IC, L.OC), ms, 0, 4.0 * N * L.IC * L.OC);
    }

    AdamWStep h = {1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.1f, 0.05f, 1.0f, 42u};
    ms = time_ms([&] { adamw_update(params, master, grads, m, v, nparams, 0, h, 0); });
    timing_row("adamw_update (124M params)", ms, 28.0 * nparams, 0);
    ms = time_ms([&] { squared_norm(losses, scratch, grads, nparams, 0); });
    timing_row("squared_norm (124M bf16)", ms, 2.0 * nparams, 0);
    device_sync();
}

// Fused attention forward and backward at the GPT-2 shapes of the issue; TFLOP/s by
// flash-attention's convention: 4*B*NH*T*T*HS/2 for the causal forward, 2.5x that backward.
static void run_attention_timing() {
    struct { int B, NH, T; } shapes[3] = {{64, 12, 1024}, {16, 25, 1024}, {8, 25, 2048}};
    printf("\nattention (median of 50 runs, causal, HS=64):\n");
    printf("%-18s %12s %12s %12s %10s %10s\n", "B, NH, T", "fwd ms", "bwd ms", "fwd+bwd ms", "fwd TF/s", "bwd TF/s");
    for (auto& sh : shapes) {
        int C = sh.NH * 64;
        size_t N = (size_t)sh.B * sh.T;
        floatX *qkv = dev_alloc<floatX>(N * 3 * C), *o = dev_alloc<floatX>(N * C), *dout = dev_alloc<floatX>(N * C);
        floatX* dqkv = dev_alloc<floatX>(N * 3 * C);
        float *lse = dev_alloc<float>(N * sh.NH), *scr = dev_alloc<float>(attention_scratch_bytes(sh.B, sh.T, sh.NH) / sizeof(float));
        fill_random(qkv, (long)N * 3 * C, 1.0f);
        fill_random(dout, (long)N * C, 1.0f);
        float f = time_ms([&] { attention_forward(o, lse, qkv, sh.B, sh.T, C, sh.NH, 0.125f, 0); });
        attention_backward(dqkv, scr, dout, o, qkv, lse, sh.B, sh.T, C, sh.NH, 0.125f, NULL, 0);
        device_sync();
        Bits first = get_bits(dqkv, N * 3 * C);
        float bw = time_ms([&] { attention_backward(dqkv, scr, dout, o, qkv, lse, sh.B, sh.T, C, sh.NH, 0.125f, NULL, 0); });
        // every output element is written by one thread, no atomics: the last timed run has the first's bits
        check_count(fmt("attention_backward.deterministic at B=%d NH=%d T=%d", sh.B, sh.NH, sh.T), count_diff(first, get_bits(dqkv, N * 3 * C)));
        double flops = 4.0 * sh.B * sh.NH * (double)sh.T * sh.T * 64 / 2;
        printf("%4d, %3d, %5d     %12.3f %12.3f %12.3f %10.1f %10.1f\n", sh.B, sh.NH, sh.T, f, bw, f + bw,
               flops / (f * 1e-3) / 1e12, 2.5 * flops / (bw * 1e-3) / 1e12);
        // with what the trainers' backward also writes for the QKV linear (AttGradOut): the bias
        // partials (BF16 trainer), and with them the E5M2 codes of dqkv and their transpose (FP8)
        float* cs = dev_alloc<float>((size_t)attention_grad_chunks(sh.B, sh.T) * 3 * C);
        uint8_t *q8 = dev_alloc<uint8_t>(N * 3 * C), *q8t = dev_alloc<uint8_t>(N * 3 * C);
        float* sa = dev_alloc<float>(2);
        put_f32(sa, VF{1.0f, 0.0f});
        AttGradOut gs = {cs, NULL, NULL, NULL, NULL, 0}, g8 = {cs, q8, q8t, sa, sa + 1, 1};
        float bs = time_ms([&] { attention_backward(dqkv, scr, dout, o, qkv, lse, sh.B, sh.T, C, sh.NH, 0.125f, &gs, 0); });
        float b8 = time_ms([&] { attention_backward(dqkv, scr, dout, o, qkv, lse, sh.B, sh.T, C, sh.NH, 0.125f, &g8, 0); });
        printf("%18s bwd with the bias partials %.3f ms, with them and FP8 dqkv %.3f ms\n", "", bs, b8);
        dev_free_all();
    }
}

int main(int argc, char** argv) {
    bool timing = !(argc > 1 && strcmp(argv[1], "--no-timing") == 0);
    const char* dump_dir = (argc > 2 && strcmp(argv[1], "--dump-attention") == 0) ? argv[2] : NULL;
    if (dump_dir) { timing = false; mkdir_p_or_die(dump_dir); }
    cudaDeviceProp prop;
    if (!gpu_found("test_kernels", &prop)) { return 77; }
    rng_seed(&rng, 0x5eed2024u);
    LinearOptions lopt;
    linear_options_defaults(&lopt);
    LinearContext lc;
    linear_context_init(&lc, &lopt, 1);

    // small shapes: T a multiple of 8 but not always of attention's 64-row tiles, C a multiple
    // of 64 but not of 256 (tails of the 256-column loops), the last with several 1024-row chunks
    struct { int B, T, C, NH; } shapes[3] = {{2, 64, 128, 2}, {3, 40, 192, 3}, {5, 264, 320, 5}};
    for (auto& s : shapes) {
        int N = s.B * s.T;
        snprintf(shape_tag, sizeof(shape_tag), "B%dT%dC%dNH%d/", s.B, s.T, s.C, s.NH);
        test_linear(&lc, N, s.C, 3 * s.C, true, false);
        test_linear(&lc, N, 4 * s.C, s.C, false, false);
        test_linear(&lc, N, s.C, 4 * s.C, true, true);
        test_encoder(s.B, s.T, s.C);
        test_layernorm(N, s.C);
        test_gelu((long)N * 4 * s.C);
        test_classifier(N, 1000, 1024, 3.0);
        test_attention(s.B, s.T, s.C, s.NH);
        dev_free_all();
    }
    shape_tag[0] = '\0';
    test_gemm_batched(&lc.gemm);
    test_gemm_tuning();
    dev_free_all();
    test_classifier(6, 50257, 50304, 2.0);
    test_adamw();
    test_squared_norm();
    dev_free_all();
    test_attention(2, 1000, 768, 12, dump_dir);   // T not a multiple of the tile, d12's heads
    dev_free_all();
    test_determinism();
    dev_free_all();
    if (timing) {
        run_timing(&lc);
        dev_free_all();
        run_attention_timing();
    }
    linear_context_free(&lc);
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}
