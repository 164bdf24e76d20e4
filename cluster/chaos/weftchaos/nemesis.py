"""The nemesis: a fault schedule drawn from one seed (same seed, same schedule), applied one fault at a
time to a running cluster, each healed before the next. Faults that need root or network namespaces are
left out of the schedule, with a note, when those are not available."""

import random
import signal
import threading
import time

from .cluster import wait_until

# kind -> (needs, description)
FAULTS = {
    "kill": (None, "SIGKILL a storage node, restart it a few seconds later (same data dir)"),
    "pause": (None, "SIGSTOP a storage node for longer than the failure detector's timeout, then SIGCONT"),
    "partition-one": ("netns", "cut one storage node off from every other node (both ways)"),
    "partition-minority": ("netns", "cut a minority of the storage nodes off from the rest and the front"),
    "partition-majority": ("netns", "leave the front with a minority: a majority of storage nodes cut off from it"),
    "partition-oneway": ("netns", "one storage node's packets to the other nodes are dropped; theirs still arrive"),
    "netem": ("netns", "delay and loss on one node's link: tc netem 100 ms ± 50 ms, 5 % loss; without sch_netem a tbf rate limit and an nftables 5 % random drop"),
    "disk-full": ("root", "node s1's data dir is a 256 MiB ext4 file system on a loop device; a filler file leaves it full"),
    "drain": (None, "weftctl drain a storage node during load (at most once, never below RF active nodes)"),
    "join": (None, "start a new storage node with --join during load"),
    "wipe": (None, "SIGKILL a storage node, delete its data dir, restart it, then weftctl repair NODE"),
}


# The schedule's model of a fault's cost: its gap, its hold, and this many seconds for healing and
# convergence (a restart, SWIM refuting a suspicion) before the next one: measured at 0.1–2 s in
# 10-minute runs, plus a restart’s few seconds.
HEAL_ESTIMATE_S = 4


def plan(seed, minutes, storage_names, kinds, rf):
    """The schedule: [(gap seconds before, kind, targets, duration seconds)] filling about `minutes`.

    The first draws go through every kind once, in a seeded order, so that even a short run covers each
    kind the cluster allows; then kinds are drawn at random. Durations stay short (a pause still outlasts
    the failure detector) so that a 10-minute run holds more than 30 faults."""
    rng = random.Random(seed)
    names = list(storage_names)
    budget = minutes * 60 - 20  # leave the end of the run fault-free
    schedule, t, drained, joins = [], 5.0, False, 0
    kinds = sorted(kinds)
    first_round = rng.sample(kinds, len(kinds))
    draws = 0
    while t < budget and kinds and draws < 1000:
        draws += 1
        kind = first_round.pop(0) if first_round else rng.choice(kinds)
        gap = round(rng.uniform(2, 5), 1)
        active = [n for n in names if n != drained]
        if kind == "drain":
            # s1 holds the small disk that disk-full fills: never drained while that kind may be drawn.
            candidates = [n for n in active if n != "s1" or "disk-full" not in kinds]
            if drained or len(active) - 1 < rf or not candidates:
                continue
            target, duration = [rng.choice(candidates)], 0
            drained = target[0]
        elif kind == "join":
            if joins >= 2:
                continue
            joins += 1
            target, duration = ["s%d" % (len(names) + 1)], 0
            names.append(target[0])
        elif kind in ("partition-minority", "partition-majority"):
            k = (len(active) - 1) // 2 if kind == "partition-minority" else len(active) // 2 + 1
            target, duration = sorted(rng.sample(active, max(1, k))), round(rng.uniform(6, 10), 1)
        elif kind == "disk-full":
            if "s1" not in active:
                continue
            target, duration = ["s1"], round(rng.uniform(6, 10), 1)
        elif kind == "pause":
            target, duration = [rng.choice(active)], round(rng.uniform(7, 10), 1)
        elif kind == "wipe":
            target, duration = [rng.choice(active)], 2.0
        else:
            target, duration = [rng.choice(active)], round(rng.uniform(4, 8), 1)
        schedule.append((gap, kind, target, duration))
        t += gap + duration + HEAL_ESTIMATE_S
    return schedule


class Nemesis(threading.Thread):
    def __init__(self, cluster, schedule, stop, start_s, log, impairment="netem", after_fault=None):
        """`after_fault(fault_start_ns)`, when given, runs once each fault is healed and converged (before the
        next) and returns what to add to the fault's event (the RF check)."""
        super().__init__(name="nemesis", daemon=True)
        self.cluster, self.schedule, self.stop, self.start_s, self.log = cluster, schedule, stop, start_s, log
        self.after_fault = after_fault
        self.impairment = impairment  # how `netem` delays and drops packets (net.impairment_method)
        self.events = []
        self.active = None
        self.lock = threading.Lock()
        self.error = None

    def active_names(self):
        with self.lock:
            return [self.active] if self.active else []

    def note(self, msg):
        self.log("[%6.1f s] nemesis: %s" % (time.time() - self.start_s, msg))

    def run(self):
        try:
            for gap, kind, targets, duration in self.schedule:
                if self.stop.wait(gap):
                    return
                began_ns = time.time_ns()
                event = {"kind": kind, "targets": targets, "duration": duration,
                         "t": round(time.time() - self.start_s, 1)}
                with self.lock:
                    self.active = "%s %s" % (kind, ",".join(targets))
                self.note("%s %s (%.1f s)" % (kind, ",".join(targets), duration))
                try:
                    event.update(getattr(self, "do_" + kind.replace("-", "_"))(targets, duration) or {})
                    event["applied"] = True
                except Exception as e:
                    event["applied"] = False
                    event["error"] = "%s: %s" % (type(e).__name__, e)
                    self.note("%s failed: %s" % (kind, event["error"]))
                finally:
                    self.heal()
                    with self.lock:
                        self.active = None
                healed = self.cluster.wait_converged(45)
                event["converged_after_s"] = None if healed is None else round(healed, 1)
                if self.after_fault and not self.stop.is_set():
                    event.update(self.after_fault(began_ns))
                    if event.get("rf_restored_after_s") is None:
                        self.note("%s: copies of what was acknowledged before it not back to RF (%s rows, expected %s)" % (
                            kind, event.get("copies"), event.get("expected")))
                self.events.append(event)
        except Exception as e:
            self.error = "%s: %s" % (type(e).__name__, e)

    def node(self, name):
        return self.cluster.nodes[name]

    def hold(self, seconds):
        self.stop.wait(seconds)

    # Faults ----------------------------------------------------------------------------------------

    def do_kill(self, targets, duration):
        n = self.node(targets[0])
        n.kill9()
        self.hold(duration)
        self.cluster.restart(n)

    def do_pause(self, targets, duration):
        n = self.node(targets[0])
        n.pause()
        self.hold(duration)
        n.resume()

    def cut(self, side_a, side_b, both=True):
        net = self.cluster.network
        for a in side_a:
            for b in side_b:
                net.drop(a.index, b.index)
                if both:
                    net.drop(b.index, a.index)

    def others(self, names):
        return [n for n in self.cluster.nodes.values() if n.name not in names]

    def do_partition_one(self, targets, duration):
        self.cut([self.node(targets[0])], self.others(targets))
        self.hold(duration)

    def do_partition_minority(self, targets, duration):
        self.cut([self.node(t) for t in targets], self.others(targets))
        self.hold(duration)

    def do_partition_majority(self, targets, duration):
        self.do_partition_minority(targets, duration)

    def do_partition_oneway(self, targets, duration):
        self.cut([self.node(targets[0])], self.others(targets), both=False)
        self.hold(duration)

    def do_netem(self, targets, duration):
        n = self.node(targets[0])
        net = self.cluster.network
        applied = net.impair(n.index, self.impairment)
        try:
            self.hold(duration)
            effect = net.impairment_effect(n.index)
        finally:
            net.clear_impairment(n.index)
        return {"applied_as": applied, "effect": effect}

    def do_disk_full(self, targets, duration):
        n = self.node(targets[0])
        if not n.disk:
            raise RuntimeError("%s has no small disk (needs root)" % n.name)
        filled = n.disk.fill()
        try:
            self.hold(duration)
        finally:
            n.disk.free()
        return {"filled_bytes": filled}

    def do_drain(self, targets, duration):
        out = self.cluster.weftctl("drain", targets[0])
        if out.returncode != 0:
            raise RuntimeError("weftctl drain %s: exit %d %s" % (targets[0], out.returncode, out.stderr.strip()))
        self.node(targets[0]).drained = True
        return {"output": out.stdout.strip()[:200]}

    def do_join(self, targets, duration):
        n = self.cluster.add_storage_node()
        if n.name != targets[0]:
            return {"note": "joined as %s" % n.name}

    def do_wipe(self, targets, duration):
        n = self.node(targets[0])
        n.kill9()
        n.wipe()
        self.hold(duration)
        self.cluster.restart(n)
        self.cluster.wait_converged(30)
        out = self.cluster.weftctl("repair", n.node_id)
        return {"repair_exit": out.returncode, "repair_output": (out.stdout + out.stderr).strip()[:200]}

    def heal(self):
        """Undo whatever may still be in force (idempotent)."""
        if self.cluster.network:
            self.cluster.network.heal_all()
        for n in self.cluster.nodes.values():
            if n.paused:
                n.resume()
            if n.disk:
                n.disk.free()
