#!/usr/bin/env bash
# The interface in tmux: approvals (y / n / a / d), a 5,000-line bracketed
# paste, Unicode and emoji input, multi-line input, history, resizing while
# an answer streams.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/ui_lib.bash"

# ---- approvals in the default mode
ui_start a1 "$LODE" -c approval=default -c thinking=false --backend "script:$UI_DATA/approve.json"
ui_expect a1 "approve.json · script" "approval: started"
ui_keys a1 "write yes.txt" Enter
ui_expect a1 "Allow write_file?" "a write asks"
ui_expect a1 "[y] yes   [n] no   [a] always" "the prompt shows its keys"
ui_keys a1 d
ui_expect a1 'written after yes' "d shows the details"
ui_keys a1 y
ui_expect a1 "MARK-ONE" "y: the call runs"
[ -f "$WS/yes.txt" ] && ok "y: the file is written" || fail "y: the file is written"
ui_keys a1 "write no.txt" Enter
ui_expect a1 "Allow write_file?" "the second write asks"
ui_keys a1 n
ui_expect a1 "MARK-TWO" "n: the model goes on"
ui_expect a1 "⊘ denied" "n: the card says denied"
[ ! -f "$WS/no.txt" ] && ok "n: nothing written" || fail "n: nothing written"
ui_keys a1 "write both" Enter
ui_expect a1 "Allow write_file?" "the third write asks"
ui_keys a1 a
ui_expect a1 "MARK-THREE" "a: allowed for the session, the next call does not ask"
[ -f "$WS/a1.txt" ] && [ -f "$WS/a2.txt" ] && ok "a: both files written" \
  || fail "a: both files written" "$(ls "$WS")"
ui_keys a1 "/quit" Enter
ui_expect_restored a1 "approval: terminal restored"

# ---- paste, Unicode, multi-line input, history
export LODE_SCRIPT_PROMPTS=$TMP/prompts.jsonl
ui_start p1 "$LODE" -c thinking=false --backend "script:$UI_DATA/echo.json"
ui_expect p1 "echo.json · script" "paste: started"
seq -f "pasted line %g" 1 5000 > "$TMP/paste.txt"
ui_tmux load-buffer -b big "$TMP/paste.txt"
ui_keys p1 "look at this: "
ui_tmux paste-buffer -p -b big -t p1
ui_expect p1 "› look at this: [pasted 5000 lines]" "a 5,000-line paste becomes a chip"
ui_keys p1 Enter
ui_expect p1 "PASTE-DONE" "the pasted message is sent (Enter after the paste)"
if grep -q "pasted line 5000" "$TMP/prompts.jsonl" 2>/dev/null && \
   grep -q "pasted line 1\\\\npasted line 2" "$TMP/prompts.jsonl"; then
  ok "the model gets the whole paste"
else
  fail "the model gets the whole paste" "$(head -c 300 "$TMP/prompts.jsonl" 2>&1)"
fi
ui_keys p1 "héllo 世界 🎉 ok" C-j "second line"
ui_expect p1 "› héllo 世界 🎉 ok" "Unicode and emoji in the input"
ui_expect p1 "  second line" "Ctrl+J inserts a newline"
ui_keys p1 Enter
ui_expect p1 "UNI-DONE" "the Unicode message is sent"
grep -q "héllo 世界 🎉 ok\\\\nsecond line" "$TMP/prompts.jsonl" && ok "the model gets the Unicode text" \
  || fail "the model gets the Unicode text" "$(tail -c 300 "$TMP/prompts.jsonl")"
ui_keys p1 Up
ui_expect p1 "› héllo 世界 🎉 ok" "Up recalls the last message"
ui_keys p1 C-u C-u C-k "trailing\\" Enter "more"
ui_expect p1 "  more" "a trailing backslash continues the line"
ui_keys p1 C-c C-d
ui_expect_restored p1 "paste: terminal restored"
unset LODE_SCRIPT_PROMPTS

# ---- resize while an answer streams: re-wrapped from the transcript
ui_start r1 "$LODE" -c thinking=false --backend "script:$UI_DATA/resize.json"
ui_expect r1 "resize.json · script" "resize: started"
ui_keys r1 "stream please" Enter
ui_expect r1 "Streaming: w0" "resize: streaming"
ui_tmux resize-window -t r1 -x 50 -y 20
ui_expect r1 "RESIZE-END" "the stream ends after a resize"
ui_wait_gone r1 "Esc stops"
w=$(ui_screen r1 | wc -L)
[ "${w:-99}" -le 50 ] && ok "rows fit the new width" || fail "rows fit the new width" "widest $w"
ui_screen r1 | grep -q "w298 w299 RESIZE-END" && ok "the text is re-wrapped, nothing lost" \
  || fail "the text is re-wrapped, nothing lost" "$(ui_screen r1)"
ui_tmux resize-window -t r1 -x 100 -y 30
ui_expect r1 "Streaming: w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18 w19 w20" \
  "wider again: re-wrapped to 100 columns"
ui_snapshot r1 resized.txt "screen after resizing"
ui_keys r1 C-d
ui_expect_restored r1 "resize: terminal restored"

# ---- an edit shows its diff, coloured
ui_start e1 "$LODE" -c thinking=false -c approval=auto-edit --backend "script:$ROOT/tests/data/agent/edit.json"
ui_expect e1 "edit.json · script" "edit: started"
ui_keys e1 "fix it" Enter
ui_expect e1 "+the color of things" "edit: the card shows the diff"
ui_tmux capture-pane -e -p -t e1 | grep -a "+the color" | grep -qa $'\e\[32m' && ok "edit: + lines green" \
  || fail "edit: + lines green" "$(ui_tmux capture-pane -e -p -t e1 | grep -a color | cat -v)"
ui_keys e1 C-d
ui_exited e1
printf 'the colour of things\n' > "$WS/notes.txt"

# ---- colours: on by default, none with NO_COLOR (attributes only)
ui_start c1 "$LODE" -c thinking=false --backend "script:$UI_DATA/stream.json"
ui_expect c1 "stream.json · script" "colour: started"
ui_keys c1 "go" Enter
ui_expect c1 "DONE-MARK" "colour: answered"
ui_tmux capture-pane -e -p -t c1 | grep -q $'\e\[3[0-7]m' && ok "colours by default" \
  || fail "colours by default" "no colour sequences on screen"
ui_keys c1 C-d
ui_exited c1
UI_ENV="NO_COLOR=1" ui_start c2 "$LODE" -c thinking=false --backend "script:$UI_DATA/stream.json"
ui_expect c2 "stream.json · script" "NO_COLOR: started"
ui_keys c2 "go" Enter
ui_expect c2 "DONE-MARK" "NO_COLOR: answered"
ui_tmux capture-pane -e -p -t c2 | grep -q $'\e\[3[0-7]m' \
  && fail "NO_COLOR: monochrome" "$(ui_tmux capture-pane -e -p -t c2 | grep -a $'\e\[3' | head -3 | cat -v)" \
  || ok "NO_COLOR: monochrome"
ui_keys c2 C-d
ui_exited c2

# ---- a signal ends lode with the terminal restored
ui_start k1 "$LODE" -c thinking=false --backend "script:$UI_DATA/echo.json"
ui_expect k1 "echo.json · script" "signal: started"
pid=$(pgrep -P "$(ui_tmux display-message -p -t k1 '#{pane_pid}')" -x lode)
[ -n "$pid" ] && kill -TERM "$pid"
ui_expect_restored k1 "SIGTERM: terminal restored"

summary
