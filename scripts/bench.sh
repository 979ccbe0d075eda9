#!/usr/bin/env bash
# Throughput benchmark at T=1024: d12 (B=64, or D12_B) and d48 (B=16, or D48_B), random init,
# on the shards in DATA (default data/debian_docs); MODELS="d12" (or "d48") runs one of them.
# Prints tok/s, ms/step, MFU and GPU memory; not a test.
# usage: scripts/bench.sh [TRAINER] [extra trainer flags...]
set -eu
cd "$(dirname "$0")/.."
bin=${1:-./train_gpt2_bf16}; shift || true
data=${DATA:-data/debian_docs}
steps=${STEPS:-30}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run() {  # run NAME MODEL B
    local name=$1 model=$2 b=$3
    shift 3
    "$bin" -e "$model" -i "$data/*train*.bin" -j "$data/*val*.bin" -b "$b" -t 1024 -x "$steps" \
        -v 0 -s 0 -l 1e-4 -u 0 "$@" > "$out/$name.txt" 2>&1 || { tail -5 "$out/$name.txt"; return 1; }
    local avg mfu
    avg=$(grep '^average over' "$out/$name.txt")
    mfu=$(grep -E '^step +[0-9]+/' "$out/$name.txt" | tail -n 1 | grep -o 'MFU [^ ]*')
    printf '%-6s B=%-3s %s | last step %s\n' "$name" "$b" "${avg#average over }" "$mfu"
    grep '^gemm tuning' "$out/$name.txt" | sed 's/^/       /' || true
}
echo "trainer: $bin   steps: $steps (first excluded)   $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
for m in ${MODELS:-d12 d48}; do
    case $m in
        d12) run d12 d12 "${D12_B:-64}" "$@" ;;
        d48) run d48 d48 "${D48_B:-16}" "$@" ;;
        *) echo "bench.sh: MODELS takes d12 and d48, not '$m'" >&2; exit 1 ;;
    esac
done
