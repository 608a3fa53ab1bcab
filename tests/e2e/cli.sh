#!/usr/bin/env bash
# The command line: help, version, unknown commands and options, configuration layers.
. "$(dirname "$0")/lib.bash"

expect_out "--version" "lode " "$LODE" --version
expect_out "--help lists commands" "config" "$LODE" --help
expect_out "help config" "lode config" "$LODE" help config
expect_err "unknown command exits 2" 2 "unknown command 'frobnicate'" "$LODE" frobnicate
expect_err "unknown option exits 2" 2 "unknown option '--nope'" "$LODE" config --nope
expect_err "help for unknown command" 2 "unknown command 'nope'" "$LODE" help nope

# configuration: defaults, user file, project file, environment, flags, each with its origin
mkdir -p "$XDG_CONFIG_HOME/lode" "$TMP/proj/.lode" "$TMP/proj/sub"
echo '{"threads": 3, "ui": {"mouse": false}}' > "$XDG_CONFIG_HOME/lode/config.json"
echo '{"threads": 5}' > "$TMP/proj/.lode/config.json"
(cd "$TMP/proj/sub" && "$LODE" config) > "$TMP/cfg" 2>&1
if grep -qE '^threads += 5 +\(.*proj/.lode/config.json\)' "$TMP/cfg" \
   && grep -qE '^ui.mouse += false +\(.*xdg/config/lode/config.json\)' "$TMP/cfg" \
   && grep -qE '^thinking += true +\(default\)' "$TMP/cfg"; then ok "config layers and origins"
else fail "config layers and origins" "$(cat "$TMP/cfg")"; fi
(cd "$TMP/proj" && LODE_THREADS=7 "$LODE" config) > "$TMP/cfg" 2>&1
if grep -qE '^threads += 7 +\(environment LODE_THREADS\)' "$TMP/cfg"; then ok "environment overrides files"
else fail "environment overrides files" "$(cat "$TMP/cfg")"; fi
(cd "$TMP/proj" && LODE_THREADS=7 "$LODE" -c threads=9 config) > "$TMP/cfg" 2>&1
if grep -qE '^threads += 9 +\(flag -c\)' "$TMP/cfg"; then ok "flags override environment"
else fail "flags override environment" "$(cat "$TMP/cfg")"; fi
(cd "$TMP/proj" && "$LODE" config --json) > "$TMP/cfg.json" 2>&1
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["threads"]["value"]==5' "$TMP/cfg.json"; then
  ok "config --json"; else fail "config --json" "$(head -c 300 "$TMP/cfg.json")"; fi

# invalid files name the file, line and key, and exit 2
printf '{\n  "threads": "many"\n}\n' > "$TMP/proj/.lode/config.json"
expect_err "config: wrong type names file:line and key" 2 "config.json:2: threads:" \
  bash -c "cd '$TMP/proj' && '$LODE' config"
printf '{\n  "threads": 4,\n  "nosuchkey": 1\n}\n' > "$TMP/proj/.lode/config.json"
expect_err "config: unknown key" 2 "config.json:3: nosuchkey: unknown key" \
  bash -c "cd '$TMP/proj' && '$LODE' config"
printf '{\n  "threads": 4,\n  oops\n}\n' > "$TMP/proj/.lode/config.json"
expect_err "config: malformed JSON" 2 "config.json:3:" bash -c "cd '$TMP/proj' && '$LODE' config"
printf '{"approval": "sometimes"}' > "$TMP/proj/.lode/config.json"
expect_err "config: bad enum lists the choices" 2 "plan, default, auto-edit, yolo" \
  bash -c "cd '$TMP/proj' && '$LODE' config"
rm "$TMP/proj/.lode/config.json"
expect_err "config: bad environment value" 2 "LODE_THREADS" \
  bash -c "cd '$TMP/proj' && LODE_THREADS=x '$LODE' config"
expect_err "config: bad -c" 2 "-c" "$LODE" -c threads config


summary
