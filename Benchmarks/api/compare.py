#!/usr/bin/env python3
"""Compare the API benchmark's answers and print its table.

Usage: compare.py duckdb.json weft-fresh.json [weft-compacted.json ...]

DuckDB is the reference.  Rules: searches and the trace by ID must be equal
(trace lists in order; for the first search also each trace's root service,
root name and first start, and its duration within 1 ms); quantiles, cost
sums and the tenant × model × region table follow Benchmarks/query/compare.py
(Q3, Q4, Q7); the heatmap and the service map must be equal.  Prints a
Markdown table of first (cold) runs and medians, then every disagreement;
exits 1 if any answer disagrees.
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "query"))
from compare import Disagreement, compare_equal, compare_q3, compare_q4, compare_q7, show  # noqa: E402


def compare_search(w, d):
    if w["traces"] != d["traces"]:
        missing = [t for t in d["traces"] if t not in w["traces"]]
        raise Disagreement("trace lists differ (%d vs %d traces, %d missing)" % (len(w["traces"]), len(d["traces"]), len(missing)),
                           ["weft: %s" % show(w["traces"]), "duckdb: %s" % show(d["traces"])])
    for ws, ds in zip(w.get("summaries", []), d.get("summaries", [])):
        if ws[:4] != ds[:4] or abs(ws[4] - ds[4]) > 1:
            raise Disagreement("summary of %s differs" % ds[0], ["weft: %s" % show(ws), "duckdb: %s" % show(ds)])


RULES = {
    "search_combo_1h_20": compare_search,
    "search_combo_1h_10000": compare_search,
    "trace_by_id": compare_equal("span_ids"),
    "quantiles_by_model": compare_q3,
    "cost_tokens_by_tenant_top20": compare_q4,
    "latency_heatmap": compare_equal("cells"),
    "service_map": compare_equal("edges"),
    "count_p95_tenant_model_region_top50": compare_q7,
    "search_rare_user_24h": compare_search,
}


def main(argv):
    with open(argv[1]) as f:
        duck = json.load(f)
    weft = []
    for path in argv[2:]:
        with open(path) as f:
            weft.append(json.load(f))
    header = ["query"] + ["%s first / median ms" % w["engine"] for w in weft] + ["DuckDB first / median ms", "answers"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    problems = []
    for name, rule in RULES.items():
        d = duck["queries"][name]
        cells = [name]
        agree = []
        for w in weft:
            e = w["queries"].get(name)
            if e is None:
                cells.append("—")
                agree.append("missing")
                continue
            cells.append("%.1f / %.1f" % (e["first_run_ms"], e["median_ms"]))
            try:
                rule(e["answer"], d["answer"])
                agree.append("ok")
            except Disagreement as x:
                agree.append("DIFFER")
                problems.append("%s (%s): %s\n    %s" % (name, w["engine"], x.reason, "\n    ".join(x.details)))
        cells.append("%.1f / %.1f" % (d["first_run_ms"], d["median_ms"]))
        cells.append(", ".join(agree))
        print("| " + " | ".join(cells) + " |")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
