"""Hinted handoff with real `weft serve` processes: three storage nodes (RF=3) and one ingest node. A
killed storage node misses writes that the other two acknowledge; they keep those parts as hints (in
their hints logs, which survive a restart of the holder) and deliver them once the node is back, so it
then holds every acknowledged span exactly once, with no resend by the client."""

import json

from test_cluster import ClusterNode, base_dir, cluster, everyone_sees, wait_until  # noqa: F401  (fixtures)
from test_cluster_cli import weftctl, weftctl_json
from test_replication import export_request, holds_exactly, metric, post, start


def pending_hints(node):
    """{holder ID: (pending hints, {target: hints})} as `weftctl status` reports it through `node`."""
    status = weftctl_json(node, "status")
    return {
        n["id"]: (n.get("hintsPending", 0), {t: v["hints"] for t, v in n.get("hintsByTarget", {}).items()})
        for n in status["nodes"] if "storage" in n["roles"]
    }


def test_a_killed_replica_gets_what_it_missed_from_hints(base_dir, cluster):
    seed = start(base_dir, "s1", ["--roles", "storage,query"])
    cluster.append(seed)
    for name in ("s2", "s3"):
        cluster.append(start(base_dir, name, ["--roles", "storage,query", "--join", seed.internal]))
    config = base_dir + "/ingest.json"
    with open(config, "w") as f:
        json.dump({"replicationPushTimeoutSeconds": 1}, f)
    ingest = start(base_dir, "ingest", ["--roles", "ingest", "--join", seed.internal, "--config", config])
    cluster.append(ingest)
    s1, s2, s3 = cluster[:3]
    assert wait_until(lambda: everyone_sees(cluster, {n.node_id: ("alive", "ACTIVE") for n in cluster}), 15) is not None

    # s3 killed: every write is acknowledged by s1 and s2, and its part left with both as a hint (so
    # losing one holder loses no hint).
    s3.kill()
    written = {}
    writes = 4
    for _ in range(writes):
        request, expected = export_request(traces=8)
        r = post(ingest, request)
        assert r.status_code == 200, r.text
        written.update(expected)
    held = lambda: pending_hints(s1)
    assert wait_until(lambda: sum(p for p, _ in held().values()) == 2 * writes, 20, poll=0.3) is not None, held()
    assert all(held()[n.node_id][0] == writes for n in (s1, s2)), held()
    assert all(set(targets) <= {s3.node_id} for _, targets in held().values()), held()
    human = weftctl("status", "--url", s1.query).stdout
    assert "HINTS" in human and "for %s" % s3.node_id in human, human

    # A holder killed before delivering replays its hints log on restart.
    holder = max((s1, s2), key=lambda n: held()[n.node_id][0])
    other = s2 if holder is s1 else s1
    before = held()[holder.node_id][0]
    assert before > 0
    holder.kill()
    if "--join" in holder.extra:
        holder.extra[holder.extra.index("--join") + 1] = other.internal
    else:
        holder.extra += ["--join", other.internal]
    holder.start()
    replayed = lambda: pending_hints(other).get(holder.node_id, (0, {}))[0] == before
    assert wait_until(replayed, 20, poll=0.3) is not None, pending_hints(other)

    s3.extra[s3.extra.index("--join") + 1] = other.internal
    s3.start()
    assert wait_until(lambda: everyone_sees(cluster, {n.node_id: ("alive", "ACTIVE") for n in cluster}), 20) is not None

    # s3 back (a new internal port, learned by gossip): `weftctl repair` asks for delivery now; the hints
    # drain and s3 holds every acknowledged span exactly once.
    out = weftctl("repair", s3.node_id, "--url", ingest.query)
    assert out.returncode == 0, out.stderr
    assert "deliver their hints for %s" % s3.node_id in out.stdout, out.stdout
    assert wait_until(lambda: sum(p for p, _ in pending_hints(s3).values()) == 0, 30, poll=0.5) is not None, pending_hints(s3)
    assert holds_exactly(s3, written)
    assert sum(metric(n, "weft_hints_delivered_total") for n in (s1, s2)) >= 1
    assert metric(ingest, "weft_replication_hints_sent_total") == writes
