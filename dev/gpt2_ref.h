// Plain fp64 reference of the GPT-2 model the CUDA trainer trains: forward, backward,
// checkpoint loading and one AdamW step. Tests compare the trainer against it, so every
// loop is written to be obviously right rather than fast, and every value is a double.
#ifndef GPT2_REF_H
#define GPT2_REF_H

#include <math.h>
#include "../llmc/utils.h"

#define GPT2REF_MAGIC 20240326
#define GPT2REF_NUM_TENSORS 16
#define GPT2REF_LN_EPS 1e-5

typedef struct {
    int maxT; // longest sequence: rows of wpe
    int V;    // real vocabulary: the loss softmax runs over these columns only
    int Vp;   // padded vocabulary: rows of wte, columns of the logits
    int L;    // layers
    int NH;   // heads
    int C;    // channels; head size is C/NH
} GPT2RefConfig;

// Views of the parameter tensors (or of their gradients) inside one flat array,
// in checkpoint order.
typedef struct {
    double* wte;      // (Vp,C)
    double* wpe;      // (maxT,C)
    double* ln1w;     // (L,C)
    double* ln1b;     // (L,C)
    double* qkvw;     // (L,3C,C)
    double* qkvb;     // (L,3C)
    double* attprojw; // (L,C,C)
    double* attprojb; // (L,C)
    double* ln2w;     // (L,C)
    double* ln2b;     // (L,C)
    double* fcw;      // (L,4C,C)
    double* fcb;      // (L,4C)
    double* fcprojw;  // (L,C,4C)
    double* fcprojb;  // (L,C)
    double* lnfw;     // (C)
    double* lnfb;     // (C)
} GPT2RefParams;

// Element count of each tensor in checkpoint order; returns the total.
static inline size_t gpt2ref_tensor_sizes(const GPT2RefConfig* cfg, size_t sizes[GPT2REF_NUM_TENSORS]) {
    size_t Vp = cfg->Vp, maxT = cfg->maxT, L = cfg->L, C = cfg->C;
    const size_t s[GPT2REF_NUM_TENSORS] = {
        Vp * C, maxT * C, L * C, L * C, L * 3 * C * C, L * 3 * C, L * C * C, L * C,
        L * C, L * C, L * 4 * C * C, L * 4 * C, L * C * 4 * C, L * C, C, C};
    size_t total = 0;
    for (int i = 0; i < GPT2REF_NUM_TENSORS; i++) {
        sizes[i] = s[i];
        total += s[i];
    }
    return total;
}

static inline size_t gpt2ref_num_params(const GPT2RefConfig* cfg) {
    size_t sizes[GPT2REF_NUM_TENSORS];
    return gpt2ref_tensor_sizes(cfg, sizes);
}

static inline const char* gpt2ref_tensor_name(int i) {
    static const char* const names[GPT2REF_NUM_TENSORS] = {
        "wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
        "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"};
    return names[i];
}

// Weight decay applies to the matrices only, never to biases or LayerNorm parameters.
static inline int gpt2ref_tensor_decays(int i) {
    static const int decays[GPT2REF_NUM_TENSORS] = {1, 1, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0};
    return decays[i];
}

static inline GPT2RefParams gpt2ref_views(const GPT2RefConfig* cfg, double* flat) {
    GPT2RefParams p;
    double** slots[GPT2REF_NUM_TENSORS] = {
        &p.wte, &p.wpe, &p.ln1w, &p.ln1b, &p.qkvw, &p.qkvb, &p.attprojw, &p.attprojb,
        &p.ln2w, &p.ln2b, &p.fcw, &p.fcb, &p.fcprojw, &p.fcprojb, &p.lnfw, &p.lnfb};
    size_t sizes[GPT2REF_NUM_TENSORS];
    gpt2ref_tensor_sizes(cfg, sizes);
    for (int i = 0; i < GPT2REF_NUM_TENSORS; i++) {
        *slots[i] = flat;
        flat += sizes[i];
    }
    return p;
}

// ----------------------------------------------------------------------------
// Activations of one forward pass, kept for the backward pass.

typedef struct {
    int B, T;
    double* x;        // (L+1,B,T,C) residual stream: x[0] embeddings, x[l+1] output of layer l
    double* ln1;      // (L,B,T,C)
    double* ln1_mean; // (L,B,T)
    double* ln1_rstd; // (L,B,T)
    double* qkv;      // (L,B,T,3C)
    double* att;      // (L,B,NH,T,T) softmax probabilities, zero above the diagonal
    double* atty;     // (L,B,T,C) attention output, heads concatenated
    double* xmid;     // (L,B,T,C) residual stream after the attention block
    double* ln2;      // (L,B,T,C)
    double* ln2_mean; // (L,B,T)
    double* ln2_rstd; // (L,B,T)
    double* fch;      // (L,B,T,4C) fc output before GELU
    double* fch_gelu; // (L,B,T,4C)
    double* lnf;      // (B,T,C)
    double* lnf_mean; // (B,T)
    double* lnf_rstd; // (B,T)
    double* logits;   // (B,T,Vp) all Vp columns, padded ones included
    double* probs;    // (B,T,Vp) softmax over the first V columns; padded columns 0
    double* proj;     // (B,T,C) a projection's output before it joins the residual stream
} GPT2RefActs;

static inline GPT2RefActs gpt2ref_acts_new(const GPT2RefConfig* cfg, int B, int T) {
    size_t L = cfg->L, N = (size_t)B * T, C = cfg->C, NH = cfg->NH, Vp = cfg->Vp;
    GPT2RefActs a;
    a.B = B;
    a.T = T;
    a.x = (double*)malloc_or_die((L + 1) * N * C * sizeof(double), "ref x");
    a.ln1 = (double*)malloc_or_die(L * N * C * sizeof(double), "ref ln1");
    a.ln1_mean = (double*)malloc_or_die(L * N * sizeof(double), "ref ln1_mean");
    a.ln1_rstd = (double*)malloc_or_die(L * N * sizeof(double), "ref ln1_rstd");
    a.qkv = (double*)malloc_or_die(L * N * 3 * C * sizeof(double), "ref qkv");
    a.att = (double*)malloc_or_die(L * B * NH * T * T * sizeof(double), "ref att");
    a.atty = (double*)malloc_or_die(L * N * C * sizeof(double), "ref atty");
    a.xmid = (double*)malloc_or_die(L * N * C * sizeof(double), "ref xmid");
    a.ln2 = (double*)malloc_or_die(L * N * C * sizeof(double), "ref ln2");
    a.ln2_mean = (double*)malloc_or_die(L * N * sizeof(double), "ref ln2_mean");
    a.ln2_rstd = (double*)malloc_or_die(L * N * sizeof(double), "ref ln2_rstd");
    a.fch = (double*)malloc_or_die(L * N * 4 * C * sizeof(double), "ref fch");
    a.fch_gelu = (double*)malloc_or_die(L * N * 4 * C * sizeof(double), "ref fch_gelu");
    a.lnf = (double*)malloc_or_die(N * C * sizeof(double), "ref lnf");
    a.lnf_mean = (double*)malloc_or_die(N * sizeof(double), "ref lnf_mean");
    a.lnf_rstd = (double*)malloc_or_die(N * sizeof(double), "ref lnf_rstd");
    a.logits = (double*)malloc_or_die(N * Vp * sizeof(double), "ref logits");
    a.probs = (double*)malloc_or_die(N * Vp * sizeof(double), "ref probs");
    a.proj = (double*)malloc_or_die(N * C * sizeof(double), "ref proj");
    return a;
}

static inline void gpt2ref_acts_free(GPT2RefActs* a) {
    double* bufs[] = {a->x, a->ln1, a->ln1_mean, a->ln1_rstd, a->qkv, a->att, a->atty, a->xmid,
                      a->ln2, a->ln2_mean, a->ln2_rstd, a->fch, a->fch_gelu, a->lnf, a->lnf_mean,
                      a->lnf_rstd, a->logits, a->probs, a->proj};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) { free(bufs[i]); }
}

// ----------------------------------------------------------------------------
// Layers. N = B*T rows. Every backward function accumulates (+=) into its outputs.

// out (B,T,C) = wte[tokens] (Vp,C) + wpe[t] (maxT,C)
static inline void gpt2ref_encoder_forward(double* out, const int* tokens, const double* wte,
                                           const double* wpe, int B, int T, int C) {
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            double* o = out + ((size_t)b * T + t) * C;
            const double* we = wte + (size_t)tokens[b * T + t] * C;
            const double* pe = wpe + (size_t)t * C;
            for (int c = 0; c < C; c++) { o[c] = we[c] + pe[c]; }
        }
    }
}

static inline void gpt2ref_encoder_backward(double* dwte, double* dwpe, const double* dout,
                                            const int* tokens, int B, int T, int C) {
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            const double* d = dout + ((size_t)b * T + t) * C;
            double* dwe = dwte + (size_t)tokens[b * T + t] * C;
            double* dpe = dwpe + (size_t)t * C;
            for (int c = 0; c < C; c++) {
                dwe[c] += d[c];
                dpe[c] += d[c];
            }
        }
    }
}

// out (N,C) = (inp - mean) * rstd * w + b with biased variance; mean, rstd (N) kept for backward
static inline void gpt2ref_layernorm_forward(double* out, double* mean, double* rstd, const double* inp,
                                             const double* w, const double* b, size_t N, int C) {
    for (size_t n = 0; n < N; n++) {
        const double* x = inp + n * C;
        double m = 0.0, v = 0.0;
        for (int c = 0; c < C; c++) { m += x[c]; }
        m /= C;
        for (int c = 0; c < C; c++) { v += (x[c] - m) * (x[c] - m); }
        v /= C;
        double s = 1.0 / sqrt(v + GPT2REF_LN_EPS);
        for (int c = 0; c < C; c++) { out[n * C + c] = (x[c] - m) * s * w[c] + b[c]; }
        mean[n] = m;
        rstd[n] = s;
    }
}

// With xhat = (x - mean) * rstd and g = dout * w:
// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), dw += dout * xhat, db += dout
static inline void gpt2ref_layernorm_backward(double* dinp, double* dw, double* db, const double* dout,
                                              const double* inp, const double* mean, const double* rstd,
                                              const double* w, size_t N, int C) {
    for (size_t n = 0; n < N; n++) {
        const double* x = inp + n * C;
        const double* d = dout + n * C;
        double g_mean = 0.0, gx_mean = 0.0;
        for (int c = 0; c < C; c++) {
            double xhat = (x[c] - mean[n]) * rstd[n];
            g_mean += d[c] * w[c];
            gx_mean += d[c] * w[c] * xhat;
        }
        g_mean /= C;
        gx_mean /= C;
        for (int c = 0; c < C; c++) {
            double xhat = (x[c] - mean[n]) * rstd[n];
            dinp[n * C + c] += rstd[n] * (d[c] * w[c] - g_mean - xhat * gx_mean);
            dw[c] += d[c] * xhat;
            db[c] += d[c];
        }
    }
}

// out (N,OC) = inp (N,IC) @ w (OC,IC)^T + bias (OC); bias may be NULL
static inline void gpt2ref_matmul_forward(double* out, const double* inp, const double* w,
                                          const double* bias, size_t N, int IC, int OC) {
    for (size_t n = 0; n < N; n++) {
        const double* x = inp + n * IC;
        for (int o = 0; o < OC; o++) {
            const double* wr = w + (size_t)o * IC;
            double s = bias ? bias[o] : 0.0;
            for (int i = 0; i < IC; i++) { s += x[i] * wr[i]; }
            out[n * OC + o] = s;
        }
    }
}

// dinp (N,IC) += dout @ w; dw (OC,IC) += dout^T @ inp; dbias (OC) += column sums of dout
static inline void gpt2ref_matmul_backward(double* dinp, double* dw, double* dbias, const double* dout,
                                           const double* inp, const double* w, size_t N, int IC, int OC) {
    for (size_t n = 0; n < N; n++) {
        const double* x = inp + n * IC;
        double* dx = dinp + n * IC;
        for (int o = 0; o < OC; o++) {
            double d = dout[n * OC + o];
            const double* wr = w + (size_t)o * IC;
            double* dwr = dw + (size_t)o * IC;
            for (int i = 0; i < IC; i++) {
                dx[i] += d * wr[i];
                dwr[i] += d * x[i];
            }
            if (dbias) { dbias[o] += d; }
        }
    }
}

// Causal self-attention. qkv (B,T,3C) holds q, k, v side by side; head h uses columns
// h*HS..h*HS+HS-1 of each. att (B,NH,T,T) keeps the softmax rows; out (B,T,C).
static inline void gpt2ref_attention_forward(double* out, double* att, const double* qkv,
                                             int B, int T, int C, int NH) {
    int HS = C / NH;
    double scale = 1.0 / sqrt((double)HS);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int t = 0; t < T; t++) {
                const double* q = qkv + ((size_t)b * T + t) * 3 * C + h * HS;
                double* row = att + (((size_t)b * NH + h) * T + t) * T; // (T)
                double mx = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++) {
                    const double* k = qkv + ((size_t)b * T + t2) * 3 * C + C + h * HS;
                    double s = 0.0;
                    for (int i = 0; i < HS; i++) { s += q[i] * k[i]; }
                    row[t2] = s * scale;
                    if (row[t2] > mx) { mx = row[t2]; }
                }
                double sum = 0.0;
                for (int t2 = 0; t2 <= t; t2++) {
                    row[t2] = exp(row[t2] - mx);
                    sum += row[t2];
                }
                for (int t2 = 0; t2 < T; t2++) { row[t2] = t2 <= t ? row[t2] / sum : 0.0; }
                double* y = out + ((size_t)b * T + t) * C + h * HS;
                for (int i = 0; i < HS; i++) { y[i] = 0.0; }
                for (int t2 = 0; t2 <= t; t2++) {
                    const double* v = qkv + ((size_t)b * T + t2) * 3 * C + 2 * C + h * HS;
                    for (int i = 0; i < HS; i++) { y[i] += row[t2] * v[i]; }
                }
            }
        }
    }
}

// dqkv (B,T,3C) += gradient through y = softmax(q k^T * scale) v, given dout (B,T,C).
// With p = softmax row and dp_j = dy . v_j: dscore_j = p_j (dp_j - sum_i p_i dp_i).
static inline void gpt2ref_attention_backward(double* dqkv, const double* dout, const double* qkv,
                                              const double* att, int B, int T, int C, int NH) {
    int HS = C / NH;
    double scale = 1.0 / sqrt((double)HS);
    double* dp = (double*)malloc_or_die((size_t)T * sizeof(double), "ref attention dp"); // (T)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int t = 0; t < T; t++) {
                const double* row = att + (((size_t)b * NH + h) * T + t) * T; // (T)
                const double* dy = dout + ((size_t)b * T + t) * C + h * HS;
                const double* q = qkv + ((size_t)b * T + t) * 3 * C + h * HS;
                double* dq = dqkv + ((size_t)b * T + t) * 3 * C + h * HS;
                double pdp = 0.0;
                for (int t2 = 0; t2 <= t; t2++) {
                    const double* v = qkv + ((size_t)b * T + t2) * 3 * C + 2 * C + h * HS;
                    double* dv = dqkv + ((size_t)b * T + t2) * 3 * C + 2 * C + h * HS;
                    dp[t2] = 0.0;
                    for (int i = 0; i < HS; i++) {
                        dp[t2] += dy[i] * v[i];
                        dv[i] += row[t2] * dy[i];
                    }
                    pdp += row[t2] * dp[t2];
                }
                for (int t2 = 0; t2 <= t; t2++) {
                    const double* k = qkv + ((size_t)b * T + t2) * 3 * C + C + h * HS;
                    double* dk = dqkv + ((size_t)b * T + t2) * 3 * C + C + h * HS;
                    double ds = row[t2] * (dp[t2] - pdp) * scale;
                    for (int i = 0; i < HS; i++) {
                        dq[i] += ds * k[i];
                        dk[i] += ds * q[i];
                    }
                }
            }
        }
    }
    free(dp);
}

#define GPT2REF_GELU_K 0.7978845608028654 // sqrt(2/pi)

// out = 0.5 x (1 + tanh(K (x + 0.044715 x^3))), n elements
static inline void gpt2ref_gelu_forward(double* out, const double* inp, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double x = inp[i];
        out[i] = 0.5 * x * (1.0 + tanh(GPT2REF_GELU_K * (x + 0.044715 * x * x * x)));
    }
}

static inline void gpt2ref_gelu_backward(double* dinp, const double* inp, const double* dout, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double x = inp[i];
        double th = tanh(GPT2REF_GELU_K * (x + 0.044715 * x * x * x));
        double du = GPT2REF_GELU_K * (1.0 + 3.0 * 0.044715 * x * x); // d(tanh argument)/dx
        dinp[i] += dout[i] * (0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * du);
    }
}

// ----------------------------------------------------------------------------
// Whole model.

static inline void gpt2ref_check_batch(const GPT2RefConfig* cfg, const GPT2RefActs* a,
                                       const int* tokens, const int* targets) {
    if (a->T > cfg->maxT) { die("reference: T=%d exceeds maxT=%d", a->T, cfg->maxT); }
    for (int i = 0; i < a->B * a->T; i++) {
        if (tokens[i] < 0 || tokens[i] >= cfg->V) { die("reference: input token %d at %d outside [0,%d)", tokens[i], i, cfg->V); }
        if (targets[i] < 0 || targets[i] >= cfg->V) { die("reference: target %d at %d outside [0,%d)", targets[i], i, cfg->V); }
    }
}

// Runs the model on tokens, targets (B,T) with B, T taken from acts. Returns the mean
// cross-entropy loss; acts->logits holds the (B,T,Vp) logits afterwards.
static inline double gpt2ref_forward(GPT2RefActs* a, const GPT2RefConfig* cfg, const double* params,
                                     const int* tokens, const int* targets) {
    gpt2ref_check_batch(cfg, a, tokens, targets);
    int B = a->B, T = a->T, C = cfg->C, NH = cfg->NH, V = cfg->V, Vp = cfg->Vp;
    size_t N = (size_t)B * T;
    // views only: the forward pass never writes the parameters
    GPT2RefParams p = gpt2ref_views(cfg, (double*)params);

    gpt2ref_encoder_forward(a->x, tokens, p.wte, p.wpe, B, T, C);
    for (int l = 0; l < cfg->L; l++) {
        const double* x = a->x + l * N * C;  // (N,C) layer input
        double* xout = a->x + (l + 1) * N * C; // (N,C) layer output
        double* ln1 = a->ln1 + l * N * C;      // (N,C)
        double* qkv = a->qkv + l * N * 3 * C;  // (N,3C)
        double* att = a->att + l * (size_t)B * NH * T * T; // (B,NH,T,T)
        double* atty = a->atty + l * N * C;    // (N,C)
        double* xmid = a->xmid + l * N * C;    // (N,C)
        double* ln2 = a->ln2 + l * N * C;      // (N,C)
        double* fch = a->fch + l * N * 4 * C;  // (N,4C)
        double* fchg = a->fch_gelu + l * N * 4 * C; // (N,4C)

        gpt2ref_layernorm_forward(ln1, a->ln1_mean + l * N, a->ln1_rstd + l * N, x,
                                  p.ln1w + l * C, p.ln1b + l * C, N, C);
        gpt2ref_matmul_forward(qkv, ln1, p.qkvw + (size_t)l * 3 * C * C, p.qkvb + l * 3 * C, N, C, 3 * C);
        gpt2ref_attention_forward(atty, att, qkv, B, T, C, NH);
        gpt2ref_matmul_forward(a->proj, atty, p.attprojw + (size_t)l * C * C, p.attprojb + l * C, N, C, C);
        for (size_t i = 0; i < N * C; i++) { xmid[i] = x[i] + a->proj[i]; }
        gpt2ref_layernorm_forward(ln2, a->ln2_mean + l * N, a->ln2_rstd + l * N, xmid,
                                  p.ln2w + l * C, p.ln2b + l * C, N, C);
        gpt2ref_matmul_forward(fch, ln2, p.fcw + (size_t)l * 4 * C * C, p.fcb + l * 4 * C, N, C, 4 * C);
        gpt2ref_gelu_forward(fchg, fch, N * 4 * C);
        gpt2ref_matmul_forward(a->proj, fchg, p.fcprojw + (size_t)l * C * 4 * C, p.fcprojb + l * C, N, 4 * C, C);
        for (size_t i = 0; i < N * C; i++) { xout[i] = xmid[i] + a->proj[i]; }
    }
    gpt2ref_layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, a->x + cfg->L * N * C, p.lnfw, p.lnfb, N, C);
    gpt2ref_matmul_forward(a->logits, a->lnf, p.wte, NULL, N, C, Vp); // tied weights

    // cross-entropy over the real vocabulary; padded columns take no part
    double loss = 0.0;
    for (size_t n = 0; n < N; n++) {
        const double* z = a->logits + n * Vp; // (Vp)
        double* pr = a->probs + n * Vp;       // (Vp)
        double mx = -INFINITY, sum = 0.0;
        for (int v = 0; v < V; v++) { if (z[v] > mx) { mx = z[v]; } }
        for (int v = 0; v < V; v++) { sum += exp(z[v] - mx); }
        for (int v = 0; v < Vp; v++) { pr[v] = v < V ? exp(z[v] - mx) / sum : 0.0; }
        loss += mx + log(sum) - z[targets[n]];
    }
    return loss / (double)N;
}

// Gradient of the mean loss w.r.t. every parameter, written to grads (flat, checkpoint
// order). Must follow gpt2ref_forward on the same params, tokens and targets.
static inline void gpt2ref_backward(const GPT2RefActs* a, const GPT2RefConfig* cfg, const double* params,
                                    const int* tokens, const int* targets, double* grads) {
    int B = a->B, T = a->T, C = cfg->C, NH = cfg->NH, V = cfg->V, Vp = cfg->Vp;
    size_t N = (size_t)B * T;
    GPT2RefParams p = gpt2ref_views(cfg, (double*)params);
    GPT2RefParams g = gpt2ref_views(cfg, grads);
    memset(grads, 0, gpt2ref_num_params(cfg) * sizeof(double));

    double* dlogits = (double*)malloc_or_die(N * Vp * sizeof(double), "ref dlogits"); // (N,Vp)
    double* dres = (double*)calloc_or_die(N * C, sizeof(double), "ref dres");       // (N,C) d loss / d residual stream
    double* dbuf = (double*)malloc_or_die(N * C * sizeof(double), "ref dbuf");      // (N,C)
    double* dbuf4a = (double*)malloc_or_die(N * 4 * C * sizeof(double), "ref dbuf4a"); // (N,4C)
    double* dbuf4b = (double*)malloc_or_die(N * 4 * C * sizeof(double), "ref dbuf4b"); // (N,4C)
    double* dqkv = (double*)malloc_or_die(N * 3 * C * sizeof(double), "ref dqkv");  // (N,3C)

    // d(mean loss)/d logit = (softmax - onehot) / N on the real columns, 0 on padded ones
    for (size_t n = 0; n < N; n++) {
        for (int v = 0; v < Vp; v++) {
            double d = v < V ? a->probs[n * Vp + v] - (v == targets[n] ? 1.0 : 0.0) : 0.0;
            dlogits[n * Vp + v] = d / (double)N;
        }
    }
    memset(dbuf, 0, N * C * sizeof(double));
    gpt2ref_matmul_backward(dbuf, g.wte, NULL, dlogits, a->lnf, p.wte, N, C, Vp);
    gpt2ref_layernorm_backward(dres, g.lnfw, g.lnfb, dbuf, a->x + cfg->L * N * C,
                               a->lnf_mean, a->lnf_rstd, p.lnfw, N, C);

    for (int l = cfg->L - 1; l >= 0; l--) {
        const double* x = a->x + l * N * C;        // (N,C) layer input
        const double* ln1 = a->ln1 + l * N * C;    // (N,C)
        const double* qkv = a->qkv + l * N * 3 * C; // (N,3C)
        const double* att = a->att + l * (size_t)B * NH * T * T; // (B,NH,T,T)
        const double* atty = a->atty + l * N * C;  // (N,C)
        const double* xmid = a->xmid + l * N * C;  // (N,C)
        const double* ln2 = a->ln2 + l * N * C;    // (N,C)
        const double* fch = a->fch + l * N * 4 * C; // (N,4C)
        const double* fchg = a->fch_gelu + l * N * 4 * C; // (N,4C)

        // MLP block: dres holds d loss / d layer output, which is also d / d fcproj output
        memset(dbuf4a, 0, N * 4 * C * sizeof(double));
        gpt2ref_matmul_backward(dbuf4a, g.fcprojw + (size_t)l * C * 4 * C, g.fcprojb + l * C, dres, fchg,
                                p.fcprojw + (size_t)l * C * 4 * C, N, 4 * C, C);
        memset(dbuf4b, 0, N * 4 * C * sizeof(double));
        gpt2ref_gelu_backward(dbuf4b, fch, dbuf4a, N * 4 * C);
        memset(dbuf, 0, N * C * sizeof(double));
        gpt2ref_matmul_backward(dbuf, g.fcw + (size_t)l * 4 * C * C, g.fcb + l * 4 * C, dbuf4b, ln2,
                                p.fcw + (size_t)l * 4 * C * C, N, C, 4 * C);
        // the residual branch adds to the skip path: dres becomes d loss / d xmid
        gpt2ref_layernorm_backward(dres, g.ln2w + l * C, g.ln2b + l * C, dbuf, xmid,
                                   a->ln2_mean + l * N, a->ln2_rstd + l * N, p.ln2w + l * C, N, C);

        // attention block
        memset(dbuf, 0, N * C * sizeof(double));
        gpt2ref_matmul_backward(dbuf, g.attprojw + (size_t)l * C * C, g.attprojb + l * C, dres, atty,
                                p.attprojw + (size_t)l * C * C, N, C, C);
        memset(dqkv, 0, N * 3 * C * sizeof(double));
        gpt2ref_attention_backward(dqkv, dbuf, qkv, att, B, T, C, NH);
        memset(dbuf, 0, N * C * sizeof(double));
        gpt2ref_matmul_backward(dbuf, g.qkvw + (size_t)l * 3 * C * C, g.qkvb + l * 3 * C, dqkv, ln1,
                                p.qkvw + (size_t)l * 3 * C * C, N, C, 3 * C);
        // dres becomes d loss / d layer input
        gpt2ref_layernorm_backward(dres, g.ln1w + l * C, g.ln1b + l * C, dbuf, x,
                                   a->ln1_mean + l * N, a->ln1_rstd + l * N, p.ln1w + l * C, N, C);
    }
    gpt2ref_encoder_backward(g.wte, g.wpe, dres, tokens, B, T, C);

    free(dlogits);
    free(dres);
    free(dbuf);
    free(dbuf4a);
    free(dbuf4b);
    free(dqkv);
}

// ----------------------------------------------------------------------------
// Checkpoints (llm.c layout): 256 int32 header, then every tensor in order as fp32
// (version 3) or bf16 (version 5, the upper 16 bits of the fp32 pattern).

// Loads path into a new array of doubles (caller frees) and fills cfg; dies on any mismatch.
static inline double* gpt2ref_load_checkpoint(const char* path, GPT2RefConfig* cfg) {
    FILE* f = fopen_or_die(path, "rb");
    int32_t h[256];
    fread_or_die(h, sizeof(int32_t), 256, f, path);
    if (h[0] != GPT2REF_MAGIC) { die("'%s': bad magic %d, expected %d (not a GPT-2 checkpoint)", path, h[0], GPT2REF_MAGIC); }
    if (h[1] != 3 && h[1] != 5) { die("'%s': unsupported version %d, expected 3 (fp32) or 5 (bf16)", path, h[1]); }
    cfg->maxT = h[2];
    cfg->V = h[3];
    cfg->L = h[4];
    cfg->NH = h[5];
    cfg->C = h[6];
    cfg->Vp = h[7];
    if (cfg->maxT <= 0 || cfg->V <= 0 || cfg->L <= 0 || cfg->NH <= 0 || cfg->C <= 0 || cfg->Vp <= 0) {
        die("'%s': sizes must be positive: maxT=%d V=%d L=%d NH=%d C=%d Vp=%d",
            path, cfg->maxT, cfg->V, cfg->L, cfg->NH, cfg->C, cfg->Vp);
    }
    if (cfg->Vp < cfg->V) { die("'%s': padded vocab Vp=%d is smaller than V=%d", path, cfg->Vp, cfg->V); }
    if (cfg->C % cfg->NH != 0) { die("'%s': C=%d is not a multiple of NH=%d", path, cfg->C, cfg->NH); }
    size_t n = gpt2ref_num_params(cfg);
    size_t elem = h[1] == 3 ? 4 : 2;
    long want = (long)(256 * sizeof(int32_t) + n * elem);
    long have = file_size_or_die(path);
    if (have != want) {
        die("'%s': file is %ld bytes, but a version %d checkpoint with %zu parameters takes %ld", path, have, h[1], n, want);
    }
    double* params = (double*)malloc_or_die(n * sizeof(double), "checkpoint params");
    if (h[1] == 3) {
        float* buf = (float*)malloc_or_die(n * sizeof(float), "checkpoint fp32 buffer");
        fread_or_die(buf, sizeof(float), n, f, path);
        for (size_t i = 0; i < n; i++) { params[i] = buf[i]; }
        free(buf);
    } else {
        uint16_t* buf = (uint16_t*)malloc_or_die(n * sizeof(uint16_t), "checkpoint bf16 buffer");
        fread_or_die(buf, sizeof(uint16_t), n, f, path);
        for (size_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)buf[i] << 16;
            float v;
            memcpy(&v, &bits, sizeof(v));
            params[i] = v;
        }
        free(buf);
    }
    fclose(f);
    return params;
}

// ----------------------------------------------------------------------------
// AdamW with global-norm clipping, as torch.optim.AdamW + clip_grad_norm_ compute it.

typedef struct {
    double lr, beta1, beta2, eps;
    double weight_decay; // decoupled, matrices only (gpt2ref_tensor_decays)
    double grad_clip;    // grads scaled by grad_clip/norm when the global norm exceeds it
} GPT2RefAdamW;

// One update of params with grads (left untouched); m, v (num_params) start at zero;
// step counts from 1. Returns the global gradient norm before clipping.
static inline double gpt2ref_adamw_step(const GPT2RefConfig* cfg, const GPT2RefAdamW* opt, double* params,
                                        const double* grads, double* m, double* v, int step) {
    size_t sizes[GPT2REF_NUM_TENSORS];
    size_t n = gpt2ref_tensor_sizes(cfg, sizes);
    double norm = 0.0;
    for (size_t i = 0; i < n; i++) { norm += grads[i] * grads[i]; }
    norm = sqrt(norm);
    double scale = norm > opt->grad_clip ? opt->grad_clip / norm : 1.0;
    double bc1 = 1.0 - pow(opt->beta1, step), bc2 = 1.0 - pow(opt->beta2, step);
    size_t j = 0;
    for (int t = 0; t < GPT2REF_NUM_TENSORS; t++) {
        double wd = gpt2ref_tensor_decays(t) ? opt->weight_decay : 0.0;
        for (size_t e = 0; e < sizes[t]; e++, j++) {
            double g = grads[j] * scale;
            m[j] = opt->beta1 * m[j] + (1.0 - opt->beta1) * g;
            v[j] = opt->beta2 * v[j] + (1.0 - opt->beta2) * g * g;
            double upd = (m[j] / bc1) / (sqrt(v[j] / bc2) + opt->eps);
            params[j] -= opt->lr * (upd + wd * params[j]);
        }
    }
    return norm;
}

#endif // GPT2_REF_H
