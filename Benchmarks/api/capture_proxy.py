#!/usr/bin/env python3
"""OTLP/HTTP pass-through that keeps a copy of every accepted request.

Usage: capture_proxy.py --listen PORT --upstream http://127.0.0.1:4318 --out requests.bin

Each POST is forwarded unchanged to the upstream (same path and headers that
matter); when the upstream answers 2xx, the body is appended to --out as a
4-byte little-endian length and the bytes.  The answer is passed back as is,
so retries and back-pressure behave as without the proxy.
"""

import argparse
import http.client
import http.server
import struct
import threading
import urllib.parse

FORWARDED = ("content-type", "content-encoding", "x-scope-orgid")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    upstream = urllib.parse.urlparse(args.upstream)
    out = open(args.out, "ab")
    lock = threading.Lock()
    local = threading.local()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k: v for k, v in self.headers.items() if k.lower() in FORWARDED}
            if getattr(local, "conn", None) is None:
                local.conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=120)
            try:
                local.conn.request("POST", self.path, body=body, headers=headers)
                resp = local.conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                local.conn = None
                self.send_response(503)
                self.send_header("retry-after", "1")
                self.send_header("content-length", "0")
                self.end_headers()
                return
            if 200 <= resp.status < 300:
                with lock:
                    out.write(struct.pack("<I", len(body)))
                    out.write(body)
                    out.flush()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() in ("content-type", "retry-after"):
                    self.send_header(k, v)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.listen), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
