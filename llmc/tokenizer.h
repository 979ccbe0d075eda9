// GPT-2 token decoding for the trainers' sample output. Header-only, valid C
// and C++ (it is included from .cu files too).
//
// The file (written by `data/tokenize export`, by default data/gpt2_tokenizer.bin)
// is llm.c's layout: 256 uint32 header {20240328, 2, vocab size, eot id, 0...},
// then for each token a uint8 byte length followed by that many bytes.
//
// A missing file is not an error: tokenizer_init leaves ok = 0 and the caller
// prints ids instead. A file that exists but is damaged is fatal, because
// silently printing garbage would hide the problem.
#ifndef LLMC_TOKENIZER_H
#define LLMC_TOKENIZER_H

#include <stdint.h>
#include <stdio.h>
#include "utils.h"

#define TOKENIZER_MAGIC 20240328
#define TOKENIZER_VERSION 2

typedef struct {
    int ok;               // 1 when loaded, 0 when the file was missing
    uint32_t vocab_size;
    uint32_t eot_token;
    char* strings;        // each token's bytes followed by a NUL
    uint32_t* offset;     // token i starts at strings + offset[i]
    uint8_t* length;      // its byte length (a token may itself contain a NUL byte)
} Tokenizer;

// Loads path. Returns 1 when loaded; returns 0 with t->ok = 0 (and a note on
// stderr) when the file does not exist; dies when it is corrupt.
static inline int tokenizer_init(Tokenizer* t, const char* path) {
    memset(t, 0, sizeof(*t));
    if (!file_exists(path)) {
        fprintf(stderr, "note: tokenizer file '%s' not found (make it with `make data/gpt2_tokenizer.bin`); "
                        "samples will be printed as token ids\n", path);
        return 0;
    }
    long size = file_size_or_die(path);
    uint32_t header[256];
    if (size < (long)sizeof(header)) { die("tokenizer file '%s' is truncated: %ld bytes, less than its header", path, size); }
    uint8_t* data = (uint8_t*)malloc_or_die((size_t)size, "tokenizer file");
    FILE* f = fopen_or_die(path, "rb");
    fread_or_die(data, 1, (size_t)size, f, path);
    fclose(f);
    memcpy(header, data, sizeof(header));
    if (header[0] != TOKENIZER_MAGIC) {
        die("'%s' is not a tokenizer file: magic %u, expected %u", path, header[0], (unsigned)TOKENIZER_MAGIC);
    }
    if (header[1] != TOKENIZER_VERSION) {
        die("tokenizer file '%s' has version %u, expected %u", path, header[1], (unsigned)TOKENIZER_VERSION);
    }
    uint32_t n = header[2];
    if (n == 0 || n > (1u << 20) || header[3] >= n) {
        die("tokenizer file '%s' is corrupt: vocab size %u, eot token %u", path, n, header[3]);
    }
    t->vocab_size = n;
    t->eot_token = header[3];
    t->offset = (uint32_t*)malloc_or_die(n * sizeof(uint32_t), "tokenizer offsets");
    t->length = (uint8_t*)malloc_or_die(n, "tokenizer lengths");
    // The strings take at most the file's size: every length byte becomes a NUL.
    t->strings = (char*)malloc_or_die((size_t)size, "tokenizer strings");
    size_t at = sizeof(header), out = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (at >= (size_t)size) { die("tokenizer file '%s' is truncated at token %u of %u", path, i, n); }
        uint8_t len = data[at++];
        if (at + len > (size_t)size) { die("tokenizer file '%s' is truncated inside token %u of %u", path, i, n); }
        if (len == 0) { die("tokenizer file '%s' is corrupt: token %u is empty", path, i); }
        t->offset[i] = (uint32_t)out;
        t->length[i] = len;
        memcpy(t->strings + out, data + at, len);
        out += len;
        t->strings[out++] = '\0';
        at += len;
    }
    if (at != (size_t)size) { die("tokenizer file '%s' is corrupt: %zu bytes after the last token", path, (size_t)size - at); }
    free(data);
    t->ok = 1;
    return 1;
}

// NUL-terminated bytes of token id, or NULL when not loaded or out of range.
static inline const char* tokenizer_decode(const Tokenizer* t, uint32_t id) {
    if (!t->ok || id >= t->vocab_size) { return NULL; }
    return t->strings + t->offset[id];
}

// Prints a token so that it cannot garble a terminal: printable ASCII,
// newline, tab and bytes >= 0x80 (pieces of UTF-8 characters, which often span
// tokens) go out as they are; other control bytes as \xNN. Without a loaded
// tokenizer, or for an id outside it, prints the id as [id].
static inline void tokenizer_print(const Tokenizer* t, uint32_t id, FILE* f) {
    const char* s = tokenizer_decode(t, id);
    if (s == NULL) { fprintf(f, "[%u]", id); return; }
    for (uint8_t i = 0, n = t->length[id]; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if ((c >= 0x20 && c != 0x7F) || c == '\n' || c == '\t') { fputc(c, f); } else { fprintf(f, "\\x%02x", c); }
    }
}

static inline void tokenizer_free(Tokenizer* t) {
    free(t->strings);
    free(t->offset);
    free(t->length);
    memset(t, 0, sizeof(*t));
}

#endif // LLMC_TOKENIZER_H
