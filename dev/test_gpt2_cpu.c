// Tests of the fp64 GPT-2 reference (dev/gpt2_ref.h), and the CPU half of the GPU test.
//   test_gpt2_cpu                                 unit tests: gradient check, AdamW, checkpoints
//   test_gpt2_cpu --compare DIR                   check the CUDA test program's outputs in DIR
//   test_gpt2_cpu --selftest-write DIR [--corrupt] write DIR as a GPU run would, from the
//                                                 reference itself (--corrupt spoils one gradient)
// Build: gcc -O2 -Wall -Wextra -o dev/test_gpt2_cpu dev/test_gpt2_cpu.c -lm
#include <math.h>
#include <unistd.h>
#include <sys/wait.h>
#include "gpt2_ref.h"
#include "test_check.h"

// splitmix64: a fixed seed makes every run test the same model
static uint64_t rng_state = 0x2024032620261122ull;
static double rand_uniform(void) { // [0,1)
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53;
}
static double rand_normal(void) { // Box-Muller
    double u1 = 1.0 - rand_uniform(), u2 = rand_uniform();
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

// Matrices and biases ~ N(0, std); LayerNorm gains ~ 1 and shifts ~ 0, as in a trained
// model. Padded wte rows get random values too, so the tests see that they are ignored.
static void random_params(const GPT2RefConfig* cfg, double* params, double std) {
    size_t sizes[GPT2REF_NUM_TENSORS];
    gpt2ref_tensor_sizes(cfg, sizes);
    for (int t = 0; t < GPT2REF_NUM_TENSORS; t++) {
        const char* name = gpt2ref_tensor_name(t);
        int is_ln = name[0] == 'l' && name[1] == 'n';
        int is_gain = is_ln && name[strlen(name) - 1] == 'w';
        for (size_t i = 0; i < sizes[t]; i++) {
            *params++ = is_gain ? 1.0 + 0.2 * rand_normal() : is_ln ? 0.2 * rand_normal() : std * rand_normal();
        }
    }
}

static size_t tensor_offset(const GPT2RefConfig* cfg, int tensor) {
    size_t sizes[GPT2REF_NUM_TENSORS], off = 0;
    gpt2ref_tensor_sizes(cfg, sizes);
    for (int t = 0; t < tensor; t++) { off += sizes[t]; }
    return off;
}

static void write_checkpoint(const char* path, const GPT2RefConfig* cfg, const double* params, int version) {
    int32_t h[256] = {0};
    h[0] = GPT2REF_MAGIC;
    h[1] = version;
    h[2] = cfg->maxT;
    h[3] = cfg->V;
    h[4] = cfg->L;
    h[5] = cfg->NH;
    h[6] = cfg->C;
    h[7] = cfg->Vp;
    FILE* f = fopen_or_die(path, "wb");
    fwrite_or_die(h, sizeof(int32_t), 256, f, path);
    size_t n = gpt2ref_num_params(cfg);
    for (size_t i = 0; i < n; i++) {
        float v = (float)params[i];
        if (version == 3) {
            fwrite_or_die(&v, sizeof(float), 1, f, path);
        } else {
            uint32_t bits;
            memcpy(&bits, &v, sizeof(bits));
            uint16_t top = (uint16_t)(bits >> 16);
            fwrite_or_die(&top, sizeof(top), 1, f, path);
        }
    }
    fclose_or_die(f, path);
}

// ----------------------------------------------------------------------------
// Unit tests on a tiny model.

// Fourth-order central differences, h = 1e-5, in double. The plain two-point formula's
// truncation error h^2 |f'''| / 6 reaches 5e-7 relative on some seeds (weights of std 0.5
// curve the loss sharply, |f'''| ~ 1e3): too close to the tolerance. The five-point
// stencil's is ~h^4, negligible, which leaves the cancellation error, a few 1e-16 |loss| / h
// ~ 2e-10 absolute. Relative to max(|grad|, 1e-3) that is <= 2e-7 (seen over 20 seeds), so
// 1e-6 has 5x margin and still catches any slip of one part in a million (see the self-test).
#define FD_STEP 1e-5
#define FD_REL_TOL 1e-6
#define FD_FLOOR 1e-3

// Largest per-element |a - b| / max(|a|, |b|, FD_FLOOR) over n elements.
static double max_rel_err(const double* a, const double* b, size_t n) {
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double scale = fmax(fmax(fabs(a[i]), fabs(b[i])), FD_FLOOR);
        double e = fabs(a[i] - b[i]) / scale;
        if (!(e <= worst)) { worst = e; } // NaN propagates as the worst
    }
    return worst;
}

static void test_gradients(void) {
    GPT2RefConfig cfg = {.maxT = 8, .V = 37, .Vp = 40, .L = 2, .NH = 2, .C = 8};
    int B = 2, T = 5; // T < maxT: the unused wpe rows are checked too
    size_t sizes[GPT2REF_NUM_TENSORS];
    size_t n = gpt2ref_tensor_sizes(&cfg, sizes);
    double* params = (double*)malloc_or_die(n * sizeof(double), "params");
    double* grads = (double*)malloc_or_die(n * sizeof(double), "grads");
    double* numeric = (double*)malloc_or_die(n * sizeof(double), "numeric grads");
    random_params(&cfg, params, 0.5);
    int tokens[10], targets[10]; // (B,T)
    for (int i = 0; i < B * T; i++) {
        tokens[i] = (int)(rand_uniform() * cfg.V);
        targets[i] = (int)(rand_uniform() * cfg.V);
    }
    targets[B * T - 1] = cfg.V - 1; // a target on the last real column: the edge of the softmax range

    GPT2RefActs acts = gpt2ref_acts_new(&cfg, B, T);
    double loss = gpt2ref_forward(&acts, &cfg, params, tokens, targets);
    gpt2ref_backward(&acts, &cfg, params, tokens, targets, grads);
    printf("tiny model: %zu parameters, loss %.6f\n", n, loss);
    check(isfinite(loss) && loss > 0.0, "loss is finite and positive (%.6f)", loss);

    // every parameter, not a sample: the model is small enough
    for (size_t i = 0; i < n; i++) {
        double saved = params[i];
        const double at[4] = {2.0, 1.0, -1.0, -2.0};
        double l[4]; // loss at saved + at[k] * h
        for (int k = 0; k < 4; k++) {
            params[i] = saved + at[k] * FD_STEP;
            l[k] = gpt2ref_forward(&acts, &cfg, params, tokens, targets);
        }
        params[i] = saved;
        numeric[i] = (8.0 * (l[1] - l[2]) - (l[0] - l[3])) / (12.0 * FD_STEP);
    }
    size_t off = 0;
    for (int t = 0; t < GPT2REF_NUM_TENSORS; t++) {
        double e = max_rel_err(grads + off, numeric + off, sizes[t]);
        check(e <= FD_REL_TOL, "gradcheck %-8s (%4zu elements) max rel err %.2e (tol %.0e)",
              gpt2ref_tensor_name(t), sizes[t], e, FD_REL_TOL);
        off += sizes[t];
    }

    // padded vocabulary: logits are computed there but the loss never reads them
    double pad_analytic = 0.0, pad_numeric = 0.0, pad_logit_err = 0.0, pad_logit_max = 0.0;
    for (size_t i = (size_t)cfg.V * cfg.C; i < (size_t)cfg.Vp * cfg.C; i++) {
        pad_analytic = fmax(pad_analytic, fabs(grads[i]));
        pad_numeric = fmax(pad_numeric, fabs(numeric[i]));
    }
    for (int r = 0; r < B * T; r++) {
        for (int v = cfg.V; v < cfg.Vp; v++) {
            double z = 0.0;
            for (int c = 0; c < cfg.C; c++) { z += acts.lnf[r * cfg.C + c] * params[(size_t)v * cfg.C + c]; }
            pad_logit_err = fmax(pad_logit_err, fabs(acts.logits[(size_t)r * cfg.Vp + v] - z));
            pad_logit_max = fmax(pad_logit_max, fabs(z));
        }
    }
    check(pad_analytic == 0.0, "padded wte rows [%d,%d) get exactly zero analytic gradient", cfg.V, cfg.Vp);
    check(pad_numeric == 0.0, "padded wte rows do not change the loss at all (max |numeric grad| %.1e)", pad_numeric);
    check(pad_logit_max > 0.1 && pad_logit_err < 1e-12,
          "padded logit columns are computed as lnf . wte[v] (max |logit| %.2f, err %.1e)", pad_logit_max, pad_logit_err);

    // self-test: the comparison must catch a one-in-1e5 error in a single element
    int victim = 4; // qkvw
    size_t j = tensor_offset(&cfg, victim) + sizes[victim] / 2;
    double* spoiled = (double*)malloc_or_die(n * sizeof(double), "spoiled grads");
    memcpy(spoiled, grads, n * sizeof(double));
    spoiled[j] += 1e-5 * fmax(fabs(spoiled[j]), FD_FLOOR);
    double e = max_rel_err(spoiled + tensor_offset(&cfg, victim), numeric + tensor_offset(&cfg, victim), sizes[victim]);
    check(e > FD_REL_TOL, "self-test: a 1e-5 relative error in one %s element is caught (err %.2e > tol %.0e)",
          gpt2ref_tensor_name(victim), e, FD_REL_TOL);

    free(spoiled);
    gpt2ref_acts_free(&acts);
    free(params);
    free(grads);
    free(numeric);
}

// Step 1 of AdamW has a closed form (m_hat = g, v_hat = g^2), independent of the moment
// bookkeeping; check it, and the weight decay mask, with clipping both active and
// inactive, then train a few steps.
static void test_adamw(void) {
    GPT2RefConfig cfg = {.maxT = 8, .V = 37, .Vp = 40, .L = 2, .NH = 2, .C = 8};
    GPT2RefAdamW opt = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1, .grad_clip = 1.0};
    int B = 2, T = 5;
    size_t sizes[GPT2REF_NUM_TENSORS];
    size_t n = gpt2ref_tensor_sizes(&cfg, sizes);
    double* params = (double*)malloc_or_die(n * sizeof(double), "params");
    double* p1 = (double*)malloc_or_die(n * sizeof(double), "params after a step");
    double* grads = (double*)malloc_or_die(n * sizeof(double), "grads");
    double* scaled = (double*)malloc_or_die(n * sizeof(double), "scaled grads");
    double* m = (double*)malloc_or_die(n * sizeof(double), "adam m");
    double* v = (double*)malloc_or_die(n * sizeof(double), "adam v");
    random_params(&cfg, params, 0.5);
    int tokens[10], targets[10]; // (B,T)
    for (int i = 0; i < B * T; i++) {
        tokens[i] = (int)(rand_uniform() * cfg.V);
        targets[i] = (int)(rand_uniform() * cfg.V);
    }
    GPT2RefActs acts = gpt2ref_acts_new(&cfg, B, T);
    gpt2ref_forward(&acts, &cfg, params, tokens, targets);
    gpt2ref_backward(&acts, &cfg, params, tokens, targets, grads);

    const double gscales[2] = {100.0, 1e-3}; // global norm above the clip, then below it
    for (int k = 0; k < 2; k++) {
        double norm = 0.0;
        for (size_t i = 0; i < n; i++) {
            scaled[i] = grads[i] * gscales[k];
            norm += scaled[i] * scaled[i];
        }
        norm = sqrt(norm);
        double clip = norm > 1.0 ? 1.0 / norm : 1.0;
        memcpy(p1, params, n * sizeof(double));
        memset(m, 0, n * sizeof(double));
        memset(v, 0, n * sizeof(double));
        double got_norm = gpt2ref_adamw_step(&cfg, &opt, p1, scaled, m, v, 1);
        double worst = 0.0;
        size_t i = 0;
        for (int t = 0; t < GPT2REF_NUM_TENSORS; t++) {
            // the decay mask spelled out by name, independently of the reference's table
            char key[16];
            snprintf(key, sizeof(key), " %s ", gpt2ref_tensor_name(t));
            double wd = strstr(" wte wpe qkvw attprojw fcw fcprojw ", key) ? opt.weight_decay : 0.0;
            for (size_t e = 0; e < sizes[t]; e++, i++) {
                double g = scaled[i] * clip;
                double want = params[i] - opt.lr * (g / (fabs(g) + opt.eps) + wd * params[i]);
                worst = fmax(worst, fabs(p1[i] - want));
            }
        }
        check(fabs(got_norm - norm) <= 1e-12 * norm && worst < 1e-15,
              "adamw step 1 matches closed form, grad norm %.3g %s clip (max err %.1e)",
              norm, norm > 1.0 ? "above" : "below", worst);
    }

    // a few steps on one batch must lower its loss
    memset(m, 0, n * sizeof(double));
    memset(v, 0, n * sizeof(double));
    double first = 0.0, last = 0.0;
    for (int step = 1; step <= 20; step++) {
        last = gpt2ref_forward(&acts, &cfg, params, tokens, targets);
        if (step == 1) { first = last; }
        gpt2ref_backward(&acts, &cfg, params, tokens, targets, grads);
        gpt2ref_adamw_step(&cfg, &opt, params, grads, m, v, step);
    }
    check(last < first - 0.01, "20 adamw steps lower the loss on a fixed batch (%.4f -> %.4f)", first, last);

    gpt2ref_acts_free(&acts);
    free(params);
    free(p1);
    free(grads);
    free(scaled);
    free(m);
    free(v);
}

// Runs the loader in a child process: it must exit non-zero (die) on a bad file.
static int load_fails(const char* path) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) { die("fork failed: %s", strerror(errno)); }
    if (pid == 0) {
        fprintf(stderr, "  expected rejection -> ");
        GPT2RefConfig cfg;
        gpt2ref_load_checkpoint(path, &cfg);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) != 0;
}

static void test_checkpoints(void) {
    GPT2RefConfig cfg = {.maxT = 8, .V = 37, .Vp = 40, .L = 2, .NH = 2, .C = 8};
    size_t n = gpt2ref_num_params(&cfg);
    double* params = (double*)malloc_or_die(n * sizeof(double), "params");
    random_params(&cfg, params, 0.5);
    char path[64];
    snprintf(path, sizeof(path), "/tmp/test_gpt2_cpu_%d.bin", (int)getpid());

    for (int version = 3; version <= 5; version += 2) {
        write_checkpoint(path, &cfg, params, version);
        GPT2RefConfig got;
        double* loaded = gpt2ref_load_checkpoint(path, &got);
        int same_cfg = got.maxT == cfg.maxT && got.V == cfg.V && got.Vp == cfg.Vp && got.L == cfg.L &&
                       got.NH == cfg.NH && got.C == cfg.C;
        double worst = 0.0;
        for (size_t i = 0; i < n; i++) {
            float f = (float)params[i];
            uint32_t bits;
            memcpy(&bits, &f, sizeof(bits));
            if (version == 5) { bits &= 0xffff0000u; } // bf16 keeps the top half
            memcpy(&f, &bits, sizeof(f));
            worst = fmax(worst, fabs(loaded[i] - (double)f));
        }
        check(same_cfg && worst == 0.0, "checkpoint v%d round trip (config and all %zu values exact)", version, n);
        free(loaded);
    }

    // corrupt the header of a valid file, one field at a time
    struct { int field, value; const char* what; } bad[] = {
        {0, 1234, "bad magic"}, {1, 4, "unknown version"}, {6, 9, "C not a multiple of NH"}, {7, 30, "Vp < V"}};
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        write_checkpoint(path, &cfg, params, 3);
        FILE* f = fopen_or_die(path, "r+b");
        fseek(f, bad[k].field * (long)sizeof(int32_t), SEEK_SET);
        int32_t v = bad[k].value;
        fwrite_or_die(&v, sizeof(v), 1, f, path);
        fclose_or_die(f, path);
        check(load_fails(path), "checkpoint with %s is rejected", bad[k].what);
    }
    write_checkpoint(path, &cfg, params, 3);
    if (truncate(path, file_size_or_die(path) - 4) != 0) { die("truncate '%s': %s", path, strerror(errno)); }
    check(load_fails(path), "truncated checkpoint is rejected");
    remove(path);
    free(params);
}

// ----------------------------------------------------------------------------
// The GPU comparison. The CUDA program writes DIR/{model.bin, batch.bin, gpu_out.bin}.

#define GPU_OUT_MAGIC 20261122
#define COMPARE_LR 1e-3

// BF16 keeps 8 significant bits (rounding error 2^-9 ~ 2e-3 per rounding), compounded over
// the layers; a wrong layer is off by O(1). Each tolerance is set from the errors the
// trainer's test model (dev/test_model.cu) showed on an H100 against this reference over
// two versions of its kernels, noted "seen", with a few times margin.
// logits: ~10 bf16 roundings of inputs and weights on the way. Seen 5.5e-3.
#define TOL_LOGITS_REL 2e-2
// worst single logit, relative to the largest |logit| (a slip in a single row, e.g. the
// causal mask at t=0, shows here). Seen 4.7e-3.
#define TOL_LOGITS_MAXABS 2e-2
// loss: the target logit's error minus its softmax-weighted mean, averaged over B*T rows,
// mostly cancels. Seen 4e-6 and 7e-5; 2e-3 is 0.02% of the loss, like the step losses below.
#define TOL_LOSS_ABS 2e-3
// grads: twice the forward's roundings plus bf16 dlogits and bf16 gradient storage.
// Seen 2e-3 (lnfb) to 6e-3 (fcw).
#define TOL_GRAD_REL 3e-2
// losses over the AdamW steps. Seen 1.4e-4 at most over 10 steps. A reference without
// bias correction is off by 2.4e-2, one without clipping by 6.7e-3 by step 9, so 2e-3
// catches both. (Weight decay on the wrong tensors moves the loss by only ~3e-4: the
// unit tests check the decay mask instead.)
#define TOL_LOSSES_REL 2e-3

// ||a - b|| / ||b||, with b the reference; the absolute norm when b is all zeros.
static double rel_l2(const float* a, const double* b, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += b[i] * b[i];
    }
    return den > 0.0 ? sqrt(num / den) : sqrt(num);
}

static void row(const char* what, const char* metric, double value, double tol, const char* note) {
    int ok = value <= tol; // NaN fails
    printf("%-16s %-18s %11.3e %11.3e  %-4s %s\n", what, metric, value, tol, ok ? "PASS" : "FAIL", note);
    check_tally(ok);
}

static void* read_file_exact(const char* path, long* size) {
    *size = file_size_or_die(path);
    void* buf = malloc_or_die((size_t)*size, path);
    FILE* f = fopen_or_die(path, "rb");
    fread_or_die(buf, 1, (size_t)*size, f, path);
    fclose_or_die(f, path);
    return buf;
}

static void compare_dir(const char* dir) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/model.bin", dir);
    GPT2RefConfig cfg;
    double* params = gpt2ref_load_checkpoint(path, &cfg);
    size_t sizes[GPT2REF_NUM_TENSORS];
    size_t n = gpt2ref_tensor_sizes(&cfg, sizes);

    snprintf(path, sizeof(path), "%s/batch.bin", dir);
    long bsize;
    int32_t* batch = (int32_t*)read_file_exact(path, &bsize);
    if (bsize < 8) { die("'%s': too short for its B, T header", path); }
    int B = batch[0], T = batch[1];
    if (B <= 0 || T <= 0 || T > cfg.maxT) { die("'%s': bad B=%d T=%d (maxT=%d)", path, B, T, cfg.maxT); }
    if (bsize != 8 + 8L * B * T) { die("'%s': %ld bytes, expected %ld for B=%d T=%d", path, bsize, 8 + 8L * B * T, B, T); }
    const int* tokens = batch + 2;          // (B,T)
    const int* targets = batch + 2 + B * T; // (B,T)
    size_t N = (size_t)B * T;

    snprintf(path, sizeof(path), "%s/gpu_out.bin", dir);
    long gsize;
    int64_t* gout = (int64_t*)read_file_exact(path, &gsize);
    if (gsize < 64) { die("'%s': too short for its header", path); }
    if (gout[0] != GPU_OUT_MAGIC) { die("'%s': bad magic %lld, expected %d", path, (long long)gout[0], GPU_OUT_MAGIC); }
    if (gout[1] != B || gout[2] != T || gout[3] != cfg.Vp || gout[4] != (int64_t)n) {
        die("'%s': header says B=%lld T=%lld Vp=%lld params=%lld; batch and model say %d %d %d %zu", path,
            (long long)gout[1], (long long)gout[2], (long long)gout[3], (long long)gout[4], B, T, cfg.Vp, n);
    }
    int nsteps = (int)gout[5];
    if (nsteps < 1) { die("'%s': nsteps=%d, expected at least 1", path, nsteps); }
    long want = 64 + 4L * (long)(N * cfg.Vp + 1 + n + nsteps);
    if (gsize != want) { die("'%s': %ld bytes, expected %ld", path, gsize, want); }
    const float* gpu_logits = (const float*)(gout + 8);  // (B,T,Vp)
    float gpu_loss = gpu_logits[N * cfg.Vp];
    const float* gpu_grads = gpu_logits + N * cfg.Vp + 1; // (num_params)
    const float* gpu_losses = gpu_grads + n;              // (nsteps)

    printf("config: V=%d Vp=%d maxT=%d L=%d NH=%d C=%d; batch B=%d T=%d; %zu params; %d steps\n",
           cfg.V, cfg.Vp, cfg.maxT, cfg.L, cfg.NH, cfg.C, B, T, n, nsteps);
    printf("%-16s %-18s %11s %11s  %s\n", "quantity", "metric", "value", "tolerance", "result");

    GPT2RefActs acts = gpt2ref_acts_new(&cfg, B, T);
    double* grads = (double*)malloc_or_die(n * sizeof(double), "ref grads");
    double loss = gpt2ref_forward(&acts, &cfg, params, tokens, targets);
    gpt2ref_backward(&acts, &cfg, params, tokens, targets, grads);

    double maxabs = 0.0, maxref = 0.0;
    for (size_t i = 0; i < N * cfg.Vp; i++) {
        double d = fabs((double)gpu_logits[i] - acts.logits[i]);
        if (!(d <= maxabs)) { maxabs = d; }
        maxref = fmax(maxref, fabs(acts.logits[i]));
    }
    char note[128];
    row("logits", "rel L2", rel_l2(gpu_logits, acts.logits, N * cfg.Vp), TOL_LOGITS_REL, "");
    snprintf(note, sizeof(note), "max abs %.3e, max |ref| %.3f", maxabs, maxref);
    row("logits", "max abs / max|ref|", maxabs / fmax(maxref, 1e-30), TOL_LOGITS_MAXABS, note);
    snprintf(note, sizeof(note), "gpu %.6f ref %.6f", gpu_loss, loss);
    row("loss", "abs diff", fabs(gpu_loss - loss), TOL_LOSS_ABS, note);
    size_t off = 0;
    for (int t = 0; t < GPT2REF_NUM_TENSORS; t++) {
        char what[32];
        snprintf(what, sizeof(what), "grad %s", gpt2ref_tensor_name(t));
        row(what, "rel L2", rel_l2(gpu_grads + off, grads + off, sizes[t]), TOL_GRAD_REL, "");
        off += sizes[t];
    }
    if (cfg.Vp > cfg.V) { // padded logits get zero gradient, and nothing else touches those rows
        double pad = 0.0;
        for (size_t i = (size_t)cfg.V * cfg.C; i < (size_t)cfg.Vp * cfg.C; i++) {
            if (!(fabs(gpu_grads[i]) <= pad)) { pad = fabs(gpu_grads[i]); }
        }
        row("grad wte[V:Vp]", "max abs", pad, 0.0, "padded rows must be exactly 0");
    }

    // the same AdamW steps on the same batch; loss recorded before each update
    GPT2RefAdamW opt = {.lr = COMPARE_LR, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1, .grad_clip = 1.0};
    double* m = (double*)calloc_or_die(n, sizeof(double), "adam m");
    double* v = (double*)calloc_or_die(n, sizeof(double), "adam v");
    for (int step = 0; step < nsteps; step++) {
        if (step > 0) {
            loss = gpt2ref_forward(&acts, &cfg, params, tokens, targets);
            gpt2ref_backward(&acts, &cfg, params, tokens, targets, grads);
        }
        char what[32];
        snprintf(what, sizeof(what), "loss step %d", step);
        snprintf(note, sizeof(note), "gpu %.6f ref %.6f", gpu_losses[step], loss);
        row(what, "rel diff", fabs(gpu_losses[step] - loss) / fabs(loss), TOL_LOSSES_REL, note);
        if (step + 1 < nsteps) { gpt2ref_adamw_step(&cfg, &opt, params, grads, m, v, step + 1); }
    }

    gpt2ref_acts_free(&acts);
    free(params);
    free(batch);
    free(gout);
    free(grads);
    free(m);
    free(v);
}

// Writes DIR as the CUDA test program would, but from the reference itself, so that
// --compare must pass; with corrupt, one gradient tensor is 10% off so that it must fail.
static void selftest_write(const char* dir, int corrupt) {
    // the trainer's test shape: real GPT-2 vocabulary, padded
    GPT2RefConfig cfg = {.maxT = 64, .V = 50257, .Vp = 50304, .L = 2, .NH = 2, .C = 128};
    int B = 4, T = 64, nsteps = 3;
    size_t sizes[GPT2REF_NUM_TENSORS];
    size_t n = gpt2ref_tensor_sizes(&cfg, sizes), N = (size_t)B * T;
    double* params = (double*)malloc_or_die(n * sizeof(double), "params");
    random_params(&cfg, params, 0.02);
    for (size_t i = (size_t)cfg.V * cfg.C; i < (size_t)cfg.Vp * cfg.C; i++) { params[i] = 0.0; } // as the trainer pads
    for (size_t i = 0; i < n; i++) { params[i] = (float)params[i]; } // model.bin stores fp32
    int32_t* batch = (int32_t*)malloc_or_die((2 + 2 * N) * sizeof(int32_t), "batch"); // B, T, (B,T), (B,T)
    batch[0] = B;
    batch[1] = T;
    for (size_t i = 0; i < 2 * N; i++) { batch[2 + i] = (int32_t)(rand_uniform() * cfg.V); }

    char path[4096];
    mkdir_p_or_die(dir);
    snprintf(path, sizeof(path), "%s/model.bin", dir);
    write_checkpoint(path, &cfg, params, 3);
    snprintf(path, sizeof(path), "%s/batch.bin", dir);
    FILE* f = fopen_or_die(path, "wb");
    fwrite_or_die(batch, sizeof(int32_t), 2 + 2 * N, f, path);
    fclose_or_die(f, path);

    GPT2RefAdamW opt = {.lr = COMPARE_LR, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1, .grad_clip = 1.0};
    GPT2RefActs acts = gpt2ref_acts_new(&cfg, B, T);
    double* grads = (double*)malloc_or_die(n * sizeof(double), "grads");
    double* m = (double*)calloc_or_die(n, sizeof(double), "adam m");
    double* v = (double*)calloc_or_die(n, sizeof(double), "adam v");
    float* out = (float*)malloc_or_die((N * cfg.Vp + 1 + n + nsteps) * sizeof(float), "gpu_out body");
    for (int step = 0; step < nsteps; step++) {
        double loss = gpt2ref_forward(&acts, &cfg, params, batch + 2, batch + 2 + N);
        gpt2ref_backward(&acts, &cfg, params, batch + 2, batch + 2 + N, grads);
        if (step == 0) {
            for (size_t i = 0; i < N * cfg.Vp; i++) { out[i] = (float)acts.logits[i]; }
            out[N * cfg.Vp] = (float)loss;
            for (size_t i = 0; i < n; i++) { out[N * cfg.Vp + 1 + i] = (float)grads[i]; }
        }
        out[N * cfg.Vp + 1 + n + step] = (float)loss;
        if (step + 1 < nsteps) { gpt2ref_adamw_step(&cfg, &opt, params, grads, m, v, step + 1); }
    }
    if (corrupt) {
        int victim = 9; // ln2b
        float* g = out + N * cfg.Vp + 1 + tensor_offset(&cfg, victim);
        for (size_t i = 0; i < sizes[victim]; i++) { g[i] *= 1.1f; }
        printf("corrupted: grad %s scaled by 1.1\n", gpt2ref_tensor_name(victim));
    }
    snprintf(path, sizeof(path), "%s/gpu_out.bin", dir);
    int64_t h[8] = {GPU_OUT_MAGIC, B, T, cfg.Vp, (int64_t)n, nsteps, 0, 0};
    f = fopen_or_die(path, "wb");
    fwrite_or_die(h, sizeof(int64_t), 8, f, path);
    fwrite_or_die(out, sizeof(float), N * cfg.Vp + 1 + n + nsteps, f, path);
    fclose_or_die(f, path);
    printf("wrote %s/{model.bin,batch.bin,gpu_out.bin}\n", dir);

    gpt2ref_acts_free(&acts);
    free(params);
    free(batch);
    free(grads);
    free(m);
    free(v);
    free(out);
}

int main(int argc, char** argv) {
    if (argc == 3 && strcmp(argv[1], "--compare") == 0) {
        compare_dir(argv[2]);
    } else if ((argc == 3 || (argc == 4 && strcmp(argv[3], "--corrupt") == 0)) &&
               strcmp(argv[1], "--selftest-write") == 0) {
        selftest_write(argv[2], argc == 4);
        return 0;
    } else if (argc == 1) {
        test_gradients();
        test_adamw();
        test_checkpoints();
    } else {
        fprintf(stderr, "usage: %s [--compare DIR | --selftest-write DIR [--corrupt]]\n", argv[0]);
        return 2;
    }
    return check_summary();
}
