// Growable arrays used by the data tools: a byte buffer and a token-id vector.
// Both grow geometrically and die on allocation failure (utils.h).
#ifndef DATA_BUF_H
#define DATA_BUF_H

#include <stddef.h>
#include <stdint.h>
#include "../llmc/utils.h"

typedef struct { uint8_t* p; size_t n, cap; } Buf;
typedef struct { uint32_t* p; size_t n, cap; } IdVec;

static inline void* grow_or_die(void* p, size_t* cap, size_t need, size_t elem, const char* what) {
    if (need <= *cap) { return p; }
    size_t c = *cap ? *cap : 64;
    while (c < need) { c *= 2; }
    void* q = realloc(p, c * elem);
    if (q == NULL) { die("out of host memory growing %s to %zu items", what, c); }
    *cap = c;
    return q;
}

static inline void buf_reserve(Buf* b, size_t extra) {
    b->p = (uint8_t*)grow_or_die(b->p, &b->cap, b->n + extra, 1, "byte buffer");
}
static inline void buf_append(Buf* b, const void* src, size_t n) {
    buf_reserve(b, n);
    if (n) { memcpy(b->p + b->n, src, n); }
    b->n += n;
}
static inline void buf_push(Buf* b, uint8_t c) { buf_reserve(b, 1); b->p[b->n++] = c; }
static inline void buf_free(Buf* b) { free(b->p); b->p = NULL; b->n = b->cap = 0; }

static inline void ids_reserve(IdVec* v, size_t extra) {
    v->p = (uint32_t*)grow_or_die(v->p, &v->cap, v->n + extra, sizeof(uint32_t), "token id vector");
}
static inline void ids_push(IdVec* v, uint32_t id) { ids_reserve(v, 1); v->p[v->n++] = id; }
static inline void ids_append(IdVec* v, const uint32_t* src, size_t n) {
    ids_reserve(v, n);
    if (n) { memcpy(v->p + v->n, src, n * sizeof(uint32_t)); }
    v->n += n;
}
static inline void ids_free(IdVec* v) { free(v->p); v->p = NULL; v->n = v->cap = 0; }

// Reads a whole file into a buffer (plus a NUL terminator not counted in n).
static inline Buf read_file_or_die(const char* path) {
    FILE* f = fopen_or_die(path, "rb");
    Buf b = {0};
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && st.st_size > 0) { buf_reserve(&b, (size_t)st.st_size + 1); }
    for (;;) {
        buf_reserve(&b, 1 << 16);
        size_t got = fread(b.p + b.n, 1, b.cap - b.n, f);
        b.n += got;
        if (got == 0) { break; }
    }
    if (ferror(f)) { die("reading '%s' failed: %s", path, strerror(errno)); }
    fclose(f);
    buf_reserve(&b, 1);
    b.p[b.n] = 0;
    return b;
}

#endif // DATA_BUF_H
