#!/usr/bin/env bash
# Runs one model, seed and data in each precision mode and writes a table (tok/s, GPU memory,
# final train and val loss) and a picture of the loss curves.
# usage: scripts/compare_precisions.sh OUTDIR [MODE...]   MODE: bf16 fp8-delayed fp8-current
#   fp8-delayed-att8 fp8-current-att8 (FP8 attention too: every GEMM in FP8) mxfp8 mxfp8-native
#   nvfp4 (default: the first three). STEPS, DATA and the trainer flags of scripts/parity.sh apply; extra
#   trainer flags can be given in FLAGS.
set -eu
cd "$(dirname "$0")/.."
out=${1:?usage: compare_precisions.sh OUTDIR [MODE...]}; shift
modes=("$@"); [ ${#modes[@]} -gt 0 ] || modes=(bf16 fp8-delayed fp8-current)
mkdir -p "$out"
plots=()
printf '| mode | tok/s | GPU memory | final train loss | final val loss |\n| --- | --- | --- | --- | --- |\n' > "$out/table.md"
for mode in "${modes[@]}"; do
    case "$mode" in
        bf16) flags=(--precision bf16) ;;
        fp8-delayed) flags=(--precision fp8 --fp8-scaling delayed) ;;
        fp8-current) flags=(--precision fp8 --fp8-scaling current) ;;
        fp8-delayed-att8) flags=(--precision fp8 --fp8-scaling delayed --attention fp8) ;;
        fp8-current-att8) flags=(--precision fp8 --fp8-scaling current --attention fp8) ;;
        mxfp8) flags=(--precision mxfp8) ;;
        mxfp8-native) flags=(--precision mxfp8 --mx-gemm native) ;;
        nvfp4) flags=(--precision nvfp4) ;;
        *) echo "error: unknown mode '$mode'" >&2; exit 2 ;;
    esac
    run="$out/$mode"
    rm -rf "$run"
    # both trainers accept --precision; the FP8 trainer runs every mode so the binaries match
    scripts/parity.sh ./train_gpt2_fp8 "$run" "${flags[@]}" ${FLAGS:-} > "$out/$mode.txt" 2>&1
    python3 - "$run/log.jsonl" "$mode" >> "$out/table.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
train = [r for r in rows if "train_loss" in r]
val = [r for r in rows if "val_loss" in r]
toks = sorted(r["tok_s"] for r in train[1:])
print(f"| {sys.argv[2]} | {toks[len(toks) // 2]:.0f} | {train[-1]['mem_gib']:.2f} GiB | "
      f"{train[-1]['train_loss']:.4f} | {val[-1]['val_loss']:.4f} |")
PY
    plots+=("$mode=$run/log.jsonl")
done
python3 scripts/plot_losses.py "$out/losses.png" "${plots[@]}" || echo "(no matplotlib: no picture)"
cat "$out/table.md"
