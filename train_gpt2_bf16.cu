// GPT-2 pretraining in BF16: BF16 weights, activations and gradients, FP32
// accumulation, FP32 master weights. All GEMMs through cuBLASLt.
#include "llmc/linear_bf16.cuh"
#include "llmc/trainer.cuh"

int main(int argc, char** argv) { return train_main(argc, argv); }
