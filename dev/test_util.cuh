// Host helpers shared by the GPU test programs dev/test_kernels.cu and dev/test_fp8.cu:
// bf16 conversion, random data, device allocation and transfers, PASS/FAIL checks with their
// counters, relative L2 comparison, the no-GPU skip, and timing with CUDA events. All static;
// include once per test program. TEST_TIME_REPS / TEST_TIME_WARM, defined before the include,
// set time_ms's default repetitions (50 timed after 5 untimed).
#ifndef DEV_TEST_UTIL_CUH
#define DEV_TEST_UTIL_CUH

#include <vector>
#include <algorithm>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "../llmc/cuda_common.h"
#include "../llmc/rand.h"

typedef std::vector<float> VF;       // host copy of a bf16 or fp32 tensor
typedef std::vector<double> VD;      // CPU reference
typedef std::vector<uint16_t> Bits;  // raw bf16 bits, for exact comparisons

// ------------------------------------------------------------------------------------------
// bf16 conversion, random data

static Rng rng;

static float bits_to_float(uint16_t b) { uint32_t u = (uint32_t)b << 16; float f; memcpy(&f, &u, 4); return f; }
// round to nearest even, as __float2bfloat16_rn does
static uint16_t float_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) { return 0x7fc0; }   // NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static float round_bf16(float f) { return bits_to_float(float_to_bits(f)); }

// n values mean + std * N(0,1), rounded to bf16 unless the tensor is fp32
static VF randn(size_t n, double std, double mean = 0.0, bool bf16 = true) {
    VF x(n);
    for (size_t i = 0; i < n; i++) {
        float f = (float)(mean + std * rng_normal(&rng));
        x[i] = bf16 ? round_bf16(f) : f;
    }
    return x;
}

// ------------------------------------------------------------------------------------------
// device memory and transfers

static std::vector<void*> dev_allocs;   // everything dev_alloc'd, freed by dev_free_all
template <typename T> static T* dev_alloc(size_t n) {
    T* p = (T*)cuda_malloc_or_die(n * sizeof(T), "test tensor");
    dev_allocs.push_back(p);
    return p;
}
static int* to_dev_int(const std::vector<int>& h) {
    int* d = dev_alloc<int>(h.size());
    cudaCheck(cudaMemcpy(d, h.data(), h.size() * sizeof(int), cudaMemcpyHostToDevice));
    return d;
}
static int rand_int(int n) { return (int)(rng_u64(&rng) % (uint64_t)n); }
static void dev_free_all() {
    for (void* p : dev_allocs) { cudaCheck(cudaFree(p)); }
    dev_allocs.clear();
}
static void device_sync() { cudaCheck(cudaDeviceSynchronize()); }
static void put(floatX* d, const VF& h) {
    Bits b(h.size());
    for (size_t i = 0; i < h.size(); i++) { b[i] = float_to_bits(h[i]); }
    cudaCheck(cudaMemcpy(d, b.data(), b.size() * 2, cudaMemcpyHostToDevice));
}
static void put_f32(float* d, const VF& h) { cudaCheck(cudaMemcpy(d, h.data(), h.size() * 4, cudaMemcpyHostToDevice)); }
static floatX* to_dev(const VF& h) { floatX* d = dev_alloc<floatX>(h.size()); put(d, h); return d; }
typedef std::vector<uint8_t> Bytes;   // codes and scales of the FP8/MX formats
static uint8_t* bytes_to_dev(const Bytes& h) {
    uint8_t* d = dev_alloc<uint8_t>(h.size());
    cudaCheck(cudaMemcpy(d, h.data(), h.size(), cudaMemcpyHostToDevice));
    return d;
}
static Bytes get_bytes(const uint8_t* d, size_t n) {
    Bytes h(n);
    cudaCheck(cudaMemcpy(h.data(), d, n, cudaMemcpyDeviceToHost));
    return h;
}
static Bits get_bits(const floatX* d, size_t n) {
    Bits b(n);
    cudaCheck(cudaMemcpy(b.data(), d, n * 2, cudaMemcpyDeviceToHost));
    return b;
}
static VF get(const floatX* d, size_t n) {
    Bits b = get_bits(d, n);
    VF x(n);
    for (size_t i = 0; i < n; i++) { x[i] = bits_to_float(b[i]); }
    return x;
}
static VF get_f32(const float* d, size_t n) {
    VF x(n);
    cudaCheck(cudaMemcpy(x.data(), d, n * 4, cudaMemcpyDeviceToHost));
    return x;
}
// number of elements that differ (bf16 bits, fp8 codes, ...)
template <typename V> static long count_diff(const V& a, const V& b) {
    long d = 0;
    for (size_t i = 0; i < a.size(); i++) { d += a[i] != b[i]; }
    return d;
}

// ------------------------------------------------------------------------------------------
// checks: `PASS|FAIL name err=... tol=...` lines and their counters

// printf into one of a few rotating buffers (names of checks)
static const char* fmt(const char* f, ...) {
    static char buf[4][200];
    static int k = 0;
    k = (k + 1) % 4;
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf[k], sizeof(buf[k]), f, ap);
    va_end(ap);
    return buf[k];
}

static int n_passed = 0, n_failed = 0;
static char shape_tag[64] = "";   // prefix of check names (test_kernels: the shape being tested)

static void report(bool ok, const char* name, double err, double tol, const char* note = "") {
    printf("%s %s%s err=%.3e tol=%.1e%s%s\n", ok ? "PASS" : "FAIL", shape_tag, name, err, tol, note[0] ? " " : "", note);
    if (ok) { n_passed++; } else { n_failed++; }
}
// relative L2 error ||out - ref|| / ||ref|| over the finite outputs; *nonfinite counts the others
static double rel_l2(const VF& out, const VD& ref, long* nonfinite) {
    double e2 = 0.0, r2 = 0.0;
    *nonfinite = 0;
    for (size_t i = 0; i < ref.size(); i++) {
        if (!isfinite(out[i])) { (*nonfinite)++; continue; }
        double d = out[i] - ref[i];
        e2 += d * d;
        r2 += ref[i] * ref[i];
    }
    return sqrt(e2 / (r2 > 0.0 ? r2 : 1e-300));
}
// relative L2 error against the reference; any non-finite output (poison never overwritten) fails
static void check_close(const char* name, const VF& out, const VD& ref, double tol) {
    long bad;
    double err = rel_l2(out, ref, &bad);
    report(bad == 0 && err <= tol, name, err, tol, bad ? fmt("(%ld of %zu non-finite: unwritten or NaN)", bad, ref.size()) : "");
}
// exact checks: err is the number of offending elements
static void check_count(const char* name, long bad, const char* note = "") { report(bad == 0, name, (double)bad, 0.0, note); }

// ------------------------------------------------------------------------------------------
// start-up

// true with *prop filled and `prog on <GPU name>` printed; false (`prog: no GPU, skipped`) when
// there is no GPU: the caller then exits 77
static bool gpu_found(const char* prog, cudaDeviceProp* prop) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("%s: no GPU, skipped\n", prog);
        return false;
    }
    cudaCheck(cudaGetDeviceProperties(prop, 0));
    printf("%s on %s\n", prog, prop->name);
    return true;
}

// ------------------------------------------------------------------------------------------
// timing

#ifndef TEST_TIME_REPS
#define TEST_TIME_REPS 50
#endif
#ifndef TEST_TIME_WARM
#define TEST_TIME_WARM 5
#endif

// median time in ms of `reps` runs after `warm` untimed ones; runs are queued back to back,
// an event between consecutive runs
template <typename F> static float time_ms(F run, int reps = TEST_TIME_REPS, int warm = TEST_TIME_WARM) {
    for (int i = 0; i < warm; i++) { run(); }
    std::vector<cudaEvent_t> ev(reps + 1);
    for (auto& e : ev) { cudaCheck(cudaEventCreate(&e)); }
    cudaCheck(cudaEventRecord(ev[0]));
    for (int i = 0; i < reps; i++) { run(); cudaCheck(cudaEventRecord(ev[i + 1])); }
    cudaCheck(cudaEventSynchronize(ev[reps]));
    std::vector<float> t(reps);
    for (int i = 0; i < reps; i++) { cudaCheck(cudaEventElapsedTime(&t[i], ev[i], ev[i + 1])); }
    for (auto& e : ev) { cudaCheck(cudaEventDestroy(e)); }
    std::sort(t.begin(), t.end());
    return t[reps / 2];
}

#endif // DEV_TEST_UTIL_CUH
