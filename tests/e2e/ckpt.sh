#!/usr/bin/env bash
# Checkpoints: lode mkmodel and lode inspect on the command line, determinism across runs,
# and the reference oracles (compressed-tensors writes a mixed checkpoint that lode must
# decode bit-exactly; transformers runs lode's random checkpoints).
. "$(dirname "$0")/lib.bash"

expect_err "mkmodel needs --out" 2 "--out DIR is required" "$LODE" mkmodel
expect_err "mkmodel bad preset" 2 "--preset must be tiny, small or full" "$LODE" mkmodel --out "$TMP/x" --preset huge
expect_err "mkmodel bad shards" 2 "--shards must be in 1..999" "$LODE" mkmodel --out "$TMP/x" --shards 0
expect_err "inspect needs a directory" 2 "give a checkpoint DIR" "$LODE" inspect
expect_out "help mkmodel" "lode mkmodel --out DIR" "$LODE" help mkmodel

# tiny is fast and deterministic, sharded or not
t0=$(date +%s%N)
"$LODE" mkmodel --out "$TMP/a" --quant mixed --shards 3 --seed 42 > "$TMP/out" 2>&1
t1=$(date +%s%N)
"$LODE" mkmodel --out "$TMP/b" --quant mixed --shards 3 --seed 42 > "$TMP/out" 2>&1
ms=$(( (t1 - t0) / 1000000 ))
if [ "$ms" -lt 1000 ]; then ok "mkmodel tiny in ${ms} ms"; else fail "mkmodel tiny in ${ms} ms"; fi
if (cd "$TMP/a" && sha256sum ./*) > "$TMP/sa" && (cd "$TMP/b" && sha256sum ./*) > "$TMP/sb" \
   && cmp -s "$TMP/sa" "$TMP/sb" && [ "$(wc -l < "$TMP/sa")" = 6 ]; then
  ok "same seed, identical files"; else fail "same seed, identical files" "$(cat "$TMP/sa" "$TMP/sb")"; fi
"$LODE" mkmodel --out "$TMP/c" --quant mixed --shards 3 --seed 43 > /dev/null 2>&1
if ! cmp -s "$TMP/a/model-00001-of-00003.safetensors" "$TMP/c/model-00001-of-00003.safetensors"; then
  ok "other seed, other weights"; else fail "other seed, other weights"; fi

expect_out "inspect mixed: super-experts" "routed experts W8 (super-experts)" "$LODE" inspect "$TMP/a"
expect_out "inspect mixed: attention W8" "attention W8" "$LODE" inspect "$TMP/a"
expect_out "inspect: KV bytes" "KV cache per context token           512 bytes bf16" "$LODE" inspect "$TMP/a"
"$LODE" inspect --json "$TMP/a" > "$TMP/j" 2>&1
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["layers"]==8 and d["quantized"] and d["bytes_per_token"]>0 and d["shards"]==3' "$TMP/j"; then
  ok "inspect --json"; else fail "inspect --json" "$(head -c 300 "$TMP/j")"; fi
expect_out "inspect golden vl (transformers-written)" "21 visual indexed" "$LODE" inspect tests/data/golden/vl
expect_out "inspect --config-only real dims" "KV cache per context token           20480 bytes bf16, 10240 bytes fp8" \
  "$LODE" inspect --config-only tests/data/ckpt/qwen3.6-35b-a3b-config.json

# --tokenizer: copied, and the vocabulary (padded to 64 rows) covers every id it defines
TOKJ=${LODE_TOKENIZER:-$ROOT/../shared/reference/qwen3-tokenizer/tokenizer.json}
if [ -f "$TOKJ" ]; then
  "$LODE" mkmodel --out "$TMP/tk" --tokenizer "$TOKJ" > "$TMP/out" 2>&1
  if cmp -s "$TOKJ" "$TMP/tk/tokenizer.json" && python3 - "$TOKJ" "$TMP/tk/config.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1])); c = json.load(open(sys.argv[2]))
top = max(list(t["model"]["vocab"].values()) + [a["id"] for a in t.get("added_tokens", [])])
v = c.get("vocab_size") or c["text_config"]["vocab_size"]
assert v > top and v % 64 == 0 and v - top <= 64, (v, top)
PY
  then ok "mkmodel --tokenizer sizes the vocabulary"; else fail "mkmodel --tokenizer sizes the vocabulary" "$(cat "$TMP/out")"; fi
else
  skip "mkmodel --tokenizer sizes the vocabulary" "no tokenizer.json at $TOKJ (set LODE_TOKENIZER)"
fi

# defects: exit 1, one line naming the file and tensor
cp -r "$TMP/a" "$TMP/d1"; rm "$TMP/d1/model-00002-of-00003.safetensors"
expect_err "inspect missing shard exits 1" 1 "model-00002-of-00003.safetensors" "$LODE" inspect "$TMP/d1"
cp -r "$TMP/a" "$TMP/d2"; truncate -s -64 "$TMP/d2/model-00003-of-00003.safetensors"
expect_err "inspect truncated shard exits 1" 1 "truncated or offsets out of range" "$LODE" inspect "$TMP/d2"
cp -r "$TMP/a" "$TMP/d3"; sed -i 's/"group_size":\t32/"group_size":\t64/' "$TMP/d3/config.json"
expect_err "inspect wrong group size exits 1" 1 "implies group size 32" "$LODE" inspect "$TMP/d3"
if [ "$(wc -l < "$TMP/err")" = 1 ]; then ok "defect message is one line"; else fail "defect message is one line" "$(cat "$TMP/err")"; fi

# the compressed-tensors library as oracle, both ways: it writes a mixed checkpoint that lode must
# decode bit-exactly with the same per-module decisions, and it decompresses what mkmodel writes
if PY=$(ref_python); then
  "$LODE" mkmodel --out "$TMP/mx" --quant mixed --shards 2 --seed 5 > /dev/null 2>&1
  if "$PY" tests/ref/ckpt_oracle.py "$TMP/oracle" --decompress "$TMP/mx" > "$TMP/py.log" 2>&1; then
    for d in oracle mx; do
      "$ROOT/$BUILD/tests/unit/test_ckpt" --oracle "$TMP/$d" > "$TMP/or.log" 2>&1
      what="compressed-tensors writes, lode reads"; [ $d = mx ] && what="lode mkmodel writes, compressed-tensors reads"
      if grep -q "^ok   oracle" "$TMP/or.log"; then ok "$what: $(sed -n 's/^ok   oracle: //p' "$TMP/or.log")"
      else fail "$what" "$(cat "$TMP/or.log")"; fi
    done
  else fail "compressed-tensors oracle (python)" "$(tail -5 "$TMP/py.log")"; fi
  "$LODE" mkmodel --out "$TMP/fb" --layout text > /dev/null 2>&1
  if "$PY" tests/ref/ckpt_forward.py "$TMP/fb" > "$TMP/fw.log" 2>&1; then
    ok "transformers runs mkmodel tiny: $(grep '^ok' "$TMP/fw.log" | sed 's/^ok [^:]*: //')"
  else fail "transformers runs mkmodel tiny" "$(tail -5 "$TMP/fw.log")"; fi
else
  skip "compressed-tensors writes, lode reads" "$PY"
  skip "lode mkmodel writes, compressed-tensors reads" "$PY"
  skip "transformers runs mkmodel tiny" "$PY"
fi
summary
