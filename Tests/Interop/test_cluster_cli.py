"""The cluster admin commands of `weftctl` (members, ring, status, drain, forget) against three real
`weft serve` nodes on 127.0.0.1 that find each other through node 1's internal port.

WEFTCTL_BIN overrides the weftctl binary (default: next to WEFT_BIN, i.e. .build/debug/weftctl).
"""

import json
import os
import subprocess
import tempfile
import time

import pytest

from test_node import WEFT, Node

WEFTCTL = os.environ.get("WEFTCTL_BIN", os.path.join(os.path.dirname(WEFT), "weftctl"))
POLL_INTERVAL = 0.2


def weftctl(*args, timeout=60):
    return subprocess.run([WEFTCTL, *args], capture_output=True, text=True, timeout=timeout)


def weftctl_json(node, *args):
    out = weftctl(*args, "--url", node.query, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def poll(what, check, deadline_seconds=30):
    """Calls `check` until it returns a true value (which is returned) or the deadline passes."""
    deadline = time.monotonic() + deadline_seconds
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(POLL_INTERVAL)
    pytest.fail("%s: not within %ss (last: %r)" % (what, deadline_seconds, last))


def members_by_id(node):
    return {m["id"]: m for m in weftctl_json(node, "members")["members"]}


def assert_one_line_error(out, code, command, text):
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("weftctl %s: " % command), out.stderr
    assert text in lines[0], out.stderr


@pytest.fixture()
def cluster():
    """Three nodes, all roles; 2 and 3 join through node 1's internal address. Yields them once node 1
    sees all three alive and ACTIVE in the ring."""
    with tempfile.TemporaryDirectory(prefix="weft-cluster-") as root:
        nodes = []
        try:
            for i in range(3):
                node = Node(os.path.join(root, "node-%d" % (i + 1)))
                node.extra = ["--internal-port", "0"] + (["--join", nodes[0].internal] if nodes else [])
                nodes.append(node.start())
            assert all(n.internal and n.node_id for n in nodes)

            def all_alive_and_active():
                members = weftctl_json(nodes[0], "members")["members"]
                return len(members) == 3 and all(m["status"] == "alive" and m["state"] == "ACTIVE" for m in members) and members

            poll("3 alive ACTIVE members on node 1", all_alive_and_active)
            yield nodes
        finally:
            for n in nodes:
                if n.proc.poll() is None:
                    n.kill()


def test_members_ring_and_status(cluster):
    first = cluster[0]
    ids = {n.node_id for n in cluster}

    answer = weftctl_json(first, "members")
    assert answer["self"] == first.node_id
    assert {m["id"] for m in answer["members"]} == ids
    assert [m["id"] for m in answer["members"] if m["self"]] == [first.node_id]
    assert {m["address"] for m in answer["members"]} == {n.internal for n in cluster}

    human = weftctl("members", "--url", first.query)
    assert human.returncode == 0, human.stderr
    lines = human.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "ADDRESS", "ROLES"]
    for node in cluster:
        row = next(line for line in lines if node.node_id in line.split())
        assert node.internal in row and "alive" in row and "ACTIVE" in row
        assert row.startswith("*") == (node is first)
    assert lines[-1] == "3 members: 3 alive"

    ring = weftctl_json(first, "ring")
    assert {n["id"] for n in ring["nodes"]} == ids
    assert all(n["state"] == "ACTIVE" and n["tokens"] > 0 for n in ring["nodes"])
    assert ring["replicationFactor"] == 3
    assert sum(n["primaryShare"] for n in ring["nodes"]) == pytest.approx(1, abs=1e-6)
    assert sum(n["replicaShare"] for n in ring["nodes"]) == pytest.approx(3, abs=1e-6)
    human = weftctl("ring", "--url", first.query)
    assert human.returncode == 0, human.stderr
    assert "balance: ideal replica share 100.0%" in human.stdout and "RF 3" in human.stdout

    # Asked on node 2, status gathers every node's own report.
    status = weftctl_json(cluster[1], "status")
    assert sorted(n["id"] for n in status["nodes"]) == sorted(ids)
    assert status["unreachable"] == []
    assert all(n["ready"] and n["unreachable"] == [] for n in status["nodes"])
    human = weftctl("status", "--url", cluster[1].query)
    assert human.returncode == 0, human.stderr
    assert all(i in human.stdout for i in ids) and "3 nodes answered" in human.stdout


def test_errors_are_one_line_with_distinct_exit_codes(cluster):
    first = cluster[0]
    live = cluster[1].node_id

    out = weftctl("forget", live, "--url", first.query)
    assert_one_line_error(out, 1, "forget", "only a dead node can be forgotten")
    assert "HTTP 409" in out.stderr

    out = weftctl("drain", "nope", "--url", first.query)
    assert_one_line_error(out, 1, "drain", "unknown node 'nope'")

    out = weftctl("members", "--url", "http://127.0.0.1:1")
    assert_one_line_error(out, 3, "members", "127.0.0.1:1")
    assert "refused" in out.stderr

    out = weftctl("drain", "--url", first.query)  # the node is missing
    assert_one_line_error(out, 2, "drain", "node")
    out = weftctl("ring", "--url", "https://127.0.0.1:3200")
    assert_one_line_error(out, 2, "ring", "only http://")

    # Nothing changed.
    assert {m["status"] for m in members_by_id(first).values()} == {"alive"}


def test_drain_then_forget_a_dead_node(cluster):
    first, second, third = cluster

    out = weftctl("drain", third.node_id, "--url", first.query)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "node '%s' is LEAVING" % third.node_id
    # Node 3 holds no spans, so its drain finishes at once: LEAVING, then LEFT.
    poll("node 3 LEFT on node 1", lambda: members_by_id(first)[third.node_id]["state"] == "LEFT", deadline_seconds=10)
    human = weftctl("members", "--url", first.query).stdout
    assert "LEFT" in next(line for line in human.splitlines() if third.node_id in line.split())
    # Forgetting the departed node (still running) changes nothing and says so.
    out = weftctl("forget", third.node_id, "--url", first.query)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "node '%s' is LEFT already" % third.node_id

    second.kill()
    poll("node 2 dead on node 1", lambda: members_by_id(first)[second.node_id]["status"] == "dead")
    out = weftctl("forget", second.node_id, "--url", first.query)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "node '%s' is LEFT" % second.node_id
    assert members_by_id(first)[second.node_id]["state"] == "LEFT"
    # Node 3, still running, takes the forget too.
    poll("node 2 LEFT on node 3", lambda: members_by_id(third)[second.node_id]["state"] == "LEFT", deadline_seconds=10)
