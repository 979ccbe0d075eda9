#!/usr/bin/env bash
# GPU test of the trainer as a whole: same flags give bit-identical runs, and a run
# resumed from a checkpoint continues bit for bit (losses and final weights) like the
# uninterrupted one. Also: a resume with another batch shape is refused; --qk-norm,
# --act-stats and --profile runs; in the FP8 trainer, FP8 attention and the MXFP8 and NVFP4
# modes.
# usage: dev/test_resume.sh TRAINER MODEL_FILE   (MODEL_FILE: a small model, maxT >= 64)
set -u
bin=${1:?usage: test_resume.sh TRAINER MODEL_FILE}
model=${2:?usage: test_resume.sh TRAINER MODEL_FILE}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok() { if "$@"; then pass=$((pass + 1)); echo "PASS $desc"; else fail=$((fail + 1)); echo "FAIL $desc"; fi; }

here=$(dirname "$0")
python3 "$here/make_shard.py" "$tmp/t_train_000001.bin" 100000 --seed 1
python3 "$here/make_shard.py" "$tmp/t_train_000002.bin" 60000 --seed 2
python3 "$here/make_shard.py" "$tmp/t_val_000000.bin" 20000 --seed 3
args=(-e "$model" -i "$tmp/t_train_*.bin" -j "$tmp/t_val_*.bin" -b 4 -t 64 -d 512 -x 12 -n 6
      -v 6 -m 4 -s 0 -l 1e-3 -u 2 -q 0.1 -c 0.1 --seed 5)

# run_case DIR FLAGS...: the 12-step run with FLAGS into $tmp/DIR; exit status in rc, its train
# losses one per line in $tmp/DIR.losses
run_case() {
    local d=$1; shift
    "$bin" "${args[@]}" "$@" -o "$tmp/$d" > "$tmp/$d.txt" 2>&1; rc=$?
    grep -o '"train_loss":[^,]*' "$tmp/$d/log.jsonl" 2>/dev/null | cut -d: -f2 > "$tmp/$d.losses"
}
# resume_case DIR NAME REFUSED FLAGS...: DIR's run resumed from its step-6 checkpoint with FLAGS
# ends with the same model bit for bit; with REFUSED (a pattern), a resume without FLAGS is
# refused with a message matching it
resume_case() {
    local d=$1 name=$2 refused=$3; shift 3
    mkdir -p "$tmp/${d}_r"
    cp "$tmp/$d/model_00000006.bin" "$tmp/$d/state_00000006_00000.bin" "$tmp/$d/DONE_00000006" "$tmp/${d}_r/"
    "$bin" "${args[@]}" "$@" -o "$tmp/${d}_r" -y 1 > "$tmp/${d}_r.txt" 2>&1
    desc="$name: resumed run's final model bit-identical"
    ok cmp -s "$tmp/$d/model_00000012.bin" "$tmp/${d}_r/model_00000012.bin"
    if [ -n "$refused" ]; then
        "$bin" "${args[@]}" -o "$tmp/${d}_r" -y 1 > "$tmp/${d}_refused.txt" 2>&1; local rcr=$?
        desc="resume of a $name run without it is refused with a message"
        ok sh -c "[ $rcr != 0 ] && grep -q '$refused' '$tmp/${d}_refused.txt'"
    fi
}
# trained RC LOSSES [OTHER]: exit status 0 and 12 finite losses (which differ from OTHER's)
trained() {
    [ "$1" = 0 ] && [ "$(grep -cE '^-?[0-9.]+(e[-+]?[0-9]+)?$' "$2")" = 12 ] || return 1
    [ $# -lt 3 ] || ! cmp -s "$2" "$3"
}

"$bin" "${args[@]}" -o "$tmp/A" > "$tmp/A.txt" 2>&1; rcA=$?
desc="uninterrupted run exits 0"; ok test $rcA = 0
"$bin" "${args[@]}" -o "$tmp/A2" > "$tmp/A2.txt" 2>&1
desc="same flags, same seed: identical final model file"; ok cmp -s "$tmp/A/model_00000012.bin" "$tmp/A2/model_00000012.bin"
desc="same flags, same seed: identical log of losses"
ok cmp -s <(grep -v '"ms"' "$tmp/A/log.jsonl" | grep -v checkpoint) <(grep -v '"ms"' "$tmp/A2/log.jsonl" | grep -v checkpoint)

"$bin" "${args[@]}" --profile 1 -o "$tmp/P" > "$tmp/P.txt" 2>&1; rcP=$?
desc="--profile 1: exits 0 and prints the per-section table of the 11 steps after the first"
ok sh -c "[ $rcP = 0 ] && grep -q '^GPU time per step over 11 profiled steps' '$tmp/P.txt' &&
          grep -q '^attention  *forward' '$tmp/P.txt' && grep -q '^qkv  *fprop gemm' '$tmp/P.txt'"
desc="--profile 1: identical final model file (timing changes no result)"
ok cmp -s "$tmp/A/model_00000012.bin" "$tmp/P/model_00000012.bin"

mkdir -p "$tmp/B"
cp "$tmp/A/model_00000006.bin" "$tmp/A/state_00000006_00000.bin" "$tmp/A/DONE_00000006" "$tmp/B/"
"$bin" "${args[@]}" -o "$tmp/B" -y 1 > "$tmp/B.txt" 2>&1; rcB=$?
desc="resumed run exits 0 and says it resumed"; ok grep -q "continuing from step 6" "$tmp/B.txt"
desc="resumed run: final model file bit-identical to the uninterrupted run"
ok cmp -s "$tmp/A/model_00000012.bin" "$tmp/B/model_00000012.bin"
losses() { grep -o '"step":[0-9]*,"train_loss":[^,]*' "$1" | awk -F'[:,]' '$2 > 6'; }
desc="resumed run: train losses of steps 7..12 identical"
ok cmp -s <(losses "$tmp/A/log.jsonl") <(losses "$tmp/B/log.jsonl")
desc="resumed run: 6 loss lines compared"; ok test "$(losses "$tmp/B/log.jsonl" | wc -l)" = 6

# a half-written checkpoint (no DONE marker) is ignored: resume picks the last complete one
mkdir -p "$tmp/C"
cp "$tmp/A/model_00000006.bin" "$tmp/A/state_00000006_00000.bin" "$tmp/A/DONE_00000006" "$tmp/C/"
head -c 5000 "$tmp/A/model_00000012.bin" > "$tmp/C/model_00000012.bin"
"$bin" "${args[@]}" -o "$tmp/C" -y 1 > "$tmp/C.txt" 2>&1
desc="checkpoint without DONE marker is skipped"; ok grep -q "continuing from step 6" "$tmp/C.txt"

"$bin" "${args[@]}" -o "$tmp/B" -y 1 -b 2 > "$tmp/D.txt" 2>&1; rcD=$?
desc="resume with another -b is refused with a message"
ok sh -c "[ $rcD != 0 ] && grep -q 'resume:.*-b 4' '$tmp/D.txt'"

# --qk-norm and --act-stats: a run trains to finite losses that differ from the plain run's,
# logs one kurtosis per block, resumes bit for bit, and a resume without --qk-norm is refused
qk=(--qk-norm 1 --qk-scale 0.2 --act-stats 3)
run_case Q "${qk[@]}"; rcQ=$rc
grep -o '"train_loss":[^,]*' "$tmp/A/log.jsonl" | cut -d: -f2 > "$tmp/A.losses"
desc="--qk-norm 1: run exits 0 with 12 finite losses, not the plain run's"
ok trained $rcQ "$tmp/Q.losses" "$tmp/A.losses"
desc="--act-stats 3: a finite kurtosis >= 1 for every block at steps 1, 4, 7, 10"
ok python3 - "$tmp/Q/log.jsonl" <<'PY'
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"kurtosis"' in l]
ok = [r["step"] for r in rows] == [1, 4, 7, 10] and all(math.isfinite(k) and k >= 1 for r in rows for k in r["kurtosis"])
ok = ok and len({len(r["kurtosis"]) for r in rows}) == 1
sys.exit(0 if ok else 1)
PY
resume_case Q "--qk-norm 1" 'resume:.*--qk-norm 1' "${qk[@]}"

# --gemm-tune 2 (every GEMM timed, even these small ones): trains, says what it chose, and a
# resume takes the choices from the checkpoint (times nothing) and continues bit for bit
run_case G --gemm-tune 2; rcG=$rc
tuned_run() { trained $rcG "$tmp/G.losses" && grep -q '^gemm tuning: [1-9][0-9]* GEMM shapes timed' "$tmp/G.txt" &&
              grep -q '"gemm_tuning"' "$tmp/G/log.jsonl"; }
desc="--gemm-tune 2: run exits 0 with 12 finite losses and reports its tuning"; ok tuned_run
resume_case G "--gemm-tune 2" "" --gemm-tune 2
untimed_resume() { grep -q 'continuing from step 6' "$tmp/G_r.txt" && ! grep -q '^gemm tuning' "$tmp/G_r.txt"; }
desc="--gemm-tune 2: the resumed run takes the checkpoint's choices and times no GEMM"; ok untimed_resume

# FP8 attention (FP8 trainer): finite losses, not the BF16-attention run's; per-layer attention
# tensors in the --fp8-stats lines; resumes bit for bit; a resume without it is refused
if [[ "$bin" == *fp8* ]]; then
    att=(--attention fp8 --fp8-stats 3)
    run_case F "${att[@]}"; rcF=$rc
    desc="--attention fp8: run exits 0 with 12 finite losses, not the BF16-attention run's"
    ok trained $rcF "$tmp/F.losses" "$tmp/A.losses"
    desc="--attention fp8 --fp8-stats 3: amax and scale of every layer's q, k, v, dout, ds in a stats step"
    ok python3 - "$tmp/F/log.jsonl" <<'PY'
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"fp8_tensor":"att.' in l]
first = {r["fp8_tensor"] for r in rows if r["step"] == min(r["step"] for r in rows)} if rows else set()
layers = {n.split(".")[1] for n in first}
ok = len(layers) >= 1 and first == {"att.%s.%s" % (l, t) for l in layers for t in ("q", "k", "v", "dout", "ds")}
ok = ok and all(math.isfinite(r["amax"]) and r["amax"] > 0 and r["scale"] > 0 for r in rows)
ok = ok and all(("saturated" in r) == (not r["fp8_tensor"].endswith(".ds")) for r in rows)
sys.exit(0 if ok else 1)
PY
    resume_case F "--attention fp8" 'resume:.*--attention' "${att[@]}"

    # block-scaled modes resume bit for bit too: NVFP4's seeds come from the checkpointed count
    # of stochastic-rounding casts, which the validation forwards (run again at the resumed
    # step) leave alone, and the kept inputs live from a forward to its backward only
    for mx in mxfp8 nvfp4; do
        run_case "X$mx" --precision $mx
        desc="--precision $mx: run exits 0 with 12 finite losses"; ok trained $rc "$tmp/X$mx.losses"
        resume_case "X$mx" "--precision $mx" "" --precision $mx
    done
fi

# a NaN in the weights: the run stops at the first step with a message, before any update
python3 - "$model" "$tmp/nan_model.bin" <<'PY'
import struct, sys
data = bytearray(open(sys.argv[1], "rb").read())
assert struct.unpack_from("<i", data, 4)[0] == 3, "expects an fp32 (version 3) model file"
struct.pack_into("<f", data, len(data) - 4 * 200, float("nan"))   # inside lnfw/lnfb
open(sys.argv[2], "wb").write(data)
PY
"$bin" "${args[@]}" -e "$tmp/nan_model.bin" -o "$tmp/N" > "$tmp/N.txt" 2>&1; rcN=$?
desc="NaN loss stops the run with exit 3 and a message"
ok sh -c "[ $rcN = 3 ] && grep -q 'non-finite' '$tmp/N.txt'"

# out of memory: a clear message with the size asked for, no fallback
"$bin" -e d48 -i "$tmp/t_train_*.bin" -j "$tmp/t_val_*.bin" -b 4096 -t 16 -x 1 -v 0 -s 0 > "$tmp/M.txt" 2>&1; rcM=$?
desc="out of GPU memory: exit 1 naming the buffer and the GiB asked for"
ok sh -c "[ $rcM = 1 ] && grep -q 'out of GPU memory: activations.*GiB' '$tmp/M.txt'"

if [ "$fail" != 0 ]; then for f in "$tmp"/*.txt; do echo "== $f"; tail -20 "$f"; done; fi
echo "resume: $pass passed, $fail failed"
[ "$fail" = 0 ]
