#!/usr/bin/env bash
# lode tokenize and lode bench tokenizer: exit codes and messages, and (with
# the reference venv) token ids identical to Hugging Face tokenizers on a
# 6 MB generated corpus, for the Qwen3 tokenizer and its variants.
. "$(dirname "$0")/lib.bash"

TOKJ=${LODE_TOKENIZER:-$ROOT/../shared/reference/qwen3-tokenizer/tokenizer.json}

expect_err "tokenize: no tokenizer is a usage error" 2 "no --tokenizer" \
  bash -c "echo hi | '$LODE' tokenize"
expect_err "tokenize: unknown option" 2 "unknown option" "$LODE" tokenize --frob
expect_err "tokenize: missing file" 1 "nonexistent.json" \
  bash -c "echo hi | '$LODE' tokenize --tokenizer '$TMP/nonexistent.json'"
printf '{\n  "model": {\n    "vocab": {"a": 1,,}\n  }\n}\n' > "$TMP/bad.json"
expect_err "tokenize: malformed tokenizer.json names line:col" 1 "bad.json:3:" \
  bash -c "echo hi | '$LODE' tokenize --tokenizer '$TMP/bad.json'"
expect_out "bench lists benchmarks" "tokenizer" "$LODE" bench
expect_err "bench: unknown benchmark" 2 "unknown benchmark 'nope'" "$LODE" bench nope

if [ ! -f "$TOKJ" ]; then
  skip "tokenizer checks with the real file" "no $TOKJ"
  summary
fi

expect_out "tokenize: ids" "[9707, 1879, 151644, 872, 198]" \
  bash -c "printf 'Hello world<|im_start|>user\n' | '$LODE' tokenize --tokenizer '$TOKJ'"
expect_out "tokenize --no-added" "[27, 91, 318, 4906, 91, 29]" \
  bash -c "printf '<|im_start|>' | '$LODE' tokenize --no-added --tokenizer '$TOKJ'"
expect_out "tokenize --decode" "Hello world<|im_start|>" \
  bash -c "echo '[9707, 1879, 151644]' | '$LODE' tokenize --decode --tokenizer '$TOKJ'"
expect_out "tokenize: empty input" "[]" bash -c "'$LODE' tokenize --tokenizer '$TOKJ' < /dev/null"
expect_err "tokenize: invalid UTF-8 names the byte" 1 "stdin: invalid UTF-8 at byte 3" \
  bash -c "printf 'abc\377' | '$LODE' tokenize --tokenizer '$TOKJ'"
expect_err "decode: malformed JSON" 1 "stdin:1:" \
  bash -c "echo '[1, 2' | '$LODE' tokenize --decode --tokenizer '$TOKJ'"
expect_err "decode: not an id" 1 "element 1 is not a token id" \
  bash -c "echo '[1, \"x\"]' | '$LODE' tokenize --decode --tokenizer '$TOKJ'"
expect_err "decode: unknown id" 1 "token id 999999 is not in the vocabulary" \
  bash -c "echo '[1, 999999]' | '$LODE' tokenize --decode --tokenizer '$TOKJ'"
expect_out "bench tokenizer (lode side)" "MB/s" \
  "$LODE" bench tokenizer --tokenizer "$TOKJ" --repeat 1 --no-ref

PY=$(ref_python) || {
  skip "ids identical to HF tokenizers" "$PY"
  summary
}
export LODE
cmp_hf() { # NAME TOKENIZER CORPUS [tok_compare options]
  local name=$1 tj=$2 corpus=$3; shift 3
  if "$PY" "$ROOT/tests/ref/tok_compare.py" --lode "$LODE" --tokenizer "$tj" --corpus "$corpus" \
       --name "$name" "$@" > "$TMP/cmp" 2>&1; then
    ok "$name: $(grep -c '^ok' "$TMP/cmp") checks vs HF tokenizers"; sed 's/^/    /' "$TMP/cmp"
  else fail "$name vs HF tokenizers" "$(cat "$TMP/cmp")"; fi
}
"$PY" "$ROOT/tests/ref/corpus.py" --size 6000000 --seed 1 --out "$TMP/corpus.txt"
"$PY" "$ROOT/tests/ref/tok_variants.py" "$TOKJ" "$TMP/var"
# the variants run on a part of the corpus (HF needs ~1 s per MB here)
head -c 2000000 "$TMP/corpus.txt" | iconv -f utf-8 -t utf-8 -c > "$TMP/corpus2m.txt"
head -c 1000000 "$TMP/corpus.txt" | iconv -f utf-8 -t utf-8 -c > "$TMP/corpus1m.txt"
cmp_hf "qwen3 6 MB corpus" "$TOKJ" "$TMP/corpus.txt" --roundtrip --random-decode 50000
cmp_hf "qwen3.6 regex" "$TMP/var/qwen36.json" "$TMP/corpus2m.txt" --roundtrip
cmp_hf "string-form merges" "$TMP/var/qwen36-legacy.json" "$TMP/corpus1m.txt"
cmp_hf "ignore_merges" "$TMP/var/ignore.json" "$TMP/corpus1m.txt"
cmp_hf "added-token flags" "$TMP/var/flags.json" "$TMP/var/flags.txt" --roundtrip --decode-vs-hf --random-decode 5000
"$PY" "$ROOT/tests/ref/tok_nfc_probe.py" --out "$TMP/nfc.txt"
cmp_hf "NFC probes (HF's Unicode tables)" "$TOKJ" "$TMP/nfc.txt" --roundtrip
summary
