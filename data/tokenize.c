// `tokenize`: GPT-2 tokenization from the command line. Subcommands:
//   encode, decode   ids of a string or file / bytes of ids (for tests and people)
//   export           the decoding file the trainers read when sampling
//   shards           text or JSON-lines inputs -> llm.c token shards
//   verify, docs     check / dump the documents of existing shards
//   bench            encoding throughput on a JSON-lines file
#include <time.h>
#include "cli.h"
#include "docset.h"
#include "parallel.h"

static const char USAGE[] =
    "usage: tokenize COMMAND [options] [args]\n"
    "  encode [--allow-special] (TEXT | -f FILE)   print the ids of TEXT or of FILE ('-' = stdin)\n"
    "  decode ID...                                write the bytes of the ids to stdout\n"
    "  export OUT.bin                              write the trainers' decoding file\n"
    "  shards --out PREFIX [input options] INPUT...  write PREFIX_val_000000.bin, PREFIX_train_000001.bin, ...\n"
    "      --jsonl [--field NAME]   inputs are JSON lines; documents are the NAME string (default text)\n"
    "      --sep STR                split inputs on STR (C escapes allowed); parts are trimmed\n"
    "      --chunk N                cut inputs into documents of >= N characters at blank lines\n"
    "                               (default: each input file is one document)\n"
    "      --files-from LIST        read input paths from LIST, one per line ('-' = stdin)\n"
    "      --shuffle SEED           shuffle all documents (holds them in memory)\n"
    "      --val-tokens N           tokens in the first (validation) shard (default: --shard-tokens)\n"
    "      --shard-tokens N         tokens per training shard (default 100000000)\n"
    "      --keep-invalid-utf8      keep invalid UTF-8 bytes (default: replace them with U+FFFD)\n"
    "      --allow-special          <|endoftext|> in the text becomes token 50256 (default: plain text)\n"
    "  verify [--complete-end] SHARD...          re-encode each document of the shards and compare\n"
    "      (shards named *_NNNNNN.bin are read in the order of NNNNNN; --complete-end: the last\n"
    "      shard ends the corpus, so its last document is whole and is checked too)\n"
    "  docs --out FILE.jsonl [--complete-end] SHARD...  write the shards' documents as JSON lines\n"
    "  bench [--ids-out FILE] [--repeat N] FILE.jsonl  time encoding the documents of FILE\n"
    "common options: --vocab DIR (default data/vocab), --threads N (default: all CPUs)\n"
    "<|endoftext|> in text is plain text (as tiktoken's encode_ordinary) unless --allow-special\n"
    "is given; shards put the token <|endoftext|> (50256) before every document.\n";

void engine_open(Engine* e, const Opts* o) {
    gpt2_vocab_load(&e->vocab, o->vocab_dir);
    e->threads = o->threads;
    for (int t = 0; t < e->threads; t++) { e->enc[t] = gpt2_encoder_new(&e->vocab); }
}

void engine_close(Engine* e) {
    for (int t = 0; t < e->threads; t++) { gpt2_encoder_free(e->enc[t]); }
    gpt2_vocab_free(&e->vocab);
}

static uint64_t parse_u64(const char* flag, const char* s) {
    char* end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') { die("%s wants a non-negative integer, got '%s'", flag, s); }
    return (uint64_t)v;
}

// Reads LIST (one path per line, '-' = stdin) into o->list and appends the
// paths, which point into it, to the arguments.
static void read_file_list(Opts* o, const char* list, size_t* slots) {
    if (strcmp(list, "-") == 0) {
        uint8_t chunk[1 << 16];
        size_t got;
        while ((got = fread(chunk, 1, sizeof(chunk), stdin)) > 0) { buf_append(&o->list, chunk, got); }
        buf_push(&o->list, 0);
    } else {
        o->list = read_file_or_die(list);
    }
    char* s = (char*)o->list.p;
    for (char* end = s + o->list.n; s < end;) {
        char* nl = (char*)memchr(s, '\n', (size_t)(end - s));
        char* eol = nl ? nl : end;
        *eol = 0;
        if (eol > s && eol[-1] == '\r') { eol[-1] = 0; }
        if (*s) {
            o->args = (const char**)grow_or_die((void*)o->args, slots, (size_t)o->n_args + 1, sizeof(char*), "input list");
            o->args[o->n_args++] = s;
        }
        s = eol + 1;
    }
}

static char* option_value(int argc, char** argv, int* i) {
    if (*i + 1 >= argc) { die("option %s needs a value", argv[*i]); }
    return argv[++*i];
}

static void parse_args(int argc, char** argv, Opts* o) {
    memset(o, 0, sizeof(*o));
    o->vocab_dir = "data/vocab";
    o->threads = cpu_count();
    o->docs.mode = DOCS_WHOLE_FILE;
    o->docs.field = "text";
    o->shard_tokens = 100000000;
    o->repeat = 1;
    size_t slots = 0;
    for (int i = 2; i < argc; i++) {
        const char* a = argv[i];
#define VALUE() option_value(argc, argv, &i)
        if (strcmp(a, "--vocab") == 0) { o->vocab_dir = VALUE(); }
        else if (strcmp(a, "--threads") == 0) { o->threads = (int)parse_u64(a, VALUE()); }
        else if (strcmp(a, "--allow-special") == 0) { o->allow_special = 1; }
        else if (strcmp(a, "--complete-end") == 0) { o->complete_end = 1; }
        else if (strcmp(a, "--out") == 0) { o->out = VALUE(); }
        else if (strcmp(a, "-f") == 0 || strcmp(a, "--ids-out") == 0) { o->file = VALUE(); }
        else if (strcmp(a, "--jsonl") == 0) { o->docs.mode = DOCS_JSONL; }
        else if (strcmp(a, "--field") == 0) { o->docs.field = VALUE(); }
        else if (strcmp(a, "--sep") == 0) {
            char* s = VALUE();
            o->docs.mode = DOCS_SEPARATOR;
            o->docs.sep_len = unescape_arg(s);
            o->docs.sep = s;
            if (o->docs.sep_len == 0) { die("--sep needs a non-empty separator"); }
        }
        else if (strcmp(a, "--chunk") == 0) {
            o->docs.mode = DOCS_CHUNK;
            o->docs.chunk = (size_t)parse_u64(a, VALUE());
        }
        else if (strcmp(a, "--keep-invalid-utf8") == 0) { o->docs.keep_invalid = 1; }
        else if (strcmp(a, "--files-from") == 0) { read_file_list(o, VALUE(), &slots); }
        else if (strcmp(a, "--shuffle") == 0) { o->shuffle = 1; o->seed = parse_u64(a, VALUE()); }
        else if (strcmp(a, "--val-tokens") == 0) { o->val_tokens = parse_u64(a, VALUE()); }
        else if (strcmp(a, "--shard-tokens") == 0) { o->shard_tokens = parse_u64(a, VALUE()); }
        else if (strcmp(a, "--repeat") == 0) { o->repeat = (int)parse_u64(a, VALUE()); }
        else if (a[0] == '-' && a[1] == '-') { die("unknown option %s\n%s", a, USAGE); }
        else {
            o->args = (const char**)grow_or_die((void*)o->args, &slots, (size_t)o->n_args + 1, sizeof(char*), "arguments");
            o->args[o->n_args++] = a;
        }
    }
#undef VALUE
    if (o->threads < 1 || o->threads > MAX_THREADS) { die("--threads must be between 1 and %d", MAX_THREADS); }
    if (o->val_tokens == 0) { o->val_tokens = o->shard_tokens; }
    if (o->repeat < 1) { o->repeat = 1; }
}

static void print_ids(const IdVec* ids) {
    for (size_t i = 0; i < ids->n; i++) { printf(i ? " %u" : "%u", ids->p[i]); }
    printf("\n");
}

static int cmd_encode(const Opts* o) {
    Buf text = {0};
    if (o->file) {
        if (strcmp(o->file, "-") == 0) {
            uint8_t chunk[1 << 16];
            size_t got;
            while ((got = fread(chunk, 1, sizeof(chunk), stdin)) > 0) { buf_append(&text, chunk, got); }
        } else {
            text = read_file_or_die(o->file);
        }
    } else if (o->n_args == 1) {
        buf_append(&text, o->args[0], strlen(o->args[0]));
    } else {
        die("encode wants one TEXT argument or -f FILE\n%s", USAGE);
    }
    Gpt2Vocab v;
    gpt2_vocab_load(&v, o->vocab_dir);
    Gpt2Encoder* e = gpt2_encoder_new(&v);
    IdVec ids = {0};
    gpt2_encode(e, text.p, text.n, o->allow_special, &ids);
    print_ids(&ids);
    ids_free(&ids);
    buf_free(&text);
    gpt2_encoder_free(e);
    gpt2_vocab_free(&v);
    return 0;
}

static int cmd_decode(const Opts* o) {
    Gpt2Vocab v;
    gpt2_vocab_load(&v, o->vocab_dir);
    IdVec ids = {0};
    for (int i = 0; i < o->n_args; i++) {
        uint64_t id = parse_u64("decode", o->args[i]);
        if (id >= GPT2_VOCAB_SIZE) { die("token id %llu is outside the vocabulary (0..%d)", (unsigned long long)id, GPT2_VOCAB_SIZE - 1); }
        ids_push(&ids, (uint32_t)id);
    }
    Buf out = {0};
    gpt2_decode(&v, ids.p, ids.n, &out);
    fwrite_or_die(out.p, 1, out.n, stdout, "stdout");
    buf_free(&out);
    ids_free(&ids);
    gpt2_vocab_free(&v);
    return 0;
}

static int cmd_export(const Opts* o) {
    if (o->n_args != 1) { die("export wants one output path\n%s", USAGE); }
    Gpt2Vocab v;
    gpt2_vocab_load(&v, o->vocab_dir);
    gpt2_write_decoder_file(&v, o->args[0]);
    gpt2_vocab_free(&v);
    fprintf(stderr, "wrote %s (%d tokens)\n", o->args[0], GPT2_VOCAB_SIZE);
    return 0;
}

// Times encoding every document of a JSON-lines file, encoders created
// fresh for each repetition so that every run starts with a cold cache.
static int cmd_bench(const Opts* o) {
    if (o->n_args != 1) { die("bench wants one JSON-lines file\n%s", USAGE); }
    DocOptions dopt = o->docs;
    dopt.mode = DOCS_JSONL;
    dopt.keep_invalid = 1;
    DocReader r;
    DocSet d = {0};
    Buf doc = {0};
    doc_reader_open(&r, &dopt, o->args, 1);
    while (doc_reader_next(&r, &doc)) { docset_add(&d, doc.p, doc.n); }
    doc_reader_close(&r);
    buf_free(&doc);

    Gpt2Vocab v;
    gpt2_vocab_load(&v, o->vocab_dir);
    IdVec* out = (IdVec*)calloc_or_die(d.n, sizeof(IdVec), "document ids");
    Gpt2Encoder* enc[MAX_THREADS];
    double best = 1e30;
    for (int rep = 0; rep < o->repeat; rep++) {
        for (int t = 0; t < o->threads; t++) { enc[t] = gpt2_encoder_new(&v); }
        double t0 = now_seconds();
        docset_encode(&d, NULL, d.n, enc, o->threads, 0, out);
        double dt = now_seconds() - t0;
        if (dt < best) { best = dt; }
        for (int t = 0; t < o->threads; t++) { gpt2_encoder_free(enc[t]); }
    }
    size_t tokens = 0;
    for (size_t i = 0; i < d.n; i++) { tokens += out[i].n; }
    printf("bench: %zu documents, %zu bytes, %zu tokens, %d threads, best of %d: %.3f s, %.2f MB/s, %.0f tokens/s\n",
           d.n, d.text.n, tokens, o->threads, o->repeat, best, (double)d.text.n / best / 1e6, (double)tokens / best);
    if (o->file) {
        // uint32 little-endian ids of all documents back to back, for comparisons.
        FILE* f = fopen_or_die(o->file, "wb");
        for (size_t i = 0; i < d.n; i++) { fwrite_or_die(out[i].p, sizeof(uint32_t), out[i].n, f, o->file); }
        fclose_or_die(f, o->file);
    }
    for (size_t i = 0; i < d.n; i++) { ids_free(&out[i]); }
    free(out);
    docset_free(&d);
    gpt2_vocab_free(&v);
    return 0;
}

int main(int argc, char** argv) {
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    Opts o;
    parse_args(argc, argv, &o);
    const char* cmd = argv[1];
    int rc;
    if (strcmp(cmd, "encode") == 0) { rc = cmd_encode(&o); }
    else if (strcmp(cmd, "decode") == 0) { rc = cmd_decode(&o); }
    else if (strcmp(cmd, "export") == 0) { rc = cmd_export(&o); }
    else if (strcmp(cmd, "shards") == 0) { rc = cmd_shards(&o); }
    else if (strcmp(cmd, "verify") == 0) { rc = cmd_verify(&o); }
    else if (strcmp(cmd, "docs") == 0) { rc = cmd_docs(&o); }
    else if (strcmp(cmd, "bench") == 0) { rc = cmd_bench(&o); }
    else { die("unknown command '%s'\n%s", cmd, USAGE); }
    free(o.args);
    buf_free(&o.list);
    return rc;
}
