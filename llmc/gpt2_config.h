// GPT-2 shapes and parameter layout: plain C, so host-only tools and tests (checkpoint
// validation, the CPU reference) share them with the CUDA model.
#ifndef LLMC_GPT2_CONFIG_H
#define LLMC_GPT2_CONFIG_H

#include <stddef.h>
#include <string.h>

typedef struct {
    int max_seq_len;        // maxT
    int vocab_size;         // V, 50257 for GPT-2
    int padded_vocab_size;  // Vp, V rounded up to a multiple of 128
    int num_layers;         // L
    int num_heads;          // NH
    int channels;           // C
} GPT2Config;

#define NUM_PARAM_TENSORS 16
enum { P_WTE, P_WPE, P_LN1W, P_LN1B, P_QKVW, P_QKVB, P_ATTPROJW, P_ATTPROJB,
       P_LN2W, P_LN2B, P_FCW, P_FCB, P_FCPROJW, P_FCPROJB, P_LNFW, P_LNFB };

static const char* const PARAM_NAMES[NUM_PARAM_TENSORS] = {
    "wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"};

// Element counts of the parameter tensors, in llm.c's checkpoint order.
static inline void gpt2_param_sizes(const GPT2Config* c, size_t sizes[NUM_PARAM_TENSORS]) {
    size_t C = c->channels, L = c->num_layers;
    sizes[P_WTE] = (size_t)c->padded_vocab_size * C;   // (Vp,C)
    sizes[P_WPE] = (size_t)c->max_seq_len * C;         // (maxT,C)
    sizes[P_LN1W] = L * C;                             // (L,C)
    sizes[P_LN1B] = L * C;                             // (L,C)
    sizes[P_QKVW] = L * 3 * C * C;                     // (L,3C,C)
    sizes[P_QKVB] = L * 3 * C;                         // (L,3C)
    sizes[P_ATTPROJW] = L * C * C;                     // (L,C,C)
    sizes[P_ATTPROJB] = L * C;                         // (L,C)
    sizes[P_LN2W] = L * C;                             // (L,C)
    sizes[P_LN2B] = L * C;                             // (L,C)
    sizes[P_FCW] = L * 4 * C * C;                      // (L,4C,C)
    sizes[P_FCB] = L * 4 * C;                          // (L,4C)
    sizes[P_FCPROJW] = L * C * 4 * C;                  // (L,C,4C)
    sizes[P_FCPROJB] = L * C;                          // (L,C)
    sizes[P_LNFW] = C;                                 // (C)
    sizes[P_LNFB] = C;                                 // (C)
}

// Weight decay applies to the matrices only (embeddings included), not to biases or LayerNorm.
static inline int gpt2_param_decays(int i) {
    return i == P_WTE || i == P_WPE || i == P_QKVW || i == P_ATTPROJW || i == P_FCW || i == P_FCPROJW;
}

// Model shapes by name: dN is the GPT-2 family member with N layers.
static inline int gpt2_config_from_name(GPT2Config* c, const char* name) {
    int L = 0, C = 0;
    if (strcmp(name, "d12") == 0) { L = 12; C = 768; }
    else if (strcmp(name, "d24") == 0) { L = 24; C = 1024; }
    else if (strcmp(name, "d36") == 0) { L = 36; C = 1280; }
    else if (strcmp(name, "d48") == 0) { L = 48; C = 1600; }
    else { return 0; }
    c->max_seq_len = 1024; c->vocab_size = 50257; c->padded_vocab_size = 50304;
    c->num_layers = L; c->channels = C; c->num_heads = C / 64;
    return 1;
}

#endif // LLMC_GPT2_CONFIG_H
