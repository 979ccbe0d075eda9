// GPT-2 pretraining in BF16: BF16 weights, activations and gradients, FP32
// accumulation, FP32 master weights. All GEMMs through cuBLASLt.
#include "llmc/linear_bf16.cuh"
#include "llmc/trainer.cuh"

// The BF16 trainer takes --precision bf16 so run scripts can pass the flag to every trainer.
static int bf16_extra_flag(const char* flag, const char* value, void* ctx) {
    (void)ctx;
    if (strcmp(flag, "--precision") != 0) { return 0; }
    if (strcmp(value, "bf16") != 0) { flag_error(flag, value, "this is the BF16 trainer; use train_gpt2_fp8 for other precisions"); }
    return 1;
}

static void bf16_extra_help(void) {
    printf("  --precision bf16   accepted for symmetry with train_gpt2_fp8\n");
}

int main(int argc, char** argv) {
    return train_main(argc, argv, bf16_extra_flag, NULL, bf16_extra_help);
}
