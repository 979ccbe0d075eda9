#include "docset.h"
#include "parallel.h"

void docset_add(DocSet* d, const uint8_t* p, size_t n) {
    if (d->n == d->cap) {
        size_t cap = d->cap;
        d->off = (size_t*)grow_or_die(d->off, &cap, d->n + 1, sizeof(size_t), "document offsets");
        cap = d->cap;
        d->len = (size_t*)grow_or_die(d->len, &cap, d->n + 1, sizeof(size_t), "document lengths");
        d->cap = cap;
    }
    d->off[d->n] = d->text.n;
    d->len[d->n] = n;
    d->n++;
    buf_append(&d->text, p, n);
}

void docset_clear(DocSet* d) { d->n = 0; d->text.n = 0; }

void docset_free(DocSet* d) {
    buf_free(&d->text);
    free(d->off);
    free(d->len);
    memset(d, 0, sizeof(*d));
}

static uint64_t splitmix64(uint64_t* s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void shuffle_indices(size_t* order, size_t n, uint64_t seed) {
    uint64_t s = seed;
    for (size_t i = n; i > 1; i--) {
        // The modulo bias of a 64-bit draw over at most ~1e9 items is negligible.
        size_t j = (size_t)(splitmix64(&s) % i);
        size_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
}

// One per thread, on its own cache line.
typedef struct { _Alignas(64) IdVec ids; } Scratch;

typedef struct {
    const DocSet* d;
    const size_t* order;
    Gpt2Encoder** enc;
    int allow_special;
    IdVec* out;
    Scratch* scratch;
} EncodeJob;

// Encodes into thread-private scratch and copies once: neighbouring out[]
// entries belong to different threads and share cache lines.
static void encode_one(void* ctx, int thread, size_t i) {
    EncodeJob* job = (EncodeJob*)ctx;
    size_t k = job->order ? job->order[i] : i;
    IdVec* ids = &job->scratch[thread].ids;
    ids->n = 0;
    gpt2_encode(job->enc[thread], job->d->text.p + job->d->off[k], job->d->len[k], job->allow_special, ids);
    job->out[i].n = 0;
    ids_append(&job->out[i], ids->p, ids->n);
}

void docset_encode(const DocSet* d, const size_t* order, size_t count, Gpt2Encoder** enc, int threads,
                   int allow_special, IdVec* out) {
    Scratch* scratch = (Scratch*)aligned_alloc(64, (size_t)threads * sizeof(Scratch));
    if (scratch == NULL) { die("out of host memory for encoding scratch"); }
    memset(scratch, 0, (size_t)threads * sizeof(Scratch));
    EncodeJob job = {d, order, enc, allow_special, out, scratch};
    parallel_for(threads, count, encode_one, &job);
    for (int t = 0; t < threads; t++) { ids_free(&scratch[t].ids); }
    free(scratch);
}
