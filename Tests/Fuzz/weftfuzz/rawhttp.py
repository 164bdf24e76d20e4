"""A minimal HTTP/1.1 client over a socket, so header values may be any bytes (invalid UTF-8, control
characters, 70 kB) and every request has a hard deadline. One connection per request."""

import socket
import time


class Response:
    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.headers = headers  # lowercase name -> value (str, latin-1)
        self.body = body
        self.elapsed = elapsed


class NoAnswer(Exception):
    """The connection closed, was reset or timed out before a complete response."""

    def __init__(self, why, elapsed):
        super().__init__(why)
        self.why = why
        self.elapsed = elapsed


def _b(x):
    return x if isinstance(x, bytes) else x.encode("utf-8", "surrogateescape")


def encode_request(method, host_port, target, headers, body):
    lines = [b"%s %s HTTP/1.1" % (_b(method), _b(target)), b"Host: " + _b(host_port), b"Connection: close"]
    for name, value in headers:
        lines.append(_b(name) + b": " + _b(value))
    if body or method in ("POST", "PUT"):
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def request(address, method, target, headers=(), body=b"", timeout=5.0):
    """Sends one request to `address` ("host:port"); returns a Response or raises NoAnswer."""
    host, port = address.rsplit(":", 1)
    started = time.monotonic()
    data = encode_request(method, address, target, headers, body)

    def left():
        return max(0.01, timeout - (time.monotonic() - started))

    raw = bytearray()
    try:
        with socket.create_connection((host, int(port)), timeout=left()) as sock:
            sock.settimeout(left())
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may answer (413, 400) before reading the whole body
            while True:
                sock.settimeout(left())
                chunk = sock.recv(1 << 16)
                if not chunk:
                    break
                raw += chunk
                parsed = _parse(raw, method)
                if parsed is not None:
                    return Response(*parsed, time.monotonic() - started)
    except socket.timeout:
        raise NoAnswer("no complete answer within %.1f s" % timeout, time.monotonic() - started)
    except OSError as e:
        parsed = _parse(raw, method, closed=True)
        if parsed is not None:
            return Response(*parsed, time.monotonic() - started)
        raise NoAnswer("connection error: %s" % e, time.monotonic() - started)
    parsed = _parse(raw, method, closed=True)
    if parsed is None:
        raise NoAnswer("connection closed after %d bytes without a complete answer" % len(raw), time.monotonic() - started)
    return Response(*parsed, time.monotonic() - started)


def _parse(raw, method, closed=False):
    """(status, headers, body) once `raw` holds a complete response, else None."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(raw[:end]).decode("latin-1").split("\r\n")
    try:
        status = int(head[0].split(" ")[1])
    except (IndexError, ValueError):
        return (0, {}, bytes(raw)) if closed else None
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    rest = bytes(raw[end + 4:])
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return status, headers, b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body, i = bytearray(), 0
        while True:
            eol = rest.find(b"\r\n", i)
            if eol < 0:
                return None
            size = int(rest[i:eol].split(b";")[0] or b"0", 16)
            if size == 0:
                return status, headers, bytes(body)
            if len(rest) < eol + 2 + size + 2:
                return None
            body += rest[eol + 2:eol + 2 + size]
            i = eol + 2 + size + 2
    if "content-length" in headers:
        n = int(headers["content-length"])
        return (status, headers, rest[:n]) if len(rest) >= n else None
    return (status, headers, rest) if closed else None
