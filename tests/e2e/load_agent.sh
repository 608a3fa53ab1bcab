#!/usr/bin/env bash
# A codebase in the conversation (lode run --load) and the persistent prefix cache on the engine
# backend: a second run restores the first's prefix, `lode load` beforehand makes the first run
# a restore, cache.enabled=false turns it off, a resumed session rebuilds the same prompt.
. "$(dirname "$0")/lib.bash"
TOKJSON=$ROOT/../shared/reference/qwen3-tokenizer/tokenizer.json
if [ ! -f "$TOKJSON" ]; then skip "lode run --load" "no reference tokenizer at $TOKJSON"; summary; fi
M=$TMP/tiny
P=$TMP/proj
"$LODE" mkmodel --out "$M" --preset tiny --quant mixed --layout text --tokenizer "$TOKJSON" \
  > /dev/null 2>&1 || fail "mkmodel tiny with the Qwen3 tokenizer"
mkdir -p "$P/src"
for i in 1 2; do seq 1 $((i * 40)) | sed "s/^/int v$i = /;s/\$/;/" > "$P/src/f$i.c"; done
cd "$P" || exit 1
R=("$LODE" run --model "$M" --threads 1 --max-tokens 3 --max-turns 1 --approval plan
   --output-format json --load "$P")
# usage field $1 of the result line in $TMP/out
field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$TMP/out" | tail -1; }

export LODE_CACHE_PATH=$TMP/run.db
expect_out "run --load: first run computes" '"restored_tokens":0,' "${R[@]}" -p hi
sid=$(sed -n 's/.*"session_id":"\([^"]*\)".*/\1/p' "$TMP/out")
n1=$(field input_tokens)
if [ "${n1:-0}" -gt 300 ]; then ok "run --load: the files are in the prompt ($n1 tokens)"
else fail "run --load: the files are in the prompt" "$(cat "$TMP/out")"; fi
expect_exit 0 "run --load: second run" "${R[@]}" -p hi
r=$(field restored_tokens); pre=$(field prefill_tokens)
if [ "${r:-0}" -gt 0 ] && [ "${pre:-$n1}" -lt "$n1" ]; then
  ok "run --load: second run restores $r tokens from the cache, computes $pre"
else fail "run --load: second run restores from the cache" "$(cat "$TMP/out")"; fi

LODE_CACHE_ENABLED=false expect_out "cache.enabled=false: nothing restored" \
  '"restored_tokens":0,' "${R[@]}" -p hi

# lode load beforehand: the first run restores the whole loaded prefix
export LODE_CACHE_PATH=$TMP/load.db
expect_out "lode load fills the cache" "0 restored from the cache" \
  "$LODE" load "$P" --model "$M" --threads 1
loaded=$(sed -n 's/^loaded \([0-9]*\) of.*/\1/p' "$TMP/out")
expect_exit 0 "run --load after lode load" "${R[@]}" -p hi
r=$(field restored_tokens)
if [ -n "$loaded" ] && [ "${r:-0}" -ge "$loaded" ]; then
  ok "run --load after lode load restores the loaded $loaded tokens ($r)"
else fail "run --load after lode load restores the loaded prefix" "loaded=$loaded" \
  "$(cat "$TMP/out")"; fi

# resume: the session's context record rebuilds the same prompt (the saved state matches it)
LODE_CACHE_ENABLED=false expect_exit 0 "resume a --load session" "$LODE" run --model "$M" \
  --threads 1 --max-tokens 3 --max-turns 1 --output-format json --resume "$sid" -p again
c=$(field cached_tokens)
if grep -q '"state_restored":true' "$TMP/out" && [ "${c:-0}" -ge "$n1" ]; then
  ok "resume keeps the loaded files in the prompt ($c tokens reused)"
else fail "resume keeps the loaded files in the prompt" "$(cat "$TMP/out")"; fi
# an edit after that: the next turn reuses the whole earlier prompt (the loaded block with it)
# and only the update at the tail is new
echo 'int v1 = 12345;' >> "$P/src/f1.c"
LODE_CACHE_ENABLED=false expect_exit 0 "resume after an edit" "$LODE" run --model "$M" \
  --threads 1 --max-tokens 3 --max-turns 1 --output-format json --resume "$sid" -p edited
c2=$(field cached_tokens); in2=$(field input_tokens)
if [ "${c2:-0}" -ge "$c" ] && [ "${in2:-0}" -gt "$c2" ]; then
  ok "resume after an edit: $c2 tokens reused, the update computed at the tail"
else fail "resume after an edit reuses the loaded block" "$(cat "$TMP/out")"; fi
expect_err "run --load: no such directory" 1 "nope" "${R[@]}" --load "$TMP/nope" -p hi

# edits after loading: the <files> block stays byte-identical (its prefix stays cached) and the
# changed files are appended once, at the tail, as <file-updates>; resume rebuilds the same
LP=$TMP/lp
mkdir -p "$LP/src"
for i in 1 2 3; do seq 1 5 | sed "s/^/int w$i = /;s/\$/;/" > "$LP/src/g$i.c"; done
echo '["ok", "ok", "ok", "ok", "ok"]' > "$TMP/s.json"
S=("$LODE" run --backend "script:$TMP/s.json" --model "$M" --output-format json)
pr() { LODE_SCRIPT_PROMPTS=$TMP/pr$1.jsonl "${S[@]}" "${@:2}" > "$TMP/out" 2> "$TMP/err" ||
  fail "updates: run $1" "$(cat "$TMP/err")"; }
pr 1 --load "$LP" -p one
usid=$(sed -n 's/.*"session_id":"\([^"]*\)".*/\1/p' "$TMP/out")
echo 'int w1 = 99;' >> "$LP/src/g1.c"
pr 2 --resume "$usid" -p two
pr 3 --resume "$usid" -p three
rm "$LP/src/g3.c"; echo 'int w4 = 1;' > "$LP/src/g4.c"
pr 4 --resume "$usid" --load "$LP" -p four
pr 5 --resume "$usid" -p five
if python3 - "$TMP" << 'EOF' 2> "$TMP/py.err"
import json, sys
P = [json.loads(open(f"{sys.argv[1]}/pr{i}.jsonl").readline())["prompt"] for i in range(1, 6)]
blk = P[0][: P[0].index("</files>")]
assert all(p.startswith(blk) for p in P), "the <files> block changed"
assert "<file-updates>" not in P[0]
for p, n in zip(P[1:], (1, 1, 2, 2)):  # the edit once, after turn one and before turn two
    assert p.count("int w1 = 99;") == 1 and p.count("<file-updates>") == n, p
    assert p.index("\none<") < p.index("int w1 = 99;") < p.index("\ntwo<")
assert "=== src/g3.c (deleted) ===" in P[3] and P[3].index("(deleted)") < P[3].index("\nfour<")
assert "=== src/g4.c ===\nint w4 = 1;" in P[3] and "int w4" not in blk
assert P[4].startswith(P[3][: P[3].index("\nfour<")])  # resume rebuilds the same prompt
EOF
then ok "updates: the block stays, edits/deletions/new files are appended once at the tail"
else fail "updates: edits are appended at the tail" "$(tail -3 "$TMP/py.err")"; fi

# the interface: /load, then a message whose prompt holds the files (restored from the cache)
if command -v tmux > /dev/null; then
  . "$ROOT/tests/e2e/ui_lib.bash"
  UI_DEADLINE=120
  ui_start l1 "$LODE" -c thinking=false -c threads=1 --backend cpu --model "$M"
  ui_expect l1 "tiny · cpu" "ui: the model opens"
  ui_keys l1 "/load $P" Enter
  ui_expect l1 "Loaded 2 files" "ui: /load loads the files"
  # sends a message; the prompt must hold the loaded files (> 2000 tokens)
  turn_holds_files() { # message what
    ui_keys l1 "$1" Enter
    # the random model answers until Esc, or ends its turn by itself: either is fine
    local end=$((SECONDS + UI_DEADLINE)) n
    until ui_screen l1 | grep -qE "answering|tok/s" || [ $SECONDS -ge $end ]; do sleep 0.1; done
    ui_keys l1 Escape
    ui_wait_gone l1 "Esc stops"
    ui_keys l1 "/clear" Enter "/context" Enter
    ui_expect l1 "messages. Last" "ui: /context ($2)"
    n=$(ui_screen l1 | tr '\n' ' ' | sed -n 's/.*Last message: *\([0-9]*\) prompt.*/\1/p')
    [ "${n:-0}" -gt 2000 ] && ok "ui: $2: the prompt holds the loaded files ($n tokens)" \
      || fail "ui: $2: the prompt holds the loaded files" "$(ui_screen l1)"
  }
  turn_holds_files hi "after /load"
  # /new keeps the loaded files: they are loaded again into the new session
  ui_keys l1 "/new" Enter
  ui_expect l1 "Loaded 2 files" "ui: /new keeps the loaded files"
  turn_holds_files again "after /new"
  ui_keys l1 C-d
  ui_expect_restored l1 "ui: quit"
else
  skip "ui: /load" "no tmux"
fi
summary
