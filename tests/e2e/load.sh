#!/usr/bin/env bash
# lode load: the plan (ignore files, skipped files, budget), prefill into the prefix cache, a
# second load of the unchanged tree restored from it, Ctrl-C keeping what was computed.
. "$(dirname "$0")/lib.bash"
TOKJSON=$ROOT/../shared/reference/qwen3-tokenizer/tokenizer.json
if [ ! -f "$TOKJSON" ]; then skip "lode load" "no reference tokenizer at $TOKJSON"; summary; fi
M=$TMP/tiny
DB=$TMP/cache.db
P=$TMP/proj
"$LODE" mkmodel --out "$M" --preset tiny --quant mixed --layout text --tokenizer "$TOKJSON" \
  > /dev/null 2>&1 || fail "mkmodel tiny with the Qwen3 tokenizer"
mkdir -p "$P/src" "$P/build"
printf 'build/\n*.log\n' > "$P/.gitignore"
printf 'src/secret*\n' > "$P/.lodeignore"
for i in $(seq 1 12); do seq 1 $((i * 30)) | sed "s/^/int v$i = /;s/\$/;/" > "$P/src/f$i.c"; done
echo 'int s;' > "$P/src/secret.c"
echo 'x' > "$P/build/out.c"
echo 'x' > "$P/run.log"
printf 'a\0b' > "$P/blob.bin"
L=("$LODE" load "$P" --model "$M" --db "$DB" --threads 1 --no-git)

expect_out "list: loaded files" "src/f1.c" "${L[@]}" --list
cp "$TMP/out" "$TMP/list.out"
if grep -q -e secret.c -e build/out.c -e run.log "$TMP/list.out"; then
  fail "ignore files honoured" "$(cat "$TMP/list.out")"; else ok "ignore files honoured"; fi
expect_out "binary files are skipped and listed" "left out  blob.bin (binary" cat "$TMP/list.out"
expect_out "a small budget leaves files out" "(over the budget" "${L[@]}" --list --budget 2000
expect_out "first load computes" "0 restored from the cache" "${L[@]}" --budget 6000
expect_out "second load of the unchanged tree restores everything" \
  "restored from the cache, 0 computed" "${L[@]}" --budget 6000
expect_err "no such directory" 1 "nope" "$LODE" load "$TMP/nope" --model "$M" --db "$DB"

# Ctrl-C: exit 130 with the work so far cached (or 0 when it finished first)
"${L[@]}" --budget 60000 > "$TMP/int.out" 2> "$TMP/int.err" &
pid=$!
sleep 1
kill -INT "$pid" 2> /dev/null
wait "$pid"; rc=$?
if [ $rc = 130 ] && grep -q "interrupted at token" "$TMP/int.err"; then ok "Ctrl-C stops the prefill (exit 130)"
elif [ $rc = 0 ]; then ok "Ctrl-C stops the prefill (finished before the signal)"
else fail "Ctrl-C" "exit $rc" "$(cat "$TMP/int.err")"; fi
summary
