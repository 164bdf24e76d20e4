"""Reads a cluster's answers back and checks them against the workload's history: trace by ID, search,
counts and cost sums by service and tenant, copies per span on each storage node, and answers sampled
while faults were in force."""

import base64
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import requests

from .workload import COST_DENOMINATOR

NODE_READ = {"x-weft-read": "node"}


def span_ids_of(trace_json):
    """{span ID hex} of a Tempo v1 trace answer."""
    out = []
    for b in trace_json.get("batches", []):
        for ss in b.get("scopeSpans", []):
            for s in ss.get("spans", []):
                out.append(base64.b64decode(s["spanId"]).hex())
    return out


def trace_spans(node, trace, node_only=False):
    """(list of span ID hex — with repeats if the answer repeats a span —, partial header or None)."""
    r = requests.get(node.query + "/api/traces/" + trace, headers=NODE_READ if node_only else {}, timeout=30)
    if r.status_code == 404:
        return [], r.headers.get("x-weft-partial")
    r.raise_for_status()
    return span_ids_of(r.json()), r.headers.get("x-weft-partial")


def search_spans(node, run_id, start, end, node_only=False):
    """{(trace, span): times the span appears} from a TraceQL search over [start, end) seconds."""
    r = requests.get(node.query + "/api/search", params={
        "q": '{ span.chaos.run = "%s" }' % run_id, "start": str(start), "end": str(end),
        "limit": "10000", "spss": "1000"}, headers=NODE_READ if node_only else {}, timeout=60)
    r.raise_for_status()
    out = Counter()
    for tr in r.json().get("traces", []):
        tid = tr["traceID"].zfill(32)
        for ss in tr.get("spanSets", []):
            for sp in ss.get("spans", []):
                out[(tid, sp["spanID"].zfill(16))] += 1
    return out


def time_range(history_start_s, history):
    """[start, end) whole seconds holding every span the run sent: from 2 minutes before it began to
    2 minutes past now or past the latest span start sent, whichever is later (a trace's later spans
    start after long provider calls, so a span may start minutes after it is acknowledged)."""
    latest_s = history.latest_start_ns // 1_000_000_000 + 1
    return int(history_start_s) - 120, max(int(time.time()), latest_s) + 120


def aggregate(node, run_id, by, start, end, node_only=False, timeout=30, details=None):
    """{group: (count, cost units)} and (partial?, missing) of `/api/weft/aggregate` over the run's spans.
    With `details` (a dict), also what the answer says of how it was read (`metrics`, `x-weft-fanout`)."""
    r = requests.get(node.query + "/api/weft/aggregate", params={
        "q": '{ span.chaos.run = "%s" }' % run_id, "by": by, "select": "count, sum(span.gen_ai.usage.cost)",
        "start": str(start), "end": str(end), "limit": "1000"}, headers=NODE_READ if node_only else {}, timeout=timeout)
    r.raise_for_status()
    body = r.json()
    if details is not None:
        details["metrics"] = body.get("metrics")
        details["fanout"] = r.headers.get("x-weft-fanout")
    groups = {}
    for row in body["rows"]:
        count, cost = row[-2], row[-1]
        groups[row[0]] = (int(count), round((cost or 0) * COST_DENOMINATOR))
    return groups, bool(body.get("partial")) or bool(r.headers.get("x-weft-partial")), body.get("missing")


def metrics_counts(node, run_id, stage, by, start, end):
    """{group: total} of a TraceQL metrics query over /api/metrics/query_range (samples summed over steps)."""
    r = requests.get(node.query + "/api/metrics/query_range", params={
        "q": '{ span.chaos.run = "%s" } | %s by (%s)' % (run_id, stage, by), "start": str(start), "end": str(end),
        "step": "60s"}, timeout=30)
    r.raise_for_status()
    out = {}
    for series in r.json().get("series", []):
        label = None
        for kv in series.get("labels", []):
            if kv["key"] == by:
                label = next(iter(kv["value"].values()))
        total = sum(float(s["value"]) for s in series.get("samples", []))
        out[label] = out.get(label, 0) + total
    return out, r.headers.get("x-weft-partial")


def expected_groups(spans, field):
    g = defaultdict(lambda: [0, 0])
    for s in spans:
        key = s.service if field == "service" else s.tenant
        g[key][0] += 1
        g[key][1] += s.cost_units
    return g


class Sampler(threading.Thread):
    """During the run: a count query every `period` seconds, judged against what was acknowledged before it
    started and what had been sent when it ended. Exact (or within what was in flight), or flagged partial;
    never more than was sent."""

    def __init__(self, cluster, history, run_id, start_s, stop, period=3.0, nemesis=None):
        super().__init__(name="sampler", daemon=True)
        self.cluster, self.history, self.run_id, self.start_s, self.stop = cluster, history, run_id, start_s, stop
        self.period, self.nemesis = period, nemesis
        self.samples = []  # dicts

    max_diagnoses = 3

    def run(self):
        diagnosed = 0
        while not self.stop.wait(self.period):
            acked_keys = self.history.acked_keys()
            acked_before, _ = self.history.counts()
            start, end = time_range(self.start_s, self.history)
            faults = self.nemesis.active_names() if self.nemesis else []
            details = {}
            try:
                groups, partial, _ = aggregate(self.cluster.front, self.run_id, "resource.service.name", start, end, timeout=20, details=details)
                error = None
            except Exception as e:
                groups, partial, error = {}, None, "%s" % type(e).__name__
            acked_after, sent_after = self.history.counts()
            count = sum(c for c, _ in groups.values())
            sample = {"t": round(time.time() - self.start_s, 1), "count": count, "acked_before": acked_before,
                      "sent_after": sent_after, "partial": partial, "error": error, "faults": faults}
            if error is None:
                sample["over"] = count > sent_after
                sample["under_unflagged"] = (not partial) and count < acked_before
                if sample["under_unflagged"] and diagnosed < self.max_diagnoses:
                    diagnosed += 1
                    sample["read"] = details
                    try:
                        again, again_partial, _ = aggregate(self.cluster.front, self.run_id, "resource.service.name", start, end, timeout=20)
                        sample["count_again"] = [sum(c for c, _ in again.values()), again_partial]
                    except Exception as e:
                        sample["count_again"] = "failed: %s" % e
                    try:
                        sample["missing"] = self.diagnose(acked_keys, acked_before - count)
                    except Exception as e:
                        sample["missing"] = "diagnosis failed: %s" % e
            self.samples.append(sample)

    def diagnose(self, acked_keys, short):
        """Which acknowledged spans an under-counting answer missed: searches the front over 10-second
        windows of span starts, newest first, until `short` acknowledged spans are found missing (at most
        60 windows), then asks every running storage node (node-only reads) for each missing span's
        trace. Returns [{trace, span, start_s, acked_s, front_has_it_now, holders}]."""
        spans = [self.history.acked[k] for k in acked_keys]
        hi = max(s.start_ns for s in spans) // 1_000_000_000 + 1
        missing = []
        for n in range(60):
            end = hi - 10 * n
            start = end - 10
            want = {s.key: s for s in spans if start <= s.start_ns // 1_000_000_000 < end}
            if not want:
                continue
            seen = search_spans(self.cluster.front, self.run_id, start, end)
            missing += [want[k] for k in want if k not in seen]
            if len(missing) >= short:
                break
        out = []
        for s in missing[:5]:
            holders = {}
            for node in self.cluster.storage_nodes(running=True):
                try:
                    ids, _ = trace_spans(node, s.trace, node_only=True)
                    holders[node.name] = s.span in ids
                except Exception as e:
                    holders[node.name] = "error %s" % type(e).__name__
            try:
                now_ids, _ = trace_spans(self.cluster.front, s.trace)
            except Exception as e:
                now_ids = []
            out.append({"trace": s.trace, "span": s.span, "start_s": round(s.start_ns / 1e9, 3),
                        "acked_s": round(self.history.acked_at.get(s.key, 0), 3), "front_has_it_now": s.span in now_ids,
                        "holders": holders})
        return out


def wait_rf_restored(cluster, history, run_id, rf, start_s, before_ns, within_s=40.0, poll_s=1.0):
    """After a fault: waits until the storage nodes hold exactly RF copies of what was acknowledged before
    it began. Counts each running replica's rows (node-only) of the run's spans started before `before_ns`
    (whole seconds) and compares the sum with RF × the acknowledged spans (up to RF × the spans that may be
    stored, for requests never acknowledged or still in flight). Returns a dict: `rf_restored_after_s`
    (None when not within `within_s`), `copies` and `expected`."""
    end_s = before_ns // 1_000_000_000
    cut_ns = end_s * 1_000_000_000
    started = time.monotonic()
    last = {}
    while True:
        acked, maybe = history.started_before(cut_ns)
        rows, error = 0, None
        try:
            for n in cluster.storage_nodes(running=True, replicas=True):
                groups, _, _ = aggregate(n, run_id, "resource.service.name", int(start_s) - 120, end_s, node_only=True, timeout=10)
                rows += sum(c for c, _ in groups.values())
        except Exception as e:
            error = "%s" % type(e).__name__
        elapsed = time.monotonic() - started
        last = {"copies": rows, "expected": [rf * acked, rf * maybe]}
        if error is None and rf * acked <= rows <= rf * maybe:
            return dict(last, rf_restored_after_s=round(elapsed, 1))
        if elapsed > within_s:
            return dict(last, rf_restored_after_s=None, error=error)
        time.sleep(poll_s)


class Checker:
    def __init__(self, cluster, history, run_id, start_s, rf, workers=8):
        self.cluster, self.history, self.run_id, self.start_s, self.rf = cluster, history, run_id, start_s, rf
        self.workers = workers
        self.results = {}
        self.violations = []

    # Each violation is filed under the invariant it breaks: reads (trace by ID, search, counts and sums
    # after healing), during-run (answers sampled while faults were in force), replicas (copies per
    # span on the storage nodes), crash, harness.
    category = "harness"

    def violate(self, what):
        self.violations.append("[%s] %s" % (self.category, what))

    # 1. Trace by ID and search ---------------------------------------------------------------------

    def check_trace_by_id(self, sample=0, seed=0):
        """Every acknowledged span of every acknowledged trace (or of `sample` traces drawn with `seed`)
        in the front's `/api/traces/ID`."""
        self.category = "reads"
        acked_by_trace = defaultdict(set)
        for (t, s) in self.history.acked:
            acked_by_trace[t].add(s)
        sampled = bool(sample) and len(acked_by_trace) > sample
        if sampled:
            import random
            chosen = random.Random(seed).sample(sorted(acked_by_trace), sample)
            acked_by_trace = {t: acked_by_trace[t] for t in chosen}
        maybe = defaultdict(set)
        for (t, s) in self.history.indeterminate:
            maybe[t].add(s)
        front = self.cluster.front
        lost, dup, unknown, partial = [], 0, 0, 0

        def one(trace):
            for attempt in range(3):
                try:
                    return trace, trace_spans(front, trace)
                except requests.RequestException:
                    time.sleep(0.5)
            return trace, None

        with ThreadPoolExecutor(self.workers) as pool:
            for trace, answer in pool.map(one, list(acked_by_trace)):
                if answer is None:
                    lost.append((trace, "query failed"))
                    continue
                ids, flag = answer
                if flag:
                    partial += 1
                got = Counter(ids)
                dup += sum(c - 1 for c in got.values() if c > 1)
                missing = acked_by_trace[trace] - set(got)
                if missing:
                    lost.extend((trace, s) for s in sorted(missing))
                unknown += len(set(got) - acked_by_trace[trace] - maybe[trace])
        self.results["trace_by_id"] = {"traces": len(acked_by_trace), "sampled": sampled, "lost_spans": len(lost), "duplicated_spans": dup,
                                       "unknown_spans": unknown, "partial_answers": partial, "lost_sample": lost[:5]}
        if lost:
            self.violate("%d acknowledged spans not found by trace ID (e.g. %s)" % (len(lost), lost[:3]))
        if dup:
            self.violate("%d spans returned twice by trace ID" % dup)
        if unknown:
            self.violate("%d spans by trace ID that no client ever sent" % unknown)

    def check_search(self):
        """Every acknowledged span found by a TraceQL search over the run (`{ span.chaos.run = … }`,
        10-second windows, every matched span listed)."""
        self.category = "reads"
        found = Counter()
        partial = 0
        for a, b in self.windows():
            for key, c in self.search_spans(self.cluster.front, a, b, node_only=False).items():
                found[key] = max(found[key], c)
        missing = [k for k in self.history.acked if k not in found]
        unknown = [k for k in found if k not in self.history.acked and k not in self.history.indeterminate]
        self.results["search"] = {"spans": len(self.history.acked), "missing_spans": len(missing),
                                  "missing_traces": len({t for t, _ in missing}), "unknown_spans": len(unknown),
                                  "repeated_spans": sum(1 for c in found.values() if c > 1)}
        if missing:
            self.violate("%d acknowledged spans (%d traces) not found by search (e.g. %s)" % (
                len(missing), len({t for t, _ in missing}), missing[:3]))
        if unknown:
            self.violate("%d spans found by search that no client sent" % len(unknown))

    # 2. Counts and sums ----------------------------------------------------------------------------

    def check_aggregates(self):
        self.category = "reads"
        start, end = time_range(self.start_s, self.history)
        acked = list(self.history.acked.values())
        maybe = list(self.history.indeterminate.values())
        out = {}
        for field, by in (("service", "resource.service.name"), ("tenant", "span.tenant")):
            exp, extra = expected_groups(acked, field), expected_groups(maybe, field)
            got, partial, missing = aggregate(self.cluster.front, self.run_id, by, start, end)
            rows = {}
            for key in sorted(set(exp) | set(extra) | set(got)):
                lo_c, lo_s = exp.get(key, (0, 0))
                ex_c, ex_s = extra.get(key, (0, 0))
                c, s = got.get(key, (0, 0))
                ok = lo_c <= c <= lo_c + ex_c and lo_s <= s <= lo_s + ex_s
                rows[key] = {"count": c, "expected": [lo_c, lo_c + ex_c], "cost": s / COST_DENOMINATOR,
                             "expected_cost": [lo_s / COST_DENOMINATOR, (lo_s + ex_s) / COST_DENOMINATOR], "ok": ok}
                if not ok:
                    self.violate("aggregate by %s: %s count %d (expected %d..%d), cost %s (expected %s..%s)" % (
                        field, key, c, lo_c, lo_c + ex_c, s / COST_DENOMINATOR, lo_s / COST_DENOMINATOR,
                        (lo_s + ex_s) / COST_DENOMINATOR))
            if partial:
                self.violate("final aggregate by %s flagged partial: %s" % (field, missing))
            # The same through TraceQL metrics (Tempo's query_range shape).
            counts, flag = metrics_counts(self.cluster.front, self.run_id, "count_over_time()", by, start, end)
            sums, _ = metrics_counts(self.cluster.front, self.run_id, "sum_over_time(span.gen_ai.usage.cost)", by, start, end)
            for key in sorted(set(exp) | set(extra) | set(counts)):
                lo_c, lo_s = exp.get(key, (0, 0))
                ex_c, ex_s = extra.get(key, (0, 0))
                c = counts.get(key, 0)
                s = round(sums.get(key, 0) * COST_DENOMINATOR)
                if not (lo_c <= c <= lo_c + ex_c and lo_s <= s <= lo_s + ex_s):
                    self.violate("query_range by %s: %s count_over_time %s (expected %d..%d), sum_over_time %s (expected %s..%s)" % (
                        field, key, c, lo_c, lo_c + ex_c, s / COST_DENOMINATOR, lo_s / COST_DENOMINATOR,
                        (lo_s + ex_s) / COST_DENOMINATOR))
            out[field] = rows
        self.results["aggregates"] = out

    # 3. Copies per span --------------------------------------------------------------------------

    def search_spans(self, node, start, end, node_only):
        return search_spans(node, self.run_id, start, end, node_only)

    def windows(self, seconds=10):
        spans = list(self.history.acked.values()) + list(self.history.indeterminate.values())
        if not spans:
            return []
        lo = min(s.start_ns for s in spans) // 1_000_000_000 - 1
        hi = max(s.start_ns for s in spans) // 1_000_000_000 + 2
        return [(t, min(t + seconds, hi)) for t in range(lo, hi, seconds)]

    def replica_census(self):
        """Per span, on how many running storage nodes a node-only search finds it, and repeats within one
        node's answer. A span in two overlapping windows counts once per node."""
        nodes = self.cluster.storage_nodes(running=True, replicas=True)
        copies = Counter()
        repeats = Counter()

        def one(args):
            node, (a, b) = args
            for attempt in range(3):
                try:
                    return node.name, self.search_spans(node, a, b, node_only=True)
                except requests.RequestException:
                    time.sleep(0.5)
            return node.name, None

        failures = 0
        held = defaultdict(Counter)  # node -> span -> max repeats over windows
        with ThreadPoolExecutor(self.workers) as pool:
            for node, found in pool.map(one, [(n, w) for n in nodes for w in self.windows()]):
                if found is None:
                    failures += 1
                    continue
                for key, c in found.items():
                    held[node][key] = max(held[node][key], c)
        self.holders = defaultdict(list)  # span -> nodes holding it (for the report when a count is wrong)
        for node, spans in held.items():
            for (trace, sid), c in spans.items():
                copies[sid] += 1
                self.holders[sid].append(node)
                if c > 1:
                    repeats[(node, sid)] += c - 1
        return copies, repeats, failures

    def node_row_counts(self):
        """{node: spans of the run it holds, counted as rows (so a span stored twice counts twice)}."""
        start, end = time_range(self.start_s, self.history)
        out = {}
        for n in self.cluster.storage_nodes(running=True, replicas=True):
            groups, _, _ = aggregate(n, self.run_id, "resource.service.name", start, end, node_only=True)
            out[n.name] = sum(c for c, _ in groups.values())
        return out

    def check_replicas(self, within_seconds):
        """Every acknowledged span on exactly RF storage nodes, none twice on one node, within a deadline."""
        self.category = "replicas"
        started = time.monotonic()
        acked_spans = {s for (_, s) in self.history.acked}
        maybe = {s for (_, s) in self.history.indeterminate}
        while True:
            copies, repeats, failures = self.replica_census()
            wrong = {s: copies.get(s, 0) for s in acked_spans if copies.get(s, 0) != self.rf}
            wrong_maybe = {s: c for s, c in copies.items() if s in maybe and c not in (0, self.rf)}
            elapsed = time.monotonic() - started
            if (not wrong and not wrong_maybe and not failures) or elapsed > within_seconds:
                break
            time.sleep(3)
        rows = self.node_row_counts()
        hist = Counter(copies.get(s, 0) for s in acked_spans)
        self.results["replicas"] = {
            "rf": self.rf, "copies_histogram": {str(k): v for k, v in sorted(hist.items())},
            "spans_not_on_rf_nodes": len(wrong), "indeterminate_on_some_but_not_rf": len(wrong_maybe),
            "repeated_on_one_node": sum(repeats.values()), "read_failures": failures,
            "node_rows": rows, "seconds_to_rf": round(elapsed, 1) if not wrong else None,
            "wrong_holder_sets": {"+".join(sorted(k)) or "(none)": v for k, v in Counter(
                tuple(sorted(self.holders.get(s, []))) for s in wrong).most_common(8)},
        }
        if wrong:
            self.violate("%d acknowledged spans not on exactly RF=%d nodes after %.0f s (copies histogram %s)" % (
                len(wrong), self.rf, elapsed, dict(hist)))
        if wrong_maybe:
            self.violate("%d indeterminate spans on some nodes but not RF" % len(wrong_maybe))
        if repeats:
            self.violate("%d span copies repeated within one node's trace answer" % sum(repeats.values()))
        total_rows = sum(rows.values())
        lo = self.rf * len(acked_spans)
        hi = self.rf * (len(acked_spans) + len(maybe))
        if not lo <= total_rows <= hi:
            self.violate("storage nodes hold %d span rows of the run in all; RF × spans is %d..%d (rows per node %s)" % (
                total_rows, lo, hi, rows))

    # 4. Crashes ----------------------------------------------------------------------------------

    def check_crashes(self):
        self.category = "crash"
        crashes = {}
        for n in self.cluster.nodes.values():
            n.poll_crash()
            bad = [code for code, expected in n.exits if not expected]
            fatal = n.fatal_lines()
            if bad or fatal:
                crashes[n.name] = {"exits": bad, "fatal_lines": fatal[:5]}
        self.results["crashes"] = crashes
        for name, c in crashes.items():
            self.violate("node %s: unexpected exits %s, log %s" % (name, c["exits"], c["fatal_lines"][:2]))

    def check_samples(self, samples):
        self.category = "during-run"
        over = [s for s in samples if s.get("over")]
        under = [s for s in samples if s.get("under_unflagged")]
        self.results["samples"] = {"taken": len(samples), "failed": sum(1 for s in samples if s["error"]),
                                   "partial": sum(1 for s in samples if s.get("partial")),
                                   "over_counted": len(over), "under_counted_unflagged": len(under),
                                   "examples": (over + under)[:5]}
        if over:
            self.violate("%d answers during the run counted more spans than had been sent (e.g. %s)" % (len(over), over[0]))
        if under:
            self.violate("%d answers during the run under-counted acknowledged spans without partial (e.g. %s)" % (len(under), under[0]))
