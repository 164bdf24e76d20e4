#!/usr/bin/env python3
"""DuckDB half of the API benchmark: the same questions as api_queries.py over
the same spans, with DuckDB given its best setup.

Usage:
    duckdb_api.py --tsv spans.tsv --params params.json --runs 5 --threads 2 --out duckdb.json

Setup: the TSV is loaded into a native table sorted by tenant and start time,
with ENUM types (in alphabetical order, so ORDER BY stays alphabetical) for
the low-cardinality strings (service, name, tenant, region, model) and ART
indexes on trace_id and user_id.  Each query runs once (the first run, timed
on its own) and then --runs times.  Semantics follow Benchmarks/query
(quantile_disc, heatmap buckets, inclusive time bounds); a search answers the
traces with the latest matching span start (ties by trace ID) and each trace's
root service and name, first start and duration in whole milliseconds, over all
its spans (what Tempo's search answer carries for every trace).
"""

import argparse
import json
import os
import statistics
import sys
import time

import duckdb

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "query"))
from duckdb_queries import COLUMNS, _heatmap_bucket_sql  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_queries import windows  # noqa: E402

ENUMS = ["service", "name", "tenant_id", "region", "model"]

LATEST = """
    SELECT trace_id, max(start_ns) AS latest
    FROM spans
    WHERE {where} AND start_ns BETWEEN ?::UBIGINT AND ?::UBIGINT
    GROUP BY trace_id
    ORDER BY latest DESC, trace_id ASC
    LIMIT {limit}
"""

SUMMARIES = """
    WITH chosen AS ({latest})
    SELECT c.trace_id,
           coalesce(arg_min(s.service::VARCHAR, s.start_ns) FILTER (WHERE s.parent_span_id IS NULL), '<root span not yet received>'),
           arg_min(s.name::VARCHAR, s.start_ns) FILTER (WHERE s.parent_span_id IS NULL),
           min(s.start_ns), (max(s.start_ns + s.duration_ns) - min(s.start_ns)) // 1000000
    FROM chosen c JOIN spans s ON s.trace_id = c.trace_id
    GROUP BY c.trace_id, c.latest
    ORDER BY c.latest DESC, c.trace_id ASC
"""


def sql(p):
    w = windows(p)
    s, e = w["search"]
    us, ue = w["user"]
    a0, a1 = w["all"]
    search = (s * 10**9, e * 10**9 + 999_999_999)
    user = (us * 10**9, ue * 10**9 + 999_999_999)
    combo = "tenant_id = ? AND model = ? AND region = ?"
    combo_args = [p["tenant"], p["model"], p["region"]]
    in_all = "start_ns BETWEEN %d::UBIGINT AND %d::UBIGINT" % (a0, a1)
    return {
        "search_combo_1h_20": (SUMMARIES.format(latest=LATEST.format(where=combo, limit=20)), combo_args + list(search),
                               lambda rows: {"traces": [r[0] for r in rows],
                                             "summaries": [[r[0], r[1], r[2], int(r[3]), int(r[4])] for r in rows]}),
        "search_combo_1h_10000": (SUMMARIES.format(latest=LATEST.format(where=combo, limit=10000)), combo_args + list(search),
                                  lambda rows: {"traces": [r[0] for r in rows],
                                                "summaries": [[r[0], r[1], r[2], int(r[3]), int(r[4])] for r in rows]}),
        "trace_by_id": ("SELECT span_id FROM spans WHERE trace_id = ? ORDER BY span_id", [p["trace_id"]],
                        lambda rows: {"spans": len(rows), "span_ids": [r[0] for r in rows]}),
        "quantiles_by_model": ("""
            SELECT model::VARCHAR, quantile_disc(duration_ns, [0.5, 0.95, 0.99]) FROM spans
            WHERE model IS NOT NULL AND %s GROUP BY model ORDER BY model""" % in_all, [],
                               lambda rows: {"groups": {r[0]: [float(v) for v in r[1]] for r in rows}}),
        "cost_tokens_by_tenant_top20": ("""
            SELECT tenant_id::VARCHAR AS t, sum(cost) AS c, coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0)
            FROM spans WHERE tenant_id IS NOT NULL AND cost IS NOT NULL AND %s
            GROUP BY tenant_id ORDER BY c DESC, t ASC LIMIT 20""" % in_all, [],
                                        lambda rows: {"groups": [[r[0], float(r[1]), int(r[2]), int(r[3])] for r in rows]}),
        "latency_heatmap": ("""
            SELECT start_ns // 60000000000 AS minute, %s AS bucket, count(*) FROM spans
            WHERE service = ? AND %s GROUP BY minute, bucket ORDER BY minute, bucket""" % (_heatmap_bucket_sql("duration_ns"), in_all),
                            [p["service"]],
                            lambda rows: {"cells": sorted([int(r[0]), 0.0 if r[1] == 0 else 2.0 ** (r[1] - 1) / 1e9, int(r[2])] for r in rows)}),
        "service_map": ("""
            SELECT p.service::VARCHAR AS parent, c.service::VARCHAR AS child, count(*), count(*) FILTER (WHERE c.status = 2)
            FROM spans c JOIN spans p ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id
            WHERE p.service <> c.service GROUP BY 1, 2 ORDER BY 1, 2""", [],
                        lambda rows: {"edges": [[r[0], r[1], int(r[2]), int(r[3])] for r in rows]}),
        "count_p95_tenant_model_region_top50": ("""
            SELECT tenant_id::VARCHAR AS t, model::VARCHAR AS m, region::VARCHAR AS r, count(*) AS n, quantile_disc(duration_ns, 0.95)
            FROM spans WHERE tenant_id IS NOT NULL AND model IS NOT NULL AND region IS NOT NULL AND %s
            GROUP BY 1, 2, 3 ORDER BY n DESC, t ASC, m ASC, r ASC LIMIT 50""" % in_all, [],
                                                lambda rows: {"groups": [[r[0], r[1], r[2], int(r[3]), float(r[4])] for r in rows]}),
        "search_rare_user_24h": (LATEST.format(where="user_id = ?", limit=20), [p["user_id"]] + list(user),
                                 lambda rows: {"traces": [r[0] for r in rows]}),
    }


def load(con, path):
    columns = "{" + ", ".join("'%s': '%s'" % c for c in COLUMNS) + "}"
    con.execute("CREATE TEMP TABLE raw AS SELECT * FROM read_csv('%s', delim='\t', header=true, quote='', escape='', nullstr='', columns=%s)"
                % (path, columns))
    for c in ENUMS:
        con.execute("CREATE TYPE %s_enum AS ENUM (SELECT DISTINCT %s FROM raw WHERE %s IS NOT NULL ORDER BY %s)" % (c, c, c, c))
    select = ", ".join("%s::%s_enum AS %s" % (c, c, c) if c in ENUMS else c for c, _ in COLUMNS)
    con.execute("CREATE TABLE spans AS SELECT %s FROM raw ORDER BY tenant_id, start_ns" % select)
    con.execute("DROP TABLE raw")
    con.execute("CREATE INDEX spans_trace ON spans (trace_id)")
    con.execute("CREATE INDEX spans_user ON spans (user_id)")
    return con.execute("SELECT count(*) FROM spans").fetchone()[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tsv", required=True)
    ap.add_argument("--params", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.params) as f:
        p = json.load(f)
    con = duckdb.connect()
    con.execute("SET threads TO %d" % args.threads)
    t0 = time.perf_counter()
    rows = load(con, args.tsv)
    print("duckdb %s: loaded %d spans in %.1f s" % (duckdb.__version__, rows, time.perf_counter() - t0), flush=True)
    results = {}
    for name, (text, params, shape) in sql(p).items():
        times = []
        for i in range(args.runs + 1):
            t = time.perf_counter()
            fetched = con.execute(text, params).fetchall()
            times.append((time.perf_counter() - t) * 1e3)
        results[name] = {"first_run_ms": times[0], "median_ms": statistics.median(times[1:]), "runs_ms": times[1:], "answer": shape(fetched)}
        print("%-38s first %9.1f ms  median %9.1f ms" % (name, times[0], results[name]["median_ms"]), flush=True)
    with open(args.out, "w") as f:
        json.dump({"engine": "duckdb", "version": duckdb.__version__, "threads": args.threads, "rows": rows, "queries": results}, f)


if __name__ == "__main__":
    main()
