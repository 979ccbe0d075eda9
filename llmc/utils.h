// Host-side helpers shared by every program of the project: checked file I/O,
// checked allocation, and fatal errors that name what went wrong.
#ifndef LLMC_UTILS_H
#define LLMC_UTILS_H

#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <stdint.h>
#include <errno.h>
#include <sys/stat.h>
#include <time.h>

// Print "error: <message>" to stderr and exit with `code`.
static inline void die_code(int code, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(code);
}
#define die(...) die_code(1, __VA_ARGS__)

static inline FILE* fopen_or_die(const char* path, const char* mode) {
    FILE* f = fopen(path, mode);
    if (f == NULL) { die("cannot open '%s' (mode %s): %s", path, mode, strerror(errno)); }
    return f;
}

// Reads exactly n items or dies naming the file: a short read means truncation.
static inline void fread_or_die(void* dst, size_t size, size_t n, FILE* f, const char* path) {
    size_t got = fread(dst, size, n, f);
    if (got != n) {
        die("'%s' is truncated or unreadable: wanted %zu items of %zu bytes, got %zu", path, n, size, got);
    }
}

static inline void fwrite_or_die(const void* src, size_t size, size_t n, FILE* f, const char* path) {
    if (fwrite(src, size, n, f) != n) { die("write to '%s' failed: %s", path, strerror(errno)); }
}

static inline void fclose_or_die(FILE* f, const char* path) {
    if (fclose(f) != 0) { die("closing '%s' failed: %s", path, strerror(errno)); }
}

static inline void* malloc_or_die(size_t bytes, const char* what) {
    void* p = malloc(bytes ? bytes : 1);
    if (p == NULL) { die("out of host memory allocating %zu bytes for %s", bytes, what); }
    return p;
}

static inline void* calloc_or_die(size_t n, size_t size, const char* what) {
    void* p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) { die("out of host memory allocating %zu x %zu bytes for %s", n, size, what); }
    return p;
}

static inline long file_size_or_die(const char* path) {
    struct stat st;
    if (stat(path, &st) != 0) { die("cannot stat '%s': %s", path, strerror(errno)); }
    return (long)st.st_size;
}

static inline int file_exists(const char* path) {
    struct stat st;
    return stat(path, &st) == 0;
}

// Creates a directory (and its parents) if missing.
static inline void mkdir_p_or_die(const char* path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(buf)) { die("bad directory path '%s'", path); }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) { die("cannot create directory '%s': %s", buf, strerror(errno)); }
            buf[i] = c;
        }
    }
}

// Seconds on a monotonic clock, for durations.
static inline double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#endif // LLMC_UTILS_H
