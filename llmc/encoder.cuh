// Token + position embedding: forward, and a deterministic backward.
// The wte gradient is a scatter-add over positions that share a token; instead of
// float atomics (order-dependent, so not bit-reproducible) the host groups the
// positions by token and each block sums one group in a fixed order.
#ifndef LLMC_ENCODER_CUH
#define LLMC_ENCODER_CUH

#include "cuda_common.h"

// out (B,T,C) = wte[inp[b,t]] (Vp,C) + wpe[t] (maxT,C); one thread per 8 channels
__global__ void encoder_forward_kernel(floatX* out, const int* inp, const floatX* wte, const floatX* wpe,
                                       int BT, int T, int C) {
    long i = ((long)blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (i >= (long)BT * C) { return; }
    int bt = (int)(i / C), c = (int)(i % C), t = bt % T;
    x8 a = load16(wte + (long)inp[bt] * C + c);
    x8 p = load16(wpe + (long)t * C + c);
    x8 o;
    for (int k = 0; k < 8; k++) { o.v[k] = __float2bfloat16_rn(__bfloat162float(a.v[k]) + __bfloat162float(p.v[k])); }
    store16(out + i, o);
}

// Positions grouped by token, built on the host from the micro-batch's tokens.
typedef struct {
    int num_groups;    // distinct tokens in the batch
    int* group_token;  // (num_groups) the token of each group
    int* group_start;  // (num_groups+1) offsets into position
    int* position;     // (B*T) flat positions b*T+t, grouped by token, ascending within a group
} TokenGroups;

// Counting sort of positions by token id; `count` is scratch of vocab_size ints.
static inline void token_groups_build(TokenGroups* g, const int* tokens, int BT, int vocab_size, int* count) {
    memset(count, 0, sizeof(int) * vocab_size);
    for (int i = 0; i < BT; i++) { count[tokens[i]]++; }
    int ng = 0, off = 0;
    for (int v = 0; v < vocab_size; v++) {
        if (count[v] == 0) { continue; }
        g->group_token[ng] = v;
        g->group_start[ng] = off;
        int n = count[v];
        count[v] = off;  // becomes the write cursor
        off += n;
        ng++;
    }
    g->group_start[ng] = off;
    g->num_groups = ng;
    for (int i = 0; i < BT; i++) { g->position[count[tokens[i]]++] = i; }
}

#define ENC_ROW_THREADS 8   // a group's positions are split among 8 rows of threads (frequent tokens are long groups)

// dwte[token] += sum over the group's positions of dout; grid (num_groups, ceil(C/256)), block
// (32, ENC_ROW_THREADS): each thread sums every 8th position of the group for 8 channels, and
// the 8 partial sums are added in a fixed order.
__global__ void encoder_backward_wte_kernel(floatX* dwte, const floatX* dout, const int* group_token,
                                            const int* group_start, const int* position, int C) {
    __shared__ float part[ENC_ROW_THREADS][256];
    int g = blockIdx.x;
    int c = blockIdx.y * 256 + threadIdx.x * 8;
    float acc[8] = {0};
    if (c < C) {
        for (int p = group_start[g] + threadIdx.y; p < group_start[g + 1]; p += ENC_ROW_THREADS) {
            x8 d = load16(dout + (long)position[p] * C + c);
            for (int k = 0; k < 8; k++) { acc[k] += __bfloat162float(d.v[k]); }
        }
    }
    for (int k = 0; k < 8; k++) { part[threadIdx.y][threadIdx.x * 8 + k] = acc[k]; }
    __syncthreads();
    if (threadIdx.y != 0 || c >= C) { return; }
    for (int y = 1; y < ENC_ROW_THREADS; y++) {
        for (int k = 0; k < 8; k++) { acc[k] += part[y][threadIdx.x * 8 + k]; }
    }
    floatX* w = dwte + (long)group_token[g] * C + c;
    x8 cur = load16(w);
    for (int k = 0; k < 8; k++) { cur.v[k] = __float2bfloat16_rn(__bfloat162float(cur.v[k]) + acc[k]); }
    store16(w, cur);
}

// dwpe[t] += sum over b of dout[b,t]; one thread per 8 channels of one t
__global__ void encoder_backward_wpe_kernel(floatX* dwpe, const floatX* dout, int B, int T, int C) {
    long i = ((long)blockIdx.x * blockDim.x + threadIdx.x) * 8;
    if (i >= (long)T * C) { return; }
    float acc[8] = {0};
    for (int b = 0; b < B; b++) {
        x8 d = load16(dout + (long)b * T * C + i);
        for (int k = 0; k < 8; k++) { acc[k] += __bfloat162float(d.v[k]); }
    }
    x8 cur = load16(dwpe + i);
    for (int k = 0; k < 8; k++) { cur.v[k] = __float2bfloat16_rn(__bfloat162float(cur.v[k]) + acc[k]); }
    store16(dwpe + i, cur);
}

static inline void encoder_forward(floatX* out, const int* inp, const floatX* wte, const floatX* wpe,
                                   int B, int T, int C, cudaStream_t s) {
    long n8 = (long)B * T * C / 8;
    encoder_forward_kernel<<<ceil_div(n8, 256), 256, 0, s>>>(out, inp, wte, wpe, B * T, T, C);
    cudaCheckLaunch();
}

// groups_dev: device copies of a TokenGroups built for this micro-batch
static inline void encoder_backward(floatX* dwte, floatX* dwpe, const floatX* dout, const TokenGroups* groups_dev,
                                    int B, int T, int C, cudaStream_t s) {
    dim3 grid(groups_dev->num_groups, ceil_div(C, 256));
    encoder_backward_wte_kernel<<<grid, dim3(32, ENC_ROW_THREADS), 0, s>>>(dwte, dout, groups_dev->group_token,
                                                         groups_dev->group_start, groups_dev->position, C);
    cudaCheckLaunch();
    encoder_backward_wpe_kernel<<<ceil_div((long)T * C / 8, 256), 256, 0, s>>>(dwpe, dout, B, T, C);
    cudaCheckLaunch();
}

#endif // LLMC_ENCODER_CUH
