// A batch of documents held in memory: one text arena plus spans, and a
// parallel encoder that turns each document into ids in its own slot.
#ifndef DATA_DOCSET_H
#define DATA_DOCSET_H

#include "buf.h"
#include "gpt2_bpe.h"

typedef struct {
    Buf text;
    size_t *off, *len;
    size_t n, cap;
} DocSet;

void docset_add(DocSet* d, const uint8_t* p, size_t n);
void docset_clear(DocSet* d);
void docset_free(DocSet* d);

// Shuffles order[0..n) with Fisher-Yates driven by splitmix64(seed): the
// same seed gives the same order on every machine.
void shuffle_indices(size_t* order, size_t n, uint64_t seed);

// Encodes documents order[0..count) of d (all of d in order when order is
// NULL) on as many threads as there are encoders; out[i] receives the ids of
// the i-th one (cleared first). allow_special is passed to gpt2_encode.
void docset_encode(const DocSet* d, const size_t* order, size_t count, Gpt2Encoder** enc, int threads,
                   int allow_special, IdVec* out);

#endif // DATA_DOCSET_H
