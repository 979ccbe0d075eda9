// GPU tests and timings of the FP8 layer: llmc/fp8_cast.cuh and llmc/linear_fp8.cuh.
//   dev/test_fp8               every check, then FP8 vs BF16 GEMM timings at 16384 tokens
//   dev/test_fp8 --no-timing   checks only
// Checks:
//  - the device casts (plain and transposed) give the host reference's codes (llmc/fp8.h, itself
//    checked exhaustively by dev/test_fp8_host) for every BF16 bit pattern, both formats, several
//    scales; amax recorded exactly; saturation/flush counts exact; transposes at ragged shapes
//  - linear_forward / linear_backward at GPT-2 shapes: each FP8 GEMM against an FP64 CPU GEMM of
//    the operands quantized on the host with the device's scales (relative L2 < 1e-2), and
//    against the unquantized BF16 operands (loosely: catches a wrong scale); the FP8 copies the
//    layer made are compared code for code; GELU epilogues, fused and as a separate pass
//  - the BF16 paths of the same header (--precision bf16, --lm-head bf16, --bf16-layers, rows
//    not a multiple of 16) are bit-identical to gemm_bf16
//  - delayed and current scaling over steps: the device's whole scaling state equals a host
//    replay with llmc/fp8_scaling.h after every step (history ring, first step on its own amax,
//    amax 0 / NaN keeping the scale, micro-batches); a saved and reloaded state continues bit for bit
//  - weight copies are re-cast only when stale; statistics of a stats step
//  - a whole small GPT-2 (L=4, C=256, real vocabulary, B*T=2048) at init: every parameter
//    tensor's gradient in FP8 (hybrid, e4m3; delayed scaling's first step = current scaling, bit
//    for bit) against BF16's: relative L2 < 0.2, cosine > 0.98, loss within 1e-3 (the bound's
//    derivation at MODEL_REL); the same comparison must flag a 25% gradient scale error and
//    the gradient of a batch with one row's targets changed
// Prints `PASS|FAIL name ...` per check and ends with `N passed, N failed`.
// Exit status: 0 all passed, 1 a check failed, 77 no GPU (skipped).
// Build (from the repository root):
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xcompiler -Wall,-Wno-unused-function
//        -o dev/test_fp8 dev/test_fp8.cu -lcublasLt
#include "../llmc/linear_fp8.cuh"
#include "../llmc/gpt2.cuh"
#include "../llmc/rand.h"
#define TEST_TIME_REPS 30   // time_ms: 30 timed runs after 3 untimed ones
#define TEST_TIME_WARM 3
#include "test_util.cuh"   // VF, VD, Bits, randn, put/get, fmt, report, check_close, time_ms, ...

typedef std::vector<uint8_t> Codes;  // fp8 codes

// Relative L2 error ||out - ref|| / ||ref||.
// TOL_FP8_GEMM: the reference multiplies the very codes the GPU multiplies (the host quantizes
//   with the device's scales, and the casts are bit-identical), so what is left is FP32
//   accumulation (Hopper's fast FP8 accumulation in the forward) and the final BF16 rounding,
//   ~1.6e-3 RMS: the issue's 1e-2 has ~5x margin.
// TOL_QUANT: against the unquantized operands. E4M3 keeps 3 mantissa bits (~2.5% RMS relative
//   error per value), E5M2 2 bits (~5%): products of two come to 3.5-6%. 0.15 passes those and
//   fails a scale off by a factor of 2 or more.
#define TOL_FP8_GEMM 1e-2
#define TOL_QUANT 0.15
#define TOL_BF16 8e-3   // one final bf16 rounding (bias gradient sums)

static Codes get_codes(const uint8_t* d, size_t n) {
    Codes c(n);
    cudaCheck(cudaMemcpy(c.data(), d, n, cudaMemcpyDeviceToHost));
    return c;
}
// one fp32 value (put_f32 of a whole tensor is in dev/test_util.cuh)
static void put_f32(float* d, float v) { cudaCheck(cudaMemcpy(d, &v, 4, cudaMemcpyHostToDevice)); }

static const char* fname(Fp8Format f) { return f == FP8_E4M3 ? "e4m3" : "e5m2"; }

// host quantization: codes of x * scale, and their values (decode, before scale_inv)
static Codes quantize(const VF& x, float scale, Fp8Format f) {
    Codes q(x.size());
    for (size_t i = 0; i < x.size(); i++) { q[i] = fp8_encode(x[i] * scale, f); }
    return q;
}
static VF decode_all(const Codes& q, Fp8Format f) {
    VF v(q.size());
    for (size_t i = 0; i < q.size(); i++) { v[i] = fp8_decode(q[i], f); }
    return v;
}
static float host_amax(const VF& x) {
    float a = 0.0f;
    for (float v : x) { a = fp8_amax_max(a, fabsf(v)); }
    return a;
}
// (C,R) transpose of (R,C)
template <typename T> static std::vector<T> transpose(const std::vector<T>& a, int R, int C) {
    std::vector<T> t(a.size());
    for (int r = 0; r < R; r++) { for (int c = 0; c < C; c++) { t[(size_t)c * R + r] = a[(size_t)r * C + c]; } }
    return t;
}
static std::vector<int> sample_rows(int n, int k) {
    std::vector<int> r;
    for (int i = 0; i < k && i < n; i++) { r.push_back(k >= n ? i : (int)((long)i * (n - 1) / (k - 1))); }
    return r;
}

static LinearOptions fp8_options() {
    LinearOptions o;
    linear_options_defaults(&o);
    return o;
}

// ------------------------------------------------------------------------------------------
// casts

// every bf16 pattern (incl. inf, NaN, subnormals) times each scale, both formats, both kernels
static void test_cast_all_bf16() {
    const int n = 65536;
    VF x(n);
    std::vector<uint16_t> bits(n);
    for (int b = 0; b < n; b++) { bits[b] = (uint16_t)b; x[b] = bits_to_float((uint16_t)b); }
    floatX* d_in = dev_alloc<floatX>(n);
    cudaCheck(cudaMemcpy(d_in, bits.data(), n * 2, cudaMemcpyHostToDevice));
    uint8_t *d_out = dev_alloc<uint8_t>(n), *d_out2 = dev_alloc<uint8_t>(n), *d_outT = dev_alloc<uint8_t>(n);
    float *d_scale = dev_alloc<float>(1), *d_amax = dev_alloc<float>(2);
    unsigned long long* d_counts = dev_alloc<unsigned long long>(2);
    const float scales[] = {1.0f, 0.5f, 3.7f, 1.0f / 448.0f, 1e-3f, 300.0f, 1048576.0f};
    for (int fi = 0; fi < 2; fi++) {
        Fp8Format f = (Fp8Format)fi;
        for (float sc : scales) {
            put_f32(d_scale, sc);
            cudaCheck(cudaMemset(d_amax, 0, 8));
            cudaCheck(cudaMemset(d_counts, 0, 16));
            cudaCheck(cudaMemset(d_out, 0xAA, n)); cudaCheck(cudaMemset(d_out2, 0xAA, n)); cudaCheck(cudaMemset(d_outT, 0xAA, n));
            cast_to_fp8(d_out, d_in, n, f, d_scale, d_amax, d_counts, 0);
            cast_transpose_to_fp8(d_out2, d_outT, d_in, 256, 256, f, d_scale, d_amax + 1, NULL, NULL, CAST_PLAIN, NULL, NULL, 0);
            device_sync();
            Codes want(n), got = get_codes(d_out, n), got2 = get_codes(d_out2, n), gotT = get_codes(d_outT, n);
            long bad_nan = 0, bad = 0, bad2 = 0, badT = 0;
            unsigned long long sat = 0, flushed = 0;
            for (int b = 0; b < n; b++) {
                float v = x[b] * sc;
                want[b] = fp8_encode(v, f);
                if (got[b] != want[b]) {
                    if (isnan(v)) { bad_nan++; } else { bad++; }
                    if (bad + bad_nan <= 3) { printf("  bf16 0x%04x * %g: device 0x%02x, host 0x%02x\n", b, sc, got[b], want[b]); }
                }
                bad2 += got2[b] != want[b];
                badT += gotT[(size_t)(b % 256) * 256 + b / 256] != want[b];
                sat += fabsf(v) > fp8_format_max(f);
                flushed += (bits[b] & 0x7FFF) != 0 && (want[b] & 0x7F) == 0;
            }
            char tag[64];
            snprintf(tag, sizeof(tag), "%s scale %g", fname(f), sc);
            check_count(fmt("cast %s: all 65536 bf16 patterns, non-NaN inputs match fp8_encode", tag), bad);
            check_count(fmt("cast %s: NaN inputs give 0x7F", tag), bad_nan);
            check_count(fmt("cast_transpose %s: plain output", tag), bad2);
            check_count(fmt("cast_transpose %s: transposed output", tag), badT);
            VF am = get_f32(d_amax, 2);
            uint32_t a0 = fp8_float_bits(am[0]), a1 = fp8_float_bits(am[1]);
            check_count(fmt("cast %s: amax is the largest |bf16| bits 0x7FFF0000 (a NaN), both kernels", tag),
                        (a0 != 0x7FFF0000u) + (a1 != 0x7FFF0000u));
            std::vector<unsigned long long> cnt(2);
            cudaCheck(cudaMemcpy(cnt.data(), d_counts, 16, cudaMemcpyDeviceToHost));
            check_count(fmt("cast %s: saturated %llu and flushed %llu counted exactly", tag, sat, flushed),
                        (long)(cnt[0] != sat) + (long)(cnt[1] != flushed));
        }
    }
    dev_free_all();
}

// transposed casts at shapes that are not multiples of the 64x64 tile; amax of finite data by
// each kernel, including the bounded-grid absmax
static void test_cast_shapes() {
    const int shapes[][2] = {{16, 16}, {80, 48}, {1040, 784}, {4096, 768}, {48, 3072}};
    for (auto& sh : shapes) {
        int R = sh[0], C = sh[1];
        size_t n = (size_t)R * C;
        VF x = randn(n, 1.7);
        x[n / 3] = -20.0f;   // the amax (negative), far beyond the random values
        floatX* d_x = to_dev(x);
        uint8_t *d_o = dev_alloc<uint8_t>(n), *d_t = dev_alloc<uint8_t>(n), *d_t2 = dev_alloc<uint8_t>(n), *d_p = dev_alloc<uint8_t>(n);
        float *d_scale = dev_alloc<float>(1), *d_amax = dev_alloc<float>(3);
        put_f32(d_scale, 25.0f);
        cudaCheck(cudaMemset(d_amax, 0, 12));
        cudaCheck(cudaMemset(d_t2, 0xAA, n));
        cast_transpose_to_fp8(d_o, d_t, d_x, R, C, FP8_E4M3, d_scale, d_amax, NULL, NULL, CAST_PLAIN, NULL, NULL, 0);
        cast_transpose_to_fp8(NULL, d_t2, d_x, R, C, FP8_E5M2, d_scale, NULL, NULL, NULL, CAST_PLAIN, NULL, NULL, 0);
        absmax_bf16(d_amax + 1, d_x, (long)n, 0);
        cast_to_fp8(d_p, d_x, (long)n, FP8_E4M3, d_scale, d_amax + 2, NULL, 0);
        device_sync();
        Codes q4 = quantize(x, 25.0f, FP8_E4M3), q5 = quantize(x, 25.0f, FP8_E5M2);
        long bad = count_diff(get_codes(d_o, n), q4) + count_diff(get_codes(d_t, n), transpose(q4, R, C)) +
                   count_diff(get_codes(d_t2, n), transpose(q5, R, C)) + count_diff(get_codes(d_p, n), q4);
        check_count(fmt("cast_transpose (%d,%d): e4m3 plain + transposed, e5m2 transposed only; plain cast", R, C), bad);
        VF am = get_f32(d_amax, 3);
        check_count(fmt("amax (%d,%d): transposed cast, absmax, plain cast all give 20", R, C),
                    (am[0] != 20.0f) + (am[1] != 20.0f) + (am[2] != 20.0f));
        dev_free_all();
    }
}

// The transposed cast's fused extras: column sums (a bias gradient's partials; against FP64,
// then through add_partials, against bias_backward) and the cast of gelu(in) (code for code the
// cast of gelu_forward's output). Rows not a multiple of the column-sum block.
static void test_cast_colsum_gelu() {
    const int shapes[][2] = {{1040, 784}, {4096, 768}, {80, 3072}};
    for (auto& sh : shapes) {
        int R = sh[0], C = sh[1], chunks = colsum_num_chunks(R);
        size_t n = (size_t)R * C;
        VF x = randn(n, 1.3);
        floatX *d_x = to_dev(x), *d_g = dev_alloc<floatX>(n);
        uint8_t *d_o = dev_alloc<uint8_t>(n), *d_t = dev_alloc<uint8_t>(n), *d_t2 = dev_alloc<uint8_t>(n);
        float *d_scale = dev_alloc<float>(1), *d_amax = dev_alloc<float>(1), *d_part = dev_alloc<float>((size_t)chunks * C);
        floatX *d_b1 = to_dev(VF(C, 0.5f)), *d_b2 = to_dev(VF(C, 0.5f));
        float* d_scratch = dev_alloc<float>((size_t)chunks * C);
        put_f32(d_scale, 25.0f);
        cudaCheck(cudaMemset(d_amax, 0, 4));
        cast_transpose_to_fp8(d_o, d_t, d_x, R, C, FP8_E5M2, d_scale, d_amax, NULL, d_part, CAST_PLAIN, NULL, NULL, 0);
        add_partials(d_b1, d_part, chunks, C, C, 0);
        bias_backward(d_b2, d_x, d_scratch, R, C, 0);
        gelu_forward(d_g, d_x, (long)n, 0);
        cast_transpose_to_fp8(NULL, d_t2, d_x, R, C, FP8_E4M3, d_scale, NULL, NULL, NULL, CAST_GELU, NULL, NULL, 0);
        device_sync();
        Codes q5 = quantize(x, 25.0f, FP8_E5M2);
        long bad = count_diff(get_codes(d_o, n), q5) + count_diff(get_codes(d_t, n), transpose(q5, R, C));
        bad += get_f32(d_amax, 1)[0] != host_amax(x);
        check_count(fmt("cast_transpose + column sums (%d,%d): codes and amax unchanged", R, C), bad);
        VF part = get_f32(d_part, (size_t)chunks * C);
        VD ref((size_t)chunks * C, 0.0);
        for (size_t r = 0; r < (size_t)R; r++) {
            for (int c = 0; c < C; c++) { ref[(r / COLSUM_ROWS_PER_CHUNK) * C + c] += x[r * C + c]; }
        }
        check_close(fmt("cast_transpose + column sums (%d,%d): partials vs fp64", R, C), part, ref, 1e-5);
        VD refb(C, 0.5);
        for (size_t i = 0; i < ref.size(); i++) { refb[i % C] += ref[i]; }
        check_close(fmt("cast_transpose + column sums (%d,%d): bias gradient through add_partials vs fp64", R, C),
                    get(d_b1, C), refb, TOL_BF16);
        check_close(fmt("cast_transpose + column sums (%d,%d): bias_backward agrees", R, C), get(d_b2, C), refb, TOL_BF16);
        Codes qg = quantize(get(d_g, n), 25.0f, FP8_E4M3);
        check_count(fmt("cast_transpose of gelu(x) (%d,%d): codes of gelu_forward's output, transposed", R, C),
                    count_diff(get_codes(d_t2, n), transpose(qg, R, C)));
        // x * gelu'(pre) with column sums vs gelu_backward_inplace, then the plain cast with them
        VF pre = randn(n, 1.5);
        floatX *d_pre = to_dev(pre), *d_gx = to_dev(x);
        float* d_part2 = dev_alloc<float>((size_t)chunks * C);
        uint8_t *d_o3 = dev_alloc<uint8_t>(n), *d_t3 = dev_alloc<uint8_t>(n);
        cast_transpose_to_fp8(d_o, d_t, d_x, R, C, FP8_E5M2, d_scale, d_amax, NULL, d_part, CAST_DGELU, d_pre, NULL, 0);
        gelu_backward_inplace(d_gx, d_pre, (long)n, 0);
        cast_transpose_to_fp8(d_o3, d_t3, d_gx, R, C, FP8_E5M2, d_scale, d_amax, NULL, d_part2, CAST_PLAIN, NULL, NULL, 0);
        device_sync();
        bad = count_diff(get_codes(d_o, n), get_codes(d_o3, n)) + count_diff(get_codes(d_t, n), get_codes(d_t3, n));
        VF p1 = get_f32(d_part, (size_t)chunks * C), p2 = get_f32(d_part2, (size_t)chunks * C);
        for (size_t i = 0; i < p1.size(); i++) { bad += fp8_float_bits(p1[i]) != fp8_float_bits(p2[i]); }
        check_count(fmt("cast_transpose of x * gelu'(pre) + column sums (%d,%d): bit for bit gelu_backward_inplace then the cast", R, C), bad);
        dev_free_all();
    }
}

// linear_backward_mlp with GELU's backward moved into the FC's gradient cast (delayed scaling,
// second step): every gradient bit for bit that of the two linear_backward calls; and a CAST_DGELU
// transposed cast equal to gelu_backward_inplace then a plain cast.
static void test_backward_mlp_fused() {
    const int N = 512, C = 128;
    LinearContext lc;
    LinearOptions o = fp8_options();
    linear_context_init(&lc, &o, 1);
    VF x = randn((size_t)N * C, 1.0), wfc = randn((size_t)4 * C * C, 0.05), wpr = randn((size_t)C * 4 * C, 0.03);
    VF bfc = randn(4 * C, 0.1), bpr = randn(C, 0.1), dproj = randn((size_t)N * C, 1e-2);
    floatX *d_x = to_dev(x), *d_wfc = to_dev(wfc), *d_wpr = to_dev(wpr), *d_bfc = to_dev(bfc), *d_bpr = to_dev(bpr);
    floatX* d_dproj = to_dev(dproj);
    floatX *fch = dev_alloc<floatX>((size_t)N * 4 * C), *fchg = dev_alloc<floatX>((size_t)N * 4 * C), *out = dev_alloc<floatX>((size_t)N * C);
    floatX* dfch = dev_alloc<floatX>((size_t)N * 4 * C);
    float* scratch = dev_alloc<float>((size_t)colsum_num_chunks(N) * 4 * C);
    VF g0 = randn((size_t)4 * C * C, 1e-3), gb0 = randn(4 * C, 1e-3);
    floatX *dln[3], *dwfc[3], *dbfc[3], *dwpr[3], *dbpr[3];   // fused, two calls, step 1
    for (int k = 0; k < 3; k++) {
        dln[k] = dev_alloc<floatX>((size_t)N * C);
        dwfc[k] = to_dev(g0); dwpr[k] = to_dev(g0); dbfc[k] = to_dev(gb0); dbpr[k] = to_dev(VF(gb0.begin(), gb0.begin() + C));
    }
    auto forward = [&]() {
        linear_forward(&lc, LINEAR_FC, 0, fchg, fch, d_x, d_wfc, d_bfc, N, C, 4 * C, 0);
        linear_forward(&lc, LINEAR_FCPROJ, 0, out, NULL, fchg, d_wpr, d_bpr, N, 4 * C, C, 0);
    };
    linear_step_begin(&lc);   // step 1: own amaxes, the fused path is not taken
    forward();
    linear_backward_mlp(&lc, 0, dln[2], dfch, dwfc[2], dbfc[2], dwpr[2], dbpr[2], scratch, d_dproj, d_x, fch, fchg, d_wfc, d_wpr, N, C, 0);
    long first = lc.fused_mlp;
    linear_step_begin(&lc);   // step 2: scales from the history
    forward();
    linear_backward_mlp(&lc, 0, dln[0], dfch, dwfc[0], dbfc[0], dwpr[0], dbpr[0], scratch, d_dproj, d_x, fch, fchg, d_wfc, d_wpr, N, C, 0);
    long second = lc.fused_mlp;
    linear_backward(&lc, LINEAR_FCPROJ, 0, dfch, dwpr[1], dbpr[1], scratch, d_dproj, fchg, fch, d_wpr, N, 4 * C, C, 0);
    linear_backward(&lc, LINEAR_FC, 0, dln[1], dwfc[1], dbfc[1], scratch, dfch, d_x, NULL, d_wfc, N, C, 4 * C, 0);
    device_sync();
    check_count("mlp backward: fused on the delayed-scaling step only", (first != 0) + (second != 1));
    long bad = count_diff(get_bits(dln[0], (size_t)N * C), get_bits(dln[1], (size_t)N * C)) +
               count_diff(get_bits(dwfc[0], g0.size()), get_bits(dwfc[1], g0.size())) +
               count_diff(get_bits(dwpr[0], g0.size()), get_bits(dwpr[1], g0.size())) +
               count_diff(get_bits(dbfc[0], 4 * C), get_bits(dbfc[1], 4 * C)) +
               count_diff(get_bits(dbpr[0], C), get_bits(dbpr[1], C));
    check_count("mlp backward fused: dln, both weight and bias gradients bit for bit the two calls'", bad);
    dev_free_all();
    linear_context_free(&lc);
}

// The logits' gradient made inside the transposed cast (CAST_SOFTMAX_GRAD) from the logits and
// the classifier's log-normalisers: codes and amax bit for bit those of casting the gradient
// fused_classifier writes, padded columns included. Then the LM head's backward made that way
// (in chunks of rows, delayed scaling) against the classifier's gradient through linear_backward.
static void test_softmax_grad_cast() {
    const int N = 576, C = 128, V = 1000, Vp = 1024;   // N: 9 row tiles, a partial 8-tile block
    const float dloss = 1.0f / 4096;
    VF logits = randn((size_t)N * Vp, 2.0);
    std::vector<int> tgt(N);
    for (int i = 0; i < N; i++) { tgt[i] = rand_int(V); }
    floatX *d_logits = to_dev(logits), *d_grad = to_dev(logits);
    int* d_tgt = to_dev_int(tgt);
    float *d_loss = dev_alloc<float>(N), *d_lse = dev_alloc<float>(N), *d_scale = dev_alloc<float>(1), *d_amax = dev_alloc<float>(2);
    uint8_t *d_o = dev_alloc<uint8_t>((size_t)N * Vp), *d_t = dev_alloc<uint8_t>((size_t)N * Vp);
    uint8_t *d_o2 = dev_alloc<uint8_t>((size_t)N * Vp), *d_t2 = dev_alloc<uint8_t>((size_t)N * Vp);
    put_f32(d_scale, 57344.0f / 1e-3f);
    cudaCheck(cudaMemset(d_amax, 0, 8));
    fused_classifier(d_logits, d_loss, d_lse, d_tgt, dloss, N, V, Vp, 0, 0);
    fused_classifier(d_grad, d_loss, NULL, d_tgt, dloss, N, V, Vp, 1, 0);
    SoftmaxGrad sg = {d_lse, d_tgt, dloss, V};
    cast_transpose_to_fp8(d_o, d_t, d_logits, N, Vp, FP8_E5M2, d_scale, d_amax, NULL, NULL, CAST_SOFTMAX_GRAD, NULL, &sg, 0);
    cast_transpose_to_fp8(d_o2, d_t2, d_grad, N, Vp, FP8_E5M2, d_scale, d_amax + 1, NULL, NULL, CAST_PLAIN, NULL, NULL, 0);
    device_sync();
    size_t n = (size_t)N * Vp;
    VF am = get_f32(d_amax, 2);
    long bad = count_diff(get_codes(d_o, n), get_codes(d_o2, n)) + count_diff(get_codes(d_t, n), get_codes(d_t2, n)) +
               (fp8_float_bits(am[0]) != fp8_float_bits(am[1]));
    check_count("cast of the softmax gradient made from logits: codes, transposed codes, amax of the classifier's", bad);

    // the LM head's backward from the logits vs from the classifier's gradient (step 2, delayed)
    LinearContext lc;
    LinearOptions o = fp8_options();
    linear_context_init(&lc, &o, 1);
    lc.arena_budget = fp8_arena_need(128, C, Vp);
    VF x = randn((size_t)N * C, 1.0), w = randn((size_t)Vp * C, 0.05), g0 = randn((size_t)Vp * C, 1e-3);
    floatX *d_x = to_dev(x), *d_w = to_dev(w), *d_out = dev_alloc<floatX>(n), *d_outg = dev_alloc<floatX>(n);
    floatX *dx[2] = {dev_alloc<floatX>((size_t)N * C), dev_alloc<floatX>((size_t)N * C)}, *dw[2] = {to_dev(g0), to_dev(g0)};
    for (int step = 0; step < 2; step++) {
        linear_step_begin(&lc);
        linear_forward(&lc, LINEAR_LMHEAD, 0, d_out, NULL, d_x, d_w, NULL, N, C, Vp, 0);
        cudaCheck(cudaMemcpy(d_outg, d_out, n * sizeof(floatX), cudaMemcpyDeviceToDevice));
        fused_classifier(d_outg, d_loss, NULL, d_tgt, dloss, N, V, Vp, 1, 0);
        if (step == 0) {   // first step: own amaxes, the gradient comes from the classifier
            check_count("LM head makes its logits' gradient: not on the first step", linear_lmhead_makes_dlogits(&lc, N, C, Vp));
            linear_backward_lmhead(&lc, dx[0], dw[0], NULL, d_outg, NULL, d_x, d_w, N, C, Vp, 0);
            cudaCheck(cudaMemcpy(dw[0], dw[1], g0.size() * sizeof(floatX), cudaMemcpyDeviceToDevice));
            continue;
        }
        check_count("LM head makes its logits' gradient: on the delayed-scaling step", !linear_lmhead_makes_dlogits(&lc, N, C, Vp));
        fused_classifier(d_out, d_loss, d_lse, d_tgt, dloss, N, V, Vp, 0, 0);
        linear_backward_lmhead(&lc, dx[0], dw[0], NULL, d_out, &sg, d_x, d_w, N, C, Vp, 0);
        linear_backward_lmhead(&lc, dx[1], dw[1], NULL, d_outg, NULL, d_x, d_w, N, C, Vp, 0);
    }
    device_sync();
    bad = count_diff(get_bits(dx[0], (size_t)N * C), get_bits(dx[1], (size_t)N * C)) +
          count_diff(get_bits(dw[0], g0.size()), get_bits(dw[1], g0.size()));
    check_count(fmt("LM head backward from the logits (chunks of %d rows): dx and dW bit for bit those from the classifier's gradient",
                    fp8_chunk_rows(&lc, N, C, Vp)), bad);
    linear_context_free(&lc);
    dev_free_all();
}

// LayerNorms writing their output in FP8 (Fp8Out): the codes of the BF16 output they would
// have written, and its amax, bit for bit; mean and rstd unchanged. Rows a multiple of 8 and
// not (a partial last block).
static void test_layernorm_fp8_out() {
    const int shapes[][2] = {{64, 768}, {37, 1600}, {8, 64}};
    for (auto& sh : shapes) {
        int N = sh[0], C = sh[1];
        size_t n = (size_t)N * C;
        VF x = randn(n, 1.0), r = randn(n, 0.5), w = randn(C, 1.0), b = randn(C, 0.2);
        x[n / 2] = 9.0f;   // an outlier row
        floatX *d_x = to_dev(x), *d_r = to_dev(r), *d_w = to_dev(w), *d_b = to_dev(b);
        floatX *d_out = dev_alloc<floatX>(n), *d_res = dev_alloc<floatX>(n), *d_res2 = dev_alloc<floatX>(n);
        float *d_mean = dev_alloc<float>(2 * N), *d_rstd = dev_alloc<float>(2 * N), *d_scale = dev_alloc<float>(1), *d_amax = dev_alloc<float>(1);
        uint8_t* d_q = dev_alloc<uint8_t>(n);
        put_f32(d_scale, 37.0f);
        long bad = 0;
        for (int residual = 0; residual < 2; residual++) {
            cudaCheck(cudaMemset(d_amax, 0, 4));
            cudaCheck(cudaMemset(d_q, 0xAA, n));
            Fp8Out q8 = {d_q, d_scale, d_amax};
            if (residual) {
                residual_layernorm_forward(d_res, d_out, d_mean, d_rstd, d_x, d_r, d_w, d_b, N, C, NULL, 0);
                residual_layernorm_forward(d_res2, NULL, d_mean + N, d_rstd + N, d_x, d_r, d_w, d_b, N, C, &q8, 0);
            } else {
                layernorm_forward(d_out, d_mean, d_rstd, d_x, d_w, d_b, N, C, NULL, 0);
                layernorm_forward(NULL, d_mean + N, d_rstd + N, d_x, d_w, d_b, N, C, &q8, 0);
            }
            device_sync();
            VF out = get(d_out, n);
            bad = count_diff(get_codes(d_q, n), quantize(out, 37.0f, FP8_E4M3));
            VF mean = get_f32(d_mean, 2 * N), rstd = get_f32(d_rstd, 2 * N), am = get_f32(d_amax, 1);
            for (int i = 0; i < N; i++) { bad += mean[i] != mean[N + i] || rstd[i] != rstd[N + i]; }
            bad += am[0] != host_amax(out);
            if (residual) { bad += count_diff(get_bits(d_res, n), get_bits(d_res2, n)); }
            check_count(fmt("%slayernorm (%d,%d) FP8 output: codes of the BF16 output, its amax, same mean/rstd%s",
                            residual ? "residual " : "", N, C, residual ? " and residual" : ""), bad);
        }
        dev_free_all();
    }
}

// ------------------------------------------------------------------------------------------
// linear layer

struct LinearCase { const char* name; LinearKind kind; int N, IC, OC; bool bias; int gelu; };  // gelu: 0, 1 forward, 2 backward

// One forward and backward through linear_fp8.cuh (first step: every tensor on its own amax),
// checked against FP64 CPU GEMMs on sampled rows. chunk_rows > 0: the backward's scratch holds
// about that many rows, so it runs in chunks (the LM head's way).
static void test_linear_case(const LinearCase& lcase, const LinearOptions& opt, int fused_gelu, int chunk_rows = 0) {
    int N = lcase.N, IC = lcase.IC, OC = lcase.OC;
    LinearContext lc;
    linear_context_init(&lc, &opt, 1);
    lc.fused_gelu = fused_gelu;
    if (chunk_rows > 0) { lc.arena_budget = fp8_arena_need(chunk_rows, IC, OC); }
    int chunked = fp8_chunk_rows(&lc, N, IC, OC) < N;
    int id = fp8_linear_index(&lc, lcase.kind, 0);
    int tx = fp8_tensor(id, FP8_ROLE_X), tw = fp8_tensor(id, FP8_ROLE_W), tdy = fp8_tensor(id, FP8_ROLE_DY);
    Fp8Format fdy = fp8_tensor_format(&lc, tdy);
    VF x = randn((size_t)N * IC, 1.0), w = randn((size_t)OC * IC, 0.02), b = randn(OC, 0.1);
    VF dy = randn((size_t)N * OC, 1e-3), dw0 = randn((size_t)OC * IC, 1e-3 * sqrt((double)N)), db0 = randn(OC, 1e-2);
    VF pre_in = lcase.gelu == 2 ? randn((size_t)N * IC, 1.5) : VF();    // backward: the input came out of a GELU
    floatX *d_x = to_dev(x), *d_w = to_dev(w), *d_b = lcase.bias ? to_dev(b) : NULL, *d_dy = to_dev(dy);
    floatX* d_pre_in = lcase.gelu == 2 ? to_dev(pre_in) : NULL;
    if (lcase.gelu == 2) {   // x = gelu(pre_in), as the model's FC GEMM and gelu_forward make it
        gelu_forward(d_x, d_pre_in, (long)N * IC, 0);
        x = get(d_x, (size_t)N * IC);
    }
    floatX *d_dw = to_dev(dw0), *d_db = to_dev(db0);
    floatX *d_out = dev_alloc<floatX>((size_t)N * OC), *d_dx = dev_alloc<floatX>((size_t)N * IC);
    floatX* d_pre = lcase.gelu == 1 ? dev_alloc<floatX>((size_t)N * OC) : NULL;
    float* d_scratch = dev_alloc<float>((size_t)colsum_num_chunks(N) * OC);
    cudaCheck(cudaMemset(d_out, 0xFF, (size_t)N * OC * 2));
    cudaCheck(cudaMemset(d_dx, 0xFF, (size_t)N * IC * 2));
    linear_step_begin(&lc);
    linear_forward(&lc, lcase.kind, 0, d_out, d_pre, d_x, d_w, d_b, N, IC, OC, 0);
    device_sync();
    int keeps = linear_keeps_input(&lc, lcase.kind, 0, N, IC, OC);
    Codes x8_dev = get_codes(keeps ? lc.saved_x[id] : lc.arena, (size_t)N * IC);   // before backward reuses the arena
    linear_backward(&lc, lcase.kind, 0, d_dx, d_dw, lcase.bias ? d_db : NULL, d_scratch, d_dy, d_x, d_pre_in, d_w, N, IC, OC, 0);
    device_sync();
    char tagb[120];
    snprintf(tagb, sizeof(tagb), "%s N=%d %s%s%s", lcase.name, N, opt.hybrid ? "hybrid" : "e4m3",
             lcase.gelu ? (fused_gelu ? " gelu" : " gelu-unfused") : "",
             chunked ? fmt(" in chunks of %d rows", fp8_chunk_rows(&lc, N, IC, OC)) : "");
    if (chunk_rows > 0) { check_count(fmt("linear %s: the backward ran in chunks", tagb), !chunked); }
    VF scale = get_f32(fp8_scale(lc.sc_block, lc.num_tensors), lc.num_tensors);
    VF sinv_strided = get_f32(fp8_scale_inv_at(lc.sc_block, lc.num_tensors, 0), (size_t)FP8_SCALE_INV_STRIDE * lc.num_tensors);
    VF sinv(lc.num_tensors);
    for (int t = 0; t < lc.num_tensors; t++) { sinv[t] = sinv_strided[(size_t)FP8_SCALE_INV_STRIDE * t]; }
    // the device's scales are its tensors' own amaxes (first step)
    long bad = (scale[tx] != fp8_scale_from_amax(host_amax(x), 1.0f, FP8_E4M3_MAX, 0)) +
               (scale[tw] != fp8_scale_from_amax(host_amax(w), 1.0f, FP8_E4M3_MAX, 0)) +
               (scale[tdy] != fp8_scale_from_amax(host_amax(dy), 1.0f, fp8_format_max(fdy), 0));
    check_count(fmt("linear %s: first-step scales from each tensor's own amax", tagb), bad);
    Codes qx = quantize(x, scale[tx], FP8_E4M3), qw = quantize(w, scale[tw], FP8_E4M3), qdy = quantize(dy, scale[tdy], fdy);
    const Fp8Weight* fw = &lc.weights[id];
    // backward's scratch: W^T (IC,OC), dy (N,OC), dy^T (OC,N), x^T (IC,N)
    size_t a = align256((size_t)N * OC), wa = align256((size_t)OC * IC);
    bad = count_diff(x8_dev, qx) + count_diff(get_codes(fw->w, (size_t)OC * IC), qw) +
          count_diff(get_codes(lc.arena, (size_t)OC * IC), transpose(qw, OC, IC));
    if (!chunked) {   // (chunks leave only the last chunk's copies in the arena)
        bad += count_diff(get_codes(lc.arena + wa, (size_t)N * OC), qdy) +
               count_diff(get_codes(lc.arena + wa + a, (size_t)N * OC), transpose(qdy, N, OC)) +
               count_diff(get_codes(lc.arena + wa + 2 * a, (size_t)N * IC), transpose(qx, N, IC));
    }
    check_count(fmt("linear %s: fp8 copies x, W, W^T%s code for code", tagb, chunked ? "" : ", dy, dy^T, x^T"), bad);
    VF dx_ = decode_all(qx, FP8_E4M3), dw_ = decode_all(qw, FP8_E4M3), ddy = decode_all(qdy, fdy);
    double s_xw = (double)sinv[tx] * sinv[tw], s_dyw = (double)sinv[tdy] * sinv[tw], s_dyx = (double)sinv[tdy] * sinv[tx];
    int nrows = (size_t)OC * IC > 10000000 ? 16 : 48;   // the LM head's CPU reference is costly
    std::vector<int> rows = sample_rows(N, nrows), orows = sample_rows(OC, nrows);
    // fprop rows: out = x W^T + b (then gelu)
    VD ref, refq;
    VF got;
    VF out = get(d_out, (size_t)N * OC), pre = lcase.gelu == 1 ? get(d_pre, (size_t)N * OC) : VF();
    VD refpre, refpreq;
    VF gotpre;
    for (int n : rows) {
        for (int o = 0; o < OC; o++) {
            double s = 0.0, sq = 0.0;
            const float *xr = &x[(size_t)n * IC], *wr = &w[(size_t)o * IC], *xq = &dx_[(size_t)n * IC], *wq = &dw_[(size_t)o * IC];
            for (int i = 0; i < IC; i++) { sq += (double)xq[i] * wq[i]; s += (double)xr[i] * wr[i]; }
            sq = sq * s_xw + (lcase.bias ? b[o] : 0.0);
            s += lcase.bias ? b[o] : 0.0;
            if (lcase.gelu == 1) {
                refpreq.push_back(sq); refpre.push_back(s); gotpre.push_back(pre[(size_t)n * OC + o]);
                auto gelu = [](double v) { return 0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))); };
                sq = gelu(sq); s = gelu(s);
            }
            refq.push_back(sq); ref.push_back(s); got.push_back(out[(size_t)n * OC + o]);
        }
    }
    check_close(fmt("linear %s: fprop vs fp64 of the quantized operands", tagb), got, refq, TOL_FP8_GEMM);
    check_close(fmt("linear %s: fprop vs unquantized bf16 operands", tagb), got, ref, TOL_QUANT);
    if (lcase.gelu == 1) { check_close(fmt("linear %s: fprop pre-GELU output", tagb), gotpre, refpreq, TOL_FP8_GEMM); }
    // dgrad rows: dx = dy W (times gelu'(pre_in))
    VF dxo = get(d_dx, (size_t)N * IC);
    ref.clear(); refq.clear(); got.clear();
    for (int n : rows) {
        VD acc(IC, 0.0), accq(IC, 0.0);
        for (int o = 0; o < OC; o++) {
            double g = dy[(size_t)n * OC + o], gq = ddy[(size_t)n * OC + o];
            const float *wr = &w[(size_t)o * IC], *wq = &dw_[(size_t)o * IC];
            for (int i = 0; i < IC; i++) { acc[i] += g * wr[i]; accq[i] += gq * wq[i]; }
        }
        for (int i = 0; i < IC; i++) {
            double gg = 1.0;
            if (lcase.gelu == 2) {
                double v = pre_in[(size_t)n * IC + i], th = tanh(0.7978845608028654 * (v + 0.044715 * v * v * v));
                gg = 0.5 * (1.0 + th) + 0.5 * v * (1.0 - th * th) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * v * v);
            }
            ref.push_back(acc[i] * gg); refq.push_back(accq[i] * s_dyw * gg); got.push_back(dxo[(size_t)n * IC + i]);
        }
    }
    check_close(fmt("linear %s: dgrad vs fp64 of the quantized operands", tagb), got, refq, TOL_FP8_GEMM);
    check_close(fmt("linear %s: dgrad vs unquantized bf16 operands", tagb), got, ref, TOL_QUANT);
    // wgrad rows: dW = dW0 + dy^T x
    VF dwo = get(d_dw, (size_t)OC * IC);
    ref.clear(); refq.clear(); got.clear();
    for (int o : orows) {
        VD acc(IC, 0.0), accq(IC, 0.0);
        for (int n = 0; n < N; n++) {
            double g = dy[(size_t)n * OC + o], gq = ddy[(size_t)n * OC + o];
            const float *xr = &x[(size_t)n * IC], *xq = &dx_[(size_t)n * IC];
            for (int i = 0; i < IC; i++) { acc[i] += g * xr[i]; accq[i] += gq * xq[i]; }
        }
        for (int i = 0; i < IC; i++) {
            double w0 = dw0[(size_t)o * IC + i];
            refq.push_back(w0 + accq[i] * s_dyx); ref.push_back(w0 + acc[i]);
            got.push_back(dwo[(size_t)o * IC + i]);
        }
    }
    check_close(fmt("linear %s: wgrad (accumulated) vs fp64 of the quantized operands", tagb), got, refq, TOL_FP8_GEMM);
    check_close(fmt("linear %s: wgrad (accumulated) vs unquantized bf16 operands", tagb), got, ref, TOL_QUANT);
    if (lcase.bias) {
        VF dbo = get(d_db, OC);
        VD refb(OC);
        for (int o = 0; o < OC; o++) { double s = db0[o]; for (int n = 0; n < N; n++) { s += dy[(size_t)n * OC + o]; } refb[o] = s; }
        check_close(fmt("linear %s: dbias (bf16 column sums)", tagb), dbo, refb, TOL_BF16);
    }
    if (lcase.gelu == 1) {
        printf("     (%s: %ld forward GEMM(s) with GELU as a separate pass)\n", tagb, lc.unfused_gelu);
        if (!fused_gelu) { check_count(fmt("linear %s: unfused GELU path taken", tagb), lc.unfused_gelu != 1); }
    }
    linear_context_free(&lc);
    dev_free_all();
}

static void test_linear_fp8() {
    const LinearCase cases[] = {
        {"qkv", LINEAR_QKV, 512, 768, 2304, true, 0},        {"attproj", LINEAR_ATTPROJ, 512, 768, 768, true, 0},
        {"fc+gelu", LINEAR_FC, 512, 768, 3072, true, 1},     {"fcproj+dgelu", LINEAR_FCPROJ, 512, 3072, 768, true, 2},
        {"qkv", LINEAR_QKV, 4096, 768, 2304, true, 0},       {"fc+gelu", LINEAR_FC, 4096, 768, 3072, true, 1},
        {"fcproj+dgelu", LINEAR_FCPROJ, 4096, 3072, 768, true, 2},
        {"lmhead", LINEAR_LMHEAD, 512, 768, 50304, false, 0}, {"lmhead", LINEAR_LMHEAD, 4096, 768, 50304, false, 0},
    };
    LinearOptions hybrid = fp8_options();
    for (const LinearCase& c : cases) { test_linear_case(c, hybrid, 1); }
    // the other forward GELU path, and all-E4M3 gradients
    test_linear_case(cases[2], hybrid, 0);
    LinearOptions e4m3 = fp8_options();
    e4m3.hybrid = 0;
    test_linear_case(cases[0], e4m3, 1);
    test_linear_case(cases[7], e4m3, 1);
    // backward in chunks of rows (FP32 weight-gradient accumulator), the last chunk shorter
    test_linear_case(cases[7], hybrid, 1, 128);
    test_linear_case(cases[3], hybrid, 1, 176);
}

// Paths of linear_fp8.cuh that run BF16 must be gemm_bf16 exactly.
static void test_bf16_paths() {
    const int C = 64, L = 2, N = 128, Vp = 256;
    VF x = randn((size_t)N * 4 * C, 1.0), w = randn((size_t)Vp * 4 * C, 0.05), b = randn(Vp, 0.1);
    floatX *d_x = to_dev(x), *d_w = to_dev(w), *d_b = to_dev(b);
    floatX *d_o1 = dev_alloc<floatX>((size_t)N * Vp), *d_o2 = dev_alloc<floatX>((size_t)N * Vp);
    GemmContext g;
    gemm_context_init(&g);
    struct { const char* what; LinearKind kind; int layer, rows, IC, OC; int precision_bf16, lm_head_fp8; const char* bf16_layers; } cases[] = {
        {"--precision bf16", LINEAR_FC, 0, N, C, 4 * C, 1, 1, "none"},
        {"--lm-head bf16", LINEAR_LMHEAD, 0, N, C, Vp, 0, 0, "none"},
        {"--bf16-layers last:1 (layer 1)", LINEAR_QKV, 1, N, C, 3 * C, 0, 1, "last:1"},
        {"--bf16-layers 0 (layer 0)", LINEAR_FCPROJ, 0, N, 4 * C, C, 0, 1, "0"},
        {"rows not a multiple of 16 (sampling)", LINEAR_ATTPROJ, 0, 40, C, C, 0, 1, "none"},
    };
    for (auto& c : cases) {
        LinearOptions o = fp8_options();
        o.fp8 = !c.precision_bf16; o.lm_head_fp8 = c.lm_head_fp8; o.bf16_layers = c.bf16_layers;
        LinearContext lc;
        linear_context_init(&lc, &o, L);
        linear_step_begin(&lc);
        const floatX* bias = c.kind == LINEAR_LMHEAD ? NULL : d_b;
        linear_forward(&lc, c.kind, c.layer, d_o1, NULL, d_x, d_w, bias, c.rows, c.IC, c.OC, 0);
        gemm_bf16(&g, d_o2, d_x, d_w, bias, c.rows, c.OC, c.IC, 0, 1, 1.0f, 0.0f, 1, 0, 0, 0, GEMM_NO_GELU, NULL, 0);
        device_sync();
        size_t n = (size_t)c.rows * c.OC;
        std::vector<uint16_t> a1 = get_bits(d_o1, n), a2 = get_bits(d_o2, n);
        long diff = 0;
        for (size_t i = 0; i < n; i++) { diff += a1[i] != a2[i]; }
        check_count(fmt("bf16 path %s: bit-identical to gemm_bf16", c.what), diff, fmt("(precision name '%s')", linear_precision_name(&lc)));
        linear_context_free(&lc);
    }
    gemm_context_free(&g);
    dev_free_all();
}

// ------------------------------------------------------------------------------------------
// scaling state over steps

// Host replay of what linear_fp8.cuh does to the scaling state, for a forward of linear `id`.
struct HostScaling {
    Fp8Scaling sc;
    std::vector<float> blk;
    int hybrid, att0;
    void init(const LinearOptions& o, int NT, int first_att_tensor) {
        att0 = first_att_tensor;
        fp8_scaling_init(&sc, NT, o.scaling, o.amax_algo, o.amax_history, o.margin);
        blk.resize(fp8_block_floats(NT, o.amax_history));
        fp8_block_init(blk.data(), NT, o.amax_history);
        hybrid = o.hybrid;
    }
    void step_begin() {
        int NT = sc.num_tensors;
        for (int t = 0; t < NT; t++) {
            float fmax = fp8_tensor_is_grad(t, att0) && hybrid ? FP8_E5M2_MAX : FP8_E4M3_MAX;
            fp8_fold_tensor(blk.data(), NT, sc.history_len, t, fp8_fold_pos(&sc), fp8_fold_filled(&sc), sc.algo, fmax, sc.margin);
        }
        fp8_scaling_end_fold(&sc);
    }
    void cast(int t, float amax) {
        int NT = sc.num_tensors, H = sc.history_len;
        if (fp8_needs_own_amax(&sc, t)) {
            fp8_amax_cur(blk.data(), NT, H)[t] = amax;
            fp8_current_scale_tensor(blk.data(), NT, H, t, FP8_E4M3_MAX, sc.margin);
        } else {
            fp8_amax_step(blk.data())[t] = fp8_amax_max(fp8_amax_step(blk.data())[t], amax);
        }
        fp8_note_cast(&sc, t);
    }
};

static long block_diff(const LinearContext* lc, const HostScaling& h) {
    VF dev = get_f32(lc->sc_block, h.blk.size());
    long d = 0;
    for (size_t i = 0; i < dev.size(); i++) { d += fp8_float_bits(dev[i]) != fp8_float_bits(h.blk[i]); }
    return d;
}

// Steps of one QKV linear whose input's amax follows a chosen sequence (micro-batches in step 1,
// an all-zero input, a NaN); after each step the device's whole scaling block must equal the
// host replay. Halfway the state is saved and loaded into a second context, which must then
// follow bit for bit, outputs included.
static void test_scaling_steps(Fp8Recipe recipe, Fp8AmaxAlgo algo) {
    const int N = 64, C = 64, IC = C, OC = 3 * C, H = 4;
    LinearOptions o = fp8_options();
    o.scaling = recipe; o.amax_algo = algo; o.amax_history = H;
    LinearContext lc, lc2;
    linear_context_init(&lc, &o, 1);
    HostScaling hs;
    hs.init(o, lc.num_tensors, lc.att_tensor0);
    int id = fp8_linear_index(&lc, LINEAR_QKV, 0);
    int tx = fp8_tensor(id, FP8_ROLE_X), tw = fp8_tensor(id, FP8_ROLE_W);
    VF base = randn((size_t)N * IC, 0.3), w = randn((size_t)OC * IC, 0.02);
    for (float& v : base) { v = fmaxf(-0.9f, fminf(0.9f, v)); }
    base[5] = 1.0f;                                   // amax of base: exactly 1
    floatX *d_x = dev_alloc<floatX>((size_t)N * IC), *d_w = to_dev(w);
    floatX *d_o = dev_alloc<floatX>((size_t)N * OC), *d_o2 = dev_alloc<floatX>((size_t)N * OC);
    float wmax = host_amax(w);
    const float nanv = NAN;
    struct { float a[2]; int n; } steps[] = {{{2, 0.5f}, 2}, {{4, 3}, 2}, {{1}, 1}, {{0}, 1}, {{0}, 1}, {{0}, 1},
                                             {{nanv}, 1}, {{8}, 1}, {{8}, 1}, {{8}, 1}, {{1}, 1}, {{0.25f}, 1}};
    const int nsteps = (int)(sizeof(steps) / sizeof(steps[0])), save_at = 6;
    long bad = 0, bad2 = 0, out_diff = 0;
    std::vector<char> state;
    for (int s = 0; s < nsteps; s++) {
        if (s == save_at) {   // checkpoint between steps, as the trainer does
            device_sync();
            state.resize(linear_state_bytes(&lc));
            linear_state_save(&lc, state.data());
            linear_context_init(&lc2, &o, 1);
            linear_state_load(&lc2, state.data());
        }
        linear_step_begin(&lc);
        if (s >= save_at) { linear_step_begin(&lc2); }
        hs.step_begin();
        for (int m = 0; m < steps[s].n; m++) {
            float a = steps[s].a[m];
            VF x(base.size());
            for (size_t i = 0; i < x.size(); i++) { x[i] = isnan(a) ? (i == 7 ? NAN : base[i]) : round_bf16(base[i] * a); }
            put(d_x, x);
            linear_forward(&lc, LINEAR_QKV, 0, d_o, NULL, d_x, d_w, NULL, N, IC, OC, 0);
            if (m == 0) { hs.cast(tw, wmax); }        // weights: once per step
            hs.cast(tx, host_amax(x));
            if (s >= save_at) {
                linear_forward(&lc2, LINEAR_QKV, 0, d_o2, NULL, d_x, d_w, NULL, N, IC, OC, 0);
                device_sync();
                std::vector<uint16_t> o1 = get_bits(d_o, (size_t)N * OC), o2 = get_bits(d_o2, (size_t)N * OC);
                for (size_t i = 0; i < o1.size(); i++) { out_diff += o1[i] != o2[i]; }
            }
        }
        device_sync();
        long d = block_diff(&lc, hs);
        if (d) { printf("  step %d: %ld floats of the scaling state differ from the host replay\n", s, d); }
        bad += d;
        if (s >= save_at) { bad2 += block_diff(&lc2, hs); }
    }
    char tag[64];
    snprintf(tag, sizeof(tag), "%s%s, history %d", recipe == FP8_SCALING_DELAYED ? "delayed " : "current",
             recipe == FP8_SCALING_DELAYED ? (algo == FP8_AMAX_MAX ? "max" : "most_recent") : "", H);
    check_count(fmt("scaling %s: device state equals the host replay after each of %d steps", tag, nsteps), bad);
    check_count(fmt("scaling %s: state saved after step %d and loaded continues bit for bit", tag, save_at), bad2 + out_diff);
    // spot checks of the rules themselves (the replay could share a mistake with the device)
    VF sc = get_f32(fp8_scale(lc.sc_block, lc.num_tensors), lc.num_tensors);
    float want = recipe == FP8_SCALING_DELAYED ? (algo == FP8_AMAX_MAX ? 448.0f / 8.0f : 448.0f / 1.0f) : 448.0f / 0.25f;
    check_count(fmt("scaling %s: last step's input scale is %g", tag, want), sc[tx] != want, fmt("(got %g)", sc[tx]));
    linear_context_free(&lc);
    linear_context_free(&lc2);
    dev_free_all();
}

// Weight copies: re-cast when stale (step begin, a backward without the hook, the hook), not otherwise.
static void test_weight_cache() {
    const int N = 64, IC = 64, OC = 64;
    LinearOptions o = fp8_options();
    LinearContext lc, fresh;
    linear_context_init(&lc, &o, 1);
    VF x = randn((size_t)N * IC, 1.0), w1 = randn((size_t)OC * IC, 0.05), w2 = randn((size_t)OC * IC, 0.05), dy = randn((size_t)N * OC, 0.01);
    floatX *d_x = to_dev(x), *d_w = to_dev(w1), *d_dy = to_dev(dy), *d_dx = dev_alloc<floatX>((size_t)N * IC);
    floatX *d_dw = dev_alloc<floatX>((size_t)OC * IC), *d_o = dev_alloc<floatX>((size_t)N * OC);
    cudaCheck(cudaMemset(d_dw, 0, (size_t)OC * IC * 2));
    auto fwd = [&](LinearContext* c) {
        linear_forward(c, LINEAR_ATTPROJ, 0, d_o, NULL, d_x, d_w, NULL, N, IC, OC, 0);
        device_sync();
        return get_bits(d_o, (size_t)N * OC);
    };
    auto bwd = [&]() { linear_backward(&lc, LINEAR_ATTPROJ, 0, d_dx, d_dw, NULL, NULL, d_dy, d_x, NULL, d_w, N, IC, OC, 0); };
    linear_step_begin(&lc);
    std::vector<uint16_t> o1 = fwd(&lc);
    put(d_w, w2);
    check_count("weight cache: a second forward of the step reuses the copies", fwd(&lc) != o1);
    bwd();
    std::vector<uint16_t> o2 = fwd(&lc);
    linear_context_init(&fresh, &o, 1);
    linear_step_begin(&fresh);
    check_count("weight cache: without linear_weights_changed, a backward marks the weight stale", o2 != fwd(&fresh));
    linear_context_free(&fresh);
    linear_weights_changed(&lc);
    fwd(&lc);
    put(d_w, w1);
    bwd();
    check_count("weight cache: once linear_weights_changed is in use, backward leaves the copies", fwd(&lc) != o2);
    linear_weights_changed(&lc);
    check_count("weight cache: linear_weights_changed forces a re-cast", fwd(&lc) != o1);
    put(d_w, w2);
    linear_step_begin(&lc);
    check_count("weight cache: linear_step_begin forces a re-cast", fwd(&lc) == o1);
    linear_context_free(&lc);
    dev_free_all();
}

// A stats step: amax, scale, saturated and flushed fractions of the input, known by construction.
static void test_stats() {
    const int N = 64, IC = 64, OC = 64;
    LinearOptions o = fp8_options();
    o.stats_every = 2;
    LinearContext lc;
    linear_context_init(&lc, &o, 1);
    int id = fp8_linear_index(&lc, LINEAR_FC, 0), tx = fp8_tensor(id, FP8_ROLE_X);
    VF x = randn((size_t)N * IC, 0.2), w = randn((size_t)OC * IC, 0.05);
    for (float& v : x) { v = fmaxf(-0.9f, fminf(0.9f, v)); }
    x[0] = 1.0f;
    floatX *d_x = to_dev(x), *d_w = to_dev(w), *d_o = dev_alloc<floatX>((size_t)N * OC);
    linear_step_begin(&lc);   // step 1: scale 448 from the own amax 1
    linear_forward(&lc, LINEAR_FC, 0, d_o, NULL, d_x, d_w, NULL, N, IC, OC, 0);
    VF x2 = x;                // step 2 (a stats step): 4 values beyond the delayed range, 3 tiny ones
    x2[1] = 3.0f; x2[2] = -2.0f; x2[3] = 1.5f; x2[4] = 1.25f;
    x2[10] = 1e-6f; x2[11] = -2e-6f; x2[12] = 1e-3f;   // 1e-3 * 448 is representable: not flushed
    long zeros = 0;
    for (size_t i = 0; i < x2.size(); i++) { zeros += x2[i] == 0.0f; }
    put(d_x, x2);
    linear_step_begin(&lc);
    linear_forward(&lc, LINEAR_FC, 0, d_o, NULL, d_x, d_w, NULL, N, IC, OC, 0);
    device_sync();
    std::vector<Fp8TensorStats> st(lc.num_tensors);
    linear_fp8_stats(&lc, st.data());
    double n = (double)N * IC;
    long sat = 0, fl = 0;
    for (float v : x2) { sat += fabsf(v * 448.0f) > 448.0f; fl += v != 0.0f && (fp8_encode(v * 448.0f, FP8_E4M3) & 0x7F) == 0; }
    bool ok = st[tx].amax == 3.0f && st[tx].scale == 448.0f && st[tx].elements == n &&
              st[tx].saturated == sat / n && st[tx].flushed == fl / n && sat == 4 && fl >= 2;
    report(ok, fmt("stats: input amax %g scale %g saturated %ld/%g flushed %ld/%g (exact zeros %ld not counted)",
                   st[tx].amax, st[tx].scale, (long)llround(st[tx].saturated * n), n, (long)llround(st[tx].flushed * n), n, zeros),
           ok ? 0.0 : 1.0, 0.0);
    FILE* f = tmpfile();
    linear_stats_log(&lc, f);
    rewind(f);
    char line[512];
    int lines = 0, found = 0;
    while (fgets(line, sizeof(line), f)) { lines++; found += strstr(line, "\"fp8_tensor\":\"fc.0.x\"") != NULL; }
    fclose(f);
    check_count(fmt("stats: linear_stats_log wrote %d JSON lines (x and w of the one linear)", lines), !(lines == 2 && found == 1));
    linear_step_begin(&lc);   // step 3: not a stats step
    f = tmpfile();
    linear_stats_log(&lc, f);
    check_count("stats: nothing logged outside stats steps", ftell(f) != 0);
    fclose(f);
    linear_context_free(&lc);
    dev_free_all();
}

// ------------------------------------------------------------------------------------------
// whole model: gradients in FP8 against BF16

// Bound on the per-tensor gradient difference FP8 vs BF16 (small GPT-2 at init, one batch).
// Per value, round-to-nearest with m mantissa bits leaves an error uniform over +-ulp/2,
// ulp = 2^(e-m): over a binade of uniform mantissas ||q - x|| / ||x|| = 2^-m / sqrt(28), E4M3
// 2.4%, E5M2 4.7% (per-tensor scales put amax at the format's max, so the bulk of a tensor is
// clear of the subnormals). A product of two quantized operands adds their errors in
// quadrature (E4M3 x E4M3 3.3%, E5M2 x E4M3 5.3%), and a K-long dot product of uncorrelated
// terms keeps that relative error (signal and noise both grow as sqrt(K)). In backward the
// errors compound in quadrature along each tensor's path: dresidual carries the LM head's dgrad
// error (~5%), a block's dgrad adds ~5%, each wgrad another 5.3%, the forward's activations
// 3.3%: 6-10% for the weight gradients, more where a gradient is a sum that cancels (wpe: a
// sum over only B sequences). An FP64 CPU emulation of this test (every GEMM operand quantized
// as this layer does, same shapes and batch) gave rel L2 0.024-0.108 (worst wpe; e4m3 0.088),
// cosine >= 0.994, loss within 2e-5 relative; its BF16 run was within 0.4% of FP64.
// MODEL_REL 0.2 leaves ~2x margin and fails a gradient off by 25% in scale (a scale bug);
// MODEL_COS 0.98 is what a random error of 0.2 costs (1 - 1/sqrt(1 + 0.2^2)) and fails a
// wrong direction: in the emulation, replacing one row's targets (1/8 of the positions)
// moved every tensor by 0.27-0.43, cosine 0.90-0.96. Loss: the logits' ~3% error is ~0.01 per
// position; even if all positions erred alike the mean loss (~10.8) moves by < MODEL_LOSS.
#define MODEL_REL 0.2
#define MODEL_COS 0.98
#define MODEL_LOSS 1e-3   // relative

struct GradDiff { double rel[NUM_PARAM_TENSORS], cos[NUM_PARAM_TENSORS], max_rel, min_cos; int worst; };

// Per parameter tensor: ||g - ref|| / ||ref|| and cosine(g, ref); NaN/inf in g make rel NaN.
static GradDiff grad_diff(const GPT2& m, const VF& g, const VF& ref) {
    GradDiff d;
    d.max_rel = 0.0; d.min_cos = 1.0; d.worst = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        double e2 = 0.0, r2 = 0.0, g2 = 0.0, dot = 0.0;
        for (size_t k = m.param_offsets[i]; k < m.param_offsets[i] + m.param_sizes[i]; k++) {
            double a = g[k], b = ref[k];
            e2 += (a - b) * (a - b); r2 += b * b; g2 += a * a; dot += a * b;
        }
        d.rel[i] = sqrt(e2 / (r2 > 0.0 ? r2 : 1e-300));
        d.cos[i] = dot / sqrt((r2 > 0.0 ? r2 : 1e-300) * (g2 > 0.0 ? g2 : 1e-300));
        if (!(d.rel[i] <= d.max_rel)) { d.max_rel = d.rel[i]; d.worst = i; }   // NaN wins
        if (!(d.cos[i] >= d.min_cos)) { d.min_cos = d.cos[i]; }
    }
    return d;
}
static bool grads_close(const GradDiff& d) { return d.max_rel <= MODEL_REL && d.min_cos >= MODEL_COS; }

// One forward + backward of the model with a fresh linear context of options o (for FP8 the first
// step: every tensor scaled by its own amax). The loss gradient is dloss_mult / (B*T) per position.
// A one-GPU model of config cfg for micro-batches (B, T), planned for layer options o, with
// random weights from seed.
static void model_build(GPT2* m, const GPT2Config* cfg, const LinearOptions& o, int B, int T, uint64_t seed) {
    MultiGpu one_rank;
    memset(&one_rank, 0, sizeof(one_rank));
    one_rank.nranks = one_rank.local_nranks = 1;
    gpt2_build(m, cfg, &o, &one_rank, 0);
    gpt2_alloc_activations(m, B, T, 1);
    gpt2_init_random(m, seed);
}

static float model_grads(GPT2* m, const LinearOptions& o, const int* in, const int* tg, float dloss_mult, VF* g,
                         int att8_keep = 1) {
    linear_context_free(&m->lin);   // the model's linear layer, as gpt2_build and gpt2_alloc_activations set it up
    linear_context_init(&m->lin, &o, m->cfg.num_layers);
    m->lin.att8_keep = att8_keep;
    linear_reserve(&m->lin, m->B * m->T, m->cfg.channels, m->cfg.padded_vocab_size);
    linear_step_begin(&m->lin);
    gpt2_zero_grad(m);
    float loss = gpt2_forward(m, in, tg, m->B, m->T, dloss_mult / (m->B * m->T));
    gpt2_backward(m, m->B, m->T, 1);
    device_sync();
    *g = get(m->grads, m->num_params);
    return loss;
}

// Two steps (the second on delayed scales) of forward + backward with a fresh linear context
// whose LayerNorms write the FP8 inputs directly (fused & 1) or not, whose FCs write GELU's
// output in FP8 (fused & 2) or not, and whose attention backward writes the QKV gradient in FP8
// (fused & 4) or not: the gradients of the second step.
static float model_grads_second_step(GPT2* m, const LinearOptions& o, int fused, const int* in, const int* tg, VF* g) {
    linear_context_free(&m->lin);
    linear_context_init(&m->lin, &o, m->cfg.num_layers);
    m->lin.fused_inputs = fused & 1;
    m->lin.fused_gelu_out = (fused & 2) != 0;
    m->lin.fused_dy = (fused & 4) != 0;
    linear_reserve(&m->lin, m->B * m->T, m->cfg.channels, m->cfg.padded_vocab_size);
    float loss = 0.0f;
    for (int step = 0; step < 2; step++) {
        linear_step_begin(&m->lin);
        gpt2_zero_grad(m);
        loss = gpt2_forward(m, in, tg, m->B, m->T, 1.0f / (m->B * m->T));
        gpt2_backward(m, m->B, m->T, 1);
    }
    device_sync();
    *g = get(m->grads, m->num_params);
    return loss;
}

// The FC's GEMM writing GELU's output in E4M3 (gemm_fp8_out, what fc_gelu_out8 uses) against
// the BF16-output GEMM and the cast it replaces: the same pre-GELU aux bit for bit; each code that
// of e4m3(bf16 output * scale) or one step from it (the GEMM rounds FP32 once, the two-pass path
// twice), at most 5% one step off; amax the BF16 output's within its rounding (2^-8); and with a
// scale twice too large, saturation to +-448, no NaN code.
static void test_gemm_fp8_out() {
    const int M = 512, N = 1024, K = 256;
    Bytes hx((size_t)M * K), hw((size_t)N * K);
    for (auto& c : hx) { c = fp8_encode((float)rng_normal(&rng), FP8_E4M3); }
    for (auto& c : hw) { c = fp8_encode((float)rng_normal(&rng), FP8_E4M3); }
    uint8_t *x8 = bytes_to_dev(hx), *w8 = bytes_to_dev(hw), *q = dev_alloc<uint8_t>((size_t)M * N);
    floatX *bias = to_dev(randn(N, 0.5)), *out = dev_alloc<floatX>((size_t)M * N);
    floatX *aux_ref = dev_alloc<floatX>((size_t)M * N), *aux = dev_alloc<floatX>((size_t)M * N);
    float *sinv = dev_alloc<float>(4), *o8 = dev_alloc<float>(8);
    put_f32(sinv, 1.0f / 8);
    GemmContext g;
    gemm_context_init(&g);
    int ok = gemm_fp8(&g, out, x8, FP8_E4M3, sinv, w8, FP8_E4M3, sinv, bias, M, N, K, 0.0f, 1, GEMM_GELU_FORWARD, aux_ref, 0);
    VF ref = get(out, (size_t)M * N);
    float amax_ref = 0.0f;
    for (float v : ref) { amax_ref = fmaxf(amax_ref, fabsf(v)); }
    for (int sat = 0; sat < 2 && ok; sat++) {
        float scale = (sat ? 2.0f : 0.9f) * FP8_E4M3_MAX / amax_ref;
        put_f32(o8, scale);
        GemmOut8 q8 = {q, o8, o8 + 4};
        if (!gemm_fp8_out(&g, out, &q8, x8, FP8_E4M3, sinv, w8, FP8_E4M3, sinv, bias, M, N, K, 0.0f, 1, GEMM_GELU_FORWARD, aux, 0)) {
            report(false, "gemm_fp8_out: cuBLASLt runs the FP8 GEMM with GELU into E4M3", 1.0, 0.0);
            break;
        }
        Bytes got = get_bytes(q, (size_t)M * N);
        float amax = get_f32(o8 + 4, 1)[0];
        long off1 = 0, bad = 0, nan = 0, unsat = 0;
        for (size_t i = 0; i < got.size(); i++) {
            uint8_t want = fp8_encode(ref[i] * scale, FP8_E4M3);
            int d = abs((int)(got[i] & 0x7F) - (int)(want & 0x7F));
            bool same_sign = ((got[i] ^ want) & 0x80) == 0 || (got[i] & 0x7F) == 0 || (want & 0x7F) == 0;
            nan += (got[i] & 0x7F) == 0x7F;
            if (got[i] != want) { if (d == 1 && same_sign) { off1++; } else { bad++; } }
            unsat += fabsf(ref[i] * scale) > 1.1f * FP8_E4M3_MAX && (got[i] & 0x7F) != 0x7E;
        }
        const char* tag = sat ? "scale 2x too large" : "scale 0.9 of amax";
        check_count(fmt("gemm_fp8_out (%s): codes e4m3(bf16 gelu * scale) or one step off (%ld of %d one step off)", tag, off1, M * N),
                    bad + (off1 > (long)got.size() / 20));
        check_count(fmt("gemm_fp8_out (%s): no NaN code, values past 448 saturated", tag), nan + unsat);
        if (!sat) {
            check_count("gemm_fp8_out: pre-GELU aux = the BF16-output GEMM's, bit for bit",
                        count_diff(get_bits(aux, (size_t)M * N), get_bits(aux_ref, (size_t)M * N)));
            report(fabsf(amax - amax_ref) <= amax_ref / 256, fmt("gemm_fp8_out: amax %.5f = bf16 output's %.5f within its rounding", amax, amax_ref),
                   fabsf(amax - amax_ref) / amax_ref, 1.0 / 256);
        }
    }
    if (!ok) { report(false, "gemm_fp8: cuBLASLt runs the FP8 GEMM with the GELU epilogue", 1.0, 0.0); }
    gemm_context_free(&g);
    dev_free_all();
}

// Rows of T+1 tokens repeating a motif (period 2..9) over a 512-token alphabet, one token in 16
// from the whole vocabulary; inputs the first T, targets the next token (learnable, not uniform).
static void motif_batch(int* in, int* tg, int B, int T, int V, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    for (int b = 0; b < B; b++) {
        int P = 2 + (int)(rng_u64(&r) % 8), motif[9], prev = 0;
        for (int k = 0; k < P; k++) { motif[k] = (int)(rng_u64(&r) % 512); }
        for (int t = 0; t <= T; t++) {
            int tok = t % 16 == 15 ? (int)(rng_u64(&r) % V) : motif[t % P];
            if (t > 0) { in[b * T + t - 1] = prev; tg[b * T + t - 1] = tok; }
            prev = tok;
        }
    }
}

// GPT-2 (L=4, C=256, NH=4, real vocabulary, T=256, B=8) at init on one batch: gradients of every
// parameter tensor in FP8 (hybrid, e4m3) within MODEL_REL / MODEL_COS of BF16's, loss within
// MODEL_LOSS. Controls that the comparison must flag: a BF16 gradient scaled by 1.25, and the
// BF16 gradient of the batch with one row's targets replaced.
static void test_model_grads() {
    const int B = 8, T = 256;
    GPT2Config cfg = {T, 50257, 50304, 4, 4, 256};   // maxT, V, Vp, L, NH, C
    std::vector<int> in(B * T), tg(B * T), tg2;
    motif_batch(in.data(), tg.data(), B, T, cfg.vocab_size, 42);
    tg2 = tg;
    for (int t = 0; t < T; t++) { tg2[3 * T + t] = (tg[3 * T + t] + 1 + t) % cfg.vocab_size; }
    LinearOptions bf16 = fp8_options(), hyb = fp8_options(), hyb_cur = fp8_options(), e4m3 = fp8_options(), hyb_att = fp8_options();
    bf16.fp8 = 0;
    hyb_cur.scaling = FP8_SCALING_CURRENT;
    e4m3.hybrid = 0;
    hyb_att.att_fp8 = 1;
    GPT2 m;
    model_build(&m, &cfg, bf16, B, T, 1234);
    VF g_ref, g_hyb, g_cur, g_e4, g_att, g_scaled, g_tg2;
    float l_ref = model_grads(&m, bf16, in.data(), tg.data(), 1.0f, &g_ref);
    float l_hyb = model_grads(&m, hyb, in.data(), tg.data(), 1.0f, &g_hyb);
    float l_cur = model_grads(&m, hyb_cur, in.data(), tg.data(), 1.0f, &g_cur);
    float l_e4 = model_grads(&m, e4m3, in.data(), tg.data(), 1.0f, &g_e4);
    float l_att = model_grads(&m, hyb_att, in.data(), tg.data(), 1.0f, &g_att);
    int att_kept = gpt2_attention_keeps_qkv(&m, 0, B, T);
    model_grads(&m, bf16, in.data(), tg.data(), 1.25f, &g_scaled);
    model_grads(&m, bf16, in.data(), tg2.data(), 1.0f, &g_tg2);
    check_count("model fp8 hybrid: delayed scaling's first step gives current scaling's gradients bit for bit",
                count_diff(g_hyb, g_cur) + (l_hyb != l_cur));
    VF g_att_recast;
    float l_att_recast = model_grads(&m, hyb_att, in.data(), tg.data(), 1.0f, &g_att_recast, 0);
    check_count("model fp8 attention: Q, K, V's copies kept from forward = re-cast by the backward, gradients and loss bit for bit",
                count_diff(g_att, g_att_recast) + (l_att != l_att_recast) + !att_kept);
    struct { const char* name; GradDiff d; float loss; } runs[] = {
        {"fp8 hybrid", grad_diff(m, g_hyb, g_ref), l_hyb}, {"fp8 e4m3", grad_diff(m, g_e4, g_ref), l_e4},
        {"fp8 hybrid, fp8 att", grad_diff(m, g_att, g_ref), l_att}, {"control x1.25", grad_diff(m, g_scaled, g_ref), l_ref}, {"control targets", grad_diff(m, g_tg2, g_ref), l_ref}};
    printf("     model gradients vs bf16 (loss %.5f), per tensor: rel L2 / 1 - cosine\n     %-9s", l_ref, "tensor");
    for (auto& r : runs) { printf(" | %-21s", r.name); }
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        printf("\n     %-9s", PARAM_NAMES[i]);
        for (auto& r : runs) { printf(" | %9.3e %11.3e", r.d.rel[i], 1.0 - r.d.cos[i]); }
    }
    printf("\n");
    for (int k = 0; k < 3; k++) {
        const GradDiff& d = runs[k].d;
        double dl = fabs((double)runs[k].loss - l_ref) / l_ref;
        report(grads_close(d) && dl <= MODEL_LOSS,
               fmt("model grads %s vs bf16: max rel L2 over tensors (worst %s); min cosine %.5f >= %.2f", runs[k].name,
                   PARAM_NAMES[d.worst], d.min_cos, MODEL_COS),
               d.max_rel, MODEL_REL, fmt("(loss %.5f vs %.5f: rel %.1e, tol %.0e)", runs[k].loss, l_ref, dl, MODEL_LOSS));
    }
    for (int k = 3; k < 5; k++) {
        const GradDiff& d = runs[k].d;
        report(!grads_close(d), fmt("model grads: the comparison flags %s (max rel L2 %.3f, worst %s; min cosine %.5f)",
                                    runs[k].name, d.max_rel, PARAM_NAMES[d.worst], d.min_cos), grads_close(d) ? 1.0 : 0.0, 0.0);
    }
    linear_context_free(&m.lin);   // the model's own buffers stay allocated (~0.5 GB): there is no gpt2_free
}

// The model planned for FP8 (no BF16 LayerNorm outputs kept, the LM head's backward in chunks):
// on delayed scales, LayerNorms writing FP8 directly give the gradients and loss of the separate
// casts bit for bit; and those gradients are within the FP8 bound of BF16's.
static void test_model_fused_inputs() {
    const int B = 8, T = 256;
    GPT2Config cfg = {T, 50257, 50304, 4, 4, 256};
    std::vector<int> in(B * T), tg(B * T);
    motif_batch(in.data(), tg.data(), B, T, cfg.vocab_size, 43);
    LinearOptions hyb = fp8_options(), bf16 = fp8_options();
    bf16.fp8 = 0;
    GPT2 m;
    model_build(&m, &cfg, hyb, B, T, 4321);
    check_count("model planned for fp8: the LayerNorm outputs share one transient slot, the LM head runs in chunks",
                (m.slot_ln1[3] != 0) + (m.slot_ln2[3] != 0) + !m.inputs_dropped +
                !(fp8_chunk_rows(&m.lin, B * T, cfg.channels, cfg.padded_vocab_size) < B * T));
    VF g_fused, g_cast, g_ref;
    float l_fused = model_grads_second_step(&m, hyb, 1, in.data(), tg.data(), &g_fused);
    float l_cast = model_grads_second_step(&m, hyb, 0, in.data(), tg.data(), &g_cast);
    GPT2 mb;   // BF16 needs its LayerNorm outputs kept: a model planned for BF16, same weights
    model_build(&mb, &cfg, bf16, B, T, 4321);
    float l_ref = model_grads_second_step(&mb, bf16, 1, in.data(), tg.data(), &g_ref);
    linear_context_free(&mb.lin);
    check_count(fmt("model fp8, second step: fused LayerNorm FP8 outputs = separate casts, gradients and loss (%.5f) bit for bit", l_fused),
                count_diff(g_fused, g_cast) + (l_fused != l_cast));
    GradDiff d = grad_diff(m, g_fused, g_ref);
    double dl = fabs((double)l_fused - l_ref) / l_ref;
    report(grads_close(d) && dl <= MODEL_LOSS,
           fmt("model grads fp8 (second step, fused inputs) vs bf16: max rel L2 (worst %s); min cosine %.5f >= %.2f",
               PARAM_NAMES[d.worst], d.min_cos, MODEL_COS), d.max_rel, MODEL_REL, fmt("(loss rel %.1e)", dl));
    // The FCs' GEMMs writing GELU's output in FP8 (second step only: the first has no scale ahead).
    // ~1.5% of the projection's input codes move one E4M3 step (test_gemm_fp8_out); downstream,
    // the backward's own FP8 roundings then fall differently, so the gradients move by up to
    // FP8's own noise: bound, that distance of FP8 from BF16 (d.max_rel); the loss within 1e-3.
    VF g_gout;
    float l_gout = model_grads_second_step(&m, hyb, 3, in.data(), tg.data(), &g_gout);
    check_count(fmt("model fp8, second step: each FC's GEMM wrote GELU's output in FP8 (%ld of %d)", m.lin.gelu_out8, cfg.num_layers),
                m.lin.gelu_out8 != cfg.num_layers);
    // Attention's backward writing the QKV gradient in FP8, with its transpose and the bias sums
    // (second step): the codes are the cast's, so every gradient but the QKV bias is bit for bit;
    // that one sums the same values in another order (BF16-rounded: within 1e-2). With FP8
    // attention too, whose copies then sit after that gradient in the arena.
    for (int att = 0; att < 2; att++) {
        LinearOptions o = hyb;
        o.att_fp8 = att;
        VF g_dy, g_ref_dy;
        float l_ref_dy = att ? model_grads_second_step(&m, o, 1, in.data(), tg.data(), &g_ref_dy) : l_fused;
        if (!att) { g_ref_dy = g_fused; }
        float l_dy = model_grads_second_step(&m, o, 5, in.data(), tg.data(), &g_dy);
        long other = 0;
        for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
            if (i == P_QKVB) { continue; }
            size_t o0 = m.param_offsets[i];
            for (size_t k = 0; k < m.param_sizes[i]; k++) { other += fp8_float_bits(g_dy[o0 + k]) != fp8_float_bits(g_ref_dy[o0 + k]); }
        }
        GradDiff dd = grad_diff(m, g_dy, g_ref_dy);
        check_count(fmt("model fp8%s, second step: QKV gradient in FP8 from attention's backward: gradients but the QKV bias, and loss, bit for bit",
                        att ? " (fp8 attention)" : ""), other + (l_dy != l_ref_dy));
        report(dd.rel[P_QKVB] <= 1e-2, fmt("model fp8%s: QKV bias gradient from attention's sums vs the cast's", att ? " (fp8 attention)" : ""),
               dd.rel[P_QKVB], 1e-2);
    }
    GradDiff dg = grad_diff(m, g_gout, g_fused);
    report(dg.max_rel <= d.max_rel && fabs((double)l_gout - l_fused) <= 1e-3 * l_fused,
           fmt("model fp8, FP8 GELU output vs cast: max rel L2 of the gradients (worst %s) within FP8's from BF16; loss %.5f vs %.5f",
               PARAM_NAMES[dg.worst], l_gout, l_fused), dg.max_rel, d.max_rel);
    linear_context_free(&m.lin);
}

// ------------------------------------------------------------------------------------------
// timings

// The transposed casts of a d12 step (B=64, T=1024), each with what is fused into it, in GB/s
// of the bytes each must move; and the dgrad GEMM of the FC projection with cuBLASLt's FP8 DGELU
// epilogue against the plain GEMM plus GELU' fused into the next cast (why the layer does not
// use the epilogue).
static void run_cast_timing() {
    const int N = 65536, C = 768, V = 50257, Vp = 50304, LM_ROWS = 4352;
    size_t big = (size_t)N * 4 * C;
    floatX *in = dev_alloc<floatX>(std::max(big, (size_t)LM_ROWS * Vp)), *aux = dev_alloc<floatX>(big);
    uint8_t *o = dev_alloc<uint8_t>(std::max(big, (size_t)LM_ROWS * Vp)), *ot = dev_alloc<uint8_t>(std::max(big, (size_t)LM_ROWS * Vp));
    float *scale = dev_alloc<float>(1), *amax = dev_alloc<float>(1), *part = dev_alloc<float>((size_t)colsum_num_chunks(N) * 4 * C);
    float* lse = dev_alloc<float>(LM_ROWS);
    int* tgt = dev_alloc<int>(LM_ROWS);
    cudaCheck(cudaMemset(in, 0x3C, std::max(big, (size_t)LM_ROWS * Vp) * 2)); cudaCheck(cudaMemset(aux, 0x3C, big * 2));
    cudaCheck(cudaMemset(lse, 0, LM_ROWS * 4)); cudaCheck(cudaMemset(tgt, 0, LM_ROWS * 4));
    put_f32(scale, 1.0f);
    SoftmaxGrad sg = {lse, tgt, 1.0f / N, V};
    printf("\nTransposed casts of a d12 step (B=64, T=1024; median of 30):\n");
    auto row = [&](const char* what, int R, int Cc, double bytes_per_elem, auto fn) {
        float ms = time_ms(fn);
        printf("  %-44s (%6d,%6d) %8.3f ms %8.1f GB/s\n", what, R, Cc, ms, bytes_per_elem * R * Cc / ms / 1e6);
    };
    row("plain cast + transpose (bf16 -> 2 x fp8)", N, 3 * C, 4.0,
        [&] { cast_transpose_to_fp8(o, ot, in, N, 3 * C, FP8_E5M2, scale, amax, NULL, NULL, CAST_PLAIN, NULL, NULL, 0); });
    row("+ bias column sums (qkv dy)", N, 3 * C, 4.0,
        [&] { cast_transpose_to_fp8(o, ot, in, N, 3 * C, FP8_E5M2, scale, amax, NULL, part, CAST_PLAIN, NULL, NULL, 0); });
    row("+ GELU' and column sums (fc dy)", N, 4 * C, 6.0,
        [&] { cast_transpose_to_fp8(o, ot, in, N, 4 * C, FP8_E5M2, scale, amax, NULL, part, CAST_DGELU, aux, NULL, 0); });
    row("GELU, transposed only (fcproj x^T)", N, 4 * C, 3.0,
        [&] { cast_transpose_to_fp8(NULL, ot, in, N, 4 * C, FP8_E4M3, scale, NULL, NULL, NULL, CAST_GELU, NULL, NULL, 0); });
    row("softmax gradient from logits (LM head chunk)", LM_ROWS, Vp, 4.0,
        [&] { cast_transpose_to_fp8(o, ot, in, LM_ROWS, Vp, FP8_E5M2, scale, amax, NULL, NULL, CAST_SOFTMAX_GRAD, NULL, &sg, 0); });
    row("fp8 transpose (kept x8 -> x^T8)", N, C, 2.0, [&] { transpose_fp8(ot, o, N, C, 0); });
    // the FC projection's dgrad: dx (N,4C) = dy (N,C) @ W (C,4C), GELU' with pre (N,4C)
    GemmContext g;
    gemm_context_init(&g);
    uint8_t *dy8 = dev_alloc<uint8_t>((size_t)N * C), *wt8 = dev_alloc<uint8_t>((size_t)4 * C * C);
    cudaCheck(cudaMemset(dy8, 0x38, (size_t)N * C)); cudaCheck(cudaMemset(wt8, 0x38, (size_t)4 * C * C));
    float* one = dev_alloc<float>(1);
    put_f32(one, 1.0f);
    float t_epi = -1.0f;
    if (gemm_fp8(&g, in, dy8, FP8_E5M2, one, wt8, FP8_E4M3, one, NULL, N, 4 * C, C, 0.0f, 0, GEMM_GELU_BACKWARD, aux, 0)) {
        t_epi = time_ms([&] { gemm_fp8(&g, in, dy8, FP8_E5M2, one, wt8, FP8_E4M3, one, NULL, N, 4 * C, C, 0.0f, 0, GEMM_GELU_BACKWARD, aux, 0); });
    }
    float t_plain = time_ms([&] { gemm_fp8(&g, in, dy8, FP8_E5M2, one, wt8, FP8_E4M3, one, NULL, N, 4 * C, C, 0.0f, 0, GEMM_NO_GELU, NULL, 0); });
    double tf = 2.0 * N * 4 * C * C / 1e9;
    printf("  fcproj dgrad (%d,%d,%d): FP8 GEMM with cuBLASLt's DGELU epilogue %.3f ms (%.0f TFLOP/s); plain %.3f ms (%.0f TFLOP/s)\n",
           N, 4 * C, C, t_epi, t_epi > 0 ? tf / t_epi : 0.0, t_plain, tf / t_plain);
    gemm_context_free(&g);
    dev_free_all();
}

static void run_timing() {
    const int M = 16384;
    struct { const char* model; int C; } models[2] = {{"d12", 768}, {"d48", 1600}};
    const int Vp = 50304;
    printf("\nFP8 vs BF16 GEMMs at M=%d tokens (median of 30, ms). gemm: the three GEMMs alone on prepared\n"
           "operands; layer: linear_forward + linear_backward, casts and bias gradient included.\n", M);
    printf("%-4s %-8s %13s | %8s %8s %8s | %8s %8s %8s | %7s | %9s %9s %7s\n", "", "linear", "IC->OC", "bf16 fwd",
           "dgrad", "wgrad", "fp8 fwd", "dgrad", "wgrad", "speedup", "bf16 layer", "fp8 layer", "speedup");
    for (auto& md : models) {
        int C = md.C;
        struct { const char* name; LinearKind kind; int IC, OC; } lin[5] = {
            {"qkv", LINEAR_QKV, C, 3 * C}, {"attproj", LINEAR_ATTPROJ, C, C}, {"fc", LINEAR_FC, C, 4 * C},
            {"fcproj", LINEAR_FCPROJ, 4 * C, C}, {"lmhead", LINEAR_LMHEAD, C, Vp}};
        double tot_bf16 = 0, tot_fp8 = 0;
        for (auto& L : lin) {
            int IC = L.IC, OC = L.OC;
            floatX *x = dev_alloc<floatX>((size_t)M * IC), *w = dev_alloc<floatX>((size_t)OC * IC), *b = dev_alloc<floatX>(OC);
            floatX *out = dev_alloc<floatX>((size_t)M * OC), *dy = dev_alloc<floatX>((size_t)M * OC);
            floatX *dx = dev_alloc<floatX>((size_t)M * IC), *dw = dev_alloc<floatX>((size_t)OC * IC), *db = dev_alloc<floatX>(OC);
            float* scratch = dev_alloc<float>((size_t)colsum_num_chunks(M) * OC);
            // values do not matter for timing, only that they are finite: bf16 0x3C3C is about 0.0115
            cudaCheck(cudaMemset(x, 0x3C, (size_t)M * IC * 2)); cudaCheck(cudaMemset(dy, 0x3C, (size_t)M * OC * 2));
            cudaCheck(cudaMemset(w, 0x3C, (size_t)OC * IC * 2)); cudaCheck(cudaMemset(dw, 0x3C, (size_t)OC * IC * 2));
            cudaCheck(cudaMemset(b, 0x3C, (size_t)OC * 2)); cudaCheck(cudaMemset(db, 0x3C, (size_t)OC * 2));
            LinearOptions ob = fp8_options(), of = fp8_options();
            ob.fp8 = 0;
            LinearContext lb, lf;
            linear_context_init(&lb, &ob, 1);
            linear_context_init(&lf, &of, 1);
            linear_reserve(&lf, M, C, Vp);
            const floatX* bias = L.kind == LINEAR_LMHEAD ? NULL : b;
            floatX* dbias = L.kind == LINEAR_LMHEAD ? NULL : db;
            GemmContext* g = &lf.gemm;
            float tb_f = time_ms([&] { gemm_bf16(g, out, x, w, bias, M, OC, IC, 0, 1, 1.0f, 0.0f, 1, 0, 0, 0, GEMM_NO_GELU, NULL, 0); });
            float tb_d = time_ms([&] { gemm_bf16(g, dx, dy, w, NULL, M, IC, OC, 0, 0, 1.0f, 0.0f, 1, 0, 0, 0, GEMM_NO_GELU, NULL, 0); });
            float tb_w = time_ms([&] { gemm_bf16(g, dw, dy, x, NULL, OC, IC, M, 1, 0, 1.0f, 1.0f, 1, 0, 0, 0, GEMM_NO_GELU, NULL, 0); });
            // prepared fp8 operands: one layer call fills the copies and the scales
            linear_step_begin(&lf);
            linear_forward(&lf, L.kind, 0, out, NULL, x, w, bias, M, IC, OC, 0);
            linear_backward(&lf, L.kind, 0, dx, dw, dbias, scratch, dy, x, NULL, w, M, IC, OC, 0);
            int id = fp8_linear_index(&lf, L.kind, 0);
            const float* sx = fp8_scale_inv_at(lf.sc_block, lf.num_tensors, fp8_tensor(id, FP8_ROLE_X));
            const float* sw = fp8_scale_inv_at(lf.sc_block, lf.num_tensors, fp8_tensor(id, FP8_ROLE_W));
            const float* sdy = fp8_scale_inv_at(lf.sc_block, lf.num_tensors, fp8_tensor(id, FP8_ROLE_DY));
            const Fp8Weight* fw = &lf.weights[id];
            // any FP8 data of the right shapes serves as operands (the LM head's backward runs in
            // chunks: its arena holds less than (M,Vp)); 0x38 is 1.0 in E4M3, 2^-7 in E5M2
            uint8_t *dy8 = dev_alloc<uint8_t>((size_t)M * OC), *dyt8 = dev_alloc<uint8_t>((size_t)M * OC);
            uint8_t *xt8 = dev_alloc<uint8_t>((size_t)M * IC), *x8 = xt8, *wt8 = dev_alloc<uint8_t>((size_t)OC * IC);
            transpose_fp8(wt8, fw->w, OC, IC, 0);
            cudaCheck(cudaMemset(dy8, 0x38, (size_t)M * OC));
            cudaCheck(cudaMemset(dyt8, 0x38, (size_t)M * OC));
            cudaCheck(cudaMemset(xt8, 0x38, (size_t)M * IC));
            float tf_f = time_ms([&] { gemm_fp8(g, out, x8, FP8_E4M3, sx, fw->w, FP8_E4M3, sw, bias, M, OC, IC, 0.0f, 1, GEMM_NO_GELU, NULL, 0); });
            float tf_d = time_ms([&] { gemm_fp8(g, dx, dy8, FP8_E5M2, sdy, wt8, FP8_E4M3, sw, NULL, M, IC, OC, 0.0f, 0, GEMM_NO_GELU, NULL, 0); });
            float tf_w = time_ms([&] { gemm_fp8(g, dw, dyt8, FP8_E5M2, sdy, xt8, FP8_E4M3, sx, NULL, OC, IC, M, 1.0f, 0, GEMM_NO_GELU, NULL, 0); });
            float lay_b = time_ms([&] {
                linear_forward(&lb, L.kind, 0, out, NULL, x, w, bias, M, IC, OC, 0);
                linear_backward(&lb, L.kind, 0, dx, dw, dbias, scratch, dy, x, NULL, w, M, IC, OC, 0);
            });
            linear_weights_changed(&lf);   // from here on backward keeps the weight copies: once per step
            float lay_f = time_ms([&] {
                linear_forward(&lf, L.kind, 0, out, NULL, x, w, bias, M, IC, OC, 0);
                linear_backward(&lf, L.kind, 0, dx, dw, dbias, scratch, dy, x, NULL, w, M, IC, OC, 0);
            });
            float sb = tb_f + tb_d + tb_w, sf = tf_f + tf_d + tf_w;
            tot_bf16 += lay_b; tot_fp8 += lay_f;
            printf("%-4s %-8s %6d->%-6d | %8.3f %8.3f %8.3f | %8.3f %8.3f %8.3f | %6.2fx | %9.3f %9.3f %6.2fx\n", md.model,
                   L.name, IC, OC, tb_f, tb_d, tb_w, tf_f, tf_d, tf_w, sb / sf, lay_b, lay_f, lay_b / lay_f);
            linear_context_free(&lb);
            linear_context_free(&lf);
            dev_free_all();
        }
        printf("%-4s all five linears, layer calls: bf16 %.3f ms, fp8 %.3f ms, %.2fx\n", md.model, tot_bf16, tot_fp8, tot_bf16 / tot_fp8);
    }
}

int main(int argc, char** argv) {
    bool timing = !(argc > 1 && strcmp(argv[1], "--no-timing") == 0);
    cudaDeviceProp prop;
    if (!gpu_found("test_fp8", &prop)) { return 77; }
    if (prop.major < 9) {
        printf("test_fp8: FP8 GEMMs need compute capability 9.0 (this GPU is %d.%d), skipped\n", prop.major, prop.minor);
        return 77;
    }
    rng_seed(&rng, 0xf8f8f8f8u);
    test_cast_all_bf16();
    test_cast_shapes();
    test_bf16_paths();
    test_weight_cache();
    test_layernorm_fp8_out();
    test_cast_colsum_gelu();
    test_backward_mlp_fused();
    test_softmax_grad_cast();
    test_stats();
    test_scaling_steps(FP8_SCALING_DELAYED, FP8_AMAX_MAX);
    test_scaling_steps(FP8_SCALING_DELAYED, FP8_AMAX_MOST_RECENT);
    test_scaling_steps(FP8_SCALING_CURRENT, FP8_AMAX_MAX);
    test_linear_fp8();
    test_model_grads();
    test_model_fused_inputs();
    test_gemm_fp8_out();
    if (timing) { run_cast_timing(); run_timing(); }
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed == 0 ? 0 : 1;
}
