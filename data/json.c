// A small recursive-descent JSON reader. It never builds a tree: callers pull
// the strings they need and skip the rest, so a JSON-lines corpus streams
// through with one reusable buffer.
#include "json.h"

void json_skip_ws(const uint8_t* s, size_t n, size_t* pos) {
    while (*pos < n && (s[*pos] == ' ' || s[*pos] == '\t' || s[*pos] == '\n' || s[*pos] == '\r')) { (*pos)++; }
}

static int hex4(const uint8_t* s, size_t n, size_t at, uint32_t* out) {
    if (at + 4 > n) { return -1; }
    uint32_t v = 0;
    for (size_t i = at; i < at + 4; i++) {
        uint8_t c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) { return -1; }
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return 0;
}

static void put_utf8(Buf* out, uint32_t cp) {
    if (cp < 0x80) {
        buf_push(out, (uint8_t)cp);
    } else if (cp < 0x800) {
        buf_push(out, (uint8_t)(0xC0 | cp >> 6));
        buf_push(out, (uint8_t)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        buf_push(out, (uint8_t)(0xE0 | cp >> 12));
        buf_push(out, (uint8_t)(0x80 | (cp >> 6 & 0x3F)));
        buf_push(out, (uint8_t)(0x80 | (cp & 0x3F)));
    } else {
        buf_push(out, (uint8_t)(0xF0 | cp >> 18));
        buf_push(out, (uint8_t)(0x80 | (cp >> 12 & 0x3F)));
        buf_push(out, (uint8_t)(0x80 | (cp >> 6 & 0x3F)));
        buf_push(out, (uint8_t)(0x80 | (cp & 0x3F)));
    }
}

int json_string(const uint8_t* s, size_t n, size_t* pos, Buf* out) {
    size_t i = *pos;
    if (i >= n || s[i] != '"') { return -1; }
    i++;
    while (i < n) {
        // Copy the run of plain bytes in one go; raw bytes pass through untouched.
        size_t run = i;
        while (run < n && s[run] != '"' && s[run] != '\\') { run++; }
        buf_append(out, s + i, run - i);
        i = run;
        if (i >= n) { break; }
        if (s[i] == '"') { *pos = i + 1; return 0; }
        if (++i >= n) { break; }  // backslash at the very end
        uint8_t e = s[i++];
        switch (e) {
            case '"': case '\\': case '/': buf_push(out, e); break;
            case 'b': buf_push(out, '\b'); break;
            case 'f': buf_push(out, '\f'); break;
            case 'n': buf_push(out, '\n'); break;
            case 'r': buf_push(out, '\r'); break;
            case 't': buf_push(out, '\t'); break;
            case 'u': {
                uint32_t cp, lo;
                if (hex4(s, n, i, &cp) != 0) { return -1; }
                i += 4;
                if (cp >= 0xD800 && cp < 0xDC00 && i + 6 <= n && s[i] == '\\' && s[i + 1] == 'u' &&
                    hex4(s, n, i + 2, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                } else if (cp >= 0xD800 && cp < 0xE000) {
                    cp = 0xFFFD;
                }
                put_utf8(out, cp);
                break;
            }
            default: return -1;
        }
    }
    return -1;
}

// Nesting deeper than this is rejected rather than risking the C stack.
enum { MAX_DEPTH = 256 };

static int skip_value(const uint8_t* s, size_t n, size_t* pos, int depth) {
    json_skip_ws(s, n, pos);
    if (*pos >= n || depth > MAX_DEPTH) { return -1; }
    uint8_t c = s[*pos];
    if (c == '"') {
        // Skip without decoding: only escapes matter for finding the end.
        for (size_t i = *pos + 1; i < n; i++) {
            if (s[i] == '\\') { i++; continue; }
            if (s[i] == '"') { *pos = i + 1; return 0; }
        }
        return -1;
    }
    if (c == '{' || c == '[') {
        uint8_t close = c == '{' ? '}' : ']';
        (*pos)++;
        json_skip_ws(s, n, pos);
        if (*pos < n && s[*pos] == close) { (*pos)++; return 0; }
        for (;;) {
            if (c == '{') {
                json_skip_ws(s, n, pos);
                if (skip_value(s, n, pos, depth + 1) != 0) { return -1; }  // the key
                json_skip_ws(s, n, pos);
                if (*pos >= n || s[*pos] != ':') { return -1; }
                (*pos)++;
            }
            if (skip_value(s, n, pos, depth + 1) != 0) { return -1; }
            json_skip_ws(s, n, pos);
            if (*pos >= n) { return -1; }
            if (s[*pos] == close) { (*pos)++; return 0; }
            if (s[*pos] != ',') { return -1; }
            (*pos)++;
        }
    }
    // Number, true, false or null: a run of characters up to a delimiter.
    size_t start = *pos;
    while (*pos < n && s[*pos] != ',' && s[*pos] != '}' && s[*pos] != ']' && s[*pos] != ' ' &&
           s[*pos] != '\t' && s[*pos] != '\n' && s[*pos] != '\r') { (*pos)++; }
    return *pos > start ? 0 : -1;
}

int json_skip_value(const uint8_t* s, size_t n, size_t* pos) { return skip_value(s, n, pos, 0); }

int json_object_string_field(const uint8_t* s, size_t n, const char* key, Buf* out) {
    size_t pos = 0, keylen = strlen(key);
    Buf name = {0};
    int found = -1;
    json_skip_ws(s, n, &pos);
    if (pos >= n || s[pos] != '{') { return -1; }
    pos++;
    json_skip_ws(s, n, &pos);
    if (pos < n && s[pos] == '}') { return 0; }
    for (;;) {
        json_skip_ws(s, n, &pos);
        name.n = 0;
        if (json_string(s, n, &pos, &name) != 0) { break; }
        json_skip_ws(s, n, &pos);
        if (pos >= n || s[pos] != ':') { break; }
        pos++;
        json_skip_ws(s, n, &pos);
        if (name.n == keylen && memcmp(name.p, key, keylen) == 0 && pos < n && s[pos] == '"') {
            found = json_string(s, n, &pos, out) == 0 ? 1 : -1;
            break;
        }
        if (json_skip_value(s, n, &pos) != 0) { break; }
        json_skip_ws(s, n, &pos);
        if (pos < n && s[pos] == '}') { found = 0; break; }
        if (pos >= n || s[pos] != ',') { break; }
        pos++;
    }
    buf_free(&name);
    return found;
}
