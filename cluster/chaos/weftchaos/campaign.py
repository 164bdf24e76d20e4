"""One fault campaign: start the cluster, run the workload with the nemesis and the sampler, heal,
check every invariant, print the one-page report and write it as JSON."""

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid

from . import net
from .checker import Checker, Sampler, wait_rf_restored
from .cluster import Cluster, StartFailed, wait_until
from .nemesis import FAULTS, Nemesis, plan
from .workload import CLIENTS, History, start_clients

DEFAULT_FAULTS = ",".join(FAULTS)
DEFAULT_CLIENTS = "otel-sdk,h2c,grpc,weftctl"


def parse(argv):
    p = argparse.ArgumentParser(prog="cluster/chaos/run", description="A fault campaign against a real Weft cluster.")
    p.add_argument("--nodes", type=int, default=5, help="storage nodes (an ingest+query front is added)")
    p.add_argument("--rf", type=int, default=3, help="replication factor")
    p.add_argument("--minutes", type=float, default=5, help="length of the load with faults")
    p.add_argument("--seed", type=int, default=1, help="seeds the fault schedule and the span IDs")
    p.add_argument("--bin", default=None, help="directory with weft and weftctl (default .build/debug)")
    p.add_argument("--netns", action="store_true", help="each node in its own network namespace (root): enables partitions and netem")
    p.add_argument("--faults", default=DEFAULT_FAULTS, help="comma-separated fault kinds (default: all): " + DEFAULT_FAULTS)
    p.add_argument("--clients", default=DEFAULT_CLIENTS, help="comma-separated client kinds: " + ",".join(CLIENTS))
    p.add_argument("--pace", type=float, default=0.2, help="seconds each client waits between requests")
    p.add_argument("--run-dir", default=None, help="where data dirs and logs go (default: a new temporary directory)")
    p.add_argument("--json", default=None, help="report file (default RUN_DIR/report.json)")
    p.add_argument("--log-level", default="info")
    p.add_argument("--trace-sample", type=int, default=1500,
                   help="acknowledged traces read back by trace ID on the front (0 = all; search covers every span)")
    p.add_argument("--replica-deadline", type=float, default=90, help="seconds after healing for every span to be on RF nodes")
    p.add_argument("--schedule", default=None,
                   help="a fixed schedule instead of a seeded one: GAP:KIND:TARGET[+TARGET…]:DURATION,… (e.g. 10:kill:s2:5,8:drain:s4:0)")
    p.add_argument("--fail-on", default="reads,during-run,replicas,crash,harness",
                   help="violation categories that make the exit status 1 (all are reported)")
    p.add_argument("--plan-only", action="store_true", help="print the schedule for the seed and exit")
    a = p.parse_args(argv)
    if a.nodes < 1 or a.rf < 1 or a.minutes <= 0:
        p.error("--nodes, --rf and --minutes must be positive")
    unknown = set(a.faults.split(",")) - set(FAULTS) - {""}
    if unknown:
        p.error("unknown fault kinds: %s" % ", ".join(sorted(unknown)))
    bad = set(a.clients.split(",")) - set(CLIENTS)
    if bad:
        p.error("unknown client kinds: %s" % ", ".join(sorted(bad)))
    return a


def fixed_schedule(text):
    """[(gap, kind, targets, duration)] from GAP:KIND:TARGET[+TARGET…]:DURATION,…"""
    out = []
    for item in text.split(","):
        gap, kind, targets, duration = item.split(":")
        if kind not in FAULTS:
            raise SystemExit("--schedule: unknown fault kind %r" % kind)
        out.append((float(gap), kind, targets.split("+"), float(duration)))
    return out


def available_faults(requested, netns, notes):
    """(the kinds the schedule may draw, how `netem` delays and drops packets here or None)."""
    root = os.geteuid() == 0
    kinds, impairment = [], None
    for kind in requested:
        needs = FAULTS[kind][0]
        if needs == "netns" and not netns:
            notes.append("skipped %s: needs --netns (root)" % kind)
            continue
        if needs == "root" and not root:
            notes.append("skipped %s: needs root (it mounts a small file system)" % kind)
            continue
        if kind == "netem":
            impairment, why = net.impairment_method()
            if impairment is None:
                notes.append("skipped netem: %s" % why)
                continue
            if why:
                notes.append("netem: " + why)
        kinds.append(kind)
    return kinds, impairment


def main(argv=None, out=sys.stdout):
    a = parse(argv if argv is not None else sys.argv[1:])
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the nodes, namespaces and mounts are cleaned up.
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    bin_dir = a.bin or os.path.join(root_dir, ".build", "debug")
    notes = []
    netns = False
    if a.netns:
        netns, why = net.netns_available()
        if not netns:
            notes.append("--netns unavailable (%s): nodes share 127.0.0.1" % why)
    kinds, impairment = available_faults([k for k in a.faults.split(",") if k], netns, notes)
    storage_names = ["s%d" % i for i in range(1, a.nodes + 1)]
    schedule = fixed_schedule(a.schedule) if a.schedule else plan(a.seed, a.minutes, storage_names, kinds, a.rf)
    if a.plan_only:
        for gap, kind, targets, duration in schedule:
            print("+%5.1f s  %-18s %-12s %5.1f s" % (gap, kind, ",".join(targets), duration), file=out)
        return 0
    run_dir = a.run_dir or tempfile.mkdtemp(prefix="weft-chaos-")
    os.makedirs(run_dir, exist_ok=True)
    log_lines = []

    def log(msg):
        log_lines.append(msg)
        print(msg, file=sys.stderr, flush=True)

    run_id = "chaos-%d-%s" % (a.seed, uuid.uuid4().hex[:8])
    cluster = Cluster(run_dir, bin_dir, rf=a.rf, netns=netns, log_level=a.log_level, notes=notes,
                      small_disk_mb=256 if "disk-full" in kinds else 0,
                      config={"replicationPushTimeoutSeconds": 2})
    report = {"seed": a.seed, "nodes": a.nodes, "rf": a.rf, "minutes": a.minutes, "netns": netns, "run_dir": run_dir,
              "run_id": run_id, "bin": bin_dir, "schedule": [list(s) for s in schedule], "notes": notes,
              "command": "cluster/chaos/run --nodes %d --rf %d --minutes %g --seed %d%s%s" % (
                  a.nodes, a.rf, a.minutes, a.seed, " --netns" if a.netns else "",
                  "" if a.faults == DEFAULT_FAULTS else " --faults " + a.faults) + (
                  " --schedule " + a.schedule if a.schedule else "") + (
                  "" if a.clients == DEFAULT_CLIENTS else " --clients " + a.clients)}
    violations = []
    try:
        log("starting %d storage nodes + front in %s%s" % (a.nodes, run_dir, " (network namespaces)" if netns else ""))
        cluster.start(a.nodes)
        if cluster.nodes["s1"].disk:
            notes.append("disk-full: s1's data dir is a %d MiB %s" % (cluster.nodes["s1"].disk.megabytes, cluster.nodes["s1"].disk.kind))
        start_s = time.time()
        history = History()
        nemesis_stop, load_stop, sample_stop = threading.Event(), threading.Event(), threading.Event()
        clients = start_clients(cluster.front, history, run_id, a.seed, load_stop, kinds=a.clients.split(","), pace=a.pace)
        nemesis = Nemesis(cluster, schedule, nemesis_stop, start_s, log, impairment=impairment or "netem",
                          after_fault=lambda began_ns: wait_rf_restored(cluster, history, run_id, a.rf, start_s, began_ns))
        sampler = Sampler(cluster, history, run_id, start_s, sample_stop, nemesis=nemesis)
        nemesis.start()
        sampler.start()
        deadline = start_s + a.minutes * 60
        while time.time() < deadline:
            time.sleep(min(5, max(0.1, deadline - time.time())))
            acked, sent = history.counts()
            log("[%6.1f s] acknowledged %d of %d spans sent" % (time.time() - start_s, acked, sent))
        nemesis_stop.set()
        nemesis.join(timeout=180)
        load_stop.set()
        for c in clients:
            c.join(timeout=120)
        sample_stop.set()
        sampler.join(timeout=60)
        load_end_s = time.time()

        # Heal: everything running, everyone converged, hints delivered.
        nemesis.heal()
        for n in cluster.nodes.values():
            if n.poll_crash():
                log("%s had died on its own: restarting it for the checks" % n.name)
            if not n.running():
                cluster.restart(n)
        converged = cluster.wait_converged(60)
        repair = cluster.weftctl("repair")
        log("healed; converged after %s s; weftctl repair exit %d" % (converged, repair.returncode))

        checker = Checker(cluster, history, run_id, start_s, a.rf)
        checker.check_crashes()
        for step in (lambda: checker.check_trace_by_id(a.trace_sample, a.seed), checker.check_search, checker.check_aggregates):
            try:
                step()
            except Exception as e:
                checker.violate("a read check could not run: %s: %s" % (type(e).__name__, e))
        try:
            checker.check_replicas(a.replica_deadline)
        except Exception as e:
            checker.violate("check_replicas could not run: %s: %s" % (type(e).__name__, e))
        checker.check_samples(sampler.samples)
        checker.check_crashes()  # again: a node may have died during the checks
        checker.category = "harness"
        for c in clients:
            if c.error:
                checker.violate("client error: " + c.error)
        if nemesis.error:
            checker.violate("nemesis error: " + nemesis.error)
        checker.category = "replicas"
        for e in nemesis.events:
            if "rf_restored_after_s" in e and e["rf_restored_after_s"] is None:
                checker.violate("after %s %s at %s s, the copies of what was acknowledged before it were not back to RF "
                                "within 40 s (%s rows, expected %s)" % (
                                    e["kind"], ",".join(e["targets"]), e["t"], e.get("copies"), e.get("expected")))
        violations = checker.violations
        by_kind = {}
        for e in nemesis.events:
            k = by_kind.setdefault(e["kind"], {"injected": 0, "failed_to_apply": 0})
            k["injected" if e.get("applied") else "failed_to_apply"] += 1
        report.update({
            "load_seconds": round(load_end_s - start_s, 1),
            "requests": dict(history.requests), "attempts": dict(history.attempts), "statuses": dict(history.statuses),
            "acknowledged_spans": len(history.acked), "indeterminate_spans": len(history.indeterminate),
            "spans_by_client": {kind: {outcome: n for (k, outcome), n in sorted(history.spans_by_kind.items()) if k == kind}
                                for kind in sorted({k for k, _ in history.spans_by_kind})},
            "faults_by_kind": by_kind, "events": nemesis.events, "samples": sampler.samples,
            "checks": checker.results, "violations": violations,
            "time_to_repair_s": checker.results.get("replicas", {}).get("seconds_to_rf"),
        })
    except StartFailed as e:
        violations = ["[harness] cluster did not start: %s" % e]
        report["violations"] = violations
    except (KeyboardInterrupt, SystemExit) as e:
        # Stopped before the checks ran: nothing was verified, so the report must not read as a pass.
        violations = ["[harness] interrupted (%s) before the checks finished" % type(e).__name__]
        raise
    finally:
        cluster.shutdown()
        for n in cluster.nodes.values():
            bad = [code for code, expected in n.exits if not expected]
            if bad and not any(n.name in v for v in violations):
                violations.append("[crash] node %s: unexpected exit %s at shutdown" % (n.name, bad))
        report["violations"] = violations
        report["violated_categories"] = sorted({v[1:v.index("]")] for v in violations if v.startswith("[")})
        report["ok"] = not violations
        path = a.json or os.path.join(run_dir, "report.json")
        with open(path, "w") as f:
            json.dump(report, f, indent=1, default=str)
        print(render(report, path), file=out)
    failing = set(a.fail_on.split(","))
    return 1 if any(v[1:].split("]")[0] in failing for v in violations) else 0


def rf_times(events):
    """{kind: [seconds until the copies of what was acknowledged before each fault were back to RF]}."""
    out = {}
    for e in events:
        if "rf_restored_after_s" in e:
            out.setdefault(e["kind"], []).append(e["rf_restored_after_s"])
    return out


def render(r, path):
    """The one-page text report."""
    c = r.get("checks", {})
    tid, rep, smp = c.get("trace_by_id", {}), c.get("replicas", {}), c.get("samples", {})
    lines = ["", "Weft chaos campaign — %s" % ("PASS" if r.get("ok") else "FAIL"),
             "replay: %s" % r.get("command"),
             "cluster: %d storage nodes + front, RF=%d, netns=%s, run dir %s" % (r["nodes"], r["rf"], r["netns"], r["run_dir"]),
             "", "faults (kind: injected / failed to apply):"]
    for kind, k in sorted(r.get("faults_by_kind", {}).items()):
        lines.append("  %-20s %3d / %d" % (kind, k["injected"], k["failed_to_apply"]))
    for n in r.get("notes", []):
        lines.append("  note: " + n)
    for e in r.get("events", []):
        if e.get("applied_as"):
            lines.append("  %s %s at %s s: %s; effect %s" % (e["kind"], ",".join(e["targets"]), e["t"], e["applied_as"], e.get("effect")))
    req = r.get("requests", {})
    lines += ["", "requests: %d acknowledged, %d never acknowledged; attempts %s" % (
        req.get("acknowledged", 0), req.get("never acknowledged", 0), r.get("attempts", {})),
        "statuses: %s" % r.get("statuses", {}),
        "spans: %d acknowledged, %d indeterminate" % (r.get("acknowledged_spans", 0), r.get("indeterminate_spans", 0)),
        "spans by client (acknowledged / indeterminate): %s" % (", ".join(
            "%s %d / %d" % (kind, n.get("acknowledged", 0), n.get("indeterminate", 0))
            for kind, n in r.get("spans_by_client", {}).items()) or "-"),
        "lost (trace by ID): %s   duplicated: %s   unknown: %s" % (tid.get("lost_spans"), tid.get("duplicated_spans"), tid.get("unknown_spans")),
        "trace by ID: %s traces%s; search: %s" % (tid.get("traces"), " (a sample)" if tid.get("sampled") else "", c.get("search")),
        "copies per acknowledged span: %s (RF=%d); not on RF nodes: %s; repeated on one node: %s; rows per node %s" % (
            rep.get("copies_histogram"), r["rf"], rep.get("spans_not_on_rf_nodes"), rep.get("repeated_on_one_node"), rep.get("node_rows")),
        "holders of spans not on RF nodes (most common): %s" % (rep.get("wrong_holder_sets") or "-"),
        "time to repair (all spans on RF nodes after healing): %s s" % r.get("time_to_repair_s"),
        "RF restored after each fault (s after converging, by kind): %s" % (", ".join(
            "%s %s" % (kind, "/".join("-" if t is None else "%g" % t for t in times))
            for kind, times in sorted(rf_times(r.get("events", [])).items())) or "-"),
        "answers during the run: %s taken, %s partial, %s failed, %s over-counted, %s under-counted without partial" % (
            smp.get("taken"), smp.get("partial"), smp.get("failed"), smp.get("over_counted"), smp.get("under_counted_unflagged")),
        "crashes: %s" % (c.get("crashes") or "none")]
    for field, rows in c.get("aggregates", {}).items():
        bad = [k for k, v in rows.items() if not v["ok"]]
        lines.append("aggregates by %s: %d groups, %d outside the acknowledged..sent range" % (field, len(rows), len(bad)))
    lines.append("")
    if r.get("violations"):
        lines.append("VIOLATIONS:")
        lines += ["  - " + v for v in r["violations"]]
    else:
        lines.append("no invariant violated")
    lines.append("report: " + path)
    return "\n".join(lines)
