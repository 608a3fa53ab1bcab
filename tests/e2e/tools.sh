#!/usr/bin/env bash
# The agent's tools through `lode tool NAME --args JSON`: normal use, refusals
# by the path policy (outside, symlink escape, .git/hooks, .lode), edit_file's
# exactly-once rule and diff, ignore files, todo, web_fetch against a local
# server, approval verdicts (--approval) and run_shell through the sandbox.
. "$(dirname "$0")/lib.bash"

WS=$TMP/ws OUT=$TMP/outside
mkdir -p "$WS/.git/hooks" "$WS/src" "$OUT"
printf 'int a;\nint b;\n' > "$WS/src/m.c"
echo secret > "$OUT/secret.txt"
ln -s "$OUT" "$WS/link_out"
export HOME=$TMP
t() { local name=$1; shift; "$LODE" tool "$name" --workspace "$WS" "$@"; }

# ---- usage
expect_err "no tool name is a usage error" 2 "no tool name" "$LODE" tool --workspace "$WS"
expect_err "--args must be a JSON object" 2 "JSON object" t read_file --args '[1'
expect_err "unknown tool: exit 1 with the list" 1 "unknown tool" t frob
out=$("$LODE" tool --schemas)
if echo "$out" | grep -q '"name":"edit_file"' && echo "$out" | grep -q '"parameters"'; then
  ok "--schemas prints the tools array"; else fail "--schemas" "$out"; fi

# ---- files
expect_out "read_file numbers lines" $'     2\tint b;' t read_file --args '{"path":"src/m.c"}'
expect_out "write_file creates directories" "created new/x.txt" \
  t write_file --args '{"path":"new/x.txt","content":"hello\n"}'
[ "$(cat "$WS/new/x.txt")" = hello ] && ok "write_file content" || fail "write_file content"
expect_out "edit_file returns a unified diff" "+long b;" \
  t edit_file --args '{"path":"src/m.c","old_string":"int b;","new_string":"long b;"}'
printf 'x\nx\n' > "$WS/dup.txt"
expect_err "edit_file ambiguous: the count" 1 "matches 2 times" \
  t edit_file --args '{"path":"dup.txt","old_string":"x","new_string":"y"}'
expect_out "edit_file replace_all" "2 replacements" \
  t edit_file --args '{"path":"dup.txt","old_string":"x","new_string":"y","replace_all":true}'
expect_out "list_dir marks directories" "src/" t list_dir
printf 'a\0b' > "$WS/bin"
expect_out "read_file: binary note" "binary file" t read_file --args '{"path":"bin"}'

printf 'build/\n' > "$WS/.gitignore"
mkdir -p "$WS/build" && printf 'long b;\n' > "$WS/build/gen.c"
expect_out "grep finds a line" "src/m.c:2:long b;" t grep --args '{"pattern":"long\\s+b"}'
t grep --args '{"pattern":"long b"}' > "$TMP/out" 2>&1
grep -q "build/" "$TMP/out" && fail "grep honours .gitignore" "$(cat "$TMP/out")" || ok "grep honours .gitignore"
expect_out "glob with **" "src/m.c" t glob --args '{"pattern":"**/*.c"}'
expect_err "grep: bad regex is a tool error" 1 "bad pattern" t grep --args '{"pattern":"("}'

# ---- refusals
expect_err "write outside the workspace refused" 1 "refused" \
  t write_file --args "{\"path\":\"$OUT/secret.txt\",\"content\":\"x\"}"
expect_err "write through a symlink escape refused" 1 "resolves outside the workspace" \
  t write_file --args '{"path":"link_out/secret.txt","content":"x"}'
expect_err "write to .git/hooks refused" 1 "refused" \
  t write_file --args '{"path":".git/hooks/pre-commit","content":"x"}'
[ "$(cat "$OUT/secret.txt")" = secret ] && [ ! -e "$WS/.git/hooks/pre-commit" ] &&
  ok "nothing written by the refused calls" || fail "refused calls wrote something"

# ---- lode's own configuration is not writable to tools
mkdir -p "$WS/.lode" && echo '{}' > "$WS/.lode/config.json"
expect_err "write to .lode/config.json refused" 1 "refused" \
  t write_file --args '{"path":".lode/config.json","content":"{\"approval\":\"yolo\"}"}'
[ "$(cat "$WS/.lode/config.json")" = '{}' ] && ok ".lode/config.json unchanged" ||
  fail ".lode/config.json changed"

# ---- .git/info/exclude and nested .gitignore files
mkdir -p "$WS/.git/info" "$WS/src/deep"
printf '*.local\n' > "$WS/.git/info/exclude"
printf 'long b;\n' > "$WS/src/x.local"
printf '*.gen\n' > "$WS/src/.gitignore"
printf 'long b;\n' > "$WS/src/deep/y.gen"
t grep --args '{"pattern":"long b"}' > "$TMP/out" 2>&1
if grep -q "src/m.c" "$TMP/out" && ! grep -q "x.local\|y.gen" "$TMP/out"; then
  ok "grep honours .git/info/exclude and nested .gitignore"
else fail "grep honours .git/info/exclude" "$(cat "$TMP/out")"; fi
t glob --args '{"pattern":"*","path":"src/deep"}' > "$TMP/out" 2>&1
grep -q "y.gen" "$TMP/out" && fail "glob below a directory honours its parents' .gitignore" \
  "$(cat "$TMP/out")" || ok "glob below a directory honours its parents' .gitignore"

# ---- sandbox.hidden / sandbox.read_only from the configuration ("~" is $HOME)
mkdir -p "$TMP/.ssh" && echo KEY > "$TMP/.ssh/id"
expect_out "without sandbox.hidden ~/.ssh is readable" "KEY" \
  t read_file --args "{\"path\":\"$TMP/.ssh/id\"}"
expect_err "sandbox.hidden hides ~/.ssh" 1 "hidden" \
  "$LODE" -c 'sandbox.hidden=~/.ssh' tool read_file --workspace "$WS" \
  --args "{\"path\":\"$TMP/.ssh/id\"}"
expect_err "sandbox.read_only protects a workspace path" 1 "refused" \
  "$LODE" -c 'sandbox.read_only=["src"]' tool write_file --workspace "$WS" \
  --args '{"path":"src/m.c","content":"x"}'

# ---- todo
expect_out "todo returns the list compactly" "[>] two" \
  t todo --args '{"items":[{"content":"one","status":"completed"},{"content":"two","status":"in_progress"}]}'
expect_err "todo: a bad status is a tool error" 1 "pending, in_progress or completed" \
  t todo --args '{"items":[{"content":"one","status":"done"}]}'

# ---- web_fetch: off unless sandbox.network; http(s) only; a local server
expect_err "web_fetch refused with the network off" 1 "network is disabled: sandbox.network is false" \
  t web_fetch --args '{"url":"http://127.0.0.1:9/"}'
expect_err "web_fetch refuses file:" 1 "only http:// and https://" \
  "$LODE" -c sandbox.network=true tool web_fetch --workspace "$WS" \
  --args '{"url":"file:///etc/passwd"}'
mkdir -p "$TMP/www"
printf '<html><head><script>evil()</script></head><body><h1>Title</h1><p>Hello &amp; bye</p></body></html>' \
  > "$TMP/www/index.html"
if command -v python3 > /dev/null; then
  (cd "$TMP/www" && exec python3 -u -m http.server --bind 127.0.0.1 0 > "$TMP/httpd.log" 2>&1) &
  HTTPD=$!
  PORT=
  for _ in $(seq 100); do
    PORT=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$TMP/httpd.log" | head -1)
    [ -n "$PORT" ] && break
    sleep 0.1
  done
  if [ -n "$PORT" ]; then
    "$LODE" -c sandbox.network=true tool web_fetch --workspace "$WS" \
      --args "{\"url\":\"http://127.0.0.1:$PORT/index.html\"}" > "$TMP/out" 2>&1
    if grep -q "(200, text/html)" "$TMP/out" && grep -q "^Hello & bye$" "$TMP/out" &&
       ! grep -q evil "$TMP/out"; then ok "web_fetch: a local page as text"
    else fail "web_fetch: a local page as text" "$(head -c 400 "$TMP/out")"; fi
    expect_err "web_fetch: 404 is a tool error" 1 "(404," \
      "$LODE" -c sandbox.network=true tool web_fetch --workspace "$WS" \
      --args "{\"url\":\"http://127.0.0.1:$PORT/missing\"}"
  else skip "web_fetch: a local page" "python3 http.server did not start"; fi
  kill "$HTTPD" 2> /dev/null; wait "$HTTPD" 2> /dev/null
else skip "web_fetch: a local page" "no python3"; fi

# ---- approval verdicts (--approval: nothing runs)
expect_out "approval: default asks for run_shell" "ask: run_shell: make test" \
  t run_shell --approval default --args '{"command":"make test"}'
expect_out "approval: plan denies writes" "deny: write_file: a.c (plan mode is read-only)" \
  t write_file --approval plan --args '{"path":"a.c","content":""}'
expect_out "approval: auto-edit allows edits" "allow:" \
  t edit_file --approval auto-edit --args '{"path":"a.c"}'
expect_out "approval: tools.allow turns ask into allow" "allow: run_shell: make test" \
  "$LODE" -c 'tools.allow=run_shell(make *)' tool run_shell --approval default \
  --args '{"command":"make test"}'
expect_out "approval: chained commands need their own rule" "ask:" \
  "$LODE" -c 'tools.allow=run_shell(make *)' tool run_shell --approval default \
  --args '{"command":"make test; rm -rf ~"}'
expect_out "approval: tools.deny wins over yolo" "deny: run_shell: sudo rm -rf /" \
  "$LODE" -c 'tools.deny=run_shell(rm *)' tool run_shell --approval yolo \
  --args '{"command":"sudo rm -rf /"}'
expect_out "approval: unknown tools are denied" "deny: unknown tool" t frob --approval yolo
expect_err "approval: bad mode" 2 "not one of" t run_shell --approval sometimes
expect_err "approval: bad rule names the pattern" 2 "bash(ls)" \
  "$LODE" -c 'tools.allow=bash(ls)' tool run_shell --approval default
# the project file may narrow (tools.deny) but not widen (approval, sandbox.*, tools.allow)
echo '{"tools": {"allow": ["run_shell"]}}' > "$WS/.lode/config.json"
expect_err "project file may not set tools.allow" 2 "tools.allow: not allowed in the project file" \
  bash -c "cd '$WS' && '$LODE' tool run_shell --approval default"
echo '{"sandbox": {"network": true}}' > "$WS/.lode/config.json"
expect_err "project file may not set sandbox.network" 2 "sandbox.network: not allowed" \
  bash -c "cd '$WS' && '$LODE' config"
echo '{"tools": {"deny": ["run_shell(make *)"]}}' > "$WS/.lode/config.json"
(cd "$WS" && "$LODE" -c 'tools.allow=run_shell' tool run_shell --approval yolo \
  --args '{"command":"make test"}') > "$TMP/out" 2>&1
grep -q "^deny: " "$TMP/out" && ok "project tools.deny applies" ||
  fail "project tools.deny applies" "$(cat "$TMP/out")"
echo '{}' > "$WS/.lode/config.json"

# ---- run_shell
"$LODE" sandbox > "$TMP/level" 2>&1
APPROVE=(); grep -q '^L3' "$TMP/level" || APPROVE=(--approve)
t run_shell "${APPROVE[@]}" --args '{"command":"cat src/m.c; exit 4"}' > "$TMP/out" 2> "$TMP/err"; rc=$?
if grep -q "refus" "$TMP/err"; then skip "run_shell" "sandbox refused here: $(head -c 200 "$TMP/err")"
elif [ $rc = 1 ] && grep -q "exit code 4" "$TMP/err" && grep -q "long b;" "$TMP/err"; then
  ok "run_shell: exit code and output"
else fail "run_shell" "exit $rc" "$(head -c 400 "$TMP/err")"; fi

summary
