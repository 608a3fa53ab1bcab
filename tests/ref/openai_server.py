#!/usr/bin/env python3
"""openai_server.py - an imitation OpenAI-compatible chat-completions server
for the remote backend's tests (tests/unit/test_openai.c, tests/e2e/remote.sh).
Standard library only; listens on 127.0.0.1 only, on a free port.

    openai_server.py --port-file F [--log F] [--script FIXTURE.json]

The port is written to the port file once the server listens. --log appends
one JSON line per request: {"method", "path", "auth", "body"} (body parsed
as JSON when it is). The key is logged here only because this is a test server.

The scenario of a POST .../chat/completions is the request's "model" field;
each scenario is a sequence of scripted responses, used in turn by successive
requests of that model (the last one repeats); "NAME@TAG" plays NAME from its
start with a counter of its own. GET .../models lists the
model "basic". Any path prefix before /models or /chat/completions works;
with the prefix "/auth/" every request needs "Authorization: Bearer sk-good"
(none -> 401, another -> 403 would be too kind: both answer 401, like OpenAI).
The prefix "/nomodels/" makes /models list nothing; "/gone/" answers 404.

A response is {"status": 200, "events": [...], "done": true} where an event is
a chunk object (sent as "data: <json>" and a blank line), a string (sent
verbatim) or {"sleep": seconds}; or an error {"status": N, "json": {...}};
or {"status": 200, "json": {...}} (a non-streamed body). --script adds or
replaces scenarios from a JSON object {"name": [response, ...]}.
"""
import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY = "sk-good"


def chunk(delta=None, finish=None, usage=None):
    c = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "test", "choices": []}
    if delta is not None or finish is not None:
        c["choices"].append({"index": 0, "delta": delta or {}, "finish_reason": finish})
    if usage is not None:
        c["usage"] = usage
    return c


USAGE = {"prompt_tokens": 120, "completion_tokens": 9, "total_tokens": 129,
         "prompt_tokens_details": {"cached_tokens": 100}}


def sse(events, done=True):
    return {"status": 200, "events": events, "done": done}


XML = ("I will look.\n<tool_call>\n<function=read>\n<parameter=path>\nsrc/a.c\n</parameter>\n"
       "</function>\n</tool_call>")

SCENARIOS = {
    # reasoning (both field names) and content, usage in the last chunk
    "basic": [sse([
        chunk({"role": "assistant", "content": ""}),
        chunk({"reasoning_content": "Let me "}),
        chunk({"reasoning": "think."}),
        chunk({"content": "Hello"}),
        ": keep-alive comment\n\n",
        chunk({"content": ", world"}),
        chunk({}, "stop"),
        chunk(usage=USAGE),
    ])],
    # two parsed calls, arguments in pieces, interleaved by index
    "tools": [sse([
        chunk({"role": "assistant"}),
        chunk({"content": "Reading."}),
        chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                               "function": {"name": "read", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"pa"}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                               "function": {"name": "grep", "arguments": "{\"pattern\":"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "th\": \"a.c\"}"}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": " \"main\"}"}}]}),
        chunk({}, "tool_calls"),
        chunk(usage={"prompt_tokens": 50, "completion_tokens": 20}),
    ])],
    # raw XML tool call inside the content, split mid-tag
    # whole calls without "index" (llama.cpp style), the id repeated with the rest
    "wholecalls": [sse([
        chunk({"tool_calls": [{"id": "c1", "type": "function",
                               "function": {"name": "read", "arguments": "{\"path\":"}}]}),
        chunk({"tool_calls": [{"id": "c1", "function": {"name": "read",
                                                        "arguments": " \"x\"}"}}]}),
        chunk({"tool_calls": [{"id": "c2", "type": "function",
                               "function": {"name": "todo", "arguments": ""}}]}),
        chunk({}, "tool_calls"),
    ])],
    # an agent's two turns: a parsed call of read_file, then the answer
    "agent": [sse([
        chunk({"reasoning_content": "I should read it."}),
        chunk({"tool_calls": [{"index": 0, "id": "srv_1", "type": "function",
                               "function": {"name": "read_file", "arguments": "{\"pa"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "th\": \"hello.txt\"}"}}]}),
        chunk({}, "tool_calls"),
        chunk(usage={"prompt_tokens": 300, "completion_tokens": 12}),
    ]), sse([chunk({"content": "The file says hi."}), chunk({}, "stop"),
             chunk(usage={"prompt_tokens": 340, "completion_tokens": 6,
                          "prompt_tokens_details": {"cached_tokens": 300}})])],
    # the same with the call as raw XML in the content
    "agentxml": [sse([
        chunk({"content": "<tool_call>\n<function=read_file>\n<parameter=path>\nhel"}),
        chunk({"content": "lo.txt\n</parameter>\n</function>\n</tool_call>"}),
        chunk({}, "stop"),
    ]), sse([chunk({"content": "Read it."}), chunk({}, "stop")])],
    "xml": [sse([chunk({"content": XML[:20]}), chunk({"content": XML[20:]}),
                 chunk({}, "stop")])],
    "length": [sse([chunk({"content": "abc"}), chunk({}, "length")])],
    # an error object after some output
    "error": [sse([chunk({"content": "partial"}),
                   {"error": {"message": "out of KV cache", "type": "server_error",
                              "code": 500}}], done=False)],
    "llamaerror": [sse(["error: {\"code\": 500, \"message\": \"slot unavailable\"}\n\n"],
                       done=False)],
    # output, then nothing for a long time
    "stall": [sse([chunk({"content": "so far"}), {"sleep": 60}])],
    "stallfirst": [sse([{"sleep": 60}])],
    "malformed": [sse([chunk({"content": "ok"}), "this is not sse\n\n"])],
    "badjson": [sse([chunk({"content": "ok"}), "data: {\"choices\": [\n\n"])],
    # 503 first, then a good answer: retried, nothing duplicated
    "flaky": [{"status": 503, "json": {"error": {"message": "overloaded"}}},
              sse([chunk({"content": "second try"}), chunk({}, "stop")])],
    # output, then the connection ends without [DONE] or a finish_reason
    "drop": [sse([chunk({"content": "half"})], done=False),
             sse([chunk({"content": "again"}), chunk({}, "stop")])],
    "notfound": [{"status": 404, "json": {"error": {"message": "The model `notfound` does not "
                                                               "exist."}}}],
    "boom": [{"status": 500, "json": {"error": {"message": "internal failure"}}}],
    "nostream": [{"status": 200, "json": {"choices": [{"message": {"content": "hi"}}]}}],
    # no blank line after the last event, no [DONE]: still complete
    "nodone": [sse([chunk({"content": "x"}), "data: " + json.dumps(chunk({}, "stop"))],
                   done=False)],
}

lock = threading.Lock()
served = {}  # scenario -> responses used so far
args = None


def log(entry):
    if args.log:
        with lock, open(args.log, "a") as f:
            f.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        pass

    def send_json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def gate(self):
        """The path prefix's rules; returns True when the request was answered."""
        if self.path.startswith("/auth/") and self.headers.get("Authorization") != "Bearer " + KEY:
            self.send_json(401, {"error": {"message": "Incorrect API key provided",
                                           "type": "invalid_request_error"}})
            return True
        if self.path.startswith("/gone/"):
            self.send_json(404, {"detail": "Not Found"})
            return True
        return False

    def do_GET(self):
        log({"method": "GET", "path": self.path, "auth": self.headers.get("Authorization"),
             "body": None})
        if self.gate():
            return
        if self.path.endswith("/models"):
            data = [] if self.path.startswith("/nomodels/") else [{"id": "basic",
                                                                   "object": "model"}]
            self.send_json(200, {"object": "list", "data": data})
        else:
            self.send_json(404, {"detail": "Not Found"})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        log({"method": "POST", "path": self.path, "auth": self.headers.get("Authorization"),
             "body": body})
        if self.gate():
            return
        if not self.path.endswith("/chat/completions"):
            self.send_json(404, {"detail": "Not Found"})
            return
        # "NAME@TAG" plays NAME's script with its own turn counter.
        name = body.get("model") if isinstance(body, dict) else None
        script = SCENARIOS.get(str(name).split("@")[0])
        if not script:
            self.send_json(404, {"error": {"message": f"The model `{name}` does not exist."}})
            return
        with lock:
            i = served.get(name, 0)
            served[name] = i + 1
        self.respond(script[min(i, len(script) - 1)])

    def respond(self, r):
        if "json" in r:
            self.send_json(r["status"], r["json"])
            return
        self.send_response(r.get("status", 200))
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")  # the end of the body is the close
        self.end_headers()
        self.wfile.flush()
        try:
            for ev in r["events"]:
                if isinstance(ev, dict) and "sleep" in ev:
                    time.sleep(ev["sleep"])
                    continue
                text = ev if isinstance(ev, str) else "data: " + json.dumps(ev) + "\n\n"
                self.wfile.write(text.encode())
                self.wfile.flush()
            if r.get("done", True):
                self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


def main():
    global args
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log")
    ap.add_argument("--script", help="JSON object: scenario name -> list of responses")
    args = ap.parse_args()
    if args.script:
        with open(args.script) as f:
            SCENARIOS.update(json.load(f))
    # Exit with the test that started us, even when it crashed without a word.
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(tmp, args.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
