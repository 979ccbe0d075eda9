#!/usr/bin/env bash
# Per-GPU throughput on 1..N GPUs of one node: d12 (B=64) and d48 (B=16), T=1024, BF16 and FP8,
# the total batch growing with the ranks (no gradient accumulation). Prints one line per run.
# usage: DATA=dir scripts/scaling.sh "1 2 4" [extra trainer flags]
set -u
cd "$(dirname "$0")/.."
counts=${1:-"1 2"}; shift || true
data=${DATA:-data/debian_docs}
export NCCL_NVLS_ENABLE=0
root=(); [ "$(id -u)" = 0 ] && root=(--allow-run-as-root)
for model in d12 d48; do
    b=64; [ $model = d48 ] && b=16
    for prec in bf16 fp8; do
        for n in $counts; do
            out=$(timeout 300 mpirun "${root[@]}" -np "$n" --bind-to none -x NCCL_NVLS_ENABLE ./train_gpt2_$prec -e $model \
                  -i "$data/*train*.bin" -j "$data/*val*.bin" -b $b -t 1024 -d $((b * 1024 * n)) -x ${STEPS:-15} \
                  -v 0 -s 0 "$@" 2>&1 | grep '^average over')
            tok=$(echo "$out" | sed -E 's/.* ([0-9]+) tok\/s.*/\1/')
            printf '%-4s %-5s ranks=%d  %s  per GPU: %s tok/s\n' $model $prec "$n" "${out#average over }" "$((tok / n))"
        done
    done
done
