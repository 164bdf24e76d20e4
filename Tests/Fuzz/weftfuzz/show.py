"""Prints a case's requests as curl commands (bodies written to files), for bug reports."""

import os
import shlex
import tempfile
import time

from .campaign import Context, baseline_ids, case_rng
from .registry import FAMILIES


class Recorder:
    """Stands in for the campaign: records requests and answers them as a correct node would (exports
    accepted, traces readable under the org that wrote them only, searches empty)."""

    def __init__(self):
        self.requests = []
        self.writer = None

    def send(self, req):
        self.requests.append(req)
        org = [v for n, v in req.headers if n == b"x-scope-orgid"] or [None]
        if req.method == "POST":
            self.writer = org[0]
            return _Answer(200, b"")
        target = req.target.decode("latin-1") if isinstance(req.target, bytes) else req.target
        if target.startswith("/api/traces/"):
            return _Answer(200 if org[0] == self.writer else 404, b"{}")
        return _Answer(200, b'{"traces": [], "tagValues": []}')

    def ack(self, org, ids, label=None):
        pass


class _Answer:
    def __init__(self, status, body):
        self.status, self.body, self.headers, self.elapsed = status, body, {}, 0.0


def curl(req, index, body_dir):
    port = "OTLP" if req.port == "otlp" else "QUERY"
    target = req.target.decode("latin-1") if isinstance(req.target, bytes) else req.target
    parts = ["curl", "-sS", "-X", req.method]
    for k, (name, value) in enumerate(req.headers):
        n = name if isinstance(name, bytes) else name.encode()
        v = value if isinstance(value, bytes) else value.encode("utf-8")
        if len(v) > 200 or any(b < 0x20 or b >= 0x7F for b in v):
            path = os.path.join(body_dir, "header-%d-%d.txt" % (index, k))  # curl -H @file sends the bytes as they are
            with open(path, "wb") as f:
                f.write(n + b": " + v + b"\n")
            parts += ["-H", "@" + path]
        else:
            parts += ["-H", shlex.quote("%s: %s" % (n.decode(), v.decode()))]
    if req.body:
        path = os.path.join(body_dir, "body-%d.bin" % index)
        with open(path, "wb") as f:
            f.write(req.body)
        parts += ["--data-binary", "@" + path]
    parts.append('"http://$%s"%s' % (port, shlex.quote(target)))
    return " ".join(parts)


def show_case(seed, family, index):
    now = time.time_ns()
    ctx = Context(now, baseline_ids(seed, now))
    case = FAMILIES[family](case_rng(seed, family, index), index, ctx)
    rec = Recorder()
    case.run(rec)
    body_dir = tempfile.mkdtemp(prefix="weft-fuzz-%s-%d-" % (family, index))
    print("# %s #%d (%s); set OTLP and QUERY to the node's host:port" % (family, index, case.shape))
    for i, req in enumerate(rec.requests):
        print(curl(req, i, body_dir))
