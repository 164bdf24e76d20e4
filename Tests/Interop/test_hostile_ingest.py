"""Hostile writes against a real `weft serve`: org IDs that must not collide, spans over the limits,
gzip without its trailer, spans past retention; and the node must restart after each."""

import gzip
import json
import os
import tempfile
import time

import pytest
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from test_node import Node

PROTO = {"Content-Type": "application/x-protobuf"}


@pytest.fixture()
def data_dir():
    with tempfile.TemporaryDirectory(prefix="weft-hostile-") as d:
        yield d


def request_with(spans):
    """An export request; `spans` is a list of (trace_id hex, span_id hex, name, attributes dict)."""
    request = trace_service_pb2.ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    kv = rs.resource.attributes.add(key="service.name")
    kv.value.string_value = "hostile"
    out = rs.scope_spans.add().spans
    now = time.time_ns()
    for trace_id, span_id, name, attrs in spans:
        s = out.add(trace_id=bytes.fromhex(trace_id), span_id=bytes.fromhex(span_id), name=name,
                    start_time_unix_nano=now, end_time_unix_nano=now + 1000)
        for k, v in attrs.items():
            a = s.attributes.add(key=k)
            a.value.string_value = v
    return request


def post(node, request, headers=None, data=None):
    h = dict(PROTO)
    h.update(headers or {})
    return requests.post(node.otlp + "/v1/traces", data=data if data is not None else request.SerializeToString(), headers=h, timeout=30)


def export_response(r):
    response = trace_service_pb2.ExportTraceServiceResponse()
    response.ParseFromString(r.content)
    return response


def status_message(r):
    from google.rpc import status_pb2
    s = status_pb2.Status()
    s.ParseFromString(r.content)
    return s.message


def trace_found(node, trace_id, org=None):
    headers = {"X-Scope-OrgID": org} if org is not None else {}
    return requests.get(node.query + "/api/traces/" + trace_id, headers=headers, timeout=30).status_code == 200


def restart(node):
    node.kill()
    node.start()
    assert requests.get(node.query + "/ready", timeout=30).status_code == 200


def test_org_ids_never_collide_and_bad_ones_are_refused(data_dir):
    node = Node(data_dir).start()
    try:
        # Distinct valid orgs stay apart, byte for byte (case included).
        a, b = "5" * 32, "6" * 32
        assert post(node, request_with([(a, "1" * 16, "a", {})]), {"X-Scope-OrgID": "team-a"}).status_code == 200
        assert post(node, request_with([(b, "2" * 16, "b", {})]), {"X-Scope-OrgID": "team-A"}).status_code == 200
        assert trace_found(node, a, "team-a") and not trace_found(node, a, "team-A") and not trace_found(node, a)
        assert trace_found(node, b, "team-A") and not trace_found(node, b, "team-a")

        # Headers that used to collide (canonical equivalence, replacement of invalid UTF-8) or that
        # would not fit on disk are refused on writes and on reads, with a message naming the header.
        bad = [
            "café".encode("utf-8"), "cafe\u0301".encode("utf-8"), "\u212b".encode("utf-8"), "\u00c5".encode("utf-8"),
            b"x\xff", b"x\xc0", "caf\xe9".encode("latin-1"), b"a b", b"..", b"o" * 151, b"o" * 70_000,
        ]
        for org in bad:
            r = post(node, request_with([("7" * 32, "3" * 16, "x", {})]), {"X-Scope-OrgID": org})
            assert r.status_code == 400, (org[:20], r.status_code)
            assert "X-Scope-OrgID" in status_message(r)
            q = requests.get(node.query + "/api/search", headers={"X-Scope-OrgID": org}, timeout=30)
            assert q.status_code == 400 and "X-Scope-OrgID" in q.json()["error"]
        # The longest valid org works and reads back after a restart (no truncation on disk).
        longest = "o" * 150
        assert post(node, request_with([("8" * 32, "4" * 16, "long", {})]), {"X-Scope-OrgID": longest}).status_code == 200
        restart(node)
        assert trace_found(node, "8" * 32, longest)
        assert not trace_found(node, "8" * 32, "o" * 149)
        assert trace_found(node, a, "team-a") and not trace_found(node, a, "team-A")
    finally:
        node.kill()


def test_span_over_limits_is_refused_before_the_wal_and_restart_works(data_dir):
    node = Node(data_dir).start()
    try:
        good, big = "a1" * 16, "b2" * 16
        many = {"k%d" % i: "v" for i in range(100_000)}  # ~1.5 MB, the old WAL poison pill
        request = request_with([(big, "1" * 16, "huge", many), (good, "2" * 16, "fine", {"tenant_id": "t"})])
        r = post(node, request, {"X-Scope-OrgID": "brand-new-org"})
        assert r.status_code == 200
        response = export_response(r)
        assert response.partial_success.rejected_spans == 1
        assert "attributes (limit 1000)" in response.partial_success.error_message
        assert trace_found(node, good, "brand-new-org")
        assert not trace_found(node, big, "brand-new-org")

        long_value = request_with([("c3" * 16, "3" * 16, "long", {"prompt": "x" * ((128 << 10) + 1)})])
        response = export_response(post(node, long_value))
        assert response.partial_success.rejected_spans == 1
        assert "longer than 131072 bytes" in response.partial_success.error_message

        restart(node)
        assert trace_found(node, good, "brand-new-org")
        assert not trace_found(node, big, "brand-new-org")
        metrics = requests.get(node.query + "/metrics", timeout=30).text
        assert "weft_wal_quarantined_records_total 0" in metrics
    finally:
        node.kill()


def test_spans_per_request_limit_answers_400(data_dir):
    config = os.path.join(data_dir, "weft.json")
    with open(config, "w") as f:
        json.dump({"maxSpansPerRequest": 10, "otlpGrpcPort": None}, f)
    node = Node(os.path.join(data_dir, "d"))
    node.extra = ["--config", config]
    node.start()
    try:
        ten = request_with([("d4" * 16, "%016x" % (i + 1), "s", {}) for i in range(10)])
        assert post(node, ten).status_code == 200
        eleven = request_with([("e5" * 16, "%016x" % (i + 1), "s", {}) for i in range(11)])
        r = post(node, eleven)
        assert r.status_code == 400
        assert "maxSpansPerRequest" in status_message(r)
        assert not trace_found(node, "e5" * 16)
    finally:
        node.kill()


def test_gzip_must_carry_its_trailer(data_dir):
    node = Node(data_dir).start()
    try:
        body = request_with([("f6" * 16, "1" * 16, "gz", {})]).SerializeToString()
        whole = gzip.compress(body)
        headers = {"Content-Encoding": "gzip"}
        for broken, why in [(whole[:-8], "no trailer"), (whole[:-4] + b"\0\0\0\0", "wrong size"),
                            (whole[:-8] + b"\0\0\0\0" + whole[-4:], "wrong CRC")]:
            r = post(node, None, headers, data=broken)
            assert r.status_code == 400, why
            assert "gzip" in status_message(r), why
        assert not trace_found(node, "f6" * 16)
        assert post(node, None, headers, data=whole).status_code == 200
        assert trace_found(node, "f6" * 16)
    finally:
        node.kill()


def test_spans_past_retention_are_refused_with_a_reason(data_dir):
    node = Node(data_dir).start()
    try:
        request = request_with([("a7" * 16, "1" * 16, "old", {}), ("b8" * 16, "2" * 16, "new", {})])
        old = request.resource_spans[0].scope_spans[0].spans[0]
        old.start_time_unix_nano = time.time_ns() - 15 * 86_400 * 10**9
        old.end_time_unix_nano = old.start_time_unix_nano + 1000
        response = export_response(post(node, request))
        assert response.partial_success.rejected_spans == 1
        assert "retention" in response.partial_success.error_message
        assert not trace_found(node, "a7" * 16)
        assert trace_found(node, "b8" * 16)
        metrics = requests.get(node.query + "/metrics", timeout=30).text
        assert 'weft_otlp_spans_rejected_total{reason="over_limit"} 1' in metrics
    finally:
        node.kill()
