// GPU tests of the block-scaled linear layer (llmc/linear_mx.cuh through llmc/linear_fp8.cuh):
// fprop, dgrad and wgrad (accumulated) of one linear at GPT-2 shapes, GELU epilogues included.
//  - MXFP8: the two GEMM paths (dequantized to BF16 + cuBLASLt, and the mma.sync kernel) take the
//    same quantized operands (dev/test_mx checks the casts bit for bit) and must agree within
//    FP32 accumulation and BF16 output rounding: relative L2 < 1e-2 (seen ~2e-3, the output's
//    BF16 rounding);
//  - every mode against the unquantized BF16 linear: the error the formats predict, within a
//    bound and above a floor (a mode that quantized nothing would fail the floor). E4M3 operands
//    give ~3-4% per product (E5M2 gradients ~5-7%); E2M1 with per-16 scales ~8-10% per value, so
//    ~12-18% per product with stochastic rounding: MXFP8 in (1e-2, 0.12), NVFP4 in (3e-2, 0.35);
//  - NVFP4's wgrad runs through the random Hadamard transform, which must cancel: without it the
//    wgrad would be a different (wrong) product, far outside the bound.
// Prints `PASS|FAIL name ...` and ends with `N passed, N failed`; exit 77 without a GPU.
#include "../llmc/linear_fp8.cuh"
#include "test_util.cuh"

struct Outs { VF out, pre, dinp, dw; };

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

int main(int argc, char** argv) {
    (void)argc;
    cudaDeviceProp prop;
    if (!gpu_found(argv[0], &prop)) { return 77; }
    rng_seed(&rng, 0x6d786c69u);
    struct { const char* name; LinearKind kind; int N, IC, OC; bool gelu; } cases[] = {
        {"qkv", LINEAR_QKV, 4096, 768, 2304, false},
        {"fc+gelu", LINEAR_FC, 2048, 768, 3072, true},
        {"fcproj+dgelu", LINEAR_FCPROJ, 2048, 3072, 768, true},
        {"lmhead", LINEAR_LMHEAD, 1024, 768, 50304, false},
    };
    for (auto& c : cases) {
        VF x = randn((size_t)c.N * c.IC, 1.0), w = randn((size_t)c.OC * c.IC, 0.02), dy = randn((size_t)c.N * c.OC, 1e-3);
        VF pre = randn((size_t)c.N * c.IC, 1.0);
        LinearOptions o;
        linear_options_defaults(&o);
        o.fp8 = 0;
        Outs ref = run_linear(o, c.kind, c.N, c.IC, c.OC, c.gelu, x, w, dy, pre);          // BF16
        o.mx = MX_MXFP8;
        Outs deq = run_linear(o, c.kind, c.N, c.IC, c.OC, c.gelu, x, w, dy, pre);
        o.mx_native = 1;
        Outs nat = run_linear(o, c.kind, c.N, c.IC, c.OC, c.gelu, x, w, dy, pre);
        o.mx = MX_NVFP4; o.mx_native = 0;
        Outs fp4 = run_linear(o, c.kind, c.N, c.IC, c.OC, c.gelu, x, w, dy, pre);
        const char* part[3] = {"fprop", "dgrad", "wgrad"};
        for (int k = 0; k < 3; k++) {
            const VF& r = k == 0 ? ref.out : k == 1 ? ref.dinp : ref.dw;
            const VF& a = k == 0 ? deq.out : k == 1 ? deq.dinp : deq.dw;
            const VF& b = k == 0 ? nat.out : k == 1 ? nat.dinp : nat.dw;
            const VF& f = k == 0 ? fp4.out : k == 1 ? fp4.dinp : fp4.dw;
            double e_path = rel(b, a), e_mx = rel(a, r), e_fp4 = rel(f, r);
            report(e_path < 1e-2, fmt("%s %s: mxfp8 native mma.sync vs dequantized + cuBLASLt", c.name, part[k]), e_path, 1e-2);
            report(e_mx > 1e-2 && e_mx < 0.12, fmt("%s %s: mxfp8 vs unquantized bf16 in (1e-2, 0.12)", c.name, part[k]), e_mx, 0.12);
            report(e_fp4 > 3e-2 && e_fp4 < 0.35, fmt("%s %s: nvfp4 (rht+sr wgrad) vs unquantized bf16 in (3e-2, 0.35)", c.name, part[k]),
                   e_fp4, 0.35);
        }
        if (c.gelu) {
            report(rel(nat.pre, deq.pre) < 1e-2, fmt("%s: pre-GELU of both mxfp8 paths", c.name), rel(nat.pre, deq.pre), 1e-2);
        }
        dev_free_all();
    }
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed == 0 ? 0 : 1;
}
