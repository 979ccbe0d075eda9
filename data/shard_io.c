#include "shard_io.h"

static void start_shard(ShardWriter* w) {
    snprintf(w->path, sizeof(w->path), "%s_%s_%06d.bin", w->prefix, w->index == 0 ? "val" : "train", w->index);
    snprintf(w->tmp, sizeof(w->tmp), "%s.tmp", w->path);
    w->f = fopen_or_die(w->tmp, "wb");
    int32_t header[SHARD_HEADER_INTS] = {0};  // rewritten with the count at the end
    fwrite_or_die(header, sizeof(header), 1, w->f, w->tmp);
    w->in_shard = 0;
    w->fill = 0;
}

static void flush(ShardWriter* w) {
    fwrite_or_die(w->buf, sizeof(uint16_t), w->fill, w->f, w->tmp);
    w->fill = 0;
}

static void finish_shard(ShardWriter* w) {
    flush(w);
    int32_t header[SHARD_HEADER_INTS] = {SHARD_MAGIC, SHARD_VERSION, (int32_t)w->in_shard};
    if (fseek(w->f, 0, SEEK_SET) != 0) { die("cannot seek in '%s': %s", w->tmp, strerror(errno)); }
    fwrite_or_die(header, sizeof(header), 1, w->f, w->tmp);
    fclose_or_die(w->f, w->tmp);
    w->f = NULL;
    if (rename(w->tmp, w->path) != 0) { die("cannot rename '%s' to '%s': %s", w->tmp, w->path, strerror(errno)); }
    w->index++;
}

void shard_writer_open(ShardWriter* w, const char* prefix, uint64_t val_tokens, uint64_t shard_tokens) {
    // The header stores the count as int32.
    if (val_tokens == 0 || shard_tokens == 0 || val_tokens > INT32_MAX || shard_tokens > INT32_MAX) {
        die("shard sizes must be between 1 and %d tokens (got val %llu, train %llu)", INT32_MAX,
            (unsigned long long)val_tokens, (unsigned long long)shard_tokens);
    }
    memset(w, 0, sizeof(*w));
    w->prefix = prefix;
    w->val_tokens = val_tokens;
    w->shard_tokens = shard_tokens;
}

void shard_writer_add(ShardWriter* w, const uint32_t* ids, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (w->f == NULL) { start_shard(w); }
        w->buf[w->fill++] = (uint16_t)ids[i];  // ids < 50257 fit
        if (w->fill == sizeof(w->buf) / sizeof(w->buf[0])) { flush(w); }
        w->in_shard++;
        w->total++;
        if (w->in_shard == (w->index == 0 ? w->val_tokens : w->shard_tokens)) { finish_shard(w); }
    }
}

int shard_writer_close(ShardWriter* w) {
    if (w->f) { finish_shard(w); }
    return w->index;
}

void shard_read(const char* path, IdVec* out) {
    FILE* f = fopen_or_die(path, "rb");
    int32_t header[SHARD_HEADER_INTS];
    fread_or_die(header, sizeof(int32_t), SHARD_HEADER_INTS, f, path);
    if (header[0] != SHARD_MAGIC) { die("'%s' is not a token shard: magic %d, expected %d", path, header[0], SHARD_MAGIC); }
    if (header[1] != SHARD_VERSION) { die("'%s' has shard version %d, expected %d", path, header[1], SHARD_VERSION); }
    if (header[2] < 0) { die("'%s' has a negative token count", path); }
    size_t n = (size_t)header[2];
    long want = (long)(sizeof(header) + n * sizeof(uint16_t));
    long have = file_size_or_die(path);
    if (have != want) { die("'%s' is %ld bytes but its header promises %zu tokens (%ld bytes)", path, have, n, want); }
    uint16_t* tmp = (uint16_t*)malloc_or_die(n * sizeof(uint16_t), "shard tokens");
    fread_or_die(tmp, sizeof(uint16_t), n, f, path);
    fclose(f);
    ids_reserve(out, n);
    for (size_t i = 0; i < n; i++) { out->p[out->n++] = tmp[i]; }
    free(tmp);
}
