"""A seeded model of OTLP trace exports and its two encodings (protobuf by hand, and OTLP/JSON).

Values are tuples: ("s", str | bytes) string (bytes may be invalid UTF-8), ("b", bool), ("i", int),
("d", float), ("a", [value]), ("kv", [(key, value)]), ("bytes", bytes), and ("deep", "a" | "kv", levels),
an AnyValue nested `levels` deep that both encoders write without recursion.
"""

import base64
import json

from . import protobuf as pb

SERVICES = ["support-bot", "doc-summarizer", "gateway", "checkout", "search-api"]
TENANTS = ["acme", "globex", "initech", "umbrella", "hooli"]
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet", "mistral-large", "llama-3-70b"]
REGIONS = ["eu-west-1", "us-east-1", "ap-south-1"]
# Values a catastrophic regular expression backtracks on: a long run of one letter and a mismatch at the end.
BAIT = ["a" * 40 + "!", "x" * 35 + "y!", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "ab" * 30 + "c"]


def trace_id(rng):
    return bytes(rng.getrandbits(8) for _ in range(16))


def span_id(rng):
    return bytes(rng.getrandbits(8) for _ in range(8))


def plain_attributes(rng, tenant, model):
    attrs = [
        ("tenant_id", ("s", tenant)),
        ("gen_ai.request.model", ("s", model)),
        ("gen_ai.system", ("s", rng.choice(["openai", "anthropic", "mistral"]))),
        ("gen_ai.usage.input_tokens", ("i", rng.randrange(1, 5000))),
        ("gen_ai.usage.output_tokens", ("i", rng.randrange(1, 2000))),
        ("gen_ai.usage.cost", ("d", round(rng.random() / 10, 6))),
        ("region", ("s", rng.choice(REGIONS))),
        ("cached", ("b", rng.random() < 0.3)),
        ("fuzz.text", ("s", rng.choice(BAIT))),
    ]
    if rng.random() < 0.3:
        attrs.append(("stop_sequences", ("a", [("s", "a"), ("s", "b")])))
    return attrs


def make_request(rng, now_ns, traces=1, spans_per_trace=3, marker=None, service=None):
    """A valid export of `traces` gateway-shaped traces ending within the last minute.
    Returns (request, [trace ID hex]). `marker`, if given, is set as `fuzz.marker` on every span."""
    resources = []
    ids = []
    for _ in range(traces):
        tid = trace_id(rng)
        ids.append(tid.hex())
        tenant, model = rng.choice(TENANTS), rng.choice(MODELS)
        end = now_ns - rng.randrange(0, 60_000_000_000)
        spans = []
        parent = b""
        for k in range(spans_per_trace):
            sid = span_id(rng)
            duration = rng.randrange(1_000_000, 5_000_000_000)
            attrs = plain_attributes(rng, tenant, model)
            if marker is not None:
                attrs.append(("fuzz.marker", ("s", marker)))
            spans.append({
                "trace_id": tid, "span_id": sid, "parent": parent,
                "name": ("POST /chat", "chatCompletions", "chat " + model)[k % 3],
                "kind": (2, 1, 3)[k % 3], "start": end - duration, "end": end,
                "attributes": attrs,
                "events": [{"time": end - duration // 2, "name": "gen_ai.user.message", "attributes": [("len", ("i", 42))]}]
                if rng.random() < 0.5 else [],
                "links": [], "status": (2, "rate limited") if rng.random() < 0.2 else (0, ""),
            })
            parent = sid
        resources.append({
            "resource": [("service.name", ("s", service or rng.choice(SERVICES))), ("deployment.environment", ("s", "fuzz"))],
            "scopes": [{"name": "weft.fuzz", "version": "1.0", "spans": spans}],
        })
    return {"resource_spans": resources}, ids


def all_spans(request):
    for rs in request["resource_spans"]:
        for sc in rs["scopes"]:
            yield from sc["spans"]


# MARK: - protobuf


def pb_any(value):
    kind = value[0]
    if kind == "s":
        return pb.f_bytes(1, value[1])
    if kind == "b":
        return pb.f_varint(2, 1 if value[1] else 0)
    if kind == "i":
        return pb.f_varint(3, value[1])
    if kind == "d":
        return pb.f_double(4, value[1])
    if kind == "a":
        return pb.f_bytes(5, b"".join(pb.f_bytes(1, pb_any(v)) for v in value[1]))
    if kind == "kv":
        return pb.f_bytes(6, b"".join(pb.f_bytes(1, pb_kv(k, v)) for k, v in value[1]))
    if kind == "bytes":
        return pb.f_bytes(7, value[1])
    if kind == "deep":
        return pb_deep(value[1], value[2])
    raise ValueError(kind)


def pb_deep(shape, levels):
    inner = pb.f_varint(3, 1)
    if shape == "a":
        def prefix(n):
            array = pb.tag(1, pb.LEN) + pb.varint(n)
            return pb.tag(5, pb.LEN) + pb.varint(n + len(array)) + array
    else:
        def prefix(n):
            kv = pb.f_bytes(1, "k") + pb.tag(2, pb.LEN) + pb.varint(n)
            kvlist = pb.tag(1, pb.LEN) + pb.varint(n + len(kv)) + kv
            return pb.tag(6, pb.LEN) + pb.varint(n + len(kv) + len(kvlist)) + kvlist
    return pb.nested_prefixes(levels, inner, prefix)


def pb_kv(key, value):
    return pb.f_bytes(1, key) + pb.f_bytes(2, pb_any(value))


def pb_attrs(field, attrs):
    return b"".join(pb.f_bytes(field, pb_kv(k, v)) for k, v in attrs)


def pb_span(s):
    out = [pb.f_bytes(1, s["trace_id"]), pb.f_bytes(2, s["span_id"])]
    if s.get("trace_state"):
        out.append(pb.f_bytes(3, s["trace_state"]))
    if s["parent"]:
        out.append(pb.f_bytes(4, s["parent"]))
    out += [pb.f_bytes(5, s["name"]), pb.f_varint(6, s["kind"]), pb.f_fixed64(7, s["start"]), pb.f_fixed64(8, s["end"])]
    out.append(pb_attrs(9, s["attributes"]))
    for e in s["events"]:
        out.append(pb.f_bytes(11, pb.f_fixed64(1, e["time"]) + pb.f_bytes(2, e["name"]) + pb_attrs(3, e["attributes"])))
    for link in s["links"]:
        out.append(pb.f_bytes(13, pb.f_bytes(1, link["trace_id"]) + pb.f_bytes(2, link["span_id"]) + pb_attrs(4, link["attributes"])))
    code, message = s["status"]
    if code or message:
        out.append(pb.f_bytes(15, (pb.f_bytes(2, message) if message else b"") + pb.f_varint(3, code)))
    return b"".join(out)


def to_protobuf(request):
    out = []
    for rs in request["resource_spans"]:
        scopes = b"".join(
            pb.f_bytes(2, pb.f_bytes(1, pb.f_bytes(1, sc["name"]) + pb.f_bytes(2, sc["version"]))
                       + b"".join(pb.f_bytes(2, pb_span(s)) for s in sc["spans"]))
            for sc in rs["scopes"]
        )
        out.append(pb.f_bytes(1, pb.f_bytes(1, pb_attrs(1, rs["resource"])) + scopes))
    return b"".join(out)


def rejected_spans_in_protobuf(body):
    """`partial_success.rejected_spans` of an ExportTraceServiceResponse (0 when absent)."""
    for field, wire, value in pb.read_fields(body):
        if field == 1 and wire == pb.LEN:
            for f2, w2, v2 in pb.read_fields(value):
                if f2 == 1 and w2 == pb.VARINT:
                    return v2
    return 0


# MARK: - JSON


class JSONStyle:
    """The legal variations of OTLP/JSON: key case, enum form, int64 as string or number."""

    def __init__(self, rng):
        self.snake = rng.random() < 0.2
        self.enum_names = rng.random() < 0.3
        self.int_numbers = rng.random() < 0.3

    def key(self, camel):
        if not self.snake:
            return camel
        return "".join("_" + c.lower() if c.isupper() else c for c in camel)

    def int64(self, n):
        return n if self.int_numbers else str(n)


def _text(s):
    """A JSON string literal; bytes (possibly invalid UTF-8) are written raw between the quotes."""
    if isinstance(s, bytes):
        return b'"' + s.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return json.dumps(s).encode()


def json_any(value, st):
    kind = value[0]
    if kind == "s":
        return b'{"' + st.key("stringValue").encode() + b'":' + _text(value[1]) + b"}"
    if kind == "b":
        return b'{"' + st.key("boolValue").encode() + b'":' + (b"true" if value[1] else b"false") + b"}"
    if kind == "i":
        return b'{"' + st.key("intValue").encode() + b'":' + json.dumps(st.int64(value[1])).encode() + b"}"
    if kind == "d":
        v = value[1]
        text = json.dumps(v) if v == v and abs(v) != float("inf") else json.dumps(str(v))
        return b'{"' + st.key("doubleValue").encode() + b'":' + text.encode() + b"}"
    if kind == "a":
        return b'{"' + st.key("arrayValue").encode() + b'":{"values":[' + b",".join(json_any(v, st) for v in value[1]) + b"]}}"
    if kind == "kv":
        return b'{"' + st.key("kvlistValue").encode() + b'":{"values":[' + b",".join(json_kv(k, v, st) for k, v in value[1]) + b"]}}"
    if kind == "bytes":
        return b'{"' + st.key("bytesValue").encode() + b'":"' + base64.b64encode(value[1]) + b'"}'
    if kind == "deep":
        if value[1] == "a":
            open_, close = b'{"' + st.key("arrayValue").encode() + b'":{"values":[', b"]}}"
        else:
            open_, close = b'{"' + st.key("kvlistValue").encode() + b'":{"values":[{"key":"k","value":', b"}]}}"
        return open_ * value[2] + b'{"' + st.key("intValue").encode() + b'":"1"}' + close * value[2]
    raise ValueError(kind)


def json_kv(key, value, st):
    return b'{"key":' + _text(key) + b',"value":' + json_any(value, st) + b"}"


def json_attrs(attrs, st):
    return b"[" + b",".join(json_kv(k, v, st) for k, v in attrs) + b"]"


def _hex(b):
    return b'"' + b.hex().encode() + b'"'


def json_span(s, st):
    k = st.key
    parts = [
        b'"' + k("traceId").encode() + b'":' + _hex(s["trace_id"]),
        b'"' + k("spanId").encode() + b'":' + _hex(s["span_id"]),
        b'"name":' + _text(s["name"]),
        b'"kind":' + (json.dumps(["SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT",
                                  "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER"][s["kind"]]) if st.enum_names and 0 <= s["kind"] < 6
                      else str(s["kind"])).encode(),
        b'"' + k("startTimeUnixNano").encode() + b'":' + json.dumps(st.int64(s["start"])).encode(),
        b'"' + k("endTimeUnixNano").encode() + b'":' + json.dumps(st.int64(s["end"])).encode(),
        b'"attributes":' + json_attrs(s["attributes"], st),
    ]
    if s["parent"]:
        parts.append(b'"' + k("parentSpanId").encode() + b'":' + _hex(s["parent"]))
    if s["events"]:
        parts.append(b'"events":[' + b",".join(
            b'{"' + k("timeUnixNano").encode() + b'":' + json.dumps(st.int64(e["time"])).encode() + b',"name":' + _text(e["name"])
            + b',"attributes":' + json_attrs(e["attributes"], st) + b"}" for e in s["events"]) + b"]")
    if s["links"]:
        parts.append(b'"links":[' + b",".join(
            b'{"' + k("traceId").encode() + b'":' + _hex(link["trace_id"]) + b',"' + k("spanId").encode() + b'":' + _hex(link["span_id"])
            + b',"attributes":' + json_attrs(link["attributes"], st) + b"}" for link in s["links"]) + b"]")
    code, message = s["status"]
    if code or message:
        code_text = json.dumps(["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"][code]) if st.enum_names and 0 <= code < 3 else str(code)
        parts.append(b'"status":{"code":' + code_text.encode() + b',"message":' + _text(message) + b"}")
    return b"{" + b",".join(parts) + b"}"


def to_json(request, st):
    k = st.key
    out = []
    for rs in request["resource_spans"]:
        scopes = b",".join(
            b'{"scope":{"name":' + _text(sc["name"]) + b',"version":' + _text(sc["version"]) + b'},"spans":['
            + b",".join(json_span(s, st) for s in sc["spans"]) + b"]}"
            for sc in rs["scopes"]
        )
        out.append(b'{"resource":{"attributes":' + json_attrs(rs["resource"], st) + b'},"' + k("scopeSpans").encode() + b'":[' + scopes + b"]}")
    return b'{"' + k("resourceSpans").encode() + b'":[' + b",".join(out) + b"]}"


def rejected_spans_in_json(body):
    doc = json.loads(body or b"{}")
    ps = doc.get("partialSuccess") or doc.get("partial_success") or {}
    return int(ps.get("rejectedSpans") or ps.get("rejected_spans") or 0)
