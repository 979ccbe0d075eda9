#!/usr/bin/env bash
# One node, all its GPUs (or NGPU of them): one rank per GPU through mpirun.
# usage: NGPU=4 scripts/run_mpi.sh ./train_gpt2_bf16 [trainer flags...]
# Each rank picks its GPU from its node-local rank; NCCL's id travels over MPI.
set -eu
ngpu=${NGPU:-$(nvidia-smi -L | wc -l)}
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}   # NVLink multicast off on shared machines
root=(); [ "$(id -u)" = 0 ] && root=(--allow-run-as-root)
exec mpirun "${root[@]}" -np "$ngpu" --bind-to none -x NCCL_NVLS_ENABLE -x LD_LIBRARY_PATH -x PATH "$@"
