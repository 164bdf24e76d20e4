"""The input families. Each `make_<family>(rng, index, ctx)` returns a Case; `rng` is seeded from
(seed, family, index) alone, so any case can be replayed by itself."""

import json
import unicodedata

from . import mutate, otlp, traceql
from .case import LIGHT, Case, Failure, Request, target

ORG = b"x-scope-orgid"
PROTOBUF, JSON = "application/x-protobuf", "application/json"


def org_headers(org):
    return [] if org is None else [(ORG, org)]


def pick_org(rng):
    return rng.choice([None, None, b"acme", b"globex"])


# MARK: - ingest helpers


def export(body, content_type=PROTOBUF, encoding=None, org=None, extra=()):
    headers = ([("Content-Type", content_type)] if content_type is not None else []) + org_headers(org)
    if encoding is not None:
        headers.append(("Content-Encoding", encoding))
    return Request("POST", "otlp", "/v1/traces", headers + list(extra), body, deadline="ingest")


def accepted(s, response, json_body, ids, org, expect_ok, ledger, body_bytes=0):
    """Checks an export's answer. A plain valid export must be a 200; a 200 with nothing rejected puts
    the traces in the ledger (when `ledger`) and each must be readable at once under the same org (the
    read's deadline grows with the export's size, as its answer does)."""
    if response.status != 200:
        if expect_ok:
            raise Failure("rejected-valid", "a valid export got %d: %s" % (response.status, response.body[:300]))
        return False
    try:
        rejected = otlp.rejected_spans_in_json(response.body) if json_body else otlp.rejected_spans_in_protobuf(response.body)
    except ValueError as e:
        raise Failure("bad-answer", "undecodable export response (%s): %r" % (e, response.body[:200]))
    if expect_ok and rejected:
        raise Failure("rejected-valid", "a valid export had %d spans rejected: %r" % (rejected, response.body[:300]))
    if ledger and not rejected:
        for tid in ids:
            r = s.send(Request("GET", "query", "/api/traces/" + tid, org_headers(org), json_answer=True, size=body_bytes))
            if r.status != 200:
                raise Failure("ack-not-visible", "trace %s acknowledged under org %r answers %d" % (tid, org, r.status))
        s.ack(org, ids)
    return True


# MARK: - traceql


def make_traceql(rng, index, ctx):
    shape, q = traceql.query(rng)
    org = pick_org(rng)
    metrics = "|" in q
    r = rng.random()
    if metrics and r < 0.7:
        path = rng.choice(["/api/metrics/query_range", "/api/metrics/query"])
        params = [("q", q), ("since", rng.choice(["1h", "15m", "24h"]))]
        if rng.random() < 0.5:
            params.append(("step", rng.choice(["1m", "5m", "30s"])))
    elif r < 0.5:
        path, params = "/api/search", [("q", q), ("limit", "20")]
    elif r < 0.75:
        path = "/api/weft/aggregate"
        params = [("q", q), ("by", rng.choice(["span.tenant_id", "resource.service.name", "status", "span.tenant_id,span.gen_ai.request.model"])),
                  ("select", rng.choice(["count", "count, p95(duration)", "sum(span.gen_ai.usage.cost), avg(duration)"])), ("since", "1h")]
    else:
        path = "/api/search/tag/%s/values" % rng.choice(["span.tenant_id", "resource.service.name", "name", "status"])
        params = [("q", q)]
    safe = LIGHT if rng.random() < 0.5 else ""
    req = Request("GET", "query", target(path, params, safe), org_headers(org), json_answer=True)
    return Case("traceql", index, shape, lambda s: s.send(req))


# MARK: - params

TIMES = ["", "0", "1", "-1", "1e300", "1e9", "NaN", "inf", "2600-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
         "0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "2026-12-05T12:00:00+01:00", "2026-13-45T99:99:99Z",
         "18446744073709551615", "18446744073709551616", "9223372036854775807", "99999999999999999999999",
         "1764460800", "1764460800000000000", "1764460800.5", "now", "now-1h", " 1764460800", "1e19", "-9223372036854775808"]
DURATIONS = ["", "0", "0s", "1s", "5m", "1h", "24h", "-5m", "1e300", "1e300h", "20000000000h", "1e-300s", "1ns",
             "18446744073709551615ns", "9999999999h", "5124096h", "1d", "abc", "1.5.5s", "nan", "∞", "1e19ns", "30"]
LIMITS = ["", "0", "1", "20", "-1", "100000", "100001", "1e3", "999999999999999999999", "9223372036854775807", "abc", "+5", " 5"]
TRACE_IDS = ["", "0", "0" * 32, "g" * 32, "f" * 33, "f" * 1000, "F" * 32, "%00", "..", "%2e%2e", "😀", "-1",
             "ffffffffffffffffffffffffffffffff", "1", " " + "a" * 31, "a" * 16, "0x" + "a" * 30, "%ff%fe"]
TAG_NAMES = ["tenant_id", "span.tenant_id", "resource.service.name", "status", "kind", "duration", "name", "",
             "%00", "..", "a,b", "span.", "%F0%9F%98%80", "x" * 5000, "{", "rootServiceName", "traceDuration", "%ff"]
FIELDS = ["span.tenant_id", "resource.service.name", "status", "kind", "name", "duration", "span.gen_ai.request.model",
          "", ",", "span.", "a,b,c,d,e", "x(y)", "span.tenant_id,span.tenant_id,span.region,status,kind", "😀"]
SELECTS = ["count", "", "sum(span.gen_ai.usage.cost)", "p95(duration)", "p999(duration)", "quantile(duration, 0.5, 2)",
           "histogram(duration)", "avg(name)", "count, count, count", "max(", "p0(duration)", "p100000(duration)",
           "quantile(duration, " + ", ".join(["0.5"] * 500) + ")", "min(span.nope)"]
TAGS = ["tenant_id=acme", "tenant_id=acme gen_ai.request.model=gpt-4o", "status=error", 'name="POST /chat"', "=", "a=",
        "=b", '"unterminated', "tenant_id=acme " * 300, "span.tenant_id=acme resource.service.name=gateway", "kind=client",
        "status=nope", "kind=🙂", "a\\=b=c", "x=" + "y" * 20000, "duration=5s", '"a b"="c d"']


def junk(rng):
    r = rng.random()
    if r < 0.3:
        return rng.choice([b"%", b"%z", b"%zz", b"%C0%80", b"%ff", b"%00", b"a%2", b"%%%"])
    if r < 0.6:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(0, 20)))
    return "x" * rng.choice([1000, 10000, 60000])


def pick(rng, pool, p_junk=0.1):
    return junk(rng) if rng.random() < p_junk else rng.choice(pool)


def some(rng, candidates):
    """A random subset of (name, pool) as parameters, sometimes with a duplicate or an unknown one."""
    params = [(name, pick(rng, pool)) for name, pool in candidates if rng.random() < 0.6]
    if params and rng.random() < 0.1:
        params.append(rng.choice(params))
    if rng.random() < 0.05:
        params.append((junk(rng) if rng.random() < 0.5 else "unknown", "1"))
    rng.shuffle(params)
    return params


def make_params(rng, index, ctx):
    queries = ["{ status = error }", "{}", '{ span.tenant_id = "acme" }', "{ duration > 1s }", "{ status = error } | rate()",
               "{ } | count_over_time() by (span.tenant_id)", "{ } | quantile_over_time(duration, .5, .99)"]
    baseline_ids = ctx.baseline_ids or ["0" * 31 + "1"]
    endpoint = rng.choice(["search", "search", "range", "instant", "values", "values_v2", "aggregate", "dependencies",
                           "trace", "trace_v2", "tags", "tags_v2", "method"])
    if endpoint == "search":
        path = "/api/search"
        params = some(rng, [("tags", TAGS), ("q", queries), ("limit", LIMITS), ("start", TIMES), ("end", TIMES),
                            ("minDuration", DURATIONS), ("maxDuration", DURATIONS), ("spss", LIMITS)])
    elif endpoint in ("range", "instant"):
        path = "/api/metrics/query_range" if endpoint == "range" else "/api/metrics/query"
        params = [("q", pick(rng, queries))] + some(rng, [("start", TIMES), ("end", TIMES), ("since", DURATIONS), ("step", DURATIONS)])
    elif endpoint in ("values", "values_v2"):
        path = ("/api/search/tag/%s/values" if endpoint == "values" else "/api/v2/search/tag/%s/values") % pick(rng, TAG_NAMES)
        params = some(rng, [("start", TIMES), ("end", TIMES), ("q", queries), ("limit", LIMITS)])
    elif endpoint == "aggregate":
        path = "/api/weft/aggregate"
        params = some(rng, [("q", queries), ("by", FIELDS), ("select", SELECTS), ("order_by", SELECTS + ["nope"]),
                            ("order", ["asc", "desc", "", "sideways"]), ("limit", LIMITS), ("since", DURATIONS),
                            ("start", TIMES), ("end", TIMES)])
    elif endpoint == "dependencies":
        path = "/api/dependencies"
        params = some(rng, [("endTs", TIMES + ["1764460800000"]), ("lookback", LIMITS + ["3600000", "86400000000"])])
    elif endpoint in ("trace", "trace_v2"):
        tid = rng.choice(TRACE_IDS) if rng.random() < 0.6 else rng.choice(baseline_ids)
        if rng.random() < 0.2:
            tid = rng.choice([tid.upper(), tid.lstrip("0"), "0" + tid, tid + "/", tid[:-1]])
        path = ("/api/traces/" if endpoint == "trace" else "/api/v2/traces/") + tid
        params = some(rng, [("start", TIMES), ("end", TIMES)])
    elif endpoint in ("tags", "tags_v2"):
        path = "/api/search/tags" if endpoint == "tags" else "/api/v2/search/tags"
        params = some(rng, [("scope", ["span", "resource", "intrinsic", "", "nope", "all"]), ("start", TIMES), ("end", TIMES)])
    else:
        path, params = rng.choice(["/api/search", "/api/metrics/query_range", "/api/traces/" + baseline_ids[0], "/flush"]), []
    method = "GET" if endpoint != "method" else rng.choice(["POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"])
    json_answer = path.startswith("/api/") and method == "GET"
    req = Request(method, "query", target(path, params), org_headers(pick_org(rng)), json_answer=json_answer)
    return Case("params", index, endpoint, lambda s: s.send(req))


# MARK: - OTLP bodies (both encodings)


def extreme(rng, request, ids):
    """Makes the valid request extreme in one way. Returns (shape, still valid and recent?)."""
    spans = list(otlp.all_spans(request))
    span = rng.choice(spans)
    r = rng.random()
    if r < 0.15:
        n = rng.choice([1000, 10_000, 100_000])
        style = rng.choice(["distinct", "same-key", "int", "events"])
        if style == "distinct":
            extra = [("fuzz.a%d" % i, ("s", "v%d" % i)) for i in range(n)]
        elif style == "same-key":
            extra = [("fuzz.a", ("s", "v%d" % i)) for i in range(n)]
        else:
            extra = [("fuzz.i%d" % i, ("i", i)) for i in range(n)]
        if style == "events":
            span["events"] = span["events"] + [{"time": span["start"], "name": "e", "attributes": extra[:1]}] * n
        else:
            span["attributes"] = span["attributes"] + extra
        return "attributes-%s-%d" % (style, n), True
    if r < 0.25:
        n = rng.choice([1 << 16, 1 << 20, 10 << 20])
        span["attributes"].append(("fuzz.long", ("s", "x" * n)))
        return "long-value-%d" % n, True
    if r < 0.4:
        levels = rng.choice([64, 1000, 10_000, 100_000])
        kind = rng.choice(["a", "kv"])
        span["attributes"].append(("fuzz.deep", ("deep", kind, levels)))
        return "deep-%s-%d" % (kind, levels), True
    if r < 0.5:
        bad = rng.choice([b"x\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"abc\xe2\x82"])
        where = rng.choice(["value", "key", "name", "service"])
        if where == "value":
            span["attributes"].append(("fuzz.bad", ("s", bad)))
        elif where == "key":
            span["attributes"].append((bad, ("s", "v")))
        elif where == "name":
            span["name"] = bad
        else:
            request["resource_spans"][0]["resource"][0] = ("service.name", ("s", bad))
        return "invalid-utf8-" + where, False
    if r < 0.6:
        which = rng.choice(["trace", "span", "parent", "link"])
        bad = rng.choice([b"", b"\x00" * 16, b"\x01" * 15, b"\x01" * 17, b"\x01" * 32, b"\x00" * 8, b"\x01" * 7])
        if which == "trace":
            span["trace_id"] = bad
        elif which == "span":
            span["span_id"] = bad
        elif which == "parent":
            span["parent"] = bad or b"\x00"
        else:
            span["links"].append({"trace_id": bad, "span_id": b"\x01" * 8, "attributes": []})
        return "bad-id-" + which, False
    if r < 0.72:
        choice = rng.choice(["zero", "one", "max", "end-before-start", "2600", "1970", "2^63"])
        start, end = {
            "zero": (0, 0), "one": (1, 2), "max": ((1 << 64) - 2, (1 << 64) - 1),
            "end-before-start": (span["end"], span["start"]), "2600": (19880899200 * 10**9, 19880899201 * 10**9),
            "1970": (10**9, 2 * 10**9), "2^63": ((1 << 63) - 1, 1 << 63),
        }[choice]
        span["start"], span["end"] = start, end
        return "timestamps-" + choice, False
    if r < 0.8:
        sc = request["resource_spans"][0]["scopes"][0]
        n = rng.choice([1000, 10_000])
        base = sc["spans"][0]
        sc["spans"] = sc["spans"] + [dict(base, span_id=otlp.span_id(rng)) for _ in range(n)]
        return "spans-%d" % n, True
    if r < 0.88:
        v = rng.choice([("i", -(1 << 63)), ("i", (1 << 63) - 1), ("d", float("nan")), ("d", float("inf")), ("d", -0.0),
                        ("bytes", b"\x00\xff" * 100), ("a", []), ("kv", []), ("s", ""), ("s", "\x00")])
        span["attributes"].append(("fuzz.edge", v))
        span["kind"] = rng.choice([span["kind"], 99, -1, 1 << 40])
        span["status"] = rng.choice([span["status"], (7, "x"), (-1, ""), (2, "é" * 1000)])
        return "edge-values", False
    if r < 0.94:
        sc = request["resource_spans"][0]
        sc["resource"] = sc["resource"] + [("r%d" % i, ("i", i)) for i in range(rng.choice([100, 10_000]))]
        return "resource-attributes", True
    request["resource_spans"] = []
    ids.clear()
    return "empty", True


CONTENT_TYPES = {
    PROTOBUF: [PROTOBUF, "application/x-protobuf; charset=utf-8", "APPLICATION/X-PROTOBUF", "application/protobuf"],
    JSON: [JSON, "application/json; charset=utf-8", "Application/JSON"],
}
WRONG_TYPES = ["text/plain", "", "application/octet-stream", "application/grpc", "multipart/form-data", None, "application/x-protobuf\x00"]


def make_otlp(family, json_body, rng, index, ctx):
    org = pick_org(rng)
    request, ids = otlp.make_request(rng, ctx.now_ns, traces=rng.randrange(1, 4))
    style = otlp.JSONStyle(rng)

    def encode(req):
        return otlp.to_json(req, style) if json_body else otlp.to_protobuf(req)

    content_type = PROTOBUF if not json_body else JSON
    r = rng.random()
    expect_ok, ledger, encoding = False, False, None
    if r < 0.2:
        shape, body, expect_ok, ledger = "valid", encode(request), True, True
    elif r < 0.45:
        shape, ledger = extreme(rng, request, ids)
        body = encode(request)
    elif r < 0.7:
        body = encode(request)
        if json_body:
            shape, body = json_mutation(rng, body)
        else:
            m = rng.choice(mutate.BYTE_MUTATIONS)
            shape, body = m.__name__, m(rng, body)
    elif r < 0.85:
        shape, body, encoding = mutate.gzip_variant(rng, encode(request))
        if shape == "gzip":
            expect_ok, ledger = True, True
    elif r < 0.93:
        body = encode(request)
        if rng.random() < 0.5:
            content_type = rng.choice(CONTENT_TYPES[content_type])
            shape = "content-type-variant"
        else:
            content_type = rng.choice(WRONG_TYPES + [JSON if not json_body else PROTOBUF])
            shape = "wrong-content-type"
    else:
        body, encoding = encode(request), rng.choice(mutate.ENCODING_NAMES)
        shape = "content-encoding-" + encoding
    req = export(body, content_type, encoding, org)

    def run(s):
        resp = s.send(req)
        accepted(s, resp, json_body, ids, org, expect_ok, ledger, len(body))

    return Case(family, index, shape, run)


def make_otlp_proto(rng, index, ctx):
    return make_otlp("otlp_proto", False, rng, index, ctx)


def make_otlp_json(rng, index, ctx):
    return make_otlp("otlp_json", True, rng, index, ctx)


def json_mutation(rng, body):
    r = rng.random()
    if r < 0.15:
        return "truncate", mutate.truncate(rng, body)
    if r < 0.3:
        return "bit-flips", mutate.bit_flips(rng, body)
    if r < 0.45:
        swaps = [(b'"intValue":"', b'"intValue":99999999999999999999999'), (b'"startTimeUnixNano":"', b'"startTimeUnixNano":1e400,"x":"'),
                 (b'"traceId":"', b'"traceId":5,"y":"'), (b'"spans":[', b'"spans":null,"z":['), (b'"name":', b'"name":{"a":1},"n2":'),
                 (b'"kind":', b'"kind":"SPAN_KIND_NOPE","k2":'), (b'"stringValue":', b'"stringValue":["x"],"s2":'),
                 (b'"doubleValue":', b'"doubleValue":NaN,"d2":'), (b'"resourceSpans":[', b'"resourceSpans":{},"r":[')]
        a, b = rng.choice(swaps)
        return "type-confusion", body.replace(a, b, 1)
    if r < 0.6:
        n = rng.choice([1000, 10_000, 100_000, 1_000_000])
        deep = (b'"fuzzUnknown":' + b"[" * n + b"]" * n) if rng.random() < 0.5 else (b'"fuzzUnknown":' + b'{"a":' * n + b"1" + b"}" * n)
        return "deep-unknown-field-%d" % n, body[:1] + deep + b"," + body[1:]
    if r < 0.7:
        bad = rng.choice([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\\ud800", b"\\udfff\\ud800", b"\\u0000", b"\\uZZZZ", b"\\"])
        i = body.find(b'"stringValue":"')
        if i < 0:
            return "invalid-utf8", body + bad
        i += len(b'"stringValue":"')
        return "invalid-string", body[:i] + bad + body[i:]
    if r < 0.78:
        return "bom", b"\xef\xbb\xbf" + body
    if r < 0.84:
        return "trailing-garbage", body + rng.choice([b"x", b"}", b"{}", b"\x00", b" " * 100])
    if r < 0.9:
        return "duplicate-keys", body.replace(b'"resourceSpans":', b'"resourceSpans":[],"resourceSpans":', 1)
    if r < 0.95:
        return "whitespace-flood", body.replace(b",", b"," + b" " * rng.choice([10, 100_000]), 3)
    return "garbage", mutate.garbage(rng, body)


# MARK: - org headers

CONFUSABLE_PAIRS = [
    ("café", "cafe\u0301"),
    ("\u212b", "\u00c5"),
    ("\u00c5", "A\u030a"),
    (b"x\xff", b"x\xc0"),
    (b"x\xff", b"x\xef\xbf\xbd"),  # an invalid byte against U+FFFD
    (b"\xc3\xa9", b"\xe9"),  # UTF-8 é against Latin-1 é
    ("acme", "ACME"),
    ("acme", "acme\u200b"),
    ("ﬁ", "fi"),  # NFKC
    ("x" * 70_000, "x" * 69_999 + "y"),
    ("x" * 65_536 + "a", "x" * 65_536 + "b"),
    ("", "x"),
    (None, "x"),
    ("a\x01b", "a\x02b"),
    ("a\x7fb", "ab"),
    ("a\x00b", "a"),
    ("..", "."),
    ("../acme", "acme"),
    ("a/b", "a_b"),
    ("acme", "acme,globex"),
]


def org_bytes(o):
    if o is None or isinstance(o, bytes):
        return o
    return o.encode("utf-8")


def random_confusable(rng):
    base = "".join(rng.choice("aceinosuÅÉÑÖÜçﬁǅ") for _ in range(rng.randrange(1, 8)))
    forms = {unicodedata.normalize(f, base) for f in ("NFC", "NFD", "NFKC", "NFKD")} | {base.casefold(), base.upper()}
    forms.discard(base)
    return base, rng.choice(sorted(forms)) if forms else base + "\u0301"


def make_org(rng, index, ctx):
    if rng.random() < 0.75:
        a, b = rng.choice(CONFUSABLE_PAIRS)
        kind = None
    else:
        a, b = random_confusable(rng)
        kind = "random normalisation/case variant"
    if rng.random() < 0.5:
        a, b = b, a
    a, b = org_bytes(a), org_bytes(b)
    return isolation_case("org", index, kind or "%s|%s" % (_show(a, 24), _show(b, 24)), rng, ctx, a, b)


def isolation_case(family, index, shape, rng, ctx, a, b):
    """Writes a trace under org header `a`, then looks for it under `b` (absent: None)."""
    marker = "m%d-%s" % (index, "".join(rng.choice("0123456789abcdef") for _ in range(12)))
    request, ids = otlp.make_request(rng, ctx.now_ns, traces=1, marker=marker, service="org-fuzz")
    json_body = rng.random() < 0.3
    body = otlp.to_json(request, otlp.JSONStyle(rng)) if json_body else otlp.to_protobuf(request)
    write = export(body, JSON if json_body else PROTOBUF, org=a)
    same_org = a == b or (a in (None, b"") and b in (None, b""))

    def run(s):
        resp = s.send(write)
        if not accepted(s, resp, json_body, ids, a, expect_ok=False, ledger=True) or same_org:
            return  # refused (a 4xx is an answer), nothing to leak
        tid = ids[0]
        seen = s.send(Request("GET", "query", "/api/traces/" + tid, org_headers(b), json_answer=True))
        if seen.status == 200:
            raise Failure("isolation", "trace %s written under org %s is readable under org %s" % (tid, _show(a), _show(b)))
        found = s.send(Request("GET", "query", target("/api/search", [("tags", "fuzz.marker=" + marker)]), org_headers(b), json_answer=True))
        if found.status == 200 and json.loads(found.body).get("traces"):
            raise Failure("isolation", "search under org %s finds the trace written under org %s" % (_show(b), _show(a)))
        values = s.send(Request("GET", "query", "/api/search/tag/fuzz.marker/values", org_headers(b), json_answer=True))
        if values.status == 200 and marker in values.body.decode("utf-8", "replace"):
            raise Failure("isolation", "tag values under org %s list the marker written under org %s" % (_show(b), _show(a)))

    return Case(family, index, shape, run)


def _show(o, n=40):
    """The header bytes as a Python literal, so NFC and NFD forms look different."""
    if o is None:
        return "<absent>"
    r = repr(o[:n])
    return r if len(o) <= n else r + "…(%d bytes)" % len(o)


FAMILIES = {
    "traceql": make_traceql,
    "params": make_params,
    "otlp_proto": make_otlp_proto,
    "otlp_json": make_otlp_json,
    "org": make_org,
}
