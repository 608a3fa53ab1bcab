#!/usr/bin/env bash
# lode inspect --budget: the CUDA engine's GPU memory plan (engine/budget.c) for the real
# config (no weights) and for a tiny checkpoint; no GPU needed (--gpu-mem is always given, so
# the plan does not depend on the machine).
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

# lode bench kernels --backend cuda without a usable GPU (hidden by CUDA_VISIBLE_DEVICES, so
# this holds on GPU machines too): one line naming why, exit 1
CUDA_VISIBLE_DEVICES= "$LODE" bench kernels --backend cuda > "$TMP/out" 2> "$TMP/err"; rc=$?
if [ "$rc" = 1 ] && [ "$(wc -l < "$TMP/err")" = 1 ] && grep -qE "bench kernels: (no CUDA GPU|lode was built without CUDA)" "$TMP/err"
then ok "bench kernels --backend cuda without GPU"; else fail "bench kernels --backend cuda without GPU" "exit $rc" "$(cat "$TMP/err")"; fi
expect_err "bench kernels bad --backend" 2 "--backend must be cpu or cuda" "$LODE" bench kernels --backend tpu
summary
