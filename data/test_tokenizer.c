// Unit tests of the data tools, one PASS/FAIL/SKIP line per check.
// usage: test_tokenizer VOCAB_DIR   (vocabulary tests are skipped when it is missing)
//
// Expected ids: "Hello world" and "<|endoftext|>" are well-known tiktoken
// outputs; the ids marked "corpus" are pre-tokens that occur in the
// tiktoken-made debian_docs shards, which `tokenize verify` matches token for
// token; the ones marked "regression" come from this implementation (their
// pieces are checked separately) and guard against changes.
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "../llmc/tokenizer.h"
#include "docs.h"
#include "docset.h"
#include "gpt2_bpe.h"
#include "json.h"
#include "parallel.h"
#include "sha256.h"
#include "shard_io.h"

static int passed, failed, skipped;
static char tmpdir[] = "/tmp/test_tokenizer_XXXXXX";

static void check(const char* name, int ok) {
    printf("%s %s\n", ok ? "PASS" : "FAIL", name);
    if (ok) { passed++; } else { failed++; }
}

static void skip(const char* name, const char* why) {
    printf("SKIP %s (%s)\n", name, why);
    skipped++;
}

static char* tmp_path(const char* name) {
    static char path[8][512];
    static int next;
    char* p = path[next++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static void write_file(const char* path, const void* data, size_t n) {
    FILE* f = fopen_or_die(path, "wb");
    fwrite_or_die(data, 1, n, f, path);
    fclose_or_die(f, path);
}

// Runs fn(arg) in a child process: true when it exits non-zero and its stderr
// contains both needles (a message that names the file and the problem).
static int dies_with(void (*fn)(void*), void* arg, const char* needle1, const char* needle2) {
    fflush(stdout);
    const char* log = tmp_path("child.log");
    pid_t pid = fork();
    if (pid == 0) {
        if (freopen(log, "w", stderr) == NULL) { _exit(99); }
        fn(arg);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    Buf msg = read_file_or_die(log);
    int ok = WIFEXITED(status) && WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 99 &&
             strstr((char*)msg.p, needle1) && strstr((char*)msg.p, needle2);
    if (!ok) { printf("  child stderr: %s", (char*)msg.p); }
    buf_free(&msg);
    return ok;
}

// ---------------------------------------------------------------- SHA-256

static int sha_is(const void* data, size_t n, const char* want) {
    char hex[65];
    sha256_hex(data, n, hex);
    return strcmp(hex, want) == 0;
}

static void test_sha256(void) {
    check("sha256: empty", sha_is("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    check("sha256: abc", sha_is("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    const char* m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check("sha256: 448-bit message", sha_is(m448, strlen(m448), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
    const char* m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    check("sha256: 896-bit message", sha_is(m896, strlen(m896), "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"));
    char* million = (char*)malloc_or_die(1000000, "test");
    memset(million, 'a', 1000000);
    check("sha256: one million a", sha_is(million, 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
    // Feeding in uneven pieces must equal one call.
    Sha256 s;
    uint8_t d1[32], d2[32];
    sha256_init(&s);
    for (size_t at = 0, step = 1; at < 100000; at += step, step = step % 97 + 1) {
        sha256_update(&s, million + at, at + step <= 100000 ? step : 100000 - at);
    }
    sha256_final(&s, d1);
    sha256_init(&s);
    sha256_update(&s, million, 100000);
    sha256_final(&s, d2);
    check("sha256: incremental equals one-shot", memcmp(d1, d2, 32) == 0);
    free(million);
}

// ---------------------------------------------------------------- JSON, UTF-8, arguments

static int json_str_is(const char* lit, const char* want, size_t want_n) {
    Buf out = {0};
    size_t pos = 0;
    int ok = json_string((const uint8_t*)lit, strlen(lit), &pos, &out) == 0 && out.n == want_n &&
             memcmp(out.p, want, want_n) == 0 && pos == strlen(lit);
    buf_free(&out);
    return ok;
}

static int field_is(const char* line, int want_rc, const char* want) {
    Buf out = {0};
    int rc = json_object_string_field((const uint8_t*)line, strlen(line), "text", &out);
    int ok = rc == want_rc && (rc != 1 || (out.n == strlen(want) && memcmp(out.p, want, out.n) == 0));
    buf_free(&out);
    return ok;
}

static void test_json(void) {
    check("json: escapes", json_str_is("\"a\\\"b\\\\c\\/d\\n\\t\\r\\b\\f\"", "a\"b\\c/d\n\t\r\b\f", 12));
    check("json: \\u escapes to UTF-8", json_str_is("\"\\u0041\\u00e9\\u4e16\"", "A\xc3\xa9\xe4\xb8\x96", 6));
    check("json: surrogate pair", json_str_is("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4));
    check("json: lone surrogate becomes U+FFFD", json_str_is("\"x\\ud800y\"", "x\xef\xbf\xbdy", 5));
    check("json: raw bytes pass through", json_str_is("\"\xff\xc3\xa9\"", "\xff\xc3\xa9", 3));
    Buf out = {0};
    size_t pos = 0;
    check("json: unterminated string fails", json_string((const uint8_t*)"\"abc", 4, &pos, &out) == -1);
    pos = 0;
    check("json: bad escape fails", json_string((const uint8_t*)"\"\\q\"", 4, &pos, &out) == -1);
    buf_free(&out);
    check("json: field after nested values",
          field_is("{\"id\": 3, \"meta\": {\"a\": [1, {\"text\": \"no\"}], \"b\": null}, \"text\": \"yes\\n\", \"z\": 1}", 1, "yes\n"));
    check("json: escaped key matches", field_is("{\"t\\u0065xt\":\"ok\"}", 1, "ok"));
    check("json: missing field", field_is("{\"body\": \"x\"}", 0, ""));
    check("json: non-string field is missing", field_is("{\"text\": 5}", 0, ""));
    check("json: not an object", field_is("[\"text\", \"x\"]", -1, ""));
    check("json: truncated object", field_is("{\"a\": [1, 2", -1, ""));
    char deep[2000];
    memset(deep, '[', 1000);
    snprintf(deep + 1000, sizeof(deep) - 1000, "]");
    pos = 0;
    check("json: absurd nesting is rejected, not recursed", json_skip_value((const uint8_t*)deep, strlen(deep), &pos) == -1);
}

static int sanitized_is(const char* in, size_t n, int final, const char* want, size_t want_n, size_t want_used) {
    Buf out = {0};
    size_t used = utf8_sanitize((const uint8_t*)in, n, final, &out);
    int ok = used == want_used && out.n == want_n && memcmp(out.p, want, want_n) == 0;
    buf_free(&out);
    return ok;
}

static void test_utf8(void) {
    const char* good = "a\xc3\xa9\xe4\xb8\x96\xf0\x9f\x98\x80";
    check("utf8: valid text unchanged", sanitized_is(good, 10, 1, good, 10, 10));
    check("utf8: stray byte -> U+FFFD", sanitized_is("a\x92z", 3, 1, "a\xef\xbf\xbdz", 5, 3));
    check("utf8: broken sequence -> one U+FFFD", sanitized_is("\xe1\x80" "A", 3, 1, "\xef\xbf\xbd" "A", 4, 3));
    check("utf8: overlong -> U+FFFD each byte", sanitized_is("\xc0\x80", 2, 1, "\xef\xbf\xbd\xef\xbf\xbd", 6, 2));
    check("utf8: surrogate -> 3 x U+FFFD", sanitized_is("\xed\xa0\x80", 3, 1, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 9, 3));
    check("utf8: incomplete tail kept back", sanitized_is("ab\xe4\xb8", 4, 0, "ab", 2, 2));
    check("utf8: incomplete tail at end -> U+FFFD", sanitized_is("ab\xe4\xb8", 4, 1, "ab\xef\xbf\xbd", 5, 4));
    char arg[] = "a\\n\\tb\\\\c\\x41\\";
    size_t n = unescape_arg(arg);
    check("args: C escapes", n == 8 && memcmp(arg, "a\n\tb\\cA\\", 8) == 0);
}

// ---------------------------------------------------------------- documents

static int read_docs(const DocOptions* opt, const char* const* paths, int n, const char** want, int want_n) {
    DocReader r;
    Buf doc = {0};
    int i = 0, ok = 1;
    doc_reader_open(&r, opt, paths, n);
    for (; doc_reader_next(&r, &doc); i++) {
        if (i >= want_n || doc.n != strlen(want[i]) || memcmp(doc.p, want[i], doc.n) != 0) {
            printf("  document %d differs: '%.*s'\n", i, (int)(doc.n < 200 ? doc.n : 200), (char*)doc.p);
            ok = 0;
        }
    }
    doc_reader_close(&r);
    buf_free(&doc);
    return ok && i == want_n;
}

static void jsonl_missing_field(void* arg) {
    DocOptions opt = {DOCS_JSONL, NULL, 0, 0, "text", 0};
    const char* paths[1] = {(const char*)arg};
    DocReader r;
    Buf doc = {0};
    doc_reader_open(&r, &opt, paths, 1);
    while (doc_reader_next(&r, &doc)) {}
}

static void test_docs(void) {
    const char* a = tmp_path("a.txt");
    write_file(a, "first\n\n\nsecond \xff\n", 17);
    const char* b = tmp_path("b.txt");
    write_file(b, "", 0);
    const char* paths[2] = {a, b};
    DocOptions whole = {DOCS_WHOLE_FILE, NULL, 0, 0, "text", 0};
    const char* w1[] = {"first\n\n\nsecond \xef\xbf\xbd\n"};
    check("docs: whole files, empty skipped, invalid UTF-8 replaced", read_docs(&whole, paths, 2, w1, 1));
    whole.keep_invalid = 1;
    const char* w2[] = {"first\n\n\nsecond \xff\n"};
    check("docs: --keep-invalid-utf8 keeps bytes", read_docs(&whole, paths, 2, w2, 1));

    const char* s = tmp_path("sep.txt");
    const char* st = "<|endoftext|>\n one\n<|endoftext|>\n\n<|endoftext|>two\r\n<|endoftext|>";
    write_file(s, st, strlen(st));
    DocOptions sep = {DOCS_SEPARATOR, "<|endoftext|>", 13, 0, "text", 0};
    const char* w3[] = {"one", "two"};
    check("docs: separator, trimmed, empty parts dropped", read_docs(&sep, &s, 1, w3, 2));

    // The chunk rule: skip N characters, cut before the next "\n\n".
    const char* c = tmp_path("chunk.txt");
    const char* ct = "\xc3\xa9\xc3\xa9\xc3\xa9\n\nab\n\ncd\n\n\nxyz\n\nq";
    write_file(c, ct, strlen(ct));
    DocOptions chunk = {DOCS_CHUNK, NULL, 0, 4, "text", 0};
    const char* w4[] = {"\xc3\xa9\xc3\xa9\xc3\xa9\n\nab", "\n\ncd", "\n\n\nxyz", "\n\nq"};
    check("docs: chunk at blank lines counting characters", read_docs(&chunk, &c, 1, w4, 4));

    const char* j = tmp_path("in.jsonl");
    const char* jl = "{\"text\": \"x\\ny\"}\n\n{\"id\": 1, \"text\": \"\\u00e9\"}\r\n{\"text\":\"last\"}";
    write_file(j, jl, strlen(jl));
    DocOptions jsonl = {DOCS_JSONL, NULL, 0, 0, "text", 0};
    const char* w5[] = {"x\ny", "\xc3\xa9", "last"};
    check("docs: JSON lines, blank lines and CRLF", read_docs(&jsonl, &j, 1, w5, 3));
    const char* bad = tmp_path("bad.jsonl");
    write_file(bad, "{\"text\": \"ok\"}\n{\"body\": 1}\n", 27);
    check("docs: JSON line without the field dies naming file and line",
          dies_with(jsonl_missing_field, (void*)bad, "bad.jsonl' line 2", "no string field"));

    // Documents longer than one read chunk (1 MiB) must come out whole.
    size_t big = 3u << 20;
    char* text = (char*)malloc_or_die(big + 1, "test");
    for (size_t i = 0; i < big; i++) { text[i] = (char)('a' + i % 26); }
    memcpy(text + big / 2, "SEP", 3);
    text[big] = 0;
    const char* l = tmp_path("long.txt");
    write_file(l, text, big);
    DocOptions sep2 = {DOCS_SEPARATOR, "SEP", 3, 0, "text", 0};
    text[big / 2] = 0;
    const char* w6[] = {text, text + big / 2 + 3};
    check("docs: streaming across read chunks", read_docs(&sep2, &l, 1, w6, 2));
    free(text);
}

// ---------------------------------------------------------------- shuffling, threads, shards

static void count_item(void* ctx, int thread, size_t i) {
    (void)thread;
    __atomic_add_fetch(&((int*)ctx)[i], 1, __ATOMIC_RELAXED);
}

static void test_shuffle_parallel(void) {
    enum { N = 1000 };
    size_t a[N], b[N], c[N];
    for (size_t i = 0; i < N; i++) { a[i] = b[i] = c[i] = i; }
    shuffle_indices(a, N, 1337);
    shuffle_indices(b, N, 1337);
    shuffle_indices(c, N, 1338);
    int seen[N] = {0}, perm = 1, moved = 0;
    for (size_t i = 0; i < N; i++) { seen[a[i]]++; moved += a[i] != i; }
    for (size_t i = 0; i < N; i++) { perm &= seen[i] == 1; }
    check("shuffle: a permutation, same for the same seed", perm && moved > N / 2 && memcmp(a, b, sizeof(a)) == 0);
    check("shuffle: another seed gives another order", memcmp(a, c, sizeof(a)) != 0);
    int hits[N] = {0}, once = 1;
    parallel_for(4, N, count_item, hits);
    for (size_t i = 0; i < N; i++) { once &= hits[i] == 1; }
    check("parallel_for: every item exactly once on 4 threads", once);
}

static void read_bad_shard(void* path) {
    IdVec v = {0};
    shard_read((const char*)path, &v);
}

static void test_shards(void) {
    char prefix[512];
    snprintf(prefix, sizeof(prefix), "%s/s/t", tmpdir);
    mkdir_p_or_die(tmp_path("s"));
    ShardWriter* w = (ShardWriter*)malloc_or_die(sizeof(ShardWriter), "test");
    shard_writer_open(w, prefix, 5, 7);
    uint32_t ids[20];
    for (uint32_t i = 0; i < 20; i++) { ids[i] = 50256 - i; }
    shard_writer_add(w, ids, 3);
    shard_writer_add(w, ids + 3, 17);
    int shards = shard_writer_close(w);
    const char* names[] = {"s/t_val_000000.bin", "s/t_train_000001.bin", "s/t_train_000002.bin", "s/t_train_000003.bin"};
    const size_t counts[] = {5, 7, 7, 1};
    int ok = shards == 4 && w->total == 20;
    IdVec all = {0};
    for (int s = 0; s < 4; s++) {
        const char* p = tmp_path(names[s]);
        int32_t header[256];
        FILE* f = fopen_or_die(p, "rb");
        fread_or_die(header, sizeof(int32_t), 256, f, p);
        fclose(f);
        ok &= header[0] == 20240520 && header[1] == 1 && header[2] == (int32_t)counts[s];
        ok &= file_size_or_die(p) == (long)(1024 + 2 * counts[s]);
        shard_read(p, &all);
    }
    ok &= all.n == 20 && memcmp(all.p, ids, sizeof(ids)) == 0;
    check("shards: names, headers, sizes and contents", ok);
    check("shards: no .tmp left behind", !file_exists(tmp_path("s/t_train_000003.bin.tmp")));
    free(w);
    ids_free(&all);

    uint8_t junk[2048] = {0};
    write_file(tmp_path("junk.bin"), junk, sizeof(junk));
    check("shards: bad magic dies naming the file", dies_with(read_bad_shard, tmp_path("junk.bin"), "junk.bin", "magic"));
    int32_t header[256] = {20240520, 1, 100};
    write_file(tmp_path("short.bin"), header, sizeof(header));
    check("shards: truncated shard dies naming the file", dies_with(read_bad_shard, tmp_path("short.bin"), "short.bin", "promises 100 tokens"));
}

// ---------------------------------------------------------------- llmc/tokenizer.h

static void load_tokenizer(void* path) {
    Tokenizer t;
    tokenizer_init(&t, (const char*)path);
}

static void write_tok_file(const char* path, uint32_t magic, uint32_t version, int drop_tail, int extra) {
    uint32_t header[256] = {magic, version, 3, 2};
    Buf b = {0};
    buf_append(&b, header, sizeof(header));
    buf_append(&b, "\x02hi\x01\x00\x0d<|endoftext|>", 19);
    if (extra) { buf_push(&b, 0); }
    write_file(path, b.p, b.n - (size_t)drop_tail);
    buf_free(&b);
}

static void test_tokenizer_h(void) {
    const char* good = tmp_path("tok.bin");
    write_tok_file(good, 20240328, 2, 0, 0);
    Tokenizer t;
    int rc = tokenizer_init(&t, good);
    check("tokenizer.h: loads a valid file", rc == 1 && t.ok && t.vocab_size == 3 && t.eot_token == 2 &&
                                              strcmp(tokenizer_decode(&t, 0), "hi") == 0 &&
                                              strcmp(tokenizer_decode(&t, 2), "<|endoftext|>") == 0);
    check("tokenizer.h: out of range decodes to NULL", tokenizer_decode(&t, 3) == NULL);
    char* mem = NULL;
    size_t memn = 0;
    FILE* f = open_memstream(&mem, &memn);
    tokenizer_print(&t, 0, f);
    tokenizer_print(&t, 1, f);
    tokenizer_print(&t, 7, f);
    fclose(f);
    check("tokenizer.h: print escapes control bytes", strcmp(mem, "hi\\x00[7]") == 0);
    free(mem);
    tokenizer_free(&t);
    fflush(stdout);
    rc = tokenizer_init(&t, tmp_path("absent.bin"));
    check("tokenizer.h: missing file gives ok = 0", rc == 0 && t.ok == 0 && tokenizer_decode(&t, 0) == NULL);
    const char* p = tmp_path("badmagic.bin");
    write_tok_file(p, 1234, 2, 0, 0);
    check("tokenizer.h: bad magic dies", dies_with(load_tokenizer, (void*)p, "badmagic.bin", "magic"));
    p = tmp_path("badversion.bin");
    write_tok_file(p, 20240328, 1, 0, 0);
    check("tokenizer.h: bad version dies", dies_with(load_tokenizer, (void*)p, "badversion.bin", "version"));
    p = tmp_path("truncated.bin");
    write_tok_file(p, 20240328, 2, 4, 0);
    check("tokenizer.h: truncated file dies", dies_with(load_tokenizer, (void*)p, "truncated.bin", "truncated"));
    p = tmp_path("trailing.bin");
    write_tok_file(p, 20240328, 2, 0, 1);
    check("tokenizer.h: trailing bytes die", dies_with(load_tokenizer, (void*)p, "trailing.bin", "after the last token"));
}

// ---------------------------------------------------------------- with the vocabulary

static Gpt2Vocab vocab;
static Gpt2Encoder* enc;

static int ids_are(const char* text, size_t n, int allow, const uint32_t* want, size_t want_n) {
    IdVec got = {0};
    gpt2_encode(enc, (const uint8_t*)text, n, allow, &got);
    int ok = got.n == want_n && memcmp(got.p, want, want_n * sizeof(uint32_t)) == 0;
    if (!ok) {
        printf("  got:");
        for (size_t i = 0; i < got.n; i++) { printf(" %u", got.p[i]); }
        printf("\n");
    }
    ids_free(&got);
    return ok;
}
#define IDS(text, allow, ...) \
    ids_are(text, strlen(text), allow, (const uint32_t[]){__VA_ARGS__}, sizeof((const uint32_t[]){__VA_ARGS__}) / sizeof(uint32_t))

static void test_known_ids(void) {
    check("ids: Hello world (tiktoken)", IDS("Hello world", 0, 15496, 995));
    check("ids: <|endoftext|> as plain text (tiktoken)", IDS("<|endoftext|>", 0, 27, 91, 437, 1659, 5239, 91, 29));
    check("ids: <|endoftext|> allowed", IDS("<|endoftext|>", 1, 50256));
    check("ids: special between text", IDS("a<|endoftext|><|endoftext|>b<|endoftext", 1, 64, 50256, 50256, 65, 27, 91, 437, 1659, 5239));
    check("ids: contractions (corpus)", IDS("I'm, don't, THEY'LL", 0, 40, 1101, 11, 836, 470, 11, 33302, 6, 3069));
    check("ids: digits (corpus)", IDS("12345 3.14159", 0, 10163, 2231, 513, 13, 1415, 19707));
    check("ids: spaces and newlines (corpus)", IDS("a  \n\n  b   ", 0, 64, 220, 220, 628, 220, 275, 220, 220, 220));
    check("ids: accented letters (regression)", IDS("naïve café Ñandú", 0, 2616, 38776, 40304, 6184, 239, 392, 21356));
    check("ids: CJK (regression; 世界 corpus)", IDS("你好，世界", 0, 19526, 254, 25001, 121, 171, 120, 234, 10310, 244, 45911, 234));
    check("ids: emoji with skin tone (regression)", IDS(" 👍🏽", 0, 50169, 235, 8582, 237, 121));
}

typedef struct { Buf all; int n; } Pieces;

static void collect_piece(void* ctx, const uint8_t* p, size_t n) {
    Pieces* ps = (Pieces*)ctx;
    buf_append(&ps->all, p, n);
    buf_push(&ps->all, '|');
    ps->n++;
}

// want: the pieces, each followed by '|' but the last.
static int pieces_are(const char* text, const char* want) {
    Pieces ps = {{0}, 0};
    gpt2_pretokenize(enc, (const uint8_t*)text, strlen(text), collect_piece, &ps);
    buf_push(&ps.all, 0);
    char expect[512];
    snprintf(expect, sizeof(expect), "%s|", want);
    int ok = strcmp((char*)ps.all.p, expect) == 0;
    if (!ok) { printf("  got pieces: %s\n", (char*)ps.all.p); }
    buf_free(&ps.all);
    return ok;
}

static void test_pieces(void) {
    check("pieces: contractions, case-sensitive", pieces_are("I'm, don't, THEY'LL it's 'S'll've", "I|'m|,| don|'t|,| THEY|'|LL| it|'s| '|S|'ll|'ve"));
    check("pieces: digits are not split", pieces_are("12345 3.14159", "12345| 3|.|14159"));
    check("pieces: whitespace runs leave one space to the next word", pieces_are("a  \n\n  b   ", "a|  \n\n | b|   "));
    check("pieces: precomposed accents are letters", pieces_are("naïve café Ñandú", "naïve| café| Ñandú"));
    check("pieces: NFD combining mark splits off", pieces_are("cafe\xcc\x81 x", "cafe|\xcc\x81| x"));
    check("pieces: CJK letters and fullwidth punctuation", pieces_are("你好，世界", "你好|，|世界"));
    check("pieces: emoji, skin tones and ZWJ stay one symbol run", pieces_are("hi 👍🏽 👨‍👩‍👧!", "hi| 👍🏽| 👨‍👩‍👧!"));
    check("pieces: non-ASCII digits and fractions are numbers", pieces_are("x½ ٣٤", "x|½| ٣٤"));
    check("pieces: NBSP is whitespace", pieces_are("a\xc2\xa0" "b", "a|\xc2\xa0|b"));
    check("pieces: U+180E is not whitespace (Unicode White_Space)", pieces_are("x \xe1\xa0\x8ey", "x| \xe1\xa0\x8e|y"));
    check("pieces: invalid UTF-8 runs are pieces of their own", pieces_are("ab\xff\xfe" "cd \xe4\xb8" "x", "ab|\xff\xfe|cd| |\xe4\xb8|x"));
    check("pieces: <|endoftext|> as text", pieces_are("<|endoftext|>", "<||endoftext||>"));
}

static int roundtrips(const uint8_t* text, size_t n) {
    IdVec ids = {0};
    Buf back = {0};
    gpt2_encode(enc, text, n, 0, &ids);
    int ok = gpt2_decode(&vocab, ids.p, ids.n, &back) == 0 && back.n == n && (n == 0 || memcmp(back.p, text, n) == 0);
    ids_free(&ids);
    buf_free(&back);
    return ok;
}

static uint64_t rng_state = 42;
static uint32_t rnd(void) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}

static void test_roundtrip_and_merging(void) {
    const char* samples[] = {"I'm, don't, THEY'LL", "12345 3.14159", "a  \n\n  b   ", "naïve café Ñandú", "cafe\xcc\x81",
                             "你好，世界", "hi 👍🏽 👨‍👩‍👧!", "<|endoftext|>", "\xff\xfe\xc3", "\xed\xa0\x80\xc0\x80", "", " ",
                             "\t\r\n\v\f\xc2\x85\xe3\x80\x80"};
    int ok = 1;
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        ok &= roundtrips((const uint8_t*)samples[i], strlen(samples[i]));
    }
    check("roundtrip: tricky strings, including invalid UTF-8", ok);
    ok = 1;
    uint8_t buf[400];
    for (int trial = 0; trial < 2000; trial++) {
        size_t n = rnd() % sizeof(buf);
        for (size_t i = 0; i < n; i++) { buf[i] = (uint8_t)rnd(); }
        ok &= roundtrips(buf, n);
    }
    check("roundtrip: 2000 random byte strings", ok);
    // The quadratic scan and the heap must merge identically; letters from a
    // small alphabet make long merge chains, random bytes make none.
    ok = 1;
    const char* alphabet = "etaoinshrdlu ";
    for (int trial = 0; trial < 3000 && ok; trial++) {
        size_t n = 1 + rnd() % 300;
        for (size_t i = 0; i < n; i++) { buf[i] = trial % 3 ? (uint8_t)alphabet[rnd() % 13] : (uint8_t)rnd(); }
        IdVec a = {0}, b = {0};
        gpt2_bpe_merge(enc, buf, n, 1, &a);
        gpt2_bpe_merge(enc, buf, n, 2, &b);
        ok &= a.n == b.n && memcmp(a.p, b.p, a.n * sizeof(uint32_t)) == 0;
        ids_free(&a);
        ids_free(&b);
    }
    check("merge: heap and quadratic scan agree on 3000 pieces", ok);
}

static void test_cache_and_threads(void) {
    // Many documents with repeated rare words exercise the cache, its reset
    // (the text has more distinct pieces than the cache holds) and the threads.
    DocSet d = {0};
    char word[64];
    Buf doc = {0};
    for (int i = 0; i < 400; i++) {
        doc.n = 0;
        for (int k = 0; k < 400; k++) {
            int len = snprintf(word, sizeof(word), " zq%uxv%u,", rnd() % 100000, (unsigned)(i * k) % 7);
            buf_append(&doc, word, (size_t)len);
        }
        docset_add(&d, doc.p, doc.n);
    }
    buf_free(&doc);
    IdVec* one = (IdVec*)calloc_or_die(d.n, sizeof(IdVec), "test");
    IdVec* four = (IdVec*)calloc_or_die(d.n, sizeof(IdVec), "test");
    Gpt2Encoder* e4[4];
    for (int t = 0; t < 4; t++) { e4[t] = gpt2_encoder_new(&vocab); }
    docset_encode(&d, NULL, d.n, &enc, 1, 0, one);
    docset_encode(&d, NULL, d.n, e4, 4, 0, four);
    int same = 1;
    for (size_t i = 0; i < d.n; i++) {
        if (i % 50 == 0) {  // a cold encoder (empty cache) must agree too
            IdVec fresh = {0};
            Gpt2Encoder* cold = gpt2_encoder_new(&vocab);
            gpt2_encode(cold, d.text.p + d.off[i], d.len[i], 0, &fresh);
            same &= fresh.n == one[i].n && memcmp(fresh.p, one[i].p, fresh.n * sizeof(uint32_t)) == 0;
            gpt2_encoder_free(cold);
            ids_free(&fresh);
        }
        same &= one[i].n == four[i].n && memcmp(one[i].p, four[i].p, one[i].n * sizeof(uint32_t)) == 0;
    }
    check("threads: 1 and 4 threads, warm and cold caches give identical ids", same);
    for (int t = 0; t < 4; t++) { gpt2_encoder_free(e4[t]); }
    for (size_t i = 0; i < d.n; i++) { ids_free(&one[i]); ids_free(&four[i]); }
    free(one);
    free(four);
    docset_free(&d);
}

static void test_long_inputs(void) {
    // Pathological single pre-tokens: a 16 MB whitespace run and a 4 MB word.
    size_t n = 16u << 20;
    uint8_t* text = (uint8_t*)malloc_or_die(n + 1, "test");
    memset(text, ' ', n);
    text[n] = 'x';
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int ok = roundtrips(text, n + 1);
    for (size_t i = 0; i < (4u << 20); i++) { text[i] = (uint8_t)"abcdefgh"[rnd() % 8]; }
    ok &= roundtrips(text, 4u << 20);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    char name[128];
    snprintf(name, sizeof(name), "long pre-tokens: 16 MB of spaces and a 4 MB word round-trip (%.1f s)", s);
    check(name, ok);
    free(text);
}

static void test_decoder_file(void) {
    const char* p = tmp_path("gpt2_tokenizer.bin");
    gpt2_write_decoder_file(&vocab, p);
    Tokenizer t;
    int ok = tokenizer_init(&t, p) == 1 && t.vocab_size == GPT2_VOCAB_SIZE && t.eot_token == GPT2_EOT;
    for (uint32_t id = 0; ok && id < GPT2_VOCAB_SIZE; id++) {
        size_t n = vocab.off[id + 1] - vocab.off[id];
        ok &= t.length[id] == n && memcmp(tokenizer_decode(&t, id), vocab.bytes + vocab.off[id], n) == 0;
    }
    ok &= strcmp(tokenizer_decode(&t, 15496), "Hello") == 0 && strcmp(tokenizer_decode(&t, GPT2_EOT), "<|endoftext|>") == 0;
    check("decoder file: written by the vocabulary, read by llmc/tokenizer.h", ok);
    tokenizer_free(&t);
}

static void load_vocab(void* dir) {
    Gpt2Vocab v;
    gpt2_vocab_load(&v, (const char*)dir);
}

static void copy_file(const char* from, const char* to, long flip_at) {
    Buf b = read_file_or_die(from);
    if (flip_at >= 0) { b.p[flip_at] ^= 1; }
    write_file(to, b.p, b.n);
    buf_free(&b);
}

static void test_vocab_errors(const char* dir) {
    char src[1024];
    mkdir_p_or_die(tmp_path("vocab_bad"));
    check("vocab: missing files die naming the file",
          dies_with(load_vocab, tmp_path("vocab_bad"), "vocab_bad/encoder.json", "missing"));
    snprintf(src, sizeof(src), "%s/encoder.json", dir);
    copy_file(src, tmp_path("vocab_bad/encoder.json"), -1);
    snprintf(src, sizeof(src), "%s/vocab.bpe", dir);
    copy_file(src, tmp_path("vocab_bad/vocab.bpe"), 1000);
    check("vocab: altered vocab.bpe dies with its SHA-256",
          dies_with(load_vocab, tmp_path("vocab_bad"), "vocab_bad/vocab.bpe", "SHA-256"));
}

int main(int argc, char** argv) {
    if (argc != 2) { die("usage: test_tokenizer VOCAB_DIR"); }
    if (mkdtemp(tmpdir) == NULL) { die("cannot create a temporary directory: %s", strerror(errno)); }
    test_sha256();
    test_json();
    test_utf8();
    test_docs();
    test_shuffle_parallel();
    test_shards();
    test_tokenizer_h();

    char enc_path[1024], bpe_path[1024];
    snprintf(enc_path, sizeof(enc_path), "%s/encoder.json", argv[1]);
    snprintf(bpe_path, sizeof(bpe_path), "%s/vocab.bpe", argv[1]);
    const char* groups[] = {"ids", "pieces", "roundtrip and merging", "cache and threads", "long inputs", "decoder file", "vocab errors"};
    if (!file_exists(enc_path) || !file_exists(bpe_path)) {
        for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) { skip(groups[i], "no vocabulary in the given folder"); }
    } else {
        gpt2_vocab_load(&vocab, argv[1]);
        enc = gpt2_encoder_new(&vocab);
        test_known_ids();
        test_pieces();
        test_roundtrip_and_merging();
        test_cache_and_threads();
        test_long_inputs();
        test_decoder_file();
        test_vocab_errors(argv[1]);
        gpt2_encoder_free(enc);
        gpt2_vocab_free(&vocab);
    }
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) { fprintf(stderr, "warning: could not remove %s\n", tmpdir); }
    printf("test_tokenizer totals: passed=%d failed=%d skipped=%d\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
