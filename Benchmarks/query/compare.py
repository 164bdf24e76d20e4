#!/usr/bin/env python3
"""Compare the Weft and DuckDB results of the query benchmark.

Usage:
    python3 Benchmarks/query/compare.py weft.json duckdb.json

Both files have the shape written by duckdb_queries.py:
    {"engine": ..., "version": ..., "threads": n, "load_seconds": x, "rows": n,
     "queries": {"Q1": {"median_ms": x, "runs_ms": [...], "answer": {...}}, ...}}

Prints a Markdown table (median times, the Weft/DuckDB ratio and whether the
answers agree), then the details of every disagreement.  Exits with status 1
if any answer disagrees (or a query is missing on one side), else 0.

Agreement rules (the second file, DuckDB, is the reference):
  Q1, Q8  count equal; trace lists equal.
  Q2      equal.
  Q3      same set of models; each quantile within 1% relative of DuckDB's.
  Q4      same tenants in the same order, except that tenants whose cost sums
          are within 1e-9 relative of their neighbour's may come in either
          order; token sums exactly equal; cost sums within 1e-9 relative.
  Q5, Q6  exactly equal.
  Q7      same multiset of counts; same (tenant, model, region, count) list for
          all groups whose count is greater than the smallest count in the
          list (all groups when the list is shorter than the limit of 50, as
          there is then no cut-off); p95 within 1% relative for each group
          present on both sides.
Numbers that must be equal must also have the same JSON type (an int is not
equal to a float here).
"""

import json
import sys

QUERIES = ["Q1", "Q2", "Q3", "Q4", "Q5", "Q6", "Q7", "Q8"]
Q7_LIMIT = 50
MAX_DETAILS = 5


class Disagreement(Exception):
    def __init__(self, reason, details=()):
        super().__init__(reason)
        self.reason = reason
        self.details = list(details)


def strict_equal(a, b):
    """Equality that tells ints from floats (and bools from numbers)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b))
    return a == b


def close(w, d, rel):
    if not isinstance(w, (int, float)) or isinstance(w, bool):
        return False
    return abs(w - d) <= rel * abs(d)


def show(x, limit=160):
    s = json.dumps(x)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def check_type(value, typ, what):
    if type(value) is not typ:
        raise Disagreement("%s is not %s" % (what, typ.__name__),
                           ["%s: %s (%s)" % (what, show(value), type(value).__name__)])


def require_keys(w, d, keys):
    for k in keys:
        if k not in w:
            raise Disagreement("missing '%s'" % k, ["weft answer: %s" % show(w)])
        if k not in d:
            raise Disagreement("DuckDB answer lacks '%s'" % k, ["duckdb answer: %s" % show(d)])


def list_diff(w, d, label):
    """Lines describing the first few positions where two lists differ."""
    out = []
    if len(w) != len(d):
        out.append("%s: weft has %d items, duckdb %d" % (label, len(w), len(d)))
    for i in range(max(len(w), len(d))):
        a = w[i] if i < len(w) else "(none)"
        b = d[i] if i < len(d) else "(none)"
        if not strict_equal(a, b):
            out.append("%s[%d]: weft %s, duckdb %s" % (label, i, show(a), show(b)))
            if len(out) >= MAX_DETAILS:
                break
    return out


def compare_latest_traces(w, d):  # Q1, Q8
    require_keys(w, d, ["count", "traces"])
    check_type(w["count"], int, "count")
    if w["count"] != d["count"]:
        raise Disagreement("count %s vs %s" % (w["count"], d["count"]),
                           ["count: weft %s, duckdb %s" % (w["count"], d["count"])])
    if not strict_equal(w["traces"], d["traces"]):
        raise Disagreement("trace lists differ", list_diff(w["traces"], d["traces"], "traces"))


def compare_equal(key):  # Q2, Q5, Q6
    def compare(w, d):
        if not strict_equal(w, d):
            if isinstance(w, dict) and isinstance(d, dict) and key in w and key in d \
                    and isinstance(w[key], list) and isinstance(d[key], list):
                details = []
                for k in sorted(set(w) | set(d)):
                    if k != key and not strict_equal(w.get(k), d.get(k)):
                        details.append("%s: weft %s, duckdb %s" % (k, show(w.get(k)), show(d.get(k))))
                details += list_diff(w[key], d[key], key)
                raise Disagreement("%s differ" % key, details)
            raise Disagreement("answers differ", ["weft %s" % show(w), "duckdb %s" % show(d)])
    return compare


def compare_q3(w, d):
    require_keys(w, d, ["groups"])
    wg, dg = w["groups"], d["groups"]
    if not isinstance(wg, dict):
        raise Disagreement("groups is not an object", ["weft groups: %s" % show(wg)])
    if set(wg) != set(dg):
        only_w, only_d = sorted(set(wg) - set(dg)), sorted(set(dg) - set(wg))
        raise Disagreement("model sets differ",
                           ["only in weft: %s" % show(only_w), "only in duckdb: %s" % show(only_d)])
    for model in sorted(dg):
        wq, dq = wg[model], dg[model]
        if not isinstance(wq, list) or len(wq) != len(dq) or not all(type(x) is float for x in wq):
            raise Disagreement("malformed quantiles",
                               ["%s: weft %s (want %d floats), duckdb %s" % (model, show(wq), len(dq), show(dq))])
    bad = ["%s: weft %s, duckdb %s" % (m, show(wg[m]), show(dg[m])) for m in sorted(dg)
           if not all(close(x, y, 0.01) for x, y in zip(wg[m], dg[m]))]
    if bad:
        raise Disagreement("%d model(s) off by >1%%" % len(bad), bad[:MAX_DETAILS])


def tie_runs(costs, rel):
    """Index ranges [i, j) of adjacent positions whose costs are within rel of a neighbour's."""
    runs, start = [], 0
    for i in range(1, len(costs) + 1):
        if i == len(costs) or abs(costs[i] - costs[i - 1]) > rel * max(abs(costs[i]), abs(costs[i - 1])):
            runs.append((start, i))
            start = i
    return runs


def compare_q4(w, d):
    require_keys(w, d, ["groups"])
    wg, dg = w["groups"], d["groups"]
    for i, g in enumerate(wg):
        if not (isinstance(g, list) and len(g) == 4 and isinstance(g[0], str) and type(g[1]) is float
                and type(g[2]) is int and type(g[3]) is int):
            raise Disagreement("malformed group", ["groups[%d]: %s (want [str, float, int, int])" % (i, show(g))])
    if len(wg) != len(dg):
        raise Disagreement("%d groups vs %d" % (len(wg), len(dg)), list_diff([g[0] for g in wg],
                                                                          [g[0] for g in dg], "tenants"))
    # Tenants may swap within runs of (nearly) equal cost; runs come from both sides.
    w_runs = tie_runs([g[1] for g in wg], 1e-9)
    d_runs = tie_runs([g[1] for g in dg], 1e-9)
    bounds = sorted({e for _, e in w_runs} & {e for _, e in d_runs})
    order_bad, start = [], 0
    for end in bounds:
        wt, dt = sorted(g[0] for g in wg[start:end]), sorted(g[0] for g in dg[start:end])
        if wt != dt:
            order_bad.append("positions %d-%d: weft %s, duckdb %s" % (start, end - 1, show([g[0] for g in wg[start:end]]),
                                                                      show([g[0] for g in dg[start:end]])))
        start = end
    if order_bad:
        raise Disagreement("tenant order differs", order_bad[:MAX_DETAILS])
    by_tenant = {g[0]: g for g in wg}
    bad = []
    for g in dg:
        x = by_tenant[g[0]]
        if not close(x[1], g[1], 1e-9) or x[2] != g[2] or x[3] != g[3]:
            bad.append("%s: weft %s, duckdb %s" % (g[0], show(x[1:]), show(g[1:])))
    if bad:
        raise Disagreement("%d tenant sum(s) differ" % len(bad), bad[:MAX_DETAILS])


def compare_q7(w, d):
    require_keys(w, d, ["groups"])
    wg, dg = w["groups"], d["groups"]
    for i, g in enumerate(wg):
        if not (isinstance(g, list) and len(g) == 5 and all(isinstance(x, str) for x in g[:3])
                and type(g[3]) is int and type(g[4]) is float):
            raise Disagreement("malformed group",
                               ["groups[%d]: %s (want [str, str, str, int, float])" % (i, show(g))])
    wc, dc = sorted(g[3] for g in wg), sorted(g[3] for g in dg)
    if wc != dc:
        raise Disagreement("counts differ", list_diff(sorted(wc, reverse=True), sorted(dc, reverse=True), "counts"))
    if not dg:
        return
    floor_count = min(dc)
    cut = len(dg) >= Q7_LIMIT  # ties at the smallest count may have been cut differently

    def kept(groups):
        return [tuple(g[:4]) for g in groups if not cut or g[3] > floor_count]

    if kept(wg) != kept(dg):
        what = "groups above the cut-off count %d" % floor_count if cut else "groups"
        raise Disagreement("%s differ" % what, list_diff([list(k) for k in kept(wg)],
                                                         [list(k) for k in kept(dg)], "groups"))
    wp = {tuple(g[:3]): g[4] for g in wg}
    bad = []
    for g in dg:
        key = tuple(g[:3])
        if key in wp and not close(wp[key], g[4], 0.01):
            bad.append("%s: p95 weft %s, duckdb %s" % (show(list(key)), wp[key], g[4]))
    if bad:
        raise Disagreement("%d p95(s) off by >1%%" % len(bad), bad[:MAX_DETAILS])


COMPARE = {
    "Q1": compare_latest_traces,
    "Q2": compare_equal("span_ids"),
    "Q3": compare_q3,
    "Q4": compare_q4,
    "Q5": compare_equal("cells"),
    "Q6": compare_equal("edges"),
    "Q7": compare_q7,
    "Q8": compare_latest_traces,
}


def fmt_ms(entry):
    try:
        return "%.2f" % entry["median_ms"]
    except (KeyError, TypeError):
        return "—"


def fmt_ratio(we, de):
    try:
        w, d = float(we["median_ms"]), float(de["median_ms"])
    except (KeyError, TypeError, ValueError):
        return "—"
    if d == 0:
        return "inf" if w > 0 else "—"
    return "%.3f" % (w / d)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        sys.exit("usage: compare.py weft.json duckdb.json")
    with open(argv[0]) as f:
        weft = json.load(f)
    with open(argv[1]) as f:
        duck = json.load(f)
    wq, dq = weft.get("queries", {}), duck.get("queries", {})

    names = QUERIES + sorted((set(wq) | set(dq)) - set(QUERIES))
    lines = ["| query | Weft ms | DuckDB ms | Weft/DuckDB | answers |",
             "|---|---:|---:|---:|---|"]
    problems = []
    for name in names:
        we, de = wq.get(name), dq.get(name)
        if we is None and de is None:
            continue
        if we is None or de is None:
            verdict = "missing in %s" % ("weft" if we is None else "duckdb")
            problems.append((name, verdict, []))
        elif name not in COMPARE:
            verdict = "not compared"
        else:
            try:
                COMPARE[name](we.get("answer"), de.get("answer"))
                verdict = "agree"
            except Disagreement as e:
                verdict = e.reason
                problems.append((name, e.reason, e.details))
            except (KeyError, TypeError, AttributeError, IndexError) as e:
                verdict = "malformed answer"
                problems.append((name, verdict, ["%s: %s" % (type(e).__name__, e)]))
        lines.append("| %s | %s | %s | %s | %s |" % (name, fmt_ms(we), fmt_ms(de), fmt_ratio(we, de),
                                                     verdict.replace("|", "\\|")))
    print("\n".join(lines))

    def load(x):
        v = x.get("load_seconds")
        return "%.3f s" % v if isinstance(v, (int, float)) else "—"

    print()
    print("Load: Weft %s (%s rows, %s threads), DuckDB %s %s (%s rows, %s threads)." % (
        load(weft), weft.get("rows", "?"), weft.get("threads", "?"), duck.get("version", "?"), load(duck),
        duck.get("rows", "?"), duck.get("threads", "?")))
    if weft.get("rows") != duck.get("rows"):
        print("Warning: the two sides loaded different row counts.")

    if problems:
        print()
        print("## Disagreements")
        for name, reason, details in problems:
            print()
            print("%s: %s" % (name, reason))
            for line in details[:MAX_DETAILS]:
                print("  - " + line)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
