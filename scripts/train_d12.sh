#!/usr/bin/env bash
# From a fresh checkout to a training GPT-2 d12 (124M): builds, makes the default dataset
# (debian_docs, offline) when no shards are there, then trains with the parity protocol's
# settings. Extra flags go to the trainer, e.g. scripts/train_d12.sh -x 200 -o runs/d12
# TRAINER=./train_gpt2_fp8 picks another trainer.
set -eu
cd "$(dirname "$0")/.."
if [ ! -f /usr/include/pcre2.h ]; then
    echo "installing libpcre2-dev (the tokenizer's regex library)"
    sudo=${SUDO:-$( [ "$(id -u)" = 0 ] || echo sudo )}
    $sudo apt-get update -qq && $sudo apt-get install -y libpcre2-dev
fi
make -j"$(nproc)" all
data=${DATA:-data/debian_docs}
if ! ls "$data"/*train*.bin >/dev/null 2>&1; then data/prepare.sh debian_docs; fi
trainer=${TRAINER:-./train_gpt2_bf16}
exec "$trainer" -e d12 -i "$data/*train*.bin" -j "$data/*val*.bin" -o "${OUTDIR:-runs/d12}" \
    -b 32 -t 1024 -d 32768 -x 1000 -k cosine -l 6e-4 -u 100 -q 0.1 -c 0.1 -v 100 -m -1 -s 200 -n 500 "$@"
