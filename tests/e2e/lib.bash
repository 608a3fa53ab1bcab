# tests/e2e/lib.bash - helpers for end-to-end tests that drive build/lode.
# Source it, call the checks, end with `summary`. Output follows the runner's
# format (ok / FAIL / skip lines, then "# summary: ..."), see tests/run.
#
#   . "$(dirname "$0")/lib.bash"
#   expect_exit 2 "unknown command" "$LODE" frobnicate
#   expect_out "version" "lode " "$LODE" --version
#   PY=$(ref_python) || skip "tokenizer vs HF" "$PY"
#   summary

set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
BUILD=${BUILD:-build}
LODE=${LODE:-$ROOT/$BUILD/lode}
T_P=0; T_F=0; T_S=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/lode-e2e.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
# Tests never read the developer's own configuration or data.
export XDG_CONFIG_HOME=$TMP/xdg/config XDG_DATA_HOME=$TMP/xdg/data XDG_CACHE_HOME_REAL=${XDG_CACHE_HOME:-$HOME/.cache}
export XDG_CACHE_HOME=$TMP/xdg/cache
unset $(env | grep -o '^LODE_[A-Z0-9_]*' | grep -v '^LODE_TEST' || true) 2>/dev/null

ok()   { echo "ok   $1"; T_P=$((T_P + 1)); }
fail() { echo "FAIL $1"; shift; [ $# -gt 0 ] && printf '    %s\n' "$@"; T_F=$((T_F + 1)); }
skip() { echo "skip $1 ($2)"; T_S=$((T_S + 1)); }
summary() { echo "# summary: $T_P passed, $T_F failed, $T_S skipped"; [ "$T_F" = 0 ]; exit $?; }

# expect_exit CODE NAME CMD... : runs CMD, checks its exit status.
expect_exit() {
  local want=$1 name=$2; shift 2
  "$@" > "$TMP/out" 2> "$TMP/err"; local rc=$?
  if [ "$rc" = "$want" ]; then ok "$name"; else
    fail "$name" "exit $rc, wanted $want" "stderr: $(head -c 400 "$TMP/err")"; fi
}

# expect_out NAME NEEDLE CMD... : CMD succeeds and its stdout contains NEEDLE.
expect_out() {
  local name=$1 needle=$2; shift 2
  "$@" > "$TMP/out" 2> "$TMP/err"; local rc=$?
  if [ "$rc" = 0 ] && grep -qF -- "$needle" "$TMP/out"; then ok "$name"; else
    fail "$name" "exit $rc; stdout lacks '$needle'" "stdout: $(head -c 400 "$TMP/out")" \
      "stderr: $(head -c 400 "$TMP/err")"; fi
}

# expect_err NAME CODE NEEDLE CMD... : CMD exits CODE with NEEDLE on one stderr line.
expect_err() {
  local name=$1 want=$2 needle=$3; shift 3
  "$@" > "$TMP/out" 2> "$TMP/err"; local rc=$?
  if [ "$rc" = "$want" ] && grep -qF -- "$needle" "$TMP/err"; then ok "$name"; else
    fail "$name" "exit $rc (wanted $want); stderr lacks '$needle'" "stderr: $(head -c 400 "$TMP/err")"; fi
}

# ref_python: prints the reference venv's python, or a reason and status 1.
ref_python() {
  XDG_CACHE_HOME=$XDG_CACHE_HOME_REAL "$ROOT/scripts/test-venv" --python
}
