"""HTTP/1.1 against hostile clients, on a real `weft serve` with one-second timeouts: slow uploads that
declare 64 MiB each are held to the node's body budget, clients that never read a large answer are cut
off by the write timeout, and the node's resident memory stays bounded throughout. Reuses `Node` from
test_node.py; WEFT_BIN picks the binary.
"""

import json
import os
import re
import select
import socket
import struct
import time

import pytest
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from test_node import Node, data_dir  # noqa: F401  (fixture)

MiB = 1 << 20


@pytest.fixture()
def hostile_node(data_dir):  # noqa: F811
    config = os.path.join(data_dir, "weft.json")
    with open(config, "w") as f:
        json.dump({
            "httpIdleTimeoutSeconds": 1,
            "httpRequestReadTimeoutSeconds": 1,
            "httpWriteTimeoutSeconds": 1,
            "maxInFlightBodyBytes": 128 * MiB,  # two maximal (64 MiB) bodies at once
            "queryMaxConcurrentPerOrg": 2,
        }, f)
    n = Node(os.path.join(data_dir, "data"))
    n.extra = ["--config", config]
    n.start()
    yield n
    if n.proc.poll() is None:
        n.kill()


def hostport(url):
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    return host, int(port)


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def read_until_closed(sock, limit=1 << 20):
    """Reads until the peer closes (or resets), at most `limit` bytes; the socket's timeout bounds each wait."""
    data = b""
    try:
        while len(data) < limit:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    return data


def timeouts(node, kind):
    text = requests.get(node.query + "/metrics", timeout=30).text
    m = re.search(r'^weft_http_timeouts_total\{kind="%s"\} (\d+)' % kind, text, re.M)
    return int(m.group(1)) if m else 0


def wait_until(condition, limit):
    """Polls `condition` until it holds; False if it still does not after `limit` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_twenty_slow_64mib_uploads_are_held_to_the_budget(hostile_node):
    """20 uploads each declaring 64 MiB: two fit the 128 MiB budget, the other 18 are answered 503 with
    Retry-After (an OTLP status) at once and closed. The two send 8 MiB and stall: the node holds about
    their bytes (buffers grow as bytes arrive, not sized from the declared length), and the read timeout
    ends them with 408."""
    node = hostile_node
    host, port = hostport(node.otlp)
    assert requests.get(node.query + "/ready", timeout=30).status_code == 200
    baseline = rss_mib(node.proc.pid)
    head = (b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: %d\r\n\r\n" % (64 * MiB))
    sockets = [socket.create_connection((host, port), timeout=10) for _ in range(20)]
    for s in sockets:
        s.sendall(head)

    # The refused ones are answered at once; wait (bounded) until 18 have an answer to read.
    answered = {}
    deadline = time.monotonic() + 10
    while len(answered) < 18 and time.monotonic() < deadline:
        waiting = [s for s in sockets if s not in answered]
        readable, _, _ = select.select(waiting, [], [], 0.5)
        for s in readable:
            answered[s] = read_until_closed(s)
    assert len(answered) == 18, "%d uploads refused" % len(answered)
    for reply in answered.values():
        text = reply.decode("latin-1").lower()
        assert text.startswith("http/1.1 503 service unavailable\r\n"), text[:200]
        assert "retry-after: 1\r\n" in text and "content-type: application/x-protobuf\r\n" in text

    held = [s for s in sockets if s not in answered]
    piece = b"\x0a" * MiB
    for _ in range(8):  # 8 MiB of each body, a MiB at a time: they keep progressing
        for s in held:
            s.sendall(piece)
    grown = rss_mib(node.proc.pid) - baseline
    assert grown < 64, "the node holds %d MiB more for two uploads of 8 MiB so far" % grown

    # Now they stall: 408 after the one-second read timeout, then the connection closes.
    for s in held:
        assert read_until_closed(s).startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    for s in sockets:
        s.close()
    assert timeouts(node, "read") == 2
    assert requests.get(node.query + "/ready", timeout=30).status_code == 200


def big_trace_request(trace_id, spans, attribute_bytes):
    """One trace of `spans` spans, each with a string attribute of `attribute_bytes` bytes."""
    now = time.time_ns()
    blob = "x" * attribute_bytes
    resource_spans = trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=[
        trace_pb2.Span(
            trace_id=trace_id, span_id=(i + 1).to_bytes(8, "big"), name="big",
            start_time_unix_nano=now, end_time_unix_nano=now + 1000,
            attributes=[common_pb2.KeyValue(key="blob", value=common_pb2.AnyValue(string_value=blob))],
        ) for i in range(spans)
    ])])
    resource_spans.resource.attributes.append(
        common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value="big-svc")))
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[resource_spans]).SerializeToString()


def test_clients_that_never_read_a_large_answer_are_cut_off(hostile_node):
    """Two rounds of 10 clients asking for a ~6 MB trace (more than loopback socket buffers take) and reading nothing: the node writes only
    what the sockets take, closes each connection after the one-second write timeout and frees the
    answer, so memory does not grow round after round."""
    node = hostile_node
    host, port = hostport(node.query)
    trace_id = bytes.fromhex("0123456789abcdef0123456789abcdef")
    r = requests.post(node.otlp + "/v1/traces", data=big_trace_request(trace_id, 1500, 4000),
                      headers={"Content-Type": "application/x-protobuf"}, timeout=60)
    assert r.status_code == 200, r.text
    full = requests.get(node.query + "/api/traces/" + trace_id.hex(), timeout=60)
    assert full.status_code == 200 and len(full.content) > 6_000_000
    request = b"GET /api/traces/%s HTTP/1.1\r\nHost: x\r\n\r\n" % trace_id.hex().encode()

    after = []
    for round in range(2):
        before = timeouts(node, "write")
        clients = []
        for _ in range(10):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)
            s.settimeout(10)
            s.connect((host, port))
            s.sendall(request)
            clients.append(s)
        assert wait_until(lambda: timeouts(node, "write") >= before + 10, 60), \
            "round %d: only %d of 10 non-reading clients were cut off" % (round, timeouts(node, "write") - before)
        for s in clients:
            # What was in flight, then the end: never the whole answer.
            assert len(read_until_closed(s, limit=2 * len(full.content))) < len(full.content)
            s.close()
        after.append(rss_mib(node.proc.pid))
    assert after[1] - after[0] < 40, "resident memory grew from %d to %d MiB between the rounds" % (after[0], after[1])
    assert requests.get(node.query + "/ready", timeout=30).status_code == 200


def test_h2c_clients_that_open_their_windows_and_never_read_are_cut_off(hostile_node):
    """h2c peers that open their flow-control windows as wide as HTTP/2 allows, ask for a large answer and
    read nothing: the node produces frames only while the socket takes them and closes each connection
    after the write timeout."""
    from test_http2 import PREFACE, frame, hpack_literal

    node = hostile_node
    host, port = hostport(node.query)
    trace_id = bytes.fromhex("00112233445566778899aabbccddeeff")
    r = requests.post(node.otlp + "/v1/traces", data=big_trace_request(trace_id, 1500, 4000),
                      headers={"Content-Type": "application/x-protobuf"}, timeout=60)
    assert r.status_code == 200, r.text
    size = len(requests.get(node.query + "/api/traces/" + trace_id.hex(), timeout=60).content)
    widest = (1 << 31) - 1
    settings = frame(4, 0, 0, struct.pack(">HI", 4, widest))  # SETTINGS_INITIAL_WINDOW_SIZE
    window = frame(8, 0, 0, struct.pack(">I", widest - 65535))  # WINDOW_UPDATE on the connection
    headers = frame(1, 0x5, 1, b"\x82\x86" + hpack_literal(b":path", b"/api/traces/" + trace_id.hex().encode())
                    + hpack_literal(b":authority", b"x"))  # GET, http; END_STREAM | END_HEADERS

    before = timeouts(node, "write")
    clients = []
    for _ in range(5):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)
        s.settimeout(10)
        s.connect((host, port))
        s.sendall(PREFACE + settings + window + headers)
        clients.append(s)
    assert wait_until(lambda: timeouts(node, "write") >= before + 5, 60), \
        "only %d of 5 non-reading h2c clients were cut off" % (timeouts(node, "write") - before)
    for s in clients:
        assert len(read_until_closed(s, limit=2 * size)) < size
        s.close()
    assert requests.get(node.query + "/ready", timeout=30).status_code == 200


def test_oversize_headers_and_unknown_endpoints_get_their_status_and_a_message(hostile_node):
    # Header fields past 80 KiB: 431 with a message (not a bare 400), on both ports.
    for url in (hostile_node.otlp, hostile_node.query):
        with socket.create_connection(hostport(url), timeout=10) as s:
            s.sendall(b"GET /api/echo HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (90 * 1024) + b"\r\n\r\n")
            s.shutdown(socket.SHUT_WR)
            answer = read_until_closed(s)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
        assert b"request header fields exceed 80 KiB" in answer, answer[:400]
    # A malformed request line: 400 with a message.
    with socket.create_connection(hostport(hostile_node.query), timeout=10) as s:
        s.sendall(b"GET /a b c\r\n\r\n")
        answer = read_until_closed(s)
    assert answer.startswith(b"HTTP/1.1 400") and b"malformed HTTP/1.1 request" in answer, answer[:400]
    # Another method on no endpoint is 404, as with GET; on an endpoint 405 naming the methods.
    for url in (hostile_node.otlp + "/v1/logs", hostile_node.otlp + "/v1/metrics", hostile_node.query + "/nowhere"):
        r = requests.post(url, data=b"x", headers={"Content-Type": "application/x-protobuf"}, timeout=10)
        assert r.status_code == 404, (url, r.status_code, r.text)
        assert "no such endpoint" in r.json()["error"]
    r = requests.post(hostile_node.query + "/api/search", data=b"", timeout=10)
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD", (r.status_code, r.headers, r.text)
    # The node still answers.
    assert requests.get(hostile_node.query + "/ready", timeout=10).status_code == 200
