#!/usr/bin/env python3
"""tok_bigvocab.py BASE OUT [N] - BASE grown to N model tokens (default 248,044, the Qwen3.6 size)
with as many new merges, for timing the loader at the checkpoint's size when only the Qwen3 file
is at hand. New tokens are concatenations of two existing ones, so the file stays valid for HF.
"""
import json
import random
import sys


def main():
    base, out = sys.argv[1], sys.argv[2]
    target = int(sys.argv[3]) if len(sys.argv) > 3 else 248044
    d = json.load(open(base, encoding="utf-8"))
    vocab, merges = d["model"]["vocab"], d["model"]["merges"]
    r = random.Random(5)
    toks = [t for t in vocab if len(t) <= 6]
    nid = max(vocab.values()) + 1
    shift = target - len(vocab)
    for a in d["added_tokens"]:  # keep added tokens after the model's ids
        a["id"] += shift
    while len(vocab) < target:
        a, b = r.choice(toks), r.choice(toks)
        if a + b in vocab:
            continue
        vocab[a + b] = nid
        nid += 1
        merges.append([a, b])
    json.dump(d, open(out, "w", encoding="utf-8"), ensure_ascii=False)


if __name__ == "__main__":
    main()
