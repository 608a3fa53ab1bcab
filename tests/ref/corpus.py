#!/usr/bin/env python3
"""corpus.py - a seeded, deterministic text corpus for the tokenizer tests.

    corpus.py --size 6000000 --seed 1 --out FILE

Mixes source code in many languages, Markdown, JSON, logs, natural text in
many scripts (CJK, Thai, Devanagari and other Indic scripts with combining
marks, Arabic, Hebrew, Cyrillic, Greek, Vietnamese in decomposed form),
emoji with ZWJ sequences and skin tones, CRLF line ends, long runs of spaces
and newlines, digits, special-token strings, and random code points from all
planes (rare, combining, unassigned, private use). No surrogates: the output
is valid UTF-8. Only the standard library; same bytes for the same seed.
"""
import argparse
import random
import sys
import unicodedata

WORDS = """the of and to in is that for it as was with be by on not he this are or his
from at which but have an they you were her she there been one all we their has would when
if so no will can more about said up out what its into than them only some could time these
two may first then do any like my now over such our man me even most made after also did many
before must through back years where much your way well down should because each just those
people how too little state good very make world still own see men work long get here between
both life being under never day same another know while last might us great old year off come
since against go came right used take three function return value error buffer token model
parser thread kernel tensor weight matrix vector memory pointer struct config stream""".split()

LATIN = ["Größe", "Straße", "naïve", "café", "résumé", "Ångström", "façade", "jalapeño",
         "smörgåsbord", "Dvořák", "Łódź", "Kraków", "São Paulo", "İstanbul", "ǅemal",
         "ﬁnance", "ﬂow", "Œuvre", "Æsir", "þorn", "ðe", "ß", "ẞ", "ſtraße", "K", "Å"]

SCRIPTS = {
    "zh": "人工智能是计算机科学的一个分支，它企图了解智能的实质，并生产出一种新的能以人类智能相似的方式做出反应的智能机器。"
          "该领域的研究包括机器人、语言识别、图像识别、自然语言处理和专家系统等。你好，世界！今天是2026年8月13日。",
    "ja": "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。何でも薄暗いじめじめした所で"
          "ニャーニャー泣いていた事だけは記憶している。カタカナ、ひらがな、漢字が混ざった文章です。ｶﾀｶﾅ半角",
    "ko": "대한민국의 수도는 서울이다. 한국어는 한글로 적는다. 안녕하세요, 만나서 반갑습니다! 가나다라마바사",
    "th": "สวัสดีครับ ผมชื่ออเล็กซ์ ภาษาไทยเป็นภาษาที่มีวรรณยุกต์ เขียนโดยไม่เว้นวรรคระหว่างคำ น้ำใจ กรุงเทพมหานคร "
          "ปัญญาประดิษฐ์ คือ ความฉลาดเทียมที่สร้างขึ้นให้กับสิ่งที่ไม่มีชีวิต",
    "hi": "कृत्रिम बुद्धिमत्ता कंप्यूटर विज्ञान की एक शाखा है। हिन्दी भारत की राजभाषा है। नमस्ते, आप कैसे हैं? "
          "क़लम ख़ुदा ग़ज़ल ज़रूर फ़ोन ड़ ढ़ य़ — संस्कृत श्रीमद्भगवद्गीता",
    "bn": "বাংলা ভাষা দক্ষিণ এশিয়ার একটি ইন্দো-আর্য ভাষা। আমি তোমাকে ভালোবাসি। কৃত্রিম বুদ্ধিমত্তা",
    "ta": "தமிழ் ஒரு திராவிட மொழி ஆகும். கொ கோ கௌ வணக்கம் செயற்கை நுண்ணறிவு",
    "te": "తెలుగు ఒక ద్రావిడ భాష. కృత్రిమ మేధస్సు",
    "ar": "الذكاء الاصطناعي هو فرع من علوم الحاسوب. مرحبا بالعالم! اللُّغَةُ العَرَبِيَّةُ جَمِيلَةٌ. ٠١٢٣٤٥٦٧٨٩",
    "he": "בינה מלאכותית היא תחום במדעי המחשב. שָׁלוֹם עוֹלָם",
    "fa": "هوش مصنوعی شاخه‌ای از علوم رایانه است. سلام دنیا",
    "ru": "Искусственный интеллект — свойство интеллектуальных систем выполнять творческие функции. Ёлка, йод, щи.",
    "el": "Η τεχνητή νοημοσύνη είναι κλάδος της πληροφορικής. Καλημέρα κόσμε! ΆΈΉΊΌΎΏ ΐΰ",
    "vi": "Trí tuệ nhân tạo là trí tuệ được biểu diễn bởi bất cứ một hệ thống nhân tạo nào. Tiếng Việt có dấu: ă â đ ê ô ơ ư ạ ả ấ ầ ẩ ẫ ậ",
    "am": "ሰላም ለዓለም። አማርኛ የኢትዮጵያ ቋንቋ ነው።",
    "ka": "ხელოვნური ინტელექტი კომპიუტერული მეცნიერების დარგია.",
    "hy": "Արհեստական բանականությունը համակարգչային գիտության ճյուղ է։",
    "my": "မြန်မာဘာသာစကား သည် မြန်မာနိုင်ငံ၏ ရုံးသုံးဘာသာစကား ဖြစ်သည်။",
    "km": "ភាសាខ្មែរ គឺជាភាសាផ្លូវការរបស់ប្រទេសកម្ពុជា។",
    "si": "සිංහල භාෂාව ශ්‍රී ලංකාවේ රාජ්‍ය භාෂාවකි.",
    "bo": "བོད་ཀྱི་སྐད་ཡིག་ནི་བོད་ཀྱི་རིག་གཞུང་ཡིན།",
    "tr": "Yapay zekâ, insan zekâsını taklit eden sistemlerdir. İĞÜŞÖÇ ığüşöç",
    "pl": "Sztuczna inteligencja – dziedzina informatyki. Zażółć gęślą jaźń.",
}

EMOJI = ["😀", "🎉", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🧑🏿‍💻", "👩‍❤️‍💋‍👨", "🇯🇵", "🇺🇸", "🏴‍☠️",
         "❤️", "✔️", "☕", "🤖", "🦀", "🐍", "1️⃣", "#️⃣", "🫠", "🧬", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "👁‍🗨", "🤷‍♀️", "🙋🏻‍♂️"]

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>",
            "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|vision_start|>",
            "<|image_pad|>", "<tool_response>", "</tool_response>", "<|file_sep|>", "<|repo_name|>",
            "<|im_start", "im_end|>", "<|im_start|><|im_end|>", "<<|im_end|>>", "<think></think>"]

CODE = {
    "c": """#include <stdio.h>
#include <stdlib.h>

/* {w}: returns the {w2} of n items */
static int {w}_{w2}(const int *v, size_t n)
{{
    int acc = 0;
    for (size_t i = 0; i < n; i++) {{
        if (v[i] < 0 && acc > {n})
            return -1;
        acc += v[i] * {n2};
    }}
    printf("%s: %d (0x%08x)\\n", "{w}", acc, (unsigned)acc);
    return acc;
}}
""",
    "python": """import os
import sys


def {w}_{w2}(items: list[int], limit: int = {n}) -> dict[str, int]:
    \"\"\"Count the {w2} of each {w}.\"\"\"
    out = {{}}
    for i, x in enumerate(items):
        if x > limit:
            raise ValueError(f"{{x!r}} is over {{limit}} at {{i}}")
        out[str(x)] = out.get(str(x), 0) + {n2}
    return out


if __name__ == "__main__":
    print({w}_{w2}([int(a) for a in sys.argv[1:]]))
""",
    "rust": """use std::collections::HashMap;

/// Merges the {w} with the {w2}.
pub fn {w}_{w2}<'a>(xs: &'a [u32]) -> Result<HashMap<u32, usize>, String> {{
    let mut m: HashMap<u32, usize> = HashMap::new();
    for (i, &x) in xs.iter().enumerate() {{
        if x == {n} {{ return Err(format!("bad {{}} at {{i}}", x)); }}
        *m.entry(x).or_insert(0) += {n2};
    }}
    Ok(m)
}}
""",
    "go": """package main

import (
\t"fmt"
\t"strings"
)

// {W}{W2} joins the {w}.
func {W}{W2}(xs []string) (string, error) {{
\tif len(xs) > {n} {{
\t\treturn "", fmt.Errorf("too many: %d", len(xs))
\t}}
\treturn strings.Join(xs, "{w2}"), nil
}}
""",
    "js": """// {w}.js
export async function {w}{W2}(url, opts = {{}}) {{
  const res = await fetch(url, {{ method: 'POST', body: JSON.stringify({{ n: {n}, k: '{w2}' }}) }});
  if (!res.ok) throw new Error(`HTTP ${{res.status}}: ${{await res.text()}}`);
  return (await res.json()).items.filter((x) => x.{w2} !== null && x.id >= {n2});
}}
""",
    "java": """package org.example.{w};

public final class {W}{W2} implements Comparable<{W}{W2}> {{
    private final int value = {n};
    @Override
    public int compareTo({W}{W2} other) {{
        return Integer.compare(this.value, other.value + {n2});
    }}
    public static void main(String[] args) {{ System.out.println(new {W}{W2}()); }}
}}
""",
    "haskell": """module {W} where

{w}{W2} :: [Int] -> Int
{w}{W2} [] = {n}
{w}{W2} (x:xs) = x * {n2} + {w}{W2} xs  -- fold the {w2}
""",
    "sql": """SELECT u.id, u.{w}, COUNT(o.id) AS {w2}_count
FROM users AS u
LEFT JOIN orders o ON o.user_id = u.id AND o.total > {n}
WHERE u.created_at >= '2024-01-{d}' -- {w}
GROUP BY u.id, u.{w}
HAVING COUNT(o.id) > {n2}
ORDER BY {w2}_count DESC;
""",
    "sh": """#!/usr/bin/env bash
set -euo pipefail
for f in "$@"; do
  if [[ -f "$f" && $(wc -l < "$f") -gt {n} ]]; then
    echo "{w}: $f" >&2; sed -n '1,{n2}p' "$f" | grep -E '^[a-z]+{w2}' || true
  fi
done
""",
    "html": """<!DOCTYPE html>
<html lang="en">
  <head><meta charset="utf-8"><title>{W} &amp; {w2}</title></head>
  <body class="{w}">
    <div id="{w2}-{n}" style="margin: {n2}px;"><p>{w} &lt;{w2}&gt; &#x1F600;</p></div>
  </body>
</html>
""",
    "css": """.{w} > .{w2}:hover {{
  color: #{hex};
  margin: {n}px {n2}em 0 auto;
  transition: transform 0.{n2}s ease-in-out;
}}
""",
    "lisp": """(defun {w}-{w2} (xs &optional (n {n}))
  "Sum the {w2}."
  (loop for x in xs when (> x n) sum (* x {n2})))
""",
    "yaml": """{w}:
  {w2}: {n}
  enabled: true
  list:
    - name: "{W}"
      value: {n2}.5
""",
    "latex": """\\begin{{equation}}
  \\sum_{{i=1}}^{{{n}}} \\frac{{\\alpha_i}}{{\\beta^{{{n2}}}}} = \\int_0^\\infty e^{{-x}}\\,dx \\quad \\text{{({w})}}
\\end{{equation}}
""",
    "asm": """{w}_{w2}:
    push    rbp
    mov     rbp, rsp
    mov     eax, DWORD PTR [rdi+{n}]
    add     eax, {n2}
    pop     rbp
    ret
""",
}


def rword(r):
    w = r.choice(WORDS)
    return w


def sentence(r, n=None):
    n = n or r.randint(4, 18)
    ws = [rword(r) for _ in range(n)]
    if r.random() < 0.3:
        ws[r.randrange(len(ws))] = r.choice(LATIN)
    if r.random() < 0.2:
        ws.insert(r.randrange(len(ws)), str(r.randint(0, 10 ** r.randint(1, 12))))
    s = " ".join(ws)
    return s[0].upper() + s[1:] + r.choice([".", "!", "?", ";", ":", "...", ".", "."])


def code(r):
    lang = r.choice(sorted(CODE))
    w, w2 = rword(r), rword(r)
    txt = CODE[lang].format(w=w, w2=w2, W=w.capitalize(), W2=w2.capitalize(), n=r.randint(0, 99999),
                            n2=r.randint(1, 64), d="%02d" % r.randint(1, 28), hex="%06x" % r.randrange(1 << 24))
    if r.random() < 0.3:
        txt = txt.replace("    ", "\t")
    return txt


def markdown(r):
    out = ["#" * r.randint(1, 4) + " " + sentence(r, 4)[:-1], ""]
    for _ in range(r.randint(1, 4)):
        out.append(sentence(r) + " " + sentence(r))
        out.append("")
    out += ["- **%s**: `%s()` and _%s_" % (rword(r), rword(r), rword(r)) for _ in range(r.randint(1, 5))]
    out += ["", "| a | b |", "|---|---:|", "| %d | %s |" % (r.randint(0, 999), rword(r)), ""]
    out += ["> " + sentence(r), "", "[link](https://example.com/%s?q=%d#x)" % (rword(r), r.randint(0, 99)), ""]
    if r.random() < 0.5:
        out += ["```", code(r).rstrip("\n"), "```", ""]
    return "\n".join(out) + "\n"


def jsonish(r):
    import json
    obj = {rword(r): [r.randint(-1000, 10 ** 9), r.random(), None, True, False, r.choice(LATIN)]
           for _ in range(r.randint(1, 6))}
    obj["text"] = r.choice(list(SCRIPTS.values()))[:r.randint(5, 40)]
    obj["nested"] = {"a": {"b": [{"c": sentence(r, 3)}]}, "emoji": r.choice(EMOJI)}
    return json.dumps(obj, ensure_ascii=r.random() < 0.3, indent=r.choice([None, 2, 4])) + "\n"


def log(r):
    lv = r.choice(["INFO", "WARN", "ERROR", "DEBUG", "TRACE"])
    return "2026-%02d-%02dT%02d:%02d:%02d.%06dZ %-5s [%s-%d] %s id=%08x took=%dms path=/var/lib/%s/%d.log\n" % (
        r.randint(1, 12), r.randint(1, 28), r.randint(0, 23), r.randint(0, 59), r.randint(0, 59),
        r.randint(0, 999999), lv, rword(r), r.randint(1, 64), sentence(r, 6), r.randrange(1 << 32),
        r.randint(0, 99999), rword(r), r.randint(0, 999))


def script_text(r):
    k = r.choice(sorted(SCRIPTS))
    s = SCRIPTS[k]
    a = r.randrange(len(s))
    piece = s[a:a + r.randint(10, 200)]
    if r.random() < 0.3:
        piece = unicodedata.normalize("NFD", piece)  # exercises NFC
    return piece + r.choice(["\n", " ", "\n\n", "。", ""])


def emoji(r):
    return "".join(r.choice(EMOJI) + r.choice(["", " ", "", "\u200d", "\ufe0f"]) for _ in range(r.randint(1, 12))) + "\n"


def whitespace(r):
    k = r.randrange(8)
    if k == 0:
        return " " * r.randint(1, 3000) + rword(r)
    if k == 1:
        return "\n" * r.randint(1, 500)
    if k == 2:
        return "\r\n".join(sentence(r) for _ in range(r.randint(1, 6))) + "\r\n"
    if k == 3:
        return "".join(r.choice([" ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2003", "\u0085", "\u2028", "\x0b", "\x0c", "\u200b", "\ufeff"])
                       for _ in range(r.randint(1, 300))) + rword(r)
    if k == 4:
        return "\t" * r.randint(1, 50) + rword(r) + " " * r.randint(1, 50) + "\n"
    if k == 5:
        return rword(r) + " " * r.randint(2, 40) + "\n" + " " * r.randint(2, 40)
    if k == 6:
        return "x" * r.randint(100, 5000) + " " + "ab" * r.randint(100, 2000) + "\n"
    return "=" * r.randint(3, 200) + "\n" + "-" * r.randint(3, 200) + "\n"


def digits(r):
    k = r.randrange(4)
    if k == 0:
        return str(r.randrange(10 ** r.randint(1, 400))) + "\n"
    if k == 1:
        return "%d.%d e-%d 0x%X 1_000_000 ٣٤٥ ५६७ ①②③ ½ ²³ 三百 Ⅻ\n" % (
            r.randint(0, 9999), r.randint(0, 9999), r.randint(0, 99), r.randrange(1 << 48))
    if k == 2:
        return "v%d.%d.%d-rc%d+build.%d\n" % tuple(r.randint(0, 99) for _ in range(5))
    return "%d,%03d,%03d.%02d %s\n" % (r.randint(0, 999), r.randint(0, 999), r.randint(0, 999), r.randint(0, 99), r.choice("$€£¥₹"))


def specials(r):
    parts = []
    for _ in range(r.randint(1, 8)):
        parts.append(r.choice(SPECIALS))
        parts.append(r.choice(["", " ", "\n", sentence(r, 3), "  ", r.choice(EMOJI), "\u0301", "user\n"]))
    return "".join(parts) + "\n"


def contractions(r):
    return " ".join(r.choice(["it's", "IT'S", "we'RE", "they've", "I'm", "you'll", "he'd", "don't",
                              "'s", "'S", "'ſ", "'K", "'KELVIN", "o'clock", "'''", "''s", "rock'n'roll"])
                    for _ in range(r.randint(2, 12))) + "\n"


def rand_cp(r):
    while True:
        k = r.randrange(10)
        if k < 3:
            c = r.randrange(0x20, 0x3000)
        elif k < 5:
            c = r.randrange(0x3000, 0x10000)
        elif k < 6:
            c = r.randrange(0x0300, 0x0370)  # combining diacritics
        elif k < 7:
            c = r.randrange(0x10000, 0x20000)
        elif k < 8:
            c = r.randrange(0x20000, 0x32000)
        elif k < 9:
            c = r.randrange(0xe0000, 0x110000)
        else:
            c = r.randrange(0, 0x20)
        if 0xd800 <= c < 0xe000:
            continue
        return chr(c)


def random_unicode(r):
    return "".join(rand_cp(r) for _ in range(r.randint(1, 80))) + r.choice(["", "\n", " "])


def mixed(r):
    return " ".join(r.choice([sentence(r, 3), script_text(r).strip(), r.choice(EMOJI), rword(r)]) for _ in range(r.randint(2, 8))) + "\n"


KINDS = [(code, 22), (markdown, 10), (jsonish, 8), (log, 8), (script_text, 16), (emoji, 4),
         (whitespace, 5), (digits, 5), (specials, 4), (contractions, 3), (random_unicode, 6), (mixed, 9)]


def generate(size, seed):
    r = random.Random(seed)
    funcs = [f for f, w in KINDS for _ in range(w)]
    out, n = [], 0
    while n < size:
        s = r.choice(funcs)(r)
        out.append(s)
        n += len(s.encode("utf-8"))
    return "".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=6_000_000, help="at least this many bytes")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="-")
    a = ap.parse_args()
    text = generate(a.size, a.seed)
    data = text.encode("utf-8")
    if a.out == "-":
        sys.stdout.buffer.write(data)
    else:
        with open(a.out, "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
