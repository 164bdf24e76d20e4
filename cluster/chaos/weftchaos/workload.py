"""The checked workload: OTLP clients that send spans with explicit trace and span IDs, retry each
request with the same IDs until it is acknowledged (bounded), and record every acknowledged span (the
ground truth) and every span never acknowledged (indeterminate: it may or may not be stored)."""

import random
import subprocess
import threading
import time
from collections import Counter

import grpc
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

    def begin(self, spans):
        with self.lock:
            self.attempted += len(spans)
            for s in spans:
                self.in_flight[s.key] = s

    def done(self, spans, acked, tries):
        with self.lock:
            target = self.acked if acked else self.indeterminate
            for s in spans:
                target[s.key] = s
                self.in_flight.pop(s.key, None)
            self.requests["acknowledged" if acked else "never acknowledged"] += 1
            if acked and tries == 1:
                self.first_try += 1

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
                self.history.done(spans, True, tries)
                return True
            time.sleep(min(retry_after if retry_after is not None else 0.2 * 2 ** min(tries, 4), 3.0))
        self.history.done(spans, False, tries)
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


CLIENTS = {"otel-sdk": SdkClient, "h2c": RawH2cClient, "grpc": GrpcClient}


def start_clients(front, history, run_id, seed, stop, kinds=("otel-sdk", "h2c", "grpc"), **options):
    clients = []
    for i, kind in enumerate(kinds):
        c = CLIENTS[kind]("%s-%d" % (kind, i), front, history, run_id, seed * 1000 + i, stop, **options)
        c.start()
        clients.append(c)
    return clients
