#!/usr/bin/env bash
# Encoding speed and output of our tokenizer against tiktoken's gpt2 encoding,
# on the same documents (decoded from token shards).
#
# usage: data/bench_tokenizer.sh VOCAB_DIR SHARD... [--threads N] [--repeat R]
#   VOCAB_DIR  holds encoder.json and vocab.bpe (e.g. data/vocab); tiktoken is
#              given the same two files through its TIKTOKEN_CACHE_DIR, so it
#              needs no network
#   SHARD      llm.c token shards (e.g. data/debian_docs/debian_docs_val_000000.bin)
#   --threads  the multi-threaded runs (default: all CPUs); --repeat: best of R (default 3)
# Needs python3 with tiktoken, and gcc with libpcre2-dev or a prebuilt data/tokenize.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
vocab=$1
shift
shards=()
threads=$(nproc)
repeat=3
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) threads=$2; shift 2 ;;
        --repeat) repeat=$2; shift 2 ;;
        *) shards+=("$1"); shift ;;
    esac
done
python3 -c 'import tiktoken' 2>/dev/null || { echo "error: python3 with tiktoken is needed" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A machine without libpcre2-dev cannot build; it can run a data/tokenize built
# elsewhere (plain -O3, any x86-64) as long as it has libpcre2-8.so.0.
if ! make -s -f data/data.mk data/tokenize 2>"$tmp/build.log"; then
    if [ -x data/tokenize ] && data/tokenize --help >/dev/null 2>&1; then
        echo "note: cannot build data/tokenize here ($(grep -m1 -i error "$tmp/build.log")); using the one present" >&2
    else
        cat "$tmp/build.log" >&2
        echo "error: cannot build data/tokenize (install libpcre2-dev, or bring a data/tokenize built elsewhere)" >&2
        exit 1
    fi
fi
data/tokenize docs --vocab "$vocab" --out "$tmp/docs.jsonl" "${shards[@]}"

# ours: "bench: D documents, B bytes, N tokens, T threads, best of R: S s, X MB/s, Y tokens/s"
ours() {
    data/tokenize bench --vocab "$vocab" --threads "$1" --repeat "$repeat" --ids-out "$tmp/ours_$1.ids" "$tmp/docs.jsonl" |
        sed -E 's/.* ([0-9]+) threads, best of [0-9]+: ([0-9.]+) s, ([0-9.]+) MB\/s, ([0-9]+) tokens\/s/ours \1 \2 \3 \4/'
}
ours 1 >"$tmp/results"
ours "$threads" >>"$tmp/results"

# tiktoken looks its files up in TIKTOKEN_CACHE_DIR under sha1(URL).
cache=$tmp/tiktoken_cache
mkdir -p "$cache"
for f in vocab.bpe encoder.json; do
    key=$(printf '%s' "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/$f" | sha1sum | cut -d' ' -f1)
    cp "$vocab/$f" "$cache/$key"
done
TIKTOKEN_CACHE_DIR=$cache python3 - "$tmp/docs.jsonl" "$threads" "$repeat" "$tmp" >>"$tmp/results" <<'PY'
import array, json, sys, time
import tiktoken
path, threads, repeat, tmp = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
docs = [json.loads(line)["text"] for line in open(path, encoding="utf-8")]
nbytes = sum(len(d.encode("utf-8")) for d in docs)
enc = tiktoken.get_encoding("gpt2")
for t in (1, threads):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = enc.encode_ordinary_batch(docs, num_threads=t)
        best = min(best, time.perf_counter() - t0)
    ntok = sum(len(ids) for ids in out)
    print(f"tiktoken-{tiktoken.__version__} {t} {best:.3f} {nbytes / best / 1e6:.2f} {ntok / best:.0f}")
    ids = array.array("I")
    for d in out:
        ids.extend(d)
    with open(f"{tmp}/tiktoken_{t}.ids", "wb") as f:
        f.write(ids.tobytes())
PY

ndocs=$(wc -l <"$tmp/docs.jsonl")
ntok=$(($(stat -c %s "$tmp/ours_1.ids") / 4))
same=yes
for a in "$tmp"/ours_*.ids "$tmp"/tiktoken_*.ids; do cmp -s "$a" "$tmp/ours_1.ids" || same=NO; done
echo
echo "$ndocs documents, $(stat -c %s "$tmp/docs.jsonl") bytes of JSON lines, $ntok tokens; $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo
echo "| tokenizer | threads | best of $repeat (s) | MB/s | M tokens/s | MB/s per thread |"
echo "|---|---:|---:|---:|---:|---:|"
awk '{ printf "| %s | %d | %.3f | %.2f | %.2f | %.2f |\n", $1, $2, $3, $4, $5 / 1e6, $4 / $2 }' "$tmp/results"
echo
echo "ids identical (ours 1 and $threads threads, tiktoken 1 and $threads threads): $same"
[ "$same" = yes ]
