"""The `corpus` family: the smallest known input of each failure the random families found, in a fixed
order (case i is entry i modulo their number), so a fix can be checked by name and stays checked."""

from . import otlp
from .case import LIGHT, Case, Request, target
from .families import accepted, export, isolation_case


def query(path, params, safe=""):
    def make(rng, index, ctx, shape):
        req = Request("GET", "query", target(path, params, safe), json_answer=True)
        return Case("corpus", index, shape, lambda s: s.send(req))
    return make


def nested(n):
    return "{ " + "(" * n + 'name = "x"' + ")" * n + " }"


def org_pair(a, b):
    def make(rng, index, ctx, shape):
        return isolation_case("corpus", index, shape, rng, ctx, a, b)
    return make


def many_attributes(n):
    def make(rng, index, ctx, shape):
        request, ids = otlp.make_request(rng, ctx.now_ns, traces=1)
        span = next(otlp.all_spans(request))
        span["attributes"] = span["attributes"] + [("fuzz.a%d" % i, ("s", "v%d" % i)) for i in range(n)]
        body = otlp.to_protobuf(request)
        req = export(body)
        # Over the span limits: refused in partial_success (not an error), and the node must survive
        # this and every later restart.
        return Case("corpus", index, shape, lambda s: accepted(s, s.send(req), False, ids, None, False, True, len(body)))
    return make


RANGE = "/api/metrics/query_range"
CORPUS = [
    ("duration 1e300h", query("/api/search", [("q", "{ duration > 1e300h }")])),
    ("duration 20000000000h", query("/api/search", [("q", "{ duration > 20000000000h }")])),
    ("attribute against 20000000000h", query("/api/search", [("q", "{ span.gen_ai.usage.cost <= 20000000000h }")])),
    ("10 000 parentheses", query("/api/search", [("q", nested(10_000))])),
    ("30 000 parentheses, unencoded", query("/api/search", [("q", nested(30_000))], LIGHT)),
    ("regex (a+)+$", query("/api/search", [("q", '{ span.fuzz.text =~ "(a+)+$" }')])),
    ("regex (x+x+)+y", query("/api/weft/aggregate", [("q", '{ span.fuzz.text !~ "(x+x+)+y" }'), ("by", "span.tenant_id")])),
    ("step=1e300", query(RANGE, [("q", "{ } | rate()"), ("step", "1e300")])),
    ("start in 2600", query(RANGE, [("q", "{ } | rate()"), ("start", "2600-01-01T00:00:00Z")])),
    ("end in 9999", query("/api/metrics/query", [("q", "{ } | rate()"), ("end", "9999-12-31T23:59:59Z")])),
    ("tag values from 2600", query("/api/search/tag/tenant_id/values", [("start", "2600-01-01T00:00:00Z")])),
    ("aggregate from 2600", query("/api/weft/aggregate", [("start", "2600-01-01T00:00:00Z")])),
    ("org NFC/NFD", org_pair("café".encode(), "cafe\u0301".encode())),
    ("org U+212B/U+00C5", org_pair("\u212b".encode(), "\u00c5".encode())),
    ("org x\\xff/x\\xc0", org_pair(b"x\xff", b"x\xc0")),
    ("org 65 537 bytes (survives a restart?)", org_pair(b"x" * 65_536 + b"a", b"x" * 65_535)),
    ("span with 100 000 attributes", many_attributes(100_000)),
]


def make_corpus(rng, index, ctx):
    shape, make = CORPUS[index % len(CORPUS)]
    return make(rng, index, ctx, shape)
