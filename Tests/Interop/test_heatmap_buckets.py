"""`histogram_over_time(duration)` through `/api/metrics/query_range` of one `weft serve`: spans whose
durations sit at, just below and just above powers of two and whose starts sit on and just before
minute edges count in Tempo's buckets (an exact power of two in its own bucket, 2^19 ns in 2^19), the
same whether they are read from the head, from blocks or from both at once."""

import tempfile
import time

import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from test_node import Node

MINUTE = 60_000_000_000
EXPONENTS = [0, 1, 2, 10, 19, 20, 30, 33]


def spans(base, first_minute):
    """(start, duration) pairs over six minutes from `first_minute`: each power of two, one less and
    one more, starting on a minute edge, 1 ns before it and mid-minute."""
    out = []
    for m in range(first_minute, first_minute + 6):
        edge = base + m * MINUTE
        for k in EXPONENTS:
            p = 1 << k
            for d in (p - 1, p, p + 1):
                for start in (edge, edge - 1, edge + MINUTE // 2 + k):
                    out.append((start, d))
    return out


def send(node, pairs, service):
    p = TracerProvider(resource=Resource.create({"service.name": service}))
    p.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=node.otlp + "/v1/traces", timeout=30)))
    tracer = p.get_tracer("weft.tests")
    for start, d in pairs:
        span = tracer.start_span("op", start_time=start)
        span.end(end_time=start + d)
    p.force_flush()
    p.shutdown()


def expected(pairs, start, end):
    """Tempo's reference: per minute step from `start`, the least power of two at or above the
    duration, in seconds (0 for 0)."""
    cells = {}
    for s, d in pairs:
        if s < start or s > end:
            continue
        upper = 0 if d == 0 else 1 << (d - 1).bit_length()
        step = (s - start) // MINUTE
        key = ((start + step * MINUTE) // 1_000_000, upper / 1e9)
        cells[key] = cells.get(key, 0) + 1
    return cells


def heatmap(node, start, end):
    r = node.get("/api/metrics/query_range", q="{ } | histogram_over_time(duration)", start=str(start), end=str(end), step="60s")
    assert r.status_code == 200, r.text
    cells = {}
    for series in r.json()["series"]:
        upper = next(l["value"]["doubleValue"] for l in series["labels"] if l["key"] == "__bucket")
        for sample in series["samples"]:
            if sample["value"]:
                key = (int(sample["timestampMs"]), float(upper))
                cells[key] = cells.get(key, 0) + sample["value"]
    return cells


def test_power_of_two_durations_count_in_one_bucket_from_head_blocks_and_both():
    with tempfile.TemporaryDirectory(prefix="weft-test-") as d:
        node = Node(d).start()
        try:
            # Minute edges a few minutes ago (retention keeps them; no span starts in the future).
            base = (time.time_ns() // MINUTE - 20) * MINUTE
            older, newer = spans(base, 0), spans(base, 6)
            start, end = base - MINUTE, base + 13 * MINUTE
            want_all = expected(older + newer, start, end)
            assert (((base + 7 * MINUTE) // 1_000_000, (1 << 19) / 1e9)) in want_all

            # Older spans to blocks, newer ones in the head: one answer over both.
            send(node, older, "edges-old")
            assert requests.post(node.otlp + "/flush", timeout=30).status_code == 200
            assert "weft_head_spans 0" in node.get("/metrics").text
            assert heatmap(node, start, end) == expected(older, start, end)
            send(node, newer, "edges-new")
            mixed = heatmap(node, start, end)
            assert mixed == want_all

            # Minute 6 (head only): 2^19 - 1 and 2^19 ns, started on its edge, mid-minute and 1 ns
            # before minute 7, count in the 2^19 bucket.
            minute6 = (base + 6 * MINUTE) // 1_000_000
            assert mixed[(minute6, (1 << 19) / 1e9)] == 6
            assert mixed[(minute6, (1 << 20) / 1e9)] == 9  # 2^19 + 1, 2^20 - 1 and 2^20
            # Minute 5 holds block spans and the head spans started 1 ns before minute 6.
            minute5 = (base + 5 * MINUTE) // 1_000_000
            assert mixed[(minute5, (1 << 19) / 1e9)] == 6

            # Everything in blocks: the same cells.
            assert requests.post(node.otlp + "/flush", timeout=30).status_code == 200
            assert heatmap(node, start, end) == want_all
        finally:
            if node.proc.poll() is None:
                node.kill()
