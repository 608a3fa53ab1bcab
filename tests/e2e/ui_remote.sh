#!/usr/bin/env bash
# The interface on the remote backend (--backend openai:URL) against the
# imitation server tests/ref/openai_server.py: reasoning, content and a
# parsed tool call streamed into the transcript, the tool run and its result
# sent back, the answer; the status line says what is unavailable remotely.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/ui_lib.bash"

unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY
export NO_PROXY='*'
command -v python3 > /dev/null || { skip "ui on the remote backend" "no python3"; summary; }

# the server's first model is "basic"; tests/data/ui/remote.json replaces its script
python3 "$ROOT/tests/ref/openai_server.py" --port-file "$TMP/port" --log "$TMP/log" \
  --script "$UI_DATA/remote.json" > /dev/null 2> "$TMP/server.err" &
SRV=$!
trap 'kill $SRV 2>/dev/null; wait $SRV 2>/dev/null; ui_tmux kill-server >/dev/null 2>&1; rm -rf "$TMP"' EXIT
for _ in $(seq 300); do [ -s "$TMP/port" ] && break; sleep 0.1; done
[ -s "$TMP/port" ] || { fail "server starts" "$(cat "$TMP/server.err")"; summary; }
URL=http://127.0.0.1:$(cat "$TMP/port")/v1

UI_ENV="NO_PROXY=* LODE_OPENAI_RETRIES=0" \
  ui_start r1 "$LODE" -c thinking=true --backend "openai:$URL"
ui_expect r1 "· openai (no snapshots) · thinking" "remote: the status line names the backend and what it lacks"
ui_expect r1 "no state snapshots" "remote: a notice says what is unavailable"
ui_keys r1 "what is in notes.txt" Enter
ui_expect r1 "REMOTE-DONE" "remote: the answer arrives"
ui_expect r1 "▾ thinking (" "remote: reasoning is shown"
ui_expect r1 "REMOTE-THINK read it." "remote: the reasoning text"
ui_expect r1 "Reading it remotely." "remote: content before the call"
ui_expect r1 "⏺ read_file notes.txt  ✓" "remote: the parsed tool call as a card"
ui_expect r1 "the colour of things" "remote: the tool's result in the card"
ui_expect r1 "colour." "remote: Markdown in the answer"
ui_wait_gone r1 "Esc stops"
if python3 - "$TMP/log" <<'PY'
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
b = [r for r in reqs if r["method"] == "POST"][-1]["body"]
m = b["messages"]
assert m[-1]["role"] == "tool" and "the colour of things" in m[-1]["content"], m[-1]
assert m[-2]["tool_calls"][0]["function"]["name"] == "read_file"
PY
then ok "remote: the tool result goes back to the server"
else fail "remote: the tool result goes back to the server" "$(tail -c 800 "$TMP/log")"; fi
ui_keys r1 "/context" Enter
ui_expect r1 "Context" "remote: /context answers"
ui_keys r1 C-d
ui_expect_restored r1 "remote: quit, terminal restored"
ui_expect r1 "REMOTE-DONE" "remote: the last answer is printed on exit"

summary
