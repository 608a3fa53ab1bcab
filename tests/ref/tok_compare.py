#!/usr/bin/env python3
"""tok_compare.py - lode's tokenizer against Hugging Face tokenizers.

    tok_compare.py --lode build/lode --tokenizer tokenizer.json --corpus FILE [--roundtrip]

Encodes the corpus with both (one string, no special-token template), checks
that the id sequences are identical, and with --roundtrip that lode's decode of
its ids gives back NFC(corpus). Prints one line per check ("ok ..." or
"FAIL ..." with the first difference and its context) and exits 1 on a failure.
"""
import argparse
import json
import subprocess
import sys
import time

from tokenizers import Tokenizer, normalizers


def run_lode(lode, tok, data, *extra):
    p = subprocess.run([lode, "tokenize", "--tokenizer", tok, *extra], input=data,
                       capture_output=True)
    if p.returncode != 0:
        sys.exit("FAIL lode tokenize %s exited %d: %s" % (" ".join(extra), p.returncode,
                                                           p.stderr.decode(errors="replace")[:300]))
    return p.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lode", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--name", default="corpus")
    ap.add_argument("--roundtrip", action="store_true")
    ap.add_argument("--decode-vs-hf", action="store_true",
                    help="with --roundtrip: compare the decode with HF's only (for added tokens "
                         "whose text does not survive the ByteLevel decoder)")
    ap.add_argument("--random-decode", type=int, default=0, metavar="N",
                    help="also decode N random id sequences (many single-byte tokens, so UTF-8 "
                         "gets cut) with both and compare")
    a = ap.parse_args()

    data = open(a.corpus, "rb").read()
    text = data.decode("utf-8")
    hf = Tokenizer.from_file(a.tokenizer)
    t0 = time.time()
    want = hf.encode(text, add_special_tokens=False).ids
    t1 = time.time()
    got = json.loads(run_lode(a.lode, a.tokenizer, data))
    t2 = time.time()
    fails = 0
    if got == want:
        print("ok   %s: %d bytes, %d ids identical to HF (HF %.2fs, lode %.2fs incl. start-up)"
              % (a.name, len(data), len(want), t1 - t0, t2 - t1))
    else:
        fails += 1
        i = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]), min(len(got), len(want)))
        ctx = hf.decode(want[max(0, i - 8):i + 8])
        print("FAIL %s: ids differ at index %d of %d/%d (lode %s, HF %s) near %r"
              % (a.name, i, len(got), len(want), got[i:i + 6], want[i:i + 6], ctx))
    if a.roundtrip:
        back = run_lode(a.lode, a.tokenizer, json.dumps(got).encode(), "--decode").decode("utf-8")
        # NFC as HF's normalizer does it: its Unicode tables are older than
        # Python's, and lode follows HF (tok_nfc_probe.py)
        nfc = normalizers.NFC().normalize_str(text)
        hfdec = hf.decode(want, skip_special_tokens=False)
        if a.decode_vs_hf:
            nfc = hfdec
        if back == nfc and back == hfdec:
            print("ok   %s: decode(encode(x)) == %s" % (a.name, "HF decode" if a.decode_vs_hf else "NFC(x) == HF decode"))
        else:
            fails += 1
            ref = nfc if back != nfc else hfdec
            i = next((k for k in range(min(len(back), len(ref))) if back[k] != ref[k]), min(len(back), len(ref)))
            print("FAIL %s: decode differs from %s at char %d: lode %r, want %r"
                  % (a.name, "NFC(x)" if ref is nfc else "HF decode", i, back[i - 10:i + 10], ref[i - 10:i + 10]))
    if a.random_decode:
        import random
        r = random.Random(1234)
        n = hf.get_vocab_size()
        # the 256 single-byte tokens come first in byte-level vocabularies
        byte_ids = sorted(hf.get_vocab().values())[:256]
        q = [r.choice(byte_ids) if r.random() < 0.6 else r.randrange(n) for _ in range(a.random_decode)]
        got_s = run_lode(a.lode, a.tokenizer, json.dumps(q).encode(), "--decode").decode("utf-8")
        want_s = hf.decode(q, skip_special_tokens=False)
        if got_s == want_s:
            print("ok   %s: %d random ids (60%% single bytes) decode as HF does" % (a.name, len(q)))
        else:
            fails += 1
            i = next((k for k in range(min(len(got_s), len(want_s))) if got_s[k] != want_s[k]),
                     min(len(got_s), len(want_s)))
            print("FAIL %s: random ids decode differently at char %d: lode %r, HF %r"
                  % (a.name, i, got_s[i - 5:i + 5], want_s[i - 5:i + 5]))
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
