// Loading GPT-2's vocabulary (encoder.json + vocab.bpe) into lookup maps,
// compiling its pre-tokenization regex, decoding, and writing the trainers'
// decoding file.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include "gpt2_bpe.h"
#include "hash.h"
#include "json.h"
#include "sha256.h"

// GPT-2's pattern, 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// with \s spelled out as Unicode White_Space, which is what tiktoken's regex
// engine means by \s. PCRE2's own \s (even with UCP) adds U+180E, so it is
// not used. (?!\S) is written as "not followed by a non-space".
#define WS "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS "])|[" WS "]+";

// GPT-2 stores token bytes as printable code points: bytes that are printable
// Latin-1 stand for themselves, the other 68 map to 256, 257, ... in order.
static int byte_is_self(int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255); }

static void code_point_to_byte_table(int16_t table[324]) {
    int next = 256;
    for (int i = 0; i < 324; i++) { table[i] = -1; }
    for (int b = 0; b < 256; b++) { table[byte_is_self(b) ? b : next++] = (int16_t)b; }
}

// Decodes GPT-2's printable form (UTF-8 of those code points) back to bytes.
// Returns 0, or -1 when a code point is not one of the 256 used.
static int printable_to_bytes(const int16_t table[324], const uint8_t* s, size_t n, Buf* out) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        if (s[i] < 0x80) { cp = s[i]; i += 1; }
        else if ((s[i] & 0xE0) == 0xC0 && i + 1 < n) { cp = (uint32_t)(s[i] & 0x1F) << 6 | (s[i + 1] & 0x3F); i += 2; }
        else { return -1; }  // every code point used is below 0x800
        if (cp >= 324 || table[cp] < 0) { return -1; }
        buf_push(out, (uint8_t)table[cp]);
    }
    return 0;
}

// Reads a vocabulary file and checks its SHA-256: using a different or edited
// vocabulary would silently produce ids that no GPT-2 model understands.
static Buf read_checked(const char* dir, const char* name, const char* want_sha, char* path, size_t pathcap) {
    snprintf(path, pathcap, "%s/%s", dir, name);
    if (!file_exists(path)) {
        die("vocabulary file '%s' is missing (fetch it with data/fetch_vocab.sh, or pass --vocab DIR)", path);
    }
    Buf b = read_file_or_die(path);
    char got[65];
    sha256_hex(b.p, b.n, got);
    if (strcmp(got, want_sha) != 0) {
        die("vocabulary file '%s' has SHA-256 %s, expected %s: it is altered or not GPT-2's; "
            "delete it and run data/fetch_vocab.sh", path, got, want_sha);
    }
    return b;
}

static void tok_insert(Gpt2Vocab* v, uint32_t id) {
    const uint8_t* p = v->bytes + v->off[id];
    size_t n = v->off[id + 1] - v->off[id];
    for (uint32_t i = (uint32_t)hash_bytes(p, n) & v->tok_mask;; i = (i + 1) & v->tok_mask) {
        if (v->tok_slots[i] == 0) { v->tok_slots[i] = id + 1; return; }
    }
}

int32_t gpt2_token_id(const Gpt2Vocab* v, const uint8_t* p, size_t n) {
    return hash_lookup_bytes(v, p, n, hash_bytes(p, n));
}

static void pair_insert(Gpt2Vocab* v, uint32_t a, uint32_t b, uint32_t merged) {
    uint64_t key = (uint64_t)a << 32 | b;
    for (uint32_t i = (uint32_t)hash_u64(key) & v->pair_mask;; i = (i + 1) & v->pair_mask) {
        if (v->pair_keys[i] == UINT64_MAX) { v->pair_keys[i] = key; v->pair_vals[i] = merged; return; }
        if (v->pair_keys[i] == key) { return; }
    }
}

// encoder.json: {"<printable token>": id, ...}. Fills v->bytes/off by id.
static void parse_encoder_json(Gpt2Vocab* v, const Buf* json, const char* path, const int16_t table[324]) {
    Buf key = {0}, tok = {0}, all = {0};
    uint32_t* start = (uint32_t*)malloc_or_die(GPT2_VOCAB_SIZE * sizeof(uint32_t), "token offsets");
    uint32_t* len = (uint32_t*)calloc_or_die(GPT2_VOCAB_SIZE, sizeof(uint32_t), "token lengths");
    uint8_t* seen = (uint8_t*)calloc_or_die(GPT2_VOCAB_SIZE, 1, "token flags");
    size_t pos = 0, count = 0;
    json_skip_ws(json->p, json->n, &pos);
    if (pos >= json->n || json->p[pos] != '{') { die("'%s' is malformed: expected a JSON object", path); }
    pos++;
    for (;;) {
        json_skip_ws(json->p, json->n, &pos);
        if (pos < json->n && json->p[pos] == '}') { break; }
        key.n = 0;
        if (json_string(json->p, json->n, &pos, &key) != 0) { die("'%s' is malformed near byte %zu", path, pos); }
        json_skip_ws(json->p, json->n, &pos);
        if (pos >= json->n || json->p[pos] != ':') { die("'%s' is malformed near byte %zu", path, pos); }
        pos++;
        json_skip_ws(json->p, json->n, &pos);
        char* end;
        long id = strtol((const char*)json->p + pos, &end, 10);
        if (end == (const char*)json->p + pos || id < 0 || id >= GPT2_VOCAB_SIZE || seen[id]) {
            die("'%s' has a bad or repeated token id near byte %zu", path, pos);
        }
        pos = (size_t)(end - (const char*)json->p);
        tok.n = 0;
        if (printable_to_bytes(table, key.p, key.n, &tok) != 0 || tok.n == 0 || tok.n > 255) {
            die("'%s' has a token that is not in GPT-2's byte alphabet near byte %zu", path, pos);
        }
        seen[id] = 1;
        start[id] = (uint32_t)all.n;
        len[id] = (uint32_t)tok.n;
        buf_append(&all, tok.p, tok.n);
        count++;
        json_skip_ws(json->p, json->n, &pos);
        if (pos < json->n && json->p[pos] == ',') { pos++; }
    }
    if (count != GPT2_VOCAB_SIZE) { die("'%s' has %zu tokens, expected %d", path, count, GPT2_VOCAB_SIZE); }
    // Lay the tokens out by id so that off[] doubles as the length table.
    v->bytes = (uint8_t*)malloc_or_die(all.n, "token bytes");
    uint32_t at = 0;
    for (uint32_t id = 0; id < GPT2_VOCAB_SIZE; id++) {
        v->off[id] = at;
        memcpy(v->bytes + at, all.p + start[id], len[id]);
        at += len[id];
    }
    v->off[GPT2_VOCAB_SIZE] = at;
    if (v->off[GPT2_EOT + 1] - v->off[GPT2_EOT] != 13 || memcmp(v->bytes + v->off[GPT2_EOT], "<|endoftext|>", 13) != 0) {
        die("'%s' does not map <|endoftext|> to %d", path, GPT2_EOT);
    }
    buf_free(&key); buf_free(&tok); buf_free(&all);
    free(start); free(len); free(seen);
}

// The encoder relies on rank == id: single bytes come first in GPT-2's byte
// order and merge i produces token 256 + i. Checked here as tiktoken does.
static void check_merges(const Gpt2Vocab* v, const Buf* bpe, const char* path, const int16_t table[324]) {
    int next = 0;
    for (int b = 0; b < 256; b++) {
        if (byte_is_self(b) && v->byte_id[b] != (uint32_t)next++) { die("'%s' and encoder.json disagree on byte %d", path, b); }
    }
    for (int b = 0; b < 256; b++) {
        if (!byte_is_self(b) && v->byte_id[b] != (uint32_t)next++) { die("'%s' and encoder.json disagree on byte %d", path, b); }
    }
    const uint8_t* s = bpe->p;
    const uint8_t* end = s + bpe->n;
    const uint8_t* nl = (const uint8_t*)memchr(s, '\n', bpe->n);
    if (nl == NULL || memcmp(s, "#version", 8) != 0) { die("'%s' is malformed: no #version line", path); }
    s = nl + 1;
    Buf merged = {0};
    int line = 0;
    for (; s < end; line++) {
        nl = (const uint8_t*)memchr(s, '\n', (size_t)(end - s));
        const uint8_t* eol = nl ? nl : end;
        const uint8_t* sp = (const uint8_t*)memchr(s, ' ', (size_t)(eol - s));
        merged.n = 0;
        if (sp == NULL || printable_to_bytes(table, s, (size_t)(sp - s), &merged) != 0 ||
            printable_to_bytes(table, sp + 1, (size_t)(eol - sp - 1), &merged) != 0) {
            die("'%s' line %d is not a merge 'A B'", path, line + 2);
        }
        if (line >= GPT2_MERGES || gpt2_token_id(v, merged.p, merged.n) != 256 + line) {
            die("'%s' line %d disagrees with encoder.json (merge rank != token id - 256)", path, line + 2);
        }
        s = nl ? nl + 1 : end;
    }
    if (line != GPT2_MERGES) { die("'%s' has %d merges, expected %d", path, line, GPT2_MERGES); }
    buf_free(&merged);
}

// Every way to split a token into two tokens is a pair that merges into it.
// This reproduces tiktoken's rule (merge any adjacent pair whose bytes
// concatenate to a token, by that token's rank) with an O(1) lookup on ids.
static void build_pairs(Gpt2Vocab* v) {
    size_t count = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            uint32_t cap = 1;
            while (cap < 2 * count) { cap <<= 1; }
            v->pair_mask = cap - 1;
            v->pair_keys = (uint64_t*)malloc_or_die(cap * sizeof(uint64_t), "pair map keys");
            v->pair_vals = (uint32_t*)malloc_or_die(cap * sizeof(uint32_t), "pair map values");
            memset(v->pair_keys, 0xFF, cap * sizeof(uint64_t));
        }
        for (uint32_t id = 256; id < GPT2_EOT; id++) {
            const uint8_t* p = v->bytes + v->off[id];
            size_t n = v->off[id + 1] - v->off[id];
            for (size_t k = 1; k < n; k++) {
                int32_t a = gpt2_token_id(v, p, k), b = gpt2_token_id(v, p + k, n - k);
                if (a < 0 || b < 0) { continue; }
                if (pass == 0) { count++; } else { pair_insert(v, (uint32_t)a, (uint32_t)b, id); }
            }
        }
    }
}

static void compile_regex(Gpt2Vocab* v) {
    int err;
    PCRE2_SIZE at;
    pcre2_code* re = pcre2_compile((PCRE2_SPTR)GPT2_PATTERN, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &err, &at, NULL);
    if (re == NULL) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof(msg));
        die("PCRE2 cannot compile GPT-2's pattern at offset %zu: %s (PCRE2 >= 10.34 with Unicode support is needed)", (size_t)at, (char*)msg);
    }
    // Without JIT the interpreter gives the same results, only slower.
    if (pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) != 0) {
        fprintf(stderr, "warning: PCRE2 JIT is unavailable; pre-tokenization will be slow\n");
    }
    v->regex = re;
}

void gpt2_vocab_load(Gpt2Vocab* v, const char* dir) {
    char enc_path[4096], bpe_path[4096];
    memset(v, 0, sizeof(*v));
    Buf json = read_checked(dir, "encoder.json", GPT2_ENCODER_JSON_SHA256, enc_path, sizeof(enc_path));
    Buf bpe = read_checked(dir, "vocab.bpe", GPT2_VOCAB_BPE_SHA256, bpe_path, sizeof(bpe_path));
    int16_t table[324];
    code_point_to_byte_table(table);
    parse_encoder_json(v, &json, enc_path, table);

    uint32_t cap = 1;
    while (cap < 3 * GPT2_VOCAB_SIZE) { cap <<= 1; }
    v->tok_mask = cap - 1;
    v->tok_slots = (uint32_t*)calloc_or_die(cap, sizeof(uint32_t), "token map");
    for (uint32_t id = 0; id < GPT2_EOT; id++) { tok_insert(v, id); }
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        int32_t id = gpt2_token_id(v, &c, 1);
        if (id < 0) { die("'%s' has no token for byte %d", enc_path, b); }
        v->byte_id[b] = (uint32_t)id;
    }
    check_merges(v, &bpe, bpe_path, table);
    build_pairs(v);
    compile_regex(v);
    buf_free(&json);
    buf_free(&bpe);
}

void gpt2_vocab_free(Gpt2Vocab* v) {
    pcre2_code_free((pcre2_code*)v->regex);
    free(v->bytes); free(v->tok_slots); free(v->pair_keys); free(v->pair_vals);
    memset(v, 0, sizeof(*v));
}

int gpt2_decode(const Gpt2Vocab* v, const uint32_t* ids, size_t n, Buf* out) {
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= GPT2_VOCAB_SIZE) { return -1; }
        buf_append(out, v->bytes + v->off[ids[i]], v->off[ids[i] + 1] - v->off[ids[i]]);
    }
    return 0;
}

void gpt2_write_decoder_file(const Gpt2Vocab* v, const char* path) {
    uint32_t header[256] = {20240328, 2, GPT2_VOCAB_SIZE, GPT2_EOT};
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE* f = fopen_or_die(tmp, "wb");
    fwrite_or_die(header, sizeof(header), 1, f, tmp);
    for (uint32_t id = 0; id < GPT2_VOCAB_SIZE; id++) {
        uint8_t n = (uint8_t)(v->off[id + 1] - v->off[id]);  // <= 255, checked at load
        fwrite_or_die(&n, 1, 1, f, tmp);
        fwrite_or_die(v->bytes + v->off[id], 1, n, f, tmp);
    }
    fclose_or_die(f, tmp);
    if (rename(tmp, path) != 0) { die("cannot rename '%s' to '%s': %s", tmp, path, strerror(errno)); }
}
