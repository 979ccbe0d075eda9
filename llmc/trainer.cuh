// The training program shared by every trainer: flags, data, model set-up, the
// optimisation loop, evaluation, sampling, checkpoints and logs. A trainer is one
// translation unit that includes its linear-layer header and then this file.
#ifndef LLMC_TRAINER_CUH
#define LLMC_TRAINER_CUH

#include "train_args.h"
#include "dataloader.h"
#include "tokenizer.h"
#include "checkpoint.h"
#include "rand.h"
#include "gpt2.cuh"

typedef struct {
    TrainArgs args;
    LinearOptions lopt;        // the precision's own flags
    MultiGpu mg;               // data-parallel ranks (one without mpirun)
    int rank, nranks;          // = mg.rank, mg.nranks
    int grad_accum;            // micro-batches per optimizer step
    int max_steps;
    int start_step;            // 0, or the step a resumed run starts from
    GPT2Config cfg;
    int model_file_version;    // 0 when initialised at random
    DataLoader train, val;
    int have_val;
    Tokenizer tok;
    GPT2 model;
    Schedule sched;
    Rng sample_rng;
    FILE* log;                 // DIR/log.jsonl, or NULL
    double peak_flops;         // dense BF16 peak of this GPU, 0 if unknown
    size_t mem_used;           // bytes in use on the GPU after set-up
    int ckpt_step;             // newest checkpoint written or resumed from, -1 none
} Trainer;

// Dense BF16 tensor-core peak by GPU name (the datasheets' figures without sparsity).
static inline double gpu_bf16_peak_flops(const char* name) {
    if (strstr(name, "H100") && (strstr(name, "PCIe") || strstr(name, "PCIE"))) { return 756e12; }
    if (strstr(name, "H100") || strstr(name, "H200") || strstr(name, "H800")) { return 989.4e12; }
    if (strstr(name, "A100")) { return 312e12; }
    return 0.0;
}

// FLOPs of one token's forward and backward: 6 per parameter, plus attention's
// QK^T and PV (12 * L * C * T, counted without the causal saving, as is customary).
static inline double gpt2_flops_per_token(const GPT2* m, int T) {
    return 6.0 * (double)m->num_params + 12.0 * m->cfg.num_layers * m->cfg.channels * (double)T;
}

// printf on rank 0 only: every rank runs the same loop, one speaks.
static inline void tprintf(const Trainer* t, const char* fmt, ...) {
    if (t->rank != 0) { return; }
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static inline void trainer_log(Trainer* t, const char* fmt, ...) {
    if (t->log == NULL) { return; }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(t->log, fmt, ap);
    va_end(ap);
    fputc('\n', t->log);
    fflush(t->log);
}

// Mean validation loss over the configured number of batches.
static inline float trainer_evaluate(Trainer* t) {
    DataLoader* v = &t->val;
    dataloader_reset(v);
    long nb = (long)dataloader_num_batches(v);
    if (t->args.val_batches >= 0 && t->args.val_batches < nb) { nb = t->args.val_batches; }
    double sum = 0.0;
    double t0 = now_seconds();
    for (long i = 0; i < nb; i++) {
        dataloader_next_batch(v);
        sum += gpt2_forward(&t->model, v->inputs, v->targets, t->args.B, t->args.T, 0.0f);
        if (t->rank == 0 && (isatty(fileno(stderr)) || i + 1 == nb)) {
            fprintf(stderr, "\rvalidating: batch %ld/%ld (%.1f s)", i + 1, nb, now_seconds() - t0);
        }
    }
    if (t->rank == 0) { fprintf(stderr, "\n"); }
    return nb > 0 ? (float)multi_gpu_mean_host(&t->mg, sum / nb) : NAN;
}

// Generates gen_tokens tokens after <|endoftext|> at temperature 1 and prints them.
static inline void trainer_sample(Trainer* t) {
    GPT2* m = &t->model;
    int n = t->args.gen_tokens + 1;
    if (n > t->args.T) { n = t->args.T; }
    int Vp = m->cfg.padded_vocab_size, V = m->cfg.vocab_size;
    int* tokens = (int*)calloc_or_die(n, sizeof(int), "sample tokens");
    floatX* row = (floatX*)malloc_or_die(Vp * sizeof(floatX), "sample logits");
    double* p = (double*)malloc_or_die(V * sizeof(double), "sample probabilities");
    tokens[0] = V - 1;   // <|endoftext|> is the last real token of GPT-2's vocabulary
    printf("generating:\n---\n");
    for (int i = 1; i < n; i++) {
        gpt2_forward(m, tokens, NULL, 1, i, 0.0f);
        cudaCheck(cudaMemcpyAsync(row, m->a.logits + (size_t)(i - 1) * Vp, Vp * sizeof(floatX), cudaMemcpyDeviceToHost, m->stream));
        cudaCheck(cudaStreamSynchronize(m->stream));
        double mx = -INFINITY, z = 0.0;
        for (int j = 0; j < V; j++) { p[j] = __bfloat162float(row[j]); mx = p[j] > mx ? p[j] : mx; }
        for (int j = 0; j < V; j++) { p[j] = exp(p[j] - mx); z += p[j]; }
        double u = rng_uniform(&t->sample_rng) * z, c = 0.0;
        int next = V - 1;
        for (int j = 0; j < V; j++) { c += p[j]; if (u < c) { next = j; break; } }
        tokens[i] = next;
        tokenizer_print(&t->tok, (uint32_t)next, stdout);
        fflush(stdout);
    }
    printf("\n---\n");
    free(tokens); free(row); free(p);
}

// Copies `count` device floats to a file through a bounded host buffer.
static inline void write_device_floats(AtomicFile* f, const float* src, size_t count) {
    const size_t chunk = 16u << 20;
    float* buf = (float*)malloc_or_die(chunk * sizeof(float), "checkpoint staging buffer");
    for (size_t i = 0; i < count; i += chunk) {
        size_t k = count - i < chunk ? count - i : chunk;
        cudaCheck(cudaMemcpy(buf, src + i, k * sizeof(float), cudaMemcpyDeviceToHost));
        atomic_write(f, buf, sizeof(float), k);
    }
    free(buf);
}

static inline void read_device_floats(FILE* f, const char* path, float* dst, size_t count) {
    const size_t chunk = 16u << 20;
    float* buf = (float*)malloc_or_die(chunk * sizeof(float), "checkpoint staging buffer");
    for (size_t i = 0; i < count; i += chunk) {
        size_t k = count - i < chunk ? count - i : chunk;
        fread_or_die(buf, sizeof(float), k, f, path);
        cudaCheck(cudaMemcpy(dst + i, buf, k * sizeof(float), cudaMemcpyHostToDevice));
    }
    free(buf);
}

static inline void state_header_fill(const Trainer* t, StateHeader* h, int step) {
    memset(h, 0, sizeof(*h));
    const GPT2* m = &t->model;
    h->magic = STATE_MAGIC; h->version = STATE_VERSION; h->step = step;
    h->num_params = (int64_t)m->num_params; h->rank = t->rank; h->nranks = t->nranks;
    h->offset = (int64_t)m->shard_offset; h->count = (int64_t)m->shard_count;
    h->B = t->args.B; h->T = t->args.T; h->total_batch = t->args.total_batch; h->seed = (int64_t)t->args.seed;
    DataLoaderState ds = dataloader_get_state(&t->train);
    h->data_epoch = (int64_t)ds.epoch; h->data_shard = (int64_t)ds.shard_pos; h->data_sample = (int64_t)ds.sample_pos;
    memcpy(h->sample_rng, t->sample_rng.s, sizeof(h->sample_rng));
    const GPT2Config* c = &m->cfg;
    int64_t cfgv[6] = {c->max_seq_len, c->vocab_size, c->padded_vocab_size, c->num_layers, c->num_heads, c->channels};
    memcpy(h->config, cfgv, sizeof(cfgv));
    h->qk_norm = m->qk_norm;
    h->qk_scale = m->qk_norm ? m->att_scale : 0.0;
    h->gemm_algos = gemm_algos_count(&m->lin.gemm);
    h->cublaslt_version = (int64_t)cublasLtGetVersion();
}

// Model file, this rank's state, then the DONE marker: a crash at any point leaves
// the previous complete checkpoint as the newest one.
static inline void trainer_save_checkpoint(Trainer* t, int step) {
    const char* dir = t->args.output_dir;
    GPT2* m = &t->model;
    char path[4096];
    double t0 = now_seconds();
    cudaCheck(cudaStreamSynchronize(m->stream));
    if (t->rank == 0) {
        uint16_t* host = (uint16_t*)malloc_or_die(m->num_params * sizeof(uint16_t), "checkpoint parameters");
        cudaCheck(cudaMemcpy(host, m->params, m->num_params * sizeof(uint16_t), cudaMemcpyDeviceToHost));
        checkpoint_path(path, sizeof(path), dir, "model", step, -1);
        model_file_write(path, &m->cfg, host, m->num_params);
        free(host);
    }
    StateHeader h;
    state_header_fill(t, &h, step);
    checkpoint_path(path, sizeof(path), dir, "state", step, t->rank);
    AtomicFile f;
    atomic_open(&f, path);
    atomic_write(&f, &h, sizeof(h), 1);
    write_device_floats(&f, m->master, (size_t)h.count);
    write_device_floats(&f, m->adam_m, (size_t)h.count);
    write_device_floats(&f, m->adam_v, (size_t)h.count);
    size_t extra = linear_state_bytes(&m->lin);   // e.g. FP8 amax histories and scales
    if (extra > 0) {
        void* buf = malloc_or_die(extra, "precision state");
        linear_state_save(&m->lin, buf);
        atomic_write(&f, buf, 1, extra);
        free(buf);
    }
    if (h.gemm_algos > 0) {   // so that a resumed run computes with the same algorithms
        int64_t* words = (int64_t*)malloc_or_die((size_t)h.gemm_algos * GEMM_ALGO_WORDS * sizeof(int64_t), "GEMM algorithms");
        gemm_algos_save(&m->lin.gemm, words);
        atomic_write(&f, words, sizeof(int64_t), (size_t)h.gemm_algos * GEMM_ALGO_WORDS);
        free(words);
    }
    atomic_commit(&f);
    multi_gpu_barrier(&t->mg);   // every rank's state is on disk before the marker
    if (t->rank == 0) { checkpoint_mark_done(dir, step); }
    t->ckpt_step = step;
    tprintf(t, "checkpoint: step %d written to %s (%.1f s)\n", step, dir, now_seconds() - t0);
    trainer_log(t, "{\"step\":%d,\"checkpoint\":\"%s\"}", step, dir);
}

// Loads parameters from a validated model file into master and working weights.
static inline void trainer_load_model_file(Trainer* t, const char* path, int version) {
    GPT2* m = &t->model;
    float* host = (float*)malloc_or_die(m->num_params * sizeof(float), "checkpoint parameters");
    model_params_read(path, version, host, m->num_params);
    float* full = gpt2_full_weights_buffer(m);
    cudaCheck(cudaMemcpy(full, host, m->num_params * sizeof(float), cudaMemcpyHostToDevice));
    free(host);
    gpt2_set_weights(m, full);
    gpt2_free_full_weights_buffer(m, full);
}

// Restores the state file of `step`: every field that decides the continuation must match.
static inline void trainer_load_state(Trainer* t, int step) {
    char path[4096];
    checkpoint_path(path, sizeof(path), t->args.output_dir, "state", step, t->rank);
    FILE* f = fopen(path, "rb");
    if (f == NULL) { die("resume: state file '%s' is missing (%s)", path, strerror(errno)); }
    StateHeader h, want;
    fread_or_die(&h, sizeof(h), 1, f, path);
    state_header_fill(t, &want, step);
    if (h.magic != STATE_MAGIC || h.version != STATE_VERSION) { die("resume: '%s' is not a state file of this version", path); }
    if (memcmp(h.config, want.config, sizeof(h.config)) != 0 || h.num_params != want.num_params) {
        die("resume: '%s' belongs to another model shape than %s", path, t->args.model);
    }
    if (h.nranks != t->nranks) { die("resume: '%s' was written by %lld ranks, this run has %d", path, (long long)h.nranks, t->nranks); }
    if (h.offset != want.offset || h.count != want.count) {
        die("resume: '%s' holds optimizer state [%lld, +%lld), this run's rank %d needs [%lld, +%lld): another -z?",
            path, (long long)h.offset, (long long)h.count, t->rank, (long long)want.offset, (long long)want.count);
    }
    if (h.B != t->args.B || h.T != t->args.T || h.total_batch != t->args.total_batch) {
        die("resume: '%s' was written with -b %lld -t %lld -d %lld; this run has -b %d -t %d -d %ld",
            path, (long long)h.B, (long long)h.T, (long long)h.total_batch, t->args.B, t->args.T, t->args.total_batch);
    }
    if (h.seed != (int64_t)t->args.seed) { die("resume: '%s' was written with --seed %lld", path, (long long)h.seed); }
    if (h.qk_norm != want.qk_norm || h.qk_scale != want.qk_scale) {
        die("resume: '%s' was written with --qk-norm %lld --qk-scale %g; this run has --qk-norm %lld --qk-scale %g", path,
            (long long)h.qk_norm, h.qk_norm ? h.qk_scale : (double)QK_NORM_SCALE_DEFAULT, (long long)want.qk_norm,
            want.qk_norm ? want.qk_scale : (double)QK_NORM_SCALE_DEFAULT);
    }
    size_t extra = linear_state_bytes(&t->model.lin);
    if (h.gemm_algos < 0 || h.gemm_algos > 1000000) { die("resume: '%s' has a corrupt header (%lld GEMM algorithms)", path, (long long)h.gemm_algos); }
    long expected = (long)sizeof(h) + 3L * (long)h.count * (long)sizeof(float) + (long)extra +
                    (long)h.gemm_algos * GEMM_ALGO_WORDS * (long)sizeof(int64_t);
    if (file_size_or_die(path) != expected) { die("resume: '%s' is truncated, has trailing bytes, or was written by another precision mode or --attention", path); }
    GPT2* m = &t->model;
    read_device_floats(f, path, m->master, (size_t)h.count);
    read_device_floats(f, path, m->adam_m, (size_t)h.count);
    read_device_floats(f, path, m->adam_v, (size_t)h.count);
    if (extra > 0) {
        void* buf = malloc_or_die(extra, "precision state");
        fread_or_die(buf, 1, extra, f, path);
        linear_state_load(&m->lin, buf);
        free(buf);
    }
    if (h.gemm_algos > 0) {
        size_t n = (size_t)h.gemm_algos * GEMM_ALGO_WORDS;
        int64_t* words = (int64_t*)malloc_or_die(n * sizeof(int64_t), "GEMM algorithms");
        fread_or_die(words, sizeof(int64_t), n, f, path);
        if (h.cublaslt_version == want.cublaslt_version) {
            if (!gemm_algos_load(&m->lin.gemm, words, (int)h.gemm_algos)) { die("resume: '%s' holds a corrupt GEMM algorithm choice", path); }
        } else {
            fprintf(stderr, "warning: '%s' chose its GEMM algorithms under cuBLASLt %lld, this is %lld: choosing again, "
                    "so the continuation will not repeat that run's rounding exactly\n", path,
                    (long long)h.cublaslt_version, (long long)want.cublaslt_version);
        }
        free(words);
    }
    fclose(f);
    DataLoaderState ds;
    ds.epoch = (uint64_t)h.data_epoch; ds.shard_pos = (uint64_t)h.data_shard; ds.sample_pos = (uint64_t)h.data_sample;
    dataloader_set_state(&t->train, &ds);
    memcpy(t->sample_rng.s, h.sample_rng, sizeof(h.sample_rng));
}

typedef struct { float train_loss, norm, lr; double ms; int stats; } StepResult;

static inline StepResult trainer_step(Trainer* t, int step) {
    GPT2* m = &t->model;
    TrainArgs* a = &t->args;
    StepResult r;
    double t0 = now_seconds();
    if (a->profile && step > t->start_step) { prof_step_begin(&m->prof, m->stream); }   // the first step warms up
    gpt2_step_begin(m);
    gpt2_zero_grad(m);
    prof_mark(&m->prof, "step", "scales + zero grads");
    int stats = (a->act_stats > 0 && step % a->act_stats == 0) || linear_stats_due(&m->lin);
    r.stats = stats;
    float dloss = 1.0f / ((float)a->B * a->T * t->grad_accum);
    double loss = 0.0;
    for (int micro = 0; micro < t->grad_accum; micro++) {
        dataloader_next_batch(&t->train);
        m->act_stats = stats && micro == 0;   // the first micro-batch's residual kurtosis
        gpt2_forward_queue(m, t->train.inputs, t->train.targets, a->B, a->T, dloss);
        m->act_stats = 0;
        gpt2_backward(m, a->B, a->T, micro == t->grad_accum - 1);
        loss += gpt2_loss(m);   // read while the backward runs
    }
    gpt2_reduce_grads(m);
    prof_mark(&m->prof, "step", "gradient reduction");
    r.train_loss = (float)multi_gpu_mean_host(&t->mg, loss / t->grad_accum);
    r.norm = gpt2_grad_norm(m);
    prof_mark(&m->prof, "step", "gradient norm");
    if (!isfinite(r.train_loss) || !isfinite(r.norm)) {
        fprintf(stderr, "error: non-finite %s at step %d (loss %f, grad norm %f); stopping without applying "
                "this update.", !isfinite(r.train_loss) ? "loss" : "gradient norm", step, r.train_loss, r.norm);
        if (t->ckpt_step >= 0) { fprintf(stderr, " The newest checkpoint (step %d in %s) is intact.", t->ckpt_step, a->output_dir); }
        fprintf(stderr, "\n");
        trainer_log(t, "{\"step\":%d,\"error\":\"non-finite loss or gradient\"}", step);
        exit(3);
    }
    float scale = (a->grad_clip > 0.0f && r.norm > a->grad_clip) ? a->grad_clip / r.norm : 1.0f;
    r.lr = schedule_lr(&t->sched, step);
    gpt2_update(m, r.lr, a->beta1, a->beta2, a->eps, a->weight_decay, scale, step + 1, a->seed);
    prof_mark(&m->prof, "step", "adamw");
    prof_step_end(&m->prof);
    // One GPU does not wait for the update here: the next step's host work (its batch, token
    // groups and first kernels) overlaps it, and that step's loss read waits for the GPU. So ms is
    // the host's time for the step, which in steady state is the GPU's. Several GPUs wait, with
    // multi_gpu_wait's watch on NCCL.
    if (t->nranks > 1) { multi_gpu_wait(&t->mg, m->stream, "optimizer step"); }
    r.ms = (now_seconds() - t0) * 1000.0;
    return r;
}

// Residual-stream kurtosis after each block, measured on rank 0's first micro-batch of the step:
// one JSON line, and the largest on the console.
static inline void trainer_log_act_stats(Trainer* t, int step) {
    GPT2* m = &t->model;
    int L = m->cfg.num_layers;
    float* k = (float*)malloc_or_die(L * sizeof(float), "kurtosis");
    cudaCheck(cudaMemcpy(k, m->kurt_dev, L * sizeof(float), cudaMemcpyDeviceToHost));
    int worst = 0;
    for (int l = 1; l < L; l++) { if (k[l] > k[worst]) { worst = l; } }
    tprintf(t, "step %6d | residual kurtosis: max %.2f (block %d), last block %.2f\n", step, k[worst], worst, k[L - 1]);
    if (t->log != NULL && t->rank == 0) {
        fprintf(t->log, "{\"step\":%d,\"kurtosis\":[", step);
        for (int l = 0; l < L; l++) { fprintf(t->log, "%s%.6g", l ? "," : "", k[l]); }
        fprintf(t->log, "]}\n");
        fflush(t->log);
    }
    free(k);
}

// CPU-side set-up and validation: flags, data, tokenizer, model file header. Nothing here
// touches the GPU, so every input error is reported before a device is claimed.
static int trainer_extra_flag(const char* flag, const char* value, void* ctx) {
    return linear_options_parse((LinearOptions*)ctx, flag, value);
}

static inline int trainer_setup_host(Trainer* t, int argc, char** argv) {
    memset(t, 0, sizeof(*t));
    multi_gpu_init(&t->mg, &argc, &argv);
    t->rank = t->mg.rank; t->nranks = t->mg.nranks; t->ckpt_step = -1;
    TrainArgs* a = &t->args;
    linear_options_defaults(&t->lopt);
    if (train_args_parse(a, argc, argv, trainer_extra_flag, &t->lopt, linear_options_help)) { return 1; }
    t->mg.timeout_s = a->comm_timeout;
    t->grad_accum = train_args_grad_accum(a, t->nranks);
    if (gpt2_config_from_name(&t->cfg, a->model)) {
        t->model_file_version = 0;
    } else {
        if (!file_exists(a->model)) { flag_error("-e", a->model, "neither d12|d24|d36|d48 nor an existing model file"); }
        model_header_read(a->model, &t->cfg, &t->model_file_version);
    }
    if (a->T > t->cfg.max_seq_len) {
        char why[128];
        snprintf(why, sizeof(why), "longer than the model's maximum sequence length %d", t->cfg.max_seq_len);
        flag_error("-t", "", why);
    }
    if (a->resume && a->output_dir != NULL && checkpoint_latest_step(a->output_dir) >= 0) {
        char path[4096];
        GPT2Config c;
        int version;
        checkpoint_path(path, sizeof(path), a->output_dir, "model", checkpoint_latest_step(a->output_dir), -1);
        model_header_read(path, &c, &version);
        if (memcmp(&c, &t->cfg, sizeof(c)) != 0) {
            die("resume: checkpoint '%s' has shape L=%d C=%d NH=%d Vp=%d maxT=%d, but -e %s asks for L=%d C=%d NH=%d Vp=%d maxT=%d",
                path, c.num_layers, c.channels, c.num_heads, c.padded_vocab_size, c.max_seq_len, a->model,
                t->cfg.num_layers, t->cfg.channels, t->cfg.num_heads, t->cfg.padded_vocab_size, t->cfg.max_seq_len);
        }
    }
    dataloader_init(&t->train, a->train_pattern, a->B, a->T, t->rank, t->nranks, 1, a->seed, t->cfg.vocab_size);
    t->have_val = a->val_every > 0;
    if (t->have_val) { dataloader_init(&t->val, a->val_pattern, a->B, a->T, t->rank, t->nranks, 0, 0, t->cfg.vocab_size); }
    t->max_steps = a->max_steps;
    if (t->max_steps < 0) {
        t->max_steps = (int)(dataloader_num_batches(&t->train) / t->grad_accum);
        if (t->max_steps < 1) { t->max_steps = 1; }
    }
    if (a->warmup > t->max_steps) { flag_error("-u", "", "warmup is longer than the run (-x)"); }
    tokenizer_init(&t->tok, a->tokenizer);
    ScheduleKind k;
    schedule_kind_from_name(a->schedule, &k);
    t->sched.kind = k; t->sched.lr = a->lr; t->sched.warmup = a->warmup; t->sched.max_steps = t->max_steps;
    t->sched.final_frac = a->final_frac; t->sched.decay_frac = a->decay_frac;
    rng_seed(&t->sample_rng, a->seed ^ 0x5A4D504C45ull);
    if (a->output_dir != NULL) {
        mkdir_p_or_die(a->output_dir);
    }
    if (a->output_dir != NULL && t->rank == 0) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/log.jsonl", a->output_dir);
        t->log = fopen_or_die(path, "a");
    }
    return 0;
}

static inline void trainer_setup_device(Trainer* t) {
    multi_gpu_init_device(&t->mg);
    cudaDeviceProp prop;
    cudaCheck(cudaGetDeviceProperties(&prop, t->mg.local_rank));
    t->peak_flops = gpu_bf16_peak_flops(prop.name);
    GPT2* m = &t->model;
    gpt2_build(m, &t->cfg, &t->lopt, &t->mg, t->args.zero_stage);
    m->lin.gemm.tune = t->args.gemm_tune;
    linear_set_comm(&m->lin, &t->mg);
    m->qk_norm = t->args.qk_norm;
    m->prof.enabled = t->args.profile;
    if (m->qk_norm) { m->att_scale = t->args.qk_scale; }
    gpt2_alloc_activations(m, t->args.B, t->args.T, t->args.recompute);
    if (t->model_file_version != 0) { trainer_load_model_file(t, t->args.model, t->model_file_version); }
    else { gpt2_init_random(m, t->args.seed); }
    if (t->args.resume) {
        int s = checkpoint_latest_step(t->args.output_dir);
        if (s < 0) {
            tprintf(t, "resume: no complete checkpoint in %s, starting from scratch\n", t->args.output_dir);
        } else {
            char path[4096];
            int version;
            GPT2Config c;
            checkpoint_path(path, sizeof(path), t->args.output_dir, "model", s, -1);
            model_header_read(path, &c, &version);
            trainer_load_model_file(t, path, version);
            trainer_load_state(t, s);   // master weights come from the state file, exactly
            t->start_step = s;
            t->ckpt_step = s;
            tprintf(t, "resume: continuing from step %d of %s\n", s, t->args.output_dir);
        }
    }
    size_t free_b, total_b;
    cudaCheck(cudaMemGetInfo(&free_b, &total_b));
    t->mem_used = total_b - free_b;
    const TrainArgs* a = &t->args;
    tprintf(t, "+-----------------------+----------------------------------------------------+\n");
    tprintf(t, "| device                | %-50s |\n", prop.name);
    tprintf(t, "| precision             | %-50s |\n", linear_precision_name(&m->lin));
    const char* native = linear_native_gemm_name(&m->lin);
    if (native != NULL) { tprintf(t, "| native GEMM           | %-50s |\n", native); }
    tprintf(t, "| model                 | %-50s |\n", a->model);
    tprintf(t, "| L, C, NH, maxT, Vp    | %d, %d, %d, %d, %-32d |\n", t->cfg.num_layers, t->cfg.channels,
           t->cfg.num_heads, t->cfg.max_seq_len, t->cfg.padded_vocab_size);
    tprintf(t, "| parameters            | %-50zu |\n", m->num_params);
    tprintf(t, "| B, T, total batch     | %d, %d, %-42ld |\n", a->B, a->T, a->total_batch);
    tprintf(t, "| grad accumulation     | %-50d |\n", t->grad_accum);
    tprintf(t, "| steps                 | %-50d |\n", t->max_steps);
    tprintf(t, "| lr schedule           | %s, peak %g, warmup %d, final %g%-24s |\n", a->schedule, a->lr, a->warmup, a->final_frac, "");
    tprintf(t, "| GPU memory in use     | %-44.2f GiB |\n", t->mem_used / 1073741824.0);
    tprintf(t, "| ranks, ZeRO stage     | %d, %-47d |\n", t->nranks, m->zero_stage);
    if (m->qk_norm) { tprintf(t, "| qk-norm, softmax scale| on, %-46g |\n", m->att_scale); }
    tprintf(t, "+-----------------------+----------------------------------------------------+\n");
    fflush(stdout);
}

// After the first step, which met every GEMM shape: what --gemm-tune chose (rank 0's choices).
static inline void trainer_report_gemm_tuning(Trainer* t) {
    const GemmContext* g = &t->model.lin.gemm;
    if (!g->tune || g->tuned == 0) { return; }
    tprintf(t, "gemm tuning: %d GEMM shapes timed (%.1f s); %d run another algorithm than cuBLASLt's first choice: "
            "one call of each shape %.3f -> %.3f ms\n", g->tuned, g->tune_s, g->changed, g->first_ms, g->kept_ms);
    trainer_log(t, "{\"gemm_tuning\":{\"shapes\":%d,\"changed\":%d,\"first_ms\":%.4f,\"kept_ms\":%.4f,\"seconds\":%.2f}}",
                g->tuned, g->changed, g->first_ms, g->kept_ms, g->tune_s);
}

static inline int train_main(int argc, char** argv) {
    Trainer* t = (Trainer*)calloc_or_die(1, sizeof(Trainer), "trainer");
    if (trainer_setup_host(t, argc, argv)) { return 0; }
    trainer_setup_device(t);
    TrainArgs* a = &t->args;
    GPT2* m = &t->model;
    double tokens_per_step = (double)a->total_batch;
    double flops_per_step = gpt2_flops_per_token(m, a->T) * tokens_per_step;
    double train_ms = 0.0;
    int timed_steps = 0;
    for (int step = t->start_step; step <= t->max_steps; step++) {
        int last = step == t->max_steps;
        int eval = t->have_val && (step % a->val_every == 0 || last);
        int sample = a->sample_every > 0 && step > t->start_step && (step % a->sample_every == 0 || last);
        int save = a->output_dir != NULL && step > t->start_step && ((a->ckpt_every > 0 && step % a->ckpt_every == 0) || last);
        if (eval || sample || save) { gpt2_params_sync(m); }
        if (t->have_val && (step % a->val_every == 0 || last)) {
            float vl = trainer_evaluate(t);
            tprintf(t, "step %6d | val loss %.6f\n", step, vl);
            trainer_log(t, "{\"step\":%d,\"val_loss\":%.9g}", step, vl);
        }
        if (a->sample_every > 0 && t->rank == 0 && step > t->start_step && (step % a->sample_every == 0 || last)) {
            trainer_sample(t);
        }
        if (a->output_dir != NULL && step > t->start_step && ((a->ckpt_every > 0 && step % a->ckpt_every == 0) || last)) {
            trainer_save_checkpoint(t, step);
        }
        if (last) { break; }
        StepResult r = trainer_step(t, step);
        linear_stats_log(&m->lin, t->log);
        if (r.stats) { trainer_log_act_stats(t, step + 1); }
        if (step > t->start_step) { train_ms += r.ms; timed_steps++; }   // the first step includes warm-up
        if (step == t->start_step) { trainer_report_gemm_tuning(t); }
        double tok_s = tokens_per_step / (r.ms / 1000.0);
        // every rank's GPU contributes its peak: flops_per_step counts the whole batch of all ranks
        double mfu = t->peak_flops > 0 ? 100.0 * flops_per_step / (r.ms / 1000.0) / (t->peak_flops * t->nranks) : -1.0;
        if ((step + 1) % a->log_every == 0 || step + 1 == t->max_steps) {
            tprintf(t, "step %6d/%d | loss %.6f | norm %.4f | lr %.3e | %.1f ms | %.0f tok/s | MFU %s%.1f%%\n",
                    step + 1, t->max_steps, r.train_loss, r.norm, r.lr, r.ms, tok_s, mfu < 0 ? "n/a " : "", mfu < 0 ? 0.0 : mfu);
        }
        trainer_log(t, "{\"step\":%d,\"train_loss\":%.9g,\"norm\":%.9g,\"lr\":%.6e,\"ms\":%.3f,\"tok_s\":%.1f,\"mfu\":%.2f,\"mem_gib\":%.3f}",
                    step + 1, r.train_loss, r.norm, r.lr, r.ms, tok_s, mfu, t->mem_used / 1073741824.0);
    }
    cudaCheck(cudaStreamSynchronize(m->stream));
    if (timed_steps > 0) {
        double ms = train_ms / timed_steps;
        tprintf(t, "average over %d steps (first excluded): %.1f ms/step, %.0f tok/s, GPU memory %.2f GiB\n",
                timed_steps, ms, tokens_per_step / (ms / 1000.0), t->mem_used / 1073741824.0);
    }
    if (t->rank == 0) { prof_report(&m->prof, stdout, t->log); }
    prof_free(&m->prof);
    if (t->log) { fclose(t->log); }
    multi_gpu_finalize(&t->mg);
    return 0;
}

#endif // LLMC_TRAINER_CUH
