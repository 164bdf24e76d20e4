#!/usr/bin/env python3
"""DuckDB half of the Weft/DuckDB query benchmark.

Usage:
    python3 Benchmarks/query/duckdb_queries.py --csv spans.tsv --params params.json \\
        --runs 5 --out duckdb.json [--threads 2]

Loads the span TSV into a native in-memory DuckDB table `spans`, runs the
queries Q1..Q8 once as a warm-up and then --runs times each, and writes the
timings and the canonical answers as JSON (see compare.py for the shape and
the agreement rules).

Needs the `duckdb` package from PyPI (pip install duckdb).

Semantics the other side must reproduce exactly
-----------------------------------------------
* quantile_disc(x, q) over n values returns the element at 0-based index
      max(ceil(n * q), 1) - 1
  of the ascending sorted values, i.e. the smallest value v such that at least
  q * n of the values are <= v (no interpolation; a value that occurs in the
  data).  DuckDB computes the index as max(1, n - floor(n - n*q)) - 1, and
  does it in exact integer arithmetic when q is a DECIMAL literal, as the
  literals 0.5, 0.95, 0.99 below are, so there is no floating-point rounding
  in the index: n=10 gives p50 -> 5th, p95 -> 10th, p99 -> 10th smallest;
  n=20 gives p95 -> 19th; n=100 gives p50 -> 50th, p95 -> 95th, p99 -> 99th.
  (A DOUBLE q would compute n*q in floating point instead.)
* Q5 bucket: 0 for duration_ns = 0, otherwise ceil(log2(d)) + 1 (at most
  64), so that an exact power of two counts in its own bucket as in Tempo:
  computed exactly on the integer as 1 + the bit length of d - 1 (in Swift:
  65 - (d - 1).leadingZeroBitCount).  So 1 -> 1, 2 -> 2, 3..4 -> 3,
  2^k + 1..2^(k+1) -> k + 2.
  The minute is start_ns // 60000000000 (integer division of the unsigned
  value).
* Time bounds include both ends: start_ns BETWEEN start AND end.
* NULL never equals anything: Q6 drops edges where either service is NULL.
"""

import argparse
import json
import statistics
import sys
import time

try:
    import duckdb
except ImportError:  # pragma: no cover
    sys.exit("duckdb is not installed: pip install duckdb")


COLUMNS = [
    ("trace_id", "VARCHAR"),
    ("span_id", "VARCHAR"),
    ("parent_span_id", "VARCHAR"),
    ("service", "VARCHAR"),
    ("name", "VARCHAR"),
    ("kind", "INTEGER"),
    ("status", "INTEGER"),
    ("start_ns", "UBIGINT"),
    ("duration_ns", "UBIGINT"),
    ("tenant_id", "VARCHAR"),
    ("user_id", "VARCHAR"),
    ("region", "VARCHAR"),
    ("model", "VARCHAR"),
    ("input_tokens", "BIGINT"),
    ("output_tokens", "BIGINT"),
    ("cost", "DOUBLE"),
]


def _heatmap_bucket_sql(col):
    """Exact heatmap bucket of an unsigned 64-bit column: 0 for 0, else 1 + the bit length of col - 1.

    bin() prints the integer in base 2 without leading zeros, so its length is
    the bit length (checked against Python's int.bit_length at every 2^k - 1,
    2^k, 2^k + 1 for k < 64; float log2 gets 19 of those wrong); bin(0) is "0",
    hence the case for 1.
    """
    return "CASE WHEN {c} = 0 THEN 0 WHEN {c} = 1 THEN 1 ELSE least(64, length(bin({c} - 1)) + 1) END".format(c=col)


# Traces with the latest matching span start: one scan groups the matching
# spans by trace; the total match count is the sum over all groups, taken
# before the LIMIT.  No matching span -> no row -> count 0, no traces.
_LATEST_TRACES_SQL = """
WITH per_trace AS (
    SELECT trace_id, count(*) AS n, max(start_ns) AS latest
    FROM spans
    WHERE {where}
    GROUP BY trace_id
)
SELECT trace_id, sum(n) OVER () AS total
FROM per_trace
ORDER BY latest DESC, trace_id ASC
LIMIT 20
"""

SQL = {
    "Q1": _LATEST_TRACES_SQL.format(
        where="tenant_id = ? AND model = ? AND region = ? AND start_ns BETWEEN ?::UBIGINT AND ?::UBIGINT"),
    "Q2": "SELECT span_id FROM spans WHERE trace_id = ? ORDER BY span_id",
    "Q3": """
        SELECT model, quantile_disc(duration_ns, [0.5, 0.95, 0.99]) AS q
        FROM spans
        WHERE model IS NOT NULL AND start_ns BETWEEN ?::UBIGINT AND ?::UBIGINT
        GROUP BY model
        ORDER BY model
    """,
    "Q4": """
        SELECT tenant_id,
               sum(cost) AS cost_sum,
               coalesce(sum(input_tokens), 0) AS input_sum,
               coalesce(sum(output_tokens), 0) AS output_sum
        FROM spans
        WHERE tenant_id IS NOT NULL AND cost IS NOT NULL
        GROUP BY tenant_id
        ORDER BY cost_sum DESC, tenant_id ASC
        LIMIT 20
    """,
    "Q5": """
        SELECT start_ns // 60000000000 AS minute, %s AS bucket, count(*) AS n
        FROM spans
        WHERE service = ?
        GROUP BY minute, bucket
        ORDER BY minute, bucket
    """ % _heatmap_bucket_sql("duration_ns"),
    "Q6": """
        SELECT p.service AS parent, c.service AS child,
               count(*) AS calls,
               count(*) FILTER (WHERE c.status = 2) AS errors
        FROM spans c
        JOIN spans p ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id
        WHERE p.service <> c.service
        GROUP BY p.service, c.service
        ORDER BY parent, child
    """,
    "Q7": """
        SELECT tenant_id, model, region, count(*) AS n, quantile_disc(duration_ns, 0.95) AS p95
        FROM spans
        WHERE tenant_id IS NOT NULL AND model IS NOT NULL AND region IS NOT NULL
        GROUP BY tenant_id, model, region
        ORDER BY n DESC, tenant_id ASC, model ASC, region ASC
        LIMIT 50
    """,
    "Q8": _LATEST_TRACES_SQL.format(where="user_id = ? AND start_ns BETWEEN ?::UBIGINT AND ?::UBIGINT"),
}


def query_params(params):
    q1, q2, q3, q5, q8 = (params[k] for k in ("q1", "q2", "q3", "q5", "q8"))
    return {
        "Q1": [q1["tenant"], q1["model"], q1["region"], int(q1["start_ns"]), int(q1["end_ns"])],
        "Q2": [q2["trace_id"]],
        "Q3": [int(q3["start_ns"]), int(q3["end_ns"])],
        "Q4": [],
        "Q5": [q5["service"]],
        "Q6": [],
        "Q7": [],
        "Q8": [q8["user_id"], int(q8["start_ns"]), int(q8["end_ns"])],
    }


def answer(name, rows):
    """Turn the fetched rows into the engine-independent answer JSON."""
    if name in ("Q1", "Q8"):
        return {"count": int(rows[0][1]) if rows else 0, "traces": [r[0] for r in rows]}
    if name == "Q2":
        return {"spans": len(rows), "span_ids": [r[0] for r in rows]}
    if name == "Q3":
        return {"groups": {r[0]: [float(v) for v in r[1]] for r in rows}}
    if name == "Q4":
        return {"groups": [[r[0], float(r[1]), int(r[2]), int(r[3])] for r in rows]}
    if name == "Q5":
        return {"cells": [[int(r[0]), int(r[1]), int(r[2])] for r in rows]}
    if name == "Q6":
        return {"edges": [[r[0], r[1], int(r[2]), int(r[3])] for r in rows]}
    if name == "Q7":
        return {"groups": [[r[0], r[1], r[2], int(r[3]), float(r[4])] for r in rows]}
    raise KeyError(name)


def load(con, path):
    columns = "{" + ", ".join("'%s': '%s'" % c for c in COLUMNS) + "}"
    sql = (
        "CREATE TABLE spans AS SELECT * FROM read_csv(?, columns = %s, delim = '\t', header = true, "
        "quote = '', escape = '', nullstr = '', auto_detect = false)" % columns
    )
    t0 = time.perf_counter()
    con.execute(sql, [path])
    seconds = time.perf_counter() - t0
    rows = con.execute("SELECT count(*) FROM spans").fetchone()[0]
    return seconds, rows


def run_query(con, sql, params):
    con.execute(sql, params)
    return con.fetchall()


def main(argv=None):
    ap = argparse.ArgumentParser(description="Run the benchmark queries on DuckDB.")
    ap.add_argument("--csv", required=True, help="span TSV (header line, tab-separated, empty field = NULL)")
    ap.add_argument("--params", required=True, help="params.json")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per query after one warm-up")
    ap.add_argument("--out", required=True, help="result JSON")
    ap.add_argument("--threads", type=int, default=None, help="PRAGMA threads (default: DuckDB's)")
    ap.add_argument("--queries", default="Q1,Q2,Q3,Q4,Q5,Q6,Q7,Q8", help="comma-separated subset")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be at least 1")

    with open(args.params) as f:
        params = query_params(json.load(f))

    con = duckdb.connect(":memory:")
    if args.threads is not None:
        con.execute("PRAGMA threads=%d" % args.threads)
    threads = int(con.execute("SELECT current_setting('threads')").fetchone()[0])

    load_seconds, nrows = load(con, args.csv)
    print("duckdb %s, %d threads: loaded %d rows in %.3f s" % (duckdb.__version__, threads, nrows, load_seconds))

    queries = {}
    for name in [q.strip() for q in args.queries.split(",") if q.strip()]:
        sql, p = SQL[name], params[name]
        rows = run_query(con, sql, p)  # warm-up
        ans = answer(name, rows)
        runs_ms = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            run_query(con, sql, p)
            runs_ms.append((time.perf_counter() - t0) * 1000.0)
        queries[name] = {"median_ms": statistics.median(runs_ms), "runs_ms": runs_ms, "answer": ans}
        print("%s: median %.3f ms (runs %s)" % (name, queries[name]["median_ms"],
                                                 ", ".join("%.3f" % r for r in runs_ms)))

    out = {
        "engine": "duckdb",
        "version": duckdb.__version__,
        "threads": threads,
        "load_seconds": load_seconds,
        "rows": nrows,
        "queries": queries,
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
