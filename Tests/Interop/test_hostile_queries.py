"""Hostile queries against one `weft serve`: each gets a clear 400 (naming the parameter or the
construct) or 422 (a budget), or its normal answer, quickly, and the node stays ready.

Run with `python3 -m pytest -q Tests/Interop/test_hostile_queries.py` after `swift build`.
"""

import http.client
import json
import random
import tempfile
import time
import urllib.parse

import pytest
import requests

from test_node import Node

SPANS = 500
SLOW = "a" * 20 + "!"


def otlp_json(now_ns):
    """One request of SPANS spans, each with its own `u` (500 groups) and `v` = SLOW."""
    rng = random.Random(7)
    spans = []
    for i in range(SPANS):
        start = now_ns - rng.randrange(60, 1800) * 1_000_000_000
        spans.append({
            "traceId": "%032x" % rng.getrandbits(128), "spanId": "%016x" % rng.getrandbits(64),
            "name": "op", "kind": 2, "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + rng.randrange(1, 10**9)),
            "attributes": [{"key": "u", "value": {"stringValue": "user-%d" % i}}, {"key": "v", "value": {"stringValue": SLOW}}],
        })
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "hostile"}}]},
        "scopeSpans": [{"scope": {"name": "manual"}, "spans": spans}],
    }]}


@pytest.fixture(scope="module")
def node():
    with tempfile.TemporaryDirectory(prefix="weft-hostile-") as d:
        n = Node(d).start()
        body = json.dumps(otlp_json(time.time_ns()))
        r = requests.post(n.otlp + "/v1/traces", data=body, headers={"Content-Type": "application/json"}, timeout=30)
        assert r.status_code == 200, r.text
        yield n
        if n.proc.poll() is None:
            n.kill()


def deep(n):
    return "{" + "(" * n + "n=1" + ")" * n + "}"


def terms(n):
    return "{" + "||".join(["n=1"] * n) + "}"


def duration_filters():
    return ["{ duration > 1e300h }", "{ duration > 20000000000h }", "{ duration > 100000000000000000000ns }"]


# (path, parameters, status, text the message must contain)
REFUSED = (
    [("/api/search", {"q": q}, 400, "'q'") for q in duration_filters()]
    + [
        ("/api/metrics/query_range", {"q": duration_filters()[0] + " | rate()"}, 400, "'q'"),
        ("/api/metrics/query", {"q": duration_filters()[2] + " | count_over_time()"}, 400, "'q'"),
        ("/api/weft/aggregate", {"q": duration_filters()[1]}, 400, "'q'"),
        ("/api/search/tag/span.u/values", {"q": duration_filters()[0]}, 400, "'q'"),
        ("/api/v2/search/tag/span.u/values", {"q": duration_filters()[2]}, 400, "'q'"),
        ("/api/metrics/query_range", {"q": "{} | rate()", "step": "1e11"}, 400, "'step'"),
        ("/api/metrics/query_range", {"q": "{} | rate()", "step": "1e300"}, 400, "'step'"),
        ("/api/metrics/query_range", {"q": "{} | rate()", "start": "20000000000"}, 400, "'start'"),
        ("/api/metrics/query_range", {"q": "{} | rate()", "start": "2600-01-01T00:00:00Z"}, 400, "'start'"),
        ("/api/metrics/query_range", {"q": "{} | rate()", "end": "2600-01-01T00:00:00Z"}, 400, "'end'"),
        ("/api/metrics/query_range", {"q": "{} | rate()", "since": "1e300h"}, 400, "'since'"),
        ("/api/weft/aggregate", {"start": "2600-01-01T00:00:00Z"}, 400, "'start'"),
        ("/api/search/tag/span.u/values", {"end": "2554-07-21T23:34:33Z"}, 400, "'end'"),
        ("/api/v2/search/tag/span.u/values", {"end": "2554-07-21T23:34:33Z"}, 400, "'end'"),
        ("/api/search/tag/span.u/values", {"start": "18446744073709551615999"}, 400, "'start'"),
        ("/api/search", {"minDuration": "100000000000000000000ns"}, 400, "'minDuration'"),
        ("/api/search", {"maxDuration": "1e300h"}, 400, "'maxDuration'"),
        ("/api/search", {"start": "20000000000"}, 400, "'start'"),
        ("/api/search", {"limit": "99999999999999999999"}, 400, "'limit'"),
        ("/api/search", {"spss": "99999999999999999999"}, 400, "'spss'"),
        ("/api/dependencies", {"endTs": "18446744073709551"}, 400, "'endTs'"),
        ("/api/dependencies", {"lookback": "18446744073709551"}, 400, "'lookback'"),
        ("/api/dependencies", {"lookback": "99999999999999999999"}, 400, "'lookback'"),
        # Parser recursion: depth and condition count are bounded, with the position.
        ("/api/search", {"q": deep(30_000)}, 400, "nested deeper than 64"),
        ("/api/search", {"q": terms(15_000)}, 400, "more than 1000 conditions"),
        ("/api/metrics/query_range", {"q": terms(15_000) + " | rate()"}, 400, "more than 1000 conditions"),
        # Regular expressions that need backtracking are refused by name.
        ("/api/search", {"q": '{ span.v =~ "(a)\\\\1" }'}, 400, "backreferences"),
        ("/api/search", {"q": '{ span.v =~ "(?=a)a" }'}, 400, "lookahead"),
        # Budgets.
        ("/api/metrics/query", {"q": "{} | quantile_over_time(duration," + ",".join([".5"] * 19_000) + ")"}, 400, "at most 20 quantiles"),
        ("/api/weft/aggregate", {"select": "quantile(duration, " + ", ".join([".5"] * 21) + ")"}, 400, "'select'"),
        ("/api/metrics/query_range", {"q": "{} | histogram_over_time(duration) by (span.u)", "since": "1h", "step": "0.3274"},
         422, "memory limit"),
    ]
)


class Answer:
    def __init__(self, status, body):
        self.status_code = status
        self.text = body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.text)


def timed_get(node, path, params):
    """GET with TraceQL's symbols left unencoded, so the largest queries fit the server's 80 KiB request head."""
    query = "&".join(k + "=" + urllib.parse.quote(v, safe="{}()=|,.:") for k, v in params.items())
    address = urllib.parse.urlparse(node.query)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    started = time.monotonic()
    connection.request("GET", path + "?" + query)
    response = connection.getresponse()
    answer = Answer(response.status, response.read())
    elapsed = time.monotonic() - started
    connection.close()
    return answer, elapsed


@pytest.mark.parametrize("path,params,status,text", REFUSED, ids=["%d:%s" % (i, c[0]) for i, c in enumerate(REFUSED)])
def test_hostile_query_is_refused_quickly(node, path, params, status, text):
    r, elapsed = timed_get(node, path, params)
    assert r.status_code == status, r.text[:500]
    assert text in r.json()["error"], r.text[:500]
    assert elapsed < 1.0, "%s took %.2f s" % (path, elapsed)
    assert requests.get(node.query + "/ready", timeout=5).status_code == 200


# Hostile but valid: answered normally and quickly.
ANSWERED = [
    ("/api/search", {"q": '{ span.v =~ "(a+)+$" }'}, 0),
    ("/api/search", {"q": '{ span.v =~ "(a|aa)+!" }', "limit": "5"}, 5),
    ("/api/search", {"q": deep(64)}, 0),
    ("/api/search", {"q": terms(1000)}, 0),
    ("/api/search/tag/span.u/values", {"end": "2554-07-21T23:34:32Z"}, None),
    ("/api/metrics/query_range", {"q": '{ span.v =~ "(a+)+$" } | rate()'}, None),
    ("/api/metrics/query_range", {"q": "{} | quantile_over_time(duration, " + ", ".join([".5"] * 20) + ")"}, None),
]


@pytest.mark.parametrize("path,params,traces", ANSWERED, ids=["%d:%s" % (i, c[0]) for i, c in enumerate(ANSWERED)])
def test_hostile_but_valid_query_is_answered_quickly(node, path, params, traces):
    r, elapsed = timed_get(node, path, params)
    assert r.status_code == 200, r.text[:500]
    if traces is not None:
        assert len(r.json()["traces"]) == traces
    assert elapsed < 1.0, "%s took %.2f s" % (path, elapsed)
    assert requests.get(node.query + "/ready", timeout=5).status_code == 200
