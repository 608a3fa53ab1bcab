#!/usr/bin/env bash
# lode template: the chat template interpreter against Python's Jinja2 as transformers sets it
# up. Without Python: the committed golden renders (tests/data/template/) and the error paths.
# With the reference venv: 240 generated conversations and the one-feature snippets, rendered by
# transformers in one Python process, then by lode, compared byte for byte.
. "$(dirname "$0")/lib.bash"

QWEN=tests/fuzz/fuzz_template/qwen36.jinja   # the official Qwen3.6 template (also built in)

# compare_dir DIR [--template FILE]: each K.json (+ K.args) must render to K.out exactly, or fail
# with exit 1 and a one-line "template:L:C:" message where Python raised (K.err).
compare_dir() {
  local dir=$1; shift
  local n=0 bad=0 first=""
  for j in "$dir"/*.json; do
    local b=${j%.json} args=""
    [ -f "$b.args" ] || continue
    n=$((n + 1))
    read -r args < "$b.args" || true
    # shellcheck disable=SC2086
    "$LODE" template "$@" --messages "$j" $args > "$TMP/got" 2> "$TMP/gerr"; local rc=$?
    if [ -f "$b.err" ]; then
      if [ "$rc" != 1 ] || [ "$(wc -l < "$TMP/gerr")" != 1 ] || ! grep -q ':[0-9]*:[0-9]*: ' "$TMP/gerr"; then
        bad=$((bad + 1)); [ -n "$first" ] || first="$b: wanted an error like '$(cat "$b.err")', exit $rc: $(head -c 200 "$TMP/gerr")"
      fi
    elif [ "$rc" != 0 ] || ! cmp -s "$TMP/got" "$b.out"; then
      bad=$((bad + 1)); [ -n "$first" ] || first="$b: exit $rc $(head -c 200 "$TMP/gerr"); first difference: $(cmp "$TMP/got" "$b.out" 2>&1 | head -1)"
    fi
  done
  echo "$n $bad $first"
}

# ---- usage and input errors
expect_err "no --messages is a usage error" 2 "--messages" "$LODE" template
expect_err "--thinking takes on|off" 2 "--thinking" "$LODE" template --messages x --thinking maybe
printf '[{"role": "user", "content": "hi"},\n {"role": oops}]' > "$TMP/bad.json"
expect_err "malformed messages JSON names file:line:col" 1 "bad.json:2:11:" "$LODE" template --messages "$TMP/bad.json"
printf '[{"role": "user", "content": "\xff"}]' > "$TMP/utf8.json"
expect_err "invalid UTF-8 in messages" 1 "invalid UTF-8" "$LODE" template --messages "$TMP/utf8.json"
echo '[{"role": "user", "content": "hi"}]' > "$TMP/m.json"
printf 'ok\n{%% for x in messages %%}\n  {{ x.role | nosuchfilter }}\n{%% endfor %%}' > "$TMP/t1.jinja"
expect_err "unknown filter: file:line:col" 1 "t1.jinja:3:15: unknown filter 'nosuchfilter'" "$LODE" template --template "$TMP/t1.jinja" --messages "$TMP/m.json"
printf '{%% if messages %%}\n{{ 1 + }}\n{%% endif %%}' > "$TMP/t2.jinja"
expect_err "syntax error: file:line:col" 1 "t2.jinja:2:8:" "$LODE" template --template "$TMP/t2.jinja" --messages "$TMP/m.json"
printf '{{ raise_exception("nope: " ~ messages|length) }}' > "$TMP/t3.jinja"
expect_err "raise_exception is an error" 1 "t3.jinja:1:4: raise_exception: nope: 1" "$LODE" template --template "$TMP/t3.jinja" --messages "$TMP/m.json"
printf '{%% macro r(n) %%}{{ r(n) }}{%% endmacro %%}{{ r(1) }}' > "$TMP/t4.jinja"
expect_err "runaway recursion stops with an error" 1 "nesting limit" "$LODE" template --template "$TMP/t4.jinja" --messages "$TMP/m.json"
printf '{%% for i in range(100000) %%}{%% for j in range(100000) %%}{%% endfor %%}{%% endfor %%}' > "$TMP/t5.jinja"
expect_err "runaway loops stop with an error" 1 "step limit" "$LODE" template --template "$TMP/t5.jinja" --messages "$TMP/m.json"
expect_err "the official template rejects a late system message" 1 "System message must be at the beginning." \
  "$LODE" template --messages <(echo '[{"role":"user","content":"a"},{"role":"system","content":"b"}]')

# ---- exact output, no trailing newline added; tools from the object form or --tools
"$LODE" template --messages "$TMP/m.json" --generation-prompt --thinking off > "$TMP/o" 2>&1
if [ "$(od -An -c "$TMP/o" | tr -s ' ' | tr -d '\n')" = "$(printf '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n' | od -An -c | tr -s ' ' | tr -d '\n')" ]; then
  ok "built-in template, thinking off"; else fail "built-in template, thinking off" "$(cat -A "$TMP/o")"; fi
echo '[{"type": "function", "function": {"name": "f", "description": "ü"}}]' > "$TMP/tools.json"
expect_out "--tools file" '{"type": "function", "function": {"name": "f", "description": "ü"}}' \
  "$LODE" template --messages "$TMP/m.json" --tools "$TMP/tools.json"

# ---- committed golden renders (made by tpl_ref.py from the official template)
read -r n bad first < <(compare_dir tests/data/template)
if [ "$n" -ge 20 ] && [ "$bad" = 0 ]; then ok "golden renders, built-in template ($n cases)"
else fail "golden renders, built-in template ($bad of $n differ)" "$first"; fi
mkdir -p "$TMP/g2" && cp tests/data/template/0[0-3]* "$TMP/g2/"
read -r n bad first < <(compare_dir "$TMP/g2" --template "$QWEN")
if [ "$n" -ge 5 ] && [ "$bad" = 0 ]; then ok "golden renders, --template ($n cases)"
else fail "golden renders, --template ($bad of $n differ)" "$first"; fi

# ---- against Python's Jinja2 (transformers' setup), generated fresh
if PY=$(ref_python); then
  if "$PY" tests/ref/tpl_ref.py gen "$QWEN" "$TMP/gen" 240 "${LODE_TEST_SEED:-1234}" > "$TMP/py.log" 2>&1; then
    read -r n bad first < <(compare_dir "$TMP/gen")
    if [ "$n" -ge 200 ] && [ "$bad" = 0 ]; then ok "Qwen3.6 template = transformers on $n conversations (seed ${LODE_TEST_SEED:-1234})"
    else fail "Qwen3.6 template = transformers ($bad of $n differ, seed ${LODE_TEST_SEED:-1234})" "$first"; fi
  else fail "tpl_ref.py gen" "$(tail -5 "$TMP/py.log")"; fi
  if [ -f "$TMP/gen/snip/msgs.json" ]; then
    n=0; bad=0; first=""
    for t in "$TMP"/gen/snip/s*.jinja; do
      b=${t%.jinja}; n=$((n + 1))
      "$LODE" template --template "$t" --messages "$TMP/gen/snip/msgs.json" > "$TMP/got" 2> "$TMP/gerr"; rc=$?
      if [ -f "$b.err" ]; then [ "$rc" = 1 ] && [ "$(wc -l < "$TMP/gerr")" = 1 ] && continue
      elif [ "$rc" = 0 ] && cmp -s "$TMP/got" "$b.out"; then continue; fi
      bad=$((bad + 1)); [ -n "$first" ] || first="$(basename "$t"): $(head -c 100 "$t") -> exit $rc, got '$(head -c 200 "$TMP/got")' want '$(head -c 200 "$b.out" "$b.err" 2>/dev/null)'"
    done
    if [ "$bad" = 0 ]; then ok "one-feature snippets = transformers ($n)"
    else fail "one-feature snippets ($bad of $n differ)" "$first"; fi
  else fail "tpl_ref.py snip" "no snippets written"; fi
else
  skip "Qwen3.6 template = transformers on generated conversations" "$PY"
  skip "one-feature snippets = transformers" "$PY"
fi
summary
