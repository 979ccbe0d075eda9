// GPT-2 encoding: PCRE2 pre-tokenization, a per-thread cache of merged
// pre-tokens, and byte-pair merging (a quadratic scan for short pre-tokens,
// a heap for long ones so that pathological inputs stay O(n log n)).
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include "gpt2_bpe.h"
#include "hash.h"

enum {
    CACHE_SLOTS = 1 << 17,       // power of two
    CACHE_MAX_ENTRIES = 1 << 16, // cleared when full: bounded memory, no eviction logic
    CACHE_MAX_PIECE = 64,        // longer pre-tokens are rare and not worth keeping
    HEAP_MIN_PIECE = 24,         // measured: equal at 16 bytes, the heap 1.5x faster at 32
};
#define DEAD UINT32_MAX

typedef struct {
    uint64_t hash;
    uint32_t key_off, ids_off, key_len, n_ids;
} CacheEntry;

struct Gpt2Encoder {
    const Gpt2Vocab* v;
    const pcre2_code* re;
    int jit;
    pcre2_match_data* md;
    // The cache maps pre-token bytes to their ids; keys and ids live in arenas.
    uint32_t* slots;  // entry index + 1, 0 = empty
    CacheEntry* entries;
    uint32_t n_entries;
    Buf keys;
    IdVec vals;
    // Scratch for merging, reused across calls.
    uint32_t *id, *rank, *next, *prev;
    size_t scratch_cap;
    uint64_t* heap;
    size_t heap_n;
};

Gpt2Encoder* gpt2_encoder_new(const Gpt2Vocab* v) {
    // Cache-line aligned and padded: encoders of different threads must not
    // share a line, or their frequently written fields would ping-pong.
    size_t size = (sizeof(Gpt2Encoder) + 63) / 64 * 64;
    Gpt2Encoder* e = (Gpt2Encoder*)aligned_alloc(64, size);
    if (e == NULL) { die("out of host memory allocating an encoder"); }
    memset(e, 0, size);
    e->v = v;
    e->re = (const pcre2_code*)v->regex;
    size_t jit_size = 0;
    e->jit = pcre2_pattern_info(e->re, PCRE2_INFO_JITSIZE, &jit_size) == 0 && jit_size > 0;
    // The default JIT stack suffices: the pattern has no nested repeats, and
    // tests run 16 MB whitespace runs through it.
    e->md = pcre2_match_data_create_from_pattern(e->re, NULL);
    if (e->md == NULL) { die("out of memory creating PCRE2 match data"); }
    e->slots = (uint32_t*)calloc_or_die(CACHE_SLOTS, sizeof(uint32_t), "merge cache");
    e->entries = (CacheEntry*)malloc_or_die(CACHE_MAX_ENTRIES * sizeof(CacheEntry), "merge cache entries");
    return e;
}

void gpt2_encoder_free(Gpt2Encoder* e) {
    if (e == NULL) { return; }
    pcre2_match_data_free(e->md);
    free(e->slots); free(e->entries);
    buf_free(&e->keys); ids_free(&e->vals);
    free(e->id); free(e->rank); free(e->next); free(e->prev); free(e->heap);
    free(e);
}

static void reserve_scratch(Gpt2Encoder* e, size_t n) {
    if (n <= e->scratch_cap) { return; }
    size_t c = e->scratch_cap ? e->scratch_cap : 256;
    while (c < n) { c *= 2; }
    free(e->id); free(e->rank); free(e->next); free(e->prev); free(e->heap);
    e->id = (uint32_t*)malloc_or_die(c * sizeof(uint32_t), "merge scratch");
    e->rank = (uint32_t*)malloc_or_die(c * sizeof(uint32_t), "merge scratch");
    e->next = (uint32_t*)malloc_or_die(c * sizeof(uint32_t), "merge scratch");
    e->prev = (uint32_t*)malloc_or_die(c * sizeof(uint32_t), "merge scratch");
    // Each merge pushes at most two entries on top of the initial n - 1.
    e->heap = (uint64_t*)malloc_or_die(3 * c * sizeof(uint64_t), "merge heap");
    e->scratch_cap = c;
}

// tiktoken's loop: merge the lowest-ranked adjacent pair, leftmost on ties,
// until no pair merges. O(n^2) but tight for the typical 2..20 bytes.
static void merge_scan(Gpt2Encoder* e, const uint8_t* p, size_t n, IdVec* out) {
    const Gpt2Vocab* v = e->v;
    uint32_t* id = e->id;
    uint32_t* rank = e->rank;
    for (size_t i = 0; i < n; i++) { id[i] = v->byte_id[p[i]]; }
    for (size_t i = 0; i + 1 < n; i++) { rank[i] = pair_lookup(v, id[i], id[i + 1]); }
    size_t m = n;
    while (m > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < m; i++) {
            if (rank[i] < rank[best]) { best = i; }
        }
        if (rank[best] == DEAD) { break; }
        id[best] = rank[best];  // rank == id of the merged token
        memmove(id + best + 1, id + best + 2, (m - best - 2) * sizeof(uint32_t));
        memmove(rank + best + 1, rank + best + 2, (m - best - 2) * sizeof(uint32_t));
        m--;
        if (best + 1 < m) { rank[best] = pair_lookup(v, id[best], id[best + 1]); }
        if (best > 0) { rank[best - 1] = pair_lookup(v, id[best - 1], id[best]); }
    }
    ids_append(out, id, m);
}

static void heap_push(Gpt2Encoder* e, uint64_t x) {
    uint64_t* h = e->heap;
    size_t i = e->heap_n++;
    while (i > 0 && h[(i - 1) / 2] > x) { h[i] = h[(i - 1) / 2]; i = (i - 1) / 2; }
    h[i] = x;
}

static uint64_t heap_pop(Gpt2Encoder* e) {
    uint64_t* h = e->heap;
    uint64_t top = h[0], x = h[--e->heap_n];
    size_t i = 0, n = e->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) { break; }
        if (c + 1 < n && h[c + 1] < h[c]) { c++; }
        if (h[c] >= x) { break; }
        h[i] = h[c];
        i = c;
    }
    if (n) { h[i] = x; }
    return top;
}

// The same merge order as merge_scan, in O(n log n): a heap keyed by
// (rank, start) yields the lowest rank, leftmost first; entries made stale by
// earlier merges are skipped. Nodes are indexed by their start byte.
static void merge_heap(Gpt2Encoder* e, const uint8_t* p, size_t n, IdVec* out) {
    const Gpt2Vocab* v = e->v;
    uint32_t *id = e->id, *rank = e->rank, *next = e->next, *prev = e->prev;
    uint32_t end = (uint32_t)n;
    e->heap_n = 0;
    for (uint32_t i = 0; i < end; i++) {
        id[i] = v->byte_id[p[i]];
        next[i] = i + 1;
        prev[i] = i - 1;  // wraps to DEAD for the first node
    }
    for (uint32_t i = 0; i < end; i++) {
        rank[i] = i + 1 < end ? pair_lookup(v, id[i], id[i + 1]) : DEAD;
        if (rank[i] != DEAD) { heap_push(e, (uint64_t)rank[i] << 32 | i); }
    }
    while (e->heap_n) {
        uint64_t top = heap_pop(e);
        uint32_t i = (uint32_t)top, r = (uint32_t)(top >> 32);
        if (id[i] == DEAD || rank[i] != r) { continue; }
        uint32_t j = next[i];
        id[i] = r;
        id[j] = DEAD;
        next[i] = next[j];
        if (next[i] < end) { prev[next[i]] = i; }
        rank[i] = next[i] < end ? pair_lookup(v, id[i], id[next[i]]) : DEAD;
        if (rank[i] != DEAD) { heap_push(e, (uint64_t)rank[i] << 32 | i); }
        uint32_t k = prev[i];
        if (k != DEAD) {
            rank[k] = pair_lookup(v, id[k], id[i]);
            if (rank[k] != DEAD) { heap_push(e, (uint64_t)rank[k] << 32 | k); }
        }
    }
    for (uint32_t i = 0; i < end; i = next[i]) { ids_push(out, id[i]); }
}

void gpt2_bpe_merge(Gpt2Encoder* e, const uint8_t* p, size_t n, int method, IdVec* out) {
    if (n >= UINT32_MAX) { die("a single pre-token of %zu bytes is too long to merge", n); }
    reserve_scratch(e, n);
    if (method == 2 || (method == 0 && n >= HEAP_MIN_PIECE)) {
        merge_heap(e, p, n, out);
    } else {
        merge_scan(e, p, n, out);
    }
}

static void cache_clear(Gpt2Encoder* e) {
    memset(e->slots, 0, CACHE_SLOTS * sizeof(uint32_t));
    e->n_entries = 0;
    e->keys.n = 0;
    e->vals.n = 0;
}

static void encode_piece(Gpt2Encoder* e, const uint8_t* p, size_t n, IdVec* out) {
    const Gpt2Vocab* v = e->v;
    if (n == 1) { ids_push(out, v->byte_id[p[0]]); return; }
    uint64_t h = hash_bytes(p, n);
    int32_t whole = hash_lookup_bytes(v, p, n, h);
    if (whole >= 0) { ids_push(out, (uint32_t)whole); return; }
    if (n > CACHE_MAX_PIECE) { gpt2_bpe_merge(e, p, n, 0, out); return; }
    uint32_t slot = (uint32_t)h & (CACHE_SLOTS - 1);
    for (; e->slots[slot]; slot = (slot + 1) & (CACHE_SLOTS - 1)) {
        const CacheEntry* c = &e->entries[e->slots[slot] - 1];
        if (c->hash == h && c->key_len == n && memcmp(e->keys.p + c->key_off, p, n) == 0) {
            ids_append(out, e->vals.p + c->ids_off, c->n_ids);
            return;
        }
    }
    size_t first = out->n;
    gpt2_bpe_merge(e, p, n, 0, out);
    if (e->n_entries == CACHE_MAX_ENTRIES) {
        cache_clear(e);
        slot = (uint32_t)h & (CACHE_SLOTS - 1);
    }
    CacheEntry* c = &e->entries[e->n_entries];
    c->hash = h;
    c->key_off = (uint32_t)e->keys.n;
    c->key_len = (uint32_t)n;
    c->ids_off = (uint32_t)e->vals.n;
    c->n_ids = (uint32_t)(out->n - first);
    buf_append(&e->keys, p, n);
    ids_append(&e->vals, out->p + first, out->n - first);
    e->slots[slot] = ++e->n_entries;
}

// Finds the next regex match at or after `from`; returns 0 when there is none.
static int next_match(Gpt2Encoder* e, const uint8_t* text, size_t n, size_t from, size_t* s, size_t* t) {
    int rc = e->jit ? pcre2_jit_match(e->re, text, n, from, 0, e->md, NULL)
                    : pcre2_match(e->re, text, n, from, 0, e->md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH) { return 0; }
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof(msg));
        die("pre-tokenization failed at byte %zu: %s", from, (char*)msg);
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(e->md);
    *s = ov[0];
    *t = ov[1];
    return 1;
}

// Walks the pre-tokens of a text: regex matches and, between them, the runs
// of invalid UTF-8 bytes that the regex skips over.
typedef struct { size_t pos, s, t; int have; } PieceIter;

static inline int next_piece(Gpt2Encoder* e, const uint8_t* text, size_t n, PieceIter* it, size_t* a, size_t* b) {
    if (it->pos >= n) { return 0; }
    if (!it->have) {
        if (!next_match(e, text, n, it->pos, &it->s, &it->t)) { it->s = it->t = n; }
        it->have = 1;
    }
    if (it->pos < it->s) {
        *a = it->pos;
        *b = it->pos = it->s;
        return 1;
    }
    it->have = 0;
    *a = it->s;
    *b = it->pos = it->t;
    return 1;
}

void gpt2_pretokenize(Gpt2Encoder* e, const uint8_t* text, size_t n, Gpt2PieceFn fn, void* ctx) {
    PieceIter it = {0};
    size_t a, b;
    while (next_piece(e, text, n, &it, &a, &b)) { fn(ctx, text + a, b - a); }
}

static void encode_ordinary(Gpt2Encoder* e, const uint8_t* text, size_t n, IdVec* out) {
    PieceIter it = {0};
    size_t a, b;
    while (next_piece(e, text, n, &it, &a, &b)) { encode_piece(e, text + a, b - a, out); }
}

void gpt2_encode(Gpt2Encoder* e, const uint8_t* text, size_t n, int allow_special, IdVec* out) {
    static const char EOT_TEXT[] = "<|endoftext|>";
    const size_t eot_len = sizeof(EOT_TEXT) - 1;
    size_t start = 0;
    if (allow_special) {
        for (size_t i = 0; i + eot_len <= n;) {
            const uint8_t* lt = (const uint8_t*)memchr(text + i, '<', n - i);
            if (lt == NULL) { break; }
            i = (size_t)(lt - text);
            if (i + eot_len <= n && memcmp(lt, EOT_TEXT, eot_len) == 0) {
                encode_ordinary(e, text + start, i - start, out);
                ids_push(out, GPT2_EOT);
                start = i += eot_len;
            } else {
                i++;
            }
        }
    }
    encode_ordinary(e, text + start, n - start, out);
}
