#!/usr/bin/env bash
# The decode profile (lode bench --profile, LODE_PROFILE=1): a table of time and bytes per op
# class on stderr, and the same logits as without it (it times the shared expert apart).
. "$(dirname "$0")/lib.bash"

M=$TMP/tiny-mixed
"$LODE" mkmodel --out "$M" --preset tiny --quant mixed > /dev/null 2>&1 || fail "mkmodel tiny mixed"

"$LODE" bench --model "$M" --prompt 4 --gen 6 --threads 2 --profile > "$TMP/out" 2> "$TMP/err"
rc=$?
if [ "$rc" = 0 ] && grep -q "^lode profile: 6 decode steps" "$TMP/err" &&
  grep -qE "^lm_head +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+$" "$TMP/err" &&
  grep -qE "^(GDN projections|experts|shared expert|router|total) " "$TMP/err" &&
  grep -q "^decode " "$TMP/out"; then
  ok "bench --profile prints the per-op table"
else
  fail "bench --profile" "exit $rc" "$(head -c 400 "$TMP/err")"
fi

"$LODE" bench --model "$M" --prompt 4 --gen 2 --threads 1 > "$TMP/out" 2> "$TMP/err"
if ! grep -q "lode profile" "$TMP/err"; then ok "no table without --profile"
else fail "no table without --profile" "$(head -c 200 "$TMP/err")"; fi

# one token is a decode step: with and without the profile, the same logits bit for bit
"$LODE" logits --model "$M" --tokens 7 --threads 2 --out "$TMP/a.f32" 2> "$TMP/e1"
LODE_PROFILE=1 "$LODE" logits --model "$M" --tokens 7 --threads 2 --out "$TMP/b.f32" 2> "$TMP/e2"
if [ -s "$TMP/a.f32" ] && cmp -s "$TMP/a.f32" "$TMP/b.f32" && grep -q "^lode profile: 1 decode steps" "$TMP/e2"
then ok "LODE_PROFILE=1: same logits"
else fail "LODE_PROFILE=1 changes nothing" "$(head -c 300 "$TMP/e1") $(head -c 300 "$TMP/e2")"; fi

summary
