#!/usr/bin/env python3
"""Generates the OTLP decoder fixtures in Tests/WeftOTLPTests/Fixtures.

Regenerate (from the package root):

    python3 Tests/Fixtures/generate_fixtures.py

Requirements: opentelemetry-sdk, opentelemetry-exporter-otlp-proto-http (which brings
opentelemetry-proto and protobuf), googleapis-common-protos (google.rpc.Status).

Two requests are produced:

* ``sdk_request.pb`` is the body that the real Python SDK exporter (``OTLPSpanExporter``) POSTs,
  captured byte for byte by a small HTTP server on 127.0.0.1. Every span is created through the
  SDK API: all attribute value types (incl. kvlist, heterogeneous and nested arrays, and empty
  values, which this SDK version accepts), all span kinds, statuses, events, links, remote
  parents with trace state, several resources and scopes, span limits (dropped counts), GenAI
  attributes (current, deprecated and cost-alias names).
* ``extra_request.pb`` is built directly with the ``opentelemetry.proto`` message classes, for
  what the SDK exporter never sends: link trace state, W3C trace-flag bits and high bits in
  ``flags``, SPAN_KIND_UNSPECIFIED, dropped counts on resources/scopes/events/links, schema URLs,
  deeply nested values, non-finite doubles, unknown fields (they must be skipped), empty
  resources/scopes.

For each request ``<name>`` the script writes:

* ``<name>_request.pb``: the protobuf body;
* ``<name>_request.json``: the same request as OTLP/JSON (camelCase, hex IDs, int64 as strings,
  enums as integers; non-ASCII escaped as \\uXXXX);
* ``<name>_request_snake.json``: lenient variant: snake_case keys, int64 as JSON numbers,
  upper-case hex IDs, raw UTF-8;
* ``<name>_expected.json``: a flat, decoder-independent description computed from the parsed
  protobuf message (see ``describe_request``).

Plus ``responses_golden.json``: ExportTraceServiceResponse / google.rpc.Status bodies serialized by
the Python protobuf library, to check Weft's response encoders byte for byte.

IDs come from a seeded generator and all timestamps are explicit, so the output is stable from
run to run (only the SDK's telemetry.sdk.version resource attribute follows the installed SDK).
"""

from __future__ import annotations

import base64
import http.server
import json
import math
import os
import random
import re
import struct
import threading

from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "WeftOTLPTests", "Fixtures")

BASE_NS = 1_760_000_000_000_000_000  # fixed epoch for all timestamps


def ns(ms: int) -> int:
    return BASE_NS + ms * 1_000_000


class SeededIds(IdGenerator):
    """Deterministic, never-zero IDs."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def generate_span_id(self) -> int:
        return self.rng.getrandbits(64) | 1

    def generate_trace_id(self) -> int:
        return self.rng.getrandbits(128) | (1 << 127)


# --------------------------------------------------------------------------------------------
# Capture server


class _Capture(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    bodies: list[tuple[dict, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        _Capture.bodies.append((dict(self.headers.items()), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:  # silence
        pass


def capture_sdk_request() -> bytes:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        exporter = OTLPSpanExporter(
            endpoint=f"http://127.0.0.1:{port}/v1/traces", compression=Compression.NoCompression, timeout=10
        )
        # One processor shared by several providers (one per resource), so that all spans are sent
        # in a single request with several ResourceSpans. It exports only on force_flush.
        processor = BatchSpanProcessor(
            exporter, max_queue_size=1024, schedule_delay_millis=3_600_000, max_export_batch_size=1024
        )
        make_sdk_spans(processor)
        assert processor.force_flush(30_000), "force_flush timed out"
        processor.shutdown()
    finally:
        server.shutdown()
        server.server_close()
    assert len(_Capture.bodies) == 1, f"expected one export request, got {len(_Capture.bodies)}"
    headers, body = _Capture.bodies[0]
    ctype = {k.lower(): v for k, v in headers.items()}.get("content-type")
    assert ctype == "application/x-protobuf", ctype
    return body


# --------------------------------------------------------------------------------------------
# Spans through the SDK


def remote_parent(trace_id: int, span_id: int, state: list[tuple[str, str]]):
    ctx = SpanContext(
        trace_id=trace_id,
        span_id=span_id,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState(state),
    )
    return trace.set_span_in_context(NonRecordingSpan(ctx))


def make_sdk_spans(processor: BatchSpanProcessor) -> None:
    # Resource 1: a classic service. Resource.create adds telemetry.sdk.* attributes.
    r1 = Resource.create(
        {
            "service.name": "checkout",
            "service.instance.id": "checkout-1",
            "service.version": "2.4.1",
            "deployment.environment.name": "prod",
            "host.cpu.count": 8,
            "service.instance.weight": 0.75,
        },
        schema_url="https://opentelemetry.io/schemas/1.26.0",
    )
    p1 = TracerProvider(resource=r1, id_generator=SeededIds(1))
    p1.add_span_processor(processor)
    http_tracer = p1.get_tracer(
        "weft.fixtures.http", "1.2.3", schema_url="https://example.com/scope-schema", attributes={"scope.attr": "x", "scope.level": 7}
    )
    db_tracer = p1.get_tracer("weft.fixtures.db")

    ctx = remote_parent(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, [("vendor", "abc"), ("other", "x-1")])
    root = http_tracer.start_span("GET /checkout", context=ctx, kind=SpanKind.SERVER, start_time=ns(0))
    root.set_attributes(
        {
            "http.request.method": "GET",
            "str.unicode": "h\u00e9llo \u2713 \u65e5\u672c \U0001F600",
            "str.escapes": 'quote " backslash \\ newline \n tab \t ctrl \x01 slash /',
            "str.empty": "",
            "bool.true": True,
            "bool.false": False,
            "int.zero": 0,
            "int.neg": -42,
            "int.above53": 2**53 + 1,
            "int.max": 2**63 - 1,
            "int.min": -(2**63),
            "double.pi": 3.141592653589793,
            "double.neg": -0.5,
            "double.frac": 1.0e-7,
            "double.big": 1.5e300,
            "double.integral": 42.0,
            "bytes.value": b"\x00\x01\xfe\xff binary",
            "bytes.empty": b"",
            "array.str": ["a", "b", ""],
            "array.int": [1, -2, 2**60],
            "array.double": [1.5, -2.25, 0.1],
            "array.bool": [True, False, True],
        }
    )
    root.add_event(
        "exception",
        attributes={"exception.type": "ValueError", "exception.message": "bad input", "exception.escaped": False},
        timestamp=ns(5),
    )
    root.add_event("checkpoint", timestamp=ns(6))
    root.set_status(Status(StatusCode.ERROR, "boom: upstream failed"))

    root_ctx = trace.set_span_in_context(root)
    db = db_tracer.start_span("SELECT orders", context=root_ctx, kind=SpanKind.CLIENT, start_time=ns(1))
    db.set_attribute("db.system.name", "postgresql")
    db.set_attribute("db.rows", 17)
    db.set_status(Status(StatusCode.OK))
    db.end(end_time=ns(4))

    internal = http_tracer.start_span("render", context=root_ctx, kind=SpanKind.INTERNAL, start_time=ns(4))
    internal.end(end_time=ns(8))

    producer = http_tracer.start_span("orders publish", context=root_ctx, kind=SpanKind.PRODUCER, start_time=ns(8))
    producer.set_attribute("messaging.system", "kafka")
    producer.end(end_time=ns(9))

    # A consumer in a new trace, linked to the producer (local link) and to a remote context.
    remote_link_ctx = SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("rojo", "00f067aa0ba902b7")]),
    )
    consumer = http_tracer.start_span(
        "orders process",
        context=otel_context.Context(),
        kind=SpanKind.CONSUMER,
        start_time=ns(20),
        links=[
            Link(producer.get_span_context(), attributes={"link.kind": "producer", "link.index": 0}),
            Link(remote_link_ctx, attributes={"link.kind": "remote", "link.weight": 0.5, "link.ok": True}),
        ],
    )
    consumer.end(end_time=ns(30))
    root.end(end_time=ns(10))

    # Resource 2: an LLM gateway with GenAI spans.
    r2 = Resource.create({"service.name": "llm-gateway", "service.instance.id": "gw-1", "cloud.region": "eu-west-1"})
    p2 = TracerProvider(resource=r2, id_generator=SeededIds(2))
    p2.add_span_processor(processor)
    genai = p2.get_tracer("weft.fixtures.genai", "0.9.0")

    chat = genai.start_span("chat gpt-4o", kind=SpanKind.CLIENT, start_time=ns(100))
    chat.set_attributes(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.system": "openai-deprecated",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 345,
            "gen_ai.usage.prompt_tokens": 1,
            "gen_ai.usage.completion_tokens": 2,
            "gen_ai.usage.cost": 0.0123,
            "llm.cost.total": 99.0,
            "gen_ai.request.temperature": 0.2,
            "gen_ai.response.finish_reasons": ["stop"],
        }
    )
    chat.add_event("gen_ai.user.message", attributes={"content": "hi"}, timestamp=ns(101))
    chat.end(end_time=ns(900))

    chat_ctx = trace.set_span_in_context(chat)
    legacy = genai.start_span("chat claude", context=chat_ctx, kind=SpanKind.CLIENT, start_time=ns(110))
    legacy.set_attributes(
        {
            "gen_ai.system": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4",
            "gen_ai.usage.prompt_tokens": 100,
            "gen_ai.usage.completion_tokens": 50,
            "llm.cost.total": 0.5,
        }
    )
    legacy.end(end_time=ns(800))

    emb = genai.start_span("embeddings", context=chat_ctx, kind=SpanKind.INTERNAL, start_time=ns(120))
    emb.set_attributes(
        {
            "gen_ai.provider.name": 5,  # wrong type: ignored, falls back to gen_ai.system
            "gen_ai.system": "cohere",
            "gen_ai.usage.input_tokens": 12.0,  # double tokens are accepted as integers
            "llm.cost.total": 7,  # lower-ranked alias
            "gen_ai.usage.total_cost": 3,  # higher-ranked alias, an int
        }
    )
    emb.end(end_time=ns(130))

    structured = genai.start_span("structured values", context=chat_ctx, kind=SpanKind.SERVER, start_time=ns(140))
    structured.set_attributes(
        {
            "kvlist.value": {"a": 1, "b": {"c": [1, "x", None], "d": True}, "e": b"\x07"},
            "array.mixed": [1, "two", 3.0, False, None, b"\x01\x02"],
            "array.nested": [[1, 2], [3], []],
            "array.empty": [],
            "kvlist.empty": {},
            "empty.value": None,
            "tfy.request.metadata": '{"foo":"bar"}',
        }
    )
    structured.end(end_time=ns(150))

    # Resource 3: no service.name at all (Resource() skips the SDK defaults) and tight span limits.
    r3 = Resource({"k8s.pod.name": "pod-7"})
    limits = SpanLimits(
        max_span_attributes=3, max_events=1, max_links=1, max_event_attributes=1, max_link_attributes=1
    )
    p3 = TracerProvider(resource=r3, id_generator=SeededIds(3), span_limits=limits)
    p3.add_span_processor(processor)
    limited_tracer = p3.get_tracer("weft.fixtures.limits", "0.0.1")
    other = SpanContext(trace_id=0x1234, span_id=0x5678, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    limited = limited_tracer.start_span(
        "limited",
        kind=SpanKind.INTERNAL,
        start_time=ns(200),
        attributes={"a1": 1, "a2": 2, "a3": 3, "a4": 4, "a5": 5},
        # The SDK keeps the newest events/links, so the ones with too many attributes come last.
        links=[Link(other, {"l3": 3}), Link(other, {"l1": 1, "l2": 2})],
    )
    limited.add_event("e1", timestamp=ns(201))
    limited.add_event("e2", {"x": 1}, timestamp=ns(202))
    limited.add_event("e3", {"x": 1, "y": 2}, timestamp=ns(203))
    limited.end(end_time=ns(210))


# --------------------------------------------------------------------------------------------
# The extra request, built with the proto classes


def av(value) -> common_pb2.AnyValue:
    """An AnyValue from a tagged tuple or a plain Python value."""
    if isinstance(value, common_pb2.AnyValue):
        return value
    if value is None:
        return common_pb2.AnyValue()
    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    if isinstance(value, str):
        return common_pb2.AnyValue(string_value=value)
    if isinstance(value, bytes):
        return common_pb2.AnyValue(bytes_value=value)
    if isinstance(value, list):
        return common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=[av(v) for v in value]))
    if isinstance(value, dict):
        return common_pb2.AnyValue(
            kvlist_value=common_pb2.KeyValueList(values=[common_pb2.KeyValue(key=k, value=av(v)) for k, v in value.items()])
        )
    raise TypeError(type(value))


def kvs(d: dict) -> list[common_pb2.KeyValue]:
    return [common_pb2.KeyValue(key=k, value=av(v)) for k, v in d.items()]


def varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


# Unknown fields of every wire type; decoders must skip them.
UNKNOWN = (
    varint(100 << 3 | 0) + varint(2**63 + 5)
    + varint(101 << 3 | 1) + struct.pack("<Q", 0x1122334455667788)
    + varint(102 << 3 | 2) + varint(5) + b"hello"
    + varint(103 << 3 | 5) + struct.pack("<I", 0xDEADBEEF)
    + varint(100000 << 3 | 2) + varint(0)
)


def with_unknown(msg):
    """The same message with unknown fields appended (kept by the protobuf runtime when re-serialized)."""
    copy = type(msg)()
    copy.ParseFromString(msg.SerializeToString() + UNKNOWN)
    return copy


def make_extra_request() -> bytes:
    rng = random.Random(42)

    def tid() -> bytes:
        return rng.getrandbits(128).to_bytes(16, "big")

    def sid() -> bytes:
        return (rng.getrandbits(64) | 1).to_bytes(8, "big")

    t1, t2 = tid(), tid()
    root_id, child_id, s3, s4, s5, s6, s7 = (sid() for _ in range(7))
    Span = trace_pb2.Span

    deep: object = "bottom"
    for level in range(6):
        deep = {f"level{level}": deep, "n": level} if level % 2 == 0 else [deep, level]

    root = Span(
        trace_id=t1,
        span_id=root_id,
        trace_state="congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
        name="unspecified kind root",
        kind=Span.SPAN_KIND_UNSPECIFIED,
        start_time_unix_nano=ns(0),
        end_time_unix_nano=ns(50),
        attributes=kvs(
            {
                "double.nan": math.nan,
                "double.inf": math.inf,
                "double.neginf": -math.inf,
                "double.negzero": -0.0,
                "double.subnormal": 5e-324,
                "double.max": 1.7976931348623157e308,
                "int.one": 1,
                "string.nul": "a\x00b",
                "bytes.nonempty": b"\xff\x00\x80",
                "bytes.empty": b"",
                "string.bmp": "\u00a0\u2028\ufeff",
                "deep.value": deep,
                "kv.with.empty": {"empty": None, "emptystr": "", "zero": 0, "f": False, "dz": 0.0},
                "array.of.kvlists": [{"k": "v"}, {}],
                "gen_ai.provider.name": "aws.bedrock",
                "gen_ai.request.model": "anthropic.claude-v2",
                "gen_ai.usage.output_tokens": -1,
                "gen_ai.usage.cost": 2,
                "gen_ai.cost.usd": 5.5,
            }
        )
        + [common_pb2.KeyValue(key="no.value.field"), common_pb2.KeyValue(value=av("value without key"))],
        dropped_attributes_count=4,
        events=[
            with_unknown(
                Span.Event(time_unix_nano=ns(1), name="ev.with.drops", attributes=kvs({"e": 1}), dropped_attributes_count=3)
            ),
            Span.Event(time_unix_nano=0, name=""),
        ],
        dropped_events_count=5,
        links=[
            with_unknown(
                Span.Link(
                    trace_id=t2,
                    span_id=s5,
                    trace_state="vendor=linked",
                    attributes=kvs({"link.attr": "v", "link.n": -7}),
                    dropped_attributes_count=2,
                    flags=0x301,
                )
            ),
            Span.Link(trace_id=t1, span_id=child_id),
        ],
        dropped_links_count=6,
        status=with_unknown(trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR, message="it \"failed\" \u2013 badly")),
        flags=0x301,
    )
    root = with_unknown(root)
    # Put unknown fields into one span attribute (a KeyValue) and one AnyValue of a scalar.
    root.attributes.append(with_unknown(common_pb2.KeyValue(key="kv.unknown", value=with_unknown(av(123)))))

    child = Span(
        trace_id=t1,
        span_id=child_id,
        parent_span_id=root_id,
        name="child with high flag bits",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=ns(10),
        end_time_unix_nano=ns(20),
        status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_OK),
        flags=0x80000101,
        attributes=kvs({"gen_ai.system": "gemini", "gen_ai.usage.prompt_tokens": 2**40, "gen_ai.cost.total_cost": 1.25, "llm.cost.total": 9.0}),
    )
    minimal = Span(trace_id=t2, span_id=s3, name="minimal", kind=Span.SPAN_KIND_SERVER)
    zero_times = Span(trace_id=t2, span_id=s4, parent_span_id=s3, name="", kind=Span.SPAN_KIND_PRODUCER)
    consumer = Span(trace_id=t2, span_id=s6, parent_span_id=s3, name="consumer", kind=Span.SPAN_KIND_CONSUMER,
                    start_time_unix_nano=2**64 - 1, end_time_unix_nano=2**63)
    internal = Span(trace_id=t2, span_id=s7, name="internal", kind=Span.SPAN_KIND_INTERNAL,
                    attributes=kvs({"gen_ai.usage.cost": "not a number", "gen_ai.cost.total_cost": True}))

    resource1 = with_unknown(
        resource_pb2.Resource(
            attributes=kvs({"service.name": "extra-svc", "service.namespace": "weft", "k": [1, [2, [3]]]}),
            dropped_attributes_count=2,
        )
    )
    if any(f.name == "entity_refs" for f in resource_pb2.Resource.DESCRIPTOR.fields):
        resource1.entity_refs.append(common_pb2.EntityRef(schema_url="s", type="service", id_keys=["service.name"]))
    scope1 = with_unknown(
        common_pb2.InstrumentationScope(name="extra.scope", version="3.2.1", attributes=kvs({"s": True}), dropped_attributes_count=1)
    )
    request = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource1,
                scope_spans=[
                    with_unknown(trace_pb2.ScopeSpans(scope=scope1, spans=[root, child], schema_url="https://example.com/s1")),
                    # A scope with no scope message and no spans.
                    trace_pb2.ScopeSpans(),
                    # A scope with no scope message but with spans.
                    trace_pb2.ScopeSpans(spans=[minimal, zero_times]),
                ],
                schema_url="https://opentelemetry.io/schemas/1.30.0",
            ),
            # An empty ResourceSpans.
            trace_pb2.ResourceSpans(),
            # No resource message; two scopes.
            trace_pb2.ResourceSpans(
                scope_spans=[
                    trace_pb2.ScopeSpans(scope=common_pb2.InstrumentationScope(name="only.name"), spans=[consumer]),
                    trace_pb2.ScopeSpans(scope=common_pb2.InstrumentationScope(version="only.version"), spans=[internal]),
                ]
            ),
        ]
    )
    request = with_unknown(request)
    return request.SerializeToString()


# --------------------------------------------------------------------------------------------
# Decoder-independent description


def double_bits(d: float) -> str:
    return struct.pack(">d", d).hex()


def describe_value(v: common_pb2.AnyValue) -> dict:
    which = v.WhichOneof("value")
    if which is None or which == "string_value_strindex":
        return {"type": "empty", "value": None}
    if which == "string_value":
        return {"type": "string", "value": v.string_value}
    if which == "bool_value":
        return {"type": "bool", "value": v.bool_value}
    if which == "int_value":
        return {"type": "int", "value": str(v.int_value)}
    if which == "double_value":
        return {"type": "double", "value": repr(v.double_value), "bits": double_bits(v.double_value)}
    if which == "bytes_value":
        return {"type": "bytes", "value": base64.b64encode(v.bytes_value).decode()}
    if which == "array_value":
        return {"type": "array", "value": [describe_value(x) for x in v.array_value.values]}
    if which == "kvlist_value":
        return {"type": "kvlist", "value": describe_attributes(v.kvlist_value.values)}
    raise ValueError(which)


def describe_attributes(kvs_) -> list[dict]:
    out = []
    for kv in kvs_:
        d = {"key": kv.key}
        d.update(describe_value(kv.value))
        out.append(d)
    return out


def number_of(v: common_pb2.AnyValue):
    which = v.WhichOneof("value")
    if which == "int_value":
        return float(v.int_value)
    if which == "double_value":
        return v.double_value
    return None


def integer_of(v: common_pb2.AnyValue):
    which = v.WhichOneof("value")
    if which == "int_value":
        return v.int_value
    if which == "double_value" and math.isfinite(v.double_value) and abs(v.double_value) < 9e18:
        return int(v.double_value)
    return None


COST_ALIASES = ["gen_ai.cost.usd", "gen_ai.cost.total_cost", "gen_ai.usage.total_cost", "llm.cost.total"]


def genai_expectation(attributes) -> dict:
    """The typed GenAI values: new names first, then deprecated ones; cost from gen_ai.usage.cost,
    else the first built-in alias (in COST_ALIASES order) holding a number. Non-matching types are ignored."""
    by_key = {}
    for kv in attributes:
        by_key[kv.key] = kv.value  # the last occurrence wins

    def string(key):
        v = by_key.get(key)
        if v is not None and v.WhichOneof("value") == "string_value" and v.string_value != "":
            return v.string_value
        return None

    def integer(key):
        v = by_key.get(key)
        return integer_of(v) if v is not None else None

    def number(key):
        v = by_key.get(key)
        return number_of(v) if v is not None else None

    provider = string("gen_ai.provider.name") or string("gen_ai.system")
    input_tokens = integer("gen_ai.usage.input_tokens")
    if input_tokens is None:
        input_tokens = integer("gen_ai.usage.prompt_tokens")
    output_tokens = integer("gen_ai.usage.output_tokens")
    if output_tokens is None:
        output_tokens = integer("gen_ai.usage.completion_tokens")
    cost = number("gen_ai.usage.cost")
    if cost is None:
        for alias in COST_ALIASES:
            cost = number(alias)
            if cost is not None:
                break
    return {
        "provider": provider,
        "request_model": string("gen_ai.request.model"),
        "response_model": string("gen_ai.response.model"),
        "input_tokens": None if input_tokens is None else str(input_tokens),
        "output_tokens": None if output_tokens is None else str(output_tokens),
        "cost": None if cost is None else {"value": repr(cost), "bits": double_bits(cost)},
    }


def service_name(resource) -> str | None:
    name = None
    for kv in resource.attributes:
        if kv.key == "service.name" and kv.value.WhichOneof("value") == "string_value":
            name = kv.value.string_value
    return name


def describe_request(req: trace_service_pb2.ExportTraceServiceRequest) -> dict:
    resources, scopes, spans = [], [], []
    for rs in req.resource_spans:
        resource_index = len(resources)
        resources.append(
            {
                "service_name": service_name(rs.resource),
                "attributes": describe_attributes(rs.resource.attributes),
                "dropped_attributes_count": rs.resource.dropped_attributes_count,
                "schema_url": rs.schema_url,
            }
        )
        for ss in rs.scope_spans:
            scope_index = len(scopes)
            scopes.append(
                {
                    "resource_index": resource_index,
                    "name": ss.scope.name,
                    "version": ss.scope.version,
                    "attributes": describe_attributes(ss.scope.attributes),
                    "dropped_attributes_count": ss.scope.dropped_attributes_count,
                    "schema_url": ss.schema_url,
                }
            )
            for s in ss.spans:
                spans.append(
                    {
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "name": s.name,
                        "kind": int(s.kind),
                        "start_time_unix_nano": str(s.start_time_unix_nano),
                        "end_time_unix_nano": str(s.end_time_unix_nano),
                        "flags": s.flags,
                        "trace_state": s.trace_state,
                        "status_code": int(s.status.code),
                        "status_message": s.status.message,
                        "resource_index": resource_index,
                        "scope_index": scope_index,
                        "service_name": service_name(rs.resource),
                        "scope_name": ss.scope.name,
                        "scope_version": ss.scope.version,
                        "attributes": describe_attributes(s.attributes),
                        "dropped_attributes_count": s.dropped_attributes_count,
                        "events": [
                            {
                                "time_unix_nano": str(e.time_unix_nano),
                                "name": e.name,
                                "attributes": describe_attributes(e.attributes),
                                "dropped_attributes_count": e.dropped_attributes_count,
                            }
                            for e in s.events
                        ],
                        "dropped_events_count": s.dropped_events_count,
                        "links": [
                            {
                                "trace_id": l.trace_id.hex(),
                                "span_id": l.span_id.hex(),
                                "trace_state": l.trace_state,
                                "flags": l.flags,
                                "attributes": describe_attributes(l.attributes),
                                "dropped_attributes_count": l.dropped_attributes_count,
                            }
                            for l in s.links
                        ],
                        "dropped_links_count": s.dropped_links_count,
                        "gen_ai": genai_expectation(s.attributes),
                    }
                )
    return {"resources": resources, "scopes": scopes, "spans": spans}


# --------------------------------------------------------------------------------------------
# OTLP/JSON


def b64_to_hex(s: str) -> str:
    return base64.b64decode(s).hex()


def to_otlp_json(req) -> dict:
    """MessageToDict, then IDs from base64 to hex (bytesValue stays base64)."""
    d = json_format.MessageToDict(req, use_integers_for_enums=True)
    for rs in d.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = b64_to_hex(span[key])
                for link in span.get("links", []):
                    for key in ("traceId", "spanId"):
                        if key in link:
                            link[key] = b64_to_hex(link[key])
    return d


INT64_KEYS = {"startTimeUnixNano", "endTimeUnixNano", "timeUnixNano", "intValue"}
ID_KEYS = {"traceId", "spanId", "parentSpanId"}


def snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def to_snake_variant(node, key=None):
    """snake_case keys, int64 as JSON numbers, upper-case hex IDs."""
    if isinstance(node, dict):
        return {snake(k): to_snake_variant(v, k) for k, v in node.items()}
    if isinstance(node, list):
        return [to_snake_variant(v, key) for v in node]
    if key in INT64_KEYS and isinstance(node, str):
        return int(node)
    if key in ID_KEYS and isinstance(node, str):
        return node.upper()
    return node


def check_json_rules(node, key=None) -> None:
    """Asserts the camelCase fixture follows OTLP/JSON: hex IDs, int64 strings, integer enums."""
    if isinstance(node, dict):
        for k, v in node.items():
            assert "_" not in k, k
            check_json_rules(v, k)
    elif isinstance(node, list):
        for v in node:
            check_json_rules(v, key)
    elif key in ID_KEYS:
        assert re.fullmatch(r"[0-9a-f]*", node), (key, node)
    elif key in INT64_KEYS:
        assert isinstance(node, str) and re.fullmatch(r"-?[0-9]+", node), (key, node)
    elif key is not None and (key in ("kind", "code", "flags") or key.endswith("Count")):
        assert isinstance(node, int), (key, node)


# --------------------------------------------------------------------------------------------
# Response goldens


def response_goldens() -> dict:
    export_cases = []
    for rejected, message in [(0, ""), (3, "3 spans had invalid IDs"), (0, "warning only"), (1, ""), (300, "h\u00e9 \"q\" \n")]:
        resp = trace_service_pb2.ExportTraceServiceResponse()
        if rejected or message:
            resp.partial_success.rejected_spans = rejected
            resp.partial_success.error_message = message
        export_cases.append(
            {
                "rejected": rejected,
                "message": message,
                "protobuf_hex": resp.SerializeToString().hex(),
                "json": json_format.MessageToDict(resp),
            }
        )
    status_cases = []
    for code, message in [(3, "invalid trace id"), (8, "too large"), (14, "try later \u2026"), (0, "")]:
        st = status_pb2.Status(code=code, message=message)
        status_cases.append(
            {"code": code, "message": message, "protobuf_hex": st.SerializeToString().hex(), "json": json_format.MessageToDict(st)}
        )
    return {"export": export_cases, "status": status_cases}


# --------------------------------------------------------------------------------------------


def write(name: str, data: bytes) -> None:
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        f.write(data)
    print(f"wrote {os.path.relpath(path)} ({len(data)} bytes)")


def emit(prefix: str, body: bytes) -> None:
    req = trace_service_pb2.ExportTraceServiceRequest()
    req.ParseFromString(body)
    write(f"{prefix}_request.pb", body)
    camel = to_otlp_json(req)
    check_json_rules(camel)
    write(f"{prefix}_request.json", (json.dumps(camel, indent=1, ensure_ascii=True, allow_nan=False) + "\n").encode())
    snake_variant = to_snake_variant(camel)
    write(f"{prefix}_request_snake.json", json.dumps(snake_variant, ensure_ascii=False, allow_nan=False).encode())
    expected = describe_request(req)
    write(f"{prefix}_expected.json", (json.dumps(expected, indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode())


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    emit("sdk", capture_sdk_request())
    emit("extra", make_extra_request())
    write("responses_golden.json", (json.dumps(response_goldens(), indent=1, ensure_ascii=False) + "\n").encode())


if __name__ == "__main__":
    main()
