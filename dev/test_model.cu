// Whole-model GPU check, first half: runs a small GPT-2 (L=2, C=128, T=64) on one
// batch and writes what it computed for the references to compare against:
//   DIR/model.bin    the model, fp32 checkpoint (version 3) of the BF16 weights used
//   DIR/batch.bin    int32 B, T, inputs (B*T), targets (B*T)
//   DIR/gpu_out.bin  int64 header[8] {20261122, B, T, Vp, num_params, nsteps, 0, 0}, then float32
//                    logits (B*T*Vp), loss, grads (num_params), losses of nsteps AdamW steps
// dev/test_gpt2_cpu --compare DIR (fp64 C) and dev/torch_reference.py DIR (PyTorch) do the comparing.
// It also checks here that forward+backward is bit-for-bit deterministic.
#include "../llmc/linear_bf16.cuh"
#include "../llmc/gpt2.cuh"
#include "../llmc/checkpoint.h"
#include "../llmc/rand.h"

static int passed = 0, failed = 0;
static void check(int ok, const char* what) {
    printf("%s %s\n", ok ? "PASS" : "FAIL", what);
    if (ok) { passed++; } else { failed++; }
}

static void bf16_to_float(float* dst, const floatX* src, size_t n) {
    for (size_t i = 0; i < n; i++) { dst[i] = __bfloat162float(src[i]); }
}

// Gradient of the mean loss over the batch, as float, into grads_out (num_params).
static float forward_backward(GPT2* m, const int* in, const int* tg, int B, int T, floatX* grads_host) {
    gpt2_zero_grad(m);
    float loss = gpt2_forward(m, in, tg, B, T, 1.0f / (B * T));
    gpt2_backward(m, B, T, 1);
    cudaCheck(cudaMemcpy(grads_host, m->grads, m->num_params * sizeof(floatX), cudaMemcpyDeviceToHost));
    return loss;
}

int main(int argc, char** argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s OUTDIR\n", argv[0]); return 2; }
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) { printf("test_model: no GPU, skipped\n"); return 77; }
    const char* dir = argv[1];
    mkdir_p_or_die(dir);
    const int B = 4, T = 64, nsteps = 10;
    GPT2Config cfg = {64, 50257, 50304, 2, 2, 128};   // maxT, V, Vp, L, NH, C
    GPT2 m;
    LinearOptions lopt;
    linear_options_defaults(&lopt);
    MultiGpu one_rank;
    memset(&one_rank, 0, sizeof(one_rank));
    one_rank.nranks = one_rank.local_nranks = 1;
    gpt2_build(&m, &cfg, &lopt, &one_rank, 0);
    gpt2_alloc_activations(&m, B, T, 1);
    gpt2_init_random(&m, 1234);
    size_t n = m.num_params;
    // start the master weights from the BF16 values, so every reference starts where the GPU does
    floatX* pbf = (floatX*)malloc_or_die(n * sizeof(floatX), "params");
    float* pf = (float*)malloc_or_die(n * sizeof(float), "params");
    cudaCheck(cudaMemcpy(pbf, m.params, n * sizeof(floatX), cudaMemcpyDeviceToHost));
    bf16_to_float(pf, pbf, n);
    cudaCheck(cudaMemcpy(m.master, pf, n * sizeof(float), cudaMemcpyHostToDevice));

    char path[4096];
    int h[256];
    model_header_fill(h, &cfg, MODEL_VERSION_FP32);
    snprintf(path, sizeof(path), "%s/model.bin", dir);
    FILE* f = fopen_or_die(path, "wb");
    fwrite_or_die(h, sizeof(int), 256, f, path);
    fwrite_or_die(pf, sizeof(float), n, f, path);
    fclose_or_die(f, path);

    int* in = (int*)malloc_or_die(B * T * sizeof(int), "inputs");    // (B,T)
    int* tg = (int*)malloc_or_die(B * T * sizeof(int), "targets");   // (B,T)
    Rng rng;
    rng_seed(&rng, 7);
    for (int i = 0; i < B * T; i++) {
        // a small alphabet repeats tokens (exercises the grouped wte gradient); a few come from the whole vocabulary
        in[i] = (i % 5 == 0) ? (int)(rng_u64(&rng) % cfg.vocab_size) : (int)(rng_u64(&rng) % 50);
        tg[i] = (int)(rng_u64(&rng) % cfg.vocab_size);
    }
    snprintf(path, sizeof(path), "%s/batch.bin", dir);
    f = fopen_or_die(path, "wb");
    int bt[2] = {B, T};
    fwrite_or_die(bt, sizeof(int), 2, f, path);
    fwrite_or_die(in, sizeof(int), B * T, f, path);
    fwrite_or_die(tg, sizeof(int), B * T, f, path);
    fclose_or_die(f, path);

    // logits of a plain forward (the training forward overwrites them with their gradient)
    size_t nlog = (size_t)B * T * cfg.padded_vocab_size;
    float loss0 = gpt2_forward(&m, in, tg, B, T, 0.0f);
    floatX* lbf = (floatX*)malloc_or_die(nlog * sizeof(floatX), "logits");
    float* lf = (float*)malloc_or_die(nlog * sizeof(float), "logits");
    cudaCheck(cudaMemcpy(lbf, m.a.logits, nlog * sizeof(floatX), cudaMemcpyDeviceToHost));
    bf16_to_float(lf, lbf, nlog);

    floatX* g1 = (floatX*)malloc_or_die(n * sizeof(floatX), "grads");
    floatX* g2 = (floatX*)malloc_or_die(n * sizeof(floatX), "grads");
    float loss1 = forward_backward(&m, in, tg, B, T, g1);
    float loss2 = forward_backward(&m, in, tg, B, T, g2);
    check(loss0 == loss1 && loss1 == loss2, "loss identical across forward passes");
    check(memcmp(g1, g2, n * sizeof(floatX)) == 0, "gradients bit-identical across two backward passes");
    float* gf = (float*)malloc_or_die(n * sizeof(float), "grads");
    bf16_to_float(gf, g1, n);

    float losses[nsteps];
    for (int s = 0; s < nsteps; s++) {
        losses[s] = forward_backward(&m, in, tg, B, T, g2);
        float norm = gpt2_grad_norm(&m);
        float scale = norm > 1.0f ? 1.0f / norm : 1.0f;
        gpt2_update(&m, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, scale, s + 1, 99);
    }
    cudaCheck(cudaDeviceSynchronize());
    check(losses[nsteps - 1] < losses[0], "loss decreases over 10 AdamW steps on one batch");

    snprintf(path, sizeof(path), "%s/gpu_out.bin", dir);
    f = fopen_or_die(path, "wb");
    int64_t hdr[8] = {20261122, B, T, cfg.padded_vocab_size, (int64_t)n, nsteps, 0, 0};
    fwrite_or_die(hdr, sizeof(int64_t), 8, f, path);
    fwrite_or_die(lf, sizeof(float), nlog, f, path);
    fwrite_or_die(&loss0, sizeof(float), 1, f, path);
    fwrite_or_die(gf, sizeof(float), n, f, path);
    fwrite_or_die(losses, sizeof(float), nsteps, f, path);
    fclose_or_die(f, path);
    printf("test_model: loss %.6f, after %d steps %.6f; wrote %s/{model,batch,gpu_out}.bin\n", loss0, nsteps, losses[nsteps - 1], dir);
    printf("test_model: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
