"""Replica repair with real `weft serve` processes on 127.0.0.1: anti-entropy refills a storage node
whose data directory was wiped, a drained node hands its placements to the remaining nodes and goes
LEFT, and the placements of a node dead for longer than `replicaReplaceAfterSeconds` are copied to
replacement nodes. Each node's own data is read with `x-weft-read: node`: every span on the expected
nodes, and counted once on each."""

import os
import shutil

import requests

from test_cluster import base_dir, cluster, everyone_sees, wait_until  # noqa: F401  (fixtures)
from test_cluster_cli import weftctl, weftctl_json
from test_replication import export_request, held_names, holds_exactly, metric, post, start


def own_count(node):
    """Spans this node holds itself (its own data only, each stored row counted)."""
    r = requests.get(node.query + "/api/weft/aggregate", params={"by": "resource.service.name", "select": "count", "since": "1h"},
                     headers={"x-weft-read": "node"}, timeout=30)
    r.raise_for_status()
    return sum(int(row[1]) for row in r.json()["rows"])


def holds_all_once(node, written, spans):
    return own_count(node) == spans and holds_exactly(node, written)


def write(ingest, batches=3, traces=10):
    written = {}
    for _ in range(batches):
        request, expected = export_request(traces=traces)
        r = post(ingest, request)
        assert r.status_code == 200, r.text
        written.update(expected)
    return written, sum(len(v) for v in written.values())


def storage_cluster(base_dir, cluster, count, extra=()):
    seed = start(base_dir, "s1", ["--roles", "storage,query"] + list(extra))
    cluster.append(seed)
    for i in range(2, count + 1):
        cluster.append(start(base_dir, "s%d" % i, ["--roles", "storage,query", "--join", seed.internal] + list(extra)))
    ingest = start(base_dir, "ingest", ["--roles", "ingest,query", "--join", seed.internal])
    cluster.append(ingest)
    assert wait_until(lambda: everyone_sees(cluster, {n.node_id: ("alive", "ACTIVE") for n in cluster}), 20) is not None
    return cluster[:count], ingest


def test_a_wiped_replica_is_refilled_by_anti_entropy(base_dir, cluster):
    storage, ingest = storage_cluster(base_dir, cluster, 3)
    written, spans = write(ingest)
    assert wait_until(lambda: all(holds_all_once(n, written, spans) for n in storage), 20, poll=0.3) is not None
    s3 = storage[2]
    s3.kill()
    shutil.rmtree(s3.data_dir)
    s3.extra += ["--node-id", s3.node_id]
    s3.extra[s3.extra.index("--join") + 1] = storage[0].internal
    s3.start()
    assert wait_until(lambda: everyone_sees(cluster, {n.node_id: ("alive", "ACTIVE") for n in cluster}), 20) is not None
    out = weftctl("repair", "--url", ingest.query)
    assert out.returncode == 0, out.stderr
    assert "anti-entropy" in out.stdout, out.stdout
    assert wait_until(lambda: holds_all_once(s3, written, spans), 60, poll=0.5) is not None, own_count(s3)
    for n in storage:
        assert holds_all_once(n, written, spans), n.node_id
    assert metric(storage[0], "weft_repair_spans_total") + metric(storage[1], "weft_repair_spans_total") >= spans
    assert metric(s3, "weft_repair_rounds_total") >= 1
    # Once caught up, every node reports itself in sync.
    def all_in_sync():
        status = weftctl_json(ingest, "status")
        return all(n.get("repair", {}).get("inSync") for n in status["nodes"] if "storage" in n["roles"])
    out = weftctl("repair", "--url", ingest.query)
    assert wait_until(all_in_sync, 30, poll=0.5) is not None, weftctl_json(ingest, "status")
    # A cluster query counts every span once.
    r = requests.get(ingest.query + "/api/weft/aggregate", params={"by": "resource.service.name", "select": "count", "since": "1h"}, timeout=30)
    assert sum(int(row[1]) for row in r.json()["rows"]) == spans


def test_a_drained_node_hands_off_and_goes_left(base_dir, cluster):
    storage, ingest = storage_cluster(base_dir, cluster, 4)
    written, spans = write(ingest, batches=4)
    copies = lambda nodes: sum(own_count(n) for n in nodes)
    assert wait_until(lambda: copies(storage) == 3 * spans, 20, poll=0.3) is not None
    leaving = storage[0]
    rest = storage[1:]
    out = weftctl("drain", leaving.node_id, "--url", ingest.query)
    assert out.returncode == 0, out.stderr
    assert wait_until(lambda: ingest.members()[leaving.node_id]["state"] == "LEFT", 60, poll=0.5) is not None, ingest.members()
    # Every span on exactly 3 of the remaining nodes, none twice on a node.
    assert copies(rest) == 3 * spans, [own_count(n) for n in rest]
    holders = {}
    for n in rest:
        for trace, names in written.items():
            got = held_names(n, trace)
            if got:
                assert got == names, (n.node_id, trace)
                holders[trace] = holders.get(trace, 0) + 1
    assert all(holders.get(t) == 3 for t in written), holders
    status = weftctl_json(ingest, "status")
    drained = [n for n in status["nodes"] if n["id"] == leaving.node_id]
    assert drained and drained[0]["repair"]["drained"], status
    # The table says so too, in its REPAIR column.
    human = weftctl("status", "--url", ingest.query)
    assert human.returncode == 0, human.stderr
    header = human.stdout.splitlines()[0]
    row = next(line for line in human.stdout.splitlines() if line.split()[0] == leaving.node_id)
    assert row[header.index("REPAIR"):].split()[0] == "drained", human.stdout


def test_a_long_dead_node_is_replaced(base_dir, cluster):
    storage, ingest = storage_cluster(base_dir, cluster, 4, ["--replica-replace-after-seconds", "2", "--anti-entropy-interval-seconds", "2"])
    written, spans = write(ingest, batches=4)
    assert wait_until(lambda: sum(own_count(n) for n in storage) == 3 * spans, 20, poll=0.3) is not None
    victim = storage[3]
    victim.kill()
    live = storage[:3]
    # Every span back on 3 live nodes: here all 3, each once.
    assert wait_until(lambda: all(own_count(n) == spans for n in live), 90, poll=1) is not None, [own_count(n) for n in live]
    for n in live:
        assert holds_exactly(n, written), n.node_id
