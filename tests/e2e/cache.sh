#!/usr/bin/env bash
# lode cache: stats, bench (save -> restore, same logits), verify of a damaged chunk, prune,
# clear, usage errors, and writers killed with SIGKILL never leaving a usable partial state.
. "$(dirname "$0")/lib.bash"
M=$TMP/tiny
DB=$TMP/cache.db
"$LODE" mkmodel --out "$M" --preset tiny --quant mixed --layout text > /dev/null 2>&1 || fail "mkmodel tiny"

expect_out "empty cache" "blocks      0" "$LODE" cache --db "$DB" stats
expect_out "default location is under XDG_CACHE_HOME" "$XDG_CACHE_HOME/lode/cache.db" "$LODE" cache
expect_out "bench: restored state gives the uninterrupted logits" "identical to the uninterrupted run" \
  "$LODE" cache --db "$DB" bench --model "$M" --tokens 700 --threads 1
cp "$TMP/out" "$TMP/bench.out"
expect_out "bench restores every token" "restore      700 tokens" cat "$TMP/bench.out"
"$LODE" cache --db "$DB" stats --json > "$TMP/s.json"
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["blocks"]==2 and d["snapshots"]==1 and d["models"]==1, d' "$TMP/s.json"; then
  ok "stats --json counts blocks and snapshots"; else fail "stats --json" "$(cat "$TMP/s.json")"; fi

# damage one entry's file behind lode's back (payloads live in "$DB-data/<id>"): verify finds
# it and removes that entry only
python3 - "$DB" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
i, n = db.execute("SELECT id, size FROM entries ORDER BY id LIMIT 1").fetchone()
with open("%s-data/%d" % (sys.argv[1], i), "r+b") as f:
    f.write(bytes(n))
PY
expect_out "verify detects and removes a damaged chunk" "checked 3 entries, 1 damaged" "$LODE" cache --db "$DB" verify
expect_out "verify again: clean" "checked 2 entries, 0 damaged" "$LODE" cache --db "$DB" verify

expect_out "prune to a small budget" "freed" "$LODE" cache --db "$DB" prune --budget 1K
expect_out "pruned cache is empty" "snapshots   0" "$LODE" cache --db "$DB" stats
expect_out "clear" "cleared" "$LODE" cache --db "$DB" clear
expect_err "unknown subcommand" 2 "unknown subcommand 'frob'" "$LODE" cache frob
expect_err "bad budget" 2 "--budget" "$LODE" cache prune --budget lots

# kill -9 during writes, in a loop: the file always opens, nothing damaged, nothing half-written
bad=0
# (snapshots every 256 tokens spread the writes over the whole run; each round its own prompt)
for i in 1 2 3 4 5 6; do
  "$LODE" cache --db "$DB" bench --model "$M" --tokens 2000 --every 256 --seed $i --threads 1 \
    > /dev/null 2>&1 &
  pid=$!
  sleep "0.$((RANDOM % 10))"
  kill -9 "$pid" 2> /dev/null
  wait "$pid" 2> /dev/null
  "$LODE" cache --db "$DB" verify > "$TMP/v" 2>&1 || { bad=1; echo "    round $i: $(cat "$TMP/v")"; }
  grep -q " 0 damaged" "$TMP/v" || { bad=1; echo "    round $i: $(cat "$TMP/v")"; }
  "$LODE" cache --db "$DB" stats --json > "$TMP/s.json" 2>&1 || bad=1
  grep -q '"writing": 0' "$TMP/s.json" || { bad=1; echo "    round $i: $(cat "$TMP/s.json")"; }
done
if [ $bad = 0 ]; then ok "kill -9 during writes never leaves a damaged or partial state"; else
  fail "kill -9 during writes"; fi
summary
