#!/usr/bin/env bash
# The CPU engine end to end: lode logits against transformers on lode's own
# generated checkpoints, lode generate, determinism across thread counts.
. "$(dirname "$0")/lib.bash"

M=$TMP/tiny-bf16-text
"$LODE" mkmodel --out "$M" --preset tiny --quant bf16 --layout text > /dev/null 2>&1 || fail "mkmodel tiny bf16"
TOKS=1,17,42,99,200,7,7,3,250,128,64,5,5,5,9,31,0,2,4,8,16
expect_exit 0 "logits --all --out" "$LODE" logits --model "$M" --tokens $TOKS --all --kv f32 --out "$TMP/lode.f32"

# against transformers: lode's own checkpoints in both precisions and layouts, loaded by the
# Qwen3.5-MoE classes (the mixed ones dequantized by the compressed-tensors library itself)
if PY=$(ref_python); then
  for q in bf16 mixed; do for lay in text vl; do
    D=$TMP/tiny-$q-$lay
    [ -d "$D" ] || "$LODE" mkmodel --out "$D" --preset tiny --quant $q --layout $lay > /dev/null 2>&1
    "$LODE" logits --model "$D" --tokens $TOKS --all --kv f32 --out "$TMP/l-$q-$lay.f32" 2> "$TMP/err"
    if "$PY" tests/ref/ref_logits.py "$D" $TOKS "$TMP/r-$q-$lay.f32" > "$TMP/ref.log" 2>&1; then
      if python3 - "$TMP/l-$q-$lay.f32" "$TMP/r-$q-$lay.f32" <<'PY'
import array, sys
a = array.array('f'); a.frombytes(open(sys.argv[1], 'rb').read())
b = array.array('f'); b.frombytes(open(sys.argv[2], 'rb').read())
assert len(a) == len(b) and len(a) > 0, (len(a), len(b))
err = max(abs(x - y) for x, y in zip(a, b)) / max(abs(y) for y in b)
V = len(a) // 21
same = all(max(range(V), key=lambda i: a[t*V+i]) == max(range(V), key=lambda i: b[t*V+i]) for t in range(21))
print(f"    rel err {err:.2g}, argmax {'identical' if same else 'DIFFERENT'}")
sys.exit(0 if err <= 1e-3 and same else 1)
PY
      then ok "mkmodel tiny $q $lay: lode logits == transformers"; else fail "mkmodel tiny $q $lay vs transformers"; fi
    else fail "transformers reference run ($q $lay)" "$(tail -3 "$TMP/ref.log")"; fi
  done; done
else
  skip "mkmodel tiny (bf16, mixed) x (text, vl) vs transformers" "$PY"
fi

# logits JSON of the last position equals the raw dump's last row
"$LODE" logits --model "$M" --tokens $TOKS --kv f32 > "$TMP/last.json" 2> "$TMP/err"
if python3 - "$TMP/last.json" "$TMP/lode.f32" <<'PY'
import json, array, sys
j = json.load(open(sys.argv[1]))
a = array.array('f'); a.frombytes(open(sys.argv[2], 'rb').read())
V = len(j)
assert all(abs(x - y) <= 1e-6 * max(1, abs(y)) for x, y in zip(j, a[len(a) - V:]))
PY
then ok "logits JSON"; else fail "logits JSON" "$(head -c 200 "$TMP/err")"; fi

# generation: a tokenizer makes the tiny model usable; greedy output is the same for any thread count
G=$TMP/tiny-tok
TOKJSON=${LODE_TOKENIZER:-$ROOT/../shared/reference/qwen3-tokenizer/tokenizer.json}
if [ ! -f "$TOKJSON" ]; then
  skip "generate (tiny model with the Qwen3 tokenizer)" "no tokenizer.json at $TOKJSON (set LODE_TOKENIZER)"
elif "$LODE" mkmodel --out "$G" --preset tiny --quant mixed --tokenizer "$TOKJSON" > /dev/null 2>&1; then
  "$LODE" generate --model "$G" -p "def main():" -n 24 --preset greedy --threads 1 > "$TMP/g1" 2> "$TMP/e1"
  "$LODE" generate --model "$G" -p "def main():" -n 24 --preset greedy --threads 2 > "$TMP/g2" 2> "$TMP/e2"
  if [ -s "$TMP/g1" ] && cmp -s "$TMP/g1" "$TMP/g2"; then ok "generate: greedy identical across thread counts"
  else fail "generate determinism" "$(head -c 200 "$TMP/e1")"; fi
  "$LODE" generate --model "$G" -p "hi" -n 16 --seed 7 --preset thinking > "$TMP/s1" 2>&1
  "$LODE" generate --model "$G" -p "hi" -n 16 --seed 7 --preset thinking > "$TMP/s2" 2>&1
  if cmp -s "$TMP/s1" "$TMP/s2"; then ok "generate: seeded sampling reproducible"; else fail "seeded sampling"; fi
  expect_err "generate: bad preset" 2 "--preset" "$LODE" generate --model "$G" -p x --preset wild
  expect_err "generate: bad temperature" 2 "--temperature" "$LODE" generate --model "$G" -p x --temperature -1
else
  fail "mkmodel with tokenizer"
fi
expect_err "logits: id outside the vocabulary" 1 "outside the vocabulary" "$LODE" logits --model "$M" --tokens 1,99999
expect_err "logits: no model" 2 "no model" "$LODE" logits --tokens 1
expect_err "logits: malformed ids" 2 "--tokens" "$LODE" logits --model "$M" --tokens 1,x
summary
