"""The checked workload: OTLP clients that send spans with explicit trace and span IDs, retry each
request with the same IDs until it is acknowledged (bounded), and record every acknowledged span (the
ground truth) and every span never acknowledged (indeterminate: it may or may not be stored). The
`weftctl` kind runs `weftctl load` through a recording proxy that rewrites and records its spans."""

import gzip
import hashlib
import http.server
import json
import os
import random
import subprocess
import threading
import time
from collections import Counter

import grpc
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

SERVICES = ("checkout", "search", "chat", "billing")
TENANTS = ("acme", "globex", "initech", "umbrella", "hooli")
COST_DENOMINATOR = 64  # costs are k/64: sums of such doubles are exact, whatever the order
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class Span:
    __slots__ = ("trace", "span", "service", "tenant", "cost_units", "start_ns", "name")

    def __init__(self, trace, span, service, tenant, cost_units, start_ns, name):
        self.trace, self.span, self.service, self.tenant = trace, span, service, tenant
        self.cost_units, self.start_ns, self.name = cost_units, start_ns, name

    @property
    def key(self):
        return (self.trace, self.span)

    @property
    def cost(self):
        return self.cost_units / COST_DENOMINATOR


class History:
    """What was sent and what was acknowledged, shared by every client thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}          # (trace hex, span hex) -> Span
        self.indeterminate = {}  # sent, never acknowledged
        self.attempted = 0       # spans handed to a first attempt (acked + indeterminate + in flight)
        self.in_flight = {}      # handed to a first attempt, not yet acknowledged or given up
        self.requests = Counter()  # outcome -> requests
        self.attempts = Counter()  # client kind -> HTTP/gRPC attempts
        self.statuses = Counter()  # "http 503", "grpc UNAVAILABLE", "error ConnectionError", …
        self.first_try = 0
        self.spans_by_kind = Counter()  # (client kind, "acknowledged" or "indeterminate") -> spans
        self.acked_at = {}  # (trace hex, span hex) -> Unix seconds of the acknowledgement
        self.latest_start_ns = 0  # the latest span start ever attempted (spans may start minutes ahead)

    def begin(self, spans):
        with self.lock:
            self.attempted += len(spans)
            for s in spans:
                self.in_flight[s.key] = s
                self.latest_start_ns = max(self.latest_start_ns, s.start_ns)

    def done(self, spans, acked, tries, kind="?"):
        with self.lock:
            target = self.acked if acked else self.indeterminate
            now = time.time()
            for s in spans:
                target[s.key] = s
                self.in_flight.pop(s.key, None)
                if acked:
                    self.acked_at[s.key] = now
            self.requests["acknowledged" if acked else "never acknowledged"] += 1
            self.spans_by_kind[(kind, "acknowledged" if acked else "indeterminate")] += len(spans)
            if acked and tries == 1:
                self.first_try += 1

    def acked_keys(self):
        """The keys of every span acknowledged so far."""
        with self.lock:
            return set(self.acked)

    def counts(self):
        """(acknowledged spans, spans ever attempted) now."""
        with self.lock:
            return len(self.acked), self.attempted

    def started_before(self, ns):
        """(acknowledged spans, spans that may be stored: acknowledged, indeterminate or in flight) that
        started before `ns` (Unix nanoseconds)."""
        with self.lock:
            acked = sum(1 for s in self.acked.values() if s.start_ns < ns)
            maybe = sum(1 for d in (self.indeterminate, self.in_flight) for s in d.values() if s.start_ns < ns)
        return acked, acked + maybe

    def status(self, kind, status):
        with self.lock:
            self.attempts[kind] += 1
            self.statuses[status] += 1


def make_spans(rng, run_id, client, seq, traces, spans_per_trace):
    """`traces` new traces with fresh random IDs (from the client's seeded RNG) and current timestamps."""
    now = time.time_ns()
    out = []
    for t in range(traces):
        trace = "%032x" % rng.getrandbits(128)
        service = rng.choice(SERVICES)
        for i in range(spans_per_trace):
            out.append(Span(trace, "%016x" % (rng.getrandbits(64) | 1), service, rng.choice(TENANTS),
                            rng.randint(1, 1000), now + i * 1000, "%s-%d-%d" % (client, seq, i)))
    return out


def attributes(span, run_id):
    return {"tenant": span.tenant, "gen_ai.usage.cost": span.cost, "chaos.run": run_id}


def export_request(spans, run_id):
    """An OTLP ExportTraceServiceRequest holding `spans` (one ResourceSpans per service)."""
    by_service = {}
    for s in spans:
        by_service.setdefault(s.service, []).append(s)
    req = trace_service_pb2.ExportTraceServiceRequest()
    for service, group in by_service.items():
        rs = req.resource_spans.add()
        rs.resource.CopyFrom(resource_pb2.Resource(attributes=[
            common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value=service))]))
        ss = rs.scope_spans.add()
        ss.scope.name = "weft-chaos"
        for s in group:
            attrs = [common_pb2.KeyValue(key="tenant", value=common_pb2.AnyValue(string_value=s.tenant)),
                     common_pb2.KeyValue(key="gen_ai.usage.cost", value=common_pb2.AnyValue(double_value=s.cost)),
                     common_pb2.KeyValue(key="chaos.run", value=common_pb2.AnyValue(string_value=run_id))]
            ss.spans.append(trace_pb2.Span(
                trace_id=bytes.fromhex(s.trace), span_id=bytes.fromhex(s.span), name=s.name,
                kind=trace_pb2.Span.SPAN_KIND_SERVER, start_time_unix_nano=s.start_ns,
                end_time_unix_nano=s.start_ns + 2_000_000, attributes=attrs))
    return req


class Client(threading.Thread):
    """A client thread: make a request, send it until acknowledged (same IDs every time) or give up."""

    kind = "?"

    def __init__(self, name, front, history, run_id, seed, stop, pace=0.25, traces=2, spans_per_trace=5,
                 max_attempts=20, give_up_seconds=45):
        super().__init__(name=name, daemon=True)
        self.front, self.history, self.run_id, self.stop = front, history, run_id, stop
        self.rng = random.Random(seed)
        self.pace, self.traces, self.spans_per_trace = pace, traces, spans_per_trace
        self.max_attempts, self.give_up_seconds = max_attempts, give_up_seconds
        self.seq = 0
        self.error = None

    def send_once(self, spans):
        """One attempt: (acknowledged?, seconds to wait before the next attempt or None)."""
        raise NotImplementedError

    def send(self, spans):
        self.history.begin(spans)
        started = time.monotonic()
        tries = 0
        while tries < self.max_attempts and time.monotonic() - started < self.give_up_seconds:
            tries += 1
            try:
                acked, retry_after = self.send_once(spans)
            except Exception as e:  # connection refused, reset, timeout: the request's fate is unknown
                self.history.status(self.kind, "error %s" % type(e).__name__)
                acked, retry_after = False, None
            if acked:
                self.history.done(spans, True, tries, self.kind)
                return True
            time.sleep(min(retry_after if retry_after is not None else 0.2 * 2 ** min(tries, 4), 3.0))
        self.history.done(spans, False, tries, self.kind)
        return False

    def run(self):
        try:
            while not self.stop.is_set():
                self.seq += 1
                self.send(make_spans(self.rng, self.run_id, self.name, self.seq, self.traces, self.spans_per_trace))
                self.stop.wait(self.pace)
        except Exception as e:  # a bug in the harness: reported, not hidden
            self.error = "%s: %r" % (self.name, e)


def retry_after_seconds(value):
    try:
        return max(0.05, float(value))
    except (TypeError, ValueError):
        return None


class RawH2cClient(Client):
    """OTLP/HTTP protobuf over cleartext HTTP/2 (prior knowledge), sent with curl (nghttp2)."""

    kind = "h2c"

    def send_once(self, spans):
        body = export_request(spans, self.run_id).SerializeToString()
        out = subprocess.run(
            ["curl", "-s", "--http2-prior-knowledge", "-m", "15", "-o", "/dev/null", "-D", "-",
             "-H", "content-type: application/x-protobuf", "--data-binary", "@-", self.front.otlp + "/v1/traces"],
            input=body, capture_output=True, timeout=30)
        if out.returncode != 0:
            self.history.status(self.kind, "error curl exit %d" % out.returncode)
            return False, None
        headers = out.stdout.decode(errors="replace").splitlines()
        status = int(headers[0].split()[1]) if headers and len(headers[0].split()) > 1 else 0
        self.history.status(self.kind, "http %d" % status)
        retry = None
        for h in headers[1:]:
            if h.lower().startswith("retry-after:"):
                retry = retry_after_seconds(h.split(":", 1)[1].strip())
        return status == 200, retry


class GrpcClient(Client):
    """OTLP/gRPC with grpcio; OK is the acknowledgement."""

    kind = "grpc"
    channel = None

    def send_once(self, spans):
        if self.channel is None:
            self.channel = grpc.insecure_channel(self.front.grpc)
            self.call = self.channel.unary_unary(EXPORT, request_serializer=lambda m: m.SerializeToString(),
                                                 response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString)
        try:
            response = self.call(export_request(spans, self.run_id), timeout=15)
        except grpc.RpcError as e:
            self.history.status(self.kind, "grpc %s" % e.code().name)
            return False, None
        self.history.status(self.kind, "grpc OK")
        if response.partial_success.rejected_spans:
            self.history.status(self.kind, "grpc OK with rejected spans")
            return False, None
        return True, None


class SdkClient(Client):
    """The OpenTelemetry Python SDK's OTLP/HTTP protobuf exporter, given spans with explicit IDs."""

    kind = "otel-sdk"
    exporter = None

    def send_once(self, spans):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.sdk.trace.export import SpanExportResult
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
        if self.exporter is None:
            # The exporter's own retries are bounded by its timeout; the loop around it retries further.
            self.exporter = OTLPSpanExporter(endpoint=self.front.otlp + "/v1/traces", timeout=10)
        readable = [ReadableSpan(
            name=s.name,
            context=SpanContext(trace_id=int(s.trace, 16), span_id=int(s.span, 16), is_remote=False,
                                trace_flags=TraceFlags(TraceFlags.SAMPLED)),
            resource=Resource({"service.name": s.service}), attributes=attributes(s, self.run_id),
            kind=SpanKind.SERVER, start_time=s.start_ns, end_time=s.start_ns + 2_000_000,
            instrumentation_scope=InstrumentationScope("weft-chaos")) for s in spans]
        result = self.exporter.export(readable)
        ok = result == SpanExportResult.SUCCESS
        self.history.status(self.kind, "sdk %s" % result.name)
        return ok, None


# `weftctl load` through a recording proxy ------------------------------------------------------------

REWRITTEN_KEYS = ("tenant", "gen_ai.usage.cost", "chaos.run")
# Answer headers that describe the proxy's own connection or body, not the front's answer.
NOT_PASSED = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "server", "date"}


def tenant_of_trace(trace_hex):
    """The campaign tenant of a trace (every span of a trace gets the same one)."""
    return TENANTS[int(trace_hex, 16) % len(TENANTS)]


def cost_units_of_span(span_hex):
    """k in 1…1000, the cost k/64 of a span, from its span ID."""
    return 1 + int(span_hex, 16) % 1000


def _string(key, value):
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))


def rewrite_export(body, run_id):
    """Makes an OTLP ExportTraceServiceRequest checkable: every span gets `chaos.run` = `run_id`, `tenant`
    from its trace ID and `gen_ai.usage.cost` = k/64 from its span ID (replacing any it had); IDs,
    timestamps and every other attribute stay, `service.name` is read from the resource. A pure function
    of its input: a request sent again with the same bytes is rewritten to the same bytes.
    Returns (the rewritten request's bytes, [Span])."""
    request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
    spans = []
    for rs in request.resource_spans:
        service = next((kv.value.string_value for kv in rs.resource.attributes if kv.key == "service.name"), None)
        if service is None:
            service = "unknown_service"
            rs.resource.attributes.append(_string("service.name", service))
        for ss in rs.scope_spans:
            for sp in ss.spans:
                if len(sp.trace_id) != 16 or len(sp.span_id) != 8:
                    raise ValueError("a span with a %d-byte trace ID and a %d-byte span ID" % (len(sp.trace_id), len(sp.span_id)))
                trace, span = sp.trace_id.hex(), sp.span_id.hex()
                units = cost_units_of_span(span)
                kept = []
                for kv in sp.attributes:
                    if kv.key not in REWRITTEN_KEYS:
                        copy = common_pb2.KeyValue()
                        copy.CopyFrom(kv)
                        kept.append(copy)
                del sp.attributes[:]
                sp.attributes.extend(kept)
                sp.attributes.extend([
                    _string("tenant", tenant_of_trace(trace)),
                    common_pb2.KeyValue(key="gen_ai.usage.cost",
                                        value=common_pb2.AnyValue(double_value=units / COST_DENOMINATOR)),
                    _string("chaos.run", run_id)])
                spans.append(Span(trace, span, service, tenant_of_trace(trace), units, sp.start_time_unix_nano, sp.name))
    return request.SerializeToString(deterministic=True), spans


def rejected_spans(content_type, body):
    """`partial_success.rejected_spans` of an OTLP/HTTP answer (protobuf or JSON), None if unreadable."""
    from google.protobuf.message import DecodeError
    try:
        if "json" in (content_type or ""):
            return int((json.loads(body or b"{}").get("partialSuccess") or {}).get("rejectedSpans") or 0)
        return trace_service_pb2.ExportTraceServiceResponse.FromString(body).partial_success.rejected_spans
    except (ValueError, AttributeError, DecodeError):
        return None


class RequestLedger:
    """The requests a proxy has seen, by the SHA-256 of their body. weftctl sends a failed request again
    with the same bytes, so a request's spans begin in History once, are acknowledged at its first 200
    without rejected spans, and are indeterminate if no attempt got one by `finish`."""

    def __init__(self, history, kind):
        self.history, self.kind = history, kind
        self.lock = threading.Lock()
        self.entries = {}  # digest -> [spans, attempts, acknowledged?]
        self.finished = False

    def attempt(self, digest, spans):
        """Counts an attempt of a request (its first begins its spans); False once finished."""
        with self.lock:
            if self.finished:
                return False
            entry = self.entries.get(digest)
            if entry is None:
                entry = self.entries[digest] = [spans, 0, False]
                self.history.begin(spans)
            entry[1] += 1
            return True

    def acknowledge(self, digest):
        with self.lock:
            entry = self.entries[digest]
            if entry[2] or self.finished:  # acknowledged already, or settled as indeterminate
                return
            entry[2] = True
            self.history.done(entry[0], True, entry[1], self.kind)

    def finish(self):
        """Every request not acknowledged by now is indeterminate; later answers change nothing."""
        with self.lock:
            if self.finished:
                return
            self.finished = True
            for spans, attempts, acked in self.entries.values():
                if not acked:
                    self.history.done(spans, False, attempts, self.kind)


class RecordingProxy:
    """An HTTP/1.1 proxy on 127.0.0.1 (port 0) between `weftctl load` and the front. Each POST body is
    rewritten by `rewrite_export` (gunzipped first if it came gzipped) and sent to the front's
    /v1/traces; the front's status, headers (Retry-After among them) and body go back to weftctl, so it
    retries as it would against the front. Every attempt is recorded in a RequestLedger. The front
    unreachable gives 502 (504 on a timeout), which weftctl retries."""

    def __init__(self, front, history, run_id, kind="weftctl", timeout=15):
        self.front, self.history, self.run_id, self.kind, self.timeout = front, history, run_id, kind, timeout
        self.ledger = RequestLedger(history, kind)
        self.error = None
        self.active = 0
        self.idle = threading.Condition()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 120  # an idle keep-alive connection is closed after this

            def do_POST(self):
                proxy.handle(self)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/v1/traces" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="weftctl-proxy", daemon=True)
        self.thread.start()

    def handle(self, h):
        with self.idle:
            self.active += 1
        try:
            self.forward(h)
        finally:
            with self.idle:
                self.active -= 1
                self.idle.notify_all()

    def forward(self, h):
        try:
            length = int(h.headers.get("content-length") or 0)
            body = h.rfile.read(length)
        except (OSError, ValueError):
            h.close_connection = True
            return
        if len(body) < length:  # weftctl went away mid-request: nothing was forwarded
            h.close_connection = True
            return
        try:
            if "gzip" in (h.headers.get("content-encoding") or "").lower():
                body = gzip.decompress(body)
            rewritten, spans = rewrite_export(body, self.run_id)
        except Exception as e:  # weftctl sent something that is not an OTLP request: a harness defect
            self.error = "weftctl sent an undecodable request (%s: %s)" % (type(e).__name__, e)
            self.history.status(self.kind, "proxy undecodable request")
            return self.reply(h, 400, [("content-type", "text/plain")], self.error.encode())
        digest = hashlib.sha256(body).hexdigest()
        if not self.ledger.attempt(digest, spans):
            return self.reply(h, 503, [("retry-after", "1")], b"the campaign's load has stopped")
        headers = {"content-type": "application/x-protobuf"}
        if h.headers.get("x-scope-orgid"):
            headers["x-scope-orgid"] = h.headers["x-scope-orgid"]
        try:
            r = requests.post(self.front.otlp + "/v1/traces", data=rewritten, headers=headers, timeout=self.timeout)
        except requests.RequestException as e:  # the request's fate is unknown
            self.history.status(self.kind, "error %s" % type(e).__name__)
            status = 504 if isinstance(e, requests.Timeout) else 502
            return self.reply(h, status, [("content-type", "text/plain")], ("front: %s" % type(e).__name__).encode())
        if r.status_code == 200:
            rejected = rejected_spans(r.headers.get("content-type"), r.content)
            if rejected == 0:
                self.history.status(self.kind, "http 200")
                self.ledger.acknowledge(digest)
            else:
                self.history.status(self.kind, "http 200 with rejected spans" if rejected else "http 200 unreadable answer")
        else:
            self.history.status(self.kind, "http %d" % r.status_code)
        self.reply(h, r.status_code, [(k, v) for k, v in r.headers.items() if k.lower() not in NOT_PASSED], r.content)

    @staticmethod
    def reply(h, status, headers, body):
        try:
            h.send_response(status)
            for k, v in headers:
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            h.wfile.flush()
        except OSError:  # weftctl gave up on this attempt (its timeout) or was stopped
            h.close_connection = True

    def close(self, wait_seconds=60):
        """Stops listening, waits for the requests in flight (each bounded by the forward timeout), then
        settles the ledger."""
        self.server.shutdown()
        self.server.server_close()
        with self.idle:
            self.idle.wait_for(lambda: self.active == 0, timeout=wait_seconds)
        self.ledger.finish()


class WeftctlClient(Client):
    """`weftctl load --protocol http1` (the project's own LLM-gateway traffic: 3–8 spans a trace over 13
    services) through a RecordingProxy. weftctl runs for `segment_seconds` at a time, each run with a new
    seed from the client's generator (weftctl's IDs follow its seed, so no span ID repeats); when the load
    stops it is terminated, and what it had in flight is settled by the proxy's ledger."""

    kind = "weftctl"
    rate = 100           # spans/s
    batch_size = 20      # spans a request (whole traces, so a few more)
    max_retries = 20
    request_timeout = 30  # weftctl's, above the proxy's 15 s towards the front
    segment_seconds = 300
    weftctl_path = None  # default: weftctl in the cluster's binary directory

    def argv(self, url, seed):
        path = self.weftctl_path or os.path.join(self.front.cluster.bin_dir, "weftctl")
        return [path, "load", "--url", url, "--protocol", "http1", "--rate", "%g" % self.rate,
                "--duration", "%d" % self.segment_seconds, "--seed", str(seed), "--batch-size", str(self.batch_size),
                "--concurrency", "1", "--max-retries", str(self.max_retries), "--timeout", "%g" % self.request_timeout,
                "--quiet"]

    def run(self):
        self.summaries = []  # weftctl's own summary of every run that reached its end
        proxy = RecordingProxy(self.front, self.history, self.run_id, self.kind)
        log_path = os.path.join(self.front.cluster.run_dir, "logs", "%s.log" % self.name)
        proc = None
        try:
            with open(log_path, "a") as log:
                while not self.stop.is_set():
                    seed = self.rng.getrandbits(63)
                    log.write("--- weftctl load --seed %d\n" % seed)
                    log.flush()
                    proc = subprocess.Popen(self.argv(proxy.url, seed), stdout=subprocess.PIPE, stderr=log, text=True)
                    while proc.poll() is None and not self.stop.wait(0.5):
                        pass
                    if proc.poll() is None:
                        break  # stopped mid-run: terminated below
                    out = proc.stdout.read()
                    log.write(out)
                    if proc.returncode != 0:
                        self.error = "%s: weftctl load exited %d (see %s)" % (self.name, proc.returncode, log_path)
                        break
                    self.summaries.append(out)
        except Exception as e:  # a bug in the harness: reported, not hidden
            self.error = "%s: %r" % (self.name, e)
        finally:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc is not None:
                proc.stdout.close()
            proxy.close()
            if proxy.error and not self.error:
                self.error = "%s: %s" % (self.name, proxy.error)


CLIENTS = {"otel-sdk": SdkClient, "h2c": RawH2cClient, "grpc": GrpcClient, "weftctl": WeftctlClient}


def start_clients(front, history, run_id, seed, stop, kinds=("otel-sdk", "h2c", "grpc", "weftctl"), **options):
    clients = []
    for i, kind in enumerate(kinds):
        c = CLIENTS[kind]("%s-%d" % (kind, i), front, history, run_id, seed * 1000 + i, stop, **options)
        c.start()
        clients.append(c)
    return clients
