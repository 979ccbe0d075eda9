// GPU tests of the block-scaled linear layer (llmc/linear_mx.cuh through llmc/linear_fp8.cuh):
// fprop, dgrad and wgrad (accumulated) of one linear at GPT-2 shapes, GELU epilogues included.
//  - MXFP8: the two GEMM paths (dequantized to BF16 + cuBLASLt, and mx_gemm_native: the wgmma
//    kernel on Hopper, cuBLASLt's block-scaled GEMM on Blackwell) take the same quantized
//    operands (dev/test_mx checks the casts bit for bit) and must agree within FP32
//    accumulation and BF16 output rounding: relative L2 < 1e-2 (seen ~2e-3, the output's BF16
//    rounding); NVFP4's two paths (native: Blackwell only) are compared the same way in
//    dev/test_mx_blackwell_gpu --gemm;
//  - every mode against the unquantized BF16 linear: the error the formats predict, within a
//    bound and above a floor (a mode that quantized nothing would fail the floor). E4M3 operands
//    give ~3-4% per product (E5M2 gradients ~5-7%); E2M1 with per-16 scales ~8-10% per value, so
//    ~12-18% per product with stochastic rounding: MXFP8 in (1e-2, 0.12), NVFP4 in (3e-2, 0.35);
//  - NVFP4's wgrad runs through the random Hadamard transform, which must cancel: without it the
//    wgrad would be a different (wrong) product, far outside the bound.
// Storage (issue 7's packed storage), per mode and path (mxfp8 dequant, mxfp8 native, nvfp4):
//  - linear_keeps_input is 1 and linear_backward_reads_input 0 for the linears whose input a
//    LayerNorm makes (qkv, fc, a quantized LM head); 0 and 1 for the projections, and for a
//    shape the block-scaled path does not take;
//  - set up as the model does it (linear_reserve), a forward and backward allocate nothing; the
//    forward draws no seed, the backward one per gradient quantization (NVFP4: 2);
//  - the kept x^T (codes, scales, tensor scale) and the weight's codes (NVFP4's kept packed
//    tiles; MXFP8's rows, quantized per call into the arena: none kept) equal llmc/mx.h's
//    quantization of the BF16 values;
//  - the input is overwritten with NaNs between forward and backward when the layer keeps it
//    (the model reuses that buffer), and out, pre-GELU, dinp and dW must still equal, bit for
//    bit, a reference computed the old way: every operand quantized from its BF16 tensor by
//    itself (x^T from the input, in backward; W with no cached dequantization), with the seeds
//    the layer used (the RHT seed its forward picked, its counter's SR seeds). A self-check
//    makes sure another RHT seed would have been caught.
// Prints `PASS|FAIL name ...` and ends with `N passed, N failed`; exit 77 without a GPU.
#include "../llmc/linear_fp8.cuh"
#include "test_util.cuh"

struct Outs { VF out, pre, dinp, dw; };
struct Case { const char* name; LinearKind kind; int N, IC, OC; bool gelu; };
static const int MODEL_C = 768, MODEL_VP = 50304;   // the GPT-2 (d12) widths of the cases

// one forward and backward of linear (kind) at (N, IC, OC) in the given mode
static Outs run_linear(const LinearOptions& opt, LinearKind kind, int N, int IC, int OC, bool gelu, const VF& x, const VF& w,
                       const VF& dy, const VF& pre_in) {
    LinearContext lc;
    linear_context_init(&lc, &opt, 1);
    if (opt.mx) { lc.opt.lm_head_fp8 = 1; lc.use_fp8[4] = 1; }   // quantize the LM head here too
    floatX *dx = to_dev(x), *dw_in = to_dev(w), *ddy = to_dev(dy);
    floatX* out = dev_alloc<floatX>((size_t)N * OC);
    floatX* pre = dev_alloc<floatX>((size_t)N * OC);
    floatX* dinp = dev_alloc<floatX>((size_t)N * IC);
    floatX* dwt = to_dev(VF((size_t)OC * IC, 0.0f));
    floatX* pre_b = gelu ? to_dev(pre_in) : NULL;   // the input x came out of a GELU of pre_b
    float* scratch = dev_alloc<float>((size_t)colsum_num_chunks(N) * OC);
    linear_weights_changed(&lc);
    linear_forward(&lc, kind, 0, out, gelu ? pre : NULL, dx, dw_in, NULL, N, IC, OC, 0);
    linear_backward(&lc, kind, 0, dinp, dwt, NULL, scratch, ddy, dx, pre_b, dw_in, N, IC, OC, 0);
    device_sync();
    Outs o = {get(out, (size_t)N * OC), gelu ? get(pre, (size_t)N * OC) : VF(), get(dinp, (size_t)N * IC), get(dwt, (size_t)OC * IC)};
    linear_context_free(&lc);
    return o;
}

static VD to_vd(const VF& v) { return VD(v.begin(), v.end()); }

static double rel(const VF& a, const VF& b) { long nf = 0; double e = rel_l2(a, to_vd(b), &nf); return nf ? 1e30 : e; }

// ------------------------------------------------------------------------------------------
// kept inputs and packed storage

struct OutBits { Bits out, pre, dinp, dw; };

static const char* mode_tag(const LinearOptions& o) { return o.mx == MX_NVFP4 ? "nvfp4" : o.mx_native ? "mxfp8 native" : "mxfp8 dequant"; }

static long bits_diff(const OutBits& a, const OutBits& b) {
    return count_diff(a.out, b.out) + count_diff(a.pre, b.pre) + count_diff(a.dinp, b.dinp) + count_diff(a.dw, b.dw);
}

static VF transposed(const VF& a, int R, int C) {   // (C,R) of (R,C)
    VF t(a.size());
    for (int r = 0; r < R; r++) { for (int c = 0; c < C; c++) { t[(size_t)c * R + r] = a[(size_t)r * C + c]; } }
    return t;
}

// Quantized codes (one per byte) and scales, from the device (the layout of mx_packed_bytes at p)
// or from llmc/mx.h on the host.
struct Quant { std::vector<uint8_t> q, s; float st; };

static Quant device_quant(const MxLinear* mx, const uint8_t* p, long n, long nscales, float st) {
    std::vector<uint8_t> raw(mx->mode == MX_NVFP4 ? n / 2 : n);
    Quant h = {std::vector<uint8_t>(n), std::vector<uint8_t>(nscales), st};
    cudaCheck(cudaMemcpy(raw.data(), p, raw.size(), cudaMemcpyDeviceToHost));
    cudaCheck(cudaMemcpy(h.s.data(), p + mx_codes_bytes(mx, n), nscales, cudaMemcpyDeviceToHost));
    if (mx->mode == MX_NVFP4) { mx_e2m1_unpack(h.q.data(), raw.data(), n); } else { h.q = raw; }
    return h;
}

// v (R,C) with blocks along C (E4M3, the layer's scale rule), or NVFP4 16x16 tiles
static Quant host_quant(const MxLinear* mx, const VF& v, int R, int C, bool tiles) {
    long n = (long)R * C;
    Quant h = {std::vector<uint8_t>(n), {}, 1.0f};
    if (mx->mode == MX_MXFP8) {
        h.s.resize(n / MXFP8_BLOCK);
        for (long b = 0; b < n / MXFP8_BLOCK; b++) {
            h.s[b] = mxfp8_quantize_block(&h.q[b * MXFP8_BLOCK], &v[b * MXFP8_BLOCK], MXFP8_BLOCK, FP8_E4M3, mx->rule);
        }
        return h;
    }
    h.st = mx_nvfp4_tensor_scale(mx_absmax(v.data(), (int)n));
    h.s.resize(tiles ? n / 256 : n / NVFP4_BLOCK);
    if (tiles) { mx_nvfp4_quantize_tiles(h.q.data(), h.s.data(), v.data(), R, C, h.st); }
    else { mx_nvfp4_quantize_rows(h.q.data(), h.s.data(), v.data(), R, C, h.st); }
    return h;
}

static long quant_diff(const Quant& a, const Quant& b) {
    return count_diff(a.q, b.q) + count_diff(a.s, b.s) + (fp8_float_bits(a.st) != fp8_float_bits(b.st));
}

// The old way: out, pre, dinp, dW of case c from the BF16 x, w, dy (and pre_b: the input came out
// of a GELU of it), every operand quantized by itself when its GEMM runs, x^T in backward from x,
// the weight from its BF16 values; the backward's SR seeds from the counter at calls0, the
// wgrad's RHT seed rht.
static OutBits old_way(const LinearOptions& o, const Case& c, const floatX* x, const floatX* w, const floatX* dy,
                       const floatX* pre_b, uint64_t calls0, uint64_t rht) {
    GemmContext g;
    gemm_context_init(&g);
    MxLinear mx;
    mx_linear_init(&mx, &g, (MxMode)o.mx, o.mx_native, o.mx_floor ? MX_SCALE_FLOOR : MX_SCALE_CEIL, o.hybrid, 1);
    int N = c.N, IC = c.IC, OC = c.OC;
    long nx = (long)N * IC, nw = (long)OC * IC, ny = (long)N * OC;
    bool fp4 = o.mx == MX_NVFP4;
    Fp8Format fdy = mx_grad_format(&mx);
    auto operand = [&](long n) { return mx_scratch_operand(&mx, dev_alloc<uint8_t>(mx_scratch_bytes(&mx, n)), n); };
    floatX *out = dev_alloc<floatX>(ny), *pre = dev_alloc<floatX>(ny), *dinp = dev_alloc<floatX>(nx);
    floatX* dw = to_dev(VF(nw, 0.0f));
    // W (OC,IC): MXFP8 rows (fprop) and columns (dgrad); NVFP4 tiles for both
    MxOperand wr = operand(nw), wc = operand(nw);
    if (fp4) {
        wr.st = mx_nvfp4_scale(&mx, w, OC, IC, 0, 0, 0);
        nvfp4_quantize_tiles(wr.codes, NULL, wr.scales, w, OC, IC, nvfp4_scale_value(wr.st), 0);
        mx_dequantize(&mx, &wr, OC, IC, FP8_E4M3, 1, 0);
        wc = wr;
    } else {
        mx_quantize_rows(&mx, &wr, w, OC, IC, FP8_E4M3, 0, 0);
        mx_quantize_cols(&mx, &wc, w, OC, IC, FP8_E4M3, 0, 0, 0);
    }
    MxOperand xr = operand(nx);
    mx_quantize_rows(&mx, &xr, x, N, IC, FP8_E4M3, 0, 0);
    mx.calls = calls0;
    MxOperand dyr = operand(ny), dyt = operand(ny), xt = operand(nx);
    mx_quantize_rows(&mx, &dyr, dy, N, OC, fdy, 1, 0);
    mx_quantize_cols(&mx, &dyt, dy, N, OC, fdy, 1, rht, 0);
    mx_quantize_cols(&mx, &xt, x, N, IC, FP8_E4M3, 0, rht, 0);
    if (o.mx_native) {
        mx_gemm_native(&mx, c.gelu ? pre : out, &xr, FP8_E4M3, &wr, NULL, N, OC, IC, 0.0f, 0);
        if (c.gelu) { gelu_forward(out, pre, ny, 0); }
        mx_gemm_native(&mx, dinp, &dyr, fdy, &wc, NULL, N, IC, OC, 0.0f, 0);
        if (pre_b != NULL) { gelu_backward_inplace(dinp, pre_b, nx, 0); }
        mx_gemm_native(&mx, dw, &dyt, fdy, &xt, NULL, OC, IC, N, 1.0f, 0);
    } else {
        gemm_bf16(&g, out, xr.deq, wr.deq, NULL, N, OC, IC, 0, 1, fp4 ? 1.0f / (xr.st * wr.st) : 1.0f, 0.0f, 1, 0, 0, 0,
                  c.gelu ? GEMM_GELU_FORWARD : GEMM_NO_GELU, pre, 0);
        gemm_bf16(&g, dinp, dyr.deq, wc.deq, NULL, N, IC, OC, 0, !fp4, fp4 ? 1.0f / (dyr.st * wc.st) : 1.0f, 0.0f, 1, 0, 0, 0,
                  pre_b != NULL ? GEMM_GELU_BACKWARD : GEMM_NO_GELU, (floatX*)pre_b, 0);
        gemm_bf16(&g, dw, dyt.deq, xt.deq, NULL, OC, IC, N, 0, 1, fp4 ? 1.0f / (dyt.st * xt.st) : 1.0f, 1.0f, 1, 0, 0, 0,
                  GEMM_NO_GELU, NULL, 0);
    }
    device_sync();
    OutBits r = {get_bits(out, ny), c.gelu ? get_bits(pre, ny) : Bits(), get_bits(dinp, nx), get_bits(dw, nw)};
    mx_linear_free(&mx);
    gemm_context_free(&g);
    return r;
}

// The layer's flags in mode o: keeps its input (and does not read it in backward) exactly for
// the linears a LayerNorm feeds, at shapes the block-scaled path takes.
static void test_flags(const LinearOptions& o) {
    LinearContext lc;
    linear_context_init(&lc, &o, 1);
    lc.opt.lm_head_fp8 = 1; lc.use_fp8[4] = 1;
    long bad = 0;
    const int C = MODEL_C;
    const struct { LinearKind kind; int N, IC, OC, keeps; } want[] = {
        {LINEAR_QKV, 4096, C, 3 * C, 1}, {LINEAR_FC, 4096, C, 4 * C, 1}, {LINEAR_LMHEAD, 4096, C, MODEL_VP, 1},
        {LINEAR_ATTPROJ, 4096, C, C, 0}, {LINEAR_FCPROJ, 4096, 4 * C, C, 0}, {LINEAR_QKV, 16, C, 3 * C, 0}, {LINEAR_FC, 16, C, 4 * C, 0},
    };
    for (auto& f : want) {
        bad += linear_keeps_input(&lc, f.kind, 0, f.N, f.IC, f.OC) != f.keeps;
        bad += linear_backward_reads_input(&lc, f.kind, 0, f.N, f.IC, f.OC) != !f.keeps;
    }
    check_count(fmt("%s: keeps_input 1, backward_reads_input 0 for qkv, fc, lmhead; 0, 1 for the projections and N=16",
                    mode_tag(o)), bad);
    linear_context_free(&lc);
}

// Case c through the layer in mode o, set up as the model does it, against the old way (see the
// header). x, w, dy, pre as run_linear.
static void test_kept(const LinearOptions& o, const Case& c, const VF& x, const VF& w, const VF& dy, const VF& pre_in) {
    int N = c.N, IC = c.IC, OC = c.OC;
    long nx = (long)N * IC, nw = (long)OC * IC, ny = (long)N * OC;
    LinearContext lc;
    linear_context_init(&lc, &o, 1);
    lc.opt.lm_head_fp8 = 1; lc.use_fp8[4] = 1;
    MxLinear* mx = &lc.mx;
    int id = fp8_linear_index(&lc, c.kind, 0), keep = linear_keeps_input(&lc, c.kind, 0, N, IC, OC);
    linear_reserve(&lc, N, MODEL_C, MODEL_VP);
    size_t arena0 = mx->arena_bytes;
    MxSaved sv0 = mx->saved[id];
    MxWeight w0 = mx->w[id];
    floatX *dx = to_dev(x), *dx_clean = to_dev(x), *dw_in = to_dev(w), *ddy = to_dev(dy);
    floatX *out = dev_alloc<floatX>(ny), *pre = dev_alloc<floatX>(ny), *dinp = dev_alloc<floatX>(nx), *dwt = to_dev(VF(nw, 0.0f));
    floatX* pre_b = c.gelu ? to_dev(pre_in) : NULL;   // as run_linear
    float* scratch = dev_alloc<float>((size_t)colsum_num_chunks(N) * OC);
    linear_weights_changed(&lc);
    uint64_t calls_before = mx->calls;
    linear_forward(&lc, c.kind, 0, out, c.gelu ? pre : NULL, dx, dw_in, NULL, N, IC, OC, 0);
    uint64_t calls0 = mx->calls;
    MxSaved sv = mx->saved[id];
    device_sync();
    const char* tag = mode_tag(o);

    // what persists: the kept x^T and the weight's codes, against mx.h
    if (keep) {
        VF xt = transposed(x, N, IC);
        if (o.mx == MX_NVFP4) { mx_rht_forward(xt.data(), (long)xt.size(), sv.rht_seed); }
        Quant h = host_quant(mx, xt, IC, N, false);
        long bad = quant_diff(device_quant(mx, sv.buf, nx, (long)h.s.size(), sv.st), h) + (sv.rows != N);
        check_count(fmt("%s %s: kept x^T = mx.h's quantization of the input's transpose%s", tag, c.name,
                        o.mx == MX_NVFP4 ? " after the RHT of the forward's seed" : ""), bad);
        cudaCheck(cudaMemset(dx, 0xFF, nx * sizeof(floatX)));   // NaN: the backward must not read it
    }
    long bad = 0;
    if (o.mx == MX_NVFP4) {
        Quant h = host_quant(mx, w, OC, IC, true);
        bad += quant_diff(device_quant(mx, mx->w[id].rows, nw, (long)h.s.size(), mx->w[id].st), h);
    } else {   // MXFP8 keeps no weight: the forward's rows form is at the start of the arena
        Quant h = host_quant(mx, w, OC, IC, false);
        bad += quant_diff(device_quant(mx, mx->arena, nw, (long)h.s.size(), 1.0f), h) + (mx->w[id].rows != NULL);
    }
    check_count(fmt("%s %s: the weight's codes = mx.h's (%s)", tag, c.name,
                    o.mx == MX_NVFP4 ? "kept as packed 16x16 tiles" : "rows, quantized per call; none kept"), bad);

    linear_backward(&lc, c.kind, 0, dinp, dwt, NULL, scratch, ddy, dx, pre_b, dw_in, N, IC, OC, 0);
    device_sync();
    uint64_t draws = mx->calls - calls0;
    bad = (mx->arena_bytes != arena0) + (mx->saved[id].buf != sv0.buf) + (mx->saved[id].bytes != sv0.bytes) +
          (mx->w[id].rows != w0.rows) + (keep && sv0.buf == NULL) +
          (calls0 != calls_before) + (draws != (o.mx == MX_NVFP4 ? 2u : 0u));
    check_count(fmt("%s %s: nothing allocated after linear_reserve; seeds drawn: forward 0, backward %d (%llu)", tag, c.name,
                    o.mx == MX_NVFP4 ? 2 : 0, (unsigned long long)draws), bad);

    OutBits got = {get_bits(out, ny), c.gelu ? get_bits(pre, ny) : Bits(), get_bits(dinp, nx), get_bits(dwt, nw)};
    // the RHT seed of a linear that keeps nothing: picked in backward, after dy's SR draw
    MxLinear at_bwd = *mx;
    at_bwd.calls = calls0 + 1;
    uint64_t rht = keep ? sv.rht_seed : mx_rht_seed(&at_bwd, id);
    long d = bits_diff(got, old_way(o, c, dx_clean, dw_in, ddy, pre_b, calls0, rht));
    check_count(fmt("%s %s: out, pre-gelu, dinp, dW bit-identical to the old way (%s)", tag, c.name,
                    keep ? "x^T kept, the input poisoned after the forward" : "x^T quantized in backward"), d);
    if (o.mx == MX_NVFP4 && keep) {
        OutBits other = old_way(o, c, dx_clean, dw_in, ddy, pre_b, calls0, rht ^ 1);
        long dd = count_diff(got.dw, other.dw);
        check_count(fmt("self-check: %s %s: the old way with another RHT seed gives another dW (%ld of %ld differ)", tag, c.name, dd, nw),
                    dd == 0);
    }
    linear_context_free(&lc);
}

int main(int argc, char** argv) {
    (void)argc;
    cudaDeviceProp prop;
    if (!gpu_found(argv[0], &prop)) { return 77; }
    rng_seed(&rng, 0x6d786c69u);
    const Case cases[] = {
        {"qkv", LINEAR_QKV, 4096, 768, 2304, false},
        {"fc+gelu", LINEAR_FC, 2048, 768, 3072, true},
        {"fcproj+dgelu", LINEAR_FCPROJ, 2048, 3072, 768, true},
        {"lmhead", LINEAR_LMHEAD, 1024, 768, 50304, false},
    };
    LinearOptions modes[3];
    for (int m = 0; m < 3; m++) {
        linear_options_defaults(&modes[m]);
        modes[m].fp8 = 0;
        modes[m].mx = m < 2 ? MX_MXFP8 : MX_NVFP4;
        modes[m].mx_native = m == 1;
        test_flags(modes[m]);
    }
    for (auto& c : cases) {
        VF x = randn((size_t)c.N * c.IC, 1.0), w = randn((size_t)c.OC * c.IC, 0.02), dy = randn((size_t)c.N * c.OC, 1e-3);
        VF pre = randn((size_t)c.N * c.IC, 1.0);
        LinearOptions o;
        linear_options_defaults(&o);
        o.fp8 = 0;
        Outs ref = run_linear(o, c.kind, c.N, c.IC, c.OC, c.gelu, x, w, dy, pre);          // BF16
        Outs deq = run_linear(modes[0], c.kind, c.N, c.IC, c.OC, c.gelu, x, w, dy, pre);
        Outs nat = run_linear(modes[1], c.kind, c.N, c.IC, c.OC, c.gelu, x, w, dy, pre);
        Outs fp4 = run_linear(modes[2], c.kind, c.N, c.IC, c.OC, c.gelu, x, w, dy, pre);
        const char* part[3] = {"fprop", "dgrad", "wgrad"};
        for (int k = 0; k < 3; k++) {
            const VF& r = k == 0 ? ref.out : k == 1 ? ref.dinp : ref.dw;
            const VF& a = k == 0 ? deq.out : k == 1 ? deq.dinp : deq.dw;
            const VF& b = k == 0 ? nat.out : k == 1 ? nat.dinp : nat.dw;
            const VF& f = k == 0 ? fp4.out : k == 1 ? fp4.dinp : fp4.dw;
            double e_path = rel(b, a), e_mx = rel(a, r), e_fp4 = rel(f, r);
            report(e_path < 1e-2, fmt("%s %s: mxfp8 native vs dequantized + cuBLASLt", c.name, part[k]), e_path, 1e-2);
            report(e_mx > 1e-2 && e_mx < 0.12, fmt("%s %s: mxfp8 vs unquantized bf16 in (1e-2, 0.12)", c.name, part[k]), e_mx, 0.12);
            report(e_fp4 > 3e-2 && e_fp4 < 0.35, fmt("%s %s: nvfp4 (rht+sr wgrad) vs unquantized bf16 in (3e-2, 0.35)", c.name, part[k]),
                   e_fp4, 0.35);
        }
        if (c.gelu) {
            report(rel(nat.pre, deq.pre) < 1e-2, fmt("%s: pre-GELU of both mxfp8 paths", c.name), rel(nat.pre, deq.pre), 1e-2);
        }
        for (auto& m : modes) { test_kept(m, c, x, w, dy, pre); }
        dev_free_all();
    }
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed == 0 ? 0 : 1;
}
