"""Replicated writes with real `weft serve` processes on 127.0.0.1: three storage nodes (RF=3) and one
ingest node. Every storage node holds every acknowledged span exactly once; with one storage node
killed writes still succeed (quorum 2 of 3); with two killed the client gets 503 + Retry-After (gRPC:
UNAVAILABLE); once they are restarted writes succeed again."""

import os
import random
import re
import signal
import time

import grpc
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from test_cluster import ClusterNode, base_dir, cluster, everyone_sees, wait_until  # noqa: F401  (fixtures)
from test_node import spans_of

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
PROTOBUF = {"content-type": "application/x-protobuf"}


def export_request(traces, spans_per_trace=4):
    """An export of `traces` new traces; returns (request, {trace ID hex: sorted span names})."""
    now = time.time_ns()
    scope_spans = trace_pb2.ScopeSpans(scope=common_pb2.InstrumentationScope(name="replication-test"))
    expected = {}
    for _ in range(traces):
        trace_id = random.randbytes(16)
        names = []
        for i in range(spans_per_trace):
            name = "op-%s-%d" % (trace_id.hex()[:8], i)
            names.append(name)
            scope_spans.spans.append(trace_pb2.Span(
                trace_id=trace_id, span_id=random.randbytes(8), name=name, kind=trace_pb2.Span.SPAN_KIND_SERVER,
                start_time_unix_nano=now + i * 1000, end_time_unix_nano=now + i * 1000 + 500_000,
            ))
        expected[trace_id.hex()] = sorted(names)
    resource = resource_pb2.Resource(attributes=[common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value="repl"))])
    request = trace_service_pb2.ExportTraceServiceRequest(resource_spans=[trace_pb2.ResourceSpans(resource=resource, scope_spans=[scope_spans])])
    return request, expected


def post(node, request):
    return requests.post(node.otlp + "/v1/traces", data=request.SerializeToString(), headers=PROTOBUF, timeout=30)


def grpc_export(node, request):
    """The gRPC status code of one Export call."""
    with grpc.insecure_channel(node.grpc) as channel:
        call = channel.unary_unary(EXPORT, request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString)
        try:
            call(request, timeout=30)
            return grpc.StatusCode.OK
        except grpc.RpcError as error:
            return error.code()


def held_names(node, trace_hex):
    """Sorted span names of a trace as one storage node holds it (its own query API, read with `x-weft-read: node`: no fan-out)."""
    r = requests.get(node.query + "/api/traces/" + trace_hex, headers={"x-weft-read": "node"}, timeout=10)
    if r.status_code == 404:
        return []
    r.raise_for_status()
    return sorted(s["name"] for s in spans_of(r.json()))


def holds_exactly(node, expected):
    return all(held_names(node, trace) == names for trace, names in expected.items())


def metric(node, name):
    """The sum of a metric's samples on a node's /metrics."""
    text = requests.get(node.query + "/metrics", timeout=5).text
    return sum(float(v) for v in re.findall(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M))


def start(base_dir, name, extra):
    grpc_port = ["--otlp-grpc-port", "0"]
    secret = ["--cluster-secret", "replication-test"]  # pushes must carry it
    node = ClusterNode(os.path.join(base_dir, name), ["--replication-factor", "3"] + secret + extra + grpc_port)
    return node.start()


def test_three_storage_nodes_rf3_quorum_writes(base_dir, cluster):
    seed = start(base_dir, "s1", ["--roles", "storage,query"])
    cluster.append(seed)
    for name in ("s2", "s3"):
        cluster.append(start(base_dir, name, ["--roles", "storage,query", "--join", seed.internal]))
    ingest = start(base_dir, "ingest", ["--roles", "ingest", "--join", seed.internal])
    cluster.append(ingest)
    storage = cluster[:3]
    assert wait_until(lambda: everyone_sees(cluster, {n.node_id: ("alive", "ACTIVE") for n in cluster}), 15) is not None
    assert requests.get(ingest.query + "/api/cluster/ring", timeout=5).json()["replicationFactor"] == 3

    # Every storage node holds every acknowledged span exactly once.
    written = {}
    for _ in range(3):
        request, expected = export_request(traces=10)
        r = post(ingest, request)
        assert r.status_code == 200, r.text
        written.update(expected)
    for node in storage:
        assert holds_exactly(node, written), "node %s" % node.node_id
    metrics = requests.get(ingest.query + "/metrics", timeout=5).text
    assert 'weft_replication_pushes_total{peer="%s",outcome="durable"}' % storage[0].node_id in metrics

    # A paused storage node: writes are answered by the other two; its pushes hold their bytes only
    # until they time out, then the ingest node has nothing in flight.
    storage[2].proc.send_signal(signal.SIGSTOP)
    try:
        for _ in range(3):
            r = post(ingest, export_request(traces=5)[0])
            assert r.status_code == 200, r.text
        stuck = 'weft_replication_pushes_total{peer="%s",outcome="%%s"}' % storage[2].node_id
        ended = lambda: any(stuck % o in requests.get(ingest.query + "/metrics", timeout=5).text for o in ("timeout", "failed"))
        assert wait_until(lambda: ended() and metric(ingest, "weft_replication_in_flight_bytes") == 0, 15) is not None
    finally:
        storage[2].proc.send_signal(signal.SIGCONT)

    # One storage node down: the quorum (2 of 3) holds.
    storage[2].kill()
    request, expected = export_request(traces=5)
    r = post(ingest, request)
    assert r.status_code == 200, r.text
    assert grpc_export(ingest, export_request(traces=2)[0]) == grpc.StatusCode.OK
    for node in storage[:2]:
        assert holds_exactly(node, expected)

    # Two down: no placement can reach its quorum.
    storage[1].kill()
    r = post(ingest, export_request(traces=5)[0])
    assert r.status_code == 503, r.text
    assert r.headers.get("retry-after")
    assert grpc_export(ingest, export_request(traces=2)[0]) == grpc.StatusCode.UNAVAILABLE
    assert "weft_replication_quorum_failures_total" in requests.get(ingest.query + "/metrics", timeout=5).text

    # Restarted (new internal ports, learned by gossip): writes succeed again and reach every node.
    for node in storage[1:]:
        node.start()
    def fresh_write_reaches_every_node():
        request, expected = export_request(traces=5)
        return post(ingest, request).status_code == 200 and all(holds_exactly(n, expected) for n in storage)
    assert wait_until(fresh_write_reaches_every_node, 20, poll=0.5) is not None
