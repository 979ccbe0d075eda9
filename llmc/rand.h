// Small deterministic host PRNG (xoshiro256** seeded through splitmix64): parameter
// initialisation and sampling. Its whole state is four words, so it goes into
// checkpoints as is.
#ifndef LLMC_RAND_H
#define LLMC_RAND_H

#include <stdint.h>
#include <math.h>

typedef struct { uint64_t s[4]; } Rng;

static inline uint64_t splitmix64(uint64_t* x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline void rng_seed(Rng* r, uint64_t seed) {
    for (int i = 0; i < 4; i++) { r->s[i] = splitmix64(&seed); }
}

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_u64(Rng* r) {
    uint64_t* s = r->s;
    uint64_t out = rotl64(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl64(s[3], 45);
    return out;
}

// uniform in [0, 1) with 53 random bits
static inline double rng_uniform(Rng* r) { return (rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

// standard normal (Box-Muller; one draw per call keeps the stream simple to reason about)
static inline double rng_normal(Rng* r) {
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-300) { u1 = 1e-300; }
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif // LLMC_RAND_H
