"""What Grafana's Tempo data source sends and decodes, checked as strictly as Grafana does (and more):
trace by ID in protobuf (v1 `Trace`, v2 `TraceByIDResponse`), every Tempo-shaped JSON answer parsed
against Tempo's message definitions with unknown fields rejected, buildinfo's version gates, and the
streaming `tempopb.StreamingQuerier` calls over gRPC on the query port."""

import json
import os
import time
from urllib.parse import urlparse

import grpc
import pytest
import requests
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

import tempo_messages as tempo
from test_node import Node, data_dir, emit_llm_trace, make_provider, node  # noqa: F401  (fixtures)

PROTOBUF = {"Accept": "application/protobuf"}


def send_traces(node, n=6):
    provider, _ = make_provider(node, "support-bot")
    ids = [emit_llm_trace(provider, ["acme", "globex"][i % 2], ["gpt-4o", "claude"][i % 2], error=i == 0) for i in range(n)]
    provider.force_flush()
    return ids


def flush(node):
    r = requests.post(node.otlp + "/flush", timeout=60)
    assert r.status_code == 200 and r.json()["blocks"], r.text


def query_address(node):
    u = urlparse(node.query)
    return "%s:%d" % (u.hostname, u.port)


def check_trace_by_id(node, trace_id):
    """Protobuf v1/v2 parse strictly, equal the JSON answers parsed strictly, and hold the sent spans."""
    v1 = requests.get(node.query + "/api/traces/" + trace_id, headers=PROTOBUF, timeout=30)
    assert v1.status_code == 200 and v1.headers["content-type"] == "application/protobuf", v1.text
    v1_proto = tempo.parse_binary(v1.content, "TraceV1")
    # What Grafana's backend does with it: OTLP's own classes read the same bytes.
    otlp = trace_service_pb2.ExportTraceServiceRequest.FromString(v1.content)
    assert [rs.SerializeToString() for rs in otlp.resource_spans] == [rs.SerializeToString() for rs in v1_proto.batches]
    assert v1_proto == tempo.parse_json(node.get("/api/traces/" + trace_id).text, "TraceV1")

    v2 = requests.get(node.query + "/api/v2/traces/" + trace_id, headers=PROTOBUF, timeout=30)
    assert v2.status_code == 200 and v2.headers["content-type"] == "application/protobuf", v2.text
    v2_proto = tempo.parse_binary(v2.content, "TraceByIDResponse")
    v2_json = tempo.parse_json(node.get("/api/v2/traces/" + trace_id).text, "TraceByIDResponse")
    assert v2_proto == v2_json and v2_proto.status == 0  # COMPLETE
    assert list(v2_proto.trace.resourceSpans) == list(v1_proto.batches)

    spans = [s for rs in v1_proto.batches for ss in rs.scope_spans for s in ss.spans]
    assert sorted(s.name for s in spans) == sorted(["POST /chat", "chatCompletions", "chat gpt-4o"]) or \
        sorted(s.name for s in spans) == sorted(["POST /chat", "chatCompletions", "chat claude"])
    assert all(s.trace_id.hex() == trace_id for s in spans)
    call = next(s for s in spans if s.name.startswith("chat "))
    attrs = {kv.key: kv.value for kv in call.attributes}
    assert attrs["gen_ai.usage.input_tokens"].int_value == 120
    assert attrs["gen_ai.usage.cost"].double_value == 0.0042
    assert attrs["cached"].HasField("bool_value") and not attrs["cached"].bool_value
    assert [v.string_value for v in attrs["stop_sequences"].array_value.values] == ["a", "b"]
    assert call.events[0].name == "gen_ai.user.message" and call.events[0].attributes[0].value.int_value == 42
    root = next(s for s in spans if s.name == "POST /chat")
    assert call.links[0].span_id == root.span_id and call.links[0].attributes[0].key == "link.kind"
    assert call.kind == call.SPAN_KIND_CLIENT and call.end_time_unix_nano > call.start_time_unix_nano
    resource = {kv.key: kv.value.string_value for kv in v1_proto.batches[0].resource.attributes}
    assert resource["service.name"] == "support-bot"
    return spans


def test_trace_by_id_protobuf_from_head_and_blocks(node):
    ids = send_traces(node)
    errored = check_trace_by_id(node, ids[0])
    assert any(s.status.code == s.status.STATUS_CODE_ERROR and s.status.message == "rate limited" for s in errored)
    flush(node)
    for trace_id in ids[:2]:
        check_trace_by_id(node, trace_id)
    # start/end (unix seconds) as Grafana sends them; a window with no block finds nothing there.
    now = int(time.time())
    r = requests.get(node.query + "/api/traces/" + ids[1], params={"start": now - 600, "end": now + 60}, headers=PROTOBUF, timeout=30)
    assert r.status_code == 200 and tempo.parse_binary(r.content, "TraceV1").batches
    r = requests.get(node.query + "/api/traces/" + ids[1], params={"start": now - 7200, "end": now - 3600}, headers=PROTOBUF, timeout=30)
    assert r.status_code == 404
    r = requests.get(node.query + "/api/traces/" + ids[1], params={"start": "soon"}, headers=PROTOBUF, timeout=30)
    assert r.status_code == 400 and "start" in r.json()["error"]
    missing = requests.get(node.query + "/api/v2/traces/" + "ab" * 16, headers=PROTOBUF, timeout=30)
    assert missing.status_code == 404


def test_tempo_json_answers_parse_strictly(node):
    ids = send_traces(node)
    since = {"start": str(int(time.time()) - 3600), "end": str(int(time.time()) + 60)}
    answers = [
        ("/api/search", {"q": '{ span.tenant_id = "acme" } | select(span.gen_ai.request.model)', "limit": "20"}, "SearchResponse"),
        ("/api/search", {"tags": "tenant_id=acme"}, "SearchResponse"),
        ("/api/search/tags", {}, "SearchTagsResponse"),
        ("/api/v2/search/tags", {"scope": "span"}, "SearchTagsV2Response"),
        ("/api/search/tag/tenant_id/values", {}, "SearchTagValuesResponse"),
        ("/api/v2/search/tag/span.tenant_id/values", {"q": "{ status = error }"}, "SearchTagValuesV2Response"),
        ("/api/metrics/query_range", dict(since, q="{ } | rate() by (span.gen_ai.request.model)", step="60s"), "QueryRangeResponse"),
        ("/api/metrics/query", dict(since, q="{ } | quantile_over_time(duration, .5, .95)"), "QueryInstantResponse"),
    ]
    for path, params, message in answers:
        r = node.get(path, **params)
        assert r.status_code == 200, (path, r.text)
        parsed = tempo.parse_json(r.text, message)
        assert "spans=" in r.headers["x-weft-scan"], path
        if message == "SearchResponse":
            assert {t.traceID.rjust(32, "0") for t in parsed.traces} == {ids[0], ids[2], ids[4]}
            assert all(t.spanSets[0].matched >= 1 and t.serviceStats["support-bot"].spanCount == 3 for t in parsed.traces)
            if "select" in params.get("q", ""):  # compared and selected attributes on each matching span
                shown = [{kv.key: kv.value.string_value for kv in span.attributes} for t in parsed.traces for span in t.spanSets[0].spans]
                assert shown and all(a.get("tenant_id") == "acme" for a in shown)
                assert {a.get("gen_ai.request.model") for a in shown} == {"gpt-4o", None}
        if message == "SearchTagValuesV2Response":
            assert [(v.type, v.value) for v in parsed.tagValues] == [("string", "acme")]
        if message == "QueryRangeResponse":
            models = {s.labels[0].value.string_value for s in parsed.series} - {""}  # "": spans without a model
            assert models == {"gpt-4o", "claude"} and parsed.metrics.inspectedSpans >= 18
        if message == "QueryInstantResponse":
            assert len(parsed.series) == 2  # one per quantile
    # The strict parse does reject what Tempo does not define (Weft's own endpoint keeps its extras).
    with pytest.raises(json_format.ParseError):
        tempo.parse_json(node.get("/api/weft/aggregate", q="{ }", by="span.tenant_id", select="count").text.replace('"columns"', '"series"'), "QueryRangeResponse")
    assert "elapsedMs" in node.get("/api/weft/aggregate", q="{ }", by="span.tenant_id", select="count").json()["metrics"]


def test_buildinfo_passes_grafana_feature_gates(node):
    info = node.get("/api/status/buildinfo").json()
    version = tuple(int(x) for x in info["version"].split("."))
    assert version >= (2, 7, 0)  # streaming search needs 2.2.0, streaming metrics 2.7.0
    assert {"revision", "branch", "buildDate", "goVersion"} <= set(info) and info["weftVersion"]


def stream(node, method, request, response, metadata=None):
    with grpc.insecure_channel(query_address(node)) as channel:
        call = channel.unary_stream(
            "/tempopb.StreamingQuerier/" + method,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=lambda b: tempo.parse_binary(b, response),
        )
        return list(call(request, timeout=30, metadata=metadata))


def test_streaming_search_over_grpc(node):
    ids = send_traces(node)
    flush(node)
    late = send_traces(node, n=2)  # in the head, after the block
    now = int(time.time())
    request = tempo.classes["SearchRequest"](Query='{ span.gen_ai.request.model = "gpt-4o" }', Limit=20, start=now - 3600, end=now + 60)
    messages = stream(node, "Search", request, "SearchResponse")
    assert len(messages) >= 2
    *intermediate, final = messages
    assert all(m.metrics.completedJobs < m.metrics.totalJobs for m in intermediate)
    assert final.metrics.completedJobs == final.metrics.totalJobs and final.metrics.inspectedSpans > 0
    # The head first (the trace sent late), then the block's; each trace once, as Grafana merges them.
    first = {t.traceID.rjust(32, "0") for t in messages[0].traces}
    assert first == {late[0]}
    found = [t.traceID.rjust(32, "0") for m in messages for t in m.traces]
    assert sorted(found) == sorted([ids[0], ids[2], ids[4], late[0]])
    assert all(t.spanSets[0].spans[0].name == "chat gpt-4o" for m in messages for t in m.traces)
    assert all(t.spanSets[0].spans[0].attributes[0].value.string_value == "gpt-4o" for m in messages for t in m.traces)
    # The tenant's header travels as gRPC metadata: another org sees nothing.
    other = stream(node, "Search", request, "SearchResponse", metadata=[("x-scope-orgid", "elsewhere")])
    assert len(other) >= 2 and not any(m.traces for m in other)


def test_streaming_metrics_over_grpc(node):
    send_traces(node)
    flush(node)
    send_traces(node, n=2)
    now_ns = time.time_ns()
    query = "{ } | count_over_time() by (span.gen_ai.request.model)"
    ranged = tempo.classes["QueryRangeRequest"](query=query, start=now_ns - 3_600_000_000_000, end=now_ns + 60_000_000_000, step=60_000_000_000)
    messages = stream(node, "MetricsQueryRange", ranged, "QueryRangeResponse")
    assert len(messages) >= 2
    def counts(m):
        return {s.labels[0].value.string_value: sum(p.value for p in s.samples) for s in m.series if s.labels[0].value.string_value}
    # Each message is the whole result so far: the head's, then with the block.
    assert counts(messages[0]) == {"gpt-4o": 1, "claude": 1}
    assert counts(messages[-1]) == {"gpt-4o": 4, "claude": 4}
    assert messages[-1].metrics.completedJobs == messages[-1].metrics.totalJobs
    http = tempo.parse_json(node.get("/api/metrics/query_range", q=query, start=str(ranged.start), end=str(ranged.end), step="60s").text, "QueryRangeResponse")
    assert list(http.series) == list(messages[-1].series)

    instant = tempo.classes["QueryInstantRequest"](query=query, start=ranged.start, end=ranged.end)
    answers = stream(node, "MetricsQueryInstant", instant, "QueryInstantResponse")
    assert len(answers) >= 2
    assert {s.labels[0].value.string_value: s.value for s in answers[-1].series if s.labels[0].value.string_value} == {"gpt-4o": 4, "claude": 4}


def test_streaming_errors_have_grpc_status(node):
    bad = tempo.classes["SearchRequest"](Query="{ span.x = ")
    with pytest.raises(grpc.RpcError) as err:
        stream(node, "Search", bad, "SearchResponse")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "expected a value" in err.value.details()
    not_metrics = tempo.classes["QueryRangeRequest"](query="{ }")
    with pytest.raises(grpc.RpcError) as err:
        stream(node, "MetricsQueryRange", not_metrics, "QueryRangeResponse")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "metrics stage" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stream(node, "SearchTagsV3", bad, "SearchResponse")
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # What the query builder can write but Weft does not evaluate is refused by name, on HTTP too.
    for q, named in [("{ } | by(resource.service.name)", "'| by(…)' is not supported"), ("{ } >> { }", "spanset operators"),
                     ("{ } | count() > 2", "'| count(…)' is not supported"), ('{ event:name = "x" }', "unsupported intrinsic 'event:name'")]:
        r = node.get("/api/search", q=q)
        assert r.status_code == 400 and named in r.json()["error"], (q, r.text)


def test_a_limit_hit_while_streaming_ends_with_its_status(data_dir):
    """The status comes in the trailers after the response headers went out: RESOURCE_EXHAUSTED."""
    with open(os.path.join(data_dir, "config.json"), "w") as f:
        json.dump({"queryMaxSeries": 1}, f)
    node = Node(data_dir)
    node.extra = ["--config", os.path.join(data_dir, "config.json")]
    node.start()
    try:
        send_traces(node)
        now_ns = time.time_ns()
        request = tempo.classes["QueryRangeRequest"](
            query="{ } | count_over_time() by (span.gen_ai.request.model)", start=now_ns - 3_600_000_000_000, end=now_ns + 60_000_000_000
        )
        with pytest.raises(grpc.RpcError) as err:
            stream(node, "MetricsQueryRange", request, "QueryRangeResponse")
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "more than 1 series" in err.value.details()
    finally:
        node.kill()


def test_provisioned_dashboard_queries_answer(node):
    """Every query of ops/grafana's LLM dashboard runs on Weft and decodes strictly, with data."""
    path = os.path.join(os.path.dirname(__file__), "..", "..", "ops", "grafana", "dashboards", "llm-traffic.json")
    with open(path) as f:
        dashboard = json.load(f)
    send_traces(node)
    now = int(time.time())
    window = {"start": str(now - 3600), "end": str(now + 60)}
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "weft" and target["queryType"] == "traceql"
            if "metricsQueryType" in target:
                r = node.get("/api/metrics/query_range", q=target["query"], step="60s", **window)
                assert r.status_code == 200, (panel["title"], r.text)
                series = tempo.parse_json(r.text, "QueryRangeResponse").series
                assert any(s.labels[0].value.string_value in ("gpt-4o", "claude", "acme", "globex") for s in series), panel["title"]
            else:
                r = node.get("/api/search", q=target["query"], limit=str(target["limit"]), **window)
                assert r.status_code == 200, (panel["title"], r.text)
                assert len(tempo.parse_json(r.text, "SearchResponse").traces) == 1, panel["title"]
