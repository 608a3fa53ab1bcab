#!/usr/bin/env bash
# tests/ref/mkmodel_golden.sh OUT - golden logits for lode's own generated checkpoints, computed
# by transformers (the mixed ones dequantized by the compressed-tensors library), so that
# test_forward compares lode with them on machines without the Python stack. For each case:
#   OUT/<name>/golden.json  mkmodel options, tokens, SHA-256 of every checkpoint file
#   OUT/<name>/logits.f32   float32 [T][vocab], every position
# The checkpoints themselves are not committed: `lode mkmodel` regenerates them byte for byte.
set -eu
out=${1:?usage: tests/ref/mkmodel_golden.sh OUT}
root=$(cd "$(dirname "$0")/../.." && pwd)
lode=${LODE:-$root/build/lode}
py=$("$root/scripts/test-venv" --python)
toks=1,17,42,99,200,7,7,3,250,128,64,5,5,5,9,31,0,2,4,8,16,300,511,77
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for c in bf16:text mixed:text mixed:vl; do
  q=${c%%:*}; lay=${c##*:}; name=tiny-$q-$lay; d=$tmp/$name
  "$lode" mkmodel --out "$d" --preset tiny --quant "$q" --layout "$lay" --seed 1 > /dev/null
  mkdir -p "$out/$name"
  "$py" "$root/tests/ref/ref_logits.py" "$d" "$toks" "$out/$name/logits.f32" 2> /dev/null
  python3 - "$d" "$out/$name/golden.json" "$q" "$lay" "$toks" <<'PY'
import hashlib, json, os, sys
d, dst, q, lay, toks = sys.argv[1:]
files = sorted(f for f in os.listdir(d))
sha = {f: hashlib.sha256(open(os.path.join(d, f), 'rb').read()).hexdigest() for f in files}
json.dump({"mkmodel": {"preset": "tiny", "quant": q, "layout": lay, "seed": 1},
           "tokens": [int(t) for t in toks.split(",")], "checkpoint_sha256": sha,
           "logits": "logits.f32",
           "reference": "transformers float32; mixed weights dequantized by compressed-tensors"},
          open(dst, "w"), indent=1)
PY
  echo "wrote $out/$name"
done
