// Token-shard data loader for GPT-2 pretraining. Header-only; compiles as C99 (POSIX) and as C++ (nvcc).
//
// Shard file (little-endian, and read on a little-endian host): a header of 256 int32
// {20240520 magic, 1 version, ntok, 0...} followed by ntok uint16 token ids; exactly 1024 + 2*ntok bytes.
// Every shard is fully validated at init (header, exact size, every token id < vocab_size), so a bad
// file fails at startup with its name instead of hours later or as an out-of-range embedding lookup.
//
// Sampling model.
//  - A sample is a window of T+1 consecutive tokens of one shard: inputs are the first T, targets the
//    last T. Sample i of a shard covers tokens [i*T, i*T+T], so a shard of n tokens has (n-1)/T samples.
//  - A global batch is G = nranks*B samples, all from the same shard; rank r reads samples
//    r*B .. r*B+B-1 of it, so the ranks read a global batch disjointly and completely.
//  - A shard yields floor(samples/G) global batches per epoch; its remaining samples are skipped that
//    epoch (under shuffling a different random subset each epoch). Keeping a batch inside one shard means
//    only one shard is mapped at a time and the whole position is three integers.
//  - shuffle=0: shards in pattern order, samples in file order (validation). shuffle=1: at each epoch the
//    shard order, and each shard's sample order, are Fisher-Yates permutations from a PRNG keyed by
//    (seed, epoch) and (seed, epoch, shard). The stream is therefore a pure function of
//    (seed, epoch, shard_pos, sample_pos): ranks agree on the permutations without communicating, and
//    restoring a DataLoaderState reproduces the stream exactly with no RNG state saved.
//
// The pattern is a glob, or a comma-separated list of globs (so paths must not contain commas); each glob
// must match at least one file, matches are taken in sorted order per glob, in list order, duplicates once.
// When compiling as strict C (-std=c99) include this header first, or define _POSIX_C_SOURCE yourself.
#ifndef LLMC_DATALOADER_H
#define LLMC_DATALOADER_H

#if defined(__STRICT_ANSI__) && !defined(_POSIX_C_SOURCE) && !defined(_XOPEN_SOURCE) && !defined(_GNU_SOURCE)
#define _POSIX_C_SOURCE 200809L  // glob, mmap, open: POSIX, hidden by a strict -std=c99
#endif

#include <glob.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "utils.h"

#define DATALOADER_MAGIC 20240520
#define DATALOADER_VERSION 1
#define DATALOADER_HEADER_BYTES 1024
#define DATALOADER_SCAN_TOKENS (1u << 20)  // validation reads 2 MiB at a time

// The position of the next global batch; identical on all ranks, saved verbatim in checkpoints.
typedef struct {
    uint64_t epoch;       // epochs completed
    uint64_t shard_pos;   // index into this epoch's shard order
    uint64_t sample_pos;  // index into the current shard's sample order of the batch's first sample
} DataLoaderState;

typedef struct {
    char* path;
    uint64_t num_tokens;
    uint64_t num_samples;  // (num_tokens-1)/T windows of T+1 tokens
} DataShard;

typedef struct {
    int B, T, rank, nranks, shuffle, vocab_size;
    uint64_t seed;
    char* pattern;  // kept for error messages
    DataShard* shards;
    int num_shards;
    uint64_t total_tokens;
    uint64_t batches_per_epoch;  // global batches, summed over shards
    DataLoaderState pos;         // always a place where a whole global batch fits
    // shard visiting order of epoch order_epoch
    uint32_t* shard_order;
    uint64_t order_epoch;
    int order_valid;
    // the one mapped shard, and its sample order for epoch samples_epoch
    int cur_shard;  // -1: none mapped
    void* map;
    size_t map_bytes;
    const uint16_t* tokens;
    uint32_t* sample_order;  // capacity: the largest shard's sample count (< 2^31 since ntok is int32)
    int samples_shard;       // -1: not built
    uint64_t samples_epoch;
    // the current micro-batch, B*T each
    int* inputs;
    int* targets;
} DataLoader;

// ---------------------------------------------------------------------------------------------------
// PRNG: splitmix64. Tiny, stateless to key, and good enough for shuffling.

static inline uint64_t dataloader_mix64_(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// Chained mixing so that (seed, epoch, stream) triples land on unrelated generator states.
static inline uint64_t dataloader_rng_key_(uint64_t seed, uint64_t epoch, uint64_t stream) {
    return dataloader_mix64_(dataloader_mix64_(dataloader_mix64_(seed) ^ epoch) ^ stream);
}

static inline uint64_t dataloader_rng_next_(uint64_t* state) {
    *state += 0x9E3779B97F4A7C15ull;
    return dataloader_mix64_(*state);
}

// Uniform in [0, n): rejecting the incomplete top bucket removes the modulo bias.
static inline uint64_t dataloader_rng_below_(uint64_t* state, uint64_t n) {
    uint64_t limit = ~(uint64_t)0 - ~(uint64_t)0 % n;
    uint64_t x;
    do { x = dataloader_rng_next_(state); } while (x >= limit);
    return x % n;
}

// Identity permutation, then Fisher-Yates when shuffling.
static inline void dataloader_permutation_(uint32_t* a, uint64_t n, int shuffle, uint64_t key) {
    for (uint64_t i = 0; i < n; i++) { a[i] = (uint32_t)i; }
    if (!shuffle) { return; }
    uint64_t state = key;
    for (uint64_t i = n; i > 1; i--) {
        uint64_t j = dataloader_rng_below_(&state, i);
        uint32_t tmp = a[i - 1]; a[i - 1] = a[j]; a[j] = tmp;
    }
}

// ---------------------------------------------------------------------------------------------------
// Init-time file discovery and validation.

static inline void dataloader_add_shard_(DataLoader* dl, const char* path, int* capacity) {
    for (int i = 0; i < dl->num_shards; i++) {
        if (strcmp(dl->shards[i].path, path) == 0) { return; }  // matched by two globs: read it once
    }
    if (dl->num_shards == *capacity) {
        *capacity = *capacity ? 2 * *capacity : 16;
        DataShard* grown = (DataShard*)malloc_or_die((size_t)*capacity * sizeof(DataShard), "data shard list");
        if (dl->num_shards) { memcpy(grown, dl->shards, (size_t)dl->num_shards * sizeof(DataShard)); }
        free(dl->shards);
        dl->shards = grown;
    }
    size_t len = strlen(path);
    DataShard* s = &dl->shards[dl->num_shards++];
    s->path = (char*)malloc_or_die(len + 1, "data shard path");
    memcpy(s->path, path, len + 1);
    s->num_tokens = 0;
    s->num_samples = 0;
}

static inline void dataloader_expand_pattern_(DataLoader* dl, const char* pattern) {
    size_t len = strlen(pattern);
    char* list = (char*)malloc_or_die(len + 1, "data pattern");
    memcpy(list, pattern, len + 1);
    int capacity = 0;
    char* item = list;
    for (;;) {
        char* comma = strchr(item, ',');
        if (comma) { *comma = '\0'; }
        if (item[0] == '\0') { die("data pattern '%s' contains an empty glob (stray comma?)", pattern); }
        glob_t g;
        int rc = glob(item, 0, NULL, &g);
        if (rc == GLOB_NOMATCH) { die("no data file matches '%s' (in data pattern '%s')", item, pattern); }
        if (rc != 0) { die("cannot expand data glob '%s' (in data pattern '%s'): glob error %d", item, pattern, rc); }
        for (size_t i = 0; i < g.gl_pathc; i++) { dataloader_add_shard_(dl, g.gl_pathv[i], &capacity); }
        globfree(&g);
        if (!comma) { break; }
        item = comma + 1;
    }
    free(list);
}

static inline int32_t dataloader_le32_(const unsigned char* p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

// Checks one shard completely and returns its token count.
static inline uint64_t dataloader_validate_shard_(const char* path, int vocab_size, uint16_t* buf) {
    struct stat st;
    if (stat(path, &st) != 0) { die("cannot stat data shard '%s': %s", path, strerror(errno)); }
    if (!S_ISREG(st.st_mode)) { die("data shard '%s' is not a regular file", path); }
    unsigned long long size = (unsigned long long)st.st_size;
    FILE* f = fopen_or_die(path, "rb");
    if (size < DATALOADER_HEADER_BYTES) {
        die("data shard '%s' is %llu bytes, shorter than the %d-byte header", path, size, DATALOADER_HEADER_BYTES);
    }
    unsigned char header[DATALOADER_HEADER_BYTES];
    fread_or_die(header, 1, DATALOADER_HEADER_BYTES, f, path);
    int32_t magic = dataloader_le32_(header);
    int32_t version = dataloader_le32_(header + 4);
    int32_t ntok = dataloader_le32_(header + 8);
    if (magic != DATALOADER_MAGIC) {
        die("data shard '%s' has bad magic %d (expected %d): not a token shard", path, (int)magic, DATALOADER_MAGIC);
    }
    if (version != DATALOADER_VERSION) {
        die("data shard '%s' has unsupported version %d (expected %d)", path, (int)version, DATALOADER_VERSION);
    }
    if (ntok < 0) { die("data shard '%s' header has a negative token count %d", path, (int)ntok); }
    unsigned long long expected = DATALOADER_HEADER_BYTES + 2ull * (unsigned long long)ntok;
    if (size < expected) {
        die("data shard '%s' is truncated: header says %d tokens (%llu bytes) but the file has %llu bytes",
            path, (int)ntok, expected, size);
    }
    if (size > expected) {
        die("data shard '%s' has %llu trailing bytes after its %d tokens (%llu bytes expected, file has %llu)",
            path, size - expected, (int)ntok, expected, size);
    }
    for (uint64_t done = 0; done < (uint64_t)ntok;) {
        size_t n = (size_t)((uint64_t)ntok - done < DATALOADER_SCAN_TOKENS ? (uint64_t)ntok - done : DATALOADER_SCAN_TOKENS);
        fread_or_die(buf, sizeof(uint16_t), n, f, path);
        unsigned max = 0;  // branch-free max vectorizes; locate the culprit only on failure
        for (size_t i = 0; i < n; i++) { max = buf[i] > max ? buf[i] : max; }
        if (max >= (unsigned)vocab_size) {
            for (size_t i = 0; i < n; i++) {
                if (buf[i] >= (unsigned)vocab_size) {
                    die("data shard '%s': token at index %llu has id %u >= vocab_size %d",
                        path, (unsigned long long)(done + i), (unsigned)buf[i], vocab_size);
                }
            }
        }
        done += n;
    }
    fclose_or_die(f, path);
    return (uint64_t)ntok;
}

// ---------------------------------------------------------------------------------------------------
// Position bookkeeping.

static inline uint64_t dataloader_global_batch_(const DataLoader* dl) {
    return (uint64_t)dl->nranks * (uint64_t)dl->B;
}

static inline void dataloader_order_shards_(DataLoader* dl) {
    if (dl->order_valid && dl->order_epoch == dl->pos.epoch) { return; }
    dataloader_permutation_(dl->shard_order, (uint64_t)dl->num_shards, dl->shuffle,
                            dataloader_rng_key_(dl->seed, dl->pos.epoch, 0));
    dl->order_epoch = dl->pos.epoch;
    dl->order_valid = 1;
}

static inline const DataShard* dataloader_shard_at_(const DataLoader* dl, uint64_t shard_pos) {
    return &dl->shards[dl->shard_order[shard_pos]];
}

// Moves the position forward to the first place where a whole global batch fits, skipping shard
// remainders and shards too small for a batch, and wrapping into the next epoch. Terminates because
// init guaranteed that some shard holds a global batch.
static inline void dataloader_normalize_(DataLoader* dl) {
    uint64_t G = dataloader_global_batch_(dl);
    dataloader_order_shards_(dl);
    while (dl->pos.sample_pos + G > dataloader_shard_at_(dl, dl->pos.shard_pos)->num_samples) {
        dl->pos.sample_pos = 0;
        if (++dl->pos.shard_pos == (uint64_t)dl->num_shards) {
            dl->pos.shard_pos = 0;
            dl->pos.epoch++;
            dataloader_order_shards_(dl);
        }
    }
}

// Maps shard `shard` (only one shard is resident) and builds its sample order for the current epoch.
static inline void dataloader_load_shard_(DataLoader* dl, int shard) {
    const DataShard* s = &dl->shards[shard];
    if (dl->cur_shard != shard) {
        if (dl->map) { munmap(dl->map, dl->map_bytes); }
        dl->map = NULL;
        dl->cur_shard = -1;
        size_t bytes = DATALOADER_HEADER_BYTES + 2 * (size_t)s->num_tokens;
        int fd = open(s->path, O_RDONLY);
        if (fd < 0) { die("cannot open data shard '%s': %s", s->path, strerror(errno)); }
        struct stat st;
        if (fstat(fd, &st) != 0) { die("cannot stat data shard '%s': %s", s->path, strerror(errno)); }
        if ((unsigned long long)st.st_size != (unsigned long long)bytes) {
            die("data shard '%s' changed since it was validated: %llu bytes now, %llu expected",
                s->path, (unsigned long long)st.st_size, (unsigned long long)bytes);
        }
        void* p = mmap(NULL, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) { die("cannot mmap data shard '%s' (%llu bytes): %s", s->path, (unsigned long long)bytes, strerror(errno)); }
        close(fd);  // the mapping keeps the file referenced
        posix_madvise(p, bytes, POSIX_MADV_WILLNEED);  // start paging in the shard: samples are read at random
        dl->map = p;
        dl->map_bytes = bytes;
        dl->tokens = (const uint16_t*)((const char*)p + DATALOADER_HEADER_BYTES);
        dl->cur_shard = shard;
    }
    if (dl->samples_shard != shard || (dl->shuffle && dl->samples_epoch != dl->pos.epoch)) {
        dataloader_permutation_(dl->sample_order, s->num_samples, dl->shuffle,
                                dataloader_rng_key_(dl->seed, dl->pos.epoch, (uint64_t)shard + 1));
        dl->samples_shard = shard;
        dl->samples_epoch = dl->pos.epoch;
    }
}

// ---------------------------------------------------------------------------------------------------
// Public API.

static inline void dataloader_reset(DataLoader* dl) {
    dl->pos.epoch = 0;
    dl->pos.shard_pos = 0;
    dl->pos.sample_pos = 0;
    dataloader_normalize_(dl);
}

static inline void dataloader_init(DataLoader* dl, const char* pattern, int B, int T, int rank, int nranks,
                                   int shuffle, uint64_t seed, int vocab_size) {
    if (pattern == NULL || pattern[0] == '\0') { die("dataloader: empty data pattern"); }
    if (B < 1 || T < 1) { die("dataloader for '%s': B=%d and T=%d must be positive", pattern, B, T); }
    if (nranks < 1 || rank < 0 || rank >= nranks) {
        die("dataloader for '%s': rank %d is not in [0, nranks=%d)", pattern, rank, nranks);
    }
    if (shuffle != 0 && shuffle != 1) { die("dataloader for '%s': shuffle must be 0 or 1, got %d", pattern, shuffle); }
    if (vocab_size < 1) { die("dataloader for '%s': vocab_size must be positive, got %d", pattern, vocab_size); }
    memset(dl, 0, sizeof(*dl));
    dl->B = B; dl->T = T; dl->rank = rank; dl->nranks = nranks;
    dl->shuffle = shuffle; dl->seed = seed; dl->vocab_size = vocab_size;
    size_t plen = strlen(pattern);
    dl->pattern = (char*)malloc_or_die(plen + 1, "data pattern");
    memcpy(dl->pattern, pattern, plen + 1);

    dataloader_expand_pattern_(dl, pattern);
    uint16_t* buf = (uint16_t*)malloc_or_die(DATALOADER_SCAN_TOKENS * sizeof(uint16_t), "shard validation buffer");
    uint64_t G = dataloader_global_batch_(dl);
    uint64_t max_samples = 0;
    int largest = 0;
    for (int i = 0; i < dl->num_shards; i++) {
        DataShard* s = &dl->shards[i];
        s->num_tokens = dataloader_validate_shard_(s->path, vocab_size, buf);
        s->num_samples = s->num_tokens ? (s->num_tokens - 1) / (uint64_t)T : 0;
        dl->total_tokens += s->num_tokens;
        dl->batches_per_epoch += s->num_samples / G;
        if (s->num_samples > max_samples) { max_samples = s->num_samples; }
        if (s->num_tokens > dl->shards[largest].num_tokens) { largest = i; }
    }
    free(buf);
    if (dl->batches_per_epoch == 0) {
        die("dataloader for '%s': no shard holds one global batch of nranks=%d x B=%d windows of T+1=%d tokens "
            "(%llu tokens needed); the largest shard '%s' has %llu tokens",
            pattern, nranks, B, T + 1, (unsigned long long)(G * (uint64_t)T + 1),
            dl->shards[largest].path, (unsigned long long)dl->shards[largest].num_tokens);
    }

    dl->shard_order = (uint32_t*)malloc_or_die((size_t)dl->num_shards * sizeof(uint32_t), "shard order");
    dl->sample_order = (uint32_t*)malloc_or_die((size_t)max_samples * sizeof(uint32_t), "sample order");
    dl->inputs = (int*)malloc_or_die((size_t)B * (size_t)T * sizeof(int), "dataloader inputs");
    dl->targets = (int*)malloc_or_die((size_t)B * (size_t)T * sizeof(int), "dataloader targets");
    dl->cur_shard = -1;
    dl->samples_shard = -1;
    dataloader_reset(dl);
}

static inline void dataloader_next_batch(DataLoader* dl) {
    int B = dl->B, T = dl->T;
    int shard = (int)dl->shard_order[dl->pos.shard_pos];
    dataloader_load_shard_(dl, shard);
    const uint32_t* mine = dl->sample_order + dl->pos.sample_pos + (uint64_t)dl->rank * (uint64_t)B;
    for (int b = 0; b < B; b++) {
        uint64_t start = (uint64_t)mine[b] * (uint64_t)T;
        const uint16_t* w = dl->tokens + start;
        // Re-checked because the file may have been rewritten under the mapping; an out-of-range id would
        // otherwise index past the embedding table on the GPU. Costs nothing next to the step.
        unsigned max = 0;
        for (int t = 0; t <= T; t++) { max = w[t] > max ? w[t] : max; }
        if (max >= (unsigned)dl->vocab_size) {
            die("data shard '%s' changed since it was validated: a token id in [%llu, %llu] is >= vocab_size %d",
                dl->shards[shard].path, (unsigned long long)start, (unsigned long long)(start + (uint64_t)T), dl->vocab_size);
        }
        int* in = dl->inputs + (size_t)b * T;
        int* tg = dl->targets + (size_t)b * T;
        for (int t = 0; t < T; t++) { in[t] = w[t]; tg[t] = w[t + 1]; }
    }
    dl->pos.sample_pos += dataloader_global_batch_(dl);
    dataloader_normalize_(dl);
}

static inline DataLoaderState dataloader_get_state(const DataLoader* dl) {
    return dl->pos;
}

// Accepts any state that names an existing shard position and a sample position within that shard; it is
// then moved forward to the next place where a whole global batch fits. States from dataloader_get_state
// with the same data and T are reproduced exactly; a different nranks or B resumes near the same place.
static inline void dataloader_set_state(DataLoader* dl, const DataLoaderState* s) {
    if (s->shard_pos >= (uint64_t)dl->num_shards) {
        die("dataloader for '%s': saved state has shard_pos %llu but the pattern matches %d shards (data set changed?)",
            dl->pattern, (unsigned long long)s->shard_pos, dl->num_shards);
    }
    dl->pos.epoch = s->epoch;
    dataloader_order_shards_(dl);
    const DataShard* shard = dataloader_shard_at_(dl, s->shard_pos);
    if (s->sample_pos > shard->num_samples) {
        die("dataloader for '%s': saved state has sample_pos %llu but shard '%s' has only %llu samples of T=%d (data set or T changed?)",
            dl->pattern, (unsigned long long)s->sample_pos, shard->path, (unsigned long long)shard->num_samples, dl->T);
    }
    dl->pos = *s;
    dataloader_normalize_(dl);
}

static inline uint64_t dataloader_num_batches(const DataLoader* dl) { return dl->batches_per_epoch; }
static inline int dataloader_num_shards(const DataLoader* dl) { return dl->num_shards; }
static inline uint64_t dataloader_total_tokens(const DataLoader* dl) { return dl->total_tokens; }

// One line for the log, e.g. from rank 0.
static inline void dataloader_print_summary(const DataLoader* dl, const char* name) {
    uint64_t G = dataloader_global_batch_(dl);
    uint64_t used = dl->batches_per_epoch * G;
    uint64_t all = 0;
    for (int i = 0; i < dl->num_shards; i++) { all += dl->shards[i].num_samples; }
    printf("%s: '%s': %d shards, %llu tokens; %llu global batches of %d x %d x %d per epoch (%llu of %llu samples, rest skipped)%s\n",
           name, dl->pattern, dl->num_shards, (unsigned long long)dl->total_tokens,
           (unsigned long long)dl->batches_per_epoch, dl->nranks, dl->B, dl->T,
           (unsigned long long)used, (unsigned long long)all, dl->shuffle ? ", shuffled" : "");
}

static inline void dataloader_free(DataLoader* dl) {
    if (dl->map) { munmap(dl->map, dl->map_bytes); }
    for (int i = 0; i < dl->num_shards; i++) { free(dl->shards[i].path); }
    free(dl->shards);
    free(dl->pattern);
    free(dl->shard_order);
    free(dl->sample_order);
    free(dl->inputs);
    free(dl->targets);
    memset(dl, 0, sizeof(*dl));
}

#endif // LLMC_DATALOADER_H
