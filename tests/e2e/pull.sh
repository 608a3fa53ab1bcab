#!/usr/bin/env bash
# lode pull against an imitation of the Hugging Face Hub (tests/ref/hub_server.py,
# system python3) on 127.0.0.1: redirects to a "CDN" port that must never see the
# Authorization header, range resume, a 200 answer to a range request, dropped
# and stalled connections, expired signed URLs, 401/403/404, wrong checksums, a
# paginated listing, the disk-space check, --check and the default-model setting.
# The real Hub is never contacted.
. "$(dirname "$0")/lib.bash"

if ! command -v python3 > /dev/null; then
  skip "lode pull (all)" "no python3 for the imitation Hub"
  summary
fi
SRV=
trap '[ -n "$SRV" ] && kill "$SRV" 2> /dev/null; rm -rf "$TMP"' EXIT
python3 "$ROOT/tests/ref/hub_server.py" --port-file "$TMP/ports" --log "$TMP/hub.log" \
  2> "$TMP/server.err" &
SRV=$!
for _ in $(seq 100); do [ -s "$TMP/ports" ] && break; sleep 0.1; done
if ! read -r HUB CDN < "$TMP/ports"; then
  fail "imitation Hub starts" "$(cat "$TMP/server.err")"
  summary
fi
export HF_ENDPOINT=http://127.0.0.1:$HUB
export LODE_PULL_RETRY_BASE_MS=20 LODE_PULL_STALL_S=1 LODE_PULL_CONNECT_TIMEOUT_S=2
unset HF_TOKEN HUGGING_FACE_HUB_TOKEN
# every pull runs under a time limit: a hang fails the test instead of stalling the suite
lp() { timeout 60 "$LODE" "$@"; }
M=$TMP/models
mkdir -p "$M"
touch "$TMP/hub.log"

# same_tree SCENARIO DIR: DIR holds exactly the scenario's files (besides our own)
same_tree() {
  rm -rf "$TMP/ref"
  python3 "$ROOT/tests/ref/hub_server.py" dump "$1" "$TMP/ref" &&
    diff -r -x '.lode-pull.*' "$TMP/ref" "$2" > "$TMP/diff" 2>&1
}
# log_count JQ-LIKE-PYTHON-EXPR: number of logged requests (since mark) matching
mark() { MARK=$(wc -l < "$TMP/hub.log" 2> /dev/null || echo 0); }
count() {
  tail -n +"$((MARK + 1))" "$TMP/hub.log" | python3 -c '
import json, sys
expr = sys.argv[1]
print(sum(1 for l in sys.stdin if eval(expr, {}, {"r": json.loads(l)})))' "$1"
}
mark

# --- a plain pull: files, manifest, default model, other config keys kept
mkdir -p "$XDG_CONFIG_HOME/lode"
echo '{"threads": 3, "ui": {"mouse": false}}' > "$XDG_CONFIG_HOME/lode/config.json"
expect_out "pull: basic" "pulled lode-test/basic" lp pull lode-test/basic --dir "$M/basic"
if same_tree basic "$M/basic"; then ok "pull: files equal the Hub's"
else fail "pull: files equal the Hub's" "$(head -c 400 "$TMP/diff")"; fi
if [ -z "$(find "$M/basic" -name '*.incomplete')" ]; then ok "pull: no .incomplete left"
else fail "pull: no .incomplete left" "$(find "$M/basic")"; fi
if python3 - "$XDG_CONFIG_HOME/lode/config.json" "$M/basic" << 'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["model"] == sys.argv[2], d
assert d["threads"] == 3 and d["ui"] == {"mouse": False}, d
EOF
then ok "pull: sets model in the user config, keeps other keys"
else fail "pull: sets model in the user config, keeps other keys" "$(cat "$XDG_CONFIG_HOME/lode/config.json")"; fi
"$LODE" config > "$TMP/cfg" 2>&1
if grep -qE "^model += $M/basic +\(.*config.json\)" "$TMP/cfg"; then ok "pull: lode config shows the model"
else fail "pull: lode config shows the model" "$(cat "$TMP/cfg")"; fi

# --- a second pull fetches nothing
mark
expect_out "pull: second run is up to date" "up to date" lp pull lode-test/basic --dir "$M/basic"
n=$(count '"/resolve/" in r["path"]')
if [ "$n" = 0 ]; then ok "pull: second run downloads nothing"; else fail "pull: second run downloads nothing" "$n resolve requests"; fi

# --- --check: offline from the manifest; a damaged file is named, then repaired by pull
mark
expect_out "check: intact directory" "4 files verified" lp pull --check --dir "$M/basic"
n=$(count 'True')
if [ "$n" = 0 ]; then ok "check: works offline"; else fail "check: works offline" "$n requests"; fi
printf 'X' | dd of="$M/basic/model-00001-of-00002.safetensors" bs=1 seek=1000 conv=notrunc 2> /dev/null
expect_err "check: damaged file named" 1 "model-00001-of-00002.safetensors: SHA-256 mismatch" \
  lp pull --check --dir "$M/basic"
expect_out "pull: repairs a damaged file" "1 fetched" lp pull lode-test/basic --dir "$M/basic"
expect_out "check: repaired" "4 files verified" lp pull --check --dir "$M/basic"
rm "$M/basic/sub/tokenizer.json"
expect_err "check: missing file named" 1 "sub/tokenizer.json: missing" lp pull --check --dir "$M/basic"
rm "$M/basic/.lode-pull.json"
lp pull lode-test/basic --dir "$M/basic" > /dev/null 2>&1
rm "$M/basic/.lode-pull.json"
expect_out "check: without a manifest, against the Hub" "4 files verified" \
  lp pull lode-test/basic --check --dir "$M/basic"

# --- a token goes to the hub, never to the CDN on another port
mark
HF_TOKEN=hf_good expect_out "pull: private repo with token via CDN" "pulled" \
  lp pull lode-test/cdn-private --dir "$M/private"
n_hub=$(count 'r["srv"] == "hub" and r["auth"] == "Bearer hf_good"')
n_cdn=$(count 'r["srv"] == "cdn"')
n_leak=$(count 'r["srv"] == "cdn" and r["auth"] is not None')
if [ "$n_hub" -ge 4 ] && [ "$n_cdn" -ge 2 ] && [ "$n_leak" = 0 ]; then
  ok "pull: Authorization sent to the hub ($n_hub), never to the CDN ($n_cdn requests)"
else fail "pull: Authorization only to the hub" "hub with auth $n_hub, cdn $n_cdn, leaked $n_leak"; fi
same_tree cdn-private "$M/private" && ok "pull: CDN files equal the Hub's" || fail "pull: CDN files equal the Hub's" "$(head -c 400 "$TMP/diff")"
mark
HF_TOKEN=hf_good expect_out "pull: relative redirect on the hub" "pulled" \
  lp pull lode-test/relredir-private --dir "$M/relredir"
n307=$(count 'r["srv"] == "hub" and r["status"] == 307')
n=$(count 'r["srv"] == "hub" and "?r=1" in r["path"] and r["auth"] == "Bearer hf_good" and r["status"] == 200')
[ "$n307" = 4 ] && [ "$n" = 4 ] && same_tree relredir-private "$M/relredir" &&
  ok "pull: same-host relative redirects keep the token" || fail "pull: same-host redirects" "307s $n307, followed with auth $n"
expect_err "pull: 401 without a token" 1 "401 Unauthorized" lp pull lode-test/cdn-private --dir "$M/p2"
grep -q "HF_TOKEN" "$TMP/err" && ok "pull: 401 message mentions HF_TOKEN" || fail "pull: 401 message mentions HF_TOKEN" "$(cat "$TMP/err")"
HF_TOKEN=hf_bad expect_err "pull: 403 with a bad token" 1 "403 Forbidden" \
  lp pull lode-test/cdn-private --dir "$M/p3"

# --- range resume from an earlier partial file, on the CDN
rm -rf "$TMP/ref"; python3 "$ROOT/tests/ref/hub_server.py" dump cdn "$TMP/ref"
mkdir -p "$M/resume"
head -c 100000 "$TMP/ref/model-00001-of-00002.safetensors" > "$M/resume/model-00001-of-00002.safetensors.incomplete"
mark
expect_out "pull: resumes a partial file" "pulled" lp pull lode-test/cdn --dir "$M/resume"
n=$(count 'r["srv"] == "cdn" and r["range"] == "bytes=100000-" and r["status"] == 206')
[ "$n" = 1 ] && ok "pull: resume asks for bytes=100000- and gets 206" || fail "pull: resume range request" "$n matching requests"
same_tree cdn "$M/resume" && ok "pull: resumed file is correct" || fail "pull: resumed file is correct" "$(cat "$TMP/diff")"

# --- a 200 answer to a range request restarts the file
rm -rf "$TMP/ref"; python3 "$ROOT/tests/ref/hub_server.py" dump norange "$TMP/ref"
mkdir -p "$M/norange"
head -c 5000 "$TMP/ref/model-00001-of-00002.safetensors" > "$M/norange/model-00001-of-00002.safetensors.incomplete"
mark
expect_out "pull: 200 to a range request" "pulled" lp pull lode-test/norange --dir "$M/norange"
n=$(count 'r["range"] == "bytes=5000-" and r["status"] == 200')
[ "$n" = 1 ] && same_tree norange "$M/norange" && ok "pull: 200 to a range request restarts the file" ||
  fail "pull: 200 to a range request restarts the file" "$n requests; $(cat "$TMP/diff")"

# --- a partial file with wrong bytes: the checksum fails, the file is fetched again whole
mkdir -p "$M/badpart"
head -c 100000 /dev/zero > "$M/badpart/model-00001-of-00002.safetensors.incomplete"
expect_out "pull: bad partial file is fetched again" "pulled" lp pull lode-test/cdn --dir "$M/badpart"
same_tree cdn "$M/badpart" && ok "pull: bad partial file repaired" || fail "pull: bad partial file repaired" "$(cat "$TMP/diff")"

# --- dropped and stalled connections resume; expired signed URLs are refreshed; 503 retried
mark
expect_out "pull: connection dropped mid-file" "pulled" lp pull lode-test/cdn-drop --dir "$M/drop"
n=$(count 'r["srv"] == "cdn" and r["status"] == 206')
[ "$n" -ge 2 ] && same_tree cdn-drop "$M/drop" && ok "pull: dropped connections resumed with ranges" ||
  fail "pull: dropped connections resumed with ranges" "$n ranged requests; $(cat "$TMP/diff")"
start=$(date +%s)
expect_out "pull: stalled transfer" "pulled" lp pull lode-test/stall --dir "$M/stall"
el=$(( $(date +%s) - start ))
[ "$el" -lt 5 ] && same_tree stall "$M/stall" && ok "pull: stall detected and resumed in ${el}s" ||
  fail "pull: stall detected and resumed" "${el}s; $(cat "$TMP/diff")"
mark
expect_out "pull: expired signed URL" "pulled" lp pull lode-test/cdn-expire --dir "$M/expire"
n403=$(count 'r["srv"] == "cdn" and r["status"] == 403')
nres=$(count 'r["srv"] == "hub" and "/resolve/" in r["path"] and "model-00001" in r["path"]')
[ "$n403" = 2 ] && [ "$nres" = 2 ] && same_tree cdn-expire "$M/expire" &&
  ok "pull: expired URL refreshed from the resolve URL" || fail "pull: expired URL refreshed" "403s $n403, resolves $nres"
expect_out "pull: 503 retried" "pulled" lp pull lode-test/flaky-slow --dir "$M/flaky"
same_tree flaky-slow "$M/flaky" && ok "pull: flaky, slow server" || fail "pull: flaky, slow server" "$(cat "$TMP/diff")"
expect_out "pull: paginated listing" "(4 files" lp pull lode-test/paged --dir "$M/paged"

# --- Ctrl-C stops cleanly and keeps the partial files; the next run resumes them
LODE_PULL_STALL_S=30 "$LODE" pull lode-test/stall-cdn --dir "$M/int" > "$TMP/int.out" 2> "$TMP/int.err" &
pid=$!
part=$M/int/model-00001-of-00002.safetensors.incomplete
for _ in $(seq 100); do [ "$(stat -c %s "$part" 2> /dev/null || echo 0)" = 150000 ] && break; sleep 0.05; done
kill -INT "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2> /dev/null || break; sleep 0.05; done
if kill -0 "$pid" 2> /dev/null; then kill -KILL "$pid"; fail "pull: Ctrl-C stops the pull" "still running"
else
  wait "$pid"; rc=$?
  [ "$rc" = 1 ] && grep -q "interrupted; run lode pull again to resume" "$TMP/int.err" &&
    [ "$(stat -c %s "$part")" = 150000 ] && ok "pull: Ctrl-C stops the pull, keeps the partial file" ||
    fail "pull: Ctrl-C stops the pull" "exit $rc, part $(stat -c %s "$part" 2>&1)" "$(cat "$TMP/int.err")"
fi
mark
expect_out "pull: resumes after Ctrl-C" "pulled" lp pull lode-test/stall-cdn --dir "$M/int"
n=$(count 'r["range"] == "bytes=150000-" and r["status"] == 206')
[ "$n" = 1 ] && same_tree stall-cdn "$M/int" && ok "pull: resumed from byte 150000 after Ctrl-C" ||
  fail "pull: resumed after Ctrl-C" "$n ranged requests; $(cat "$TMP/diff")"

# --- errors: one clear line, exit 1
expect_err "pull: wrong checksum" 1 "model-00002-of-00002.safetensors: SHA-256 mismatch" \
  lp pull lode-test/cdn-badsum --dir "$M/badsum"
[ ! -e "$M/badsum/model-00002-of-00002.safetensors" ] && [ ! -e "$M/badsum/model-00002-of-00002.safetensors.incomplete" ] &&
  ok "pull: a file failing its checksum is not kept" || fail "pull: a file failing its checksum is not kept" "$(ls -a "$M/badsum")"
expect_err "pull: 404 for a file" 1 "model-00002-of-00002.safetensors: 404 Not Found" \
  lp pull lode-test/missing --dir "$M/missing"
expect_err "pull: unknown repository" 1 "404 Not Found: Repository Not Found" \
  lp pull lode-test/nope --dir "$M/nope"
expect_err "pull: unknown revision" 1 "Revision Not Found" \
  lp pull lode-test/basic --revision v9 --dir "$M/rev"
mark
expect_err "pull: disk space checked first" 1 "not enough disk space" lp pull lode-test/huge --dir "$M/huge"
n=$(count '"/resolve/" in r["path"]')
[ "$n" = 0 ] && ok "pull: nothing downloaded when the disk is too small" || fail "pull: nothing downloaded" "$n"
# a failing write (here the file-size limit; a full disk takes the same path) is one clear line
expect_err "pull: write error names the file" 1 "model-00001-of-00002.safetensors.incomplete: File too large" \
  bash -c "trap '' XFSZ; ulimit -f 200; exec timeout 60 '$LODE' pull lode-test/cdn --dir '$M/fsize'"
expect_err "pull: unsafe path in the listing" 1 "unsafe or missing path '../evil.txt'" \
  lp pull lode-test/evil --dir "$M/evil"
[ ! -e "$M/evil.txt" ] && ok "pull: nothing written outside the directory" || fail "pull: nothing written outside"
HF_ENDPOINT=http://127.0.0.1:1 LODE_PULL_RETRIES=1 expect_err "pull: unreachable endpoint" 1 \
  "lode-test/basic@main" lp pull lode-test/basic --dir "$M/down"
expect_out "pull: --revision with a commit" "pulled" lp pull lode-test/basic \
  --revision "$(python3 -c 'import hashlib; print(hashlib.sha1(b"commit:basic").hexdigest())')" --dir "$M/bycommit"
(cd "$M" && lp pull lode-test/basic --dir rel > /dev/null 2>&1)
python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["model"] == sys.argv[2]' \
  "$XDG_CONFIG_HOME/lode/config.json" "$M/rel" && ok "pull: a relative --dir is recorded as absolute" ||
  fail "pull: a relative --dir is recorded as absolute" "$(cat "$XDG_CONFIG_HOME/lode/config.json")"
expect_out "pull: default directory under XDG_DATA_HOME" "$XDG_DATA_HOME/lode/models/lode-test--basic" \
  lp pull lode-test/basic

# --- usage errors exit 2
expect_err "pull: bad repo name" 2 "not a repository name" lp pull a/b/c
expect_err "pull: bad --jobs" 2 "--jobs" lp pull --jobs 0
expect_err "pull: two repos" 2 "unexpected argument" lp pull a/b c/d

# over the whole run: the CDN never saw an Authorization header
MARK=0
n=$(count 'r["srv"] == "cdn" and r["auth"] is not None')
[ "$n" = 0 ] && ok "pull: no Authorization header ever reached the CDN" || fail "pull: CDN saw Authorization" "$n"
summary
