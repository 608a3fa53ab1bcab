#!/usr/bin/env python3
"""tok_nfc_probe.py - where HF tokenizers' NFC and utf8proc's disagree.

    tok_nfc_probe.py --out FILE   write probe text (every interesting code point
                                  in small contexts) for tok_compare.py
    tok_nfc_probe.py --table      print the C table of code points HF treats as
                                  unassigned (engine/tokenizer_bpe.c hf_inert)

HF's NFC (unicode-normalization-alignments) has older Unicode tables than
utf8proc. The candidates are the code points utf8proc does not consider inert
(a combining class, a canonical decomposition, the second half of a
composition, Hangul jamo); each is probed in a few contexts with both
normalizers, and a difference marks it as unknown to HF.
"""
import argparse
import ctypes
import ctypes.util
import unicodedata

from tokenizers import normalizers

lib = ctypes.CDLL(ctypes.util.find_library("utf8proc") or "libutf8proc.so.2")
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
lib.utf8proc_NFC.restype = ctypes.c_void_p
lib.utf8proc_NFC.argtypes = [ctypes.c_char_p]


class Prop(ctypes.Structure):
    _fields_ = [("category", ctypes.c_int16), ("combining_class", ctypes.c_int16),
                ("bidi_class", ctypes.c_int16), ("decomp_type", ctypes.c_int16),
                ("decomp_seqindex", ctypes.c_uint16), ("casefold_seqindex", ctypes.c_uint16),
                ("uppercase_seqindex", ctypes.c_uint16), ("lowercase_seqindex", ctypes.c_uint16),
                ("titlecase_seqindex", ctypes.c_uint16), ("comb_index", ctypes.c_uint16)]


lib.utf8proc_get_property.restype = ctypes.POINTER(Prop)
lib.utf8proc_get_property.argtypes = [ctypes.c_int32]


def up_nfc(s):
    p = lib.utf8proc_NFC(s.encode())
    r = ctypes.string_at(p).decode()
    libc.free(ctypes.c_void_p(p))
    return r


def candidates():
    for c in range(0x300, 0x110000):
        if 0xd800 <= c < 0xe000:
            continue
        p = lib.utf8proc_get_property(c).contents
        if (p.combining_class or (p.comb_index != 0xffff and p.comb_index & 0x8000)
                or (p.decomp_seqindex != 0xffff and p.decomp_type == 0) or 0x1100 <= c <= 0x11ff):
            yield c


def probes(cp, firsts):
    X = chr(cp)
    ps = ["a" + X + "\u0301", "a" + X + "\u0316", X, "a" + X, X + "\u0301", X + "\u0316\u0301",
          unicodedata.normalize("NFD", X)]
    ps += [chr(F) + X for F in firsts.get(cp, [])]
    if 0x1100 <= cp <= 0x11ff:
        ps += ["\u1100" + X, "\uac00" + X, X + "\u1161", X + "\u11a8"]
    return ps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--table", action="store_true")
    a = ap.parse_args()
    firsts = {}
    for cp in range(0x110000):
        d = unicodedata.decomposition(chr(cp))
        if d and not d.startswith("<"):
            parts = [int(x, 16) for x in d.split()]
            if len(parts) == 2:
                firsts.setdefault(parts[1], []).append(parts[0])
    hf = normalizers.NFC()
    unknown, text = [], []
    for cp in candidates():
        ps = probes(cp, firsts)
        text += ps
        if any(hf.normalize_str(p) != up_nfc(p) for p in ps):
            unknown.append(cp)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(" ".join(text))
            f.write("\n" + "".join(text) + "\n")
    if a.table:
        r = []
        for c in unknown:
            if r and r[-1][1] == c - 1:
                r[-1][1] = c
            else:
                r.append([c, c])
        print(" ".join("%x-%x" % (x, y) for x, y in r))


if __name__ == "__main__":
    main()
