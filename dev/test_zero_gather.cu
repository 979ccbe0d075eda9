// ZeRO-1 weight distribution on several GPUs (run under mpirun, >= 2 ranks, one GPU each):
// the FP8 gather of llmc/gpt2.cuh (each rank casts the FP8 weights' parts in its shard, codes
// travel) against the BF16 all-gather followed by local casts (--zero-fp8-gather 0).
// Checks, for delayed and current scaling, over two emulated steps (the first on each weight's
// own amax, the second on the history):
//  - every FP8 weight copy is the same, code for code;
//  - the scales that the next step folds are the same (the parts' amaxes max-reduce to the whole's);
//  - the BF16 tensors that travel as BF16 arrive, and gpt2_params_sync completes the rest.
// Then times both ways of distributing the updated weights (median of 20, CUDA events), with
// the bytes each moves; --no-timing skips that, --model NAME picks the model (default d12).
// Prints `PASS|FAIL name ...` and ends with `N passed, N failed` (rank 0).
#include "../llmc/linear_fp8.cuh"
#include "../llmc/gpt2.cuh"
#include "test_check.h"
#include <vector>
#include <algorithm>
#include <functional>

// x[off, off + n) *= 1.5: an "update" of one rank's shard only
__global__ void scale_range_kernel(floatX* x, long n) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { x[i] = __float2bfloat16_rn(__bfloat162float(x[i]) * 1.5f); }
}

static void update_own_shard(GPT2* m) {
    long n = (long)m->shard_count;
    if (n > 0) { scale_range_kernel<<<ceil_div(n, 256), 256, 0, m->stream>>>(m->params + m->shard_offset, n); }
    cudaCheckLaunch();
}

static std::vector<uint8_t> to_host(const void* d, size_t n) {
    std::vector<uint8_t> h(n);
    cudaCheck(cudaMemcpy(h.data(), d, n, cudaMemcpyDeviceToHost));
    return h;
}

// 1 on every rank when cond holds on every rank
static int all_ranks(const MultiGpu* mg, int cond) {
#ifdef MULTI_GPU
    int r = cond;
    MPI_Allreduce(&cond, &r, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return r;
#else
    (void)mg; return cond;
#endif
}

// The step's FP8 weights of model a (cast locally from all-gathered BF16) and b (gathered codes)
static long weights_differ(GPT2* a, GPT2* b) {
    long bad = 0;
    for (int id = 0; id < 4 * a->cfg.num_layers; id++) {
        Fp8Weight* wa = &a->lin.weights[id];
        Fp8Weight* wb = &b->lin.weights[id];
        size_t n = (size_t)wa->OC * wa->IC;
        if (wb->OC != wa->OC || wb->stale || wa->stale) { bad++; continue; }
        bad += to_host(wa->w, n) != to_host(wb->w, n);
    }
    return bad;
}

static void cast_all_weights(GPT2* m) {   // what the first micro-batch does on its way
    int L = m->cfg.num_layers;
    for (int k = 0; k < 4; k++) {
        int OC, IC;
        gpt2_linear_shape(m, k, &OC, &IC);
        for (int l = 0; l < L; l++) {
            fp8_weight_ready(&m->lin, fp8_linear_index(&m->lin, (LinearKind)k, l), gpt2_layer_param(m, m->p, LINEAR_WEIGHT_PARAM[k], l),
                             OC, IC, m->stream);
        }
    }
}

static void check_recipe(const MultiGpu* mg, const GPT2Config* cfg, Fp8Recipe recipe) {
    const char* rname = recipe == FP8_SCALING_CURRENT ? "current" : "delayed";
    LinearOptions oa, ob;
    linear_options_defaults(&oa);
    oa.scaling = recipe; oa.amax_history = 16; oa.zero_fp8_gather = 0;
    ob = oa; ob.zero_fp8_gather = 1;
    GPT2 a, b;
    gpt2_build(&a, cfg, &oa, mg, 1);
    gpt2_build(&b, cfg, &ob, mg, 1);
    linear_set_comm(&a.lin, mg); linear_set_comm(&b.lin, mg);
    char name[160];
    snprintf(name, sizeof(name), "%s: the BF16-gather model does not plan an FP8 gather, the other does", rname);
    check(!a.fp8_gather && b.fp8_gather, "%s", name);
    gpt2_init_random(&a, 11);
    gpt2_init_random(&b, 11);
    for (int step = 0; step < 2; step++) {
        update_own_shard(&a); update_own_shard(&b);
        gpt2_all_gather_params(&a);
        linear_weights_changed(&a.lin);
        b.weights_pending = b.bf16_partial = 1;
        linear_weights_changed(&b.lin);
        gpt2_step_begin(&a); cast_all_weights(&a);
        gpt2_step_begin(&b);
        cudaCheck(cudaDeviceSynchronize());
        long bad = weights_differ(&a, &b);
        snprintf(name, sizeof(name), "%s step %d: FP8 weight codes equal the local casts'", rname, step + 1);
        check(all_ranks(mg, bad == 0), "%s", name);
        // BF16-travelling tensors: embeddings, LayerNorms, biases
        int same = 1;
        for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
            if (i == P_QKVW || i == P_ATTPROJW || i == P_FCW || i == P_FCPROJW) { continue; }
            size_t bytes = a.param_sizes[i] * sizeof(floatX);
            same &= to_host(a.p[i], bytes) == to_host(b.p[i], bytes);
        }
        snprintf(name, sizeof(name), "%s step %d: BF16 tensors arrive with the codes", rname, step + 1);
        check(all_ranks(mg, same), "%s", name);
    }
    // the next fold sees the max over ranks of the parts' amaxes: the same scales
    linear_step_begin(&a.lin); linear_step_begin(&b.lin);
    int NT = a.lin.num_tensors;
    std::vector<uint8_t> sa = to_host(fp8_scale(a.lin.sc_block, NT), NT * sizeof(float));
    std::vector<uint8_t> sb = to_host(fp8_scale(b.lin.sc_block, NT), NT * sizeof(float));
    snprintf(name, sizeof(name), "%s: the scales folded from the gathered step equal the local casts'", rname);
    check(all_ranks(mg, sa == sb), "%s", name);
    gpt2_params_sync(&b);
    cudaCheck(cudaDeviceSynchronize());
    snprintf(name, sizeof(name), "%s: gpt2_params_sync completes every BF16 weight", rname);
    check(all_ranks(mg, to_host(a.params, a.num_params * 2) == to_host(b.params, b.num_params * 2)), "%s", name);
    // a test that can fail: a stale shard must show
    update_own_shard(&b);
    cudaCheck(cudaDeviceSynchronize());
    snprintf(name, sizeof(name), "%s: the comparison catches weights that differ", rname);
    check(all_ranks(mg, to_host(a.params, a.num_params * 2) != to_host(b.params, b.num_params * 2)), "%s", name);
}

// median over 20 runs (after 3 warm-up runs) of timed()'s time on stream s, CUDA events;
// before() runs first each time, outside the timing
static double median_ms(cudaStream_t s, const std::function<void()>& before, const std::function<void()>& timed) {
    cudaEvent_t e0, e1;
    cudaCheck(cudaEventCreate(&e0)); cudaCheck(cudaEventCreate(&e1));
    std::vector<double> t;
    for (int it = 0; it < 23; it++) {
        before();
        cudaCheck(cudaEventRecord(e0, s));
        timed();
        cudaCheck(cudaEventRecord(e1, s));
        cudaCheck(cudaEventSynchronize(e1));
        float ms; cudaCheck(cudaEventElapsedTime(&ms, e0, e1));
        if (it >= 3) { t.push_back(ms); }
    }
    cudaCheck(cudaEventDestroy(e0)); cudaCheck(cudaEventDestroy(e1));
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

static void time_gathers(const MultiGpu* mg, const GPT2Config* cfg, const char* model) {
    LinearOptions oa, ob;
    linear_options_defaults(&oa);
    oa.zero_fp8_gather = 0;
    ob = oa; ob.zero_fp8_gather = 1;
    GPT2 a, b;
    gpt2_build(&a, cfg, &oa, mg, 1);
    gpt2_init_random(&a, 3);
    linear_set_comm(&a.lin, mg);
    auto nothing = [] {};
    // BF16 all-gather, then each weight cast at first use
    double ta = median_ms(a.stream, [&] { linear_step_begin(&a.lin); }, [&] {
        gpt2_all_gather_params(&a);
        linear_weights_changed(&a.lin);
        cast_all_weights(&a);
    });
    double ca = median_ms(a.stream, nothing, [&] { gpt2_all_gather_params(&a); });   // the all-gather alone
    size_t bytes_a = a.padded_params * sizeof(floatX);
    cudaCheck(cudaDeviceSynchronize());
    // free a's big buffers before building b (d48 on small GPUs)
    cudaCheck(cudaFree(a.params)); cudaCheck(cudaFree(a.grads));
    cudaCheck(cudaFree(a.master)); cudaCheck(cudaFree(a.adam_m)); cudaCheck(cudaFree(a.adam_v));
    for (int id = 0; id < a.lin.num_linears; id++) { if (a.lin.weights[id].w) { cudaCheck(cudaFree(a.lin.weights[id].w)); a.lin.weights[id].w = NULL; } }
    gpt2_build(&b, cfg, &ob, mg, 1);
    gpt2_init_random(&b, 3);
    linear_set_comm(&b.lin, mg);
    // FP8 parts cast, one all-gather, codes placed
    double tb = median_ms(b.stream, [&] { linear_step_begin(&b.lin); }, [&] {
        b.weights_pending = 1;
        gpt2_gather_weights(&b);
        cast_all_weights(&b);           // casts nothing: the gather left every weight fresh
    });
    size_t bytes_b = b.gather_chunk * mg->nranks;
    uint8_t* buf = (uint8_t*)b.grads;
    double cb = median_ms(b.stream, nothing, [&] { multi_gpu_all_gather_bytes(mg, buf, buf + mg->rank * b.gather_chunk, bytes_b, b.stream); });
    if (mg->rank == 0) {
        printf("TIME %s on %d GPUs, weights distributed per step: BF16 all-gather + local casts %.3f ms (all-gather alone %.3f ms, "
               "%.1f MB); FP8 gather %.3f ms (all-gather alone %.3f ms, %.1f MB); %.2fx\n", model, mg->nranks, ta, ca,
               bytes_a / 1e6, tb, cb, bytes_b / 1e6, ta / tb);
    }
}

int main(int argc, char** argv) {
    MultiGpu mg;
    multi_gpu_init(&mg, &argc, &argv);
    int timing = 1;
    const char* model = "d12";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-timing") == 0) { timing = 0; }
        else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) { model = argv[++i]; }
    }
    if (mg.nranks < 2) {
        if (mg.rank == 0) { printf("SKIPPED: run under mpirun with at least 2 ranks\n"); }
        multi_gpu_finalize(&mg);
        return 77;
    }
    multi_gpu_init_device(&mg);
    if (mg.rank != 0 && freopen("/dev/null", "w", stdout) == NULL) { die("cannot silence rank %d", mg.rank); }
    GPT2Config cfg;
    gpt2_config_from_name(&cfg, "d12");
    check_recipe(&mg, &cfg, FP8_SCALING_DELAYED);
    check_recipe(&mg, &cfg, FP8_SCALING_CURRENT);
    if (timing) {
        if (!gpt2_config_from_name(&cfg, model)) { die("unknown model %s", model); }
        time_gathers(&mg, &cfg, model);
    }
    int all_passed = all_ranks(&mg, n_failed == 0);
    check_summary();
    multi_gpu_finalize(&mg);
    return all_passed ? 0 : 1;
}
