"""Queries in a cluster with real `weft serve` processes on 127.0.0.1: three storage nodes and an
ingest+query node that fans each query out. The same spans also go to one lone node; metrics,
aggregation tables, search and trace by ID must answer the same on both (each span counted once
although it is stored three times), still with one storage node killed. With every replica of some
placements gone the answer says it is partial and never counts more than the lone node."""

import json
import os
import random
import time

import grpc
import pytest
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

import tempo_messages as tempo
from test_cluster import ClusterNode, base_dir, cluster, everyone_sees, wait_until  # noqa: F401  (fixtures)
from test_grafana import stream
from test_node import Node, spans_of

PROTOBUF = {"content-type": "application/x-protobuf"}
SERVICES = ("checkout", "gateway", "search")


def export_request(traces):
    """An export of `traces` new traces over three services, each span with a cost; returns the
    request and the trace IDs (hex)."""
    now = time.time_ns() - 60_000_000_000
    resource_spans, ids = [], []
    by_service = {s: trace_pb2.ScopeSpans(scope=common_pb2.InstrumentationScope(name="cluster-query-test")) for s in SERVICES}
    for _ in range(traces):
        trace_id = random.randbytes(16)
        ids.append(trace_id.hex())
        for i in range(random.randint(1, 5)):
            service = random.choice(SERVICES)
            cost = common_pb2.KeyValue(key="gen_ai.usage.cost", value=common_pb2.AnyValue(double_value=random.randint(1, 1000) / 1000))
            by_service[service].spans.append(trace_pb2.Span(
                trace_id=trace_id, span_id=random.randbytes(8), name="op-%d" % i, kind=trace_pb2.Span.SPAN_KIND_SERVER,
                start_time_unix_nano=now + i * 1_000_000, end_time_unix_nano=now + i * 1_000_000 + 500_000, attributes=[cost],
            ))
    for service, scope_spans in by_service.items():
        resource = resource_pb2.Resource(attributes=[common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value=service))])
        resource_spans.append(trace_pb2.ResourceSpans(resource=resource, scope_spans=[scope_spans]))
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=resource_spans), ids


def post(node, request):
    r = requests.post(node.otlp + "/v1/traces", data=request.SerializeToString(), headers=PROTOBUF, timeout=30)
    assert r.status_code == 200, r.text


def metrics(node, function, now=None):
    """{service: [(time, value)…]} of a range query over the 10 minutes before `now` (a shared `now` keeps
    two nodes' buckets aligned), and the x-weft-partial header."""
    now = now or int(time.time())
    r = requests.get(node.query + "/api/metrics/query_range", params={
        "q": "{} | %s by (resource.service.name)" % function, "start": now - 600, "end": now + 60, "step": "60s",
    }, timeout=30)
    assert r.status_code == 200, r.text
    series = {}
    for s in r.json()["series"]:
        service = next(l["value"]["stringValue"] for l in s["labels"] if l["key"] == "resource.service.name")
        series[service] = [(p["timestampMs"], round(float(p["value"]), 6)) for p in s["samples"]]
    return series, r.headers.get("x-weft-partial")


def table(node):
    """Rows of an aggregation table by service, and the answer."""
    r = requests.get(node.query + "/api/weft/aggregate", params={
        "by": "resource.service.name", "select": "count,sum(span.gen_ai.usage.cost)", "since": "1h",
    }, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    return {row[0]: (row[1], round(float(row[2]), 6)) for row in body["rows"]}, body


def search(node):
    r = requests.get(node.query + "/api/search", params={"q": '{ resource.service.name = "gateway" }', "limit": 1000}, timeout=30)
    assert r.status_code == 200, r.text
    return {t["traceID"].lstrip("0") for t in r.json()["traces"]}


def trace(node, trace_hex):
    r = requests.get(node.query + "/api/traces/" + trace_hex, timeout=30)
    assert r.status_code == 200, r.text
    return sorted((s["spanId"], s["name"]) for s in spans_of(r.json()))


def start_cluster(base_dir, cluster, replication_factor):
    """Three storage nodes and the ingest+query node, all active."""
    flags = ["--replication-factor", str(replication_factor), "--cluster-secret", "cluster-query-test"]
    seed = ClusterNode(os.path.join(base_dir, "s1"), flags + ["--roles", "storage"]).start()
    cluster.append(seed)
    for name in ("s2", "s3"):
        cluster.append(ClusterNode(os.path.join(base_dir, name), flags + ["--roles", "storage", "--join", seed.internal]).start())
    front = ClusterNode(os.path.join(base_dir, "front"), flags + ["--roles", "ingest,query", "--join", seed.internal]).start()
    cluster.append(front)
    assert wait_until(lambda: everyone_sees(cluster, {n.node_id: ("alive", "ACTIVE") for n in cluster}), 20) is not None
    return cluster[:3], front


def load(front, lone):
    ids = []
    for _ in range(4):
        request, batch = export_request(traces=25)
        post(front, request)
        post(lone, request)
        ids += batch
    return ids


def assert_same(front, lone, ids):
    for function in ("count_over_time()", "sum_over_time(span.gen_ai.usage.cost)"):
        now = int(time.time())
        got, partial = metrics(front, function, now)
        assert partial is None
        assert got == metrics(lone, function, now)[0], function
    rows, body = table(front)
    assert "partial" not in body
    assert rows == table(lone)[0]
    assert search(front) == search(lone)
    for trace_hex in random.sample(ids, 5):
        assert trace(front, trace_hex) == trace(lone, trace_hex)


def test_cluster_answers_count_each_span_once(base_dir, cluster):
    storage, front = start_cluster(base_dir, cluster, replication_factor=3)
    lone = Node(os.path.join(base_dir, "lone")).start()
    cluster.append(lone)
    ids = load(front, lone)
    counts = table(lone)[0]
    assert sum(c for c, _ in counts.values()) > 100
    assert_same(front, lone, ids)
    # One storage node gone: its placements are read from the other holders.
    storage[0].kill()
    assert_same(front, lone, ids)


def test_placements_with_every_replica_gone_are_flagged_and_never_overcounted(base_dir, cluster):
    storage, front = start_cluster(base_dir, cluster, replication_factor=2)
    lone = Node(os.path.join(base_dir, "lone")).start()
    cluster.append(lone)
    load(front, lone)
    full_rows = table(lone)[0]
    now = int(time.time())
    full_counts, _ = metrics(lone, "count_over_time()", now)
    for node in storage[:2]:
        node.kill()
    rows, body = table(front)
    assert body["partial"] is True
    assert any(set(m["nodes"]) <= {storage[0].node_id, storage[1].node_id} for m in body["missing"])
    for service, (count, cost) in rows.items():
        assert count <= full_rows[service][0]
        assert cost <= full_rows[service][1] + 1e-6
    assert sum(c for c, _ in rows.values()) < sum(c for c, _ in full_rows.values())
    counts, partial = metrics(front, "count_over_time()", now)
    assert partial
    for service, samples in counts.items():
        full = dict(full_counts[service])
        assert all(value <= full[t] for t, value in samples)


def test_query_node_without_storage_refuses_until_a_storage_node_joins(base_dir, cluster):
    """A query node that knows no storage node has no spans to answer from: 503 with Retry-After,
    not an empty answer that would read as "nothing matched"."""
    flags = ["--replication-factor", "1", "--cluster-secret", "cluster-query-test"]
    front = ClusterNode(os.path.join(base_dir, "front"), flags + ["--roles", "ingest,query"]).start()
    cluster.append(front)
    now = int(time.time())
    queries = [
        ("/api/search", {"q": "{}", "start": now - 600, "end": now}),
        ("/api/weft/aggregate", {"by": "resource.service.name", "select": "count", "since": "1h"}),
        ("/api/metrics/query_range", {"q": "{} | count_over_time()", "start": now - 600, "end": now, "step": "60s"}),
        ("/api/traces/0123456789abcdef0123456789abcdef", {}),
        ("/api/search/tags", {}),
    ]
    for path, params in queries:
        r = requests.get(front.query + path, params=params, timeout=10)
        assert r.status_code == 503, (path, r.status_code, r.text)
        assert r.headers.get("retry-after") == "1"
        assert "knows no storage node" in r.json()["error"]
    assert requests.get(front.query + "/api/echo", timeout=10).status_code == 200
    # Grafana's streaming search over gRPC: UNAVAILABLE, not an empty stream.
    search_request = tempo.classes["SearchRequest"](Query="{}", Limit=20, start=now - 600, end=now)
    with pytest.raises(grpc.RpcError) as refused:
        stream(front, "Search", search_request, "SearchResponse")
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "knows no storage node" in refused.value.details()
    # This node's own (empty) data stays readable when asked for explicitly.
    r = requests.get(front.query + "/api/search", params={"q": "{}"}, headers={"x-weft-read": "node"}, timeout=10)
    assert r.status_code == 200, r.text
    storage = ClusterNode(os.path.join(base_dir, "s1"), flags + ["--roles", "storage", "--join", front.internal]).start()
    cluster.append(storage)
    assert wait_until(lambda: everyone_sees(cluster, {n.node_id: ("alive", "ACTIVE") for n in cluster}), 20) is not None
    request, _ = export_request(traces=5)
    post(front, request)
    # The only storage node counts its placements in sync once its first repair round has run.
    assert wait_until(lambda: "partial" not in table(front)[1], 30) is not None, json.dumps(table(front)[1])
    rows, body = table(front)
    assert sum(c for c, _ in rows.values()) > 0
