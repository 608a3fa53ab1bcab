#!/usr/bin/env python3
"""tok_golden.py BASE_TOKENIZER OUTDIR - the committed golden for test_tokenizer (no Python needed there).

Writes OUTDIR/golden.txt (corpus.py, seed 7, ~200 KB), golden-qwen3.ids and
golden-qwen36.ids (HF tokenizers' ids as little-endian int32 for BASE and for
its Qwen3.6-regex variant, see tok_variants.py) and golden.json (the SHA-256 of
BASE, so the test skips rather than fails on another tokenizer file).
"""
import hashlib
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402
import tok_variants  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402


def main():
    base, outdir = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    text = corpus.generate(200_000, 7)
    open(os.path.join(outdir, "golden.txt"), "wb").write(text.encode("utf-8"))
    raw = open(base, "rb").read()
    meta = {"tokenizer_sha256": hashlib.sha256(raw).hexdigest(), "corpus_seed": 7,
            "text_bytes": len(text.encode("utf-8"))}
    for name, tok in (("qwen3", Tokenizer.from_str(raw.decode("utf-8"))),
                      ("qwen36", Tokenizer.from_str(tok_variants.qwen36_text(raw.decode("utf-8"))))):
        ids = tok.encode(text, add_special_tokens=False).ids
        open(os.path.join(outdir, "golden-%s.ids" % name), "wb").write(struct.pack("<%di" % len(ids), *ids))
        meta["n_ids_" + name] = len(ids)
    json.dump(meta, open(os.path.join(outdir, "golden.json"), "w"), indent=2)
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
