#!/usr/bin/env bash
# lode sessions: list, show, export (md/json), rm, prefixes, unknown record kinds.
. "$(dirname "$0")/lib.bash"
DB=$TMP/lode.db
expect_out "empty store lists nothing" "no sessions" "$LODE" sessions --db "$DB"
# the store exists now; add a session the way the agent will (system python's sqlite3)
python3 - "$DB" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
now = int(time.time())
db.execute("INSERT INTO sessions(id, project, title, model, created, updated) VALUES (?,?,?,?,?,?)",
           ("20261127-101010-abcdef", "/work/proj", "fix the bug", "tiny", now, now))
msgs = [("user", '{"content": "why does it crash?"}'),
        ("assistant", '{"reasoning": "look at main", "content": "Let me read it.", "tool_calls": [{"name": "read_file", "arguments": {"path": "main.c"}}]}'),
        ("tool", '{"name": "read_file", "content": "int main(void) { return 0; }"}'),
        ("hologram", '{"from": "the future"}')]
for i, (k, b) in enumerate(msgs, 1):
    db.execute("INSERT INTO messages(session_id, seq, kind, body, created) VALUES (?,?,?,?,?)",
               ("20261127-101010-abcdef", i, k, b, now))
db.commit()
PY
expect_out "list --all" "20261127-101010-abcdef" "$LODE" sessions --db "$DB" list --all
expect_out "show by prefix" "why does it crash?" "$LODE" sessions --db "$DB" show 20261127-1010
expect_out "export md shows tool calls" '`read_file` `{"path":"main.c"}`' "$LODE" sessions --db "$DB" export 20261127-101010-abcdef
expect_out "unknown kinds are shown raw" "hologram (record 4, shown raw)" "$LODE" sessions --db "$DB" show 20261127
"$LODE" sessions --db "$DB" export 20261127 --format json > "$TMP/s.json"
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["messages"])==4 and d["messages"][3]["body"]["from"]=="the future"' "$TMP/s.json"; then
  ok "export json"; else fail "export json" "$(head -c 300 "$TMP/s.json")"; fi
expect_err "show unknown id" 1 "no session 'nope'" "$LODE" sessions --db "$DB" show nope
expect_err "bad format" 2 "--format" "$LODE" sessions --db "$DB" export x --format pdf
expect_out "rm" "removed session" "$LODE" sessions --db "$DB" rm 20261127-101010-abcdef
expect_out "gone after rm" "no sessions" "$LODE" sessions --db "$DB" list --all
summary
