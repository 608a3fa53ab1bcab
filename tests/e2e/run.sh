#!/usr/bin/env bash
# lode run (headless): the tool loop with the script backend, approval modes
# in headless runs, malformed calls, the turn limit, usage errors, and the
# documented shapes of --output-format json and stream-json.
. "$(dirname "$0")/lib.bash"
DATA=$ROOT/tests/data/agent
WS=$TMP/ws
mkdir -p "$WS"
reset_ws() { rm -rf "$WS"; mkdir -p "$WS"; printf 'the colour of the sky\nline two\n' > "$WS/notes.txt"; }
run() { "$LODE" run --cwd "$WS" --thinking off "$@"; }
# pyjson NAME FILE CODE: python3 checks FILE (variable d: its lines parsed as JSON).
pyjson() {
  local name=$1 file=$2 code=$3
  if python3 -c "import json,sys
d=[json.loads(l) for l in open(sys.argv[1]) if l.strip()]
$code" "$file" 2> "$TMP/py.err"; then ok "$name"; else
    fail "$name" "$(tail -n 3 "$TMP/py.err")" "output: $(head -c 600 "$file")"; fi
}

# ---- usage errors: exit 2
expect_err "unknown option" 2 "frobnicate" "$LODE" run --frobnicate -p x
expect_err "bad output format" 2 "--output-format" "$LODE" run -p x --output-format yaml
expect_err "bad approval mode" 2 "--approval" "$LODE" run -p x --approval always
expect_err "bad max-turns" 2 "--max-turns" "$LODE" run -p x --max-turns -1
expect_err "bad thinking" 2 "--thinking" "$LODE" run -p x --thinking maybe
expect_err "continue and resume" 2 "exclude" "$LODE" run -p x --continue --resume abc
expect_err "empty task" 2 "empty" "$LODE" run -p "  "
expect_err "stray argument" 2 "unexpected argument" "$LODE" run hello
expect_err "cwd not a directory" 2 "--cwd" "$LODE" run -p x --cwd "$TMP/nope"
expect_out "run in lode --help" "run" "$LODE" --help

# ---- a multi-step tool loop really edits the file under auto-edit
reset_ws
run --backend "script:$DATA/edit.json" --approval auto-edit -p "fix the spelling" \
  > "$TMP/out" 2> "$TMP/err"; rc=$?
if [ "$rc" = 0 ] && grep -q "the color of the sky" "$WS/notes.txt"; then ok "auto-edit: file edited"
else fail "auto-edit: file edited" "exit $rc" "$(cat "$TMP/err")" "$(cat "$WS/notes.txt")"; fi
if [ "$(cat "$TMP/out")" = "Fixed the spelling in notes.txt." ]; then ok "text: final answer on stdout"
else fail "text: final answer on stdout" "$(cat "$TMP/out")"; fi
if grep -q '^tool read_file {"path":"notes.txt"}: ok' "$TMP/err" &&
   grep -q '^tool edit_file .*: ok' "$TMP/err"; then ok "text: one line per tool on stderr"
else fail "text: one line per tool on stderr" "$(cat "$TMP/err")"; fi

# ---- the same loop as stream-json: documented event shapes, in order
reset_ws
LODE_SCRIPT_PROMPTS=$TMP/prompts.jsonl run --backend "script:$DATA/edit.json" \
  --approval auto-edit -p "fix the spelling" --output-format stream-json > "$TMP/stream" 2> "$TMP/err"
pyjson "stream-json: shapes" "$TMP/stream" '
types = [e["type"] for e in d]
assert types[0] == "init" and types[-1] == "result", types
allowed = {"init", "reasoning", "text", "tool_use", "tool_result", "todo", "error", "turn", "result"}
assert set(types) <= allowed, types
i = d[0]
for k in ("session_id", "backend", "model", "cwd", "approval", "thinking"): assert k in i, k
assert i["backend"] == "script" and i["approval"] == "auto-edit" and i["thinking"] is False
uses = [e for e in d if e["type"] == "tool_use"]
res = [e for e in d if e["type"] == "tool_result"]
assert [u["name"] for u in uses] == ["read_file", "edit_file"], uses
assert [u["id"] for u in uses] == ["call_1", "call_2"], uses
assert uses[0]["input"] == {"path": "notes.txt"}
assert [r["id"] for r in res] == ["call_1", "call_2"] and not any(r["is_error"] for r in res)
assert "colour" in res[0]["content"]
turns = [e for e in d if e["type"] == "turn"]
assert [t["turn"] for t in turns] == [1, 2, 3]
for t in turns:
    for k in ("input_tokens", "cached_tokens", "prefill_tokens", "output_tokens"): assert k in t["usage"]
    assert "tokens_per_s" in t
text = "".join(e["text"] for e in d if e["type"] == "text")
assert "Fixed the spelling" in text, text
r = d[-1]
assert r["status"] == "done" and r["is_error"] is False and r["turns"] == 3
assert r["result"] == "Fixed the spelling in notes.txt." and r["session_id"] == i["session_id"]
for k in ("input_tokens", "cached_tokens", "output_tokens"): assert isinstance(r["usage"][k], int)
for k in ("duration_s", "prefill_s", "gen_s", "tool_s", "tokens_per_s"): assert k in r'
# the context is what the official template renders: the tool result goes back as a user turn
pyjson "prompts: tool results are in the next prompt" "$TMP/prompts.jsonl" '
assert len(d) == 3, len(d)
p = [x["prompt"] for x in d]
assert p[0].startswith("<|im_start|>system\n# Tools")
assert "You are lode" in p[0] and "fix the spelling" in p[0]
assert p[0].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n"), p[0][-80:]
assert "<tool_response>\n     1\tthe colour of the sky" in p[1] or "the colour of the sky" in p[1].split("<tool_response>")[1]
assert p[1].startswith(p[0][:p[0].rindex("<|im_start|>assistant")])
assert "<function=read_file>\n<parameter=path>\nnotes.txt\n</parameter>" in p[1]
assert p[2].count("<tool_response>") == 2'

# ---- json: one result object
reset_ws
run --backend "script:$DATA/edit.json" --approval auto-edit -p "fix" --output-format json \
  > "$TMP/json" 2> "$TMP/err"; rc=$?
[ "$rc" = 0 ] && ok "json: exit 0" || fail "json: exit 0" "exit $rc" "$(cat "$TMP/err")"
pyjson "json: one result object" "$TMP/json" '
assert len(d) == 1
r = d[0]
assert r["type"] == "result" and r["status"] == "done" and r["turns"] == 3
assert r["result"] == "Fixed the spelling in notes.txt."
assert set(r["usage"]) >= {"input_tokens", "cached_tokens", "output_tokens"}
assert isinstance(r["session_id"], str) and r["session_id"]'

# ---- thinking on: reasoning is streamed apart from the answer
reset_ws
run --backend "script:$DATA/thinking.json" -p "list" --output-format stream-json --thinking on \
  > "$TMP/stream" 2> "$TMP/err"
pyjson "thinking: reasoning and text apart" "$TMP/stream" '
reasoning = "".join(e["text"] for e in d if e["type"] == "reasoning")
text = "".join(e["text"] for e in d if e["type"] == "text")
assert "a tool call will do" in reasoning and "There is one file" in reasoning, reasoning
assert text == "The workspace holds notes.txt.", text
assert d[-1]["result"] == "The workspace holds notes.txt."
assert [e["name"] for e in d if e["type"] == "tool_use"] == ["list_dir"]'

# ---- default mode headless: a write is denied, the model is told, nothing written
reset_ws
run --backend "script:$DATA/denied.json" -p "write it" --output-format stream-json \
  > "$TMP/stream" 2> "$TMP/err"; rc=$?
if [ "$rc" = 0 ] && [ ! -e "$WS/new.txt" ]; then ok "default: nothing written"
else fail "default: nothing written" "exit $rc" "$(ls "$WS")"; fi
pyjson "default: the model is told why" "$TMP/stream" '
r = [e for e in d if e["type"] == "tool_result"]
assert len(r) == 1 and r[0]["is_error"] and r[0]["content"].startswith("denied: needs approval"), r
assert "--approval" in r[0]["content"]'
reset_ws
expect_exit 0 "plan: write denied" run --backend "script:$DATA/denied.json" -p w --approval plan
[ ! -e "$WS/new.txt" ] && ok "plan: nothing written" || fail "plan: nothing written"
grep -q "^tool write_file .*: error: denied" "$TMP/err" && ok "plan: denial on stderr" ||
  fail "plan: denial on stderr" "$(cat "$TMP/err")"
reset_ws
expect_exit 0 "yolo: write runs" run --backend "script:$DATA/denied.json" -p w --approval yolo
[ "$(cat "$WS/new.txt" 2>/dev/null)" = "hello" ] && ok "yolo: file written" ||
  fail "yolo: file written"

# ---- rules from the configuration: tools.deny wins even in yolo, tools.allow answers the question
reset_ws
expect_exit 0 "tools.deny: run" "$LODE" -c tools.deny=write_file run --cwd "$WS" --thinking off \
  --backend "script:$DATA/denied.json" -p w --approval yolo
[ ! -e "$WS/new.txt" ] && ok "tools.deny: nothing written" || fail "tools.deny: nothing written"
reset_ws
expect_exit 0 "tools.allow: run" "$LODE" -c 'tools.allow=write_file(new.txt)' run --cwd "$WS" \
  --thinking off --backend "script:$DATA/denied.json" -p w
[ "$(cat "$WS/new.txt" 2>/dev/null)" = "hello" ] && ok "tools.allow: file written" ||
  fail "tools.allow: file written" "$(cat "$TMP/err")"

# ---- malformed calls: an error result for the model, nothing run, the next turn recovers
reset_ws
LODE_SCRIPT_PROMPTS=$TMP/mal.jsonl run --backend "script:$DATA/malformed.json" -p "read" \
  --output-format stream-json > "$TMP/stream" 2> "$TMP/err"; rc=$?
[ "$rc" = 0 ] && ok "malformed: exit 0" || fail "malformed: exit 0" "exit $rc"
pyjson "malformed: errors go back to the model" "$TMP/stream" '
res = [e for e in d if e["type"] == "tool_result"]
assert [r["name"] for r in res] == ["read_file", "no_such_tool", "read_file"], res
assert not res[0]["is_error"] and res[1]["is_error"] and res[2]["is_error"]
assert "unknown tool" in res[1]["content"] and "Nothing was run" in res[1]["content"]
assert "</parameter>" in res[2]["content"]
assert len([e for e in d if e["type"] == "error"]) == 2
assert len({r["id"] for r in res}) == 3
assert d[-1]["status"] == "done" and d[-1]["result"] == "Recovered after the malformed calls."'
pyjson "malformed: the model sees the errors" "$TMP/mal.jsonl" '
assert len(d) == 3
assert "unknown tool" in d[1]["prompt"] and "no </parameter>" in d[2]["prompt"]'

# ---- --max-turns: exit 3
reset_ws
expect_exit 3 "max-turns: exit 3" run --backend "script:$DATA/loop.json" -p loop --max-turns 2
grep -q "turn limit" "$TMP/err" && ok "max-turns: said on stderr" || fail "max-turns: said on stderr"
run --backend "script:$DATA/loop.json" -p loop --max-turns 2 --output-format json > "$TMP/json"
pyjson "max-turns: json status" "$TMP/json" '
assert d[0]["status"] == "turn_limit" and d[0]["turns"] == 2, d'

# ---- instruction files in the system prompt: AGENTS.md, else QWEN.md, else CLAUDE.md; plus
# .lode/instructions.md
reset_ws
echo "claude rules" > "$WS/CLAUDE.md"
LODE_SCRIPT_PROMPTS=$TMP/i1.jsonl run --backend "script:$DATA/first.json" -p x > /dev/null 2>&1
echo "agents rules" > "$WS/AGENTS.md"
mkdir -p "$WS/.lode" && echo "local rules" > "$WS/.lode/instructions.md"
LODE_SCRIPT_PROMPTS=$TMP/i2.jsonl run --backend "script:$DATA/first.json" -p x > /dev/null 2>&1
cat "$TMP/i1.jsonl" "$TMP/i2.jsonl" > "$TMP/i.jsonl" 2>/dev/null
pyjson "instruction files" "$TMP/i.jsonl" '
a, b = d[0]["prompt"], d[1]["prompt"]
sys_a = a[:a.index("<|im_end|>")]
sys_b = b[:b.index("<|im_end|>")]
assert "claude rules" in sys_a and "Instructions from CLAUDE.md" in sys_a
assert "agents rules" in sys_b and "claude rules" not in sys_b and "local rules" in sys_b
assert "Workspace: " in sys_b and "Date: " in sys_b'

# ---- stdin as the task; a backend that cannot open: exit 1 (json still ends with a result)
reset_ws
echo "from stdin" | LODE_SCRIPT_PROMPTS=$TMP/stdin.jsonl run --backend "script:$DATA/first.json" \
  > "$TMP/out" 2> "$TMP/err"
grep -q "from stdin" "$TMP/stdin.jsonl" 2>/dev/null && ok "task from stdin" ||
  fail "task from stdin" "$(cat "$TMP/err")"
run --backend "script:$TMP/missing.json" -p x --output-format json > "$TMP/json" 2> "$TMP/err"
rc=$?
[ "$rc" = 1 ] && ok "missing script: exit 1" || fail "missing script: exit 1" "exit $rc"
pyjson "missing script: json error result" "$TMP/json" '
assert d[-1]["type"] == "result" and d[-1]["status"] == "error" and d[-1]["is_error"]
assert "missing.json" in d[-1]["error"]'
summary
