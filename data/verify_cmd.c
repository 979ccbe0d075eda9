// `tokenize verify` and `tokenize docs`: walk the documents of existing shards
// (each starts after a <|endoftext|>; documents may straddle shards).
//
// verify decodes every document, encodes the text again and compares ids:
// shards made by another GPT-2 tokenizer (tiktoken) are ground truth for ours.
// docs writes the documents' text as JSON lines, e.g. for benchmarks.
#include "cli.h"
#include "parallel.h"
#include "shard_io.h"

typedef struct { size_t start, len; } Span;

// Index in a shard name "..._NNNNNN.bin", or -1.
static long shard_index(const char* path) {
    size_t n = strlen(path);
    if (n < 11 || strcmp(path + n - 4, ".bin") != 0 || path[n - 11] != '_') { return -1; }
    long v = 0;
    for (size_t i = n - 10; i < n - 4; i++) {
        if (path[i] < '0' || path[i] > '9') { return -1; }
        v = v * 10 + (path[i] - '0');
    }
    return v;
}

// A shell glob lists PREFIX_train_* before PREFIX_val_000000, but documents
// run on in the order the shards were written: sort by the index in the names
// (stable, and only when every name has one).
static void order_shards(Opts* o) {
    for (int i = 0; i < o->n_args; i++) {
        if (shard_index(o->args[i]) < 0) { return; }
    }
    for (int i = 1; i < o->n_args; i++) {
        const char* a = o->args[i];
        int j = i;
        for (; j > 0 && shard_index(o->args[j - 1]) > shard_index(a); j--) { o->args[j] = o->args[j - 1]; }
        o->args[j] = a;
    }
}

// Streams shards and hands complete documents to a callback in batches.
// Tokens before the first <|endoftext|> belong to a document cut by an earlier
// shard and are skipped; so is the last document unless complete_end says the
// shards given end where the corpus ends.
typedef void (*BatchFn)(void* ctx, const uint32_t* tok, uint64_t base, const Span* docs, size_t n);

typedef struct { uint64_t docs, doc_tokens, head_skipped, tail_skipped; } WalkStats;

static WalkStats walk_documents(Opts* o, BatchFn fn, void* ctx) {
    WalkStats st = {0};
    order_shards(o);
    IdVec tok = {0};
    Span* spans = NULL;
    size_t cap = 0;
    uint64_t base = 0;  // stream offset of tok.p[0]
    int seen_eot = 0;
    for (int k = 0; k < o->n_args; k++) {
        shard_read(o->args[k], &tok);
        int last = k == o->n_args - 1;
        size_t i = 0, n = 0;
        if (!seen_eot) {
            while (i < tok.n && tok.p[i] != GPT2_EOT) { i++; }
            st.head_skipped += i;
            if (i == tok.n) { base += tok.n; tok.n = 0; continue; }
            seen_eot = 1;
        }
        // Here tok.p[i] is an <|endoftext|> that opens a document.
        size_t open = i;
        for (size_t j = i + 1; j <= tok.n; j++) {
            if (j < tok.n && tok.p[j] != GPT2_EOT) { continue; }
            if (j == tok.n && !(last && o->complete_end)) { break; }
            spans = (Span*)grow_or_die(spans, &cap, n + 1, sizeof(Span), "document spans");
            spans[n].start = open + 1;
            spans[n].len = j - open - 1;
            n++;
            open = j;
        }
        fn(ctx, tok.p, base, spans, n);
        st.docs += n;
        for (size_t d = 0; d < n; d++) { st.doc_tokens += spans[d].len + 1; }
        // Keep the open document (from its <|endoftext|>) for the next shard.
        size_t keep = open < tok.n && !(last && o->complete_end) ? tok.n - open : 0;
        if (last) { st.tail_skipped = keep; }
        memmove(tok.p, tok.p + tok.n - keep, keep * sizeof(uint32_t));
        base += tok.n - keep;
        tok.n = keep;
    }
    ids_free(&tok);
    free(spans);
    return st;
}

// Per-thread buffers, each on its own cache line.
typedef struct { _Alignas(64) Buf text; IdVec ids; } PerThread;

typedef struct {
    Engine* eng;
    const uint32_t* tok;
    const Span* spans;
    PerThread* scratch;
    int64_t* first_diff;   // per document of the batch: first differing index, or -1
    size_t diff_cap;
    uint64_t docs_before, mismatches, bad_ids;
    uint64_t tokens;
} Verify;

static void verify_one(void* ctx, int thread, size_t d) {
    Verify* v = (Verify*)ctx;
    const uint32_t* want = v->tok + v->spans[d].start;
    size_t n = v->spans[d].len;
    Buf* text = &v->scratch[thread].text;
    IdVec* got = &v->scratch[thread].ids;
    text->n = 0;
    got->n = 0;
    if (gpt2_decode(&v->eng->vocab, want, n, text) != 0) { v->first_diff[d] = -2; return; }
    gpt2_encode(v->eng->enc[thread], text->p, text->n, 0, got);
    size_t i = 0;
    while (i < n && i < got->n && got->p[i] == want[i]) { i++; }
    v->first_diff[d] = i == n && got->n == n ? -1 : (int64_t)i;
}

static void print_ids_around(const char* label, const uint32_t* ids, size_t n, size_t at) {
    size_t from = at > 3 ? at - 3 : 0, to = at + 5 < n ? at + 5 : n;
    fprintf(stderr, "  %s[%zu..%zu):", label, from, to);
    for (size_t i = from; i < to; i++) { fprintf(stderr, " %u", ids[i]); }
    fprintf(stderr, "\n");
}

static void report_mismatch(Verify* v, const uint32_t* tok, uint64_t base, const Span* s, size_t at) {
    Buf text = {0};
    IdVec got = {0};
    gpt2_decode(&v->eng->vocab, tok + s->start, s->len, &text);
    gpt2_encode(v->eng->enc[0], text.p, text.n, 0, &got);
    fprintf(stderr, "mismatch in document %llu (stream token %llu), first difference at its token %zu:\n",
            (unsigned long long)(v->docs_before + 1), (unsigned long long)(base + s->start), at);
    print_ids_around("shard", tok + s->start, s->len, at);
    print_ids_around("ours ", got.p, got.n, at);
    Buf ctx = {0};
    size_t from = at > 3 ? at - 3 : 0, to = at + 5 < s->len ? at + 5 : s->len;
    gpt2_decode(&v->eng->vocab, tok + s->start + from, to - from, &ctx);
    fprintf(stderr, "  text: \"");
    for (size_t i = 0; i < ctx.n; i++) {
        uint8_t c = ctx.p[i];
        if (c >= 0x20 && c != '"' && c != '\\') { fputc(c, stderr); } else { fprintf(stderr, "\\x%02x", c); }
    }
    fprintf(stderr, "\"\n");
    buf_free(&text); buf_free(&ctx); ids_free(&got);
}

static void verify_batch(void* ctx, const uint32_t* tok, uint64_t base, const Span* spans, size_t n) {
    Verify* v = (Verify*)ctx;
    v->tok = tok;
    v->spans = spans;
    v->first_diff = (int64_t*)grow_or_die(v->first_diff, &v->diff_cap, n, sizeof(int64_t), "verify results");
    parallel_for(v->eng->threads, n, verify_one, v);
    for (size_t d = 0; d < n; d++, v->docs_before++) {
        int64_t at = v->first_diff[d];
        if (at == -1) { continue; }
        if (at == -2) { v->bad_ids++; continue; }
        if (v->mismatches++ < 10) { report_mismatch(v, tok, base, &spans[d], (size_t)at); }
    }
}

int cmd_verify(Opts* o) {
    if (o->n_args == 0) { die("verify needs at least one shard"); }
    Engine eng;
    engine_open(&eng, o);
    Verify v;
    memset(&v, 0, sizeof(v));
    v.eng = &eng;
    v.scratch = (PerThread*)aligned_alloc(64, (size_t)eng.threads * sizeof(PerThread));
    if (v.scratch == NULL) { die("out of host memory for verify scratch"); }
    memset(v.scratch, 0, (size_t)eng.threads * sizeof(PerThread));
    double t0 = now_seconds();
    WalkStats st = walk_documents(o, verify_batch, &v);
    double dt = now_seconds() - t0;
    printf("verify: %llu documents, %llu tokens compared (with their <|endoftext|>), %llu mismatching, "
           "%llu with out-of-vocabulary ids; skipped %llu tokens before the first <|endoftext|> and %llu after the last; %.1f s\n",
           (unsigned long long)st.docs, (unsigned long long)st.doc_tokens, (unsigned long long)v.mismatches,
           (unsigned long long)v.bad_ids, (unsigned long long)st.head_skipped, (unsigned long long)st.tail_skipped, dt);
    for (int t = 0; t < eng.threads; t++) { buf_free(&v.scratch[t].text); ids_free(&v.scratch[t].ids); }
    free(v.scratch);
    free(v.first_diff);
    engine_close(&eng);
    return v.mismatches || v.bad_ids || st.docs == 0 ? 1 : 0;
}

static void write_json_string(FILE* f, const uint8_t* p, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c == '"' || c == '\\') { fputc('\\', f); fputc(c, f); }
        else if (c == '\n') { fputs("\\n", f); }
        else if (c == '\t') { fputs("\\t", f); }
        else if (c < 0x20) { fprintf(f, "\\u%04x", c); }
        else { fputc(c, f); }
    }
    fputc('"', f);
}

typedef struct {
    const Gpt2Vocab* vocab;
    FILE* f;
    const char* path;
    Buf text;
} Dump;

static void dump_batch(void* ctx, const uint32_t* tok, uint64_t base, const Span* spans, size_t n) {
    Dump* d = (Dump*)ctx;
    (void)base;
    for (size_t i = 0; i < n; i++) {
        d->text.n = 0;
        if (gpt2_decode(d->vocab, tok + spans[i].start, spans[i].len, &d->text) != 0) {
            die("a shard holds a token id outside the vocabulary");
        }
        fputs("{\"text\": ", d->f);
        write_json_string(d->f, d->text.p, d->text.n);
        fputs("}\n", d->f);
    }
    if (ferror(d->f)) { die("write to '%s' failed: %s", d->path, strerror(errno)); }
}

int cmd_docs(Opts* o) {
    if (o->out == NULL || o->n_args == 0) { die("docs needs --out FILE.jsonl and at least one shard"); }
    Gpt2Vocab vocab;
    gpt2_vocab_load(&vocab, o->vocab_dir);
    Dump d = {&vocab, fopen_or_die(o->out, "wb"), o->out, {0}};
    WalkStats st = walk_documents(o, dump_batch, &d);
    fclose_or_die(d.f, o->out);
    fprintf(stderr, "docs: wrote %llu documents (%llu tokens) to %s\n", (unsigned long long)st.docs,
            (unsigned long long)st.doc_tokens, o->out);
    buf_free(&d.text);
    gpt2_vocab_free(&vocab);
    return 0;
}
