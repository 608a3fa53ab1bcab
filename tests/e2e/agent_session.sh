#!/usr/bin/env bash
# lode run and sessions: every message committed as it happens, --continue and
# --resume restore the conversation, an interrupt keeps the partial answer,
# kill -9 mid-turn loses no committed message, unknown record kinds are kept.
# Waits only for events in the output, never for a time.
. "$(dirname "$0")/lib.bash"
DATA=$ROOT/tests/data/agent
WS=$TMP/ws
mkdir -p "$WS"
printf 'the colour of the sky\n' > "$WS/notes.txt"
DB=$XDG_DATA_HOME/lode/lode.db
run() { "$LODE" run --cwd "$WS" --thinking off "$@"; }
pyjson() {
  local name=$1 file=$2 code=$3
  if python3 -c "import json,sys
d=[json.loads(l) for l in open(sys.argv[1]) if l.strip()]
$code" "$file" 2> "$TMP/py.err"; then ok "$name"; else
    fail "$name" "$(tail -n 3 "$TMP/py.err")" "output: $(head -c 600 "$file")"; fi
}
# session_json ID FILE: the session's records as JSON (one line, for pyjson).
session_json() {
  "$LODE" sessions show "$1" --format json |
    python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)))' > "$2"
}
# wait_for FILE NEEDLE: until FILE has NEEDLE or the process PID ends (bounded by the script).
wait_for() {
  local file=$1 needle=$2 pid=$3
  while ! grep -qF -- "$needle" "$file" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.05
  done
}

# ---- --continue: the earlier turns are in the next prompt
run --backend "script:$DATA/first.json" -p "remember the secret word" --output-format json \
  > "$TMP/r1" 2> "$TMP/err"
SID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["session_id"])' "$TMP/r1")
[ -n "$SID" ] && ok "first run has a session" || fail "first run has a session" "$(cat "$TMP/err")"
LODE_SCRIPT_PROMPTS=$TMP/p2.jsonl run --backend "script:$DATA/second.json" -p "what was it?" \
  --continue --output-format json > "$TMP/r2" 2> "$TMP/err"; rc=$?
[ "$rc" = 0 ] && ok "continue: exit 0" || fail "continue: exit 0" "exit $rc" "$(cat "$TMP/err")"
pyjson "continue: same session" "$TMP/r2" "assert d[0]['session_id'] == '$SID', d"
pyjson "continue: earlier turns in the prompt" "$TMP/p2.jsonl" '
p = d[0]["prompt"]
assert "remember the secret word" in p and "The secret word is PLUM." in p and "what was it?" in p
assert p.count("You are lode") == 1 and p.index("PLUM") < p.index("what was it?")'
# the session now holds both exchanges, in order, and no empty session was left behind
session_json "$SID" "$TMP/s.json"
pyjson "continue: records in order" "$TMP/s.json" '
m = d[0]["messages"]
assert [x["kind"] for x in m] == ["system", "user", "assistant", "user", "assistant"], m
assert m[4]["body"]["content"] == "You asked about the secret word before."'
n=$("$LODE" sessions --all | grep -c "$WS" || true)
[ "$n" = 1 ] && ok "continue: no empty session left" || fail "continue: no empty session left" "$n"

# ---- --resume by id prefix, after a record of an unknown kind was added
python3 - "$DB" "$SID" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
seq = db.execute("SELECT max(seq) FROM messages WHERE session_id = ?", (sys.argv[2],)).fetchone()[0]
db.execute("INSERT INTO messages(session_id, seq, kind, body, created) VALUES (?,?,?,?,?)",
           (sys.argv[2], seq + 1, "hologram", '{"content": "FROM THE FUTURE"}', int(time.time())))
db.commit()
PY
LODE_SCRIPT_PROMPTS=$TMP/p3.jsonl run --backend "script:$DATA/second.json" -p "third" \
  --resume "${SID:0:17}" > "$TMP/out" 2> "$TMP/err"; rc=$?
[ "$rc" = 0 ] && ok "resume by prefix" || fail "resume by prefix" "exit $rc" "$(cat "$TMP/err")"
pyjson "resume: unknown kinds skipped in the prompt" "$TMP/p3.jsonl" '
p = d[0]["prompt"]
assert "PLUM" in p and "third" in p and "FROM THE FUTURE" not in p'
session_json "$SID" "$TMP/s.json"
pyjson "resume: unknown kinds kept in the store" "$TMP/s.json" '
assert [x["kind"] for x in d[0]["messages"]].count("hologram") == 1'
expect_err "resume unknown id" 1 "nope" run --backend "script:$DATA/second.json" -p x --resume nope

# ---- an interrupt keeps the partial answer (SIGINT once the answer is streaming)
# (lode itself in the background, not a function: $! must be its pid)
"$LODE" run --cwd "$WS" --thinking off --backend "script:$DATA/slow.json" -p "write a lot" \
  --output-format stream-json > "$TMP/slow" 2> "$TMP/err" &
pid=$!
if wait_for "$TMP/slow" '"type":"text"' "$pid"; then kill -INT "$pid"; fi
wait "$pid"; rc=$?
[ "$rc" = 130 ] && ok "interrupt: exit 130" || fail "interrupt: exit 130" "exit $rc" "$(cat "$TMP/err")"
pyjson "interrupt: result says so" "$TMP/slow" '
r = d[-1]
assert r["type"] == "result" and r["status"] == "interrupted" and r["result"].startswith("partial answer")'
ISID=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["session_id"])' "$TMP/slow")
session_json "$ISID" "$TMP/s.json"
pyjson "interrupt: partial answer in the session" "$TMP/s.json" '
m = d[0]["messages"]
a = m[-1]
assert a["kind"] == "assistant" and a["body"]["interrupted"] is True, a
assert a["body"]["content"].startswith("partial answer") and len(a["body"]["content"]) < 4000'

# ---- kill -9 mid-turn: what was committed survives, and the session resumes
"$LODE" run --cwd "$WS" --thinking off --backend "script:$DATA/killed.json" \
  -p "read then talk" --output-format stream-json > "$TMP/killed" 2> "$TMP/err" &
pid=$!
# the second turn is streaming once text appears (the first turn is only a call)
if wait_for "$TMP/killed" '"type":"text"' "$pid"; then kill -9 "$pid"; fi
wait "$pid" 2>/dev/null; rc=$?
[ "$rc" = 137 ] && ok "kill -9 mid-turn" || fail "kill -9 mid-turn" "exit $rc" "$(cat "$TMP/err")"
KSID=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["session_id"])' "$TMP/killed")
session_json "$KSID" "$TMP/s.json"
pyjson "kill -9: committed messages kept" "$TMP/s.json" '
m = d[0]["messages"]
assert [x["kind"] for x in m] == ["system", "user", "assistant", "tool"], [x["kind"] for x in m]
assert m[2]["body"]["tool_calls"][0]["function"]["name"] == "read_file"
assert m[3]["body"]["tool_call_id"] == "call_1" and "colour" in m[3]["body"]["content"]'
LODE_SCRIPT_PROMPTS=$TMP/p4.jsonl run --backend "script:$DATA/edit.json" -p "go on" \
  --resume "$KSID" --approval auto-edit --output-format stream-json > "$TMP/stream" 2> "$TMP/err"
rc=$?
[ "$rc" = 0 ] && ok "kill -9: resume runs" || fail "kill -9: resume runs" "exit $rc" "$(cat "$TMP/err")"
pyjson "kill -9: resume sees the tool result" "$TMP/p4.jsonl" '
p = d[0]["prompt"]
assert "<tool_response>" in p and "colour" in p and p.rstrip().endswith("</think>")'
pyjson "kill -9: call ids go on after the session's" "$TMP/stream" '
assert [e["id"] for e in d if e["type"] == "tool_use"] == ["call_2", "call_3"]'
summary
