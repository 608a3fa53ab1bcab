# tests/e2e/ui_lib.bash - drive the interface in a tmux pane (sourced by
# tests/e2e/ui_*.sh after lib.bash). Every wait polls capture-pane until a
# generous deadline: nothing depends on how fast the machine is.
#
#   ui_start NAME CMD...      a detached 100x30 session running CMD in $WS
#                             (with the variables in UI_ENV, "K=V ..." )
#   ui_wait NAME NEEDLE [S]   until the screen holds NEEDLE (fixed string)
#   ui_keys NAME KEYS...      tmux send-keys
#   ui_screen NAME            the screen as text
#   ui_snapshot NAME FILE     compare (normalised) with tests/data/ui/FILE;
#                             LODE_TEST_UI_UPDATE=1 rewrites it

UI_DEADLINE=${UI_DEADLINE:-30}
UI_DATA=$ROOT/tests/data/ui
if ! command -v tmux >/dev/null 2>&1; then
  skip "ui tests" "tmux is not installed"
  summary
fi
UI_SOCK=$TMP/tmux.sock
WS=$TMP/ws
mkdir -p "$WS/.lode"
printf 'the colour of things\n' > "$WS/notes.txt"
export LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=xterm-256color
unset NO_COLOR TMUX
ui_tmux() { tmux -S "$UI_SOCK" -f /dev/null "$@"; }
trap 'ui_tmux kill-server >/dev/null 2>&1; rm -rf "$TMP"' EXIT

ui_start() {
  local name=$1; shift
  # the wrapper keeps the pane open after lode exits and records the tty
  # settings before and after, and the exit code
  local q=""; for a in "$@"; do q+=" $(printf '%q' "$a")"; done
  ui_tmux new-session -d -s "$name" -x 100 -y 30 -c "$WS" \
    "stty -g > $TMP/$name.stty0; env XDG_CONFIG_HOME=$XDG_CONFIG_HOME XDG_DATA_HOME=$XDG_DATA_HOME \
     XDG_CACHE_HOME=$XDG_CACHE_HOME LODE_SCRIPT_PROMPTS=${LODE_SCRIPT_PROMPTS:-} ${UI_ENV:-} $q 2>$TMP/$name.err; \
     echo \$? > $TMP/$name.rc; stty -g > $TMP/$name.stty1; echo LODE-EXITED; sleep 600"
}

ui_screen() { ui_tmux capture-pane -p -t "$1"; }

ui_wait() {
  local name=$1 needle=$2 limit=${3:-$UI_DEADLINE}
  local end=$((SECONDS + limit))
  while [ $SECONDS -lt $end ]; do
    ui_screen "$name" 2>/dev/null | grep -qF -- "$needle" && return 0
    sleep 0.1
  done
  return 1
}

# until NEEDLE is gone from the screen
ui_wait_gone() {
  local name=$1 needle=$2 limit=${3:-$UI_DEADLINE}
  local end=$((SECONDS + limit))
  while [ $SECONDS -lt $end ]; do
    ui_screen "$name" 2>/dev/null | grep -qF -- "$needle" || return 0
    sleep 0.1
  done
  return 1
}

ui_keys() { local name=$1; shift; ui_tmux send-keys -t "$name" "$@"; }

# check NAME NEEDLE TESTNAME: waits, reports ok/fail with the screen
ui_expect() {
  local name=$1 needle=$2 test=$3
  if ui_wait "$name" "$needle"; then ok "$test"; else
    fail "$test" "screen lacks '$needle':" "$(ui_screen "$name" | sed 's/^/| /')"; fi
}

ui_exited() { ui_wait "$1" LODE-EXITED; }

# Snapshots: timings, the sandbox level and the spinner vary between machines.
ui_normalise() {
  sed -E -e 's/[0-9]+\.[0-9]s/N.Ns/g' -e 's/sandbox L[0-9]/sandbox LN/g' \
    -e 's/[0-9]{8}-[0-9]{6}-[0-9a-f]+/SESSION/g' -e 's/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/*/g' \
    -e 's/[[:space:]]+$//'
}

ui_snapshot() {
  local name=$1 file=$UI_DATA/$2 test=$3
  ui_screen "$name" | ui_normalise > "$TMP/snap.txt"
  if [ "${LODE_TEST_UI_UPDATE:-}" = 1 ]; then
    cp "$TMP/snap.txt" "$file"; ok "$test (snapshot updated)"; return
  fi
  if [ ! -f "$file" ]; then fail "$test" "no snapshot $file (LODE_TEST_UI_UPDATE=1 makes it)"; return; fi
  if diff -u "$file" "$TMP/snap.txt" > "$TMP/snap.diff"; then ok "$test"; else
    fail "$test" "screen differs from $file:" "$(head -40 "$TMP/snap.diff")"; fi
}

# The terminal settings after lode exited equal those before it started.
ui_expect_restored() {
  local name=$1 test=$2
  if ui_exited "$name" && cmp -s "$TMP/$name.stty0" "$TMP/$name.stty1"; then ok "$test"; else
    fail "$test" "stty before: $(cat "$TMP/$name.stty0" 2>/dev/null)" \
      "stty after:  $(cat "$TMP/$name.stty1" 2>/dev/null)" "$(ui_screen "$name" | tail -5)"; fi
}
