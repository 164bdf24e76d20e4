"""What a family produces: a case of one or more requests, and the invariant failure a check raises."""

from urllib.parse import quote


class Failure(Exception):
    """An invariant violation: `kind` is one of crash, timeout, no-answer, 5xx, rss, bad-json, isolation,
    rejected-valid, ack-not-visible, restart, lost-trace, shutdown-hang."""

    def __init__(self, kind, detail):
        super().__init__("%s: %s" % (kind, detail))
        self.kind = kind
        self.detail = detail


class Request:
    def __init__(self, method, port, target, headers=(), body=b"", deadline="query", json_answer=False, size=None):
        self.method = method
        self.port = port  # "otlp" or "query"
        self.target = target  # path and query string, already percent-encoded
        self.headers = list(headers)
        self.body = body
        self.deadline = deadline  # "query", "ingest" or "flush": looked up in the campaign's limits
        self.json_answer = json_answer  # a 200 must carry a JSON document
        self.size = len(body) if size is None else size  # bytes the deadline grows with (per MiB)

    def describe(self, limit=300):
        heads = " ".join("%s: %s" % (n, _short(v, 60)) for n, v in self.headers)
        text = "%s %s %s%s" % (self.method, self.port, _short(self.target, limit), (" [" + heads + "]") if heads else "")
        if self.body:
            text += " body=%d bytes %s" % (len(self.body), _short(self.body, 80))
        return text


def _short(x, n):
    r = repr(x) if isinstance(x, bytes) else x
    return r if len(r) <= n else r[:n] + "…(%d)" % len(r)


class Case:
    """`run(session)` sends the requests through the session, which checks the generic invariants;
    the case adds its own (isolation, read-your-write) by raising Failure."""

    def __init__(self, family, index, shape, run):
        self.family = family
        self.index = index
        self.shape = shape
        self.run = run


# Characters a query string may carry unencoded: TraceQL's punctuation, so a URL of a given length
# holds three times as many parentheses as when they are percent-encoded.
LIGHT = "(){}|!<>~,.:*="


def query_string(pairs, safe=""):
    """`k=v&…`, percent-encoding all but `safe`; values given as bytes are put in raw (for invalid
    percent-encodings)."""
    out = []
    for k, v in pairs:
        k = k if isinstance(k, bytes) else quote(k, safe="").encode()
        v = v if isinstance(v, bytes) else quote(v, safe=safe).encode()
        out.append(k + b"=" + v)
    return b"&".join(out)


def target(path, pairs=(), safe=""):
    path = path if isinstance(path, bytes) else path.encode()
    qs = query_string(pairs, safe)
    return path + (b"?" + qs if qs else b"")
