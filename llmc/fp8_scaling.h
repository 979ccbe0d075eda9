// Per-tensor FP8 scaling state: delayed scaling (the scale of step s comes from an amax
// history of the steps before s) and current scaling (the scale comes from the tensor's own
// amax, measured just before the cast). Plain C: the per-tensor rules below run on the device
// (llmc/linear_fp8.cuh launches them) and in the CPU test on host copies, with the same code.
//
// The numbers live in one float block per model, for NT quantized tensors and a history of H:
//   amax_step  (NT)    max |x| of each tensor over every cast of the current step
//   scale      (NT)    multiplier applied before the cast
//   scale_inv  (NT,4)  1/scale, the dequantization factor the GEMM takes, one per 16 bytes from a
//                      16-byte aligned offset: cuBLASLt refuses (status 15) a misaligned scale pointer
//   history    (H,NT)  ring of per-step amaxes, one row per step
//   amax_cur   (NT)    current scaling's scratch: one cast's own amax, 0 between casts
// Everything before amax_cur is the checkpointed part. amax_step is contiguous on purpose:
// a data-parallel run all-reduces (max) every amax of a step in one call, before the fold
// turns them into scales, so all ranks then use the same scales.
#ifndef LLMC_FP8_SCALING_H
#define LLMC_FP8_SCALING_H

#include "fp8.h"
#include "utils.h"

typedef enum { FP8_SCALING_DELAYED = 0, FP8_SCALING_CURRENT = 1 } Fp8Recipe;
typedef enum { FP8_AMAX_MAX = 0, FP8_AMAX_MOST_RECENT = 1 } Fp8AmaxAlgo;

static inline FP8_HD float* fp8_amax_step(float* blk) { return blk; }
static inline FP8_HD float* fp8_scale(float* blk, int NT) { return blk + NT; }
#define FP8_SCALE_INV_STRIDE 4
static inline FP8_HD size_t fp8_scale_inv_offset(int NT) { return ((size_t)2 * NT + 3) & ~(size_t)3; }
static inline FP8_HD float* fp8_scale_inv_at(float* blk, int NT, int t) {
    return blk + fp8_scale_inv_offset(NT) + (size_t)FP8_SCALE_INV_STRIDE * t;
}
static inline FP8_HD float* fp8_history(float* blk, int NT) {
    return blk + fp8_scale_inv_offset(NT) + (size_t)FP8_SCALE_INV_STRIDE * NT;
}
static inline FP8_HD float* fp8_amax_cur(float* blk, int NT, int H) { return fp8_history(blk, NT) + (size_t)H * NT; }
static inline size_t fp8_saved_floats(int NT, int H) {
    return fp8_scale_inv_offset(NT) + (size_t)FP8_SCALE_INV_STRIDE * NT + (size_t)H * NT;
}
static inline size_t fp8_block_floats(int NT, int H) { return fp8_saved_floats(NT, H) + NT; }

// Initial numbers: scales 1, every amax and the history 0.
static inline void fp8_block_init(float* blk, int NT, int H) {
    memset(blk, 0, fp8_block_floats(NT, H) * sizeof(float));
    for (int t = 0; t < NT; t++) { fp8_scale(blk, NT)[t] = 1.0f; *fp8_scale_inv_at(blk, NT, t) = 1.0f; }
}

// amax over tensor t's `filled` newest history entries, the newest at row `newest`.
static inline FP8_HD float fp8_history_amax(const float* hist, int NT, int H, int t, int newest, int filled,
                                            Fp8AmaxAlgo algo) {
    if (algo == FP8_AMAX_MOST_RECENT) { return hist[(size_t)newest * NT + t]; }
    float a = 0.0f;
    for (int k = 0; k < filled; k++) { a = fp8_amax_max(a, hist[(size_t)((newest - k + H) % H) * NT + t]); }
    return a;
}

// End of a step for tensor t: the step's amax enters the ring at row `pos`, and the next
// step's scale comes from the `filled` newest entries, this one included (amax 0 or not
// finite keeps the scale). amax_step restarts at 0.
static inline FP8_HD void fp8_fold_tensor(float* blk, int NT, int H, int t, int pos, int filled, Fp8AmaxAlgo algo,
                                          float fmt_max, int margin) {
    float* hist = fp8_history(blk, NT);
    hist[(size_t)pos * NT + t] = fp8_amax_step(blk)[t];
    fp8_amax_step(blk)[t] = 0.0f;
    float a = fp8_history_amax(hist, NT, H, t, pos, filled, algo);
    float s = fp8_scale_from_amax(a, fp8_scale(blk, NT)[t], fmt_max, margin);
    fp8_scale(blk, NT)[t] = s;
    *fp8_scale_inv_at(blk, NT, t) = fp8_scale_inv(s);
}

// Current scaling for tensor t: its scale from the amax just measured into amax_cur, which
// also joins the step's amax; amax_cur is cleared for the next cast.
static inline FP8_HD void fp8_current_scale_tensor(float* blk, int NT, int H, int t, float fmt_max, int margin) {
    float* cur = fp8_amax_cur(blk, NT, H);
    float a = cur[t];
    cur[t] = 0.0f;
    fp8_amax_step(blk)[t] = fp8_amax_max(fp8_amax_step(blk)[t], a);
    float s = fp8_scale_from_amax(a, fp8_scale(blk, NT)[t], fmt_max, margin);
    fp8_scale(blk, NT)[t] = s;
    *fp8_scale_inv_at(blk, NT, t) = fp8_scale_inv(s);
}

// Host bookkeeping, identical on every rank (it depends only on which casts were launched).
typedef struct {
    Fp8Recipe recipe;
    Fp8AmaxAlgo algo;
    int history_len;     // H
    int margin;
    int num_tensors;     // NT
    int pos;             // history row the next fold writes
    int filled;          // history rows written so far, at most H
    int step;            // folds so far: steps begun, when every step begins with one
    int32_t* folded;     // (NT) folds that carried a cast of the tensor: 0 = empty history
    int32_t* pending;    // (NT) 1: the tensor was cast since the last fold
} Fp8Scaling;

static inline void fp8_scaling_init(Fp8Scaling* sc, int NT, Fp8Recipe recipe, Fp8AmaxAlgo algo, int H, int margin) {
    memset(sc, 0, sizeof(*sc));
    sc->recipe = recipe; sc->algo = algo; sc->history_len = H; sc->margin = margin; sc->num_tensors = NT;
    sc->folded = (int32_t*)calloc_or_die(NT, sizeof(int32_t), "fp8 scaling state");
    sc->pending = (int32_t*)calloc_or_die(NT, sizeof(int32_t), "fp8 scaling state");
}

static inline void fp8_scaling_free(Fp8Scaling* sc) { free(sc->folded); free(sc->pending); }

// A cast of tensor t measures its own amax first (current scaling) under the current recipe,
// and under delayed scaling while its history is empty: the first step neither overflows
// nor flushes to zero for want of a history.
static inline int fp8_needs_own_amax(const Fp8Scaling* sc, int t) {
    return sc->recipe == FP8_SCALING_CURRENT || sc->folded[t] == 0;
}

static inline void fp8_note_cast(Fp8Scaling* sc, int t) { sc->pending[t] = 1; }

// Ring row and fill count the device fold of this step uses (fp8_fold_tensor's pos, filled).
static inline int fp8_fold_pos(const Fp8Scaling* sc) { return sc->pos; }
static inline int fp8_fold_filled(const Fp8Scaling* sc) {
    return sc->filled < sc->history_len ? sc->filled + 1 : sc->history_len;
}

// Host half of a fold, after the device half has run with fp8_fold_pos/fp8_fold_filled.
static inline void fp8_scaling_end_fold(Fp8Scaling* sc) {
    for (int t = 0; t < sc->num_tensors; t++) { sc->folded[t] += sc->pending[t]; sc->pending[t] = 0; }
    sc->filled = fp8_fold_filled(sc);
    sc->pos = (sc->pos + 1) % sc->history_len;
    sc->step++;
}

// Checkpoint: this header, folded and pending (NT int32 each), then the device block's
// first fp8_saved_floats floats.
#define FP8_STATE_MAGIC 0x38504652u   // "RFP8"
#define FP8_STATE_VERSION 1
typedef struct {
    uint32_t magic, version;
    int32_t num_tensors, history_len, pos, filled, step, reserved;
} Fp8StateHeader;

static inline size_t fp8_state_bytes(const Fp8Scaling* sc) {
    return sizeof(Fp8StateHeader) + 2 * (size_t)sc->num_tensors * sizeof(int32_t) +
           fp8_saved_floats(sc->num_tensors, sc->history_len) * sizeof(float);
}

// Writes the host part; returns where the device floats go.
static inline void* fp8_state_save_host(const Fp8Scaling* sc, void* dst) {
    Fp8StateHeader h;
    memset(&h, 0, sizeof(h));
    h.magic = FP8_STATE_MAGIC; h.version = FP8_STATE_VERSION;
    h.num_tensors = sc->num_tensors; h.history_len = sc->history_len;
    h.pos = sc->pos; h.filled = sc->filled; h.step = sc->step;
    char* p = (char*)dst;
    memcpy(p, &h, sizeof(h)); p += sizeof(h);
    memcpy(p, sc->folded, sc->num_tensors * sizeof(int32_t)); p += sc->num_tensors * sizeof(int32_t);
    memcpy(p, sc->pending, sc->num_tensors * sizeof(int32_t)); p += sc->num_tensors * sizeof(int32_t);
    return p;
}

// Reads the host part (dies on a state of another shape); returns where the device floats are.
static inline const void* fp8_state_load_host(Fp8Scaling* sc, const void* src) {
    Fp8StateHeader h;
    const char* p = (const char*)src;
    memcpy(&h, p, sizeof(h)); p += sizeof(h);
    if (h.magic != FP8_STATE_MAGIC || h.version != FP8_STATE_VERSION) { die("resume: the FP8 scaling state is missing or of another version"); }
    if (h.num_tensors != sc->num_tensors || h.history_len != sc->history_len) {
        die("resume: the FP8 state has %d tensors and an amax history of %d; this run has %d and --amax-history %d",
            h.num_tensors, h.history_len, sc->num_tensors, sc->history_len);
    }
    if (h.pos < 0 || h.pos >= h.history_len || h.filled < 0 || h.filled > h.history_len || h.step < 0) {
        die("resume: the FP8 scaling state is corrupt (pos %d, filled %d, step %d)", h.pos, h.filled, h.step);
    }
    sc->pos = h.pos; sc->filled = h.filled; sc->step = h.step;
    memcpy(sc->folded, p, sc->num_tensors * sizeof(int32_t)); p += sc->num_tensors * sizeof(int32_t);
    memcpy(sc->pending, p, sc->num_tensors * sizeof(int32_t)); p += sc->num_tensors * sizeof(int32_t);
    return p;
}

#endif // LLMC_FP8_SCALING_H
