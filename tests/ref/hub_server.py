#!/usr/bin/env python3
"""hub_server.py - an imitation of the Hugging Face Hub endpoints `lode pull`
uses, for tests/e2e/pull.sh. Standard library only (system python3); listens on
127.0.0.1 only: a "hub" port and a second "CDN" port that LFS downloads are
redirected to.

    hub_server.py --port-file F [--log F]
    hub_server.py dump SCENARIO DIR

The server writes "HUBPORT CDNPORT" to the port file once both listen; --log
appends one JSON line per request ({"srv", "method", "path", "auth", "range",
"status"}). `dump` writes a scenario's files into DIR, for comparison.

Repositories are lode-test/<scenario>, where the scenario is a dash-separated
list of switches (lode-test/cdn-private-drop):

  cdn       LFS files resolve with a 302 to the CDN port (a signed URL)
  private   the hub wants "Authorization: Bearer hf_good": none -> 401, other -> 403
  norange   downloads ignore Range and answer 200 with the whole file
  drop      the first download of each LFS file closes the connection mid-file
  stall     the first download of each LFS file stops sending for 8 s mid-file
  slow      bodies are sent in 16 KiB pieces with a short pause between them
  expire    the first signed URL issued for each file is refused by the CDN (403)
  flaky     the first request for each file is answered 503 (with Retry-After: 0)
  relredir  resolve URLs first answer 307 with a relative Location on the hub itself
  badsum    the listing gives model-00002's SHA-256 wrong
  missing   model-00002 answers 404 at its resolve URL
  paged     the tree listing comes one file per page, linked by Link: rel="next"
  huge      the listing adds a file of 10**15 bytes (the disk check must refuse)
  evil      the listing adds a file named ../evil.txt
  big       the two weight files are 300 MB and 200 MB (throughput by hand; not used by tests)
The scenario "nope" does not exist (404, like an unknown repository).
"""
import argparse
import functools
import hashlib
import json
import os
import random
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "hf_good"
FILES = [  # (path, size, lfs)
    ("config.json", None, False),
    ("sub/tokenizer.json", None, False),
    ("model-00001-of-00002.safetensors", 300_000, True),
    ("model-00002-of-00002.safetensors", 200_000, True),
]

lock = threading.Lock()
first_seen = set()  # (scenario, path, what) for one-shot misbehaviour
signatures = {}  # (scenario, path) -> signatures issued so far
args = None


def once(scn, path, what):
    with lock:
        key = (scn, path, what)
        if key in first_seen:
            return False
        first_seen.add(key)
        return True


@functools.lru_cache(maxsize=64)
def content(scn, path, size):
    if size is None:  # small text files, different per scenario
        return json.dumps({"scenario": scn, "file": path, "model_type": "qwen3_5_moe"}).encode()
    rng = random.Random(scn + "/" + path)
    if size > 1 << 24:  # randbytes() tops out at 256 MB; a repeated block is enough here
        return (rng.randbytes(1 << 20) * (size // (1 << 20) + 1))[:size]
    return rng.randbytes(size)


def repo_files(scn):
    out = []
    for path, size, lfs in FILES:
        if size and "big" in scn.split("-"):
            size *= 1000  # 300 MB and 200 MB: for measuring throughput by hand, not in tests
        data = content(scn, path, size)
        out.append({"path": path, "data": data, "lfs": lfs})
    return out


def commit_of(scn):
    return hashlib.sha1(("commit:" + scn).encode()).hexdigest()


def tree_items(scn):
    flags = scn.split("-")
    items = [{"type": "directory", "path": "sub", "oid": "0" * 40, "size": 0}]
    for f in repo_files(scn):
        data = f["data"]
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        it = {"type": "file", "path": f["path"], "size": len(data), "oid": blob}
        if f["lfs"]:
            sha = hashlib.sha256(data).hexdigest()
            if "badsum" in flags and f["path"].startswith("model-00002"):
                sha = hashlib.sha256(b"something else").hexdigest()
            it["oid"] = hashlib.sha1(b"pointer " + f["path"].encode()).hexdigest()
            it["lfs"] = {"oid": sha, "size": len(data), "pointerSize": 134}
        items.append(it)
    if "huge" in flags:
        items.append({"type": "file", "path": "huge.bin", "size": 10**15, "oid": "1" * 40,
                      "lfs": {"oid": "2" * 64, "size": 10**15, "pointerSize": 134}})
    if "evil" in flags:
        items.append({"type": "file", "path": "../evil.txt", "size": 4, "oid": "3" * 40})
    return items


def log(entry):
    if not args.log:
        return
    with lock:
        with open(args.log, "a") as fp:
            fp.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    srv = "hub"

    def log_message(self, fmt, *a):  # quiet
        pass

    def reply(self, status, body=b"", headers=None, ctype="application/json"):
        self.status = status
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, msg):
        self.reply(status, json.dumps({"error": msg}).encode(), {"X-Error-Message": msg})

    def do_GET(self):
        self.status = 0
        try:
            self.route()
        except (BrokenPipeError, ConnectionResetError):
            pass
        log({"srv": self.srv, "method": self.command, "path": self.path,
             "auth": self.headers.get("Authorization"), "range": self.headers.get("Range"),
             "status": self.status})

    def send_file(self, scn, path, data):
        flags = scn.split("-")
        start = 0
        rng = self.headers.get("Range")
        if rng and "norange" not in flags:
            if not rng.startswith("bytes=") or not rng.endswith("-"):
                return self.error(400, "unsupported range")
            start = int(rng[6:-1])
            if start >= len(data):
                return self.reply(416, b"", {"Content-Range": "bytes */%d" % len(data)})
        body = data[start:]
        self.status = 206 if start else 200
        self.send_response(self.status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        big = len(data) > 100_000
        if big and "drop" in flags and once(scn, path, "drop"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if big and "stall" in flags and once(scn, path, "stall"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            time.sleep(8)
            self.close_connection = True
            return
        if "slow" in flags:
            for i in range(0, len(body), 16384):
                self.wfile.write(body[i : i + 16384])
                self.wfile.flush()
                time.sleep(0.01)
            return
        self.wfile.write(body)


class HubHandler(Handler):
    srv = "hub"

    def authorized(self, flags):
        if "private" not in flags:
            return True
        auth = self.headers.get("Authorization")
        if auth is None:
            self.error(401, "Invalid credentials in Authorization header")
            return False
        if auth != "Bearer " + TOKEN:
            self.error(403, "Access to this repository is restricted")
            return False
        return True

    def route(self):
        u = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in u.path.split("/")][1:]
        q = urllib.parse.parse_qs(u.query)
        if parts[:2] == ["api", "models"] and len(parts) >= 6:
            owner, scn, kind, rev = parts[2], parts[3], parts[4], "/".join(parts[5:])
            return self.api(owner, scn, kind, rev, q)
        if len(parts) >= 5 and parts[2] == "resolve":
            owner, scn, rev, path = parts[0], parts[1], parts[3], "/".join(parts[4:])
            return self.resolve(owner, scn, rev, path, q)
        self.error(404, "Not Found")

    def repo_ok(self, owner, scn):
        if owner != "lode-test" or scn == "nope":
            self.error(404, "Repository Not Found")
            return False
        return self.authorized(scn.split("-"))

    def api(self, owner, scn, kind, rev, q):
        if not self.repo_ok(owner, scn):
            return
        if kind == "revision":
            if rev not in ("main", commit_of(scn)):
                return self.error(404, "Revision Not Found")
            return self.reply(200, json.dumps({"id": owner + "/" + scn, "sha": commit_of(scn),
                                               "siblings": []}).encode())
        if kind == "tree":
            if rev != commit_of(scn):
                return self.error(404, "Revision Not Found")
            items = tree_items(scn)
            if "paged" in scn.split("-"):
                page = int(q.get("cursor", ["0"])[0])
                hdr = {}
                if page + 1 < len(items):
                    nxt = "/api/models/%s/%s/tree/%s?recursive=true&cursor=%d" % (
                        owner, scn, rev, page + 1)
                    hdr["Link"] = '<http://127.0.0.1:%d%s>; rel="next"' % (args.hub_port, nxt)
                return self.reply(200, json.dumps(items[page : page + 1]).encode(), hdr)
            return self.reply(200, json.dumps(items).encode())
        self.error(404, "Not Found")

    def resolve(self, owner, scn, rev, path, q):
        if not self.repo_ok(owner, scn):
            return
        flags = scn.split("-")
        if rev != commit_of(scn):
            return self.error(404, "Revision Not Found")
        files = {f["path"]: f for f in repo_files(scn)}
        if path not in files or ("missing" in flags and path.startswith("model-00002")):
            return self.error(404, "Entry Not Found")
        if "flaky" in flags and once(scn, path, "flaky"):
            return self.reply(503, b"{}", {"Retry-After": "0"})
        if "relredir" in flags and q.get("r") != ["1"]:
            return self.reply(307, b"", {"Location": urllib.parse.urlsplit(self.path).path + "?r=1"})
        f = files[path]
        if f["lfs"] and "cdn" in flags:
            with lock:
                n = signatures.get((scn, path), 0) + 1
                signatures[(scn, path)] = n
            loc = "http://127.0.0.1:%d/blobs/%s/%s?sig=%d" % (
                args.cdn_port, scn, urllib.parse.quote(path), n)
            return self.reply(302, b"", {"Location": loc, "X-Repo-Commit": commit_of(scn),
                                         "X-Linked-Size": str(len(f["data"]))})
        self.send_file(scn, path, f["data"])


class CdnHandler(Handler):
    srv = "cdn"

    def route(self):
        u = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in u.path.split("/")][1:]
        q = urllib.parse.parse_qs(u.query)
        if self.headers.get("Authorization") is not None:
            return self.error(400, "Authorization header sent to the CDN")
        if len(parts) < 3 or parts[0] != "blobs":
            return self.error(404, "Not Found")
        scn, path = parts[1], "/".join(parts[2:])
        files = {f["path"]: f for f in repo_files(scn)}
        if path not in files:
            return self.error(404, "Not Found")
        if "expire" in scn.split("-") and q.get("sig") == ["1"]:
            return self.error(403, "Request has expired")
        self.send_file(scn, path, files[path]["data"])


def main():
    global args
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log")
    args = ap.parse_args()
    hub = ThreadingHTTPServer(("127.0.0.1", 0), HubHandler)
    cdn = ThreadingHTTPServer(("127.0.0.1", 0), CdnHandler)
    hub.daemon_threads = cdn.daemon_threads = True
    args.hub_port, args.cdn_port = hub.server_address[1], cdn.server_address[1]
    threading.Thread(target=cdn.serve_forever, daemon=True).start()
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as fp:
        fp.write("%d %d\n" % (args.hub_port, args.cdn_port))
    os.rename(tmp, args.port_file)
    try:
        hub.serve_forever()
    except KeyboardInterrupt:
        pass


def dump(scn, outdir):
    for f in repo_files(scn):
        p = os.path.join(outdir, f["path"])
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as fp:
            fp.write(f["data"])


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "dump":  # hub_server.py dump SCENARIO DIR
        dump(sys.argv[2], sys.argv[3])
    else:
        main()
