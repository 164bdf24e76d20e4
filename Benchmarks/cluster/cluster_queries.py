#!/usr/bin/env python3
"""The cluster half of the cluster query benchmark: each query of Benchmarks/api/api_queries.py runs
on the single node and through the cluster's query front (one cold run each, then --runs runs
alternating between the two, the medians kept); the answers, in api_queries' shapes, must be identical (floats to 1e-9 relative, ties
in ordering aside as both order them by the same keys). Per query it prints the single-node median,
the cluster median, their ratio, the cluster's cold run and the fan-out cost of one cluster run:
node requests, partial bytes received (all nodes, and the largest node's share), merge time, time
waiting for storage nodes' catalogs (0 when the front plans from its cached catalogs) and plans made
again because a catalog had changed (in all runs), from the front's `x-weft-fanout` header and
`weft_fanout_partial_bytes_total` counters.

Usage: cluster_queries.py --single URL --cluster URL --params params.json [--runs 11] [--out result.json]
"""

import argparse
import json
import math
import os
import re
import statistics
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "api"))
import api_queries  # noqa: E402

BYTES = re.compile(r'^weft_fanout_partial_bytes_total\{node="([^"]+)"\} (\S+)$', re.M)


def fetch(base, path, params):
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as r:
        body = r.read()
        headers = dict(r.headers)
    return (time.perf_counter() - t0) * 1e3, body, headers


def node_bytes(cluster):
    with urllib.request.urlopen(cluster + "/metrics", timeout=60) as r:
        text = r.read().decode()
    return {node: float(v) for node, v in BYTES.findall(text)}


def fanout(headers):
    text = headers.get("x-weft-fanout") or headers.get("X-Weft-Fanout") or ""
    return {k: float(v) for k, v in (part.split("=", 1) for part in text.split())}


def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def timed(single, cluster, path, params, runs):
    """Cold runs on both, then `runs` runs alternating between them, so that a slow spell of the
    machine falls on both sides alike."""
    s_cold, s_body, _ = fetch(single, path, params)
    c_cold, c_body, _ = fetch(cluster, path, params)
    s_times, c_times, fanouts = [], [], []
    for _ in range(runs):
        ms, s_body, _ = fetch(single, path, params)
        s_times.append(ms)
        ms, c_body, headers = fetch(cluster, path, params)
        c_times.append(ms)
        fanouts.append(fanout(headers))
    return (s_cold, statistics.median(s_times), s_body), (c_cold, statistics.median(c_times), c_body, fanouts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--single", required=True)
    ap.add_argument("--cluster", required=True)
    ap.add_argument("--params", required=True)
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--out")
    args = ap.parse_args()
    with open(args.params) as f:
        p = json.load(f)
    rows, results, mismatched = [], {}, []
    print("%-38s %10s %10s %6s %10s %6s %10s %10s %8s %10s %7s %s" % (
        "query", "single ms", "cluster ms", "ratio", "cold ms", "reqs", "KB/run", "max node KB", "merge ms", "catalog ms", "replans", "answer"))
    for name, (path, params, shape) in api_queries.queries(p).items():
        before = node_bytes(args.cluster)
        (s_cold, s_median, s_body), (c_cold, c_median, c_body, fanouts) = timed(args.single, args.cluster, path, params, args.runs)
        after = node_bytes(args.cluster)
        per_node = {n: (after.get(n, 0) - before.get(n, 0)) / (args.runs + 1) for n in after}
        ok = same(shape(json.loads(s_body)), shape(json.loads(c_body)))
        if not ok:
            mismatched.append(name)
        requests = statistics.median(f.get("requests", 0) for f in fanouts) if fanouts else 0
        merge = statistics.median(f.get("merge_ms", 0) for f in fanouts) if fanouts else 0
        catalog = statistics.median(f.get("catalog_ms", 0) for f in fanouts) if fanouts else 0
        replans = sum(f.get("replans", 0) for f in fanouts)
        ratio = c_median / s_median if s_median > 0 else float("inf")
        results[name] = {"single_median_ms": s_median, "single_cold_ms": s_cold, "cluster_median_ms": c_median, "cluster_cold_ms": c_cold,
                         "ratio": ratio, "requests_per_run": requests, "bytes_per_run_by_node": per_node, "merge_ms": merge, "catalog_ms": catalog, "replans": replans,
                         "same_answer": ok}
        print("%-38s %10.1f %10.1f %6.2f %10.1f %6d %10.1f %10.1f %8.2f %10.2f %7d %s" % (
            name, s_median, c_median, ratio, c_cold, requests, sum(per_node.values()) / 1024, max(per_node.values(), default=0) / 1024, merge,
            catalog, replans, "same" if ok else "DIFFERENT"), flush=True)
    over = [n for n, r in results.items() if r["ratio"] > 1.5]
    print("\ncluster median <= 1.5x single: %s" % ("yes" if not over else "no (" + ", ".join(over) + ")"))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    if mismatched:
        print("answers differ: " + ", ".join(mismatched))
        sys.exit(1)


if __name__ == "__main__":
    main()
