"""h2c (HTTP/2 with prior knowledge) on the same ports as HTTP/1.1, against real peers from Debian's
nghttp2-client and curl. Reuses `Node` (and its fixtures) from test_node.py; WEFT_BIN picks the binary.
"""

import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time

import pytest
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from test_node import Node, data_dir, node  # noqa: F401  (fixtures)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def need(tool):
    if shutil.which(tool) is None:
        pytest.skip("%s is not installed (Debian package: %s)" % (tool, "curl" if tool == "curl" else "nghttp2-client"))


def hostport(url):
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    return host, int(port)


def otlp_request(trace_id, tenant):
    span = trace_pb2.Span(
        trace_id=trace_id,
        span_id=bytes.fromhex("00000000000000a1"),
        name="h2c export",
        kind=trace_pb2.Span.SPAN_KIND_SERVER,
        start_time_unix_nano=time.time_ns(),  # spans older than the retention are refused
        end_time_unix_nano=time.time_ns() + 250_000_000,
        attributes=[common_pb2.KeyValue(key="tenant_id", value=common_pb2.AnyValue(string_value=tenant))],
    )
    resource_spans = trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=[span])])
    resource_spans.resource.attributes.append(
        common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value="h2c-svc"))
    )
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[resource_spans]).SerializeToString()


def curl_h2(*args):
    out = subprocess.run(
        ["curl", "-sS", "--http2-prior-knowledge", "--max-time", "30", "-w", "\n%{http_code} %{http_version}", *args],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    body, _, status = out.stdout.rpartition("\n")
    code, version = status.split()
    return int(code), version, body


def test_curl_h2c_otlp_export_then_search(node):
    need("curl")
    trace_id = os.urandom(16)
    with tempfile.NamedTemporaryFile(suffix=".pb") as f:
        f.write(otlp_request(trace_id, "h2tenant"))
        f.flush()
        code, version, _ = curl_h2(
            "-X", "POST", "-H", "Content-Type: application/x-protobuf", "--data-binary", "@" + f.name, node.otlp + "/v1/traces"
        )
    assert (code, version) == (200, "2")

    code, version, body = curl_h2("-G", "--data-urlencode", "tags=tenant_id=h2tenant", node.query + "/api/search")
    assert (code, version) == (200, "2")
    traces = json.loads(body)["traces"]
    assert [t["traceID"] for t in traces] == [trace_id.hex().lstrip("0")]
    assert traces[0]["rootServiceName"] == "h2c-svc"
    # The same answer over HTTP/1.1 on the same port.
    assert node.get("/api/search", tags="tenant_id=h2tenant").json()["traces"] == traces


def test_nghttp_get_echo(node):
    need("nghttp")
    out = subprocess.run(["nghttp", "-v", node.query + "/api/echo"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert ":status: 200" in out.stdout
    assert out.stdout.rstrip().endswith("(last_stream_id=0, error_code=NO_ERROR(0x00), opaque_data(0)=[])")
    assert "\necho" in out.stdout


def test_nghttp_otlp_export_then_search(node):
    """nghttp (nghttp2's own client) posts OTLP protobuf to /v1/traces and finds the trace via /api/search."""
    need("nghttp")
    trace_id = os.urandom(16)
    with tempfile.NamedTemporaryFile(suffix=".pb") as f:
        f.write(otlp_request(trace_id, "nghttp-tenant"))
        f.flush()
        out = subprocess.run(
            ["nghttp", "-v", "-d", f.name, "-H", "content-type: application/x-protobuf", node.otlp + "/v1/traces"],
            capture_output=True, text=True, timeout=60,
        )
    assert out.returncode == 0, out.stdout + out.stderr
    assert ":status: 200" in out.stdout, out.stdout
    out = subprocess.run(
        ["nghttp", node.query + "/api/search?tags=tenant_id%3Dnghttp-tenant"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    traces = json.loads(out.stdout)["traces"]
    assert [t["traceID"] for t in traces] == [trace_id.hex().lstrip("0")]
    assert traces[0]["rootServiceName"] == "h2c-svc"


def test_h2load_burst_has_no_failures(node):
    need("h2load")
    out = subprocess.run(
        ["h2load", "-n", "2000", "-c", "2", "-m", "8", node.query + "/api/echo"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2000 succeeded, 0 failed, 0 errored, 0 timeout" in out.stdout, out.stdout
    assert "status codes: 2000 2xx" in out.stdout, out.stdout


def read_until_closed(sock, limit=1 << 20):
    """Everything the server sends until it closes the connection (the socket timeout fails the test)."""
    data = b""
    while len(data) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    raise AssertionError("the server kept the connection open")


def frame_types(data):
    types = []
    while len(data) >= 9:
        length = int.from_bytes(data[0:3], "big")
        types.append(data[3])
        data = data[9 + length:]
    return types


def frame_headers(data):
    """(type, flags) of each complete frame in `data`."""
    out = []
    while len(data) >= 9 and len(data) >= 9 + int.from_bytes(data[0:3], "big"):
        out.append((data[3], data[4]))
        data = data[9 + int.from_bytes(data[0:3], "big"):]
    return out


def test_bad_preface_and_malformed_frame_close_only_that_connection(node):
    host, port = hostport(node.query)
    # A client that keeps a healthy HTTP/1.1 connection open throughout.
    keep = requests.Session()
    assert keep.get(node.query + "/api/echo", timeout=30).text == "echo"

    # 1. A preface that goes wrong after the request line: neither HTTP/2 nor HTTP/1.x, closed at once.
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + os.urandom(64))
        assert read_until_closed(s) == b""

    # 2. Binary garbage (not the preface, so it goes to the HTTP/1.1 parser): 400 "Connection: close",
    # then the server closes the connection.
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(b"\x16\x03\x01\x02\x00" + os.urandom(200))
        assert read_until_closed(s).startswith(b"HTTP/1.1 400")

    # 3. A valid preface, then HEADERS on stream 0 (a connection error): GOAWAY(PROTOCOL_ERROR), then close.
    with socket.create_connection((host, port), timeout=30) as s:
        settings = struct.pack(">I", 0)[1:] + bytes([4, 0]) + struct.pack(">I", 0)
        headers0 = struct.pack(">I", 1)[1:] + bytes([1, 4]) + struct.pack(">I", 0) + b"\x82"
        s.sendall(PREFACE + settings + headers0)
        reply = read_until_closed(s)
        types = frame_types(reply)
        assert 7 in types, types  # GOAWAY
        offset = 0
        while offset + 9 <= len(reply):
            length = int.from_bytes(reply[offset:offset + 3], "big")
            if reply[offset + 3] == 7:
                error_code = struct.unpack(">I", reply[offset + 9 + 4:offset + 9 + 8])[0]
                assert error_code == 1  # PROTOCOL_ERROR
            offset += 9 + length

    # 4. A frame longer than the default max frame size: FRAME_SIZE_ERROR, then close.
    with socket.create_connection((host, port), timeout=30) as s:
        huge = struct.pack(">I", 1 << 20)[1:] + bytes([0, 0]) + struct.pack(">I", 1) + b"x" * 100
        s.sendall(PREFACE + huge)
        assert 7 in frame_types(read_until_closed(s))

    # The node still serves: the old keep-alive connection, new HTTP/1.1 and new h2c connections.
    assert keep.get(node.query + "/api/echo", timeout=30).text == "echo"
    assert node.get("/api/echo").text == "echo"
    if shutil.which("curl"):
        assert curl_h2(node.query + "/api/echo")[0:3:2] == (200, "echo")
    keep.close()


def hpack_int(value, prefix_bits, first_byte_flags=0):
    """HPACK integer (RFC 7541 §5.1)."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte_flags | value])
    out = [first_byte_flags | limit]
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def hpack_literal(name, value):
    """A literal header field without indexing, no Huffman."""
    return b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


def frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def server_ends(sock, frames):
    """Sends `frames`, then reads until the server closes; True once it has closed the connection (a close
    while our frames are still unread reaches us as a reset). False if every frame was sent and the
    server keeps the connection open (the socket timeout ends the wait)."""
    try:
        for f in frames:
            sock.sendall(f)
        read_until_closed(sock, limit=64 << 20)
        return True
    except (BrokenPipeError, ConnectionResetError):
        return True
    except socket.timeout:
        return False


def test_header_continuation_and_reset_floods_keep_memory_bounded(node):
    """Oversized header lists (431), a CONTINUATION flood and a rapid-reset flood, each on its own raw
    connection and repeated: the abusive connections are answered or closed with GOAWAY, a bystander
    connection keeps being served, and the node's resident memory stays within a fixed bound."""
    host, port = hostport(node.otlp)
    settings = frame(4, 0, 0, b"")
    request_head = b"\x83\x86\x84" + hpack_literal(b":authority", b"x")  # POST, http, /
    keep = requests.Session()
    assert keep.get(node.query + "/api/echo", timeout=30).text == "echo"
    for _ in range(3):  # warm up allocator pools before the baseline
        requests.get(node.query + "/api/echo", timeout=30)
    baseline = rss_kib(node.proc.pid)

    for round in range(20):
        # 1. A header list far over the advertised 64 KiB limit (HEADERS + CONTINUATIONs, END_HEADERS at
        #    the end): the stream is answered 431 and the connection stays usable.
        with socket.create_connection((host, port), timeout=30) as s:
            # 80 KB in five frames (the library allows only a few CONTINUATIONs per header block).
            block = request_head + b"".join(hpack_literal(b"x-big-%d" % i, b"v" * 8000) for i in range(10))
            chunks = [block[i:i + 16384] for i in range(0, len(block), 16384)]
            frames = frame(1, 0x1 | (0x4 if len(chunks) == 1 else 0), 1, chunks[0])  # END_STREAM
            for i, chunk in enumerate(chunks[1:], 1):
                frames += frame(9, 0x4 if i == len(chunks) - 1 else 0, 1, chunk)
            s.sendall(PREFACE + settings + frames)
            reply = b""
            while len(frame_headers(reply)) < 64:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
                # The 431 answer is a HEADERS frame on stream 1 (HPACK-encoded; ":status: 431" is not
                # in the static table, so its digits appear literally).
                if b"431" in reply:
                    break
            assert b"431" in reply, frame_headers(reply)

        # 2. A CONTINUATION flood: one HEADERS without END_HEADERS, then endless small CONTINUATIONs.
        #    The library ends the connection (GOAWAY, then close).
        with socket.create_connection((host, port), timeout=30) as s:
            s.sendall(PREFACE + settings + frame(1, 0x1, 1, request_head))
            flood = (frame(9, 0, 1, hpack_literal(b"x-c", b"%d" % i)) for i in range(20000))
            assert server_ends(s, flood), "the CONTINUATION flood was not cut off"

        # 3. Rapid reset: streams opened and reset at once, 2,000 of them; the server's reset limit
        #    ends the connection.
        with socket.create_connection((host, port), timeout=30) as s:
            s.sendall(PREFACE + settings)
            flood = (frame(1, 0x4, sid, request_head) + frame(3, 0, sid, struct.pack(">I", 8)) for sid in range(1, 4001, 2))
            assert server_ends(s, flood), "the reset flood was not cut off"

        assert keep.get(node.query + "/api/echo", timeout=30).text == "echo"

    grown = rss_kib(node.proc.pid) - baseline
    assert grown < 64 * 1024, "resident memory grew by %d KiB over 20 rounds of floods" % grown


def test_sigterm_with_open_h2c_connection_shuts_down(data_dir):  # noqa: F811
    n = Node(data_dir).start()
    try:
        host, port = hostport(n.query)
        with socket.create_connection((host, port), timeout=30) as s:
            settings = struct.pack(">I", 0)[1:] + bytes([4, 0]) + struct.pack(">I", 0)
            s.sendall(PREFACE + settings)
            # Wait for the server's SETTINGS ACK: it has read and processed everything we sent.
            seen = b""
            while not any(t == 4 and f & 1 for t, f in frame_headers(seen)):
                chunk = s.recv(65536)
                assert chunk, "closed before the SETTINGS ACK"
                seen += chunk
            started = time.monotonic()
            assert n.terminate() == 0
            # The idle h2c connection got a GOAWAY and was closed as part of the graceful shutdown.
            assert 7 in frame_types(read_until_closed(s))
            assert time.monotonic() - started < 30
    finally:
        if n.proc.poll() is None:
            n.kill()


def test_weftctl_load_over_h2c_and_grpc(node):
    """`weftctl load --protocol h2c|grpc` exports through the nghttp2 client; every span is acknowledged
    and the generator's first trace is found."""
    weftctl = os.path.join(os.path.dirname(os.environ.get("WEFT_BIN", os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), ".build", "debug", "weft"))), "weftctl")
    runs = [("h2c", node.otlp + "/v1/traces", "h2c-org"), ("grpc", "http://" + node.grpc, "grpc-org")]
    for proto, url, org in runs:
        out = subprocess.run(
            [weftctl, "load", "--url", url, "--protocol", proto, "--spans", "3000", "--batch-size", "500",
             "--concurrency", "2", "--org", org, "--seed", "7", "--quiet"],
            capture_output=True, text=True, timeout=120,
        )
        assert out.returncode == 0, out.stderr
        acked = [l for l in out.stdout.splitlines() if l.startswith("spans acknowledged")][0]
        sent = [l for l in out.stdout.splitlines() if l.startswith("spans sent")][0]
        assert acked.split()[2] == sent.split()[2], out.stdout
        example = [l for l in out.stdout.splitlines() if l.startswith("example trace")][0].split()[-1]
        r = requests.get(node.query + "/api/traces/" + example, headers={"X-Scope-OrgID": org}, timeout=30)
        assert r.status_code == 200
