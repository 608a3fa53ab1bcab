#!/usr/bin/env bash
# lode toolcalls: raw model output on stdin -> reasoning, content, tool calls (tools/toolcall.h).
. "$(dirname "$0")/lib.bash"

tc() { "$LODE" toolcalls "$@"; }
# jq-free JSON checks: py EXPR runs with d = the JSON on stdin
py() { python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if ($1) else 1)"; }

cat > "$TMP/tools.json" <<'JSON'
[{"type": "function", "function": {"name": "get_weather", "description": "w",
  "parameters": {"type": "object", "properties": {"city": {"type": "string"},
  "days": {"type": "integer"}, "metric": {"type": "boolean"}, "opts": {"type": "object"}}}}},
 {"name": "write_file", "parameters": {"type": "object", "properties": {"path": {"type": "string"},
  "content": {"type": "string"}}}}]
JSON

CALL=$'Sure.\n\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n</parameter>\n<parameter=metric>\ntrue\n</parameter>\n<parameter=opts>\n{\'a\': [1, None]}\n</parameter>\n</function>\n</tool_call>'

out=$(printf '%s' "$CALL" | tc --tools "$TMP/tools.json" 2>&1)
if printf '%s' "$out" | py 'd["content"]=="Sure." and d["reasoning"]=="" and d["tool_calls"]==[{"name":"get_weather","arguments":{"city":"Paris","days":3,"metric":True,"opts":{"a":[1,None]}}}] and "errors" not in d'; then
  ok "one call, values typed by the schema"; else fail "one call, values typed by the schema" "$out"; fi

out=$(printf '%s' "$CALL" | tc 2>&1)
if printf '%s' "$out" | py 'd["tool_calls"][0]["arguments"]["days"]=="3"'; then
  ok "without --tools values stay strings"; else fail "without --tools values stay strings" "$out"; fi

out=$(printf 'I will look.\n</think>\n\n%s' "$CALL" | tc --tools "$TMP/tools.json" 2>&1)
if printf '%s' "$out" | py 'd["reasoning"]=="I will look." and d["content"]=="Sure." and len(d["tool_calls"])==1'; then
  ok "reasoning detected from </think>"; else fail "reasoning detected from </think>" "$out"; fi

out=$(printf 'a</think>b' | tc --no-thinking 2>&1)
if printf '%s' "$out" | py 'd["content"]=="a</think>b" and d["reasoning"]==""'; then
  ok "--no-thinking keeps </think> as text"; else fail "--no-thinking keeps </think> as text" "$out"; fi

out=$(printf 'half a thought' | tc --thinking 2>&1)
if printf '%s' "$out" | py 'd["content"]=="half a thought" and d["reasoning"]==""'; then
  ok "--thinking without </think>: content"; else fail "--thinking without </think>: content" "$out"; fi

out=$(printf '<tool_call>\n<function=rm_rf>\n<parameter=path>\n/\n</parameter>\n</function>\n</tool_call>' |
      tc --tools "$TMP/tools.json" 2>&1)
if printf '%s' "$out" | py 'd["tool_calls"]==[] and d["errors"][0]["name"]=="rm_rf" and "unknown tool" in d["errors"][0]["message"] and "get_weather" in d["errors"][0]["message"]'; then
  ok "unknown tool is an error entry, not a call"; else fail "unknown tool is an error entry, not a call" "$out"; fi

# a file whose content contains a complete tool call is written as text: one call
NESTED=$'<tool_call>\n<function=write_file>\n<parameter=path>\nfixture.txt\n</parameter>\n<parameter=content>\n<tool_call>\n<function=get_weather>\n<parameter=city>\nX\n</parameter>\n</function>\n</tool_call>\n</parameter>\n</function>\n</tool_call>'
out=$(printf '%s' "$NESTED" | tc --tools "$TMP/tools.json" 2>&1)
if printf '%s' "$out" | py 'len(d["tool_calls"])==1 and d["tool_calls"][0]["arguments"]["content"].startswith("<tool_call>\n<function=get_weather>") and d["tool_calls"][0]["arguments"]["content"].endswith("</tool_call>")'; then
  ok "nested literal tool call stays inside the value"; else fail "nested literal tool call stays inside the value" "$out"; fi

# the same result however the input is cut
same=1
for input in "$CALL" "$NESTED" $'x\n<function=get_weather>\n<parameter=city>\nA\n</parameter>\n</function>\ny'; do
  whole=$(printf '%s' "$input" | tc --tools "$TMP/tools.json")
  for n in 1 2 3 5 8 13; do
    part=$(printf '%s' "$input" | tc --tools "$TMP/tools.json" --chunk $n)
    [ "$whole" = "$part" ] || { same=0; fail "--chunk $n differs" "$whole" "$part"; }
  done
done
[ $same = 1 ] && ok "--chunk 1..13 gives the same result as whole input"

out=$(printf '%s' "$CALL" | tc --tools "$TMP/tools.json" --events 2>&1)
if printf '%s\n' "$out" | grep -q '"event": "call_begin", "index": 0, "name": "get_weather"' &&
   printf '%s\n' "$out" | grep -q '"event": "arg", "index": 0, "name": "get_weather", "arg": "days", "value": 3' &&
   printf '%s\n' "$out" | grep -q '"event": "call_end"'; then
  ok "--events streams begin/arg/end"; else fail "--events streams begin/arg/end" "$out"; fi

# invalid UTF-8 in, valid JSON out
out=$(printf 'caf\xe9 \xff' | tc 2>&1)
if printf '%s' "$out" | py 'd["content"]=="caf\ufffd \ufffd"'; then
  ok "invalid UTF-8 becomes U+FFFD"; else fail "invalid UTF-8 becomes U+FFFD" "$out"; fi

# errors: files and usage
printf '[{"name": "a"},\n {"name": }]' > "$TMP/bad.json"
expect_err "malformed tools file names file:line, exit 1" 1 "bad.json:2:" \
  bash -c "echo hi | '$LODE' toolcalls --tools '$TMP/bad.json'"
printf '[{"name": "a b"}]' > "$TMP/badname.json"
expect_err "bad tool name in the tools file" 1 "tools[0]: name 'a b'" \
  bash -c "echo hi | '$LODE' toolcalls --tools '$TMP/badname.json'"
expect_err "missing tools file, exit 1" 1 "nope.json" \
  bash -c "echo hi | '$LODE' toolcalls --tools '$TMP/nope.json'"
expect_err "unknown option exits 2" 2 "unknown option" bash -c "echo | '$LODE' toolcalls --bogus"
expect_err "bad --chunk exits 2" 2 "--chunk" bash -c "echo | '$LODE' toolcalls --chunk 0"
expect_err "positional argument exits 2" 2 "unexpected argument" bash -c "echo | '$LODE' toolcalls x"
expect_out "help toolcalls" "usage: lode toolcalls" "$LODE" help toolcalls

# conversion agrees with Python's own json/ast/int/float (standard library only)
mkdir -p "$TMP/ref"
if out=$(python3 "$ROOT/tests/ref/toolcall_values.py" "$LODE" "$TMP/ref" 2>&1); then
  ok "values agree with Python's conversion ($(printf '%s' "$out" | tail -n 1 | sed 's/^ok *//'))"
else
  fail "values agree with Python's conversion" "$out"
fi

# round trip through the real chat template: what the template renders, the parser reads back
TPL="$ROOT/tests/fuzz/fuzz_template/qwen36.jinja"
if ! PY=$(ref_python 2>&1); then
  skip "round trip through the Qwen3.6 template" "reference venv missing: $PY"
elif [ ! -f "$TPL" ]; then
  skip "round trip through the Qwen3.6 template" "no template at $TPL"
elif out=$("$PY" "$ROOT/tests/ref/toolcall_roundtrip.py" "$LODE" "$TPL" "$TMP/ref" 150 2>&1); then
  ok "round trip through the Qwen3.6 template ($(printf '%s' "$out" | head -n 1 | sed 's/^# //'))"
else
  fail "round trip through the Qwen3.6 template" "$(printf '%s' "$out" | head -c 3000)"
fi

summary
