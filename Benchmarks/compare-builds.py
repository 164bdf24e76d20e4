#!/usr/bin/env python3
"""Two builds of Weft side by side: the same benchmarks, alternating old and new run by run.

    Benchmarks/compare-builds.py --old /path/to/old/checkout --new .          # both built with
                                                                              # swift build -c release
Runs, per build and round: `weft-bench decode` (protobuf decode, one core), end-to-end ingest (a fresh
`weft serve` with default settings and fsync, fed by the new build's `weftctl load`), `weft-bench storage`
(head → blocks → compaction: bytes per span, flush and compaction rates, trace by ID) and `weft-bench query`
(Q1–Q8 medians over generated blocks). Prints a Markdown table of medians over the rounds.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile


def run(cmd, **kw):
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{out.stdout}\n{out.stderr}")
    return out.stdout + out.stderr


def number(pattern, text):
    m = re.search(pattern, text)
    if not m:
        sys.exit(f"no match for {pattern!r} in:\n{text}")
    return float(m.group(1).replace(",", ""))


def decode(root):
    text = run([f"{root}/.build/release/weft-bench", "decode"])
    return {"decode spans/s": number(r"protobuf decode:.*?([\d.]+) spans/s", text)}


def ingest(root, loader, spans):
    data = tempfile.mkdtemp(prefix="weft-cmp-")
    server = subprocess.Popen(
        [f"{root}/.build/release/weft", "serve", "--otlp-port", "0", "--query-port", "0", "--internal-port", "0", "--data-dir", data],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        port = None
        for line in server.stdout:
            m = re.search(r"otlp=[^ ]*:(\d+)", line)
            if m:
                port = m.group(1)
                break
        if port is None:
            sys.exit(f"{root}: weft serve did not start")
        text = run([loader, "load", "--url", f"http://127.0.0.1:{port}/v1/traces", "--spans", str(spans),
                    "--concurrency", "8", "--batch-size", "1000"])
        wal = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(data, "wal")) for f in fs)
        acked = number(r"spans acknowledged\s+([\d,]+)", text)
        return {"ingest spans/s": number(r"throughput\s+([\d,]+) spans/s", text),
                "ingest p99 ms": number(r"p99 ([\d.]+)", text),
                "WAL B/span": wal / max(acked, 1)}
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)


def storage(root, spans):
    data = tempfile.mkdtemp(prefix="weft-cmp-storage-")
    try:
        text = run([f"{root}/.build/release/weft-bench", "storage", "--spans", str(spans), "--lookups", "500", "--dir", data])
        return {"disk B/span": number(r"ON DISK: ([\d.]+) B/span", text),
                "flush spans/s": number(r"flush ([\d.]+) spans/s", text),
                "compaction spans/s": number(r"compaction: .*\(([\d.]+) spans/s\)", text),
                "trace by ID ms": number(r"trace by ID .*?median ([\d.]+) ms", text)}
    finally:
        shutil.rmtree(data, ignore_errors=True)


def query(root, spans, shared):
    data = tempfile.mkdtemp(prefix="weft-cmp-query-")
    out = os.path.join(data, "weft.json")
    try:
        run([f"{root}/.build/release/weft-bench", "query", "--spans", str(spans), "--dir", data,
             "--tsv", os.path.join(shared, "spans.tsv"), "--params", os.path.join(shared, "params.json"), "--out", out])
        with open(out) as f:
            answers = json.load(f)["queries"]
        return {f"{q} ms": answers[q]["median_ms"] for q in sorted(answers)}
    finally:
        shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", required=True, help="checkout with the old release build")
    ap.add_argument("--new", required=True, help="checkout with the new release build")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ingest-spans", type=int, default=2_000_000)
    ap.add_argument("--storage-spans", type=int, default=2_000_000)
    ap.add_argument("--query-spans", type=int, default=2_000_000)
    ap.add_argument("--only", default="decode,ingest,storage,query")
    args = ap.parse_args()
    only = set(args.only.split(","))
    loader = f"{args.new}/.build/release/weftctl"
    shared = tempfile.mkdtemp(prefix="weft-cmp-shared-")
    results = {"old": {}, "new": {}}
    for r in range(args.rounds):
        for name in (["old", "new"] if r % 2 == 0 else ["new", "old"]):
            root = getattr(args, name)
            figures = {}
            if "decode" in only: figures.update(decode(root))
            if "ingest" in only: figures.update(ingest(root, loader, args.ingest_spans))
            if "storage" in only: figures.update(storage(root, args.storage_spans))
            if "query" in only: figures.update(query(root, args.query_spans, shared))
            for k, v in figures.items():
                results[name].setdefault(k, []).append(v)
            print(f"round {r + 1} {name}: " + ", ".join(f"{k} {v:g}" for k, v in figures.items()), file=sys.stderr, flush=True)
    print(f"| figure (median of {args.rounds}) | old | new | new/old |")
    print("|---|---:|---:|---:|")
    for k in results["old"]:
        o, n = statistics.median(results["old"][k]), statistics.median(results["new"][k])
        print(f"| {k} | {o:,.2f} | {n:,.2f} | {n / o if o else float('nan'):.2f} |")
    shutil.rmtree(shared, ignore_errors=True)


if __name__ == "__main__":
    main()
