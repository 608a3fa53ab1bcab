#!/usr/bin/env bash
# lode inspect --budget: the CUDA engine's GPU memory plan and the CPU engine's RAM plan
# (engine/budget.c) for the real config (no weights) and for a tiny checkpoint; no GPU needed
# (--gpu-mem / --mem and --threads are given, so the plans do not depend on the machine); and
# lode mkmodel --layers (slices of real layers for the full-shape benchmark).
. "$(dirname "$0")/lib.bash"

CFG=tests/data/ckpt/qwen3.6-35b-a3b-config.json
B=("$LODE" inspect --budget --gpu-mem 48 --config-only "$CFG")

expect_out "budget 262k x 16: KV" "KV cache                                 40.00 GiB      42949672960" \
  "${B[@]}" --ctx 262144 --seqs 16
expect_out "budget 262k x 16: verdict" "verdict: does not fit, 34.19 GiB over" "${B[@]}" --ctx 262144 --seqs 16
expect_out "budget 262k x 16: longest context" "at 16 sequences the longest context that fits is 38049 tokens" \
  "${B[@]}" --ctx 256k --seqs 16
expect_out "budget 262k x 16: most sequences" "at 262144 tokens of context at most 6 sequences fit" \
  "${B[@]}" --ctx 262144 --seqs 16
expect_out "budget 1M x 2: fits" "verdict: fits, 0.41 GiB to spare; 16 of 16 snapshots per sequence" \
  "${B[@]}" --ctx 1M --seqs 2
expect_out "budget 1M: YaRN note" "needs YaRN rope scaling (factor 4)" "${B[@]}" --ctx 1M --seqs 2
expect_out "budget graph pools stated as an estimate" "an estimate, not measured" "${B[@]}"
expect_out "budget bf16 KV" "20480 B/token x 4096 x 1" "${B[@]}" --ctx 4096 --kv bf16

"${B[@]}" --ctx 1M --seqs 2 --json > "$TMP/j" 2>&1
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["fits"] is True and d["total"]==51104681088 and d["snapshots_fit"]==16 and d["kv_cache"]==21474836480' "$TMP/j" 2>/dev/null
then ok "budget --json"; else fail "budget --json" "$(head -c 300 "$TMP/j")"; fi

expect_err "budget bad --kv" 2 "--kv must be fp8 or bf16" "${B[@]}" --kv int4
expect_err "budget bad --ctx" 2 "--ctx wants a positive count" "${B[@]}" --ctx 12x
expect_err "budget bad --gpu-mem" 2 "--gpu-mem wants GiB" "${B[@]}" --gpu-mem -1
expect_err "budget bad --seqs" 2 "--seqs wants 1 to 65536" "${B[@]}" --seqs 0

# a real (tiny) checkpoint: weights come from its tensors
"$LODE" mkmodel --out "$TMP/m" --quant mixed > /dev/null 2>&1 || fail "mkmodel tiny"
expect_out "budget tiny checkpoint fits" "verdict: fits" "$LODE" inspect --budget --gpu-mem 1 --ctx 4096 "$TMP/m"
expect_out "budget tiny checkpoint: weights by precision" "routed experts W4" \
  "$LODE" inspect --budget --gpu-mem 1 "$TMP/m"

# the CPU engine's RAM plan (--mem and --threads given: independent of the machine)
C=("$LODE" inspect --budget --backend cpu --threads 2 --config-only "$CFG")
expect_out "cpu budget 1M on 48 GiB fits" "verdict: fits, 12.23 GiB to spare; 16 of 16 snapshots" \
  "${C[@]}" --ctx 1M --mem 48
expect_out "cpu budget weights are page cache" "mmap'd read-only: page cache, not heap" "${C[@]}" --mem 48
expect_out "cpu budget 1M x 4: longest context" "at 4 sequences the longest context that fits is 502428 tokens" \
  "${C[@]}" --ctx 1M --seqs 4 --mem 48
expect_out "cpu budget 1M x 4: most sequences" "at 1048576 tokens of context at most 2 sequences fit" \
  "${C[@]}" --ctx 1M --seqs 4 --mem 48
expect_out "cpu budget 24 GiB: weights alone" "the weights (24.49 GiB) and the engine's own buffers (0.15 GiB) alone exceed the RAM" \
  "${C[@]}" --ctx 32k --mem 24
expect_out "cpu budget 28 GiB: snapshots" "everything else fits, and 13 snapshots per sequence fit" \
  "${C[@]}" --ctx 262144 --mem 28
expect_out "cpu budget f32 KV" "40960 B/token x 4096 x 1" "${C[@]}" --ctx 4096 --kv f32 --mem 48
expect_out "cpu budget --snaps 0" "0 per sequence x 1 x 65863680 B" "${C[@]}" --snaps 0 --mem 48
"${C[@]}" --ctx 32k --mem 24 --json > "$TMP/j" 2>&1
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["backend"]=="cpu" and d["total"]==27907475008 and d["kv_cache"]==335544320 and d["kernel_scratch"]==2*352256 and d["fits"] is False and d["max_ctx"]==0' "$TMP/j" 2>/dev/null
then ok "cpu budget --json"; else fail "cpu budget --json" "$(head -c 300 "$TMP/j")"; fi
expect_out "cpu budget uses MemTotal by default" "(MemTotal)" "${C[@]}"
expect_err "cpu budget f32 KV needs --backend cpu" 2 "--kv f32 is a CPU cache type" "${B[@]}" --kv f32
expect_err "budget bad --backend" 2 "--backend must be cpu or cuda" "${B[@]}" --backend tpu
expect_err "cpu budget bad --threads" 2 "--threads wants 1 to 4096" "${C[@]}" --threads 0
expect_err "cpu budget bad --mem" 2 "--mem wants GiB" "${C[@]}" --mem x
expect_out "cpu budget tiny checkpoint" "verdict: fits" "$LODE" inspect --budget --backend cpu --mem 1 --ctx 4096 "$TMP/m"

# mkmodel --layers: a slice of real layers, loadable, with the real layers' kinds, precision
# and bytes (tiny dims: no multi-GB files in tests)
"$LODE" mkmodel --out "$TMP/s" --quant mixed --layers 4 --first-layer 2 > /dev/null 2>&1 || fail "mkmodel --layers"
"$LODE" inspect --json "$TMP/s" > "$TMP/j" 2>&1
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); c={p["class"] for p in d["precision"]}
assert d["layers"]==4 and d["layer_types"]==["linear","full","linear","linear"], d["layer_types"]
assert "routed experts W4" in c and "routed experts 16-bit" not in c, c' "$TMP/j" 2>/dev/null
then ok "mkmodel --layers 4 --first-layer 2: kinds and int4 experts"; else fail "mkmodel --layers 4 --first-layer 2" "$(head -c 400 "$TMP/j")"; fi
"$LODE" mkmodel --out "$TMP/s0" --quant mixed --layers 2 > /dev/null 2>&1
"$LODE" inspect --json "$TMP/s0" > "$TMP/j" 2>&1
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); c={p["class"] for p in d["precision"]}
assert d["layer_types"]==["linear","linear"] and "routed experts W4" not in c and "routed experts 16-bit" in c, c' "$TMP/j" 2>/dev/null
then ok "mkmodel --layers 2: boundary layers 0, 1 stay BF16"; else fail "mkmodel --layers 2" "$(head -c 400 "$TMP/j")"; fi
expect_out "mkmodel --layers: loads and runs" "[" "$LODE" logits --model "$TMP/s" --tokens 1,2,3
# the slice's layer i is byte for byte the whole model's layer 2 + i
if python3 - "$TMP/m/model.safetensors" "$TMP/s/model.safetensors" 2 <<'PY'
import json, re, struct, sys
def load(p):
    f = open(p, "rb"); n = struct.unpack("<Q", f.read(8))[0]
    return f, json.loads(f.read(n)), 8 + n
def data(x, name):
    f, h, base = x; a, b = h[name]["data_offsets"]; f.seek(base + a); return f.read(b - a)
full, part, first = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
for name in part[1]:
    if name == "__metadata__":
        continue
    m = re.search(r"layers\.(\d+)\.", name)
    real = name.replace(m.group(0), "layers.%d." % (int(m.group(1)) + first), 1) if m else name
    assert data(part, name) == data(full, real), name
PY
then ok "mkmodel --layers: the real layers' bytes"; else fail "mkmodel --layers: the real layers' bytes"; fi
expect_err "mkmodel --layers out of range" 1 "layers 6..9 are not within the preset's 8 layers" \
  "$LODE" mkmodel --out "$TMP/x" --layers 4 --first-layer 6
expect_err "mkmodel --first-layer alone" 2 "--first-layer needs --layers N" \
  "$LODE" mkmodel --out "$TMP/x" --first-layer 2
expect_err "bench --synthetic names full-layers" 2 "tiny, small or full-layers" \
  "$LODE" bench --synthetic huge

# lode bench kernels --backend cuda without a usable GPU (hidden by CUDA_VISIBLE_DEVICES, so
# this holds on GPU machines too): one line naming why, exit 1
CUDA_VISIBLE_DEVICES= "$LODE" bench kernels --backend cuda > "$TMP/out" 2> "$TMP/err"; rc=$?
if [ "$rc" = 1 ] && [ "$(wc -l < "$TMP/err")" = 1 ] && grep -qE "bench kernels: (no CUDA GPU|lode was built without CUDA)" "$TMP/err"
then ok "bench kernels --backend cuda without GPU"; else fail "bench kernels --backend cuda without GPU" "exit $rc" "$(cat "$TMP/err")"; fi
expect_err "bench kernels bad --backend" 2 "--backend must be cpu or cuda" "$LODE" bench kernels --backend tpu
summary
