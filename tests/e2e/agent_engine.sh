#!/usr/bin/env bash
# lode run on the real CPU engine with the tiny random model: a valid json
# result with token counts, and --resume restores the saved model state (the
# next turn reuses the conversation: cached tokens > 0, only the new message
# prefilled). The model is random, so only shapes and counts are checked.
. "$(dirname "$0")/lib.bash"
TOKJSON=${LODE_TOKENIZER:-$ROOT/../shared/reference/qwen3-tokenizer/tokenizer.json}
if [ ! -f "$TOKJSON" ]; then
  skip "lode run on the tiny model" "no tokenizer.json at $TOKJSON (set LODE_TOKENIZER)"
  summary
fi
M=$TMP/tiny
"$LODE" mkmodel --out "$M" --preset tiny --tokenizer "$TOKJSON" > /dev/null ||
  { fail "mkmodel tiny"; summary; }
WS=$TMP/ws
mkdir -p "$WS"
# --max-tokens bounds the random model's answer (it rarely ends its turn by itself).
run() { "$LODE" run --cwd "$WS" --model "$M" --backend cpu --threads 2 --max-tokens 8 "$@"; }
pyjson() {
  local name=$1 file=$2 code=$3
  if python3 -c "import json,sys
d=[json.loads(l) for l in open(sys.argv[1]) if l.strip()]
$code" "$file" 2> "$TMP/py.err"; then ok "$name"; else
    fail "$name" "$(tail -n 3 "$TMP/py.err")" "output: $(head -c 600 "$file")"; fi
}

run --max-turns 1 -p hi --output-format json > "$TMP/r1" 2> "$TMP/err"; rc=$?
# exit 0 (no call) or 3 (the random text happened to hold a call and the limit stopped it)
case $rc in 0|3) ok "engine: run exits $rc" ;; *) fail "engine: run" "exit $rc" "$(cat "$TMP/err")" ;; esac
pyjson "engine: json result" "$TMP/r1" '
r = d[0]
assert len(d) == 1 and r["type"] == "result" and r["status"] in ("done", "turn_limit"), r
assert r["turns"] == 1 and r["usage"]["input_tokens"] > 100 and r["usage"]["output_tokens"] > 0
assert r["usage"]["cached_tokens"] == 0 and r["state_restored"] is False
assert r["usage"]["prefill_tokens"] == r["usage"]["input_tokens"]'
SID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["session_id"])' "$TMP/r1")

run --max-turns 1 -p "and again" --resume "$SID" --output-format json > "$TMP/r2" 2> "$TMP/err"
rc=$?
case $rc in 0|3) ok "engine: resume exits $rc" ;; *) fail "engine: resume" "exit $rc" "$(cat "$TMP/err")" ;; esac
pyjson "engine: resume restores the state" "$TMP/r2" '
r = d[0]
u = r["usage"]
assert r["state_restored"] is True and r["session_id"] == '"'$SID'"', r
assert u["cached_tokens"] > 100 and u["prefill_tokens"] < 40, u
assert u["cached_tokens"] + u["prefill_tokens"] == u["input_tokens"], u'

# another checkpoint (another layout: the model id covers config and tensor headers) cannot use
# that state: the conversation is prefilled again, and said so
M2=$TMP/tiny2
"$LODE" mkmodel --out "$M2" --preset tiny --quant mixed --tokenizer "$TOKJSON" > /dev/null
"$LODE" run --cwd "$WS" --model "$M2" --backend cpu --threads 2 --max-tokens 8 --max-turns 1 \
  -p "third" --resume "$SID" --output-format json > "$TMP/r3" 2> "$TMP/err"
pyjson "engine: another model prefills" "$TMP/r3" '
r = d[0]
assert r["state_restored"] is False and r["usage"]["cached_tokens"] == 0, r
assert r["usage"]["prefill_tokens"] == r["usage"]["input_tokens"] > 100, r'
summary
