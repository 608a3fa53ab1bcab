#!/usr/bin/env bash
# The agent's tools through `lode tool NAME --args JSON`: normal use, refusals
# by the path policy (outside, symlink escape, .git/hooks), edit_file's
# exactly-once rule and diff, and run_shell through the sandbox.
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

# ---- run_shell
"$LODE" sandbox > "$TMP/level" 2>&1
APPROVE=(); grep -q '^L3' "$TMP/level" || APPROVE=(--approve)
t run_shell "${APPROVE[@]}" --args '{"command":"cat src/m.c; exit 4"}' > "$TMP/out" 2> "$TMP/err"; rc=$?
if grep -q "refus" "$TMP/err"; then skip "run_shell" "sandbox refused here: $(head -c 200 "$TMP/err")"
elif [ $rc = 1 ] && grep -q "exit code 4" "$TMP/err" && grep -q "long b;" "$TMP/err"; then
  ok "run_shell: exit code and output"
else fail "run_shell" "exit $rc" "$(head -c 400 "$TMP/err")"; fi

summary
