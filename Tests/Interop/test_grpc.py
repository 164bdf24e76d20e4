"""OTLP/gRPC on the node's gRPC port (HTTP/2 only), driven by the Python OpenTelemetry gRPC exporter and by
raw grpcio calls. Reuses `Node` (and its fixtures) from test_node.py; WEFT_BIN picks the binary.
"""

import os
import time

import grpc
import pytest
import requests
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from test_node import data_dir, emit_llm_trace, node, spans_of  # noqa: F401  (fixtures)

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def record_trace(service, tenant, model):
    """Runs the SDK into memory; returns (finished spans, trace ID hex)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace_id = emit_llm_trace(provider, tenant, model)
    provider.shutdown()
    return memory.get_finished_spans(), trace_id


@pytest.mark.parametrize("compression", [grpc.Compression.NoCompression, grpc.Compression.Gzip])
def test_grpc_exporter_then_trace_by_id_and_search(node, compression):
    assert node.grpc, "the listening line has no grpc= field"
    tenant = "grpc-" + compression.name.lower()
    spans, trace_id = record_trace("grpc-bot", tenant, "gpt-4o")
    exporter = OTLPSpanExporter(endpoint=node.grpc, insecure=True, compression=compression, timeout=30)
    try:
        assert exporter.export(spans) == SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()

    r = node.get("/api/traces/" + trace_id)
    assert r.status_code == 200, r.text
    assert sorted(s["name"] for s in spans_of(r.json())) == ["POST /chat", "chat gpt-4o", "chatCompletions"]

    found = node.get("/api/search", tags="tenant_id=" + tenant).json()["traces"]
    assert [t["traceID"] for t in found] == [trace_id.lstrip("0")]
    assert found[0]["rootServiceName"] == "grpc-bot"


def test_grpc_exporter_org_from_metadata(node):
    spans, trace_id = record_trace("org-bot", "orgtenant", "claude-sonnet")
    exporter = OTLPSpanExporter(endpoint=node.grpc, insecure=True, headers={"x-scope-orgid": "team-a"}, timeout=30)
    try:
        assert exporter.export(spans) == SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert node.get("/api/traces/" + trace_id).status_code == 404  # not in the default org
    r = node.get("/api/search", tags="tenant_id=orgtenant")
    assert r.json()["traces"] == []
    r = requests.get(node.query + "/api/traces/" + trace_id, headers={"X-Scope-OrgID": "team-a"}, timeout=30)
    assert r.status_code == 200, r.text


def raw_call(node, path, payload, metadata=None):
    with grpc.insecure_channel(node.grpc) as channel:
        call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
        return call.with_call(payload, timeout=30, metadata=metadata)


def test_raw_garbage_gets_invalid_argument(node):
    with pytest.raises(grpc.RpcError) as err:
        raw_call(node, EXPORT, b"\xff\xff\xff\xff\x0f\x01 not protobuf")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed" in err.value.details()


def test_raw_unknown_method_gets_unimplemented(node):
    with pytest.raises(grpc.RpcError) as err:
        raw_call(node, "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export", b"")
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_raw_partial_success_when_spans_are_rejected(node):
    good = trace_pb2.Span(
        trace_id=os.urandom(16), span_id=os.urandom(8), name="kept",
        start_time_unix_nano=time.time_ns(), end_time_unix_nano=time.time_ns() + 100_000_000,
    )
    bad = trace_pb2.Span(trace_id=b"\x01\x02", span_id=os.urandom(8), name="bad trace id")
    rs = trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=[good, bad])])
    rs.resource.attributes.append(common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value="p")))
    request = trace_service_pb2.ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()
    body, call = raw_call(node, EXPORT, request)
    assert call.code() == grpc.StatusCode.OK
    response = trace_service_pb2.ExportTraceServiceResponse.FromString(body)
    assert response.partial_success.rejected_spans == 1
    assert response.partial_success.error_message
    assert node.get("/api/traces/" + good.trace_id.hex()).status_code == 200
