#!/usr/bin/env bash
# Makes a tokenized dataset in data/NAME/ with our GPT-2 tokenizer, plus the
# trainers' decoding file data/gpt2_tokenizer.bin. Idempotent: a finished
# dataset (data/NAME/.done) is left alone, downloads already made are reused.
#
# usage: data/prepare.sh NAME [--threads N]
#   debian_docs      offline default: Debian's kernel docs, GCIDE dictionary and
#                    fortunes (apt-get download, no root needed); ~25.3M tokens
#   tinyshakespeare  ~1 MB of Shakespeare; speeches are documents (online)
#   tinystories      TinyStoriesV2 (GPT-4 stories); validation from its valid split (online)
#   fineweb10B       FineWeb sample-10BT, 100M-token shards (online; needs python3 with pyarrow)
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-}
shift || true
threads=()
if [ "${1:-}" = --threads ]; then threads=(--threads "${2:?--threads needs a number}"); fi
out=data/$name
T=data/tokenize

die() { echo "error: $*" >&2; exit 1; }
case "$name" in debian_docs|tinyshakespeare|tinystories|fineweb10B) ;;
    *) die "unknown dataset '$name'; choose one of debian_docs tinyshakespeare tinystories fineweb10B" ;;
esac

if [ "$name" = fineweb10B ]; then
    command -v python3 >/dev/null && python3 -c 'import pyarrow.parquet' 2>/dev/null ||
        die "fineweb10B needs python3 with pyarrow to read its parquet files (pip install pyarrow)"
fi

make -s -f data/data.mk data/tokenize
bash data/fetch_vocab.sh data/vocab
[ -f data/gpt2_tokenizer.bin ] || $T export --vocab data/vocab data/gpt2_tokenizer.bin
if [ -f "$out/.done" ]; then
    echo "$out is complete already (delete $out/.done to rebuild it)" >&2
    exit 0
fi
mkdir -p "$out/src"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Downloads URL to FILE unless FILE exists; partial downloads never keep the final name.
fetch() {
    local url=$1 file=$2
    [ -s "$file" ] && return 0
    curl -fL --progress-bar --retry 3 --connect-timeout 20 -o "$file.part" "$url" ||
        die "cannot download $url (this recipe needs network access; data/prepare.sh debian_docs works offline)"
    mv "$file.part" "$file"
}

shards() {  # shards ARGS... : tokenize into data/NAME/NAME_{val,train}_*.bin
    $T shards --vocab data/vocab "${threads[@]}" --out "$out/$name" "$@"
}

case "$name" in
debian_docs)
    # The reStructuredText sources of the kernel documentation, the GCIDE
    # dictionary and the fortunes: three texts, each the concatenation of its
    # files in byte order, cut at the first blank line after 4,000 characters,
    # then all documents shuffled with seed 1337 (the recipe of
    # shared/data/debian_docs, which was tokenized by tiktoken instead).
    if ! ls "$out"/src/linux-doc-6.1_*.deb "$out"/src/dict-gcide_*.deb "$out"/src/fortunes_*.deb >/dev/null 2>&1; then
        (cd "$out/src" && apt-get download linux-doc-6.1 dict-gcide fortunes) ||
            die "apt-get download failed; run 'apt-get update' (as root) and try again"
    fi
    for deb in "$out"/src/*.deb; do dpkg-deb -x "$deb" "$tmp/x"; done
    docs=$tmp/x/usr/share/doc/linux-doc-6.1/html/_sources
    [ -d "$docs" ] || die "linux-doc-6.1 has no html/_sources folder in $out/src"
    find "$docs" -type f -name '*.rst.txt' -print0 | LC_ALL=C sort -z | xargs -0 cat >"$tmp/linux-doc.txt"
    gzip -dc "$tmp/x/usr/share/dictd/gcide.dict.dz" >"$tmp/gcide.txt"
    # Plain fortune files only (not the .dat indexes or .u8 links), '%' lines dropped.
    find "$tmp/x/usr/share/games/fortunes" -maxdepth 1 -type f ! -name '*.dat' -print0 | LC_ALL=C sort -z |
        xargs -0 -n 1 sed '/^%$/d' >"$tmp/fortunes.txt"
    shards --chunk 4000 --shuffle 1337 --val-tokens 1048576 --shard-tokens 7340032 \
        "$tmp/linux-doc.txt" "$tmp/gcide.txt" "$tmp/fortunes.txt"
    ;;
tinyshakespeare)
    fetch https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt "$out/src/input.txt"
    # Speeches (blank-line separated) are the documents; the first 32,768
    # tokens are the validation shard.
    shards --sep '\n\n' --val-tokens 32768 --shard-tokens 100000000 "$out/src/input.txt"
    ;;
tinystories)
    base=https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main
    fetch "$base/TinyStoriesV2-GPT4-valid.txt" "$out/src/valid.txt"
    fetch "$base/TinyStoriesV2-GPT4-train.txt" "$out/src/train.txt"
    # Stories are separated by <|endoftext|> lines. The valid split (~5M
    # tokens) comes first, so the 4M-token validation shard is drawn from it.
    shards --sep '<|endoftext|>' --val-tokens 4194304 --shard-tokens 100000000 "$out/src/valid.txt" "$out/src/train.txt"
    ;;
fineweb10B)
    api=https://huggingface.co/api/datasets/HuggingFaceFW/fineweb/tree/main/sample/10BT
    curl -fsSL --connect-timeout 20 "$api" -o "$tmp/list.json" ||
        die "cannot list $api (this recipe needs network access; data/prepare.sh debian_docs works offline)"
    files=$(python3 -c 'import json,sys; print("\n".join(sorted(f["path"] for f in json.load(open(sys.argv[1])) if f["path"].endswith(".parquet"))))' "$tmp/list.json")
    [ -n "$files" ] || die "no parquet files listed at $api"
    for f in $files; do fetch "https://huggingface.co/datasets/HuggingFaceFW/fineweb/resolve/main/$f" "$out/src/$(basename "$f")"; done
    # Stream the text column as JSON lines into the tokenizer; first shard = validation.
    python3 - "$out"/src/*.parquet <<'PY' | shards --jsonl --shard-tokens 100000000 -
import json, sys
import pyarrow.parquet as pq
for path in sys.argv[1:]:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=4096, columns=["text"]):
        for text in batch.column(0).to_pylist():
            sys.stdout.write(json.dumps({"text": text}) + "\n")
PY
    ;;
esac
touch "$out/.done"
echo "$out: done; shards:" >&2
ls -l "$out"/*.bin >&2
