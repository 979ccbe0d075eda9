// The GPT-2 model, written once for every trainer: parameters, activations, forward,
// backward and the AdamW update. Every weight GEMM goes through the linear layer that
// the trainer included first (llmc/linear_bf16.cuh for BF16), attention through
// llmc/attention.cuh.
#ifndef LLMC_GPT2_CUH
#define LLMC_GPT2_CUH

#ifndef LLMC_LINEAR_DEFINED
#error "include a linear-layer header (e.g. llmc/linear_bf16.cuh) before llmc/gpt2.cuh"
#endif

#include <math.h>
#include "cuda_common.h"
#include "encoder.cuh"
#include "layernorm.cuh"
#include "gelu.cuh"
#include "attention.cuh"
#include "qk_norm.cuh"
#include "act_stats.cuh"
#include "classifier.cuh"
#include "adamw.cuh"
#include "reduce.cuh"
#include "gpt2_config.h"
#include "multi_gpu.h"
#include "zero_shard.h"

// Activations of one micro-batch; per-layer tensors are L slices with a stride of the allocated size.
typedef struct {
    floatX* encoded;    // (B,T,C)
    floatX* ln1;        // (slots,B,T,C) per layer, gpt2_layer_acts maps layers to slots (see ln1_slot)
    float* ln1_mean;    // (L,B,T)
    float* ln1_rstd;    // (L,B,T)
    floatX* qkv;        // (L,B,T,3C)
    floatX* atty;       // (L,B,T,C)
    char* att;          // (L, attention_saved_bytes) state attention keeps for backward (log-sum-exp)
    float* qk_rstd;     // (L,B,T,2,NH) 1/rms of each head's q and k, with qk_norm (else NULL)
    floatX* residual2;  // (L,B,T,C) residual stream after attention
    floatX* ln2;        // (slots,B,T,C) as ln1
    float* ln2_mean;    // (L,B,T)
    float* ln2_rstd;    // (L,B,T)
    floatX* fch;        // (L,B,T,4C) pre-GELU
    floatX* fch_gelu;   // (slots,B,T,4C) as ln1; with recompute=1, one slice recomputed in backward
                        // (the FC GEMM writes both through its GELU epilogue)
    floatX* residual3;  // (L,B,T,C) residual stream after the MLP
    floatX* lnf;        // (B,T,C)
    float* lnf_mean;    // (B,T)
    float* lnf_rstd;    // (B,T)
    floatX* logits;     // (B,T,Vp), replaced by their gradient in training (unless dlogits_deferred)
    float* losses;      // (B,T)
    float* lse;         // (B,T) log of each position's softmax normaliser, when dlogits_deferred
    // scratch, reused across layers
    floatX* proj_out;   // (B,T,C) output of a projection before its residual add
    floatX* dresidual;  // (B,T,C) gradient of the residual stream
    floatX* dbuf;       // (B,T,4C) dfch, then dqkv
    floatX* dln;        // (B,T,C)
    floatX* datty;      // (B,T,C)
    float* attn_scratch;   // attention_scratch_bytes
    float* reduce_scratch; // colsum partials, >= colsum_num_chunks(BT) * 4C floats and NORM_BLOCKS
} Activations;

// A run of flat parameters [off, off + n) inside one rank's shard and one tensor (one layer of
// a linear weight), as it travels in the ZeRO-1 weight gather: at byte pos of that rank's
// chunk, as E4M3 codes of linear (kind, layer)'s weight from its element woff, or (kind < 0)
// as BF16.
typedef struct {
    size_t off, n, pos, woff;
    int rank, kind, layer;
} GatherSeg;

typedef struct {
    GPT2Config cfg;
    size_t param_sizes[NUM_PARAM_TENSORS];
    size_t param_offsets[NUM_PARAM_TENSORS];
    size_t num_params;
    // Data parallelism: with ZeRO-1 each rank keeps the optimizer state (master weights and
    // moments) of one shard [shard_offset, shard_offset + shard_count) of the flat parameter
    // vector; without it, the whole vector. The BF16 buffers are padded to nranks * shard_len
    // so reduce-scatter and all-gather work in place.
    const MultiGpu* mg;
    int zero_stage;
    size_t shard_offset, shard_count, shard_len, padded_params;
    floatX* params;     // (padded_params) BF16 working weights
    floatX* grads;      // (padded_params) BF16 gradients, accumulated over micro-batches
    float* master;      // (shard_count) FP32 master weights of this rank's shard
    float* adam_m;      // (shard_count)
    float* adam_v;      // (shard_count)
    floatX* p[NUM_PARAM_TENSORS];   // tensor views into params
    floatX* g[NUM_PARAM_TENSORS];   // tensor views into grads
    // -z 1 with FP8 weights that travel as FP8 codes (gpt2_gather_weights). After an update only
    // this rank's shard of params is new: weights_pending until the next step's gather, and the
    // BF16 values outside the shard stay old (bf16_partial) until a BF16 all-gather (gpt2_params_sync).
    int fp8_gather;
    int weights_pending, bf16_partial;
    GatherSeg* gather_segs;         // (num_gather_segs) what travels, in rank chunks
    int num_gather_segs;
    size_t gather_chunk;            // bytes of a rank's chunk
    LinearWeightPart* gather_parts; // (num_gather_parts) this rank's FP8 parts
    int num_gather_parts;

    int B, T;           // activation capacity
    int recompute;      // 1: recompute GELU output in backward instead of storing it per layer
    // The BF16 inputs of the QKV, FC and FC-projection linears (ln1, ln2, fch_gelu) are kept for
    // backward only where the linear layer does not keep its own (FP8) copy: such layers have a
    // slot each, the others share one transient slot (slot_* (L) map layer -> slot).
    int *slot_ln1, *slot_ln2, *slot_gelu;
    int inputs_dropped; // 1: some layer's BF16 input is not kept (backward then needs N % 16 == 0)
    size_t act_stride;  // elements per (B,T,C) slice at capacity
    Activations a;
    int* inputs_dev;    // (B,T)
    int* targets_dev;   // (B,T)
    float* losses_host; // (B,T) pinned, so the copy after a forward does not wait
    int loss_n;         // positions of the last forward's loss, in losses_host once loss_ready
    cudaEvent_t loss_ready;
    TokenGroups groups_host, groups_dev;  // positions grouped by token, for the wte gradient
    int* group_count;   // (V) scratch of the grouping
    float* norm_dev;    // (1) squared gradient norm
    int qk_norm;        // 1: RMSNorm (unit gains, frozen) on each head's q and k before attention
    float att_scale;    // softmax scale: 1/sqrt(head size), or the fixed scale chosen with qk_norm
    int dlogits_deferred; // 1: the last forward left the logits, whose gradient the LM head's backward makes
    float dloss;        // the last forward's gradient of the total loss per position's loss
    int act_stats;      // 1: the next forward measures each block's residual kurtosis into kurt_dev
    float* kurt_dev;    // (L) residual-stream kurtosis after each block (llmc/act_stats.cuh)
    LinearContext lin;
    Profiler prof;      // --profile: GPU time per section of the step (llmc/profile.h)
    cudaStream_t stream;
    // -z 0 on several ranks: each layer's gradients are averaged on comm_stream while the
    // backward pass goes on with the layer below (layer_done[l] orders the two streams)
    cudaStream_t comm_stream;
    cudaEvent_t* layer_done;   // (L + 1): per layer, and the embeddings at the end
    cudaEvent_t comm_done;
} GPT2;

#define ZERO_ALIGN 16   // shard boundaries on 16 elements: 32-byte aligned BF16 slices

static inline void gpt2_plan_gather(GPT2* m);   // with the weight gather, at the end of this file

// Allocates parameters, gradients and optimizer state (no initialisation). zero_stage 1
// shards the optimizer state across mg's ranks.
static inline void gpt2_build(GPT2* m, const GPT2Config* cfg, const LinearOptions* lopt, const MultiGpu* mg, int zero_stage) {
    attention_check_shape(cfg->channels, cfg->num_heads, cfg->max_seq_len);   // the kernel's limit, before any allocation
    memset(m, 0, sizeof(*m));
    m->cfg = *cfg;
    m->mg = mg;
    m->zero_stage = mg->nranks > 1 ? zero_stage : 0;
    gpt2_param_sizes(cfg, m->param_sizes);
    size_t off = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) { m->param_offsets[i] = off; off += m->param_sizes[i]; }
    m->num_params = off;
    if (m->zero_stage == 1) {
        m->shard_len = zero_shard_len(off, mg->nranks, ZERO_ALIGN);
        zero_shard_range(off, mg->nranks, mg->rank, ZERO_ALIGN, &m->shard_offset, &m->shard_count);
        m->padded_params = m->shard_len * mg->nranks;
    } else {
        m->shard_len = m->shard_count = m->padded_params = off;
        m->shard_offset = 0;
    }
    size_t np = m->padded_params, ns = m->shard_count;
    m->params = (floatX*)cuda_malloc_or_die(np * sizeof(floatX), "parameters (bf16)");
    m->grads = (floatX*)cuda_malloc_or_die(np * sizeof(floatX), "gradients (bf16)");
    m->master = (float*)cuda_malloc_or_die(ns * sizeof(float), "master weights (fp32)");
    m->adam_m = (float*)cuda_malloc_or_die(ns * sizeof(float), "AdamW first moments");
    m->adam_v = (float*)cuda_malloc_or_die(ns * sizeof(float), "AdamW second moments");
    cudaCheck(cudaMemset(m->adam_m, 0, ns * sizeof(float)));
    cudaCheck(cudaMemset(m->adam_v, 0, ns * sizeof(float)));
    cudaCheck(cudaMemset(m->grads, 0, np * sizeof(floatX)));
    cudaCheck(cudaMemset(m->params, 0, np * sizeof(floatX)));
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        m->p[i] = m->params + m->param_offsets[i];
        m->g[i] = m->grads + m->param_offsets[i];
    }
    m->norm_dev = (float*)cuda_malloc_or_die(sizeof(float), "gradient norm");
    m->att_scale = 1.0f / sqrtf((float)ATT_HS);
    m->kurt_dev = (float*)cuda_malloc_or_die(cfg->num_layers * sizeof(float), "residual kurtosis");
    cudaCheck(cudaStreamCreate(&m->stream));
    cudaCheck(cudaStreamCreateWithFlags(&m->comm_stream, cudaStreamNonBlocking));
    m->layer_done = (cudaEvent_t*)malloc_or_die((cfg->num_layers + 1) * sizeof(cudaEvent_t), "events");
    for (int l = 0; l <= cfg->num_layers; l++) { cudaCheck(cudaEventCreateWithFlags(&m->layer_done[l], cudaEventDisableTiming)); }
    cudaCheck(cudaEventCreateWithFlags(&m->comm_done, cudaEventDisableTiming));
    cudaCheck(cudaEventCreateWithFlags(&m->loss_ready, cudaEventDisableTiming));
    linear_context_init(&m->lin, lopt, cfg->num_layers);
    m->lin.prof = &m->prof;
    gpt2_plan_gather(m);
}

// master (n) ~ N(0, std) from a counter-based hash of (seed, offset + i), or = value when std == 0
__global__ void init_params_kernel(float* master, long n, long offset, float std, float value, uint32_t seed) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) { return; }
    if (std == 0.0f) { master[i] = value; return; }
    uint32_t idx = (uint32_t)(offset + i);
    float u1 = (hash_u32(idx, seed) + 1.0f) * (1.0f / 4294967296.0f);          // (0,1]
    float u2 = hash_u32(idx, seed ^ 0x5bd1e995u) * (1.0f / 4294967296.0f);      // [0,1)
    master[i] = std * sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
}

// params (n) = round-to-nearest BF16 of master (n)
__global__ void master_to_params_kernel(floatX* params, const float* master, long n) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { params[i] = __float2bfloat16_rn(master[i]); }
}

// Sets every weight from full (num_params) FP32 values on the device: the BF16 working copy,
// and this rank's shard of the master weights.
static inline void gpt2_set_weights(GPT2* m, const float* full) {
    master_to_params_kernel<<<ceil_div(m->num_params, 512), 512, 0, m->stream>>>(m->params, full, m->num_params);
    cudaCheckLaunch();
    if (full != m->master) {
        cudaCheck(cudaMemcpyAsync(m->master, full + m->shard_offset, m->shard_count * sizeof(float),
                                  cudaMemcpyDeviceToDevice, m->stream));
    }
    cudaCheck(cudaStreamSynchronize(m->stream));
    linear_weights_changed(&m->lin);
}

// A full-size FP32 scratch for gpt2_set_weights: the master buffer itself when not sharded.
static inline float* gpt2_full_weights_buffer(GPT2* m) {
    if (m->shard_count == m->num_params) { return m->master; }
    return (float*)cuda_malloc_or_die(m->num_params * sizeof(float), "fp32 weights during initialisation");
}

static inline void gpt2_free_full_weights_buffer(GPT2* m, float* full) {
    if (full != m->master) { cudaCheck(cudaFree(full)); }
}

// GPT-2 initialisation: N(0, 0.02) matrices, residual projections scaled by 1/sqrt(2L),
// zero biases, unit LayerNorm gains, padded vocabulary rows zero.
static inline void gpt2_init_random(GPT2* m, uint64_t seed) {
    const GPT2Config* c = &m->cfg;
    float* full = gpt2_full_weights_buffer(m);
    float resid_std = 0.02f / sqrtf(2.0f * c->num_layers);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        float std = 0.0f, value = 0.0f;
        if (gpt2_param_decays(i)) { std = (i == P_ATTPROJW || i == P_FCPROJW) ? resid_std : 0.02f; }
        if (i == P_LN1W || i == P_LN2W || i == P_LNFW) { value = 1.0f; }
        long n = (long)m->param_sizes[i];
        if (i == P_WTE) { n = (long)c->vocab_size * c->channels; }
        float* dst = full + m->param_offsets[i];
        if (n < (long)m->param_sizes[i]) {
            cudaCheck(cudaMemset(dst + n, 0, (m->param_sizes[i] - n) * sizeof(float)));
        }
        uint32_t s = hash_u32((uint32_t)i, (uint32_t)seed ^ (uint32_t)(seed >> 32));
        init_params_kernel<<<ceil_div(n, 512), 512, 0, m->stream>>>(dst, n, 0, std, value, s);
        cudaCheckLaunch();
    }
    gpt2_set_weights(m, full);
    gpt2_free_full_weights_buffer(m, full);
}

static inline size_t gpt2_reduce_scratch_floats(int BT, int C) {
    size_t n = (size_t)colsum_num_chunks(BT) * 4 * C, k = residual_kurtosis_scratch_floats(BT, C);
    n = n > k ? n : k;
    return n > NORM_BLOCKS ? n : NORM_BLOCKS;
}

// Bytes of activation memory for a micro-batch (B,T): used to fail early with a clear message.
// n_ln1, n_ln2, n_gelu: slots of ln1, ln2 and fch_gelu (see GPT2's slot_*)
static inline size_t gpt2_activation_bytes(const GPT2Config* c, int B, int T, int n_ln1, int n_ln2, int n_gelu, int qk_norm) {
    size_t L = c->num_layers, C = c->channels, BT = (size_t)B * T, BTC = BT * C;
    size_t x = 0;
    x += BTC * (1 + L * (3 + 1 + 1 + 4 + 1) + n_ln1 + n_ln2 + 1);         // encoded, per layer, ln1, ln2, lnf
    x += (size_t)n_gelu * 4 * BTC;                                        // fch_gelu
    x += BT * (size_t)c->padded_vocab_size;                               // logits
    x += BTC * (1 + 1 + 4 + 1 + 1);                                       // proj_out, dresidual, dbuf, dln, datty
    x *= sizeof(floatX);
    x += L * attention_saved_bytes(B, T, c->num_heads) + attention_scratch_bytes(B, T, c->num_heads);
    x += sizeof(float) * (BT * (4 * L + 2 + 1 + 1) + gpt2_reduce_scratch_floats((int)BT, (int)C));
    if (qk_norm) { x += L * qk_norm_saved_floats(B, T, c->num_heads) * sizeof(float); }
    return x + 32 * 256;                                                  // alignment of the pieces
}

// Maps each layer to a slot of one of the per-layer inputs of a linear: its own slot when the
// model must keep the BF16 input for backward, else the one transient slot after them (also
// every layer's with `shared`). Returns the number of slots; sets inputs_dropped where the
// linear's backward does without it (it kept a quantized copy, or re-makes it).
static inline int gpt2_plan_slots(GPT2* m, int* slot, LinearKind kind, int IC, int OC, int shared) {
    int L = m->cfg.num_layers, N = m->B * m->T, n = 0, transient = 0;
    for (int l = 0; l < L; l++) {
        int reads = linear_backward_reads_input(&m->lin, kind, l, N, IC, OC);
        int keep = !shared && reads;
        slot[l] = keep ? n++ : -1;
        transient |= !keep;
        m->inputs_dropped |= !reads;
    }
    for (int l = 0; l < L; l++) { if (slot[l] < 0) { slot[l] = n; } }
    return n + transient;
}

static inline void gpt2_alloc_activations(GPT2* m, int B, int T, int recompute) {
    const GPT2Config* c = &m->cfg;
    m->B = B; m->T = T; m->recompute = recompute;
    size_t L = c->num_layers, C = c->channels, BT = (size_t)B * T, BTC = BT * C;
    m->inputs_dropped = 0;
    m->slot_ln1 = (int*)malloc_or_die(3 * L * sizeof(int), "activation slots");
    m->slot_ln2 = m->slot_ln1 + L;
    m->slot_gelu = m->slot_ln2 + L;
    int n_ln1 = gpt2_plan_slots(m, m->slot_ln1, LINEAR_QKV, (int)C, 3 * (int)C, 0);
    int n_ln2 = gpt2_plan_slots(m, m->slot_ln2, LINEAR_FC, (int)C, 4 * (int)C, 0);
    int n_gelu = gpt2_plan_slots(m, m->slot_gelu, LINEAR_FCPROJ, 4 * (int)C, (int)C, recompute);
    size_t bytes = gpt2_activation_bytes(c, B, T, n_ln1, n_ln2, n_gelu, m->qk_norm);
    char what[128];
    snprintf(what, sizeof(what), "activations for B=%d T=%d", B, T);
    char* base = (char*)cuda_malloc_or_die(bytes, what);
    size_t off = 0;
    // carve 256-byte aligned pieces out of one allocation
#define CARVE(ptr, type, count) do { ptr = (type*)(base + off); off += ((count) * sizeof(type) + 255) & ~(size_t)255; } while (0)
    Activations* a = &m->a;
    CARVE(a->encoded, floatX, BTC);
    CARVE(a->ln1, floatX, n_ln1 * BTC);
    CARVE(a->ln1_mean, float, L * BT);
    CARVE(a->ln1_rstd, float, L * BT);
    CARVE(a->qkv, floatX, L * 3 * BTC);
    CARVE(a->atty, floatX, L * BTC);
    CARVE(a->att, char, L * attention_saved_bytes(B, T, c->num_heads));
    CARVE(a->qk_rstd, float, m->qk_norm ? L * qk_norm_saved_floats(B, T, c->num_heads) : 0);
    CARVE(a->residual2, floatX, L * BTC);
    CARVE(a->ln2, floatX, n_ln2 * BTC);
    CARVE(a->ln2_mean, float, L * BT);
    CARVE(a->ln2_rstd, float, L * BT);
    CARVE(a->fch, floatX, L * 4 * BTC);
    CARVE(a->fch_gelu, floatX, n_gelu * 4 * BTC);
    CARVE(a->residual3, floatX, L * BTC);
    CARVE(a->lnf, floatX, BTC);
    CARVE(a->lnf_mean, float, BT);
    CARVE(a->lnf_rstd, float, BT);
    CARVE(a->logits, floatX, BT * c->padded_vocab_size);
    CARVE(a->losses, float, BT);
    CARVE(a->lse, float, BT);
    CARVE(a->proj_out, floatX, BTC);
    CARVE(a->dresidual, floatX, BTC);
    CARVE(a->dbuf, floatX, 4 * BTC);
    CARVE(a->dln, floatX, BTC);
    CARVE(a->datty, floatX, BTC);
    CARVE(a->attn_scratch, float, attention_scratch_bytes(B, T, c->num_heads) / sizeof(float));
    CARVE(a->reduce_scratch, float, gpt2_reduce_scratch_floats((int)BT, (int)C));
#undef CARVE
    if (off > bytes) { die("internal: activation layout (%zu bytes) exceeds its allocation (%zu)", off, bytes); }
    m->act_stride = BTC;
    m->inputs_dev = (int*)cuda_malloc_or_die(BT * sizeof(int), "input tokens");
    m->targets_dev = (int*)cuda_malloc_or_die(BT * sizeof(int), "target tokens");
    cudaCheck(cudaMallocHost((void**)&m->losses_host, BT * sizeof(float)));
    m->group_count = (int*)malloc_or_die(c->vocab_size * sizeof(int), "token group counts");
    m->groups_host.group_token = (int*)malloc_or_die(BT * sizeof(int), "token groups");
    m->groups_host.group_start = (int*)malloc_or_die((BT + 1) * sizeof(int), "token groups");
    m->groups_host.position = (int*)malloc_or_die(BT * sizeof(int), "token groups");
    m->groups_dev.group_token = (int*)cuda_malloc_or_die(BT * sizeof(int), "token groups");
    m->groups_dev.group_start = (int*)cuda_malloc_or_die((BT + 1) * sizeof(int), "token groups");
    m->groups_dev.position = (int*)cuda_malloc_or_die(BT * sizeof(int), "token groups");
    linear_reserve(&m->lin, (int)BT, (int)C, c->padded_vocab_size);
    linear_reserve_attention(&m->lin, B, T, c->num_heads);
}

// Layer l's views of the per-layer activations.
typedef struct {
    const floatX* residual;   // (B,T,C) the block's input: the embeddings or the previous block's output
    floatX *ln1, *qkv, *atty, *residual2, *ln2, *fch, *fch_gelu, *residual3;
    float* qk_rstd;
    float *ln1_mean, *ln1_rstd, *ln2_mean, *ln2_rstd;
    void* att;                // attention's saved state
} LayerActs;

static inline LayerActs gpt2_layer_acts(const GPT2* m, int l) {
    const Activations* a = &m->a;
    size_t S = m->act_stride, SB = (size_t)m->B * m->T;
    LayerActs x;
    x.residual = l == 0 ? a->encoded : a->residual3 + (l - 1) * S;
    x.ln1 = a->ln1 + m->slot_ln1[l] * S;
    x.qkv = a->qkv + l * 3 * S;
    x.atty = a->atty + l * S;
    x.residual2 = a->residual2 + l * S;
    x.ln2 = a->ln2 + m->slot_ln2[l] * S;
    x.fch = a->fch + l * 4 * S;
    x.fch_gelu = a->fch_gelu + m->slot_gelu[l] * 4 * S;
    x.residual3 = a->residual3 + l * S;
    x.qk_rstd = a->qk_rstd + l * qk_norm_saved_floats(m->B, m->T, m->cfg.num_heads);
    x.ln1_mean = a->ln1_mean + l * SB;
    x.ln1_rstd = a->ln1_rstd + l * SB;
    x.ln2_mean = a->ln2_mean + l * SB;
    x.ln2_rstd = a->ln2_rstd + l * SB;
    x.att = a->att + l * attention_saved_bytes(m->B, m->T, m->cfg.num_heads);
    return x;
}

// 1 when layer l's attention keeps its own copies of Q, K, V (FP8) for its backward in the QKV
// activation's place (not with qk-norm, whose backward reads the BF16 Q and K)
static inline int gpt2_attention_keeps_qkv(const GPT2* m, int l, int B, int T) {
    return !m->qk_norm && linear_attention_keeps_qkv(&m->lin, l, B, T, m->cfg.num_heads, 3 * m->act_stride * sizeof(floatX));
}

// Layer l's slice of per-layer parameter tensor i, in `views` (m->p for weights, m->g for gradients).
static inline floatX* gpt2_layer_param(const GPT2* m, floatX* const* views, int i, int l) {
    return views[i] + (size_t)l * (m->param_sizes[i] / m->cfg.num_layers);
}

// Queues the forward pass over inputs (B,T) (host ints). With targets, the positions' losses
// follow, for gpt2_loss; when dloss > 0 it also leaves in the logits buffer the gradient of
// dloss * (sum of the positions' losses), for gpt2_backward (or, where the LM head makes that
// gradient itself, the logits and each position's log-normaliser). Without targets only the
// logits are computed.
static inline void gpt2_forward_queue(GPT2* m, const int* inputs, const int* targets, int B, int T, float dloss) {
    const GPT2Config* c = &m->cfg;
    if (B > m->B || T > m->T || T > c->max_seq_len) { die("internal: forward at B=%d T=%d exceeds capacity B=%d T=%d", B, T, m->B, m->T); }
    if (m->weights_pending || (m->bf16_partial && (B * T) % 16 != 0)) { die("internal: forward on weights not yet gathered"); }
    int L = c->num_layers, C = c->channels, NH = c->num_heads, Vp = c->padded_vocab_size, N = B * T;
    cudaStream_t s = m->stream;
    Activations* a = &m->a;
    cudaCheck(cudaMemcpyAsync(m->inputs_dev, inputs, N * sizeof(int), cudaMemcpyHostToDevice, s));
    if (targets != NULL) { cudaCheck(cudaMemcpyAsync(m->targets_dev, targets, N * sizeof(int), cudaMemcpyHostToDevice, s)); }
    if (dloss > 0.0f) {  // the wte gradient's grouping, prepared while the GPU runs forward
        token_groups_build(&m->groups_host, inputs, N, c->vocab_size, m->group_count);
        int ng = m->groups_host.num_groups;
        m->groups_dev.num_groups = ng;
        cudaCheck(cudaMemcpyAsync(m->groups_dev.group_token, m->groups_host.group_token, ng * sizeof(int), cudaMemcpyHostToDevice, s));
        cudaCheck(cudaMemcpyAsync(m->groups_dev.group_start, m->groups_host.group_start, (ng + 1) * sizeof(int), cudaMemcpyHostToDevice, s));
        cudaCheck(cudaMemcpyAsync(m->groups_dev.position, m->groups_host.position, N * sizeof(int), cudaMemcpyHostToDevice, s));
    }
    Profiler* prof = &m->prof;
    encoder_forward(a->encoded, m->inputs_dev, m->p[P_WTE], m->p[P_WPE], B, T, C, s);
    prof_mark(prof, "encoder", "forward");
    // Each LayerNorm writes its output in FP8 when the linear it feeds takes it so (q8).
    Fp8Out q8;
    LayerActs x0 = gpt2_layer_acts(m, 0);
    int f8 = linear_input_fp8(&m->lin, LINEAR_QKV, 0, N, C, 3 * C, &q8);
    layernorm_forward(x0.ln1, x0.ln1_mean, x0.ln1_rstd, a->encoded, m->p[P_LN1W], m->p[P_LN1B], N, C, f8 ? &q8 : NULL, s);
    prof_mark(prof, "layernorm", "forward");
    for (int l = 0; l < L; l++) {
        LayerActs x = gpt2_layer_acts(m, l);
        // where attention keeps its own copies of Q, K, V in the QKV activation's place, the BF16
        // Q, K, V live only until it has read them, in dbuf
        int kept = gpt2_attention_keeps_qkv(m, l, B, T);
        floatX* qkv = kept ? a->dbuf : x.qkv;
        linear_forward(&m->lin, LINEAR_QKV, l, qkv, NULL, x.ln1, gpt2_layer_param(m, m->p, P_QKVW, l),
                       gpt2_layer_param(m, m->p, P_QKVB, l), N, C, 3 * C, s);
        if (m->qk_norm) { qk_norm_forward(x.qkv, x.qk_rstd, B, T, C, NH, s); prof_mark(prof, "qk-norm", "forward"); }
        linear_attention_forward(&m->lin, l, x.atty, x.att, qkv, kept ? x.qkv : NULL, B, T, C, NH, m->att_scale, s);
        linear_forward(&m->lin, LINEAR_ATTPROJ, l, a->proj_out, NULL, x.atty, gpt2_layer_param(m, m->p, P_ATTPROJW, l),
                       gpt2_layer_param(m, m->p, P_ATTPROJB, l), N, C, C, s);
        f8 = linear_input_fp8(&m->lin, LINEAR_FC, l, N, C, 4 * C, &q8);
        residual_layernorm_forward(x.residual2, x.ln2, x.ln2_mean, x.ln2_rstd, x.residual, a->proj_out,
                                   gpt2_layer_param(m, m->p, P_LN2W, l), gpt2_layer_param(m, m->p, P_LN2B, l), N, C,
                                   f8 ? &q8 : NULL, s);
        prof_mark(prof, "layernorm", "forward");
        linear_forward(&m->lin, LINEAR_FC, l, x.fch_gelu, x.fch, x.ln2, gpt2_layer_param(m, m->p, P_FCW, l),
                       gpt2_layer_param(m, m->p, P_FCB, l), N, C, 4 * C, s);
        linear_forward(&m->lin, LINEAR_FCPROJ, l, a->proj_out, NULL, x.fch_gelu, gpt2_layer_param(m, m->p, P_FCPROJW, l),
                       gpt2_layer_param(m, m->p, P_FCPROJB, l), N, 4 * C, C, s);
        // the residual add feeds the next block's first LayerNorm, or the final one
        int last = l == L - 1;
        LayerActs next = gpt2_layer_acts(m, last ? l : l + 1);
        f8 = last ? linear_input_fp8(&m->lin, LINEAR_LMHEAD, 0, N, C, Vp, &q8) : linear_input_fp8(&m->lin, LINEAR_QKV, l + 1, N, C, 3 * C, &q8);
        residual_layernorm_forward(x.residual3, last ? a->lnf : next.ln1, last ? a->lnf_mean : next.ln1_mean,
                                   last ? a->lnf_rstd : next.ln1_rstd, x.residual2, a->proj_out,
                                   last ? m->p[P_LNFW] : gpt2_layer_param(m, m->p, P_LN1W, l + 1),
                                   last ? m->p[P_LNFB] : gpt2_layer_param(m, m->p, P_LN1B, l + 1), N, C,
                                   f8 ? &q8 : NULL, s);
        prof_mark(prof, "layernorm", "forward");
        if (m->act_stats) { residual_kurtosis(m->kurt_dev + l, x.residual3, N, C, a->reduce_scratch, s); prof_mark(prof, "statistics", "kurtosis"); }
    }
    linear_forward(&m->lin, LINEAR_LMHEAD, 0, a->logits, NULL, a->lnf, m->p[P_WTE], NULL, N, C, Vp, s);
    if (targets == NULL) { return; }
    // where the LM head's backward makes the logits' gradient from the logits, only the loss here
    m->dlogits_deferred = dloss > 0.0f && linear_lmhead_makes_dlogits(&m->lin, N, C, Vp);
    m->dloss = dloss;
    fused_classifier(a->logits, a->losses, m->dlogits_deferred ? a->lse : NULL, m->targets_dev, dloss, N, c->vocab_size, Vp,
                     dloss > 0.0f && !m->dlogits_deferred, s);
    prof_mark(prof, "classifier", m->dlogits_deferred ? "loss" : "loss + dlogits");
    cudaCheck(cudaMemcpyAsync(m->losses_host, a->losses, N * sizeof(float), cudaMemcpyDeviceToHost, s));
    cudaCheck(cudaEventRecord(m->loss_ready, s));
    m->loss_n = N;
}

// The mean loss of the last forward with targets; waits for it. The trainer asks after queueing
// the backward, so the GPU does not idle while the host reads the loss (0.17 ms a d12 step).
static inline float gpt2_loss(GPT2* m) {
    cudaCheck(cudaEventSynchronize(m->loss_ready));
    double sum = 0.0;
    for (int i = 0; i < m->loss_n; i++) { sum += m->losses_host[i]; }
    return (float)(sum / m->loss_n);
}

// gpt2_forward_queue, then (with targets) the mean loss; 0 without targets
static inline float gpt2_forward(GPT2* m, const int* inputs, const int* targets, int B, int T, float dloss) {
    gpt2_forward_queue(m, inputs, targets, B, T, dloss);
    return targets != NULL ? gpt2_loss(m) : 0.0f;
}

static inline void gpt2_zero_grad(GPT2* m) {
    cudaCheck(cudaMemsetAsync(m->grads, 0, m->padded_params * sizeof(floatX), m->stream));
}

// Starts averaging over ranks the gradients that the backward pass has finished: layer l's
// slices of the per-layer tensors (l >= 0), or the embeddings and final LayerNorm (l < 0).
// The reduction runs on comm_stream after the work queued so far on the model's stream.
static inline void gpt2_reduce_grads_async(GPT2* m, int l) {
    int L = m->cfg.num_layers;
    floatX* ptrs[NUM_PARAM_TENSORS];
    size_t counts[NUM_PARAM_TENSORS];
    int n = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        int per_layer = i != P_WTE && i != P_WPE && i != P_LNFW && i != P_LNFB;
        if (per_layer != (l >= 0)) { continue; }
        ptrs[n] = per_layer ? gpt2_layer_param(m, m->g, i, l) : m->g[i];
        counts[n] = per_layer ? m->param_sizes[i] / L : m->param_sizes[i];
        n++;
    }
    cudaEvent_t e = m->layer_done[l >= 0 ? l : L];
    cudaCheck(cudaEventRecord(e, m->stream));
    cudaCheck(cudaStreamWaitEvent(m->comm_stream, e, 0));
    multi_gpu_allreduce_mean_bf16_group(m->mg, ptrs, counts, n, m->comm_stream);
}

// After the last micro-batch's backward: the gradients averaged over ranks. Without ZeRO the
// backward pass already started per-layer all-reduces (overlapped); wait for them. With ZeRO-1,
// reduce-scatter: each rank gets the mean of its own shard, in place.
static inline void gpt2_reduce_grads(GPT2* m) {
    const MultiGpu* mg = m->mg;
    if (mg->nranks == 1) { return; }
    if (m->zero_stage == 1) {
        multi_gpu_reduce_scatter_mean_bf16(mg, m->grads + mg->rank * m->shard_len, m->grads, m->padded_params, m->stream);
    } else {
        cudaCheck(cudaEventRecord(m->comm_done, m->comm_stream));
        cudaCheck(cudaStreamWaitEvent(m->stream, m->comm_done, 0));
    }
}

// Adds this micro-batch's gradients into m->grads; needs the preceding gpt2_forward with dloss > 0.
// last_micro: the step's last micro-batch, whose finished layers are reduced over ranks at once.
static inline void gpt2_backward(GPT2* m, int B, int T, int last_micro) {
    int overlap = last_micro && m->mg->nranks > 1 && m->zero_stage == 0;
    const GPT2Config* c = &m->cfg;
    int L = c->num_layers, C = c->channels, NH = c->num_heads, Vp = c->padded_vocab_size, N = B * T;
    cudaStream_t s = m->stream;
    Activations* a = &m->a;
    size_t S = m->act_stride;
    float* scratch = a->reduce_scratch;
    if (m->inputs_dropped && N % 16 != 0) { die("internal: backward over %d positions, not a multiple of 16, with FP8 inputs kept", N); }
    Profiler* prof = &m->prof;

    // LM head: dlnf = dlogits @ wte; dwte += dlogits^T @ lnf
    SoftmaxGrad sg = {a->lse, m->targets_dev, m->dloss, c->vocab_size};
    linear_backward_lmhead(&m->lin, a->dln, m->g[P_WTE], scratch, a->logits, m->dlogits_deferred ? &sg : NULL, a->lnf,
                           m->p[P_WTE], N, C, Vp, s);
    cudaCheck(cudaMemsetAsync(a->dresidual, 0, (size_t)N * C * sizeof(floatX), s));
    layernorm_backward(a->dresidual, m->g[P_LNFW], m->g[P_LNFB], scratch, a->dln, a->residual3 + (L - 1) * S,
                       m->p[P_LNFW], a->lnf_mean, a->lnf_rstd, N, C, s);
    prof_mark(prof, "layernorm", "backward");
    for (int l = L - 1; l >= 0; l--) {
        LayerActs x = gpt2_layer_acts(m, l);
        // MLP: the residual stream's gradient flows into the projection unchanged; the projection's
        // input gradient goes through GELU's backward into the FC's (dbuf: dfch, or in FP8 the
        // projection's raw input gradient, GELU's backward then riding in the FC's cast)
        if (m->recompute && linear_backward_reads_input(&m->lin, LINEAR_FCPROJ, l, N, 4 * C, C)) {
            gelu_forward(x.fch_gelu, x.fch, (long)N * 4 * C, s);
            prof_mark(prof, "gelu", "recompute");
        }
        linear_backward_mlp(&m->lin, l, a->dln, a->dbuf, gpt2_layer_param(m, m->g, P_FCW, l), gpt2_layer_param(m, m->g, P_FCB, l),
                            gpt2_layer_param(m, m->g, P_FCPROJW, l), gpt2_layer_param(m, m->g, P_FCPROJB, l), scratch,
                            a->dresidual, x.ln2, x.fch, x.fch_gelu, gpt2_layer_param(m, m->p, P_FCW, l),
                            gpt2_layer_param(m, m->p, P_FCPROJW, l), N, C, s);
        layernorm_backward(a->dresidual, gpt2_layer_param(m, m->g, P_LN2W, l), gpt2_layer_param(m, m->g, P_LN2B, l),
                           scratch, a->dln, x.residual2, gpt2_layer_param(m, m->p, P_LN2W, l), x.ln2_mean, x.ln2_rstd, N, C, s);
        prof_mark(prof, "layernorm", "backward");
        // attention
        linear_backward(&m->lin, LINEAR_ATTPROJ, l, a->datty, gpt2_layer_param(m, m->g, P_ATTPROJW, l),
                        gpt2_layer_param(m, m->g, P_ATTPROJB, l), scratch, a->dresidual, x.atty, NULL,
                        gpt2_layer_param(m, m->p, P_ATTPROJW, l), N, C, C, s);
        int kept = gpt2_attention_keeps_qkv(m, l, B, T);
        linear_attention_backward(&m->lin, l, a->dbuf, a->attn_scratch, a->datty, x.atty, kept ? NULL : x.qkv,
                                  kept ? x.qkv : NULL, x.att, B, T, C, NH, m->att_scale, !m->qk_norm, s);
        if (m->qk_norm) { qk_norm_backward(a->dbuf, x.qkv, x.qk_rstd, B, T, C, NH, s); prof_mark(prof, "qk-norm", "backward"); }
        linear_backward(&m->lin, LINEAR_QKV, l, a->dln, gpt2_layer_param(m, m->g, P_QKVW, l),
                        gpt2_layer_param(m, m->g, P_QKVB, l), scratch, a->dbuf, x.ln1, NULL,
                        gpt2_layer_param(m, m->p, P_QKVW, l), N, C, 3 * C, s);
        layernorm_backward(a->dresidual, gpt2_layer_param(m, m->g, P_LN1W, l), gpt2_layer_param(m, m->g, P_LN1B, l),
                           scratch, a->dln, x.residual, gpt2_layer_param(m, m->p, P_LN1W, l), x.ln1_mean, x.ln1_rstd, N, C, s);
        prof_mark(prof, "layernorm", "backward");
        if (overlap) { gpt2_reduce_grads_async(m, l); }
    }
    encoder_backward(m->g[P_WTE], m->g[P_WPE], a->dresidual, &m->groups_dev, B, T, C, s);
    prof_mark(prof, "encoder", "backward");
    if (overlap) { gpt2_reduce_grads_async(m, -1); }
}

// Global L2 norm of the (reduced) gradients: over this rank's shard, summed over ranks (synchronizes).
static inline float gpt2_grad_norm(GPT2* m) {
    squared_norm(m->norm_dev, m->a.reduce_scratch, m->grads + m->shard_offset, (long)m->shard_count, m->stream);
    if (m->zero_stage == 1) { multi_gpu_allreduce_f32(m->mg, m->norm_dev, 1, 0, m->stream); }
    float sq = 0.0f;
    cudaCheck(cudaMemcpyAsync(&sq, m->norm_dev, sizeof(float), cudaMemcpyDeviceToHost, m->stream));
    multi_gpu_wait(m->mg, m->stream, "gradient reduction");
    return sqrtf(sq);
}

// ZeRO-1: every rank gets every shard's BF16 weights.
static inline void gpt2_all_gather_params(GPT2* m) {
    multi_gpu_all_gather_bf16(m->mg, m->params, m->params + m->mg->rank * m->shard_len, m->padded_params, m->stream);
}

// One AdamW step (t is 1-based) over all parameters, gradients scaled by grad_scale.
static inline void gpt2_update(GPT2* m, float lr, float beta1, float beta2, float eps, float weight_decay,
                               float grad_scale, int t, uint64_t seed) {
    AdamWStep h;
    h.lr = lr; h.beta1 = beta1; h.beta2 = beta2; h.eps = eps;
    h.beta1_correction = 1.0f - powf(beta1, (float)t);
    h.beta2_correction = 1.0f - powf(beta2, (float)t);
    h.grad_scale = grad_scale;
    h.seed = hash_u32((uint32_t)t, (uint32_t)seed ^ 0x2545F491u);
    // the part of each tensor inside this rank's shard; rounding noise keyed by the global index
    size_t s0 = m->shard_offset, s1 = m->shard_offset + m->shard_count;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        size_t lo = m->param_offsets[i], hi = lo + m->param_sizes[i];
        lo = lo > s0 ? lo : s0;
        hi = hi < s1 ? hi : s1;
        if (lo >= hi) { continue; }
        h.weight_decay = gpt2_param_decays(i) ? weight_decay : 0.0f;
        adamw_update(m->params + lo, m->master + (lo - s0), m->grads + lo, m->adam_m + (lo - s0), m->adam_v + (lo - s0),
                     (long)(hi - lo), (long)lo, h, m->stream);
    }
    if (m->fp8_gather && (m->B * m->T) % 16 == 0) {   // FP8 micro-batches; the next step's scales first
        m->weights_pending = m->bf16_partial = 1;
    } else if (m->zero_stage == 1) {
        gpt2_all_gather_params(m);
    }
    linear_weights_changed(&m->lin);
}

// ------------------------------------------------------------------------------------------
// ZeRO-1 weight gather with FP8 codes
//
// Each rank's chunk carries its shard: the parts of FP8 weights as E4M3 codes cast with the
// step's scales (1 byte each), everything else as BF16 (the embedding table, which is also the
// LM head, biases, LayerNorms, BF16 layers). One all-gather of equal chunks, then each rank
// places the codes in its FP8 weights (one pass per weight, reading the codes where they
// arrived) and the BF16 values in params. The chunks live in the
// gradient buffer, dead between an update and the next step's zeroing. The FP8 weights (d48:
// 94% of the parameters) travel at half the bytes.

static const int LINEAR_WEIGHT_PARAM[4] = {P_QKVW, P_ATTPROJW, P_FCW, P_FCPROJW};   // by LinearKind
#define GATHER_MAX_PIECES 64   // ranks' chunks one weight may span (the linear layer may allow fewer)

static inline void gpt2_linear_shape(const GPT2* m, int kind, int* OC, int* IC) {
    int C = m->cfg.channels;
    const int oc[4] = {3 * C, C, 4 * C, C}, ic[4] = {C, C, C, 4 * C};
    *OC = oc[kind]; *IC = ic[kind];
}

// Splits the parameters into GatherSegs; sets fp8_gather when some weight travels as FP8.
static inline void gpt2_plan_gather(GPT2* m) {
    int R = m->mg->nranks, L = m->cfg.num_layers;
    if (m->zero_stage != 1) { return; }
    int max_segs = NUM_PARAM_TENSORS + 4 * L + R, ns = 0, any_fp8 = 0;
    GatherSeg* segs = (GatherSeg*)calloc_or_die(max_segs, sizeof(GatherSeg), "gather plan");
    size_t* used = (size_t*)calloc_or_die(R, sizeof(size_t), "gather plan");
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        int kind = -1;
        for (int k = 0; k < 4; k++) { if (LINEAR_WEIGHT_PARAM[k] == i) { kind = k; } }
        int units = kind >= 0 ? L : 1;
        size_t usize = m->param_sizes[i] / units;
        for (int u = 0; u < units; u++) {
            size_t lo = m->param_offsets[i] + u * usize, hi = lo + usize;
            int OC = 0, IC = 0;
            if (kind >= 0) { gpt2_linear_shape(m, kind, &OC, &IC); }
            int fp8 = kind >= 0 && linear_weight_gathers_fp8(&m->lin, (LinearKind)kind, u, OC, IC);
            any_fp8 |= fp8;
            for (int r = 0; r < R; r++) {
                size_t so, sc;
                zero_shard_range(m->num_params, R, r, ZERO_ALIGN, &so, &sc);
                size_t a = lo > so ? lo : so, b = hi < so + sc ? hi : so + sc;
                if (a >= b) { continue; }
                if (ns == max_segs) { die("internal: gather plan overflow"); }
                GatherSeg* g = &segs[ns++];
                g->off = a; g->n = b - a; g->pos = used[r]; g->rank = r;
                g->kind = fp8 ? kind : -1; g->layer = u; g->woff = a - lo;
                used[r] += g->n * (fp8 ? 1 : sizeof(floatX));
            }
        }
    }
    size_t chunk = 0;
    for (int r = 0; r < R; r++) { chunk = used[r] > chunk ? used[r] : chunk; }
    chunk = (chunk + 15) / 16 * 16;
    free(used);
    if (!any_fp8) { free(segs); return; }
    if (chunk * R > m->padded_params * sizeof(floatX)) { die("internal: gather chunks exceed the gradient buffer"); }
    m->fp8_gather = 1;
    m->gather_segs = segs; m->num_gather_segs = ns; m->gather_chunk = chunk;
    m->gather_parts = (LinearWeightPart*)calloc_or_die(ns, sizeof(LinearWeightPart), "gather plan");
    uint8_t* mine = (uint8_t*)m->grads + (size_t)m->mg->rank * chunk;
    for (int k = 0; k < ns; k++) {
        GatherSeg* g = &segs[k];
        if (g->rank != m->mg->rank || g->kind < 0) { continue; }
        LinearWeightPart* p = &m->gather_parts[m->num_gather_parts++];
        p->kind = (LinearKind)g->kind; p->layer = g->layer;
        p->src = m->params + g->off; p->dst = mine + g->pos; p->n = (long)g->n;
    }
}

static inline void gpt2_gather_weights(GPT2* m) {
    cudaStream_t s = m->stream;
    int me = m->mg->rank;
    uint8_t* buf = (uint8_t*)m->grads;
    size_t chunk = m->gather_chunk;
    linear_weight_parts_cast(&m->lin, m->gather_parts, m->num_gather_parts, s);
    for (int k = 0; k < m->num_gather_segs; k++) {
        const GatherSeg* g = &m->gather_segs[k];
        if (g->rank == me && g->kind < 0) {
            cudaCheck(cudaMemcpyAsync(buf + me * chunk + g->pos, m->params + g->off, g->n * sizeof(floatX), cudaMemcpyDeviceToDevice, s));
        }
    }
    multi_gpu_all_gather_bytes(m->mg, buf, buf + me * chunk, chunk * m->mg->nranks, s);
    // a weight's segments are consecutive in the plan (parameter order, then rank order)
    const uint8_t* src[GATHER_MAX_PIECES];
    long end[GATHER_MAX_PIECES];
    int n = 0;
    for (int k = 0; k < m->num_gather_segs; k++) {
        const GatherSeg* g = &m->gather_segs[k];
        const uint8_t* from = buf + g->rank * chunk + g->pos;
        if (g->kind < 0) {
            if (g->rank != me) { cudaCheck(cudaMemcpyAsync(m->params + g->off, from, g->n * sizeof(floatX), cudaMemcpyDeviceToDevice, s)); }
            continue;
        }
        if (n == GATHER_MAX_PIECES) { die("internal: a weight in more than %d pieces", GATHER_MAX_PIECES); }
        src[n] = from;
        end[n] = (long)(g->woff + g->n);
        n++;
        const GatherSeg* next = k + 1 < m->num_gather_segs ? &m->gather_segs[k + 1] : NULL;
        if (next == NULL || next->kind != g->kind || next->layer != g->layer) {
            int OC, IC;
            gpt2_linear_shape(m, g->kind, &OC, &IC);
            linear_weight_received(&m->lin, (LinearKind)g->kind, g->layer, gpt2_layer_param(m, m->p, LINEAR_WEIGHT_PARAM[g->kind], g->layer),
                                   OC, IC, src, end, n, s);
            n = 0;
        }
    }
    m->weights_pending = 0;
}

// Before the first micro-batch of a step: the step's scales, then the weights the last update
// left on their ranks. Collective when data-parallel.
static inline void gpt2_step_begin(GPT2* m) {
    linear_step_begin(&m->lin);
    if (m->weights_pending) { gpt2_gather_weights(m); }
}

// Every rank's BF16 weights complete, before anything but a training step reads them
// (evaluation, sampling, checkpoints). Collective when data-parallel.
static inline void gpt2_params_sync(GPT2* m) {
    if (!m->bf16_partial) { return; }
    gpt2_all_gather_params(m);
    linear_weights_changed(&m->lin);   // the local FP8 casts take over from the gathered codes
    m->weights_pending = m->bf16_partial = 0;
}

#endif // LLMC_GPT2_CUH
