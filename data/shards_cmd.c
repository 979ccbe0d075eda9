// `tokenize shards`: documents from the inputs are encoded in parallel batches
// and written in input order (or in the seeded shuffled order), each preceded
// by <|endoftext|>, into llm.c shards.
#include <unistd.h>
#include "cli.h"
#include "docset.h"
#include "shard_io.h"

typedef struct {
    double t0, last;
    int tty;
} Progress;

static void progress(Progress* p, const DocReader* r, const ShardWriter* w, int final) {
    double t = now_seconds();
    // On a terminal the line redraws; in a log it appears every 10 s at most.
    if (!final && t - p->last < (p->tty ? 0.5 : 10.0)) { return; }
    p->last = t;
    double dt = t - p->t0 > 1e-9 ? t - p->t0 : 1e-9;
    fprintf(stderr, "%sshards: %.1f MB read, %.2fM tokens, %.2fM tokens/s, %d shard(s) done%s",
            p->tty ? "\r" : "", (double)r->bytes_in / 1e6, (double)w->total / 1e6, (double)w->total / dt / 1e6,
            w->index, p->tty && !final ? "" : "\n");
}

static void make_parent_dir(const char* prefix) {
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", prefix);
    char* slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        mkdir_p_or_die(dir);
    }
}

// Encodes documents order[0..count) of d and appends them to the shards.
static void write_batch(Engine* eng, const DocSet* d, const size_t* order, size_t count, int allow_special,
                        IdVec** out, size_t* out_cap, ShardWriter* w) {
    if (count > *out_cap) {
        *out = (IdVec*)realloc(*out, count * sizeof(IdVec));
        if (*out == NULL) { die("out of host memory for %zu document id vectors", count); }
        memset(*out + *out_cap, 0, (count - *out_cap) * sizeof(IdVec));
        *out_cap = count;
    }
    docset_encode(d, order, count, eng->enc, eng->threads, allow_special, *out);
    const uint32_t eot = GPT2_EOT;
    for (size_t i = 0; i < count; i++) {
        shard_writer_add(w, &eot, 1);
        shard_writer_add(w, (*out)[i].p, (*out)[i].n);
    }
}

int cmd_shards(const Opts* o) {
    if (o->out == NULL) { die("shards needs --out PREFIX"); }
    if (o->n_args == 0) { die("shards needs at least one input file (or --files-from LIST)"); }
    if (o->docs.mode == DOCS_CHUNK && o->docs.chunk == 0) { die("--chunk needs a positive number of characters"); }
    make_parent_dir(o->out);
    Engine eng;
    engine_open(&eng, o);
    DocReader r;
    doc_reader_open(&r, &o->docs, o->args, o->n_args);
    ShardWriter w;
    shard_writer_open(&w, o->out, o->val_tokens, o->shard_tokens);
    Progress p = {now_seconds(), 0, isatty(2)};
    DocSet d = {0};
    Buf doc = {0};
    IdVec* out = NULL;
    size_t out_cap = 0, docs = 0;
    // Batches big enough to keep every thread busy, small enough to stream.
    const size_t batch_bytes = (size_t)eng.threads * (4u << 20);
    const size_t batch_docs = 1u << 16;
    if (o->shuffle) {
        while (doc_reader_next(&r, &doc)) { docset_add(&d, doc.p, doc.n); }
        size_t* order = (size_t*)malloc_or_die(d.n * sizeof(size_t), "document order");
        for (size_t i = 0; i < d.n; i++) { order[i] = i; }
        shuffle_indices(order, d.n, o->seed);
        for (size_t k = 0; k < d.n;) {
            size_t end = k, bytes = 0;
            while (end < d.n && end - k < batch_docs && bytes < batch_bytes) { bytes += d.len[order[end++]]; }
            write_batch(&eng, &d, order + k, end - k, o->allow_special, &out, &out_cap, &w);
            k = end;
            progress(&p, &r, &w, 0);
        }
        docs = d.n;
        free(order);
    } else {
        int more = 1;
        while (more) {
            docset_clear(&d);
            while (d.n < batch_docs && d.text.n < batch_bytes && (more = doc_reader_next(&r, &doc))) {
                docset_add(&d, doc.p, doc.n);
            }
            write_batch(&eng, &d, NULL, d.n, o->allow_special, &out, &out_cap, &w);
            docs += d.n;
            progress(&p, &r, &w, 0);
        }
    }
    int shards = shard_writer_close(&w);
    progress(&p, &r, &w, 1);
    if (w.total == 0) { die("no documents found in the inputs (all empty?); nothing written"); }
    fprintf(stderr, "shards: %zu documents, %llu tokens in %d shard(s) %s_{val,train}_*.bin, %.1f s\n", docs,
            (unsigned long long)w.total, shards, o->out, now_seconds() - p.t0);
    if (shards == 1) { fprintf(stderr, "warning: everything went to the validation shard; lower --val-tokens for training shards\n"); }
    for (size_t i = 0; i < out_cap; i++) { ids_free(&out[i]); }
    free(out);
    buf_free(&doc);
    docset_free(&d);
    doc_reader_close(&r);
    engine_close(&eng);
    return 0;
}
