#!/usr/bin/env bash
# Runs every test suite, CPU first, then GPU ones when a GPU is present, and adds up
# their "N passed, N failed" lines. The last line is the total.
set -u
cd "$(dirname "$0")/.."
total_pass=0; total_fail=0; skipped=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# suite NAME CMD...: runs CMD, takes the counts from its last "N passed, N failed" line.
# A suite that crashes without such a line counts as one failure.
suite() {
    local name=$1; shift
    echo "=== $name: $*"
    "$@" 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    local line
    line=$(grep -oE '[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [ -z "$line" ] && [ "$rc" = 0 ] && grep -q '^SKIPPED' "$log"; then
        skipped=$((skipped + 1)); return
    fi
    if [ -z "$line" ]; then
        echo "--- $name: no result line (exit $rc): counted as 1 failure"
        total_fail=$((total_fail + 1)); return
    fi
    local p f
    p=${line%% passed*}
    f=${line#*passed, }; f=${f%% failed*}
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi
    total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
}

suite "GPT-2 CPU reference (finite differences)" ./dev/test_gpt2_cpu
suite "data loader" ./dev/test_dataloader
suite "learning-rate schedules" ./dev/test_schedule
suite "FP8 formats and scaling, host reference (exhaustive)" ./dev/test_fp8_host
suite "MXFP8/NVFP4 formats, host reference" ./dev/test_mx_host
suite "MXFP8/NVFP4 host reference vs ml_dtypes" python3 dev/mx_mldtypes_check.py ./dev/test_mx_host
suite "Blackwell block-scale layout (cuBLASLt tiles), host reference" ./dev/test_mx_blackwell
if [ -x dev/test_sharding_mpi ] && command -v mpirun >/dev/null; then
    for n in 1 2 3 4 8; do
        suite "data sharding under MPI, $n ranks" mpirun --oversubscribe --allow-run-as-root -np $n ./dev/test_sharding_mpi
    done
else
    echo "=== data sharding under MPI: SKIPPED (no mpicc/mpirun)"; skipped=$((skipped + 1))
fi
suite "BF16 trainer flags and bad input" bash dev/test_cli.sh ./train_gpt2_bf16
suite "FP8 trainer flags and bad input" bash dev/test_cli.sh ./train_gpt2_fp8
suite "tokenizer and shards" make --no-print-directory test-data

if nvidia-smi -L >/dev/null 2>&1; then
    suite "kernels vs CPU reference" ./dev/test_kernels
    suite "FP8 attention vs fp64 reference and the BF16 kernel" ./dev/test_attention_fp8 --no-timing
    suite "QK-norm and residual kurtosis vs CPU reference" ./dev/test_act --no-timing
    out=$(mktemp -d)
    if python3 -c "import torch" >/dev/null 2>&1; then
        ./dev/test_kernels --dump-attention "$out" > /dev/null &&
        suite "fused attention vs PyTorch SDPA" python3 dev/attention_torch.py "$out"
    fi
    suite "model on GPU (determinism, writes reference files)" ./dev/test_model "$out"
    suite "model vs fp64 CPU reference" ./dev/test_gpt2_cpu --compare "$out"
    if python3 -c "import torch" >/dev/null 2>&1; then
        suite "model vs PyTorch" python3 dev/torch_reference.py "$out"
    else
        echo "=== model vs PyTorch: SKIPPED (no torch)"; skipped=$((skipped + 1))
    fi
    suite "BF16 trainer determinism and resume" bash dev/test_resume.sh ./train_gpt2_bf16 "$out/model.bin"
    suite "FP8 casts, GEMMs and scaling" ./dev/test_fp8 --no-timing
    suite "MXFP8/NVFP4 casts and dequantization" ./dev/test_mx --no-timing
    suite "MXFP8 GEMM (wgmma) vs fp64 reference" ./dev/test_mx_gemm --no-timing
    suite "MXFP8/NVFP4 linear layer: both GEMM paths, vs BF16" ./dev/test_mx_linear
    suite "Blackwell scale swizzle and NVFP4 tile-scale expansion kernels vs host" ./dev/test_mx_blackwell_gpu --swizzle
    suite "Blackwell cuBLASLt MXFP8/NVFP4 GEMMs vs fp64, NVFP4 native linear vs dequant (sm_100+)" ./dev/test_mx_blackwell_gpu --gemm
    if python3 -c "import ml_dtypes, numpy" >/dev/null 2>&1; then
        suite "FP8 host reference vs ml_dtypes" python3 dev/fp8_mldtypes_check.py ./dev/test_fp8_host
    else
        echo "=== FP8 host reference vs ml_dtypes: SKIPPED (no ml_dtypes)"; skipped=$((skipped + 1))
    fi
    suite "FP8 trainer determinism and resume" bash dev/test_resume.sh ./train_gpt2_fp8 "$out/model.bin"
    rm -rf "$out"
else
    echo "=== GPU tests SKIPPED: no GPU on this machine (nvidia-smi -L failed)."
    echo "    Run 'make test' on a GPU machine for the kernel, model, PyTorch and resume tests."
    skipped=$((skipped + 16))   # the GPU suites above
fi
echo
echo "$total_pass passed, $total_fail failed, $skipped skipped"
[ "$total_fail" = 0 ]
