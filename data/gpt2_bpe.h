// GPT-2 byte-level BPE: the vocabulary (vocab.c) and the encoder (encoder.c).
//
// Encoding reproduces tiktoken's "gpt2" encoding: text is split into
// pre-tokens by GPT-2's regex, a pre-token that is itself a vocabulary entry
// becomes that id, any other is merged bytewise, always merging the adjacent
// pair whose concatenation has the lowest rank (= id), leftmost first.
//
// Input is bytes, not necessarily valid UTF-8. Invalid bytes never match the
// regex (PCRE2_MATCH_INVALID_UTF); each maximal run of them between two matches
// becomes a pre-token of its own, merged like any other. So every input
// round-trips exactly through decode, and valid text is unaffected.
//
// "<|endoftext|>" in the text is plain text (tiktoken's encode_ordinary) unless
// the caller passes allow_special, which maps each occurrence to GPT2_EOT.
#ifndef DATA_GPT2_BPE_H
#define DATA_GPT2_BPE_H

#include <stddef.h>
#include <stdint.h>
#include "buf.h"

#define GPT2_VOCAB_SIZE 50257
#define GPT2_EOT 50256
#define GPT2_MERGES 50000
#define GPT2_ENCODER_JSON_SHA256 "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
#define GPT2_VOCAB_BPE_SHA256 "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"

// Shared, read-only after gpt2_vocab_load: any number of encoders may use it.
typedef struct {
    uint8_t* bytes;                   // all token byte strings, back to back
    uint32_t off[GPT2_VOCAB_SIZE + 1];  // token i is bytes[off[i] .. off[i+1])
    uint32_t byte_id[256];            // id of each single-byte token
    uint32_t* tok_slots;              // open addressing: bytes -> id + 1 (0 = empty)
    uint32_t tok_mask;
    uint64_t* pair_keys;              // open addressing: (left << 32 | right) -> merged id
    uint32_t* pair_vals;
    uint32_t pair_mask;
    void* regex;                      // compiled pcre2_code (JIT when available)
} Gpt2Vocab;

// Reads DIR/encoder.json and DIR/vocab.bpe, checks their SHA-256 and their
// mutual consistency, and builds the maps. Dies with a message naming the
// file when one is missing, altered or malformed.
void gpt2_vocab_load(Gpt2Vocab* v, const char* dir);
void gpt2_vocab_free(Gpt2Vocab* v);

// Id of the token whose bytes are p[0..n), or -1 (the special token excluded).
int32_t gpt2_token_id(const Gpt2Vocab* v, const uint8_t* p, size_t n);

// Appends the bytes of ids to out. Returns 0, or -1 at the first id outside
// the vocabulary (out then holds the bytes before it).
int gpt2_decode(const Gpt2Vocab* v, const uint32_t* ids, size_t n, Buf* out);

// Writes the decoding file the trainers read (llmc/tokenizer.h): 256 uint32
// header {20240328, 2, vocab size, eot id, 0...}, then per token a uint8 length
// and its bytes.
void gpt2_write_decoder_file(const Gpt2Vocab* v, const char* path);

// Per-thread encoding state: regex match data, scratch space and a cache of
// recently merged pre-tokens. Not thread safe; create one per thread.
typedef struct Gpt2Encoder Gpt2Encoder;
Gpt2Encoder* gpt2_encoder_new(const Gpt2Vocab* v);
void gpt2_encoder_free(Gpt2Encoder* e);

// Appends the ids of text[0..n) to out.
void gpt2_encode(Gpt2Encoder* e, const uint8_t* text, size_t n, int allow_special, IdVec* out);

// Calls fn for each pre-token of text[0..n) in order (exposed for tests).
typedef void (*Gpt2PieceFn)(void* ctx, const uint8_t* piece, size_t n);
void gpt2_pretokenize(Gpt2Encoder* e, const uint8_t* text, size_t n, Gpt2PieceFn fn, void* ctx);

// Merges one pre-token's bytes (n >= 1) into ids appended to out, bypassing
// the cache and the whole-piece lookup. method: 0 picks by length,
// 1 forces the quadratic scan, 2 the heap; tests check both agree.
void gpt2_bpe_merge(Gpt2Encoder* e, const uint8_t* p, size_t n, int method, IdVec* out);

#endif // DATA_GPT2_BPE_H
