#!/usr/bin/env python3
"""tpl_ref.py - the reference chat-template renderer and conversation generator for lode's
template tests.

    tpl_ref.py gen TEMPLATE OUTDIR [N] [SEED]
    tpl_ref.py snip OUTDIR

Generates N (default 240) conversations, renders each with transformers' own
render_jinja_template (Python Jinja2 in transformers' ImmutableSandboxedEnvironment with
trim_blocks, lstrip_blocks, loopcontrols, its tojson and raise_exception), and writes for each
case k: OUTDIR/k.json (an object with "messages" and "tools", as `lode template --messages`
reads it), OUTDIR/k.args (the lode template flags, one line) and OUTDIR/k.out (the expected
bytes) or OUTDIR/k.err (the exception text, when the template raises).

`snip` (which `gen` also runs, into OUTDIR/snip) writes the one-feature templates of tpl_snippets.py as OUTDIR/sNN.jinja with sNN.out or
sNN.err, rendered over OUTDIR/msgs.json (a plain array of three messages).
"""
import json
import os
import random
import sys

from transformers.utils.chat_template_utils import render_jinja_template

WORDS = ["hello", "world", "Paris", "naïve", "café", "日本語", "你好，世界！", "สวัสดีครับ", "नमस्ते",
         "مرحبا", "👩‍👩‍👧‍👦", "🎉", "x", "  spaced  ", "tab\there", "line1\nline2", "\n\nlead",
         "trail\n\n", "quote\"s", "back\\slash", "<tool_response>", "</think>", "<think>",
         "{{ not jinja }}", "{% raw %}", "ü", "Ω", "\u2028sep", "\r\nCRLF", "0.5", "None", "true"]

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Get the weather in a city.",
     "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"},
                    "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "run_shell", "description": "Run a command; ü, 日本",
     "parameters": {"type": "object", "properties": {"cmd": {"type": "string"},
                    "timeout": {"type": "number"}}, "required": ["cmd"]}}},
    {"type": "function", "function": {"name": "edit", "description": "Edit \"files\"\n\twith tabs",
     "parameters": {"type": "object", "properties": {}}}},
]


def text(r, lo=1, hi=6):
    return " ".join(r.choice(WORDS) for _ in range(r.randint(lo, hi)))


def arg_value(r, depth=0):
    k = r.randint(0, 9 if depth < 2 else 6)
    if k == 0:
        return text(r)
    if k == 1:
        return r.randint(-1000, 10**12)
    if k == 2:
        return r.choice([0.5, -2.25, 1.0, 1e-7, 3.14159, 1e20, 123456.789, 2.0 ** 60, -0.0])
    if k == 3:
        return r.choice([True, False])
    if k == 4:
        return None
    if k == 5:
        return ""
    if k == 6:
        return r.choice(["multi\nline\nvalue", "  padded  ", "ünïcödé 🎉"])
    if k == 7:
        return [arg_value(r, depth + 1) for _ in range(r.randint(0, 3))]
    return {r.choice(["a", "b", "ключ", "key with space", "n"]) + str(i): arg_value(r, depth + 1)
            for i in range(r.randint(0, 3))}


def tool_call(r):
    args = {r.choice(["city", "cmd", "path", "x", "values", "opts", "名前"]) + str(i): arg_value(r)
            for i in range(r.randint(0, 4))}
    name = r.choice(["get_weather", "run_shell", "edit"])
    if r.random() < 0.85:
        return {"id": "call_%d" % r.randint(0, 999), "type": "function",
                "function": {"name": name, "arguments": args}}
    return {"name": name, "arguments": args}  # no "function" wrapper


def content(r):
    k = r.random()
    if k < 0.8:
        return text(r)
    if k < 0.9:
        return [{"type": "text", "text": text(r)} for _ in range(r.randint(1, 2))]
    return ""


def conversation(r):
    msgs = []
    if r.random() < 0.5:
        msgs.append({"role": "system", "content": text(r)})
    for _ in range(r.randint(1, 4)):
        msgs.append({"role": "user", "content": content(r)})
        if r.random() < 0.15:
            break  # ends with a user turn
        n_rounds = r.randint(0, 2)
        for _ in range(n_rounds + 1):
            m = {"role": "assistant"}
            rk = r.random()
            body = text(r) if r.random() < 0.7 else ""
            if rk < 0.3:
                m["reasoning_content"] = text(r)
            elif rk < 0.5:
                body = r.choice(["<think>\n", "", "<think>"]) + text(r) + "</think>" + r.choice(["\n\n", "", "\n"]) + body
            elif rk < 0.55:
                m["reasoning"] = text(r)
            m["content"] = body
            calls = r.random() < 0.5
            if calls:
                m["tool_calls"] = [tool_call(r) for _ in range(r.randint(1, 3))]
            msgs.append(m)
            if not calls:
                break
            for tc in m["tool_calls"]:
                msgs.append({"role": "tool", "content": text(r) if r.random() < 0.8 else json.dumps({"ok": 1})})
    return msgs


def special_cases():
    u = {"role": "user", "content": "hi"}
    return [
        ([], None, {}),  # raises: no messages
        ([{"role": "system", "content": "s"}], None, {}),  # raises: no user query
        ([u, {"role": "system", "content": "late"}], None, {}),  # raises: system not first
        ([u, {"role": "developer", "content": "d"}], None, {}),  # raises: unexpected role
        ([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what?"}]}], None, {}),
        ([{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "and?"}]}], None, {}),
        ([{"role": "user", "content": [{"foo": 1}]}], None, {}),  # raises: unexpected item
        ([{"role": "user", "content": 5}], None, {}),  # raises: unexpected content type
        ([{"role": "system", "content": [{"type": "image"}]}, u], None, {}),  # raises
        ([{"role": "user", "content": None}], None, {}),
        ([{"role": "user", "content": "<tool_response>x</tool_response>"}], None, {}),  # raises
        ([u, {"role": "assistant", "content": "a"}, {"role": "user", "content": "<tool_response>\nr\n</tool_response>"}],
         None, {"add_generation_prompt": True}),
        ([{"role": "system", "content": "   "}, u], TOOLS, {}),
        ([{"role": "system", "content": "  sys  "}, u], TOOLS[:1], {"enable_thinking": False}),
    ]


def snippets(outdir):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from tpl_snippets import S
    from transformers.utils.chat_template_utils import _compile_jinja_template

    os.makedirs(outdir, exist_ok=True)
    msgs = [{"role": "system", "content": "sys é"}, {"role": "user", "content": "  hi\n there \n"},
            {"role": "assistant", "content": "ok"}]
    with open(os.path.join(outdir, "msgs.json"), "w", encoding="utf-8") as f:
        json.dump(msgs, f, ensure_ascii=False)
    for i, src in enumerate(S):
        base = os.path.join(outdir, "s%02d" % i)
        with open(base + ".jinja", "wb") as f:
            f.write(src.encode("utf-8"))
        try:
            # the same environment transformers compiles chat templates with
            out = _compile_jinja_template(src).render(messages=msgs, tools=None, documents=None,
                                                      add_generation_prompt=False)
            with open(base + ".out", "wb") as f:
                f.write(out.encode("utf-8"))
        except Exception as e:
            with open(base + ".err", "w", encoding="utf-8") as f:
                f.write("%s: %s\n" % (type(e).__name__, e))
    print("%d snippets in %s" % (len(S), outdir))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "snip":
        return snippets(sys.argv[2])
    if len(sys.argv) < 4 or sys.argv[1] != "gen":
        sys.exit(__doc__)
    template = open(sys.argv[2], encoding="utf-8").read()
    outdir = sys.argv[3]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 240
    seed = int(sys.argv[5]) if len(sys.argv) > 5 else 1234
    r = random.Random(seed)
    os.makedirs(outdir, exist_ok=True)
    cases = special_cases()
    while len(cases) < n:
        msgs = conversation(r)
        tools = r.choice([None, None, TOOLS, TOOLS[:1], []])
        flags = {}
        if r.random() < 0.5:
            flags["add_generation_prompt"] = True
        if r.random() < 0.6:
            flags["enable_thinking"] = r.random() < 0.5
        if r.random() < 0.3:
            flags["preserve_thinking"] = True
        cases.append((msgs, tools, flags))
    for k, (msgs, tools, flags) in enumerate(cases):
        doc = {"messages": msgs}
        if tools is not None:
            doc["tools"] = tools
        with open(os.path.join(outdir, "%03d.json" % k), "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
        args = []
        if flags.get("add_generation_prompt"):
            args.append("--generation-prompt")
        if "enable_thinking" in flags:
            args.append("--thinking=" + ("on" if flags["enable_thinking"] else "off"))
        if flags.get("preserve_thinking"):
            args.append("--preserve-thinking")
        with open(os.path.join(outdir, "%03d.args" % k), "w") as f:
            f.write(" ".join(args) + "\n")
        try:
            out, _ = render_jinja_template(conversations=[msgs], tools=tools, chat_template=template, **flags)
            with open(os.path.join(outdir, "%03d.out" % k), "wb") as f:
                f.write(out[0].encode("utf-8"))
        except Exception as e:  # the template raised: lode must fail too
            with open(os.path.join(outdir, "%03d.err" % k), "w", encoding="utf-8") as f:
                f.write("%s: %s\n" % (type(e).__name__, e))
    print("%d cases in %s" % (len(cases), outdir))
    snippets(os.path.join(outdir, "snip"))  # in the same process: importing transformers takes seconds


if __name__ == "__main__":
    main()
