"""The campaign: starts a node, sends cases round-robin across families, checks the invariants after
each, and at the end restarts the node on the same data directory and reads back acknowledged traces."""

import json
import os
import random
import signal
import sys
import time

from . import otlp, rawhttp
from .case import Failure, Request
from .families import export, org_headers
from .node import Node, NodeError
from .registry import DEFAULT_FAMILIES, FAMILIES

GIB = 1 << 30


class Limits:
    def __init__(self, query_seconds=2.0, ingest_seconds=5.0, rss_bytes=int(1.5 * GIB), ready_seconds=60.0, seconds_per_mib=1.0):
        self.deadline = {"query": query_seconds, "ingest": ingest_seconds, "flush": 30.0}
        # Large bodies (and the traces they make) get this much more per MiB: linear work is allowed,
        # anything worse still misses the deadline.
        self.seconds_per_mib = seconds_per_mib
        self.rss_bytes = rss_bytes
        self.ready_seconds = ready_seconds


def case_rng(seed, family, index):
    return random.Random("%s/%s/%d" % (seed, family, index))


def baseline(seed, now_ns):
    """Traces every node starts with (the same IDs per seed): the first round is flushed into blocks, the
    second stays in the head; under the default org and two named ones; regex bait values included.
    Yields (round, org, request, trace IDs)."""
    rng = random.Random("%s/baseline" % seed)
    for round_ in range(2):
        for org in (None, b"acme", b"globex"):
            request, ids = otlp.make_request(rng, now_ns, traces=4)
            yield round_, org, request, ids


def baseline_ids(seed, now_ns):
    """The baseline trace IDs of the default org."""
    return [tid for _, org, _, ids in baseline(seed, now_ns) if org is None for tid in ids]


class Context:
    """What generators may read: the clock and the baseline traces (both fixed per seed and node)."""

    def __init__(self, now_ns, baseline_ids):
        self.now_ns = now_ns
        self.baseline_ids = baseline_ids


class Found:
    """One failure, with what replays it."""

    def __init__(self, family, index, shape, failure, request, replay):
        self.family, self.index, self.shape = family, index, shape
        self.kind, self.detail = failure.kind, failure.detail
        self.request = request
        self.replay = replay

    def signature(self):
        return self.family, self.kind, self.shape

    def text(self, seed):
        lines = ["FAIL [%s #%s] %s: %s" % (self.family, self.index, self.kind, self.detail),
                 "  shape:  %s" % self.shape]
        if self.request:
            lines.append("  case:   %s" % self.request)
        lines += ["  seed:   %s" % seed, "  replay: %s" % self.replay]
        return "\n".join(lines)


class Campaign:
    def __init__(self, binary, seed, families=None, seconds=60.0, limits=None, log=print, narrow_seconds=60.0, verify_sample=50,
                 max_cases=None):
        self.binary = binary
        self.seed = seed
        self.families = list(families or DEFAULT_FAMILIES)
        for f in self.families:
            if f not in FAMILIES:
                raise ValueError("unknown family %r (have %s)" % (f, ", ".join(FAMILIES)))
        self.seconds = seconds
        self.limits = limits or Limits()
        self.log = log
        self.narrow_seconds = narrow_seconds
        self.verify_sample = verify_sample
        self.max_cases = max_cases  # stop after this many cases even if time is left
        self.verbose = False  # log every request and its answer
        self.rng = random.Random("%s/campaign" % seed)
        self.node = None
        self.ledger = {}  # org header (bytes or None) -> [(trace ID, case label)]
        self.suspects = []  # ingest cases answered 2xx since the data dir was created: (body bytes, family, index)
        self.failures = []
        self.signatures = {}  # (family, kind, shape) -> [Found]
        self.print_per_signature = 3
        self.counts = {f: 0 for f in self.families}
        self.spent = {f: 0.0 for f in self.families}
        self.current = None  # (family, index) of the running case
        self.last_request = None
        self.ctx = None

    # MARK: node lifecycle

    def fresh_node(self):
        if self.node is not None:
            self.node.discard()
        self.node = Node(self.binary).start(self.limits.ready_seconds)
        self.ledger, self.suspects = {}, []
        self.seed_baseline()

    def seed_baseline(self):
        now = time.time_ns()
        for round_, org, request, ids in baseline(self.seed, now):
            r = self.raw(export(otlp.to_protobuf(request), org=org), label="baseline")
            if r.status != 200:
                raise NodeError("baseline export answered %d: %r" % (r.status, r.body[:200]))
            self.ack(org, ids, "baseline")
            if round_ == 0 and org == b"globex":
                self.raw(Request("POST", "query", "/flush"), label="baseline")
        self.ctx = Context(now, baseline_ids(self.seed, now))

    def raw(self, req, label):
        address = self.node.otlp if req.port == "otlp" else self.node.query
        try:
            return rawhttp.request(address, req.method, req.target, req.headers, req.body, timeout=60)
        except rawhttp.NoAnswer as e:
            raise NodeError("%s request %s: %s" % (label, req.describe(), e.why))

    # MARK: what cases call

    def send(self, req):
        """Sends one request of the running case and checks the generic invariants."""
        self.last_request = req.describe()
        deadline = self.limits.deadline[req.deadline] + self.limits.seconds_per_mib * req.size / (1 << 20)
        address = self.node.otlp if req.port == "otlp" else self.node.query
        try:
            r = rawhttp.request(address, req.method, req.target, req.headers, req.body, timeout=deadline + 3.0)
        except rawhttp.NoAnswer as e:
            self.node.settle(1.0)  # a crashing process may still be on its way out
            self.check_alive()
            if "within" in e.why:
                raise Failure("timeout", "no answer within %.1f s (deadline %.1f s)" % (e.elapsed, deadline))
            raise Failure("no-answer", e.why)
        if self.verbose:
            self.log("  %s -> %d in %.2f s %r" % (req.describe(120), r.status, r.elapsed, r.body[:160]))
        self.check_alive()
        self.check_memory()
        if r.status >= 500 and not (r.status == 503 and "retry-after" in r.headers):
            raise Failure("5xx", "status %d: %r" % (r.status, r.body[:300]))
        if not (200 <= r.status < 500):
            raise Failure("bad-status", "status %d" % r.status)
        if r.elapsed > deadline:
            raise Failure("timeout", "answered %d after %.2f s (deadline %.1f s)" % (r.status, r.elapsed, deadline))
        if req.json_answer and r.status == 200:
            try:
                json.loads(r.body)
            except ValueError as e:
                raise Failure("bad-json", "200 with a body that is not JSON (%s): %r" % (e, r.body[:200]))
        if req.port == "otlp" and 200 <= r.status < 300 and self.current:
            self.suspects.append((len(req.body), self.current[0], self.current[1]))
        return r

    def ack(self, org, ids, label=None):
        label = label or "%s#%d" % self.current
        self.ledger.setdefault(org, []).extend((tid, label) for tid in ids)

    def check_alive(self):
        if not self.node.alive():
            time.sleep(0.3)  # the last lines of the crash report
            raise Failure("crash", "weft %s: %s" % (self.node.exit_description(), self.node.crash_summary()))

    def check_memory(self):
        rss, peak = self.node.memory()
        if peak > self.limits.rss_bytes:
            raise Failure("rss", "peak RSS %.0f MiB (now %.0f MiB) over the bound of %.0f MiB"
                          % (peak / (1 << 20), rss / (1 << 20), self.limits.rss_bytes / (1 << 20)))

    # MARK: restart

    def restart_and_verify(self, sig=signal.SIGTERM):
        """Stops the node, starts it on the same data dir, waits for /ready and reads back a sample of the
        ledger by trace ID. Raises Failure."""
        problems = []
        if self.node.alive() and not self.node.stop(sig, timeout=30):
            problems.append(Failure("shutdown-hang", "weft did not exit within 30 s of %s" % signal.Signals(sig).name))
        try:
            self.node.start(self.limits.ready_seconds)
        except NodeError as e:
            raise Failure("restart", "the node did not come back on its data dir: %s" % e)
        entries = [(org, tid, label) for org, items in self.ledger.items() for tid, label in items]
        sample = entries if len(entries) <= self.verify_sample else self.rng.sample(entries, self.verify_sample)
        for org, tid, label in sample:
            req = Request("GET", "query", "/api/traces/" + tid, org_headers(org))
            try:
                r = rawhttp.request(self.node.query, req.method, req.target, req.headers, timeout=60)
            except rawhttp.NoAnswer as e:
                self.node.settle(1.0)
                kind = "crash" if not self.node.alive() else "timeout"
                raise Failure(kind, "after restart, reading trace %s (org %r, written by %s): %s %s"
                              % (tid, _org(org), label, e.why, "" if self.node.alive() else self.node.crash_summary()))
            if r.status != 200:
                lost = Failure("lost-trace", "after restart, trace %s (org %r, written by %s) answers %d" % (tid, _org(org), label, r.status))
                if "#" in label:
                    family, index = label.split("#")
                    lost.source = (family, int(index))
                raise lost
        if problems:
            raise problems[0]

    # MARK: the loop

    def replay_command(self, family, index):
        return "python3 Tests/Fuzz/run.py --weft %s --seed %s --family %s --case %d" % (self.binary, self.seed, family, index)

    def record(self, family, index, shape, failure, request=None, replay=None):
        """Keeps every failure; prints the first few of each (family, kind, shape)."""
        found = Found(family, index, shape, failure, request, replay or self.replay_command(family, index))
        self.failures.append(found)
        seen = self.signatures.setdefault(found.signature(), [])
        seen.append(found)
        if len(seen) <= self.print_per_signature:
            self.log(found.text(self.seed))
        elif len(seen) == self.print_per_signature + 1:
            self.log("(more failures like %s are counted, not printed)" % (found.signature(),))
        sys.stdout.flush()

    def run_case(self, family, index):
        case = FAMILIES[family](case_rng(self.seed, family, index), index, self.ctx)
        self.current, self.last_request = (family, index), None
        started = time.monotonic()
        try:
            case.run(self)
            return None
        except Failure as failure:
            self.record(family, index, case.shape, failure, self.last_request)
            return failure
        finally:
            self.counts[family] += 1
            self.spent[family] += time.monotonic() - started
            self.current = None

    def recover(self, family, index, failure):
        """After a failure: a dead or stuck node (a timeout leaves a query running) must come back on its
        own data dir with its acknowledged traces (a failure of its own); if it cannot, the campaign goes
        on with a fresh node."""
        busy = not self.node.alive() or failure.kind == "timeout"
        if not busy:
            try:
                busy = rawhttp.request(self.node.query, "GET", "/ready", timeout=2).status != 200
            except rawhttp.NoAnswer:
                busy = True
        if not busy:
            return
        try:
            self.restart_and_verify(signal.SIGKILL)
        except Failure as f:
            source = getattr(f, "source", None)
            if source:
                f.detail += " (the restart after %s #%d)" % (family, index)
                self.record(source[0], source[1], "trace lost by a restart", f)
            else:
                self.record(family, index, "restart after the failure above", f)
            self.fresh_node()

    def periodic_flush(self, family):
        """Cuts the head into blocks, so later cases read blocks too; the flush must succeed."""
        self.current = (family, self.counts[family] - 1)
        try:
            r = self.send(Request("POST", "query", "/flush", deadline="flush"))
            if r.status != 200:
                raise Failure("bad-status", "POST /flush answered %d: %r" % (r.status, r.body[:300]))
        except Failure as f:
            self.record(family, self.counts[family] - 1, "the flush after this case", f, "POST /flush")
            self.recover(family, self.counts[family] - 1, f)
        finally:
            self.current = None

    def run(self, only=None):
        """Runs until `seconds` pass (or `max_cases` ran), or just the case `only` = (family, index).
        Returns the failures."""
        t0 = time.monotonic()
        self.fresh_node()
        if only is not None:
            f = self.run_case(*only)
            if f is not None:
                self.recover(only[0], only[1], f)
        else:
            n = 0
            while time.monotonic() - t0 < self.seconds and (self.max_cases is None or n < self.max_cases):
                family = self.families[n % len(self.families)]
                f = self.run_case(family, self.counts[family])
                if f is not None:
                    self.recover(family, self.counts[family] - 1, f)
                n += 1
                if n % 100 == 0:
                    self.periodic_flush(family)
        self.final_restart(narrow=only is None)
        self.elapsed = time.monotonic() - t0
        if self.node is not None:
            self.node.discard()
        return self.failures

    def restart_twice(self):
        """After SIGKILL (the WAL replays every acknowledged export); then, with the head flushed into
        blocks, after SIGTERM (graceful: must exit within 30 s; the blocks are read back)."""
        self.restart_and_verify(signal.SIGKILL)
        try:
            r = rawhttp.request(self.node.query, "POST", "/flush", timeout=60)
        except rawhttp.NoAnswer as e:
            self.node.settle(1.0)
            raise Failure("crash" if not self.node.alive() else "no-answer", "POST /flush before the restart: %s %s" % (e.why, self.node.crash_summary()))
        if r.status != 200:
            raise Failure("5xx" if r.status >= 500 else "bad-status", "POST /flush before the restart answered %d: %r" % (r.status, r.body[:300]))
        self.restart_and_verify(signal.SIGTERM)

    def final_restart(self, narrow):
        try:
            self.restart_twice()
        except Failure as f:
            culprit = getattr(f, "source", None) or (self.narrow_restart_failure() if narrow else None)
            if culprit:
                family, index = culprit
                self.record(family, index, "restart on the same data dir (narrowed to this case)", f)
            else:
                self.record(*(self.current or ("restart", -1)), "restart on the same data dir", f,
                            replay="python3 Tests/Fuzz/run.py --weft %s --seed %s --seconds %s --families %s"
                                   % (self.binary, self.seed, self.seconds, ",".join(self.families)))

    def narrow_restart_failure(self):
        """Replays ingest cases that were answered 2xx (largest first), each on a fresh node followed by a
        restart, until one reproduces the restart failure or `narrow_seconds` pass."""
        deadline = time.monotonic() + self.narrow_seconds
        seen = set()
        for _, family, index in sorted(self.suspects, reverse=True):
            if (family, index) in seen or time.monotonic() > deadline:
                continue
            seen.add((family, index))
            probe = Campaign(self.binary, self.seed, [family], limits=self.limits, log=lambda *_: None)
            probe.fresh_node()
            try:
                probe.run_case(family, index)
                probe.restart_twice()
            except Failure:
                return family, index
            except NodeError:
                pass
            finally:
                probe.node.discard()
        return None

    def summary(self):
        lines = ["family       cases   seconds  failures"]
        for f in self.families:
            n = sum(1 for x in self.failures if x.family == f)
            lines.append("%-12s %5d %9.1f %9d" % (f, self.counts[f], self.spent[f], n))
        other = [x for x in self.failures if x.family not in self.families]
        if other:
            lines.append("%-12s %5s %9s %9d" % ("(restart)", "", "", len(other)))
        if self.signatures:
            lines.append("distinct failures (family, kind, shape): count, first case")
            for (family, kind, shape), found in sorted(self.signatures.items(), key=lambda kv: (kv[0][0], kv[0][1], str(kv[0][2]))):
                lines.append("  %s %s [%s]: %d, #%s" % (family, kind, shape, len(found), found[0].index))
        lines.append("seed %s, %.1f s in all, %d failure(s)" % (self.seed, getattr(self, "elapsed", 0.0), len(self.failures)))
        return "\n".join(lines)


def _org(org):
    return None if org is None else org[:40]


def default_binary():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    return os.environ.get("WEFT_BIN", os.path.join(root, ".build", "debug", "weft"))
