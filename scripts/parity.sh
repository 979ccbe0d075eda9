#!/usr/bin/env bash
# The parity protocol every precision is compared with: d12 on debian_docs, lr 6e-4,
# 100 warmup steps, cosine to 10%, weight decay 0.1, B=32, T=1024, 32,768 tokens a step,
# 1,000 steps, validation every 100 steps over the whole val shard.
# usage: scripts/parity.sh TRAINER OUTDIR [extra trainer flags...]
set -eu
bin=${1:?usage: parity.sh TRAINER OUTDIR [flags]}; out=${2:?usage: parity.sh TRAINER OUTDIR [flags]}; shift 2
data=${DATA:-data/debian_docs}
"$bin" -e d12 -i "$data/*train*.bin" -j "$data/*val*.bin" -o "$out" \
    -b 32 -t 1024 -d 32768 -x "${STEPS:-1000}" -k cosine -l 6e-4 -u 100 -q 0.1 -c 0.1 \
    -v 100 -m -1 -s 0 -n 0 --seed 1337 "$@"
