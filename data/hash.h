// Hashing and the two vocabulary lookups on the encoder's hot path, inline so
// that the encoder can reuse one hash for both the token map and its cache.
#ifndef DATA_HASH_H
#define DATA_HASH_H

#include <stdint.h>
#include <string.h>
#include "gpt2_bpe.h"

static inline uint64_t hash_u64(uint64_t x) {
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ULL;
    x ^= x >> 27;
    x *= 0x81dadef4bc2dd44dULL;
    return x ^ (x >> 33);
}

// Word-at-a-time multiplicative hash; pre-tokens are short, so speed matters
// more than hash quality beyond "good enough for linear probing".
static inline uint64_t hash_bytes(const uint8_t* p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (n * 0xff51afd7ed558ccdULL);
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 29;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = (h ^ w) * 0x94d049bb133111ebULL;
    }
    return hash_u64(h);
}

// Token id of p[0..n) given its hash_bytes value, or -1.
static inline int32_t hash_lookup_bytes(const Gpt2Vocab* v, const uint8_t* p, size_t n, uint64_t h) {
    for (uint32_t i = (uint32_t)h & v->tok_mask;; i = (i + 1) & v->tok_mask) {
        uint32_t s = v->tok_slots[i];
        if (s == 0) { return -1; }
        uint32_t id = s - 1;
        if (v->off[id + 1] - v->off[id] == n && memcmp(v->bytes + v->off[id], p, n) == 0) { return (int32_t)id; }
    }
}

static inline uint32_t pair_lookup(const Gpt2Vocab* v, uint32_t a, uint32_t b) {
    uint64_t key = (uint64_t)a << 32 | b;
    for (uint32_t i = (uint32_t)hash_u64(key) & v->pair_mask;; i = (i + 1) & v->pair_mask) {
        if (v->pair_keys[i] == key) { return v->pair_vals[i]; }
        if (v->pair_keys[i] == UINT64_MAX) { return UINT32_MAX; }
    }
}

#endif // DATA_HASH_H
