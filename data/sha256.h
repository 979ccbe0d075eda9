// SHA-256 (FIPS 180-4), used to check that the vocabulary files are the
// exact ones GPT-2 shipped: a silently different vocabulary would produce
// shards that look fine but do not match any GPT-2 checkpoint or tokenizer.
#ifndef DATA_SHA256_H
#define DATA_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t total;     // bytes hashed so far
    uint8_t block[64];  // pending partial block
    size_t used;        // bytes in block
} Sha256;

void sha256_init(Sha256* s);
void sha256_update(Sha256* s, const void* data, size_t n);
void sha256_final(Sha256* s, uint8_t digest[32]);
// One-shot helper: writes 64 lowercase hex digits plus a NUL into hex.
void sha256_hex(const void* data, size_t n, char hex[65]);

#endif // DATA_SHA256_H
