#!/usr/bin/env python3
"""Sends every OTLP request captured by Benchmarks/api/capture_proxy.py (4-byte little-endian length,
then the body) to another endpoint, four at a time; each must be accepted (retries 429/503).

Usage: replay.py --requests requests.bin --url http://127.0.0.1:4318/v1/traces
"""

import argparse
import concurrent.futures
import struct
import time
import urllib.error
import urllib.request


def bodies(path):
    with open(path, "rb") as f:
        while True:
            head = f.read(4)
            if len(head) < 4:
                return
            (n,) = struct.unpack("<I", head)
            yield f.read(n)


def send(url, body):
    for _ in range(50):
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/x-protobuf"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=120) as r:
                r.read()
                return
        except urllib.error.HTTPError as e:
            if e.code not in (429, 502, 503, 504):
                raise
            time.sleep(float(e.headers.get("retry-after", "1")))
    raise RuntimeError("request refused 50 times")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", required=True)
    ap.add_argument("--url", required=True)
    args = ap.parse_args()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        sent = sum(1 for _ in pool.map(lambda b: send(args.url, b), bodies(args.requests)))
    print("replayed %d requests to %s" % (sent, args.url))


if __name__ == "__main__":
    main()
