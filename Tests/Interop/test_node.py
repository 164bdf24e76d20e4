"""End-to-end tests of one `weft serve` process driven by the real OpenTelemetry Python SDK.

Run with `python3 -m pytest Tests/Interop` after `swift build` (WEFT_BIN overrides the binary path).
"""

import base64
import gzip
import json
import os
import signal
import subprocess
import tempfile
import time

import pytest
import requests
from google.rpc import status_pb2
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEFT = os.environ.get("WEFT_BIN", os.path.join(ROOT, ".build", "debug", "weft"))


class Node:
    """A `weft serve` child process on port 0 with its own data directory."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.proc = None
        self.otlp = None
        self.query = None
        self.grpc = None
        self.internal = None
        self.node_id = None
        self.extra = []  # more `weft serve` arguments

    def start(self):
        self.proc = subprocess.Popen(
            [WEFT, "serve", "--otlp-port", "0", "--query-port", "0", "--otlp-grpc-port", "0",
             "--data-dir", self.data_dir, "--log-level", "warning"] + self.extra,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()  # blocks until the node has bound both ports
        if not line.startswith("listening "):
            self.proc.kill()
            raise RuntimeError("weft did not start: %r %s" % (line, self.proc.stderr.read()))
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        self.otlp = "http://" + fields["otlp"]
        self.query = "http://" + fields["query"]
        self.grpc = fields.get("grpc")  # host:port of OTLP/gRPC
        self.internal = fields.get("internal")  # host:port of the node-to-node port
        self.node_id = fields.get("node")
        return self

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def get(self, path, **params):
        return requests.get(self.query + path, params=params, timeout=30)


@pytest.fixture()
def data_dir():
    with tempfile.TemporaryDirectory(prefix="weft-test-") as d:
        yield d


@pytest.fixture()
def node(data_dir):
    n = Node(data_dir).start()
    yield n
    if n.proc.poll() is None:
        n.kill()


def make_provider(node, service, compression=Compression.NoCompression):
    exporter = OTLPSpanExporter(endpoint=node.otlp + "/v1/traces", compression=compression, timeout=30)
    provider = TracerProvider(resource=Resource.create({"service.name": service, "deployment.environment": "test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def emit_llm_trace(provider, tenant, model, error=False):
    """A gateway-shaped trace: app root -> gateway -> provider call. Returns the trace ID hex."""
    tracer = provider.get_tracer("weft.tests", "1.0")
    with tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER) as root:
        with tracer.start_as_current_span("chatCompletions", kind=SpanKind.INTERNAL, attributes={"tenant_id": tenant}):
            with tracer.start_as_current_span(
                "chat " + model,
                kind=SpanKind.CLIENT,
                attributes={
                    "tenant_id": tenant,
                    "gen_ai.system": "openai",
                    "gen_ai.request.model": model,
                    "gen_ai.usage.input_tokens": 120,
                    "gen_ai.usage.output_tokens": 30,
                    "gen_ai.usage.cost": 0.0042,
                    "cached": False,
                    "stop_sequences": ["a", "b"],
                },
                links=[Link(root.get_span_context(), {"link.kind": "parent-ish"})],
            ) as call:
                call.add_event("gen_ai.user.message", {"len": 42})
                if error:
                    call.set_status(Status(StatusCode.ERROR, "rate limited"))
        return format(root.get_span_context().trace_id, "032x")


def spans_of(trace_json):
    return [s for b in trace_json["batches"] for ss in b["scopeSpans"] for s in ss["spans"]]


def attr(span, key):
    for kv in span["attributes"]:
        if kv["key"] == key:
            return kv["value"]
    return None


def test_sdk_export_then_trace_by_id_and_search(node):
    provider, _ = make_provider(node, "support-bot")
    trace_id = emit_llm_trace(provider, "acme", "gpt-4o", error=True)
    other = emit_llm_trace(provider, "globex", "claude-sonnet")
    provider.shutdown()

    r = node.get("/api/traces/" + trace_id)
    assert r.status_code == 200, r.text
    spans = spans_of(r.json())
    assert sorted(s["name"] for s in spans) == ["POST /chat", "chat gpt-4o", "chatCompletions"]
    call = next(s for s in spans if s["name"] == "chat gpt-4o")
    assert base64.b64decode(call["traceId"]).hex() == trace_id
    assert call["kind"] == "SPAN_KIND_CLIENT"
    assert call["status"] == {"code": "STATUS_CODE_ERROR", "message": "rate limited"}
    assert attr(call, "gen_ai.usage.input_tokens") == {"intValue": "120"}
    assert attr(call, "gen_ai.usage.cost") == {"doubleValue": 0.0042}
    assert attr(call, "cached") == {"boolValue": False}
    assert attr(call, "stop_sequences") == {"arrayValue": {"values": [{"stringValue": "a"}, {"stringValue": "b"}]}}
    assert call["events"][0]["name"] == "gen_ai.user.message"
    assert call["links"][0]["attributes"][0]["key"] == "link.kind"
    assert r.json()["batches"][0]["resource"]["attributes"]

    v2 = node.get("/api/v2/traces/" + trace_id).json()
    assert v2["status"] == "COMPLETE" and len(v2["trace"]["resourceSpans"]) == 1

    found = node.get("/api/search", tags="tenant_id=acme gen_ai.request.model=gpt-4o").json()
    assert [t["traceID"] for t in found["traces"]] == [trace_id.lstrip("0")]
    assert found["traces"][0]["rootServiceName"] == "support-bot"
    assert found["traces"][0]["rootTraceName"] == "POST /chat"
    # The deprecated gen_ai.system was normalised to the provider column.
    assert len(node.get("/api/search", tags="gen_ai.provider.name=openai").json()["traces"]) == 2
    assert node.get("/api/search", tags="status=error").json()["traces"][0]["traceID"] == trace_id.lstrip("0")
    assert node.get("/api/search", tags="tenant_id=initech").json()["traces"] == []
    assert other.lstrip("0") in [t["traceID"] for t in node.get("/api/search", tags="tenant_id=globex").json()["traces"]]

    assert "tenant_id" in node.get("/api/search/tags").json()["tagNames"]
    assert node.get("/api/search/tag/tenant_id/values").json()["tagValues"] == ["acme", "globex"]
    assert node.get("/api/v2/search/tag/resource.service.name/values").json()["tagValues"] == [
        {"type": "string", "value": "support-bot"}
    ]
    assert node.get("/api/echo").text == "echo"
    assert node.get("/api/traces/" + "f" * 32).status_code == 404


def test_gzip_and_json_and_org_isolation(node):
    provider, _ = make_provider(node, "doc-summarizer", compression=Compression.Gzip)
    trace_id = emit_llm_trace(provider, "acme", "mistral-large")
    provider.shutdown()
    assert node.get("/api/traces/" + trace_id).status_code == 200

    # OTLP/JSON (the SDK has no JSON exporter, so post the same shapes by hand), into another org.
    body = {
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
            "scopeSpans": [{"scope": {"name": "manual"}, "spans": [{
                "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
                "name": "json span", "kind": 2, "startTimeUnixNano": str(time.time_ns()),
                "endTimeUnixNano": str(time.time_ns() + 10**9),
                "attributes": [{"key": "tokens", "value": {"intValue": "7"}}],
            }]}],
        }]
    }
    r = requests.post(node.otlp + "/v1/traces", data=json.dumps(body),
                      headers={"Content-Type": "application/json", "X-Scope-OrgID": "team-b"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json" and r.json() == {}
    tid = "5b8efff798038103d269b633813fc60c"
    assert node.get("/api/traces/" + tid).status_code == 404  # not visible to the default org
    r = requests.get(node.query + "/api/traces/" + tid, headers={"X-Scope-OrgID": "team-b"})
    assert r.status_code == 200 and spans_of(r.json())[0]["name"] == "json span"


def test_bad_input_gets_clear_errors(node):
    url = node.otlp + "/v1/traces"
    proto = {"Content-Type": "application/x-protobuf"}

    r = requests.post(url, data=b"\x0a\xff\xff\xff\xff\x0f garbage", headers=proto)
    assert r.status_code == 400
    status = status_pb2.Status()
    status.ParseFromString(r.content)
    assert "malformed" in status.message

    r = requests.post(url, data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "invalid JSON" in r.json()["message"]

    r = requests.post(url, data=b"hello", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415

    r = requests.post(url, data=b"x", headers={**proto, "Content-Encoding": "br"})
    assert r.status_code == 415

    r = requests.post(url, data=b"not gzip", headers={**proto, "Content-Encoding": "gzip"})
    assert r.status_code == 400

    # A gzip bomb: 1 GiB of zeros compresses to ~1 MiB; it is cut off at the 64 MiB limit.
    bomb = gzip.compress(b"\0" * (256 << 20), compresslevel=9)
    started = time.monotonic()
    r = requests.post(url, data=bomb, headers={**proto, "Content-Encoding": "gzip"})
    assert r.status_code == 413
    assert time.monotonic() - started < 20

    # Too large as sent.
    r = requests.post(url, data=b"\0" * ((64 << 20) + 1), headers=proto)
    assert r.status_code == 413

    # Spans with bad IDs are rejected one by one; the rest are stored (partial success).
    request = trace_service_pb2.ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    good = spans.add(trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"), span_id=bytes.fromhex("b7ad6b7169203331"), name="ok",
                     start_time_unix_nano=time.time_ns(), end_time_unix_nano=time.time_ns() + 1000)
    spans.add(trace_id=b"\x01" * 15, span_id=bytes.fromhex("b7ad6b7169203332"), name="short trace id")
    spans.add(trace_id=b"\0" * 16, span_id=bytes.fromhex("b7ad6b7169203333"), name="zero trace id")
    r = requests.post(url, data=request.SerializeToString(), headers=proto)
    assert r.status_code == 200
    response = trace_service_pb2.ExportTraceServiceResponse()
    response.ParseFromString(r.content)
    assert response.partial_success.rejected_spans == 2
    assert "trace_id" in response.partial_success.error_message
    assert node.get("/api/traces/" + good.trace_id.hex()).status_code == 200

    assert node.get("/api/search", limit="zero").status_code == 400
    assert "limit" in node.get("/api/search", limit="zero").json()["error"]
    assert node.get("/api/traces/not-hex").status_code == 400

    metrics = node.get("/metrics").text
    assert 'weft_otlp_requests_rejected_total{reason="malformed"} 3' in metrics
    assert 'weft_otlp_spans_rejected_total{reason="invalid_span"} 2' in metrics
    # The node is still serving.
    assert node.get("/ready").status_code == 200


def test_sigkill_then_restart_finds_every_acknowledged_span(data_dir):
    node = Node(data_dir).start()
    provider, exporter = make_provider(node, "checkout")
    trace_ids = [emit_llm_trace(provider, "tenant-%d" % (i % 7), "gpt-4o-mini") for i in range(40)]
    provider.force_flush()
    # Everything above was acknowledged (SimpleSpanProcessor exports synchronously).
    before = {t: len(spans_of(node.get("/api/traces/" + t).json())) for t in trace_ids}
    assert all(n == 3 for n in before.values())
    node.kill()

    node = Node(data_dir).start()
    try:
        after = {t: len(spans_of(node.get("/api/traces/" + t).json())) for t in trace_ids}
        assert after == before
        assert len(node.get("/api/search", tags="service.name=checkout", limit="100").json()["traces"]) == 40
        # Graceful stop on SIGTERM exits cleanly and keeps the data.
        assert node.terminate() == 0
        node = Node(data_dir).start()
        assert len(node.get("/api/search", tags="tenant_id=tenant-3", limit="100").json()["traces"]) == 6
    finally:
        if node.proc.poll() is None:
            node.kill()


def test_exporter_reports_success(node):
    provider, exporter = make_provider(node, "search-api")
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("one"):
        pass
    # The exporter saw a 200: export of a fresh span through the same exporter succeeds.
    span = provider.get_tracer("t").start_span("two")
    span.end()
    assert exporter.export([span]) == SpanExportResult.SUCCESS
    provider.shutdown()


WEFTCTL = os.path.join(os.path.dirname(WEFT), "weftctl")


def test_spans_flushed_to_blocks_answer_the_same_and_survive_sigkill(data_dir):
    """SDK spans → head → `POST /flush` → blocks: trace-by-ID, search and tag values give the same
    answers from blocks, after SIGKILL and restart nothing is lost or doubled, and the block files
    pass `weftctl block verify`."""
    node = Node(data_dir).start()
    try:
        provider, _ = make_provider(node, "support-bot")
        first = [emit_llm_trace(provider, "tenant-%d" % (i % 3), "gpt-4o", error=(i == 4)) for i in range(12)]
        provider.force_flush()
        before = {t: node.get("/api/traces/" + t).json() for t in first}
        flushed = requests.post(node.otlp + "/flush", timeout=30)
        assert flushed.status_code == 200
        assert [b["spans"] for b in flushed.json()["blocks"]] == [36]
        metrics = node.get("/metrics").text
        assert "weft_head_spans 0" in metrics and "weft_blocks_spans 36" in metrics
        # Same spans, attributes (typed and generic), events and links, now read from a block
        # (attributes are a map: a block keeps them grouped by key, so compare them unordered).
        def canonical(value):
            if isinstance(value, dict):
                return {k: (sorted((canonical(a) for a in v), key=json.dumps) if k == "attributes" else canonical(v)) for k, v in value.items()}
            if isinstance(value, list):
                return [canonical(v) for v in value]
            return value
        for t in first:
            after = node.get("/api/traces/" + t).json()
            key = lambda s: s["spanId"]
            assert sorted(map(canonical, spans_of(after)), key=key) == sorted(map(canonical, spans_of(before[t])), key=key)
        # More spans stay in the head: queries see both.
        second = [emit_llm_trace(provider, "tenant-1", "gpt-4o") for _ in range(3)]
        provider.force_flush()
        found = node.get("/api/search", tags="tenant_id=tenant-1", limit="100").json()["traces"]
        assert {t["traceID"].rjust(32, "0") for t in found} == {t for i, t in enumerate(first) if i % 3 == 1} | set(second)
        errors = node.get("/api/search", tags="status=error", limit="100").json()["traces"]
        assert [t["traceID"].rjust(32, "0") for t in errors] == [first[4]]
        values = {v["value"] for v in node.get("/api/v2/search/tag/span.tenant_id/values").json()["tagValues"]}
        assert values == {"tenant-0", "tenant-1", "tenant-2"}
        node.kill()

        node = Node(data_dir).start()
        for t in first + second:
            assert len(spans_of(node.get("/api/traces/" + t).json())) == 3
        assert len(node.get("/api/search", tags="service.name=support-bot", limit="100").json()["traces"]) == 15
        blocks = [f for f in os.listdir(os.path.join(data_dir, "blocks")) if f.endswith(".block")]
        assert blocks
        for f in blocks:
            out = subprocess.run([WEFTCTL, "block", "verify", os.path.join(data_dir, "blocks", f)], capture_output=True, text=True)
            assert out.returncode == 0, out.stderr
            assert "36 spans" in out.stdout
            inspect = subprocess.run([WEFTCTL, "block", "inspect", os.path.join(data_dir, "blocks", f)], capture_output=True, text=True)
            assert inspect.returncode == 0 and "span.attributes" in inspect.stdout and "org=single-tenant" in inspect.stdout
    finally:
        if node.proc.poll() is None:
            node.kill()


def test_traceql_search_and_errors(node):
    provider, _ = make_provider(node, "support-bot")
    ids = [emit_llm_trace(provider, "tenant-%d" % (i % 2), "gpt-4o" if i % 3 else "claude-3", error=(i == 5)) for i in range(6)]
    provider.force_flush()
    q = '{ span.tenant_id = "tenant-1" && span.gen_ai.request.model =~ "gpt.*" }'
    found = {t["traceID"].rjust(32, "0") for t in node.get("/api/search", q=q, limit="50").json()["traces"]}
    assert found == {t for i, t in enumerate(ids) if i % 2 == 1 and i % 3}
    errors = node.get("/api/search", q="{ status = error && kind = client }").json()["traces"]
    assert [t["traceID"].rjust(32, "0") for t in errors] == [ids[5]]
    bad = node.get("/api/search", q="{ span.tenant_id = }")
    assert bad.status_code == 400
    assert "position 19" in bad.json()["error"] and "expected a value" in bad.json()["error"]
