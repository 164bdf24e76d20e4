#!/usr/bin/env python3
"""Weft half of the API benchmark: the queries users send, timed through the HTTP API.

Usage:
    api_queries.py --url http://127.0.0.1:3200 --params params.json --runs 5 --label fresh --out weft-fresh.json

Each query runs once (the first, cold run, reported on its own) and then --runs
times; a run is timed around the HTTP request and reading its whole answer (its
JSON is parsed afterwards, untimed).
The answers are brought to the shapes duckdb_api.py writes (see compare.py).
"""

import argparse
import base64
import json
import statistics
import time
import urllib.parse
import urllib.request

MINUTE_NS = 60_000_000_000


def windows(p):
    """Time bounds shared with duckdb_api.py."""
    now = p["now_s"]
    start = (now - 3 * 3600) * 1_000_000_000 // MINUTE_NS * MINUTE_NS
    return {
        "search": (now - 3600, now),
        "user": (now - 86400, now),
        "all": (start, start + 240 * MINUTE_NS),
    }


def trace_id(t):
    return t.lower().zfill(32)


def search_answer(body, summaries):
    traces = body.get("traces", [])
    out = {"traces": [trace_id(t["traceID"]) for t in traces]}
    if summaries:
        out["summaries"] = [[trace_id(t["traceID"]), t.get("rootServiceName"), t.get("rootTraceName"), int(t["startTimeUnixNano"]),
                             t.get("durationMs", 0)] for t in traces]
    return out


def span_ids(body):
    ids = []
    for batch in body.get("batches", body.get("resourceSpans", [])):
        for scope in batch.get("scopeSpans", batch.get("instrumentationLibrarySpans", [])):
            for s in scope.get("spans", []):
                ids.append(base64.b64decode(s["spanId"]).hex())
    ids.sort()
    return {"spans": len(ids), "span_ids": ids}


def table_rows(body):
    return body["rows"]


def queries(p):
    w = windows(p)
    agg_start, agg_end = (str(x) for x in w["all"])
    combo = '{span.tenant_id="%s" && span.gen_ai.request.model="%s" && span.region="%s"}' % (p["tenant"], p["model"], p["region"])

    def search(q, window, limit, summaries):
        s, e = w[window]
        return ("/api/search", {"q": q, "start": s, "end": e, "limit": limit, "spss": 3}, lambda b: search_answer(b, summaries))

    def aggregate(q, by, select, limit, shape):
        return ("/api/weft/aggregate", {"q": q, "by": by, "select": select, "limit": limit, "start": agg_start, "end": agg_end},
                lambda b: shape(table_rows(b)))

    def heatmap(body):
        cells = []
        for s in body.get("series", []):
            upper = next(float(l["value"]["doubleValue"]) for l in s["labels"] if l["key"] == "__bucket")
            for x in s["samples"]:
                cells.append([int(x["timestampMs"]) // 60000, upper, int(x["value"])])
        cells.sort()
        return {"cells": cells}

    def dependencies(body):
        edges = sorted([d["parent"], d["child"], int(d["callCount"]), int(d.get("errorCount", 0))] for d in body.get("data", []))
        return {"edges": edges}

    return {
        "search_combo_1h_20": search(combo, "search", 20, True),
        "search_combo_1h_10000": search(combo, "search", 10000, True),
        "trace_by_id": ("/api/traces/" + p["trace_id"], {}, span_ids),
        "quantiles_by_model": aggregate('{span.gen_ai.request.model != ""}', "span.gen_ai.request.model", "quantile(duration, 0.5, 0.95, 0.99)", 1000,
                                        lambda rows: {"groups": {r[0]: [float(v) for v in r[1]] for r in rows}}),
        "cost_tokens_by_tenant_top20": aggregate('{span.tenant_id != "" && span.gen_ai.usage.cost >= 0}', "span.tenant_id",
                                                 "sum(span.gen_ai.usage.cost), sum(span.gen_ai.usage.input_tokens), sum(span.gen_ai.usage.output_tokens)", 20,
                                                 lambda rows: {"groups": [[r[0], float(r[1]), int(round(r[2] or 0)), int(round(r[3] or 0))] for r in rows]}),
        "latency_heatmap": ("/api/metrics/query_range",
                            {"q": '{resource.service.name="%s"} | histogram_over_time(duration)' % p["service"], "start": agg_start, "end": agg_end, "step": "60s"},
                            heatmap),
        "service_map": ("/api/dependencies", {"endTs": int(agg_end) // 1_000_000, "lookback": 240 * 60_000}, dependencies),
        "count_p95_tenant_model_region_top50": aggregate('{span.tenant_id != "" && span.gen_ai.request.model != "" && span.region != ""}',
                                                         "span.tenant_id, span.gen_ai.request.model, span.region", "count, quantile(duration, 0.95)", 50,
                                                         lambda rows: {"groups": [[r[0], r[1], r[2], int(r[3]), float(r[4][0])] for r in rows]}),
        "search_rare_user_24h": search('{span.user_id="%s"}' % p["user_id"], "user", 20, False),
    }


def fetch(base, path, params):
    """The answer's bytes (parsed outside the timed part: DuckDB's rows need no parsing either)."""
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    try:
        with urllib.request.urlopen(url, timeout=600) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        raise SystemExit("%s answered %d: %s" % (path, e.code, e.read()[:500].decode(errors="replace")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--params", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--label", default="weft")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.params) as f:
        p = json.load(f)
    results = {}
    for name, (path, params, shape) in queries(p).items():
        times = []
        for i in range(args.runs + 1):
            t0 = time.perf_counter()
            body = fetch(args.url, path, params)
            times.append((time.perf_counter() - t0) * 1e3)
        answer = shape(json.loads(body))
        results[name] = {"first_run_ms": times[0], "median_ms": statistics.median(times[1:]), "runs_ms": times[1:], "answer": answer}
        print("%-38s first %9.1f ms  median %9.1f ms" % (name, times[0], results[name]["median_ms"]), flush=True)
    with open(args.out, "w") as f:
        json.dump({"engine": args.label, "queries": results}, f)


if __name__ == "__main__":
    main()
