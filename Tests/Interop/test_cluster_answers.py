"""Every query API answers the same through a cluster's coordinator as on one node holding the same
spans: three storage nodes (RF=2) and an ingest+query front, beside a lone `weft serve`, fed one
seeded data set of multi-service traces (parent/child spans, errors, tenants, costs; current
timestamps), with part of it flushed to blocks. Scan figures and the fan-out's own figures aside,
search (`tags=`, `q=`, limits), trace by ID (v1, v2, protobuf, with and without a range), tag names
and values, metrics (range and instant), aggregation tables (two rounds), dependencies and the
streaming gRPC search must be identical."""

import os
import random
import time

import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

import tempo_messages as tempo
from test_cluster import base_dir, cluster  # noqa: F401  (fixtures)
from test_cluster_queries import start_cluster
from test_grafana import stream
from test_node import Node

PROTOBUF = {"content-type": "application/x-protobuf"}
SERVICES = ("gateway", "checkout", "search", "billing")
TENANTS = ("acme", "globex", "initech")


def kv(key, value):
    v = common_pb2.AnyValue(double_value=value) if isinstance(value, float) else common_pb2.AnyValue(string_value=value)
    return common_pb2.KeyValue(key=key, value=v)


def export_request(rng, traces, now):
    """`traces` traces rooted at the gateway with children in other services (seeded by `rng`),
    started in the 20 minutes before `now`; returns the request and the trace IDs (hex)."""
    by_service = {s: [] for s in SERVICES}
    ids = []
    for _ in range(traces):
        trace_id = bytes(rng.getrandbits(8) for _ in range(16))
        ids.append(trace_id.hex())
        start = now - rng.randint(60, 1200) * 1_000_000_000 + rng.randint(0, 999_999)
        tenant = rng.choice(TENANTS)
        root = bytes(rng.getrandbits(8) for _ in range(8))
        duration = rng.randint(5, 500) * 1_000_000
        by_service["gateway"].append(trace_pb2.Span(
            trace_id=trace_id, span_id=root, name="POST /chat", kind=trace_pb2.Span.SPAN_KIND_SERVER,
            start_time_unix_nano=start, end_time_unix_nano=start + duration, attributes=[kv("tenant", tenant), kv("cost", rng.randint(1, 1000) / 1000)],
        ))
        for i in range(rng.randint(0, 4)):
            service = rng.choice(SERVICES[1:])
            child_start = start + rng.randint(0, duration // 2)
            error = rng.random() < 0.15
            by_service[service].append(trace_pb2.Span(
                trace_id=trace_id, span_id=bytes(rng.getrandbits(8) for _ in range(8)), parent_span_id=root, name="%s-op-%d" % (service, i % 3),
                kind=trace_pb2.Span.SPAN_KIND_CLIENT, start_time_unix_nano=child_start, end_time_unix_nano=child_start + rng.randint(1, duration // 2),
                attributes=[kv("tenant", tenant), kv("cost", rng.randint(1, 1000) / 1000)],
                status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR if error else trace_pb2.Status.STATUS_CODE_OK),
            ))
    resource_spans = []
    for service, spans in by_service.items():
        resource = resource_pb2.Resource(attributes=[kv("service.name", service)])
        scope = trace_pb2.ScopeSpans(scope=common_pb2.InstrumentationScope(name="cluster-answers-test"), spans=spans)
        resource_spans.append(trace_pb2.ResourceSpans(resource=resource, scope_spans=[scope]))
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=resource_spans), ids


def post(node, request):
    r = requests.post(node.otlp + "/v1/traces", data=request.SerializeToString(), headers=PROTOBUF, timeout=30)
    assert r.status_code == 200, r.text


def flush(node):
    r = requests.post((node.otlp if node.otlp != "http://none" else node.query) + "/flush", timeout=60)
    assert r.status_code == 200, r.text


def get(node, path, params=None, headers=None, status=200):
    r = requests.get(node.query + path, params=params or {}, headers=headers or {}, timeout=30)
    assert r.status_code == status, (path, params, r.status_code, r.text)
    return r


def search(node, params):
    r = get(node, "/api/search", params)
    return [(t["traceID"], t.get("rootServiceName"), t.get("rootTraceName"), t["startTimeUnixNano"], t.get("durationMs"),
             sorted((s["spanID"], s.get("name")) for ss in t.get("spanSets", []) for s in ss.get("spans", [])),
             t.get("serviceStats")) for t in r.json()["traces"]], r


def spans_of(body):
    """The spans of a v1 (`batches`) or v2 (`trace.resourceSpans`) trace answer."""
    batches = body["batches"] if "batches" in body else body["trace"]["resourceSpans"]
    return [s for b in batches for ss in b["scopeSpans"] for s in ss["spans"]]


def trace(node, path, params=None, status=200):
    r = get(node, path, params, status=status)
    return sorted((s["spanId"], s["name"], s.get("parentSpanId", "")) for s in spans_of(r.json())) if status == 200 else None


def series(body):
    return sorted((sorted((l["key"], str(l["value"])) for l in s["labels"]), [(p["timestampMs"], round(float(p["value"]), 6)) for p in s.get("samples", [])])
                  for s in body["series"])


def instant(body):
    return sorted((sorted((l["key"], str(l["value"])) for l in s["labels"]), round(float(s["value"]), 6)) for s in body["series"])


def test_every_api_answers_as_one_node(base_dir, cluster):
    storage, front = start_cluster(base_dir, cluster, replication_factor=2)
    lone = Node(os.path.join(base_dir, "lone")).start()
    cluster.append(lone)
    rng = random.Random(20251205)
    now = time.time_ns()
    ids = []
    for part in range(4):
        request, batch = export_request(rng, 40, now)
        post(front, request)
        post(lone, request)
        ids += batch
        if part == 1:  # the first half in blocks, the rest in the head
            for n in storage + [lone]:
                flush(n)
    now_s = now // 1_000_000_000
    window = {"start": now_s - 3600, "end": now_s + 60}

    # Search: tags and TraceQL, with limits; the traces, their order and summaries.
    for params in (
        dict(window, tags="service.name=checkout", limit=5),
        dict(window, tags="tenant=acme status=error", limit=50),
        dict(window, q='{ resource.service.name = "search" && span.cost > 0.3 }', limit=7, spss=2),
        dict(window, q='{ status = error }', limit=1000),
        dict(window, q='{ span.tenant = "globex" }', limit=3),
    ):
        got, r = search(front, params)
        want, _ = search(lone, params)
        assert got == want, params
        assert got, params
        assert "nodes_asked=" in r.headers["x-weft-fanout"]
        assert "x-weft-partial" not in r.headers

    # Trace by ID: v1 and v2, JSON and protobuf, with and without a range.
    for trace_hex in rng.sample(ids, 6):
        for path in ("/api/traces/" + trace_hex, "/api/v2/traces/" + trace_hex):
            whole = trace(lone, path)
            assert trace(front, path) == whole and whole
            assert trace(front, path, window) == trace(lone, path, window) == whole
            r = get(front, path, headers={"Accept": "application/protobuf"})
            assert r.content == get(lone, path, headers={"Accept": "application/protobuf"}).content
    # A range before every span: the flushed traces are not found, on both.
    early = {"start": now_s - 30 * 86400, "end": now_s - 29 * 86400}
    flushed = ids[:80]
    for trace_hex in flushed[:3]:
        trace(front, "/api/traces/" + trace_hex, early, status=404)
        trace(lone, "/api/traces/" + trace_hex, early, status=404)
    trace(front, "/api/traces/" + "ab" * 16, status=404)

    # Tag names and values.
    for path, params in (
        ("/api/search/tags", {}),
        ("/api/v2/search/tags", {}),
        ("/api/v2/search/tags", {"scope": "span"}),
        ("/api/search/tag/tenant/values", {}),
        ("/api/v2/search/tag/resource.service.name/values", {}),
        ("/api/v2/search/tag/span.tenant/values", {"q": "{ status = error }"}),
        ("/api/v2/search/tag/name/values", {"limit": 3}),
    ):
        got = get(front, path, params).json()
        want = get(lone, path, params).json()
        for body in (got, want):
            body.pop("metrics", None)
            for scope in body.get("scopes", []):
                scope["tags"] = sorted(scope["tags"])
            for key in ("tagNames", "tagValues"):
                if key in body:
                    body[key] = sorted(body[key], key=str)
        if params.get("limit"):
            assert len(got["tagValues"]) == len(want["tagValues"]) == 3
        else:
            assert got == want, (path, params)

    # Metrics, range and instant, over one shared window so buckets line up.
    for q in ("{} | count_over_time() by (resource.service.name)", "{ span.tenant = \"acme\" } | sum_over_time(span.cost) by (name)",
              "{} | avg_over_time(duration) by (status)"):
        params = {"q": q, "start": now_s - 1800, "end": now_s + 60, "step": "60s"}
        r = get(front, "/api/metrics/query_range", params)
        assert series(r.json()) == series(get(lone, "/api/metrics/query_range", params).json()), q
        assert series(r.json())
        params.pop("step")
        got = instant(get(front, "/api/metrics/query", params).json())
        assert got == instant(get(lone, "/api/metrics/query", params).json()), q

    # Aggregation tables: one round, and two rounds (ordered by count, p90 for the chosen groups only).
    for params in (
        {"by": "resource.service.name", "select": "count,sum(span.cost)", "since": "1h"},
        {"by": "span.tenant,name", "select": "count,p90(duration)", "order_by": "count", "limit": 4, "since": "1h"},
        {"by": "name", "select": "count,avg(duration),max(span.cost)", "order_by": "2", "order": "asc", "limit": 2, "since": "1h"},
    ):
        got = get(front, "/api/weft/aggregate", params).json()
        want = get(lone, "/api/weft/aggregate", params).json()
        assert got["fanout"]["nodesAnswered"] >= 1 and got["fanout"]["placementsCovered"] >= 1
        assert "fanout" not in want and "partial" not in got
        rows = lambda b: [[round(v, 6) if isinstance(v, float) else v for v in row] for row in b["rows"]]  # noqa: E731
        assert rows(got) == rows(want), params
        assert got["rows"]

    # Dependencies (Jaeger's shape, no fan-out object).
    got = get(front, "/api/dependencies").json()
    want = get(lone, "/api/dependencies").json()
    assert "fanout" not in got
    key = lambda d: sorted((e["parent"], e["child"], e["callCount"]) for e in d["data"])  # noqa: E731
    assert key(got) == key(want) and key(want)

    # Streaming search over gRPC: the coordinator answers in one final message.
    request = tempo.classes["SearchRequest"](Query='{ resource.service.name = "billing" }', Limit=20, start=now_s - 3600, end=now_s + 60)
    messages = stream(front, "Search", request, "SearchResponse")
    final = messages[-1]
    assert final.metrics.completedJobs == final.metrics.totalJobs
    found = sorted(t.traceID for m in messages for t in m.traces)
    want, _ = search(lone, {"q": '{ resource.service.name = "billing" }', "limit": 20, **window})
    assert found == sorted(t[0] for t in want) and found


def test_a_lost_node_still_answers_whole(base_dir, cluster):
    """With one storage node gone (RF=2), search and trace by ID still answer whole from the other holders."""
    storage, front = start_cluster(base_dir, cluster, replication_factor=2)
    lone = Node(os.path.join(base_dir, "lone")).start()
    cluster.append(lone)
    rng = random.Random(7)
    now = time.time_ns()
    request, ids = export_request(rng, 60, now)
    post(front, request)
    post(lone, request)
    storage[1].kill()
    now_s = now // 1_000_000_000
    params = {"q": "{ }", "limit": 20, "start": now_s - 3600, "end": now_s + 60}
    assert search(front, params)[0] == search(lone, params)[0]
    for trace_hex in ids[:5]:
        assert trace(front, "/api/traces/" + trace_hex) == trace(lone, "/api/traces/" + trace_hex)
    text = get(front, "/metrics").text
    for node in (storage[0], storage[2]):
        assert 'weft_fanout_requests_total{node="%s",outcome="ok"}' % node.node_id in text
        assert 'weft_fanout_partial_bytes_total{node="%s"}' % node.node_id in text
    assert 'node="%s"' % storage[1].node_id not in text
    assert "weft_fanout_merge_duration_seconds_count" in text
