"""Whole traces and idempotent writes through the HTTP API of one `weft serve` process.

A trace's spans arrive from three services in separate requests, each sent twice, while WAL segments
roll and idle traces are cut to blocks: trace-level answers equal those over the head, and each
span is counted once.
"""

import json
import os
import subprocess
import tempfile
import time

import requests

from test_node import WEFT, Node, data_dir, node  # noqa: F401 (fixtures)

WEFTCTL = os.path.join(os.path.dirname(WEFT), "weftctl")
SERVICES = ["checkout", "gateway", "provider"]
TRACES = 20


def request_of(level, now):
    """All traces' spans of one service: checkout (root) -> gateway -> provider."""
    spans = []
    for t in range(1, TRACES + 1):
        start = now + t * 1_000_000 + level * 1_000
        span = {
            "traceId": "%032x" % (0x5EED0000 + t),
            "spanId": "%016x" % (t * 16 + level + 1),
            "name": SERVICES[level] + "-op",
            "kind": 3 if level == 1 else 2,
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + t * 100_000 // (level + 1)),
            "status": {"code": 2 if t % 5 == 0 and level == 1 else 0},
        }
        if level > 0:
            span["parentSpanId"] = "%016x" % (t * 16 + level)
        spans.append(span)
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": SERVICES[level]}}]},
        "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}],
    }]}


def post(node, body):
    r = requests.post(node.otlp + "/v1/traces", data=json.dumps(body), headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 200, r.text


def answers(node):
    deps = node.get("/api/dependencies").json()["data"]
    by_root = node.get("/api/metrics/query", q="{ traceDuration > 500us } | count_over_time() by (rootServiceName)", since="1h").json()
    total = node.get("/api/metrics/query", q="{ } | count_over_time()", since="1h").json()
    found = node.get("/api/search", q='{ rootServiceName = "checkout" && traceDuration > 1ms }', limit="100", start=str(int(time.time()) - 3600), end=str(int(time.time()) + 60)).json()
    return {
        "edges": sorted((d["parent"], d["child"], d["callCount"], d["errorCount"]) for d in deps),
        "byRoot": {s["labels"][0]["value"]["stringValue"]: s["value"] for s in by_root["series"]},
        "total": total["series"][0]["value"],
        "search": sorted((t["traceID"], t["rootServiceName"], t["durationMs"]) for t in found["traces"]),
    }


def head_spans(node):
    for line in node.get("/metrics").text.splitlines():
        if line.startswith("weft_head_spans "):
            return float(line.split()[1])
    raise AssertionError("no weft_head_spans metric")


def wait_until(condition, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_traces_sent_in_parts_across_segment_rolls_and_cuts_answer_as_if_whole():
    with tempfile.TemporaryDirectory(prefix="weft-test-") as d:
        config = os.path.join(d, "config.json")
        with open(config, "w") as f:
            json.dump({"walSegmentBytes": 4096, "blockMaxAgeSeconds": 0.2, "maintenanceIntervalSeconds": 0.05,
                       "traceIdleSeconds": 4, "traceMaxAgeSeconds": 60}, f)
        node = Node(d)
        node.extra = ["--config", config]
        node.start()
        try:
            now = time.time_ns()
            # An unrelated trace first: it goes idle and is cut while the others are still arriving.
            lone = request_of(0, now)
            lone["resourceSpans"][0]["scopeSpans"][0]["spans"] = [dict(lone["resourceSpans"][0]["scopeSpans"][0]["spans"][0], traceId="%032x" % 7)]
            post(node, lone)
            assert wait_until(lambda: head_spans(node) == 0, 30), "an idle trace is cut to a block"
            for level in range(3):
                body = request_of(level, now)
                post(node, body)
                post(node, body)  # a client retry: stored once
                time.sleep(0.5)  # services export seconds apart (well within traceIdleSeconds)
            whole = answers(node)
            assert head_spans(node) == 3 * TRACES, "the split traces wait in the head"
            assert whole["edges"] == [("checkout", "gateway", TRACES, TRACES // 5), ("gateway", "provider", TRACES, 0)]
            assert whole["total"] == 3 * TRACES + 1
            assert whole["byRoot"]["checkout"] > 0 and whole["search"]
            assert wait_until(lambda: head_spans(node) == 0, 60), "idle traces are cut to blocks"
            assert answers(node) == whole
            # WAL segments whose rows are all in blocks are gone.
            assert len([n for n in os.listdir(os.path.join(d, "wal")) if n.endswith(".wal")]) <= 2
            # After a restart (blocks only) the answers hold.
            node.kill()
            node.start()
            assert answers(node) == whole
        finally:
            if node.proc.poll() is None:
                node.kill()


def test_two_load_runs_with_the_same_seed_store_each_span_once(node):
    window = {"start": str(int(time.time()) - 86_400), "end": str(int(time.time()) + 3_600)}
    count = lambda: node.get("/api/metrics/query", q="{ } | count_over_time()", **window).json()["series"][0]["value"]
    sent, counted = [], []
    for _ in range(2):
        out = subprocess.run(
            [WEFTCTL, "load", "--url", node.otlp + "/v1/traces", "--spans", "3000", "--batch-size", "250",
             "--concurrency", "2", "--seed", "11", "--quiet"],
            capture_output=True, text=True, timeout=120,
        )
        assert out.returncode == 0, out.stderr
        sent.append(int([l for l in out.stdout.splitlines() if l.startswith("spans acknowledged")][0].split()[2].replace(",", "")))
        counted.append(count())
    # The second run resends the first one's spans: every one is acknowledged, none is stored again.
    assert sent[0] == sent[1] and sent[0] >= 3000
    assert head_spans(node) == sent[0]
    assert counted[1] == counted[0] == sent[0]
    assert requests.post(node.otlp + "/flush", timeout=30).status_code == 200
    assert head_spans(node) == 0
    assert count() == counted[0]
