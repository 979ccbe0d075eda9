// llm.c token shards: a header of 256 little-endian int32 {20240520, 1,
// number of tokens, 0...} followed by that many uint16 token ids.
#ifndef DATA_SHARD_IO_H
#define DATA_SHARD_IO_H

#include <stdint.h>
#include <stdio.h>
#include "buf.h"

#define SHARD_MAGIC 20240520
#define SHARD_VERSION 1
#define SHARD_HEADER_INTS 256

// Writes a token stream as PREFIX_val_000000.bin (the first val_tokens
// tokens), then PREFIX_train_000001.bin, ... of shard_tokens each; the last
// shard holds the remainder. Each shard is written under a .tmp name and
// renamed when complete, so a finished name always means a finished shard.
typedef struct {
    const char* prefix;
    uint64_t val_tokens, shard_tokens;
    int index;              // shard being written
    uint64_t in_shard;      // tokens in it so far
    uint64_t total;         // tokens in all shards
    FILE* f;
    char path[4096], tmp[4200];
    uint16_t buf[1 << 15];  // write buffer
    size_t fill;
} ShardWriter;

void shard_writer_open(ShardWriter* w, const char* prefix, uint64_t val_tokens, uint64_t shard_tokens);
void shard_writer_add(ShardWriter* w, const uint32_t* ids, size_t n);
// Finishes the last shard; returns the number of shards written.
int shard_writer_close(ShardWriter* w);

// Reads a whole shard, checking its header and size; dies naming the file.
void shard_read(const char* path, IdVec* out);

#endif // DATA_SHARD_IO_H
