#!/usr/bin/env python3
"""tok_variants.py BASE_TOKENIZER OUTDIR - tokenizer.json variants for the comparison tests.

Writes into OUTDIR:
  qwen36.json         BASE with the Qwen3.6 pre-tokenizer regex (\\p{M} added), made by the
                      same textual replacement test_tokenizer.c does
  qwen36-legacy.json  the same with merges in the old "a b" string form
  flags.json          BASE plus added tokens using lstrip, rstrip, single_word, normalized
                      and non-special/special, contents that overlap or need NFC
  ignore.json         BASE with ignore_merges: true
  flags.txt           text that exercises flags.json's tokens in many contexts
"""
import json
import os
import random
import sys

QWEN3_L = r'\\p{L}+'
QWEN36_L = r'[\\p{L}\\p{M}]+'
QWEN3_P = r'[^\\s\\p{L}\\p{N}]'
QWEN36_P = r'[^\\s\\p{L}\\p{M}\\p{N}]'


def qwen36_text(raw):
    assert raw.count(QWEN3_L) == 1 and raw.count(QWEN3_P) == 1, "unexpected base regex"
    return raw.replace(QWEN3_L, QWEN36_L).replace(QWEN3_P, QWEN36_P)


FLAG_TOKENS = [
    ("<mask>", dict(lstrip=True, special=True, normalized=False)),
    ("[SEP]", dict(rstrip=True, special=True, normalized=False)),
    ("<both>", dict(lstrip=True, rstrip=True, normalized=False)),
    ("word", dict(single_word=True, normalized=False)),
    ("Caf\u00e9", dict(normalized=True)),
    ("e\u0301x", dict(normalized=True)),
    ("\u00f1and\u00fa", dict(normalized=False)),
    ("two words", dict(normalized=False)),
    ("<|im_start|>x", dict(normalized=False, special=True)),
    ("ab", dict(single_word=True, normalized=True)),
    ("\u4eba\u5de5", dict(normalized=False)),
]


def flags_text(seed=3):
    r = random.Random(seed)
    bits = [t for t, _ in FLAG_TOKENS] + ["Cafe\u0301", "e\u0301x", "\u00e9x", "words", "sword", "word_",
                                          "ab", "abc", "xab", "a b", "<|im_start|>", "<|im_end|>", "\u00f1", "\u5de5"]
    seps = ["", " ", "  ", "\n", "\t", " \n ", "\u3000", "\u00a0", "_", "-", "x", "\u0301", "1", "\u00e9"]
    out = []
    for _ in range(4000):
        out.append(r.choice(seps) + r.choice(bits) + r.choice(seps))
    return "".join(out) + "\n"


def main():
    base, outdir = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    raw = open(base, encoding="utf-8").read()
    q36 = qwen36_text(raw)
    open(os.path.join(outdir, "qwen36.json"), "w", encoding="utf-8").write(q36)
    d = json.loads(q36)
    d["model"]["merges"] = [m if isinstance(m, str) else " ".join(m) for m in d["model"]["merges"]]
    json.dump(d, open(os.path.join(outdir, "qwen36-legacy.json"), "w", encoding="utf-8"), ensure_ascii=False)
    d = json.loads(raw)
    nid = max(max(d["model"]["vocab"].values()), max(a["id"] for a in d["added_tokens"])) + 1
    for content, fl in FLAG_TOKENS:
        tok = dict(id=nid, content=content, single_word=False, lstrip=False, rstrip=False,
                   normalized=True, special=False)
        tok.update(fl)
        d["added_tokens"].append(tok)
        nid += 1
    json.dump(d, open(os.path.join(outdir, "flags.json"), "w", encoding="utf-8"), ensure_ascii=False)
    d = json.loads(raw)
    d["model"]["ignore_merges"] = True
    json.dump(d, open(os.path.join(outdir, "ignore.json"), "w", encoding="utf-8"), ensure_ascii=False)
    open(os.path.join(outdir, "flags.txt"), "w", encoding="utf-8").write(flags_text())


if __name__ == "__main__":
    main()
