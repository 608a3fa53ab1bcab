#!/usr/bin/env bash
# The remote backend through `lode run --backend openai:URL`, against the
# imitation server tests/ref/openai_server.py on 127.0.0.1 (the scenario is
# the --remote-model name; see the script). The backend's details are in
# tests/unit/test_openai.c; this checks the agent's round trip.
. "$(dirname "$0")/lib.bash"

unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY
export NO_PROXY='*' LODE_OPENAI_RETRIES=0
command -v python3 > /dev/null || { skip "remote backend" "no python3"; summary; }

python3 tests/ref/openai_server.py --port-file "$TMP/port" --log "$TMP/log" \
  > /dev/null 2> "$TMP/server.err" &
SRV=$!
trap 'kill $SRV 2>/dev/null; wait $SRV 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 300); do [ -s "$TMP/port" ] && break; sleep 0.1; done
[ -s "$TMP/port" ] || { fail "server starts" "$(cat "$TMP/server.err")"; summary; }
PORT=$(cat "$TMP/port")
URL=http://127.0.0.1:$PORT

mkdir -p "$TMP/ws"
echo hi > "$TMP/ws/hello.txt"
run() { "$LODE" run -C "$TMP/ws" --max-turns 4 "$@"; }

# Checks the JSON of the server's last request with a Python expression on `b` (the body).
last_body() {
  python3 - "$TMP/log" "$1" <<'EOF'
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
b = [r for r in reqs if r["method"] == "POST"][-1]["body"]
sys.exit(0 if eval("(" + sys.argv[2] + ")") else 1)
EOF
}

# parsed tool call, its result sent back with its id, then the answer
expect_out "parsed tool call, then the answer" '"result":"The file says hi."' \
  run --backend "openai:$URL/v1" --remote-model agent -p "read hello.txt" --output-format json
if grep -q '"turns":2' "$TMP/out" && grep -q '"cached_tokens":300' "$TMP/out"; then
  ok "turns and usage from the server"; else fail "turns and usage from the server" "$(cat "$TMP/out")"; fi
if last_body '
b["stream"] is True and b["stream_options"]["include_usage"] is True
and b["model"] == "agent" and b["chat_template_kwargs"]["enable_thinking"] in (True, False)
and any(t["function"]["name"] == "read_file" for t in b["tools"])
and [m["role"] for m in b["messages"]][-2:] == ["assistant", "tool"]
and isinstance(b["messages"][-2]["tool_calls"][0]["function"]["arguments"], str)
and json.loads(b["messages"][-2]["tool_calls"][0]["function"]["arguments"]) == {"path": "hello.txt"}
and b["messages"][-1]["tool_call_id"] == b["messages"][-2]["tool_calls"][0]["id"]
and "hi" in b["messages"][-1]["content"]'; then ok "the second request carries the call and its result"
else fail "the second request carries the call and its result" "$(tail -1 "$TMP/log" | head -c 1500)"; fi

# raw XML tool call in the content: the agent parses it
expect_out "raw XML tool call in the content" '"result":"Read it."' \
  run --backend "openai:$URL/v1" --remote-model agentxml -p "read hello.txt" --output-format json
if last_body 'b["messages"][-1]["role"] == "tool" and "hi" in b["messages"][-1]["content"]'; then
  ok "the XML call was run"; else fail "the XML call was run" "$(tail -1 "$TMP/log" | head -c 800)"; fi

# streamed reasoning and text, no model named: the server's first (basic)
run --backend "openai:$URL/v1" -p "hi" --output-format stream-json > "$TMP/out" 2> "$TMP/err"
rc=$?
if [ "$rc" = 0 ] && grep -q '"type":"reasoning"' "$TMP/out" && grep -q '"text":"Hello"' "$TMP/out" \
   && grep -q '"result":"Hello, world"' "$TMP/out"; then ok "stream-json: reasoning and text deltas"
else fail "stream-json: reasoning and text deltas" "exit $rc" "$(head -c 800 "$TMP/out")" \
  "$(head -c 300 "$TMP/err")"; fi

# authentication: the key only from --api-key / LODE_API_KEY
expect_err "401 without a key names --api-key" 1 "LODE_API_KEY" \
  run --backend "openai:$URL/auth/v1" --remote-model basic -p "hi"
expect_err "401 with a wrong key" 1 "refused" \
  run --backend "openai:$URL/auth/v1" --remote-model basic -p "hi" --api-key sk-bad
if grep -q sk-bad "$TMP/err"; then fail "the key is never printed" "$(cat "$TMP/err")"
else ok "the key is never printed"; fi
expect_out "LODE_API_KEY is sent" "Hello, world" \
  env LODE_API_KEY=sk-good "$LODE" run -C "$TMP/ws" --backend "openai:$URL/auth/v1" \
  --remote-model basic -p "hi"

# failures: one line, exit 1
expect_err "error object mid-stream" 1 "out of KV cache" \
  run --backend "openai:$URL/v1" --remote-model error -p "hi"
expect_err "malformed SSE names the line" 1 "protocol error at stream line 3" \
  run --backend "openai:$URL/v1" --remote-model malformed -p "hi"
expect_err "404: wrong URL or model" 1 "wrong URL or model" \
  run --backend "openai:$URL/v1" --remote-model notfound -p "hi"
kill $SRV 2>/dev/null
wait $SRV 2>/dev/null
expect_err "connection refused" 1 "cannot connect" \
  run --backend "openai:$URL/v1" --remote-model basic -p "hi"
summary
