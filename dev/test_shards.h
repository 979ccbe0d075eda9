// Synthetic token shards for the data loader tests, shared by dev/test_dataloader.c and
// dev/test_sharding_mpi.c (plain C). In a ShardSet the token ids are their global position across
// all shards (unique), so every window read back identifies exactly which (shard, sample) it came
// from and can be checked token by token.
#ifndef DEV_TEST_SHARDS_H
#define DEV_TEST_SHARDS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../llmc/dataloader.h"

typedef struct {
    int n;                 // number of shards
    const uint64_t* len;   // tokens of shard s
    uint64_t* base;        // global id of the first token of shard s (shards_init_base)
} ShardSet;

// a shard file: 256-int32 header (magic, version, header_ntok), ntok tokens, then `trailing` zero bytes
static inline void write_raw_shard(const char* path, int32_t magic, int32_t version, int32_t header_ntok,
                                   const uint16_t* tokens, size_t ntok, size_t trailing) {
    int32_t header[256];
    memset(header, 0, sizeof(header));
    header[0] = magic; header[1] = version; header[2] = header_ntok;
    FILE* f = fopen_or_die(path, "wb");
    fwrite_or_die(header, sizeof(int32_t), 256, f, path);
    if (ntok) { fwrite_or_die(tokens, sizeof(uint16_t), ntok, f, path); }
    for (size_t i = 0; i < trailing; i++) { fputc(0, f); }
    fclose_or_die(f, path);
}

// shard s starts at the sum of the lengths before it
static inline void shards_init_base(const ShardSet* set) {
    uint64_t base = 0;
    for (int s = 0; s < set->n; s++) { set->base[s] = base; base += set->len[s]; }
}

// writes dir/shard_%02d.bin for every shard: valid shards holding tokens base[s] .. base[s]+len[s]-1
static inline void shards_write(const ShardSet* set, const char* dir) {
    char path[400];
    for (int s = 0; s < set->n; s++) {
        uint16_t* tok = (uint16_t*)malloc_or_die(set->len[s] * sizeof(uint16_t), "test tokens");
        for (uint64_t i = 0; i < set->len[s]; i++) { tok[i] = (uint16_t)(set->base[s] + i); }
        snprintf(path, sizeof(path), "%s/shard_%02d.bin", dir, s);
        write_raw_shard(path, 20240520, 1, (int32_t)set->len[s], tok, set->len[s], 0);
        free(tok);
    }
}

static inline uint64_t shard_samples(const ShardSet* set, int s, int T) { return (set->len[s] - 1) / (uint64_t)T; }

// the shard holding global token id, or -1
static inline int shard_of(const ShardSet* set, int64_t id) {
    for (int s = 0; s < set->n; s++) {
        if ((uint64_t)id >= set->base[s] && (uint64_t)id < set->base[s] + set->len[s]) { return s; }
    }
    return -1;
}

// Identifies the window at row b of the current batch: returns its global start token, or -1 if the
// window is not T+1 consecutive tokens of one shard starting at a sample boundary (a multiple of T).
// Sets *shard_out (if not NULL) to its shard when it is one.
static inline int64_t window_id(const ShardSet* set, const DataLoader* dl, int b, int* shard_out) {
    int T = dl->T;
    const int* in = dl->inputs + (size_t)b * T;
    const int* tg = dl->targets + (size_t)b * T;
    int64_t v = in[0];
    for (int t = 0; t < T; t++) {
        if (in[t] != v + t || tg[t] != v + t + 1) { return -1; }
    }
    int s = shard_of(set, v);
    if (s < 0) { return -1; }
    uint64_t off = (uint64_t)v - set->base[s];
    if (off % (uint64_t)T != 0 || off / (uint64_t)T >= shard_samples(set, s, T)) { return -1; }
    if (shard_out) { *shard_out = s; }
    return v;
}

// Records `nbatches` micro-batches of one loader as window start ids (nbatches*B values).
static inline void record(const ShardSet* set, DataLoader* dl, uint64_t nbatches, int64_t* out) {
    for (uint64_t k = 0; k < nbatches; k++) {
        dataloader_next_batch(dl);
        for (int b = 0; b < dl->B; b++) { out[k * dl->B + b] = window_id(set, dl, b, NULL); }
    }
}

static inline int cmp_i64(const void* a, const void* b) {
    int64_t x = *(const int64_t*)a, y = *(const int64_t*)b;
    return (x > y) - (x < y);
}

// End of an epoch of global batches of G windows: the n window ids (sorted here, in place) are
// distinct, and shard s gave per_shard[s] = floor(samples/G)*G of them.
static inline int epoch_windows_ok(const ShardSet* set, int64_t* ids, uint64_t n, const uint64_t* per_shard,
                                   int T, uint64_t G) {
    int ok = 1;
    qsort(ids, n, sizeof(int64_t), cmp_i64);
    for (uint64_t i = 1; i < n; i++) { ok &= ids[i] != ids[i - 1]; }  // read once only
    for (int s = 0; s < set->n; s++) { ok &= per_shard[s] == shard_samples(set, s, T) / G * G; }
    return ok;
}

static inline void remove_tree(const char* dir) {
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) { fprintf(stderr, "warning: could not remove %s\n", dir); }
}

#endif // DEV_TEST_SHARDS_H
