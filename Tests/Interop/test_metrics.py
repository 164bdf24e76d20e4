"""Metrics, aggregation tables and the service map of one `weft serve`, fed by the OpenTelemetry SDK:
the same answers from the head and, after `POST /flush`, from blocks; bad queries get clear 400s and
limits 422s; `weftctl query` prints the tables."""

import json
import time
import os
import re
import subprocess
import tempfile

import pytest
import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from test_node import WEFT, Node

WEFTCTL = os.path.join(os.path.dirname(WEFT), "weftctl")

TENANTS = ["acme", "globex", "initech"]
MODELS = ["gpt-4o", "claude-3-5-haiku"]


def provider(node, service):
    p = TracerProvider(resource=Resource.create({"service.name": service}))
    p.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=node.otlp + "/v1/traces", timeout=30)))
    return p


def emit(app, gateway, n):
    """n traces: app root (service `checkout`) -> gateway span (service `llm-gateway`, another
    provider, so another resource) with tenant, model, tokens and cost. Returns what was sent."""
    sent = []
    app_tracer = app.get_tracer("weft.tests")
    gw_tracer = gateway.get_tracer("weft.tests")
    for i in range(n):
        tenant, model = TENANTS[i % 3], MODELS[i % 2]
        error = i % 6 == 0  # tenant acme only: filtered answers differ from unfiltered ones
        with app_tracer.start_as_current_span("POST /checkout", kind=SpanKind.SERVER):
            with gw_tracer.start_as_current_span(
                "chat " + model,
                kind=SpanKind.CLIENT,
                attributes={
                    "tenant_id": tenant,
                    "gen_ai.request.model": model,
                    "gen_ai.usage.input_tokens": 100 + i,
                    "gen_ai.usage.output_tokens": 10 + i,
                    "gen_ai.usage.cost": 0.001 * (i + 1),
                },
            ) as span:
                if error:
                    span.set_status(Status(StatusCode.ERROR, "upstream 500"))
        sent.append({"tenant": tenant, "model": model, "input": 100 + i, "cost": 0.001 * (i + 1), "error": error})
    app.force_flush()
    gateway.force_flush()
    return sent


def check_answers(node, sent):
    # Aggregation table: per tenant, count, summed tokens and cost, p95 latency.
    r = node.get("/api/weft/aggregate", q='{ span.gen_ai.request.model != "" }', by="span.tenant_id",
                 select="count, sum(span.gen_ai.usage.input_tokens), sum(span.gen_ai.usage.cost), p95(duration)", since="1h")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["columns"] == ["span.tenant_id", "count", "sum(span.gen_ai.usage.input_tokens)", "sum(span.gen_ai.usage.cost)", "quantile(duration, 0.95)"]
    rows = {row[0]: row[1:] for row in body["rows"]}
    assert set(rows) == set(TENANTS)
    for t in TENANTS:
        mine = [s for s in sent if s["tenant"] == t]
        assert rows[t][0] == len(mine)
        assert rows[t][1] == sum(s["input"] for s in mine)
        assert abs(rows[t][2] - sum(s["cost"] for s in mine)) < 1e-9
        assert rows[t][3][0] > 0
    # Ordered by count, the busiest tenant first; the response says what it scanned.
    assert body["rows"][0][1] == max(v[0] for v in rows.values())
    # Two rounds (count chooses the tenants, then p95 for them), each span counted once.
    assert int(body["metrics"]["inspectedSpans"]) == 2 * len(sent) and "elapsedMs" in body["metrics"]

    # TraceQL metrics, instant and range, in Tempo's shapes.
    q = '{ span.gen_ai.request.model != "" } | count_over_time() by (span.gen_ai.request.model)'
    instant = node.get("/api/metrics/query", q=q, since="1h").json()
    counts = {s["labels"][0]["value"]["stringValue"]: s["value"] for s in instant["series"]}
    assert counts == {m: sum(1 for s in sent if s["model"] == m) for m in MODELS}
    assert instant["series"][0]["labels"][0]["key"] == "span.gen_ai.request.model"
    ranged = node.get("/api/metrics/query_range", q=q, since="1h", step="60s").json()
    assert {s["labels"][0]["value"]["stringValue"]: sum(p["value"] for p in s["samples"]) for s in ranged["series"]} == counts
    assert all(p["timestampMs"].isdigit() for s in ranged["series"] for p in s["samples"])
    errors = node.get("/api/metrics/query", q="{ status = error } | count_over_time()", since="1h").json()
    assert errors["series"][0]["value"] == sum(1 for s in sent if s["error"])
    quantiles = node.get("/api/metrics/query", q='{ resource.service.name = "llm-gateway" } | quantile_over_time(duration, .5, .99)', since="1h").json()
    assert sorted(s["labels"][0]["value"]["doubleValue"] for s in quantiles["series"]) == [0.5, 0.99]

    # Tag values over everything stored, optionally among matching spans.
    values = node.get("/api/v2/search/tag/span.tenant_id/values").json()["tagValues"]
    assert values == [{"type": "string", "value": t} for t in sorted(TENANTS)]
    failing = {s["tenant"] for s in sent if s["error"]}
    assert failing == {"acme"}
    values = node.get("/api/v2/search/tag/span.tenant_id/values", q="{ status = error }").json()["tagValues"]
    assert {v["value"] for v in values} == failing

    # Trace-level intrinsics: every span of a trace rooted in checkout, every trace with its client span.
    by_root = node.get("/api/metrics/query", q="{ traceDuration >= 0 } | count_over_time() by (rootServiceName)", since="1h").json()
    assert {s["labels"][0]["value"]["stringValue"]: s["value"] for s in by_root["series"]} == {"checkout": 2 * len(sent)}
    searched = node.get("/api/search", q='{ rootServiceName = "checkout" && kind = client }', limit="100")
    answer = searched.json()
    assert "elapsedMs=" in searched.headers["x-weft-scan"] and int(answer["metrics"]["inspectedSpans"]) >= 2 * len(sent)
    rooted = answer["traces"]
    assert len(rooted) == len(sent) and all(t["rootServiceName"] == "checkout" and t["spanSets"][0]["matched"] == 1 for t in rooted)

    # The service map (Jaeger's shape): checkout -> llm-gateway, every call, the failed ones.
    deps = node.get("/api/dependencies").json()["data"]
    assert [(d["parent"], d["child"], d["callCount"], d["errorCount"]) for d in deps] == [
        ("checkout", "llm-gateway", len(sent), sum(1 for s in sent if s["error"]))
    ]


def test_metrics_tables_and_service_map_from_head_and_blocks():
    with tempfile.TemporaryDirectory(prefix="weft-test-") as d:
        node = Node(d).start()
        try:
            app, gateway = provider(node, "checkout"), provider(node, "llm-gateway")
            sent = emit(app, gateway, 30)
            check_answers(node, sent)
            assert requests.post(node.otlp + "/flush", timeout=30).status_code == 200
            assert "weft_head_spans 0" in node.get("/metrics").text
            check_answers(node, sent)

            # weftctl query prints the same table and series.
            base = ["--url", node.query]
            out = subprocess.run([WEFTCTL, "query", '{ span.gen_ai.request.model != "" }', "--by", "span.tenant_id",
                                  "--select", "count, sum(span.gen_ai.usage.cost)", "--since", "1h"] + base, capture_output=True, text=True)
            assert out.returncode == 0, out.stderr
            lines = out.stdout.splitlines()
            assert lines[0].split() == ["SPAN.TENANT_ID", "COUNT", "SUM(SPAN.GEN_AI.USAGE.COST)"]
            assert {l.split()[0]: int(l.split()[1]) for l in lines[1:4]} == {t: 10 for t in TENANTS}
            assert "3 of 3 groups" in out.stdout and "inspectedSpans=" in out.stdout
            # Durations (nanoseconds) print alike in every row: whole, grouped in thousands, no exponent.
            out = subprocess.run([WEFTCTL, "query", "{ }", "--by", "span.tenant_id", "--select", "count, p95(duration), avg(duration)",
                                  "--since", "1h"] + base, capture_output=True, text=True)
            assert out.returncode == 0, out.stderr
            for line in out.stdout.splitlines()[1:4]:
                for cell in line.split()[2:]:
                    assert re.fullmatch(r"\d{1,3}(,\d{3})*", cell), (cell, out.stdout)
            out = subprocess.run([WEFTCTL, "query", "{ } | count_over_time() by (resource.service.name)", "--since", "1h"] + base,
                                 capture_output=True, text=True)
            assert out.returncode == 0, out.stderr
            assert {tuple(l.split()) for l in out.stdout.splitlines()[1:3]} == {("checkout", "30"), ("llm-gateway", "30")}
            out = subprocess.run([WEFTCTL, "query", "{ status = error }", "--json"] + base, capture_output=True, text=True)
            assert out.returncode == 0 and len(json.loads(out.stdout)["traces"]) == sum(1 for s in sent if s["error"])
        finally:
            if node.proc.poll() is None:
                node.kill()


def test_bad_queries_and_limits_get_clear_errors():
    with tempfile.TemporaryDirectory(prefix="weft-test-") as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump({"queryMaxSeries": 3, "queryMaxRangeDays": 2}, f)
        node = Node(d)
        node.extra = ["--config", os.path.join(d, "config.json")]
        node.start()
        try:
            app, gateway = provider(node, "checkout"), provider(node, "llm-gateway")
            emit(app, gateway, 10)
            cases = [
                ("/api/metrics/query_range", {"q": "{ status = error }"}, 400, "needs a metrics stage"),
                ("/api/metrics/query_range", {"q": "{ } | rate() by (span.x", "since": "1h"}, 400, "position"),
                ("/api/metrics/query_range", {"q": "{ } | rate()", "since": "72h"}, 400, "exceeds the maximum of 48.0 h"),
                # Search and tag values keep to the same range.
                ("/api/search", {"q": "{ }", "start": str(int(time.time()) - 3 * 86400), "end": str(int(time.time()))}, 400, "exceeds the maximum of 48.0 h"),
                ("/api/search", {"tags": "service.name=checkout", "start": "1"}, 400, "exceeds the maximum of 48.0 h"),
                ("/api/v2/search/tag/span.tenant_id/values", {"start": "1", "end": str(int(time.time()))}, 400, "exceeds the maximum of 48.0 h"),
                ("/api/search/tag/span.tenant_id/values", {"start": str(int(time.time()) - 3 * 86400)}, 400, "exceeds the maximum of 48.0 h"),
                ("/api/metrics/query_range", {"q": "{ } | rate()", "since": "1h", "step": "1ms"}, 400, "steps exceed"),
                ("/api/metrics/query", {"q": "{ } | rate()", "start": "yesterday"}, 400, "parameter 'start'"),
                ("/api/weft/aggregate", {"select": "count, p97x(duration)"}, 400, "unknown aggregate"),
                ("/api/weft/aggregate", {"by": "span.a, span.b, span.c, span.d, span.e"}, 400, "at most 4 group-by fields"),
                ("/api/weft/aggregate", {"order_by": "sum(duration)"}, 400, "not one of the selected aggregates"),
                ("/api/dependencies", {"lookback": "-5"}, 400, "lookback"),
                # Four distinct (service, model) series and more when split by tenant: above the limit of 3.
                ("/api/metrics/query", {"q": "{ } | count_over_time() by (span.tenant_id, resource.service.name)", "since": "1h"}, 422, "more than 3 series"),
            ]
            for path, params, status, message in cases:
                r = node.get(path, **params)
                assert r.status_code == status, (path, params, r.status_code, r.text)
                assert message in r.json()["error"], (path, params, r.text)
            # The node keeps answering, and a range within the limit is searched.
            assert node.get("/api/metrics/query", q="{ } | count_over_time()", since="1h").json()["series"][0]["value"] == 20
            now = int(time.time())
            assert len(node.get("/api/search", q="{ }", start=str(now - 86400), end=str(now + 60), limit="100").json()["traces"]) == 10
        finally:
            if node.proc.poll() is None:
                node.kill()
