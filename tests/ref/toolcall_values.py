#!/usr/bin/env python3
"""Checks lode's tool-call value conversion against Python itself.

The oracle is vLLM's qwen3_coder conversion rule (model-spec.md 5.2) written
with the real json.loads / ast.literal_eval / int() / float(); the values are
fed to `lode toolcalls --tools FILE` as one model output and the parsed
arguments are compared. Standard library only, so it never needs the venv.

usage: toolcall_values.py LODE TMPDIR   (prints ok/FAIL lines and a summary)
"""
import ast
import json
import subprocess
import sys

TYPES = {
    "s": {"type": "string"},
    "i": {"type": "integer"},
    "f": {"type": "number"},
    "b": {"type": "boolean"},
    "o": {"type": "object"},
    "a": {"type": "array"},
    "ns": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    "ni": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
    "no": {"anyOf": [{"type": "object"}, {"type": "null"}]},
    "t": {"type": "tuple"},
}

VALUES = [
    ("s", "hello world"), ("s", "null"), ("s", "None"), ("s", "  42 "), ("s", "{'a': 1}"),
    ("i", "42"), ("i", "-7"), ("i", " 1_000 "), ("i", "+3"), ("i", "1.5"), ("i", "x"),
    ("i", "None"), ("i", "123456789012345678901234"), ("i", "0"), ("i", "-0"),
    ("f", "2.5"), ("f", "3.0"), ("f", "-1e3"), ("f", "1e-7"), ("f", ".5"), ("f", "7"),
    ("f", "abc"), ("f", "1_0.5"), ("f", "NULL"),
    ("b", "true"), ("b", "True"), ("b", "false"), ("b", "yes"), ("b", "1"),
    ("o", '{"a": 1, "b": [true, null]}'), ("o", "{'a': 1, 'b': [True, None]}"),
    ("o", "\"{'key': 'value', 'n': 1}\""), ("o", "{1: 2, None: 'x', 2.5: False}"),
    ("o", "{'s': 'it\\'s', 'u': '\\u00e9\\x41', 't': (1, 2)}"), ("o", "{oops"),
    ("o", "{'a': 1, 'a': 2}"), ("o", "{'nested': {'deep': [[1], [2, [3]]]}}"),
    ("o", "{1, 2}"), ("o", "{'b': b'x'}"), ("o", "none"),
    ("a", "[1, 2, 3]"), ("a", "[true, null, \"x\"]"), ("a", "['a', \"b\", 0x10, 0o7, 0b1]"),
    ("a", "[1,]"), ("a", "(1, 2)"), ("a", "[1e400]"), ("a", "[1 2]"), ("a", "'abc'"),
    ("a", "[-1.5, +2, - 3]"), ("a", "['''tri\nple''', r'\\d']"), ("a", "['a' 'b']"),
    ("ns", "42"), ("ns", "null"), ("ns", "None"), ("ns", "NoNe"), ("ns", " None"), ("ni", " null "),
    ("ni", "42"), ("ni", "None"), ("ni", "null"), ("ni", "4.0"),
    ("no", '{"a": {"b": 1}}'), ("no", "None"),
    ("t", "(1, 'two', None)"), ("t", "()"), ("t", "not a literal"), ("t", "5"),
]


def schema_type(s):
    nullable = False
    found = None

    def names(x):
        t = x.get("type")
        return t if isinstance(t, list) else ([t] if isinstance(t, str) else [])

    for t in names(s):
        if t == "null":
            nullable = True
        elif found is None:
            found = t
    for alt in s.get("anyOf", []) + s.get("oneOf", []):
        for t in names(alt):
            if t == "null":
                nullable = True
            elif found is None:
                found = t
    return found or "string", nullable


def literal(v):
    r = ast.literal_eval(v.strip(" \t"))
    json.dumps(r, allow_nan=False)  # sets, bytes, complex: not JSON
    return r


def convert(raw, schema):
    t, nullable = schema_type(schema)
    t = t.lower()
    stripped = raw.strip()
    if nullable and raw.lower() in ("null", "none"):
        return None
    if t in ("string", "str", "text", "varchar", "char", "enum"):
        return raw
    if stripped.lower() in ("null", "none"):
        return None
    if t.startswith(("int", "uint", "long", "short", "unsigned")):
        try:
            return int(stripped)
        except ValueError:
            return raw
    if t.startswith(("num", "float")):
        try:
            f = float(stripped)
            if f != f or f in (float("inf"), float("-inf")):
                return raw
            return int(f) if f == int(f) else f
        except ValueError:
            return raw
    if t in ("boolean", "bool", "binary"):
        return stripped.lower() == "true"
    if t in ("object", "array") or t.startswith(("dict", "list")):
        try:
            r = json.loads(stripped)
            if isinstance(r, str):
                try:
                    return literal(r)
                except Exception:
                    return raw
            return r
        except Exception:
            pass
    try:
        return literal(stripped)
    except Exception:
        return raw


def main():
    lode, tmp = sys.argv[1], sys.argv[2]
    tools = [{"type": "function", "function": {"name": "f_" + k, "parameters": {
        "type": "object", "properties": {"v": s}}}} for k, s in TYPES.items()]
    with open(tmp + "/tools.json", "w") as fp:
        json.dump(tools, fp)
    passed = failed = 0
    # at most 64 calls per turn: run in batches
    for start in range(0, len(VALUES), 50):
        batch = VALUES[start:start + 50]
        out = "".join("<tool_call>\n<function=f_%s>\n<parameter=v>\n%s\n</parameter>\n"
                      "</function>\n</tool_call>\n" % (k, v) for k, v in batch)
        p = subprocess.run([lode, "toolcalls", "--tools", tmp + "/tools.json"],
                           input=out.encode(), capture_output=True)
        if p.returncode != 0:
            print("FAIL lode toolcalls exited %d: %s" % (p.returncode, p.stderr.decode()[:300]))
            failed += 1
            continue
        got = json.loads(p.stdout)
        calls = got["tool_calls"]
        if len(calls) != len(batch):
            print("FAIL %d calls, want %d: %s" % (len(calls), len(batch), p.stdout[:300]))
            failed += 1
            continue
        for (k, v), call in zip(batch, calls):
            want = convert(v, TYPES[k])
            try:  # what the JSON arguments can hold: tuples as lists, keys as strings
                want = json.loads(json.dumps(want, allow_nan=False))
            except ValueError:
                want = v
            have = call["arguments"].get("v")
            if have == want and type(have) is type(want):
                passed += 1
            else:
                failed += 1
                print("FAIL value %s %r: lode %r, python %r" % (k, v, have, want))
    print("ok   %d values agree with Python's conversion" % passed if not failed else
          "FAIL %d of %d values differ" % (failed, passed + failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
