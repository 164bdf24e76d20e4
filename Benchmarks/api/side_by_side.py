#!/usr/bin/env python3
"""The API benchmark's queries against several running nodes at once, alternating run by run.

Usage:
    side_by_side.py --params params.json --runs 15 http://127.0.0.1:3200 http://127.0.0.1:3201 [--only q1,q2]

For comparing two builds on the same data: start each build's `weft serve` on a copy of one data
directory (or load both with the same `weftctl load` seed), write params.json as run.sh does (or by
hand: now_s, tenant, model, region, trace_id, user_id, service), then run this. Each query is sent
once to every node (untimed; the answers are compared), then `--runs` times to each node in turn,
so drift in the machine's speed falls on all nodes alike. Prints the median ms per node and flags
answers that differ.
"""

import argparse
import json
import statistics
import time

from api_queries import fetch, queries


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("urls", nargs="+")
    ap.add_argument("--params", required=True)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--only", default="", help="comma-separated query names")
    args = ap.parse_args()
    with open(args.params) as f:
        p = json.load(f)
    only = set(filter(None, args.only.split(",")))
    print("%-38s " % "query" + "  ".join("%10s" % u.rsplit(":", 1)[-1] for u in args.urls))
    for name, (path, params, shape) in queries(p).items():
        if only and name not in only:
            continue
        answers = [shape(json.loads(fetch(u, path, params))) for u in args.urls]
        times = {u: [] for u in args.urls}
        for _ in range(args.runs):
            for u in args.urls:
                t0 = time.perf_counter()
                fetch(u, path, params)
                times[u].append((time.perf_counter() - t0) * 1e3)
        same = all(a == answers[0] for a in answers)
        print("%-38s " % name + "  ".join("%10.1f" % statistics.median(times[u]) for u in args.urls) + ("" if same else "  ANSWERS DIFFER"), flush=True)


if __name__ == "__main__":
    main()
