// Checkpoint files, host side: llm.c's model file layout, the training-state file,
// atomic writes (temporary name, fsync, rename) and finding the latest complete
// checkpoint of a run directory. Plain C so CPU tests exercise the validation.
//
// A checkpoint of step S in DIR is complete when DIR/DONE_<S> exists; it is written last:
//   DIR/model_<S>.bin            llm.c model file (version 5: bf16 parameters)
//   DIR/state_<S>_<rank>.bin     optimizer state of one rank (see StateHeader)
#ifndef LLMC_CHECKPOINT_H
#define LLMC_CHECKPOINT_H

#include <dirent.h>
#include <unistd.h>
#include "utils.h"
#include "gpt2_config.h"

#define MODEL_MAGIC 20240326
#define MODEL_VERSION_FP32 3
#define MODEL_VERSION_BF16 5
#define STATE_MAGIC 20261122
#define STATE_VERSION 1

// Validates a model file's header and size; dies naming the file and the problem.
static inline void model_header_read(const char* path, GPT2Config* cfg, int* version) {
    FILE* f = fopen(path, "rb");
    if (f == NULL) { die("model file '%s' cannot be opened: %s", path, strerror(errno)); }
    int h[256];
    if (fread(h, sizeof(int), 256, f) != 256) { die("model file '%s' is shorter than its 1024-byte header", path); }
    fclose(f);
    if (h[0] != MODEL_MAGIC) { die("'%s' is not a GPT-2 model file (magic %d, expected %d)", path, h[0], MODEL_MAGIC); }
    if (h[1] != MODEL_VERSION_FP32 && h[1] != MODEL_VERSION_BF16) {
        die("model file '%s' has version %d; supported: 3 (fp32) and 5 (bf16)", path, h[1]);
    }
    cfg->max_seq_len = h[2]; cfg->vocab_size = h[3]; cfg->num_layers = h[4];
    cfg->num_heads = h[5]; cfg->channels = h[6]; cfg->padded_vocab_size = h[7];
    int ok = cfg->max_seq_len > 0 && cfg->max_seq_len <= 65536 && cfg->vocab_size > 0 && cfg->num_layers > 0 &&
             cfg->num_layers <= 1024 && cfg->num_heads > 0 && cfg->channels > 0 && cfg->channels <= 65536 &&
             cfg->padded_vocab_size >= cfg->vocab_size && cfg->padded_vocab_size % 8 == 0 &&
             cfg->channels % cfg->num_heads == 0 && cfg->channels / cfg->num_heads == 64;
    if (!ok) {
        die("model file '%s' has an unusable shape: maxT=%d V=%d L=%d NH=%d C=%d Vp=%d "
            "(need Vp >= V, Vp %% 8 == 0, head size C/NH = 64)",
            path, cfg->max_seq_len, cfg->vocab_size, cfg->num_layers, cfg->num_heads, cfg->channels, cfg->padded_vocab_size);
    }
    *version = h[1];
    size_t sizes[NUM_PARAM_TENSORS], n = 0;
    gpt2_param_sizes(cfg, sizes);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) { n += sizes[i]; }
    size_t expected = 1024 + n * (h[1] == MODEL_VERSION_FP32 ? 4 : 2);
    long actual = file_size_or_die(path);
    if ((size_t)actual != expected) {
        die("model file '%s' is %ld bytes but its header (L=%d C=%d Vp=%d, version %d) implies %zu: %s",
            path, actual, cfg->num_layers, cfg->channels, cfg->padded_vocab_size, h[1], expected,
            (size_t)actual < expected ? "truncated" : "trailing bytes");
    }
}

static inline float bf16_bits_to_float(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// Reads the n parameters of a validated model file as floats.
static inline void model_params_read(const char* path, int version, float* dst, size_t n) {
    FILE* f = fopen_or_die(path, "rb");
    if (fseek(f, 1024, SEEK_SET) != 0) { die("cannot seek in '%s'", path); }
    if (version == MODEL_VERSION_FP32) {
        fread_or_die(dst, sizeof(float), n, f, path);
    } else {
        const size_t chunk = 1 << 20;
        uint16_t* buf = (uint16_t*)malloc_or_die(chunk * sizeof(uint16_t), "checkpoint read buffer");
        for (size_t i = 0; i < n; i += chunk) {
            size_t k = n - i < chunk ? n - i : chunk;
            fread_or_die(buf, sizeof(uint16_t), k, f, path);
            for (size_t j = 0; j < k; j++) { dst[i + j] = bf16_bits_to_float(buf[j]); }
        }
        free(buf);
    }
    fclose(f);
}

static inline void model_header_fill(int h[256], const GPT2Config* c, int version) {
    memset(h, 0, 256 * sizeof(int));
    h[0] = MODEL_MAGIC; h[1] = version; h[2] = c->max_seq_len; h[3] = c->vocab_size;
    h[4] = c->num_layers; h[5] = c->num_heads; h[6] = c->channels; h[7] = c->padded_vocab_size;
}

// Atomic file writing: everything goes to PATH.tmp, which replaces PATH only once fully on disk.
typedef struct { FILE* f; char path[4096]; char tmp[4200]; } AtomicFile;

static inline void atomic_open(AtomicFile* a, const char* path) {
    snprintf(a->path, sizeof(a->path), "%s", path);
    snprintf(a->tmp, sizeof(a->tmp), "%s.tmp", path);
    a->f = fopen_or_die(a->tmp, "wb");
}

static inline void atomic_write(AtomicFile* a, const void* src, size_t size, size_t n) {
    fwrite_or_die(src, size, n, a->f, a->tmp);
}

static inline void atomic_commit(AtomicFile* a) {
    if (fflush(a->f) != 0 || fsync(fileno(a->f)) != 0) { die("flushing '%s' failed: %s", a->tmp, strerror(errno)); }
    fclose_or_die(a->f, a->tmp);
    if (rename(a->tmp, a->path) != 0) { die("renaming '%s' to '%s' failed: %s", a->tmp, a->path, strerror(errno)); }
}

// Writes a model file from bf16 parameter bits.
static inline void model_file_write(const char* path, const GPT2Config* c, const uint16_t* params, size_t n) {
    int h[256];
    model_header_fill(h, c, MODEL_VERSION_BF16);
    AtomicFile a;
    atomic_open(&a, path);
    atomic_write(&a, h, sizeof(int), 256);
    atomic_write(&a, params, sizeof(uint16_t), n);
    atomic_commit(&a);
}

// Header of a state file: int64 fields, then master weights, first and second
// moments of this rank's parameter range, each `count` floats, then the precision's
// state (e.g. FP8 scales), then gemm_algos GEMM algorithm choices (GEMM_ALGO_WORDS int64 each).
typedef struct {
    int64_t magic, version;
    int64_t step;              // optimizer steps completed
    int64_t num_params;        // whole model
    int64_t rank, nranks;
    int64_t offset, count;     // this rank's parameter range
    int64_t B, T, total_batch; // data position only means something with the same batch shape
    int64_t seed;
    int64_t data_epoch, data_shard, data_sample;   // train loader position (DataLoaderState)
    uint64_t sample_rng[4];    // sampling RNG
    int64_t config[6];         // maxT, V, Vp, L, NH, C
    int64_t qk_norm;           // --qk-norm (0 in files of earlier versions: the field was reserved)
    double qk_scale;           // --qk-scale when qk_norm
    int64_t gemm_algos;        // GEMM algorithm choices after the precision state (llmc/matmul.cuh; 0 before)
    int64_t cublaslt_version;  // the cuBLASLt that made them: another one's candidates differ
    int64_t reserved[4];
} StateHeader;

static inline void checkpoint_path(char* out, size_t n, const char* dir, const char* kind, int step, int rank) {
    if (rank < 0) { snprintf(out, n, "%s/%s_%08d%s", dir, kind, step, strcmp(kind, "DONE") == 0 ? "" : ".bin"); }
    else { snprintf(out, n, "%s/%s_%08d_%05d.bin", dir, kind, step, rank); }
}

// Step of the newest complete checkpoint in dir (one with a DONE marker), or -1.
static inline int checkpoint_latest_step(const char* dir) {
    DIR* d = opendir(dir);
    if (d == NULL) { return -1; }
    int best = -1;
    struct dirent* e;
    while ((e = readdir(d)) != NULL) {
        int step;
        char tail;
        if (sscanf(e->d_name, "DONE_%d%c", &step, &tail) == 1 && step > best) { best = step; }
    }
    closedir(d);
    return best;
}

static inline void checkpoint_mark_done(const char* dir, int step) {
    char path[4096];
    checkpoint_path(path, sizeof(path), dir, "DONE", step, -1);
    AtomicFile a;
    atomic_open(&a, path);
    atomic_write(&a, "done\n", 1, 5);
    atomic_commit(&a);
}

#endif // LLMC_CHECKPOINT_H
