#include "docs.h"
#include "json.h"

// Length of the valid UTF-8 sequence at p (n bytes available), 0 if the bytes
// there are invalid, or -k if the k available bytes are a valid but
// incomplete start. *bad is set to the length of the maximal invalid subpart.
static int utf8_seq(const uint8_t* p, size_t n, size_t* bad) {
    uint8_t c = p[0];
    int need;
    uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c < 0x80) { return 1; }
    if (c >= 0xC2 && c <= 0xDF) { need = 2; }
    else if (c >= 0xE0 && c <= 0xEF) { need = 3; if (c == 0xE0) { lo = 0xA0; } if (c == 0xED) { hi = 0x9F; } }
    else if (c >= 0xF0 && c <= 0xF4) { need = 4; if (c == 0xF0) { lo = 0x90; } if (c == 0xF4) { hi = 0x8F; } }
    else { *bad = 1; return 0; }
    for (int i = 1; i < need; i++) {
        if ((size_t)i >= n) { return -i; }
        uint8_t b = p[i];
        if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF)) { *bad = (size_t)i; return 0; }
    }
    return need;
}

size_t utf8_sanitize(const uint8_t* src, size_t n, int final, Buf* out) {
    size_t i = 0;
    buf_reserve(out, n);
    while (i < n) {
        // ASCII runs are the common case: copy them in one go.
        size_t j = i;
        while (j < n && src[j] < 0x80) { j++; }
        buf_append(out, src + i, j - i);
        i = j;
        if (i >= n) { break; }
        size_t bad = 0;
        int len = utf8_seq(src + i, n - i, &bad);
        if (len > 0) { buf_append(out, src + i, (size_t)len); i += (size_t)len; continue; }
        if (len < 0) {
            if (!final) { break; }
            bad = (size_t)-len;
        }
        buf_append(out, "\xEF\xBF\xBD", 3);
        i += bad;
    }
    return i;
}

size_t unescape_arg(char* s) {
    size_t o = 0;
    for (size_t i = 0; s[i]; i++) {
        if (s[i] != '\\' || s[i + 1] == 0) { s[o++] = s[i]; continue; }
        char c = s[++i];
        if (c == 'n') { s[o++] = '\n'; }
        else if (c == 't') { s[o++] = '\t'; }
        else if (c == 'r') { s[o++] = '\r'; }
        else if (c == 'x' && s[i + 1] && s[i + 2]) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            s[o++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else { s[o++] = c; }
    }
    s[o] = 0;
    return o;
}

void doc_reader_open(DocReader* r, const DocOptions* opt, const char* const* paths, int n_paths) {
    memset(r, 0, sizeof(*r));
    r->opt = *opt;
    r->paths = paths;
    r->n_paths = n_paths;
}

void doc_reader_close(DocReader* r) {
    if (r->f && r->f != stdin) { fclose(r->f); }
    buf_free(&r->raw);
    buf_free(&r->win);
    memset(r, 0, sizeof(*r));
}

static int open_next(DocReader* r) {
    if (r->next_path >= r->n_paths) { return 0; }
    r->path = r->paths[r->next_path++];
    r->f = strcmp(r->path, "-") == 0 ? stdin : fopen_or_die(r->path, "rb");
    r->eof = 0;
    r->line = 1;
    r->raw.n = 0;
    r->win.n = 0;
    r->start = 0;
    return 1;
}

// Reads the next chunk, growing with the pending text so that a document
// far longer than one chunk is still found in amortised linear time.
static void read_more(DocReader* r) {
    if (r->start > 0 && r->start >= r->win.n / 2) {
        memmove(r->win.p, r->win.p + r->start, r->win.n - r->start);
        r->win.n -= r->start;
        r->start = 0;
    }
    size_t want = r->win.n - r->start > (1u << 20) ? r->win.n - r->start : (1u << 20);
    buf_reserve(&r->raw, want);
    size_t got = fread(r->raw.p + r->raw.n, 1, want, r->f);
    if (got == 0) {
        if (ferror(r->f)) { die("reading '%s' failed: %s", r->path, strerror(errno)); }
        r->eof = 1;
    }
    r->raw.n += got;
    r->bytes_in += got;
    size_t used = r->opt.keep_invalid ? r->raw.n : utf8_sanitize(r->raw.p, r->raw.n, r->eof, &r->win);
    if (r->opt.keep_invalid) { buf_append(&r->win, r->raw.p, r->raw.n); }
    memmove(r->raw.p, r->raw.p + used, r->raw.n - used);
    r->raw.n -= used;
}

static const uint8_t* find_bytes(const uint8_t* p, size_t n, const char* pat, size_t m) {
    if (m == 0 || n < m) { return NULL; }
    for (const uint8_t* end = p + n - m + 1; p < end; p++) {
        p = (const uint8_t*)memchr(p, (uint8_t)pat[0], (size_t)(end - p));
        if (p == NULL) { return NULL; }
        if (memcmp(p, pat, m) == 0) { return p; }
    }
    return NULL;
}

// Finds where the document at the start of the window ends: its length and
// how many bytes after it to drop. Returns 0 when more input is needed.
static int find_end(const DocReader* r, const uint8_t* p, size_t n, size_t* len, size_t* skip) {
    *skip = 0;
    if (n == 0) { return 0; }
    switch (r->opt.mode) {
        case DOCS_WHOLE_FILE:
            return 0;
        case DOCS_JSONL: {
            const uint8_t* nl = (const uint8_t*)memchr(p, '\n', n);
            if (nl == NULL) { return 0; }
            *len = (size_t)(nl - p);
            *skip = 1;
            return 1;
        }
        case DOCS_SEPARATOR: {
            const uint8_t* s = find_bytes(p, n, r->opt.sep, r->opt.sep_len);
            if (s == NULL) { return 0; }
            *len = (size_t)(s - p);
            *skip = r->opt.sep_len;
            return 1;
        }
        case DOCS_CHUNK: {
            // Skip `chunk` code points, then cut before the next "\n\n"; the
            // blank line starts the next document.
            size_t i = 0, chars = 0;
            for (; i < n && chars < r->opt.chunk; i++) { chars += (p[i] & 0xC0) != 0x80; }
            while (i < n && (p[i] & 0xC0) == 0x80) { i++; }
            if (chars < r->opt.chunk || i >= n) { return 0; }
            const uint8_t* s = find_bytes(p + i, n - i, "\n\n", 2);
            if (s == NULL) { return 0; }
            *len = (size_t)(s - p);
            return 1;
        }
    }
    return 0;
}

static int is_space(uint8_t c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

int doc_reader_next(DocReader* r, Buf* doc) {
    for (;;) {
        if (r->f == NULL && !open_next(r)) { return 0; }
        const uint8_t* p = r->win.p + r->start;
        size_t n = r->win.n - r->start, len, skip;
        if (!find_end(r, p, n, &len, &skip)) {
            if (!r->eof) { read_more(r); continue; }
            if (n == 0) {
                if (r->f != stdin) { fclose(r->f); }
                r->f = NULL;
                continue;
            }
            len = n;  // the rest of the file is the last document
        }
        r->start += len + skip;
        doc->n = 0;
        if (r->opt.mode == DOCS_JSONL) {
            size_t line = r->line++;
            while (len && is_space(p[len - 1])) { len--; }
            if (len == 0) { continue; }
            int rc = json_object_string_field(p, len, r->opt.field, doc);
            if (rc < 0) { die("'%s' line %zu is not a JSON object with a string \"%s\"", r->path, line, r->opt.field); }
            if (rc == 0) { die("'%s' line %zu has no string field \"%s\"", r->path, line, r->opt.field); }
        } else if (r->opt.mode == DOCS_SEPARATOR) {
            while (len && is_space(p[0])) { p++; len--; }
            while (len && is_space(p[len - 1])) { len--; }
            buf_append(doc, p, len);
        } else {
            buf_append(doc, p, len);
        }
        if (doc->n > 0) { return 1; }
    }
}
