#!/usr/bin/env python3
"""tok_bench.py TOKENIZER CORPUS [REPEAT] - Hugging Face tokenizers' side of `lode bench tokenizer`.

Loads the tokenizer, encodes the whole corpus as one string (no special-token
template) on one thread, best of REPEAT runs (each with a freshly loaded
tokenizer, so the word cache starts cold as lode's does), and prints one line:
    hf load_ms=L encode_s=S mb_s=M cpu_s=C cpu_mb_s=CM ids=N sha256=HEX
where sha256 is over the ids as little-endian int32 (lode prints the same).
"""
import hashlib
import os
import struct
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
from tokenizers import Tokenizer  # noqa: E402


def main():
    tok, corpus = sys.argv[1], sys.argv[2]
    repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    data = open(corpus, "rb").read()
    text = data.decode("utf-8")
    best_load, best, best_cpu = 1e9, 1e9, 1e9
    ids = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        t = Tokenizer.from_file(tok)
        t1, c1 = time.perf_counter(), time.process_time()
        ids = t.encode(text, add_special_tokens=False).ids
        t2, c2 = time.perf_counter(), time.process_time()
        best_load, best = min(best_load, t1 - t0), min(best, t2 - t1)
        best_cpu = min(best_cpu, c2 - c1)
    h = hashlib.sha256(struct.pack("<%di" % len(ids), *ids)).hexdigest()
    print("hf load_ms=%.1f encode_s=%.4f mb_s=%.3f cpu_s=%.4f cpu_mb_s=%.3f ids=%d sha256=%s"
          % (best_load * 1e3, best, len(data) / 1e6 / best, best_cpu, len(data) / 1e6 / best_cpu,
             len(ids), h))


if __name__ == "__main__":
    main()
