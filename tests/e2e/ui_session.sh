#!/usr/bin/env bash
# The interface across runs, with the script backend: lode --resume ID and
# --continue show an earlier session and go on with it, the input history is
# kept in $XDG_DATA_HOME/lode/history, a message typed while the model is
# still opening is sent once it is open (LODE_TEST_LOAD_GATE holds the open
# until the test creates a file: nothing depends on speed), /expand toggles
# one tool card, /model explains what it cannot switch.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/ui_lib.bash"

expect_exit 2 "--resume with a command is refused" "$LODE" --resume x run -p hi

# ---- a first session: a streamed turn with a tool card
ui_start a1 "$LODE" -c thinking=true --backend "script:$UI_DATA/stream.json"
ui_expect a1 "stream.json · script" "first run started"
ui_keys a1 "read notes.txt please" Enter
ui_expect a1 "DONE-MARK" "first run: the answer"
ui_wait_gone a1 "Esc stops"
ui_keys a1 C-d
ui_exited a1
SID=$(ui_screen a1 | sed -n 's/^session \([^ ]*\) .*/\1/p' | tail -1)
[ -n "$SID" ] && ok "the session id is printed on exit" || fail "session id" "$(ui_screen a1)"

# ---- --resume ID: the transcript comes back and the conversation goes on
ui_start a2 "$LODE" --resume "$SID" --backend "script:$UI_DATA/echo.json"
ui_expect a2 "resumed session $SID" "--resume: resumed"
ui_expect a2 "⏺ read_file notes.txt" "--resume: the tool card is shown"
ui_expect a2 "DONE-MARK" "--resume: the answer is shown"
ui_keys a2 PPage PPage
ui_expect a2 "› read notes.txt please" "--resume: the user turn is shown"
ui_keys a2 NPage NPage NPage
ui_keys a2 "one more question" Enter
ui_expect a2 "PASTE-DONE" "--resume: the next message is answered"
ui_wait_gone a2 "Esc stops"
# the history file holds what was typed, and Up recalls it in the same run
H=$XDG_DATA_HOME/lode/history
grep -qx "one more question" "$H" 2>/dev/null && ok "history is written" \
  || fail "history is written" "$(cat "$H" 2>&1)"
ui_keys a2 " a secret line" Enter
ui_expect a2 "UNI-DONE" "a line with a leading space is sent"
ui_wait_gone a2 "Esc stops"
grep -q "secret" "$H" && fail "a leading space keeps a line out of the history" "$(cat "$H")" \
  || ok "a leading space keeps a line out of the history"
ui_keys a2 C-d
ui_exited a2

# ---- --continue: the newest session of the project; Up recalls the last run's input
ui_start a3 "$LODE" --continue --backend "script:$UI_DATA/echo.json"
ui_expect a3 "resumed session $SID" "--continue picks the newest session"
ui_expect a3 "› one more question" "--continue: the whole conversation is shown"
# the input is the row above the status line
input_row() { ui_screen "$1" | grep -v '^[[:space:]]*$' | tail -2 | head -1; }
ui_keys a3 Up Up
end=$((SECONDS + UI_DEADLINE))
while [ $SECONDS -lt $end ] && [ "$(input_row a3)" != "› read notes.txt please" ]; do sleep 0.1; done
[ "$(input_row a3)" = "› read notes.txt please" ] && ok "Up recalls input from an earlier run" \
  || fail "Up recalls input from an earlier run" "$(ui_screen a3 | tail -4)"
ui_keys a3 C-u
ui_keys a3 "/resume nosuch-session" Enter
ui_expect a3 "resume nosuch-session:" "/resume with an unknown id says so"
ui_keys a3 "/resume $SID" Enter
ui_expect a3 "resumed session $SID" "/resume ID in the interface"

# ---- /expand toggles one card; Ctrl+O still toggles all
ui_keys a3 "!seq 1 30" Enter
ui_expect a3 "more lines (31 in all" "a long shell card is cut"
ui_keys a3 "/expand" Enter
ui_wait_gone a3 "more lines (31 in all" && ok "/expand shows the newest card in full" \
  || fail "/expand" "$(ui_screen a3)"
ui_expect a3 "    30" "/expand: the last line is shown"
ui_keys a3 "/expand 1" Enter
ui_expect a3 "more lines (31 in all" "/expand 1 folds it again"
ui_keys a3 "/expand 99" Enter
ui_expect a3 "/expand N: N counts" "/expand with no such card says so"
ui_keys a3 C-o
ui_wait_gone a3 "more lines (31 in all" && ok "Ctrl+O expands all" || fail "Ctrl+O" "$(ui_screen a3)"
ui_keys a3 "/model" Enter
ui_expect a3 "/model DIR" "/model shows the model"
ui_keys a3 "/model $TMP" Enter
ui_expect a3 "backend has no checkpoint to switch" "/model on the script backend says why not"
ui_keys a3 C-d
ui_expect_restored a3 "quit, terminal restored"

# ---- a message typed while the model opens waits and is sent when it is open
UI_ENV="LODE_TEST_LOAD_GATE=$TMP/gate" ui_start a4 "$LODE" --backend "script:$UI_DATA/echo.json"
ui_expect a4 "opening the model" "slow open: the prompt is there at once"
ui_keys a4 "typed early" Enter
ui_expect a4 "the message waits until the model is open" "a message typed early waits"
ui_screen a4 | grep -q "PASTE-DONE" && fail "nothing is sent before the model is open" \
  || ok "nothing is sent before the model is open"
touch "$TMP/gate"
ui_expect a4 "PASTE-DONE" "the waiting message is sent once the model is open"
ui_wait_gone a4 "Esc stops"
ui_keys a4 C-d
ui_expect_restored a4 "slow open: quit, terminal restored"

summary
