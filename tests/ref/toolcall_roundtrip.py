#!/usr/bin/env python3
"""toolcall_roundtrip.py - renders random assistant turns with tool calls through the real
Qwen3.6 chat template (Python Jinja2, set up as transformers does), feeds the rendered turn to
`lode toolcalls` as model output, and checks that the reasoning, content and every call's
arguments come back exactly (typed by the tool schemas), fed whole or in chunks.

    toolcall_roundtrip.py LODE TEMPLATE TMPDIR [N] [SEED]

Prints ok/FAIL lines and exits 1 on any mismatch. String values include the hard cases: tool-call
syntax mid-line, a complete nested tool call, leading and trailing newlines, code, unicode.
"""
import json
import random
import subprocess
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

TOOLS = [
    {"type": "function", "function": {"name": "write_file", "description": "Write a file.",
     "parameters": {"type": "object", "properties": {"path": {"type": "string"},
                    "content": {"type": "string"}}, "required": ["path", "content"]}}},
    {"type": "function", "function": {"name": "mixed", "description": "Every type.",
     "parameters": {"type": "object", "properties": {
         "s": {"type": "string"}, "i": {"type": "integer"}, "f": {"type": "number"},
         "b": {"type": "boolean"}, "o": {"type": "object"}, "a": {"type": "array"},
         "ns": {"anyOf": [{"type": "string"}, {"type": "null"}]},
         "ni": {"anyOf": [{"type": "integer"}, {"type": "null"}]}}}}},
    {"type": "function", "function": {"name": "run_shell", "description": "Run a command.",
     "parameters": {"type": "object", "properties": {"command": {"type": "string"},
                    "timeout": {"type": "integer"}}}}},
]

WORDS = ["hello", "world", "naïve", "日本語", "🎉", "tab\there", "line1\nline2", "a < b", "x > y",
         "<b>bold</b>", "quote\"s", "back\\slash", "it's", "</think>", "{{ not jinja }}", "None",
         "null", "true", "42", "x </parameter> y", "use <parameter=path> here",
         "mid </function> line", "<tool_call> inline", "</tool_call> inline",
         "int main(void)\n{\n    return 0;\n}\n", "<function=nope> mid-line"]
NESTED = ("<tool_call>\n<function=write_file>\n<parameter=path>\ninner.txt\n</parameter>\n"
          "<parameter=content>\nnested\n</parameter>\n</function>\n</tool_call>")


def text(r, lo=1, hi=6):
    return " ".join(r.choice(WORDS) for _ in range(r.randint(lo, hi)))


def string_value(r):
    k = r.random()
    if k < 0.1:
        return NESTED
    if k < 0.2:
        return text(r) + "\n" + NESTED + "\n" + text(r)
    if k < 0.3:
        return "\n" * r.randint(1, 2) + text(r) + "\n" * r.randint(0, 2)
    if k < 0.35:
        return ""
    return text(r)


def nonnull(v):
    return v + "!" if v.lower() in ("null", "none") else v


def json_value(r, depth=0):
    k = r.randint(0, 7 if depth < 3 else 4)
    if k == 0:
        return r.randint(-10**6, 10**6)
    if k == 1:
        return round(r.uniform(-1000, 1000), r.randint(0, 6))
    if k == 2:
        return r.choice([True, False, None])
    if k in (3, 4):
        return text(r, 1, 3)
    if k in (5, 6):
        return {text(r, 1, 2): json_value(r, depth + 1) for _ in range(r.randint(0, 3))}
    return [json_value(r, depth + 1) for _ in range(r.randint(0, 3))]


def call(r):
    t = r.randint(0, 2)
    if t == 0:
        return {"name": "write_file", "arguments": {"path": "dir/" + r.choice(WORDS[:4]) + ".txt",
                                                    "content": string_value(r)}}
    if t == 2:
        a = {"command": string_value(r)}
        if r.random() < 0.5:
            a["timeout"] = r.randint(1, 600)
        return {"name": "run_shell", "arguments": a}
    gen = {"s": string_value, "i": lambda r: r.choice([r.randint(-10**9, 10**9), 2**62, 0]),
           "f": lambda r: r.choice([round(r.uniform(-1e6, 1e6), r.randint(1, 8)), 1e-7, 2.5e20]),
           "b": lambda r: r.random() < 0.5,
           "o": lambda r: {text(r, 1, 2): json_value(r) for _ in range(r.randint(0, 4))},
           "a": lambda r: [json_value(r) for _ in range(r.randint(0, 4))],
           # a nullable string cannot be the text null/None: that is null (vLLM's rule)
           "ns": lambda r: None if r.random() < 0.4 else nonnull(string_value(r)),
           "ni": lambda r: None if r.random() < 0.4 else r.randint(-100, 100)}
    keys = [k for k in gen if r.random() < 0.6] or ["s"]
    r.shuffle(keys)
    return {"name": "mixed", "arguments": {k: gen[k](r) for k in keys}}


def env():
    e = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                      extensions=[jinja2.ext.loopcontrols])

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    e.filters["tojson"] = tojson
    e.globals["raise_exception"] = raise_exception
    return e


def main():
    lode, tpl_path, tmp = sys.argv[1], sys.argv[2], sys.argv[3]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 120
    seed = int(sys.argv[5]) if len(sys.argv) > 5 else random.randrange(1 << 30)
    print("# seed %d" % seed)
    r = random.Random(seed)
    tpl = env().from_string(open(tpl_path, encoding="utf-8").read())
    with open(tmp + "/tools.json", "w") as fp:
        json.dump(TOOLS, fp)
    bad = 0
    for k in range(n):
        calls = [call(r) for _ in range(r.randint(1, 3))]
        # "</think>" inside reasoning would end it (the engine keys on the token id)
        reasoning = text(r).replace("</think>", "think") if r.random() < 0.7 else ""
        content = text(r) if r.random() < 0.5 else ""
        msgs = [{"role": "user", "content": "do it"},
                {"role": "assistant", "content": content, "reasoning_content": reasoning,
                 "tool_calls": [{"type": "function", "function": c} for c in calls]}]
        out = tpl.render(messages=msgs, tools=TOOLS, add_generation_prompt=False)
        start = out.rindex("<|im_start|>assistant\n<think>\n") + len("<|im_start|>assistant\n<think>\n")
        model_out = out[start:out.rindex("<|im_end|>")]
        chunk = r.choice([[], [], ["--chunk", "1"], ["--chunk", str(r.randint(2, 40))]])
        p = subprocess.run([lode, "toolcalls", "--thinking", "--tools", tmp + "/tools.json"] + chunk,
                           input=model_out.encode(), capture_output=True)
        ok = p.returncode == 0
        if ok:
            got = json.loads(p.stdout)
            ok = (got["reasoning"] == reasoning.strip() and got["content"] == content.strip()
                  and got["tool_calls"] == calls and "errors" not in got)
        if not ok:
            bad += 1
            if bad <= 3:
                print("FAIL case %d (seed %d)\n--- model output\n%s\n--- lode\n%s%s\n--- want\n%s"
                      % (k, seed, model_out, p.stdout.decode(), p.stderr.decode(),
                         json.dumps({"reasoning": reasoning.strip(), "content": content.strip(),
                                     "tool_calls": calls}, ensure_ascii=False)))
    if bad:
        print("FAIL %d of %d rendered turns did not round-trip" % (bad, n))
        return 1
    print("ok   %d rendered turns round-trip through the Qwen3.6 template" % n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
