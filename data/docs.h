// Reading documents out of input files for the shard writer. Inputs are read
// in order and streamed in growing chunks, so a multi-gigabyte JSON-lines
// file or text file never has to fit in memory at once (unless shuffled).
#ifndef DATA_DOCS_H
#define DATA_DOCS_H

#include <stdio.h>
#include "buf.h"

typedef enum {
    DOCS_WHOLE_FILE,  // each input file is one document
    DOCS_SEPARATOR,   // split on a separator string; parts are trimmed, empty ones dropped
    DOCS_CHUNK,       // cut into documents of at least `chunk` characters at blank lines
    DOCS_JSONL,       // one JSON object per line, the document is its `field` string
} DocMode;

typedef struct {
    DocMode mode;
    const char* sep;      // DOCS_SEPARATOR, already unescaped
    size_t sep_len;
    size_t chunk;         // DOCS_CHUNK, in code points
    const char* field;    // DOCS_JSONL
    int keep_invalid;     // 0: invalid UTF-8 becomes U+FFFD when read; 1: bytes kept as they are
} DocOptions;

typedef struct {
    DocOptions opt;
    const char* const* paths;  // "-" reads standard input
    int n_paths, next_path;
    FILE* f;
    const char* path;
    int eof;
    size_t line;          // JSON-lines: line number of the next line, for messages
    Buf raw;              // bytes read but not yet checked as UTF-8 (an incomplete sequence)
    Buf win;              // checked text not yet handed out: win.p[start .. win.n)
    size_t start;
    uint64_t bytes_in;    // bytes read from all inputs so far
} DocReader;

void doc_reader_open(DocReader* r, const DocOptions* opt, const char* const* paths, int n_paths);
// Replaces doc's contents with the next non-empty document; returns 0 after
// the last one. Dies naming the file (and line) on unreadable or bad input.
int doc_reader_next(DocReader* r, Buf* doc);
void doc_reader_close(DocReader* r);

// Appends src[0..n) to out with each invalid UTF-8 sequence replaced by
// U+FFFD, one per maximal invalid subpart (as Python's errors="replace").
// When `final` is 0, a trailing incomplete but so far valid sequence is left
// out; the return value is the number of input bytes consumed.
size_t utf8_sanitize(const uint8_t* src, size_t n, int final, Buf* out);

// Turns the C escapes \n \t \r \\ and \xHH of a command-line argument into
// bytes, in place; returns the new length.
size_t unescape_arg(char* s);

#endif // DATA_DOCS_H
