#!/usr/bin/env bash
# Multi-GPU checks on a machine with >= 2 GPUs (not part of `make test`, which runs on one):
#  - 2 ranks with total batch D give, loss for loss, what 1 GPU gives with gradient accumulation
#    to the same D (BF16 tolerance), for -z 0, -z 1, and FP8 delayed scaling;
#  - -z 1 in FP8 with the weights gathered as FP8 codes: bit-identical to the BF16 gather;
#  - MFU is reported per GPU;
#  - a resume with another number of ranks is refused with a message;
#  - a rank killed mid-run ends the whole job within 60 s.
# usage: dev/test_multi_gpu.sh DATA_DIR [STEPS]
set -u
data=${1:?usage: test_multi_gpu.sh DATA_DIR [STEPS]}
steps=${2:-20}
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0   # never NVLink multicast on shared machines
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok() { if "$@"; then pass=$((pass + 1)); echo "PASS $desc"; else fail=$((fail + 1)); echo "FAIL $desc"; fi; }
mpi=(mpirun --allow-run-as-root --oversubscribe -x NCCL_NVLS_ENABLE -x LD_LIBRARY_PATH)
common=(-e d12 -i "$data/*train*.bin" -j "$data/*val*.bin" -b 8 -t 1024 -d 16384 -x "$steps"
        -l 6e-4 -u 5 -c 0.1 -v 0 -s 0 --seed 7)
losses() { grep -o '"step":[0-9]*,"train_loss":[^,]*' "$1/log.jsonl" | sed 's/.*train_loss"://'; }
# close LOSSES_A LOSSES_B TOL: every step's losses within TOL relative
close() {
    paste "$1" "$2" | awk -v tol="$3" '{ d = ($1 - $2) / $2; if (d < 0) d = -d; if (d > m) m = d; n++ }
        END { printf "  %d steps compared, max relative difference %.2e (tolerance %s)\n", n, m, tol; exit !(n > 0 && m <= tol) }'
}

for mode in bf16 bf16-z1 fp8; do
    trainer=./train_gpt2_bf16; extra=(); z=0
    case $mode in bf16-z1) z=1 ;; fp8) trainer=./train_gpt2_fp8; extra=(--precision fp8 --fp8-scaling delayed) ;; esac
    if [ ! -f "$tmp/one_${trainer##*_}/log.jsonl" ]; then
        "$trainer" "${common[@]}" "${extra[@]}" -o "$tmp/one_${trainer##*_}" > "$tmp/one_$mode.txt" 2>&1
    fi
    "${mpi[@]}" -np 2 "$trainer" "${common[@]}" "${extra[@]}" -z $z -o "$tmp/two_$mode" > "$tmp/two_$mode.txt" 2>&1
    losses "$tmp/one_${trainer##*_}" > "$tmp/l1"; losses "$tmp/two_$mode" > "$tmp/l2"
    desc="$mode: 2 GPUs (-z $z) match 1 GPU with gradient accumulation, loss for loss"
    ok close "$tmp/l1" "$tmp/l2" 0.01
    grep -E "^step +$steps/" "$tmp/two_$mode.txt" | tail -1
done

# MFU is per GPU: the step line's MFU over its tok/s per GPU is the same for 1 and 2 ranks
# (counting 2 ranks' tokens against 1 GPU's peak would double it)
last_step() { grep -E "^step +$steps/" "$1" | tail -1; }
mfu_per_gpu() {
    local a b
    a=$(last_step "$tmp/one_bf16.txt" | sed -E 's/.*\| ([0-9]+) tok\/s \| MFU ([0-9.]+)%.*/\1 \2/')
    b=$(last_step "$tmp/two_bf16.txt" | sed -E 's/.*\| ([0-9]+) tok\/s \| MFU ([0-9.]+)%.*/\1 \2/')
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
        if (x[1] <= 0 || y[1] <= 0 || x[2] <= 0) exit 1;
        r = (y[2] / (y[1] / 2)) / (x[2] / x[1]);
        printf "  MFU per (tok/s per GPU): 2 ranks / 1 rank = %.3f (1 GPU %s%%, 2 GPUs %s%%)\n", r, x[2], y[2];
        exit !(r > 0.95 && r < 1.05) }'
}
desc="2 GPUs report MFU per GPU"; ok mfu_per_gpu

# -z 1 in FP8: weights gathered as FP8 codes give the run of a BF16 all-gather plus local casts,
# bit for bit (train and val losses; validation exercises the BF16 sync between steps)
if [ -x dev/test_zero_gather ]; then
    desc="FP8 weight gather: codes, scales and BF16 tensors equal the BF16 gather's (dev/test_zero_gather)"
    ok "${mpi[@]}" -np 2 ./dev/test_zero_gather --no-timing
fi
fp8_losses() { grep -o '"train_loss":[^,]*\|"val_loss":[^}]*' "$1/log.jsonl"; }
for rec in delayed current; do
    for g in 0 1; do
        "${mpi[@]}" -np 2 ./train_gpt2_fp8 "${common[@]}" --fp8-scaling $rec -z 1 -v 5 -m 4 --zero-fp8-gather $g \
            -o "$tmp/gather${g}_$rec" > "$tmp/gather${g}_$rec.txt" 2>&1
    done
    fp8_losses "$tmp/gather0_$rec" > "$tmp/g0"; fp8_losses "$tmp/gather1_$rec" > "$tmp/g1"
    desc="fp8 $rec -z 1: FP8 weight gather bit-identical to BF16 gather ($(wc -l < "$tmp/g1") losses)"
    ok sh -c "[ -s '$tmp/g1' ] && cmp -s '$tmp/g0' '$tmp/g1'"
done
losses "$tmp/one_fp8" > "$tmp/l1"; losses "$tmp/gather1_delayed" > "$tmp/l2"
desc="fp8 -z 1 with FP8 weight gather: 2 GPUs match 1 GPU with gradient accumulation"
ok close "$tmp/l1" "$tmp/l2" 0.01

# ZeRO-1 and replicated optimizer on 2 GPUs: the same run up to BF16 rounding of the reductions
losses "$tmp/two_bf16" > "$tmp/a"; losses "$tmp/two_bf16-z1" > "$tmp/b"
desc="2 GPUs: -z 1 matches -z 0"; ok close "$tmp/a" "$tmp/b" 0.01

# a checkpoint of 2 ranks resumed by 1 is refused
"${mpi[@]}" -np 2 ./train_gpt2_bf16 "${common[@]}" -x 4 -u 1 -n 2 -o "$tmp/ck" > "$tmp/ck.txt" 2>&1
./train_gpt2_bf16 "${common[@]}" -x 4 -u 1 -o "$tmp/ck" -y 1 > "$tmp/ck1.txt" 2>&1; rc=$?
desc="resume with another number of ranks: refused with a message"
ok sh -c "[ $rc != 0 ] && grep -q 'written by 2 ranks' '$tmp/ck1.txt'"

# kill one rank: the job ends within 60 s
"${mpi[@]}" -np 2 ./train_gpt2_bf16 "${common[@]}" -x 100000 --comm-timeout 30 > "$tmp/kill.txt" 2>&1 &
job=$!
for _ in $(seq 300); do grep -qE "^step +5/" "$tmp/kill.txt" && break; sleep 1; done
victim=$(pgrep -f "train_gpt2_bf16 -e d12" | tail -n 1)
t0=$(date +%s)
kill -9 "$victim"
for _ in $(seq 90); do kill -0 $job 2>/dev/null || break; sleep 1; done
elapsed=$(( $(date +%s) - t0 ))
kill -9 $job 2>/dev/null; pkill -9 -f "train_gpt2_bf16 -e d12" 2>/dev/null
echo "  job ended ${elapsed} s after one rank was killed"
desc="a killed rank ends the job within 60 s"; ok test "$elapsed" -le 60

if [ "$fail" != 0 ]; then for f in "$tmp"/*.txt; do echo "== $f"; tail -8 "$f"; done; fi
echo "multi-GPU: $pass passed, $fail failed"
[ "$fail" = 0 ]
