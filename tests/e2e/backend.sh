#!/usr/bin/env bash
# The backends through `lode run`: the script backend streams its canned text,
# hands each prompt to LODE_SCRIPT_PROMPTS, and a malformed or missing script
# or cuda (no CUDA engine yet) fail with one line naming the cause.
. "$(dirname "$0")/lib.bash"
WS=$TMP/ws
mkdir -p "$WS"
printf '["Hello from the script.", {"text": "second", "delay_ms": 1}]' > "$TMP/s.json"
run() { "$LODE" run --cwd "$WS" --max-turns 1 "$@"; }

export LODE_SCRIPT_PROMPTS=$TMP/prompts.jsonl
expect_out "script: streams the text" "Hello from the script." run --backend "script:$TMP/s.json" -p hi
if python3 -c 'import json,sys
d=[json.loads(l) for l in open(sys.argv[1])]
assert len(d) == 1 and "<|im_start|>user\nhi" in d[0]["prompt"], d
assert "<|im_start|>assistant\n" in d[0]["prompt"], d' "$LODE_SCRIPT_PROMPTS" 2> "$TMP/py.err"; then
  ok "script: the rendered prompt is logged"
else
  fail "script: the rendered prompt is logged" "$(tail -n 2 "$TMP/py.err")"
fi
unset LODE_SCRIPT_PROMPTS

printf '["a", 3]' > "$TMP/bad.json"
expect_err "script: bad element" 1 "bad.json: element 1" run --backend "script:$TMP/bad.json" -p hi
printf '["a",\n nope]' > "$TMP/bad2.json"
expect_err "script: malformed JSON" 1 "bad2.json:2:" run --backend "script:$TMP/bad2.json" -p hi
expect_err "script: missing file" 1 "missing.json" run --backend "script:$TMP/missing.json" -p hi
expect_err "cuda: not yet" 1 "backend cuda" run --backend cuda -p hi
summary
