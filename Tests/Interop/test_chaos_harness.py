"""The fault campaign's own parts (cluster/chaos/weftchaos), without a cluster: the seeded schedule, the
convergence rule after a drain, the `weftctl` client's rewriting and recording proxy (against a fake
front; the real weftctl when built, WEFT_BIN or .build/debug), and (as root) the delay-and-loss fault on
a scratch network namespace."""

import gzip
import http.server
import os
import random
import socket
import subprocess
import sys
import threading
import time
import types
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "cluster", "chaos"))

from weftchaos import net  # noqa: E402
from weftchaos.checker import time_range  # noqa: E402
from weftchaos.cluster import Cluster, Node  # noqa: E402
from weftchaos.nemesis import FAULTS, plan  # noqa: E402
from weftchaos import workload  # noqa: E402
from weftchaos.workload import (COST_DENOMINATOR, TENANTS, History, RecordingProxy, RequestLedger,  # noqa: E402
                                WeftctlClient, rewrite_export)

STORAGE = ["s1", "s2", "s3", "s4", "s5"]


@pytest.mark.parametrize("seed", list(range(40)) + [1234])
def test_ten_minute_schedule_holds_30_faults_and_every_kind(seed):
    schedule = plan(seed, 10, STORAGE, list(FAULTS), rf=3)
    kinds = {kind for _, kind, _, _ in schedule}
    assert len(schedule) >= 30, schedule
    assert kinds == set(FAULTS), set(FAULTS) - kinds
    # The plan's own time model keeps faults out of the last 20 s.
    from weftchaos.nemesis import HEAL_ESTIMATE_S
    end = 5 + sum(gap + duration + HEAL_ESTIMATE_S for gap, _, _, duration in schedule[:-1])
    assert end < 10 * 60 - 20


def test_schedule_is_a_function_of_the_seed():
    assert plan(5, 10, STORAGE, list(FAULTS), 3) == plan(5, 10, STORAGE, list(FAULTS), 3)
    assert plan(5, 10, STORAGE, list(FAULTS), 3) != plan(6, 10, STORAGE, list(FAULTS), 3)


@pytest.mark.parametrize("seed", range(40))
def test_schedule_keeps_the_cluster_contract(seed):
    schedule = plan(seed, 10, STORAGE, list(FAULTS), rf=3)
    drains = [t for _, kind, t, _ in schedule if kind == "drain"]
    assert len(drains) <= 1
    assert sum(1 for _, kind, _, _ in schedule if kind == "join") <= 2
    # s1 carries the small disk that disk-full fills, so it is never the one drained.
    assert ["s1"] not in drains
    drained = drains[0][0] if drains else None
    after = schedule[[k for _, k, _, _ in schedule].index("drain") + 1:] if drains else []
    assert all(drained not in targets for _, kind, targets, _ in after if kind != "join")
    # Every pause outlasts the failure detector (SWIM declares a silent node dead after about 5 s).
    assert all(d > 5 for _, kind, _, d in schedule if kind == "pause")


def test_a_drained_node_that_has_left_counts_as_converged():
    cluster = Cluster.__new__(Cluster)
    cluster.nodes = {}
    for name in ("s1", "s2", "s3"):
        n = Node.__new__(Node)
        n.name, n.node_id, n.paused, n.drained = name, name, False, name == "s3"
        n.running = lambda: True
        cluster.nodes[name] = n
    views = {"s3": "LEFT"}
    cluster.members = lambda node: {
        name: {"id": name, "status": "alive", "state": views.get(name, "ACTIVE")} for name in ("s1", "s2", "s3")}
    assert cluster.converged()
    # A node nobody drained must be ACTIVE.
    cluster.nodes["s3"].drained = False
    assert not cluster.converged()


# The `weftctl` client: rewrite, ledger, proxy ---------------------------------------------------------

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2  # noqa: E402
from opentelemetry.proto.common.v1 import common_pb2  # noqa: E402
from opentelemetry.proto.trace.v1 import trace_pb2  # noqa: E402

WEFTCTL = os.path.join(os.path.dirname(os.environ["WEFT_BIN"]) if os.environ.get("WEFT_BIN") else os.path.join(ROOT, ".build", "debug"),
                       "weftctl")


def _attr(key, **value):
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(**value))


def llm_request(seed, traces=30):
    """An export shaped like weftctl's: several resources per request, spans of a trace under different
    services, weftctl's own `gen_ai.usage.cost` on some spans, a stale `tenant` on others."""
    rng = random.Random(seed)
    req = trace_service_pb2.ExportTraceServiceRequest()
    resources = {}
    for _ in range(traces):
        trace = rng.getrandbits(128).to_bytes(16, "big")
        for i in range(rng.randint(3, 8)):
            service = rng.choice(["checkout", "tfy-llm-gateway", "support-bot"])
            if service not in resources:
                rs = req.resource_spans.add()
                rs.resource.attributes.extend([_attr("service.name", string_value=service), _attr("cloud.region", string_value="eu-west-1")])
                resources[service] = rs.scope_spans.add()
            attrs = [_attr("tenant_id", string_value="tenant-%04d" % rng.randint(1, 5)), _attr("http.response.status_code", int_value=200)]
            if i % 2:
                attrs.append(_attr("gen_ai.usage.cost", double_value=rng.random() / 1000))
            if i % 3 == 0:
                attrs.append(_attr("tenant", string_value="stale"))
            start = 1_700_000_000_000_000_000 + rng.getrandbits(40)
            resources[service].spans.append(trace_pb2.Span(
                trace_id=trace, span_id=(rng.getrandbits(64) | 1).to_bytes(8, "big"), name="op-%d" % i,
                start_time_unix_nano=start, end_time_unix_nano=start + 5_000_000, attributes=attrs))
    return req.SerializeToString()


def _spans_of(body):
    """[(resource service.name, span)] of a serialized export."""
    req = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
    return [({kv.key: kv.value for kv in rs.resource.attributes}["service.name"].string_value, sp)
            for rs in req.resource_spans for ss in rs.scope_spans for sp in ss.spans]


def test_rewrite_makes_every_span_checkable_and_keeps_the_rest():
    body = llm_request(1)
    out, recorded = rewrite_export(body, "chaos-1-abc")
    before, after = _spans_of(body), _spans_of(out)
    assert len(recorded) == len(after) == len(before) > 90
    tenant_of_trace = {}
    for (service0, old), (service, new), span in zip(before, after, recorded):
        assert (new.trace_id, new.span_id, new.parent_span_id, new.name) == (old.trace_id, old.span_id, old.parent_span_id, old.name)
        assert (new.start_time_unix_nano, new.end_time_unix_nano) == (old.start_time_unix_nano, old.end_time_unix_nano)
        attrs = [(kv.key, kv.value) for kv in new.attributes]
        keys = [k for k, _ in attrs]
        # Each rewritten key once; every other attribute kept as it was.
        assert sorted(k for k in keys if k in ("chaos.run", "tenant", "gen_ai.usage.cost")) == ["chaos.run", "gen_ai.usage.cost", "tenant"]
        assert [(kv.key, kv.value) for kv in old.attributes if kv.key not in ("tenant", "gen_ai.usage.cost")] == attrs[:-3]
        values = dict(attrs)
        assert values["chaos.run"].string_value == "chaos-1-abc"
        tenant = values["tenant"].string_value
        assert tenant in TENANTS and tenant_of_trace.setdefault(new.trace_id, tenant) == tenant
        cost = values["gen_ai.usage.cost"].double_value
        assert 1 <= cost * COST_DENOMINATOR <= 1000 and cost * COST_DENOMINATOR == int(cost * COST_DENOMINATOR)
        # What History records is what the front is sent.
        assert (span.trace, span.span, span.service, span.tenant, span.cost, span.start_ns, span.name) == (
            new.trace_id.hex(), new.span_id.hex(), service, tenant, cost, new.start_time_unix_nano, new.name)
        assert service == service0
    assert len(set(tenant_of_trace.values())) > 1


def test_rewrite_is_a_function_of_the_bytes_and_the_run():
    body = llm_request(2)
    out, spans = rewrite_export(body, "run-a")
    again, spans_again = rewrite_export(bytes(body), "run-a")
    assert out == again
    assert [(s.key, s.tenant, s.cost_units) for s in spans] == [(s.key, s.tenant, s.cost_units) for s in spans_again]
    # Rewriting what was rewritten changes nothing; another run differs only in chaos.run.
    assert rewrite_export(out, "run-a")[0] == out
    other, other_spans = rewrite_export(body, "run-b")
    assert other != out and len(other) == len(out)
    assert [(s.key, s.tenant, s.cost_units) for s in other_spans] == [(s.key, s.tenant, s.cost_units) for s in spans]


def test_rewritten_costs_sum_exactly_in_any_order():
    costs, units = [], 0
    for seed in range(20):
        out, spans = rewrite_export(llm_request(seed), "r")
        costs += [dict((kv.key, kv.value) for kv in sp.attributes)["gen_ai.usage.cost"].double_value for _, sp in _spans_of(out)]
        units += sum(s.cost_units for s in spans)
    rng = random.Random(0)
    for _ in range(20):
        rng.shuffle(costs)
        assert sum(costs) == units / COST_DENOMINATOR


def test_checked_time_range_holds_spans_that_start_minutes_after_they_are_sent():
    # weftctl's LLM traces hold spans that start after provider calls of up to 2 minutes each, so a
    # span may be acknowledged minutes before it starts: the range counted must still hold it.
    history = History()
    now_ns = time.time_ns()
    ahead = workload.Span("%032x" % 1, "%016x" % 1, "svc", "t", 1, now_ns + 300 * 1_000_000_000, "late")
    start, end = time_range(time.time() - 10, history)
    assert end * 1_000_000_000 < ahead.start_ns
    history.begin([ahead])
    history.done([ahead], True, 1)
    start, end = time_range(time.time() - 10, history)
    assert start * 1_000_000_000 <= ahead.start_ns < end * 1_000_000_000
    assert end <= ahead.start_ns // 1_000_000_000 + 122


def test_ledger_begins_a_retried_request_once_and_acknowledges_it_once():
    history = History()
    ledger = RequestLedger(history, "weftctl")
    _, first = rewrite_export(llm_request(3), "r")
    _, second = rewrite_export(llm_request(4), "r")
    for _ in range(3):
        assert ledger.attempt("first", first)
    assert history.counts() == (0, len(first)) and len(history.in_flight) == len(first)
    ledger.acknowledge("first")
    assert ledger.attempt("first", first)  # sent again after its 200 was lost: still once
    ledger.acknowledge("first")
    assert ledger.attempt("second", second) and ledger.attempt("second", second)
    assert history.counts() == (len(first), len(first) + len(second))
    assert history.requests == {"acknowledged": 1} and history.first_try == 0
    ledger.finish()
    # A request never acknowledged is indeterminate; an answer after the end changes nothing.
    ledger.acknowledge("second")
    assert not ledger.attempt("third", second[:1])
    assert set(history.acked) == {s.key for s in first} and set(history.indeterminate) == {s.key for s in second}
    assert not history.in_flight and history.attempted == len(first) + len(second)
    assert history.requests == {"acknowledged": 1, "never acknowledged": 1}
    assert history.spans_by_kind == {("weftctl", "acknowledged"): len(first), ("weftctl", "indeterminate"): len(second)}


class FakeFront:
    """An OTLP/HTTP endpoint on 127.0.0.1 answering by `policy(body, times this body was seen)` ->
    (status, headers, body); keeps every body it was sent."""

    def __init__(self, policy):
        self.bodies = []
        self.lock = threading.Lock()
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                with front.lock:
                    front.bodies.append(body)
                    seen = front.bodies.count(body)
                status, headers, answer = policy(body, seen)
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.otlp = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


OK = (200, [("Content-Type", "application/x-protobuf")], trace_service_pb2.ExportTraceServiceResponse().SerializeToString())
PARTIAL = (200, [("Content-Type", "application/x-protobuf")], trace_service_pb2.ExportTraceServiceResponse(
    partial_success=trace_service_pb2.ExportTracePartialSuccess(rejected_spans=1)).SerializeToString())
BUSY = (503, [("Retry-After", "2"), ("Content-Type", "text/plain")], b"busy")


def test_proxy_passes_the_front_s_answer_back_and_records_what_it_acknowledged():
    import requests
    plain, partial, zipped = llm_request(5), llm_request(6), llm_request(7)
    answers = {plain: [BUSY, OK, OK], partial: [PARTIAL, PARTIAL], zipped: [OK]}
    rewritten = {rewrite_export(b, "run-p")[0]: b for b in answers}
    front = FakeFront(lambda body, seen: answers[rewritten[body]][seen - 1])
    history = History()
    proxy = RecordingProxy(front, history, "run-p")
    try:
        def post(body, **headers):
            return requests.post(proxy.url, data=body, headers=dict({"Content-Type": "application/x-protobuf"}, **headers), timeout=10)

        r = post(plain)
        assert (r.status_code, r.headers.get("Retry-After"), r.content) == (503, "2", b"busy")
        assert history.counts() == (0, len(rewrite_export(plain, "r")[1]))
        r = post(plain)
        assert r.status_code == 200 and r.content == OK[2]
        n = len(history.acked)
        assert n == history.attempted == len(rewrite_export(plain, "r")[1])
        assert post(plain).status_code == 200  # a third time: counted once
        assert post(partial).status_code == 200 and post(partial).status_code == 200
        assert post(gzip.compress(zipped), **{"Content-Encoding": "gzip"}).status_code == 200
    finally:
        proxy.close()
        front.close()
    # The front got the rewritten bytes, the same ones each time a request was sent again.
    assert len(front.bodies) == 6 and front.bodies[0] == front.bodies[1] == front.bodies[2]
    assert all(rewritten[b] in answers for b in front.bodies)
    spans = lambda b: {s.key for s in rewrite_export(b, "r")[1]}  # noqa: E731
    assert set(history.acked) == spans(plain) | spans(zipped)
    assert set(history.indeterminate) == spans(partial)  # rejected spans: which ones is not known
    assert history.attempted == len(spans(plain) | spans(partial) | spans(zipped))
    assert history.requests == {"acknowledged": 2, "never acknowledged": 1}
    assert history.attempts == {"weftctl": 6}
    assert history.statuses == {"http 503": 1, "http 200": 3, "http 200 with rejected spans": 2}
    assert proxy.error is None


def test_proxy_answers_502_while_the_front_is_unreachable():
    import requests
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    history = History()
    proxy = RecordingProxy(types.SimpleNamespace(otlp="http://127.0.0.1:%d" % port), history, "r")
    try:
        assert requests.post(proxy.url, data=llm_request(8), timeout=10).status_code == 502
    finally:
        proxy.close()
    assert not history.acked and len(history.indeterminate) == history.attempted > 0
    assert history.statuses == {"error ConnectionError": 1}


@pytest.mark.skipif(not os.access(WEFTCTL, os.X_OK), reason="no weftctl binary (swift build --product weftctl)")
def test_weftctl_load_through_the_proxy_is_recorded_once_per_span(tmp_path):
    # The front refuses the first attempt of every request with 503: weftctl sends each twice.
    front = FakeFront(lambda body, seen: BUSY[:1] + ([("Retry-After", "0")], b"busy") if seen == 1 else OK)
    history = History()
    stop = threading.Event()
    fake = types.SimpleNamespace(otlp=front.otlp, cluster=types.SimpleNamespace(bin_dir=os.path.dirname(WEFTCTL), run_dir=str(tmp_path)))
    os.makedirs(tmp_path / "logs")
    client = WeftctlClient("weftctl-0", fake, history, "run-w", 3, stop)
    client.segment_seconds, client.rate = 1, 200
    # Two runs of weftctl, each to its end (the client runs in this thread; the stop follows the second).
    stop.is_set = lambda: len(client.summaries) >= 2
    stop.wait = lambda seconds: time.sleep(seconds) or stop.is_set()
    try:
        client.run()
    finally:
        front.close()
    assert client.error is None, (client.error, (tmp_path / "logs" / "weftctl-0.log").read_text())
    acked_by_weftctl = sum(int(line.split()[2].replace(",", "")) for out in client.summaries
                           for line in out.splitlines() if line.startswith("spans acknowledged"))
    assert acked_by_weftctl == len(history.acked) >= 2 * 20  # at least a request of whole traces a run
    # Each span counted once though every request went twice; the two runs' IDs differ.
    assert history.attempted == len(history.acked) and not history.indeterminate and not history.in_flight
    assert history.attempts["weftctl"] == 2 * history.requests["acknowledged"] == len(front.bodies)
    assert history.statuses == {"http 503": len(front.bodies) // 2, "http 200": len(front.bodies) // 2}
    for body in front.bodies:
        for _, sp in _spans_of(body):
            values = {kv.key: kv.value for kv in sp.attributes}
            assert values["chaos.run"].string_value == "run-w"
            assert (sp.trace_id.hex(), sp.span_id.hex()) in history.acked


def _in_namespace(ns, code):
    out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


UDP_LOSS = """
import socket, threading, time
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rx.bind(("127.0.0.1", 0)); rx.settimeout(1.0)
got = []
def receive():
    try:
        while True:
            rx.recv(100); got.append(1)
    except OSError:
        pass
reader = threading.Thread(target=receive); reader.start()
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(400):
    try:
        tx.sendto(b"x" * 64, rx.getsockname())
    except PermissionError:
        pass  # dropped on the way out: netfilter reports that to the sender
    time.sleep(1 / 150)  # about 16 KB/s, under the rate limit: this measures the random drop only
reader.join()
print(len(got))
"""

TCP_TIME = """
import socket, threading, time
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
def sink():
    c, _ = srv.accept()
    while c.recv(65536): pass
threading.Thread(target=sink, daemon=True).start()
cli = socket.create_connection(srv.getsockname())
t = time.monotonic(); cli.sendall(b"x" * 96 * 1024); cli.shutdown(socket.SHUT_WR)
cli.recv(1)
print(round(time.monotonic() - t, 3))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_delay_and_loss_fault_slows_and_drops_a_namespace_s_packets_and_heals():
    method, why = net.impairment_method()
    if method is None:
        pytest.skip(why)
    ns = "wchaos-test-%s" % uuid.uuid4().hex[:6]
    net.run("ip", "netns", "add", ns)
    try:
        # A node's link has Ethernet's MTU; lo's 64 KiB would not fit the token bucket's burst.
        net.run("ip", "-n", ns, "link", "set", "lo", "mtu", "1500", "up")
        plain_time = float(_in_namespace(ns, TCP_TIME))
        assert int(_in_namespace(ns, UDP_LOSS)) == 400
        if method != "netem":
            # Each half of the fallback on its own, so that one measurement is not the other's effect.
            if "nft" in method:
                net.impair_namespace(ns, "nft", "100ms", "50ms", 5, "lo")
                received = int(_in_namespace(ns, UDP_LOSS))
                # On lo each datagram passes output and input: about 1 − 0.95² ≈ 10 % lost (40 ± 6 of 400).
                assert 400 * 0.80 <= received <= 400 * 0.96, (received, net.impairment_effect(ns, "lo"))
                net.clear_impairment(ns, "lo")
            if "tbf" in method:
                net.impair_namespace(ns, "tbf", "100ms", "50ms", 5, "lo")
                slow_time = float(_in_namespace(ns, TCP_TIME))
                # 96 KiB at 256 kbit/s takes about 3 s; unimpaired, milliseconds.
                assert slow_time > 1.0 and slow_time > 20 * plain_time, (plain_time, slow_time)
                net.clear_impairment(ns, "lo")
        # The fault as the nemesis applies it: both at once, its effect read back, then healed.
        applied = net.impair_namespace(ns, method, "100ms", "50ms", 5, "lo")
        assert applied
        slow_time = float(_in_namespace(ns, TCP_TIME))
        effect = net.impairment_effect(ns, "lo")
        assert slow_time > 20 * plain_time, (plain_time, slow_time, effect)
        if method == "tbf+nft":
            assert effect["tbf"]["overlimits"] > 0 and sum(effect["nft_dropped"].values()) > 0, effect
        net.clear_impairment(ns, "lo")
        assert float(_in_namespace(ns, TCP_TIME)) < 1.0
        assert int(_in_namespace(ns, UDP_LOSS)) == 400
    finally:
        net.run("ip", "netns", "delete", ns, check=False)
