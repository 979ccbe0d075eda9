// GPT-2 pretraining with FP8 GEMMs: every linear layer's forward, input-gradient and
// weight-gradient GEMMs in FP8 on Hopper tensor cores (E4M3 activations and weights, E5M2
// gradients, per-tensor delayed or current scaling), BF16 elsewhere, FP32 master weights.
// --precision bf16 runs the same binary with BF16 GEMMs, for comparisons.
#include "llmc/linear_fp8.cuh"
#include "llmc/trainer.cuh"

int main(int argc, char** argv) { return train_main(argc, argv); }
