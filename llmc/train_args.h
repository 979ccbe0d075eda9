// Command-line flags of the trainers: llm.c's letters where the concept is the same,
// long --names for the rest. Everything is validated here, before the GPU is touched;
// a bad flag exits with status 2 naming the flag. Plain C, so a CPU test covers it.
#ifndef LLMC_TRAIN_ARGS_H
#define LLMC_TRAIN_ARGS_H

#include <limits.h>
#include "utils.h"
#include "schedule.h"

#define QK_NORM_SCALE_DEFAULT 0.125f   // softmax scale with --qk-norm: 1/sqrt(head size 64), see llmc/qk_norm.cuh

typedef struct {
    const char* train_pattern;  // -i
    const char* val_pattern;    // -j
    const char* output_dir;     // -o (NULL: no checkpoints, no log)
    const char* model;          // -e d12|d24|d36|d48 or a model file
    int B;                      // -b micro-batch
    int T;                      // -t sequence length
    long total_batch;           // -d tokens per optimizer step (-1: B*T*ranks)
    int max_steps;              // -x (-1: one epoch)
    const char* schedule;       // -k
    float lr;                   // -l
    int warmup;                 // -u
    float final_frac;           // -q
    float weight_decay;         // -c
    int val_every;              // -v (0: never)
    int val_batches;            // -m (-1: the whole val set)
    int sample_every;           // -s (0: never)
    int gen_tokens;             // -g
    int ckpt_every;             // -n (0: only at the end, when -o is set)
    int resume;                 // -y
    int zero_stage;             // -z
    int recompute;              // -r
    unsigned long long seed;    // --seed
    const char* tokenizer;      // --tokenizer
    float decay_frac;           // --decay-frac (WSD)
    float grad_clip;            // --grad-clip
    float beta1, beta2, eps;    // --beta1 --beta2 --eps
    int log_every;              // --log-every (print every N steps; the JSON log has every step)
    float comm_timeout;         // --comm-timeout seconds before a stuck collective ends the job
    int qk_norm;                // --qk-norm 0|1: RMSNorm on each head's q and k (frozen unit gains)
    float qk_scale;             // --qk-scale: the fixed softmax scale with --qk-norm
    int act_stats;              // --act-stats N: residual kurtosis per block every N steps (0: off)
    int profile;                // --profile 0|1: GPU time per section of each step after the first
    int gemm_tune;              // --gemm-tune 0|1|2: time cuBLASLt's candidate algorithms at a GEMM's first use
} TrainArgs;

static inline void train_args_defaults(TrainArgs* a) {
    memset(a, 0, sizeof(*a));
    a->train_pattern = "data/debian_docs/*train*.bin";
    a->val_pattern = "data/debian_docs/*val*.bin";
    a->output_dir = NULL;
    a->model = "d12";
    a->B = 4; a->T = 1024; a->total_batch = -1; a->max_steps = -1;
    a->schedule = "cosine"; a->lr = 3e-4f; a->warmup = 0; a->final_frac = 1.0f; a->weight_decay = 0.0f;
    a->val_every = 20; a->val_batches = 20; a->sample_every = 20; a->gen_tokens = 64;
    a->ckpt_every = 0; a->resume = 0; a->zero_stage = 0; a->recompute = 1;
    a->seed = 42; a->tokenizer = "data/gpt2_tokenizer.bin"; a->decay_frac = 0.2f; a->grad_clip = 1.0f;
    a->beta1 = 0.9f; a->beta2 = 0.95f; a->eps = 1e-8f; a->log_every = 1; a->comm_timeout = 300.0f;
    a->qk_norm = 0; a->qk_scale = QK_NORM_SCALE_DEFAULT; a->act_stats = 0; a->gemm_tune = 0;
}

static inline void train_args_help(const char* prog, void (*extra_help)(void)) {
    TrainArgs d;
    train_args_defaults(&d);
    printf("usage: %s [flags]\n\n", prog);
    printf("  -i PATTERN   train shards, glob or comma-separated globs   (default %s)\n", d.train_pattern);
    printf("  -j PATTERN   validation shards                             (default %s)\n", d.val_pattern);
    printf("  -o DIR       checkpoints and log.jsonl go here             (default none)\n");
    printf("  -e MODEL     d12|d24|d36|d48 or a model file to start from (default %s)\n", d.model);
    printf("  -b N         micro-batch size                              (default %d)\n", d.B);
    printf("  -t N         sequence length                               (default %d)\n", d.T);
    printf("  -d N         total batch in tokens, -1 = B*T*ranks          (default %ld)\n", d.total_batch);
    printf("  -x N         optimizer steps, -1 = one epoch               (default %d)\n", d.max_steps);
    printf("  -k NAME      lr schedule cosine|linear|constant|wsd        (default %s)\n", d.schedule);
    printf("  -l LR        peak learning rate                            (default %g)\n", d.lr);
    printf("  -u N         warmup steps                                  (default %d)\n", d.warmup);
    printf("  -q F         final lr as a fraction of the peak            (default %g)\n", d.final_frac);
    printf("  -c F         weight decay (matrices only)                  (default %g)\n", d.weight_decay);
    printf("  -v N         validate every N steps, 0 = never             (default %d)\n", d.val_every);
    printf("  -m N         validation batches, -1 = whole val set        (default %d)\n", d.val_batches);
    printf("  -s N         sample every N steps, 0 = never               (default %d)\n", d.sample_every);
    printf("  -g N         tokens to generate when sampling              (default %d)\n", d.gen_tokens);
    printf("  -n N         checkpoint every N steps (and at the end)     (default %d)\n", d.ckpt_every);
    printf("  -y 0|1       resume from the latest checkpoint in -o       (default %d)\n", d.resume);
    printf("  -z 0|1       ZeRO stage (optimizer sharding across ranks)  (default %d)\n", d.zero_stage);
    printf("  -r 0|1       recompute GELU in backward to save memory     (default %d)\n"
           "               (FP8 layers re-make it from pre-GELU either way)\n", d.recompute);
    printf("  --seed N           initialisation, shuffling, rounding seed (default %llu)\n", d.seed);
    printf("  --tokenizer FILE   GPT-2 decoding file for samples         (default %s)\n", d.tokenizer);
    printf("  --decay-frac F     WSD: fraction of steps spent decaying   (default %g)\n", d.decay_frac);
    printf("  --grad-clip F      clip the global gradient norm, 0 = off  (default %g)\n", d.grad_clip);
    printf("  --beta1 F          AdamW beta1                             (default %g)\n", d.beta1);
    printf("  --beta2 F          AdamW beta2                             (default %g)\n", d.beta2);
    printf("  --eps F            AdamW epsilon                           (default %g)\n", d.eps);
    printf("  --log-every N      print a step line every N steps         (default %d)\n", d.log_every);
    printf("  --comm-timeout S   a collective stuck S seconds ends the job (default %g)\n", d.comm_timeout);
    printf("  --qk-norm 0|1      RMSNorm (frozen unit gains) on each head's q and k,\n"
           "                     then the fixed softmax scale --qk-scale (default %d)\n", d.qk_norm);
    printf("  --qk-scale F       softmax scale with --qk-norm            (default %g = 1/sqrt(64))\n", d.qk_scale);
    printf("  --act-stats N      every N steps, log each block's residual-stream kurtosis\n"
           "                     (outlier-feature signal); 0 = off, and on --fp8-stats steps (default %d)\n", d.act_stats);
    printf("  --profile 0|1      time each section of the steps after the first (CUDA events) and\n"
           "                     print where the GPU time goes at the end  (default %d)\n", d.profile);
    printf("  --gemm-tune 0|1|2  1: in the first step, time cuBLASLt's candidate algorithms for each\n"
           "                     GEMM shape of at least 1 GFLOP and keep the fastest (2: every shape).\n"
           "                     Fresh runs may then differ in rounding; checkpoints keep the choices,\n"
           "                     so a resumed run repeats them. 0: cuBLASLt's first choice (default %d)\n", d.gemm_tune);
    if (extra_help) { extra_help(); }
    printf("  -h, --help         this text\n");
}

static inline void flag_error(const char* flag, const char* value, const char* why) {
    fprintf(stderr, "error: flag %s %s: %s (see --help)\n", flag, value ? value : "", why);
    exit(2);
}

static inline long parse_long_flag(const char* flag, const char* v, long lo, long hi) {
    char* end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0') { flag_error(flag, v, "not an integer"); }
    if (x < lo || x > hi) {
        char why[128];
        snprintf(why, sizeof(why), "out of range [%ld, %ld]", lo, hi);
        flag_error(flag, v, why);
    }
    return x;
}

static inline float parse_float_flag(const char* flag, const char* v, double lo, double hi) {
    char* end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || x != x) { flag_error(flag, v, "not a number"); }
    if (x < lo || x > hi) {
        char why[128];
        snprintf(why, sizeof(why), "out of range [%g, %g]", lo, hi);
        flag_error(flag, v, why);
    }
    return (float)x;
}

// extra(flag, value, ctx) lets a trainer accept flags of its own; it returns 1 when it took one.
typedef int (*ExtraFlagFn)(const char* flag, const char* value, void* ctx);

// Parses argv into a (defaults first). Returns 0 normally, 1 when help was printed.
static inline int train_args_parse(TrainArgs* a, int argc, char** argv, ExtraFlagFn extra, void* extra_ctx,
                                   void (*extra_help)(void)) {
    train_args_defaults(a);
    for (int i = 1; i < argc; i++) {
        const char* f = argv[i];
        if (strcmp(f, "-h") == 0 || strcmp(f, "--help") == 0) { train_args_help(argv[0], extra_help); return 1; }
        if (f[0] != '-') { flag_error(f, "", "expected a flag"); }
        if (i + 1 >= argc) { flag_error(f, "", "missing value"); }
        const char* v = argv[++i];
        if (f[1] != '-' && (f[1] == '\0' || f[2] != '\0')) { flag_error(f, v, "unknown flag"); }
        if (strcmp(f, "-i") == 0) { a->train_pattern = v; }
        else if (strcmp(f, "-j") == 0) { a->val_pattern = v; }
        else if (strcmp(f, "-o") == 0) { a->output_dir = v; }
        else if (strcmp(f, "-e") == 0) { a->model = v; }
        else if (strcmp(f, "-b") == 0) { a->B = (int)parse_long_flag(f, v, 1, 4096); }
        else if (strcmp(f, "-t") == 0) { a->T = (int)parse_long_flag(f, v, 1, 65536); }
        else if (strcmp(f, "-d") == 0) { a->total_batch = parse_long_flag(f, v, -1, LONG_MAX); }
        else if (strcmp(f, "-x") == 0) { a->max_steps = (int)parse_long_flag(f, v, -1, INT_MAX); }
        else if (strcmp(f, "-k") == 0) { a->schedule = v; }
        else if (strcmp(f, "-l") == 0) { a->lr = parse_float_flag(f, v, 0.0, 10.0); }
        else if (strcmp(f, "-u") == 0) { a->warmup = (int)parse_long_flag(f, v, 0, INT_MAX); }
        else if (strcmp(f, "-q") == 0) { a->final_frac = parse_float_flag(f, v, 0.0, 1.0); }
        else if (strcmp(f, "-c") == 0) { a->weight_decay = parse_float_flag(f, v, 0.0, 10.0); }
        else if (strcmp(f, "-v") == 0) { a->val_every = (int)parse_long_flag(f, v, 0, INT_MAX); }
        else if (strcmp(f, "-m") == 0) { a->val_batches = (int)parse_long_flag(f, v, -1, INT_MAX); }
        else if (strcmp(f, "-s") == 0) { a->sample_every = (int)parse_long_flag(f, v, 0, INT_MAX); }
        else if (strcmp(f, "-g") == 0) { a->gen_tokens = (int)parse_long_flag(f, v, 1, 65535); }
        else if (strcmp(f, "-n") == 0) { a->ckpt_every = (int)parse_long_flag(f, v, 0, INT_MAX); }
        else if (strcmp(f, "-y") == 0) { a->resume = (int)parse_long_flag(f, v, 0, 1); }
        else if (strcmp(f, "-z") == 0) { a->zero_stage = (int)parse_long_flag(f, v, 0, 1); }
        else if (strcmp(f, "-r") == 0) { a->recompute = (int)parse_long_flag(f, v, 0, 1); }
        else if (strcmp(f, "--seed") == 0) { a->seed = (unsigned long long)parse_long_flag(f, v, 0, LONG_MAX); }
        else if (strcmp(f, "--tokenizer") == 0) { a->tokenizer = v; }
        else if (strcmp(f, "--decay-frac") == 0) { a->decay_frac = parse_float_flag(f, v, 0.0, 1.0); }
        else if (strcmp(f, "--grad-clip") == 0) { a->grad_clip = parse_float_flag(f, v, 0.0, 1e9); }
        else if (strcmp(f, "--beta1") == 0) { a->beta1 = parse_float_flag(f, v, 0.0, 0.999999); }
        else if (strcmp(f, "--beta2") == 0) { a->beta2 = parse_float_flag(f, v, 0.0, 0.999999); }
        else if (strcmp(f, "--eps") == 0) { a->eps = parse_float_flag(f, v, 0.0, 1.0); }
        else if (strcmp(f, "--log-every") == 0) { a->log_every = (int)parse_long_flag(f, v, 1, INT_MAX); }
        else if (strcmp(f, "--comm-timeout") == 0) { a->comm_timeout = parse_float_flag(f, v, 1.0, 86400.0); }
        else if (strcmp(f, "--qk-norm") == 0) { a->qk_norm = (int)parse_long_flag(f, v, 0, 1); }
        else if (strcmp(f, "--qk-scale") == 0) { a->qk_scale = parse_float_flag(f, v, 1e-3, 100.0); }
        else if (strcmp(f, "--act-stats") == 0) { a->act_stats = (int)parse_long_flag(f, v, 0, INT_MAX); }
        else if (strcmp(f, "--profile") == 0) { a->profile = (int)parse_long_flag(f, v, 0, 1); }
        else if (strcmp(f, "--gemm-tune") == 0) { a->gemm_tune = (int)parse_long_flag(f, v, 0, 2); }
        else if (extra == NULL || !extra(f, v, extra_ctx)) { flag_error(f, v, "unknown flag"); }
    }
    ScheduleKind k;
    if (!schedule_kind_from_name(a->schedule, &k)) { flag_error("-k", a->schedule, "expected cosine, linear, constant or wsd"); }
    if (a->resume && a->output_dir == NULL) { flag_error("-y", "1", "resuming needs a run directory (-o)"); }
    if (a->T % 8 != 0) { flag_error("-t", "", "sequence length must be a multiple of 8"); }
    return 0;
}

// Checks that depend on the number of ranks; returns gradient accumulation steps.
static inline int train_args_grad_accum(TrainArgs* a, int nranks) {
    long per_pass = (long)a->B * a->T * nranks;
    if (a->total_batch == -1) { a->total_batch = per_pass; }
    if (a->total_batch % per_pass != 0) {
        char v[64], why[256];
        snprintf(v, sizeof(v), "%ld", a->total_batch);
        snprintf(why, sizeof(why), "total batch must be a multiple of B*T*ranks = %d*%d*%d = %ld tokens",
                 a->B, a->T, nranks, per_pass);
        flag_error("-d", v, why);
    }
    return (int)(a->total_batch / per_pass);
}

#endif // LLMC_TRAIN_ARGS_H
