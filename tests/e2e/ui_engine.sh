#!/usr/bin/env bash
# The interface on the CPU engine with the tiny random model: a long pasted
# prompt shows the prefill indicator (or, when the machine is too fast to
# catch it, the stats of the finished turn: nothing here depends on speed),
# Esc stops the random answer, and /model switches to another checkpoint
# with the conversation carried over.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/ui_lib.bash"
TOKJSON=${LODE_TOKENIZER:-$ROOT/../shared/reference/qwen3-tokenizer/tokenizer.json}
if [ ! -f "$TOKJSON" ]; then
  skip "the interface on the tiny model" "no tokenizer.json at $TOKJSON (set LODE_TOKENIZER)"
  summary
fi
for m in tiny tiny2; do
  "$LODE" mkmodel --out "$TMP/$m" --preset tiny --seed "${#m}" --tokenizer "$TOKJSON" > /dev/null ||
    { fail "mkmodel $m"; summary; }
done
UI_DEADLINE=120

ui_start e1 "$LODE" -c thinking=false -c threads=2 -c context=32768 --backend cpu --model "$TMP/tiny"
ui_expect e1 "tiny · cpu · no-think" "engine: the model opens"
seq -f "line %g of a long pasted prompt" 1 1500 > "$TMP/paste.txt"
ui_tmux load-buffer -b big "$TMP/paste.txt"
ui_keys e1 "summarise: "
ui_tmux paste-buffer -p -b big -t e1
ui_expect e1 "[pasted 1500 lines]" "engine: the paste is a chip"
ui_keys e1 Enter
# poll: the prefill indicator while the prompt is read, until the answer streams
saw=0 end=$((SECONDS + UI_DEADLINE))
while [ $SECONDS -lt $end ]; do
  scr=$(ui_screen e1)
  grep -q "prefill [█░]* [0-9.k]*/[0-9.k]*" <<< "$scr" && saw=1
  grep -qE "answering|tok/s|✗" <<< "$scr" && break
  sleep 0.05
done
# the random model rarely ends its turn by itself; when it did, there is nothing to stop
if ui_screen e1 | grep -q "tok/s"; then ok "engine: the random answer ended by itself"; else
  ui_keys e1 Escape
  ui_expect e1 "interrupted (the partial answer is kept)" "engine: Esc stops the random answer"
fi
if [ $saw = 1 ]; then ok "engine: the prefill indicator was shown"
elif ui_wait e1 "tok/s" 5; then ok "engine: the turn's stats are shown (prefill too fast to catch)"
else fail "engine: prefill indicator or stats" "$(ui_screen e1)"; fi
ui_expect e1 "tok/s" "engine: the status line has the speed"

# ---- /model: another checkpoint, the same conversation
ui_keys e1 "/model $TMP/nosuch" Enter
ui_expect e1 "is not a directory" "engine: /model refuses a missing directory"
ui_keys e1 "/model $TMP/tiny2" Enter
ui_expect e1 "tiny2 open; the conversation continues" "engine: /model switches the checkpoint"
ui_expect e1 "tiny2 · cpu" "engine: the status line names the new model"
ui_keys e1 "/clear" Enter "/context" Enter
ui_expect e1 "messages. Last" "engine: /context after the switch"
ui_screen e1 | grep -qE ", [2-9] messages\." && ok "engine: the conversation came along" \
  || fail "engine: the conversation came along" "$(ui_screen e1)"
ui_keys e1 "and now?" Enter
ui_wait e1 "Esc stops" 10 # (a fast machine may be done before it is seen)
end=$((SECONDS + UI_DEADLINE))
while [ $SECONDS -lt $end ] && ui_screen e1 | grep -q "Esc stops" && \
  ! ui_screen e1 | grep -q "answering"; do sleep 0.05; done
ui_keys e1 Escape
ui_wait_gone e1 "Esc stops" && ok "engine: the answer ends (Esc)" || fail "engine: Esc" "$(ui_screen e1)"
# the new model read the whole conversation (the long paste included)
ui_keys e1 "/clear" Enter "/context" Enter
ui_expect e1 "messages. Last" "engine: /context after the next message"
n=$(ui_screen e1 | tr '\n' ' ' | sed -n 's/.*Last message: *\([0-9]*\) prompt.*/\1/p')
[ "${n:-0}" -gt 8000 ] && ok "engine: the new model prefilled the conversation ($n tokens)" \
  || fail "engine: the new model prefilled the conversation" "$(ui_screen e1)"
ui_keys e1 C-d
ui_expect_restored e1 "engine: quit, terminal restored"

# ---- --continue on the same model: the saved model state comes back
ui_start e2 "$LODE" -c thinking=false -c threads=2 -c context=32768 --backend cpu \
  --model "$TMP/tiny2" --continue
ui_expect e2 "(model state restored)" "engine: --continue restores the saved model state"
ui_expect e2 "› and now?" "engine: --continue shows the conversation"
ui_keys e2 C-d
ui_expect_restored e2 "engine: --continue: quit, terminal restored"

summary
