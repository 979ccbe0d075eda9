#!/usr/bin/env bash
# Several nodes with Open MPI and a hostfile (one line per node: "node1 slots=8").
# Every node needs the same trainer binary and data paths (a shared file system, or copies).
#   scripts/multinode_example.sh hosts.txt 16 ./train_gpt2_fp8 -e d48 -b 16 -d 1048576 -z 1 ...
# Environment a cluster user typically sets:
#   NCCL_SOCKET_IFNAME=eth0     the interface NCCL's bootstrap uses (and MPI's: btl_tcp_if_include)
#   NCCL_IB_HCA=mlx5            InfiniBand adapters to use; NCCL_IB_DISABLE=1 to force TCP
#   NCCL_DEBUG=INFO             what NCCL found (topology, transports) at start-up
#   NCCL_NVLS_ENABLE=0          NVLink multicast off (required on shared machines)
set -eu
hostfile=${1:?usage: multinode_example.sh HOSTFILE NRANKS TRAINER [flags]}; nranks=${2:?}; shift 2
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}
exec mpirun --hostfile "$hostfile" -np "$nranks" --map-by ppr:"${GPUS_PER_NODE:-8}":node --bind-to none \
    --mca btl_tcp_if_include "${NCCL_SOCKET_IFNAME:-eth0}" \
    -x NCCL_NVLS_ENABLE -x NCCL_SOCKET_IFNAME -x NCCL_IB_HCA -x NCCL_IB_DISABLE -x NCCL_DEBUG -x LD_LIBRARY_PATH -x PATH \
    "$@"
