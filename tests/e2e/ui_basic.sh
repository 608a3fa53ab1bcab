#!/usr/bin/env bash
# The interface in tmux with the script backend: start-up, a streamed turn
# with reasoning and a tool card, key screens against snapshots, slash
# commands, Esc, quitting (the terminal restored).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/ui_lib.bash"

expect_err "no terminal: the interface refuses" 2 "needs a terminal" \
  "$LODE" --backend "script:$UI_DATA/stream.json"

# ---- start-up, a streamed turn
ui_start s1 "$LODE" -c thinking=true --backend "script:$UI_DATA/stream.json"
ui_expect s1 "stream.json · script · thinking · default" "start-up: prompt and status line"
ui_wait_gone s1 "opening the model"
ui_snapshot s1 start.txt "start-up screen"
ui_keys s1 "read notes.txt please" Enter
ui_expect s1 "DONE-MARK" "a streamed answer arrives"
ui_expect s1 "› read notes.txt please" "the user turn is shown"
ui_expect s1 "▾ thinking (51 chars" "reasoning with its size"
ui_expect s1 "⏺ read_file notes.txt  ✓" "a tool card with its status"
ui_expect s1 "│ notes.txt │ 1     │" "a Markdown table"
ui_wait_gone s1 "Esc stops"
ui_snapshot s1 stream.txt "streamed turn screen"
ui_keys s1 C-g
ui_expect s1 "▸ thinking (51 chars" "Ctrl+G collapses the reasoning"

# ---- slash commands
ui_keys s1 "/find notes.txt" Enter
ui_expect s1 "found 'notes.txt'" "/find scrolls to a match"
ui_keys s1 "/find zzzz-nowhere" Enter
ui_expect s1 "no earlier row holds" "/find says when nothing matches"
ui_keys s1 NPage NPage NPage
ui_keys s1 "/help" Enter
ui_expect s1 "Keys: Enter sends" "/help"
ui_keys s1 "/clear" Enter
ui_wait_gone s1 "Keys: Enter sends" && ok "/clear" || fail "/clear" "$(ui_screen s1)"
ui_keys s1 "/tools" Enter
ui_expect s1 "read_file" "/tools lists the tools"
ui_keys s1 "/mode yolo" Enter
ui_expect s1 "· thinking · yolo" "/mode sets the approval mode"
ui_keys s1 BTab
ui_expect s1 "· thinking · plan" "Shift+Tab cycles the mode"
ui_keys s1 "/nothink" Enter
ui_expect s1 "· no-think · plan" "/nothink"
ui_keys s1 C-t
ui_expect s1 "· thinking · plan" "Ctrl+T toggles thinking"
ui_keys s1 "/sessions" Enter
ui_expect s1 "Sessions in" "/sessions"
ui_keys s1 "/context" Enter
ui_expect s1 "Context" "/context"
ui_keys s1 "!echo hi-from-shell" Enter
ui_expect s1 "⏺ ! echo hi-from-shell" "!cmd shows a card"
ui_expect s1 "    hi-from-shell" "!cmd output"
ui_keys s1 "/nosuch" Enter
ui_expect s1 "unknown command /nosuch" "an unknown command says so"
ui_keys s1 "/he" Tab
ui_expect s1 "› /help" "Tab completes a /command"
ui_keys s1 C-u "tell @no" Tab
ui_expect s1 "› tell @notes.txt" "Tab completes an @path"
ui_keys s1 C-u "/export $TMP/out.md" Enter
ui_expect s1 "exported the conversation" "/export"
grep -q "read notes.txt please" "$TMP/out.md" 2>/dev/null && ok "/export writes the conversation" \
  || fail "/export writes the conversation" "$(head -5 "$TMP/out.md" 2>&1)"

# ---- Ctrl+C clears, twice quits; the terminal comes back as it was
ui_keys s1 "some text"
ui_expect s1 "› some text" "typing"
ui_keys s1 C-c
ui_expect s1 "Ctrl+C again to quit" "Ctrl+C clears the input"
ui_keys s1 C-c
ui_expect_restored s1 "Ctrl+C twice quits, terminal restored"
ui_expect s1 "DONE-MARK" "the last answer is printed on exit"
ui_expect s1 "session " "the session id is printed on exit"

# ---- Esc stops a slow answer; the partial one is kept; the next message runs
ui_start s2 "$LODE" -c thinking=false --backend "script:$UI_DATA/slow.json"
ui_expect s2 "slow.json · script" "slow: started"
ui_keys s2 "go" Enter
ui_expect s2 "partial answer" "streaming starts"
ui_keys s2 Escape
ui_expect s2 "interrupted (the partial answer is kept)" "Esc interrupts"
ui_screen s2 | grep -q "END-OF-SLOW" && fail "the stream stopped" "$(ui_screen s2)" \
  || ok "the stream stopped"
ui_keys s2 "again" Enter
ui_expect s2 "MARK-AFTER" "the next message runs after a stop"
# Ctrl+Z suspends (the screen is given back), SIGCONT resumes and redraws
ui_keys s2 C-z
ui_wait_gone s2 "slow.json · script" && ok "Ctrl+Z suspends" || fail "Ctrl+Z suspends" "$(ui_screen s2)"
pid=$(pgrep -P "$(ui_tmux display-message -p -t s2 '#{pane_pid}')" -x lode)
[ -n "$pid" ] && kill -CONT "$pid"
ui_expect s2 "slow.json · script" "SIGCONT resumes and redraws"
ui_keys s2 "typed after resume"
ui_expect s2 "› typed after resume" "the input works after resuming"
ui_keys s2 C-u
ui_keys s2 C-d
ui_expect_restored s2 "Ctrl+D quits on empty input, terminal restored"
code=$(cat "$TMP/s2.rc" 2>/dev/null)
[ "$code" = 0 ] && ok "exit code 0" || fail "exit code 0" "got '$code'" "$(cat "$TMP/s2.err")"

# ---- first run: no model configured
ui_start s3 "$LODE"
ui_expect s3 "No model is configured" "first-run screen"
ui_keys s3 "/nonexistent/dir" Enter
ui_expect s3 "not a directory" "first run: a bad path is refused"
ui_keys s3 "/quit" Enter
ui_expect_restored s3 "/quit leaves, terminal restored"

summary
