// GPU tests of llmc/mx_gemm_cublaslt.cuh, Blackwell's native block-scaled GEMMs through cuBLASLt,
// and of the NVFP4 linear layer on them (llmc/linear_mx.cuh, --precision nvfp4 --mx-gemm native):
//   dev/test_mx_blackwell_gpu            both parts, then `N passed, N failed`
//   dev/test_mx_blackwell_gpu --swizzle  the scale swizzle and tile-scale expansion kernels only
//                                        (any GPU of compute capability 9.0+)
//   dev/test_mx_blackwell_gpu --gemm     the GEMMs and the NVFP4 linear only; below compute
//                                        capability 10.0 this prints `SKIPPED: ...` and no result
//                                        line, which dev/run_tests.sh counts as a skipped suite
// Swizzle: mx_sf_swizzle bit for bit against mx_sf_swizzle_host (llmc/mx_blackwell.h, whose layout
// dev/test_mx_blackwell checks against NVIDIA's documentation) on random scale arrays of GPT-2's
// shapes and ragged ones; the output is poisoned first, so the padding must be written too.
// Expansion: nvfp4_tile_scales_expand (NVFP4 weights' 16x16 tile scales as W's or W^T's per-16
// row scales) bit for bit against mx_nvfp4_tile_scales_expand_host (checked by
// dev/test_mx_blackwell), both orientations, square and non-square weights, output poisoned.
// GEMMs (compute capability 10.0+ only; never run yet): MXFP8 E4M3 x E4M3 and E5M2 x E4M3, NVFP4
// with packed codes, with bias, alpha and beta, ragged K blocks (K = 1600) and rows that are not
// multiples of 128, against an FP64 GEMM of the operands dequantized by llmc/mx.h. Block scales
// are random over 2^-8..2^8 (MXFP8) and 1/16..16 (NVFP4), so a misplaced scale or a misread FP4
// nibble would show as an O(1) error, far above the tolerance (BF16 output rounding).
// NVFP4 linear (compute capability 10.0+ only; never run yet): forward and backward of one
// layer, native (cuBLASLt, the weight's tile codes and W^T's transposed ones with expanded
// scales) against the dequantized path (BF16 GEMM of the same codes and scales: the same seeds
// give the same quantization), bias, GELU and its backward, kept x^T or not, accumulated dW:
// equal up to FP32 summation order and BF16 output rounding, relative L2 < 1e-2 (as MXFP8's
// two paths in dev/test_mx_linear). A misplaced scale or a wrong W^T would be O(1). Also: with
// the arena and the cuBLASLt scratch reserved up front, the native run grows neither.
// Exit status: 0 all passed (or skipped), 1 a check failed, 77 no GPU or one below 9.0 (skipped).
// Build (from the repository root):
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -gencode=arch=compute_90,code=compute_90
//        -Xcompiler -Wall,-Wno-unused-function -o dev/test_mx_blackwell_gpu dev/test_mx_blackwell_gpu.cu -lcublasLt
// (the compute_90 PTX is what a Blackwell GPU can run: the driver compiles it for the GPU)
#include "../llmc/linear_mx.cuh"   // and llmc/mx_gemm_cublaslt.cuh
#include "test_util.cuh"   // VF, VD, rng, put, get, dev_alloc, fmt, check_count, check_close, gpu_found


static Bytes random_bytes(size_t n) {
    Bytes b(n);
    for (auto& x : b) { x = (uint8_t)rng_u64(&rng); }
    return b;
}

// ------------------------------------------------------------------------------------------
// swizzle kernel vs host reference

static void test_swizzle() {
    // (R, KB): ragged, then GPT-2's (tokens B*T = 4096 or 8192, weights 3C, 4C, C, the padded
    // vocabulary; KB = K/32 or K/16 for C = 768 or 1600 and 4C; wgrad K = B*T)
    const int shapes[][2] = {
        {1, 1}, {16, 2}, {127, 3}, {129, 5}, {1000, 7}, {4096, 24}, {4096, 48}, {2304, 24}, {3072, 96},
        {768, 192}, {50304, 24}, {1600, 50}, {6400, 100}, {8192, 200}, {768, 128}, {3072, 256},
    };
    for (auto& s : shapes) {
        int R = s[0], KB = s[1];
        size_t n = (size_t)mx_sf_bytes(R, KB);
        Bytes in = random_bytes((size_t)R * KB), want(n);
        mx_sf_swizzle_host(want.data(), in.data(), R, KB);
        uint8_t* d_in = bytes_to_dev(in);
        uint8_t* d_out = dev_alloc<uint8_t>(n);
        cudaCheck(cudaMemset(d_out, 0xA5, n));   // poison: every byte, padding included, must be written
        mx_sf_swizzle(d_out, d_in, R, KB, 0);
        Bytes got = get_bytes(d_out, n);
        long bad = 0;
        for (size_t i = 0; i < n; i++) {
            if (got[i] != want[i] && bad++ < 3) {
                long r, kb;
                mx_sf_position((long)i, KB, &r, &kb);
                printf("  byte %zu (row %ld, block %ld): device 0x%02x, host 0x%02x\n", i, r, kb, got[i], want[i]);
            }
        }
        check_count(fmt("swizzle (%d, %d) -> %zu bytes, bit for bit with the host", R, KB, n), bad);
        dev_free_all();
    }
}

// ------------------------------------------------------------------------------------------
// NVFP4 tile-scale expansion vs host reference

static void test_expand() {
    // W (OC,IC): square, non-square both ways, GPT-2's qkv, fc, the padded LM head, d48's qkv
    const int shapes[][2] = {{16, 16}, {48, 96}, {96, 48}, {32, 160}, {2304, 768}, {768, 3072}, {50304, 768}, {4800, 1600}};
    for (auto& s : shapes) {
        int R = s[0], C = s[1];
        size_t n = (size_t)R * C / NVFP4_BLOCK;
        Bytes tiles(n / NVFP4_BLOCK);   // (R/16, C/16)
        for (auto& b : tiles) { b = (uint8_t)(1 + rng_u64(&rng) % 0x7E); }   // positive E4M3, never the poison
        uint8_t* d_tiles = bytes_to_dev(tiles);
        uint8_t* d_out = dev_alloc<uint8_t>(n);   // (R, C/16) or (C, R/16)
        for (int t = 0; t < 2; t++) {
            Bytes want(n);
            mx_nvfp4_tile_scales_expand_host(want.data(), tiles.data(), R, C, t);
            cudaCheck(cudaMemset(d_out, 0xA5, n));
            nvfp4_tile_scales_expand(d_out, d_tiles, R, C, t, 0);
            check_count(fmt("NVFP4 tile scales of W (%d,%d) expanded to %s rows (%d,%d), bit for bit with the host", R, C,
                            t ? "W^T's" : "W's", t ? C : R, (t ? R : C) / NVFP4_BLOCK), count_diff(get_bytes(d_out, n), want));
        }
        dev_free_all();
    }
}

// ------------------------------------------------------------------------------------------
// GEMMs vs FP64 of the dequantized operands

// one operand: codes q (rows, K), one per byte; scales s (rows, K / block) row-major; deq (rows, K)
struct Operand {
    int rows, K;
    Bytes q, s;
    VF deq;
};

static bool fp8_finite(uint8_t c, Fp8Format f) { return f == FP8_E4M3 ? (c & 0x7F) != 0x7F : (c & 0x7F) < 0x7C; }

static Operand make_mxfp8(int rows, int K, Fp8Format f) {
    int nb = K / MXFP8_BLOCK;
    Operand o{rows, K, Bytes((size_t)rows * K), Bytes((size_t)rows * nb), VF((size_t)rows * K)};
    for (auto& c : o.q) {
        do { c = (uint8_t)rng_u64(&rng); } while (!fp8_finite(c, f));
    }
    for (auto& c : o.s) { c = (uint8_t)(E8M0_BIAS - 8 + rng_u64(&rng) % 17); }
    for (int r = 0; r < rows; r++) {
        for (int b = 0; b < nb; b++) {
            size_t i = (size_t)r * K + b * MXFP8_BLOCK;
            mxfp8_dequantize_block(&o.deq[i], &o.q[i], MXFP8_BLOCK, o.s[(size_t)r * nb + b], f);
        }
    }
    return o;
}

// NVFP4 without the tensor scale (the GEMM's alpha carries it): deq = e2m1 * e4m3 block scale
static Operand make_nvfp4(int rows, int K) {
    int nb = K / NVFP4_BLOCK;
    Operand o{rows, K, Bytes((size_t)rows * K), Bytes((size_t)rows * nb), VF((size_t)rows * K)};
    for (auto& c : o.q) { c = (uint8_t)(rng_u64(&rng) & 0xF); }
    for (auto& c : o.s) { c = (uint8_t)(0x18 + rng_u64(&rng) % 0x41); }   // E4M3 0.0625 .. 16
    for (size_t i = 0; i < o.q.size(); i++) {
        o.deq[i] = mx_e2m1_decode(o.q[i]) * fp8_decode(o.s[(i / K) * nb + (i % K) / NVFP4_BLOCK], FP8_E4M3);
    }
    return o;
}

// (rows, K/2) bytes: element 2i in the low nibble of byte i, 2i+1 in the high one
static Bytes pack_fp4(const Bytes& q) {
    Bytes p(q.size() / 2);
    for (size_t i = 0; i < p.size(); i++) { p[i] = (uint8_t)(q[2 * i] | q[2 * i + 1] << 4); }
    return p;
}

// C (M,N) = alpha * A B^T + beta * c0 + bias, in FP64
static VD reference(const Operand& A, const Operand& B, double alpha, double beta, const VF& c0, const VF& bias) {
    int M = A.rows, N = B.rows, K = A.K;
    VD c((size_t)M * N);
    for (int m = 0; m < M; m++) {
        for (int n = 0; n < N; n++) {
            double s = 0.0;
            for (int k = 0; k < K; k++) { s += (double)A.deq[(size_t)m * K + k] * (double)B.deq[(size_t)n * K + k]; }
            double v = alpha * s + beta * c0[(size_t)m * N + n];
            c[(size_t)m * N + n] = v + (bias.empty() ? 0.0 : (double)bias[n]);
        }
    }
    return c;
}

struct GemmCase {
    const char* name;
    int nvfp4;
    Fp8Format fa, fb;   // MXFP8 only
    int M, N, K;
    float alpha, beta;  // NVFP4: alpha = 1 / (st_a st_b) from these tensor scales instead
    int bias;
};

static void run_case(const MxLtContext* c, const GemmCase& g) {
    const float st_a = 2.5f, st_b = 0.375f;   // NVFP4 tensor scales
    Operand A = g.nvfp4 ? make_nvfp4(g.M, g.K) : make_mxfp8(g.M, g.K, g.fa);
    Operand B = g.nvfp4 ? make_nvfp4(g.N, g.K) : make_mxfp8(g.N, g.K, g.fb);
    float alpha = g.nvfp4 ? 1.0f / (st_a * st_b) : g.alpha;   // what mx_gemm_cublaslt_nvfp4 computes
    // c0 and bias on the scale of the product, so that neither hides an error in it
    double typical = 0.0;
    for (size_t i = 0; i < 64; i++) { typical += fabs(A.deq[i] * B.deq[i]); }
    typical = fabs(alpha) * typical / 64.0 * sqrt((double)g.K);
    VF c0 = g.beta != 0.0f ? randn((size_t)g.M * g.N, typical) : VF((size_t)g.M * g.N, 0.0f);
    VF bias = g.bias ? randn(g.N, typical) : VF();
    VD ref = reference(A, B, alpha, g.beta, c0, bias);

    uint8_t* dA = bytes_to_dev(g.nvfp4 ? pack_fp4(A.q) : A.q);
    uint8_t* dB = bytes_to_dev(g.nvfp4 ? pack_fp4(B.q) : B.q);
    uint8_t* dsA = bytes_to_dev(A.s);
    uint8_t* dsB = bytes_to_dev(B.s);
    floatX* dC = to_dev(c0);
    floatX* dbias = g.bias ? to_dev(bias) : NULL;
    int block = g.nvfp4 ? NVFP4_BLOCK : MXFP8_BLOCK;
    uint8_t* scratch = dev_alloc<uint8_t>(mx_gemm_cublaslt_scratch_bytes(g.M, g.N, g.K, block));
    if (g.beta == 0.0f) { cudaCheck(cudaMemset(dC, 0xFF, (size_t)g.M * g.N * sizeof(floatX))); }   // NaN poison
    if (g.nvfp4) {
        mx_gemm_cublaslt_nvfp4(c, dC, dA, dsA, st_a, dB, dsB, st_b, dbias, g.M, g.N, g.K, g.beta, scratch, 0);
    } else {
        mx_gemm_cublaslt_mxfp8(c, dC, dA, g.fa, dsA, dB, g.fb, dsB, dbias, g.M, g.N, g.K, g.alpha, g.beta, scratch, 0);
    }
    device_sync();
    check_close(fmt("%s M=%d N=%d K=%d alpha=%g beta=%g%s vs fp64", g.name, g.M, g.N, g.K, alpha, g.beta,
                    g.bias ? " +bias" : ""), get(dC, (size_t)g.M * g.N), ref, 4e-3);
    dev_free_all();
}

static void test_gemms(const MxLtContext* c) {
    const GemmCase cases[] = {
        {"mxfp8 e4m3 x e4m3", 0, FP8_E4M3, FP8_E4M3, 256, 384, 512, 1.0f, 0.0f, 0},
        {"mxfp8 e5m2 x e4m3", 0, FP8_E5M2, FP8_E4M3, 208, 176, 1600, 0.75f, 0.5f, 1},
        {"mxfp8 e4m3 x e4m3", 0, FP8_E4M3, FP8_E4M3, 144, 768, 768, 1.0f, 1.0f, 1},
        {"nvfp4", 1, FP8_E4M3, FP8_E4M3, 256, 192, 768, 0.0f, 0.0f, 1},
        {"nvfp4", 1, FP8_E4M3, FP8_E4M3, 144, 80, 1600, 0.0f, 1.0f, 0},
    };
    for (auto& g : cases) { run_case(c, g); }
}

// ------------------------------------------------------------------------------------------
// NVFP4 linear layer: native GEMMs vs the dequantized path

struct LinCase {
    const char* name;
    int N, IC, OC;
    int keep, gelu, dgelu, bias;   // x^T kept from the forward; GELU after fprop; the input a GELU's (dgrad)
};
struct LinOuts { VF out, pre, dinp, dw; long grown; };

// one forward and backward of linear 0 in NVFP4, native or dequant, from the same inputs (a fresh
// MxLinear each: the same seeds); dW accumulates onto dw0. The arena and the native GEMMs' room
// are reserved first, as linear_reserve does; grown: how many of them the run had to enlarge.
static LinOuts nvfp4_linear(GemmContext* g, int native, const LinCase& k, const floatX* x, const floatX* w, const floatX* bias,
                            const floatX* dy, const floatX* pre_b, const VF& dw0) {
    MxLinear mx;
    mx_linear_init(&mx, g, MX_NVFP4, native, MX_SCALE_CEIL, 0, 1);
    long nx = (long)k.N * k.IC, ny = (long)k.N * k.OC;
    floatX* out = dev_alloc<floatX>(ny);    // (N,OC)
    floatX* pre = dev_alloc<floatX>(ny);    // (N,OC)
    floatX* dinp = dev_alloc<floatX>(nx);   // (N,IC)
    floatX* dw = to_dev(dw0);               // (OC,IC)
    if (native) {   // fprop, dgrad, wgrad
        mx_gemm_native_reserve(&mx, k.N, k.OC, k.IC);
        mx_gemm_native_reserve(&mx, k.N, k.IC, k.OC);
        mx_gemm_native_reserve(&mx, k.OC, k.IC, k.N);
    }
    mx_arena(&mx, mx_call_bytes(&mx, k.N, k.IC, k.OC, k.keep));
    size_t arena0 = mx.arena_bytes, lt0 = mx.lt_scratch_bytes;
    mx_linear_forward(&mx, g, 0, k.keep, out, k.gelu ? pre : NULL, x, w, bias, k.N, k.IC, k.OC, 0);
    mx_linear_backward(&mx, g, 0, k.keep, dinp, dw, NULL, NULL, dy, x, pre_b, w, k.N, k.IC, k.OC, 0);
    device_sync();
    LinOuts o = {get(out, ny), k.gelu ? get(pre, ny) : VF(), get(dinp, nx), get(dw, dw0.size()),
                 (long)(mx.arena_bytes != arena0) + (mx.lt_scratch_bytes != lt0)};
    mx_linear_free(&mx);
    return o;
}

static void test_nvfp4_linear(GemmContext* g) {
    const LinCase cases[] = {
        {"qkv +bias, x^T kept", 512, 768, 2304, 1, 0, 0, 1},
        {"fc +bias +gelu, x^T kept", 256, 768, 3072, 1, 1, 0, 1},
        {"fcproj +dgelu", 256, 3072, 768, 0, 0, 1, 0},
        {"non-square 96x160->224, x^T kept", 96, 160, 224, 1, 0, 0, 1},
    };
    for (auto& k : cases) {
        VF x = randn((size_t)k.N * k.IC, 1.0), w = randn((size_t)k.OC * k.IC, 0.02), dy = randn((size_t)k.N * k.OC, 1e-3);
        VF dw0 = randn((size_t)k.OC * k.IC, 1e-2), bias = randn(k.OC, 0.5), pre_b = randn((size_t)k.N * k.IC, 1.0);
        floatX *d_x = to_dev(x), *d_w = to_dev(w), *d_dy = to_dev(dy), *d_bias = k.bias ? to_dev(bias) : NULL;
        floatX* d_pre = k.dgelu ? to_dev(pre_b) : NULL;
        LinOuts deq = nvfp4_linear(g, 0, k, d_x, d_w, d_bias, d_dy, d_pre, dw0);
        LinOuts nat = nvfp4_linear(g, 1, k, d_x, d_w, d_bias, d_dy, d_pre, dw0);
        const char* part[4] = {"fprop out", "fprop pre-gelu", "dgrad", "wgrad (accumulated)"};
        const VF* a[4] = {&nat.out, &nat.pre, &nat.dinp, &nat.dw};
        const VF* b[4] = {&deq.out, &deq.pre, &deq.dinp, &deq.dw};
        check_count(fmt("nvfp4 linear %s native: nothing grown after the reserve (arena with the expanded weight scales, "
                        "cuBLASLt scratch of 16-blocks)", k.name), nat.grown);
        for (int i = 0; i < 4; i++) {
            if (i == 1 && !k.gelu) { continue; }
            check_close(fmt("nvfp4 linear %s (N=%d IC=%d OC=%d) %s: native vs dequant", k.name, k.N, k.IC, k.OC, part[i]), *a[i],
                        VD(b[i]->begin(), b[i]->end()), 1e-2);
        }
        dev_free_all();
    }
}

int main(int argc, char** argv) {
    bool swizzle = true, gemm = true;
    if (argc == 2 && strcmp(argv[1], "--swizzle") == 0) { gemm = false; }
    else if (argc == 2 && strcmp(argv[1], "--gemm") == 0) { swizzle = false; }
    else if (argc != 1) { fprintf(stderr, "usage: %s [--swizzle | --gemm]\n", argv[0]); return 2; }
    cudaDeviceProp prop;
    if (!gpu_found("test_mx_blackwell_gpu", &prop)) { return 77; }
    if (prop.major < 9) {
        printf("test_mx_blackwell_gpu: built for compute capability 9.0+ (this GPU is %d.%d), skipped\n", prop.major, prop.minor);
        return 77;
    }
    rng_seed(&rng, 0xb1ac3e11u);
    GemmContext g;
    gemm_context_init(&g);
    MxLtContext c;
    mx_lt_context_init(&c, &g);
    if (swizzle) {
        test_swizzle();
        test_expand();
    }
    if (gemm) {
        if (mx_gemm_cublaslt_available(&c)) {
            test_gemms(&c);
            test_nvfp4_linear(&g);
        } else {
            printf("SKIPPED: cuBLASLt block-scaled GEMMs and the NVFP4 native linear need sm_100; this GPU is sm_%d%d\n",
                   c.cc_major, c.cc_minor);
        }
    }
    gemm_context_free(&g);
    if (!swizzle && !mx_gemm_cublaslt_available(&c)) { return 0; }   // only the skip: no result line
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed == 0 ? 0 : 1;
}
