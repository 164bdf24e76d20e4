#!/usr/bin/env python3
"""Generate a small, realistic span table (TSV) and a matching params.json.

Usage:
    python3 Benchmarks/query/make_sample.py --spans 20000 --tsv spans.tsv --params params.json [--seed 1]

The TSV has one header line, tab-separated fields, no quoting, and an empty
field for NULL.  Columns, in order:

    trace_id span_id parent_span_id service name kind status start_ns
    duration_ns tenant_id user_id region model input_tokens output_tokens cost

The data imitates an LLM application: a gateway receives a request, an API
service fans out to auth, retrieval (backed by a vector database), billing and
an LLM proxy that calls models.  Traces have 2-6 spans, many parent/child
edges cross services, some stay within one service, about 3% of spans are
errors, and attributes are NULL on spans that lack them (no model outside the
LLM proxy, no tenant on vector-db spans, some LLM calls without token counts,
...).  A few durations are 0, exact powers of two or one below a power of two,
and some traces share a start time, so that the heatmap buckets and the
ordering ties of the benchmark queries are exercised.

params.json uses values that exist in the generated data.
"""

import argparse
import json
import random
import sys

NS_PER_S = 1_000_000_000
BASE_NS = 1_735_689_600 * NS_PER_S  # 2025-01-01T00:00:00Z
WINDOW_NS = 3 * 3600 * NS_PER_S  # traces start within three hours

REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1"]
# model -> (input price, output price) per token
MODELS = {
    "gpt-4o": (2.5e-6, 1.0e-5),
    "gpt-4o-mini": (1.5e-7, 6.0e-7),
    "claude-3-5-sonnet": (3.0e-6, 1.5e-5),
    "claude-3-5-haiku": (8.0e-7, 4.0e-6),
    "llama-3.1-70b": (8.8e-7, 8.8e-7),
    "mistral-large": (2.0e-6, 6.0e-6),
}
MODEL_WEIGHTS = [30, 25, 20, 10, 8, 7]

# service -> list of (child service, span name, kind, weight)
# kind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer
CHILDREN = {
    "gateway": [
        ("api", "POST /v1/chat", 2, 6),
        ("auth", "auth.verify", 2, 2),
        ("gateway", "rate_limit", 1, 1),
    ],
    "api": [
        ("llm-proxy", "llm.chat", 3, 6),
        ("retriever", "retrieve", 3, 3),
        ("billing", "billing.record", 4, 2),
        ("api", "render_prompt", 1, 2),
        ("auth", "auth.scopes", 3, 1),
    ],
    "llm-proxy": [
        ("llm-proxy", "llm.stream", 1, 2),
        ("billing", "billing.meter", 4, 1),
    ],
    "retriever": [
        ("vector-db", "vector.search", 3, 5),
        ("retriever", "rerank", 1, 2),
    ],
    "auth": [("auth", "token.decode", 1, 1)],
    "billing": [("billing", "ledger.write", 1, 1)],
    "vector-db": [("vector-db", "hnsw.scan", 1, 1)],
}


def pick(rng, options):
    return rng.choices(options, weights=[o[-1] for o in options], k=1)[0]


def duration_for(rng, service, name):
    """Lognormal-ish durations in ns, with a few exact edge values."""
    r = rng.random()
    if r < 0.004:
        return 0
    if r < 0.012:
        return 1 << rng.randint(10, 33)
    if r < 0.020:
        return (1 << rng.randint(10, 33)) - 1
    median_ms = {
        "gateway": 400.0, "api": 300.0, "llm-proxy": 900.0, "retriever": 60.0,
        "vector-db": 15.0, "auth": 4.0, "billing": 8.0,
    }[service]
    if name in ("rate_limit", "token.decode", "render_prompt"):
        median_ms /= 20.0
    ms = rng.lognormvariate(0.0, 0.9) * median_ms
    return max(1, int(ms * 1e6))


def make_identity(rng, tenants, users_by_tenant, home_region):
    tenant = rng.choices(tenants, weights=[1.0 / (i + 1) for i in range(len(tenants))], k=1)[0]
    user = rng.choice(users_by_tenant[tenant])
    region = home_region[tenant] if rng.random() < 0.8 else rng.choice(REGIONS)
    model = rng.choices(list(MODELS), weights=MODEL_WEIGHTS, k=1)[0]
    return tenant, user, region, model


def make_trace(rng, identity, start_ns, n_spans, flat=False):
    trace_id = "%032x" % rng.getrandbits(128)
    tenant, user, region, model = identity

    spans = []
    root = {
        "span_id": "%016x" % rng.getrandbits(64), "parent": None, "service": "gateway",
        "name": "HTTP POST", "kind": 2, "start": start_ns,
    }
    root["dur"] = duration_for(rng, "gateway", root["name"])
    spans.append(root)
    while len(spans) < n_spans:
        parent = rng.choice(spans)
        service, name, kind, _ = pick(rng, CHILDREN[parent["service"]])
        offset = 0 if flat else rng.randint(0, max(0, parent["dur"] // 2))
        span = {
            "span_id": "%016x" % rng.getrandbits(64), "parent": parent["span_id"],
            "service": service, "name": name, "kind": kind, "start": parent["start"] + offset,
        }
        span["dur"] = duration_for(rng, service, name)
        spans.append(span)

    rows = []
    any_error = False
    for s in spans:
        status = 0
        r = rng.random()
        if r < 0.03:
            status = 2
            any_error = True
        elif r < 0.25:
            status = 1
        s_tenant = tenant if s["service"] != "vector-db" and rng.random() > 0.02 else None
        s_user = user if s["service"] in ("gateway", "api", "llm-proxy") and rng.random() > 0.05 else None
        s_region = region if rng.random() > 0.03 else None
        s_model = None
        in_tok = out_tok = None
        cost = None
        if s["service"] == "llm-proxy":
            s_model = model
            if rng.random() > 0.06:
                in_tok = int(rng.lognormvariate(6.5, 1.0))
                out_tok = int(rng.lognormvariate(5.0, 1.0))
                pin, pout = MODELS[model]
                cost = in_tok * pin + out_tok * pout
            elif rng.random() < 0.5:
                cost = round(rng.uniform(0.0001, 0.01), 6)  # billed without token counts
        elif s["service"] == "billing" and rng.random() < 0.5:
            cost = round(rng.uniform(0.00001, 0.001), 8)  # flat per-request fee
        rows.append([
            trace_id, s["span_id"], s["parent"], s["service"], s["name"], s["kind"], status,
            s["start"], s["dur"], s_tenant, s_user, s_region, s_model, in_tok, out_tok, cost,
        ])
    if any_error and rng.random() < 0.5:
        rows[0][6] = 2  # the error surfaces at the root
    return rows


def field(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spans", type=int, default=20000, help="approximate number of spans")
    ap.add_argument("--tsv", required=True)
    ap.add_argument("--params", required=True)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    rng = random.Random(args.seed)
    tenants = ["tenant-%03d" % i for i in range(40)]
    users_by_tenant = {t: ["user-%05d" % rng.randrange(100000) for _ in range(rng.randint(3, 40))] for t in tenants}
    home_region = {t: rng.choice(REGIONS) for t in tenants}

    rows = []
    flat_traces = []
    while len(rows) < args.spans:
        if flat_traces and rng.random() < 0.05:
            # A retry of an earlier request whose spans all start with the root, at
            # the same nanosecond and for the same user: ordering ties in Q1/Q8.
            start, identity = rng.choice(flat_traces)
            flat = True
        else:
            start = BASE_NS + rng.randrange(WINDOW_NS)
            identity = make_identity(rng, tenants, users_by_tenant, home_region)
            flat = rng.random() < 0.05
        if flat:
            flat_traces.append((start, identity))
        rows.extend(make_trace(rng, identity, start, rng.randint(2, 6), flat))
    # Roughly time-ordered, as an ingest would see it, with local disorder.
    rows.sort(key=lambda r: r[7] + rng.randrange(5 * NS_PER_S))

    header = ["trace_id", "span_id", "parent_span_id", "service", "name", "kind", "status", "start_ns",
              "duration_ns", "tenant_id", "user_id", "region", "model", "input_tokens", "output_tokens", "cost"]
    with open(args.tsv, "w", newline="\n") as f:
        f.write("\t".join(header) + "\n")
        for r in rows:
            f.write("\t".join(field(v) for v in r) + "\n")

    # Parameters that hit existing data.
    lo = BASE_NS + WINDOW_NS // 5
    hi = BASE_NS + (WINDOW_NS * 4) // 5
    combos = {}
    for r in rows:
        if r[9] and r[12] and r[11] and lo <= r[7] <= hi:
            combos.setdefault((r[9], r[12], r[11]), set()).add(r[0])
    # a combination that matches more than 20 traces if there is one, else the largest
    ranked = sorted(combos.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    over20 = [kv for kv in ranked if len(kv[1]) > 20]
    (tenant, model, region), _ = (over20[-1] if over20 else ranked[0])

    traces = {}
    for r in rows:
        traces.setdefault(r[0], 0)
        traces[r[0]] += 1
    most = max(traces.values())
    big = sorted(t for t, n in traces.items() if n == most)
    q2_trace = big[rng.randrange(len(big))]

    # The user with the most spans, preferring one whose 20 latest traces include a tie.
    latest_by_user = {}
    user_counts = {}
    for r in rows:
        if r[10]:
            user_counts[r[10]] = user_counts.get(r[10], 0) + 1
            per_trace = latest_by_user.setdefault(r[10], {})
            per_trace[r[0]] = max(per_trace.get(r[0], 0), r[7])

    def has_tie(u):
        top = sorted(latest_by_user[u].values(), reverse=True)[:20]
        return len(set(top)) < len(top)

    user = sorted(user_counts, key=lambda u: (not has_tie(u), -user_counts[u], u))[0]

    params = {
        "q1": {"tenant": tenant, "model": model, "region": region, "start_ns": lo, "end_ns": hi},
        "q2": {"trace_id": q2_trace},
        "q3": {"start_ns": BASE_NS + WINDOW_NS // 3, "end_ns": BASE_NS + (WINDOW_NS * 2) // 3},
        "q5": {"service": "api"},
        "q8": {"user_id": user, "start_ns": BASE_NS, "end_ns": BASE_NS + WINDOW_NS},
    }
    with open(args.params, "w") as f:
        json.dump(params, f, indent=2)
        f.write("\n")
    print("wrote %d spans in %d traces to %s; params to %s" % (len(rows), len(traces), args.tsv, args.params),
          file=sys.stderr)


if __name__ == "__main__":
    main()
