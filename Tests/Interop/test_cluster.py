"""Cluster membership with real `weft serve` processes on 127.0.0.1: joins, failure detection within
the documented bounds, restart with the same identity, the cluster secret, and (as root) a node cut
off by a network namespace."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
import requests

from test_node import WEFT, Node


class ClusterNode(Node):
    """A `weft serve` with an internal port; `extra` carries cluster flags."""

    def __init__(self, data_dir, extra=(), prefix=()):
        super().__init__(data_dir)
        self.extra = ["--internal-port", "0"] + list(extra)
        self.prefix = list(prefix)  # e.g. ["ip", "netns", "exec", NS]
        self.internal = None
        self.node_id = None

    def start(self):
        self.proc = subprocess.Popen(
            self.prefix + [WEFT, "serve", "--otlp-port", "0", "--query-port", "0", "--otlp-grpc-port", "0",
                           "--data-dir", self.data_dir, "--log-level", "warning"] + self.extra,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        line = self.proc.stdout.readline()
        if not line.startswith("listening "):
            self.proc.kill()
            raise RuntimeError("weft did not start: %r %s" % (line, self.proc.stderr.read()))
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        self.otlp = "http://" + fields["otlp"]
        self.query = "http://" + fields["query"]
        self.grpc = fields.get("grpc")
        self.internal = fields["internal"]
        self.node_id = fields["node"]
        return self

    def members(self):
        r = requests.get(self.query + "/api/cluster/members", timeout=5)
        r.raise_for_status()
        return {m["id"]: m for m in r.json()["members"]}


def wait_until(predicate, seconds, poll=0.1):
    """Polls `predicate` until it is true or `seconds` pass; returns the elapsed time or None."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            if predicate():
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(poll)
    return None


@pytest.fixture()
def base_dir():
    with tempfile.TemporaryDirectory(prefix="weft-cluster-") as d:
        yield d


@pytest.fixture()
def cluster(base_dir):
    nodes = []
    yield nodes
    for n in nodes:
        if n.proc and n.proc.poll() is None:
            n.proc.kill()
            n.proc.wait(timeout=30)


def start_cluster(base_dir, nodes, count, extra=()):
    first = ClusterNode(os.path.join(base_dir, "n1"), extra).start()
    nodes.append(first)
    for i in range(2, count + 1):
        nodes.append(ClusterNode(os.path.join(base_dir, "n%d" % i), list(extra) + ["--join", first.internal]).start())
    return nodes


def everyone_sees(nodes, expected):
    """Every node's members view maps each expected node ID to the expected (status, state)."""
    for n in nodes:
        view = n.members()
        for node_id, (status, state) in expected.items():
            m = view.get(node_id)
            if m is None or m["status"] != status or (state is not None and m["state"] != state):
                return False
    return True


def test_five_nodes_join_then_failure_is_detected_and_restart_keeps_identity(base_dir, cluster):
    start_cluster(base_dir, cluster, 5)
    joined = wait_until(lambda: everyone_sees(cluster, {n.node_id: ("alive", "ACTIVE") for n in cluster}), 10)
    assert joined is not None and joined < 3.0, "all ACTIVE on every node took %s s" % joined
    print("5 nodes: all ACTIVE and alive on every node after %.2f s" % joined)

    ring_before = requests.get(cluster[0].query + "/api/cluster/ring", timeout=5).json()
    victim = cluster[2]
    incarnation_before = cluster[0].members()[victim.node_id]["incarnation"]
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(timeout=30)
    others = [n for n in cluster if n is not victim]
    dead = wait_until(lambda: everyone_sees(others, {victim.node_id: ("dead", None)}), 20)
    assert dead is not None and dead < 10.0, "declared dead everywhere after %s s" % dead
    print("kill -9: declared dead on every other node after %.2f s" % dead)
    # No live node was ever accused.
    assert everyone_sees(others, {n.node_id: ("alive", "ACTIVE") for n in others})

    # Restarted on the same data dir: the same ID and tokens, alive again at a higher incarnation.
    old_id = victim.node_id
    victim.start()
    assert victim.node_id == old_id
    back = wait_until(lambda: everyone_sees(cluster, {old_id: ("alive", "ACTIVE")}), 10)
    assert back is not None
    print("restart: alive again everywhere after %.2f s" % back)
    assert cluster[0].members()[old_id]["incarnation"] > incarnation_before
    ring_after = requests.get(cluster[0].query + "/api/cluster/ring", timeout=5).json()
    shares = lambda ring: {n["id"]: (n["tokens"], round(n["primaryShare"], 9)) for n in ring["nodes"]}
    assert shares(ring_after) == shares(ring_before)


def test_cluster_secret_is_required_on_the_internal_port(base_dir, cluster):
    start_cluster(base_dir, cluster, 2, extra=["--cluster-secret", "s3cret"])
    assert wait_until(lambda: everyone_sees(cluster, {n.node_id: ("alive", "ACTIVE") for n in cluster}), 10) is not None
    if shutil.which("nghttp") is None:
        pytest.skip("nghttp is not installed")
    url = "http://%s/internal/v1/status" % cluster[0].internal
    refused = subprocess.run(["nghttp", "-v", url], capture_output=True, text=True, timeout=30)
    assert ":status: 401" in refused.stdout
    allowed = subprocess.run(["nghttp", "-v", "-H", "x-weft-cluster-secret: s3cret", url], capture_output=True, text=True, timeout=30)
    assert ":status: 200" in allowed.stdout
    # A node with the wrong secret cannot join: nobody lists it, and it sees nobody.
    stranger = ClusterNode(os.path.join(base_dir, "stranger"), ["--cluster-secret", "wrong", "--join", cluster[0].internal]).start()
    cluster.append(stranger)
    time.sleep(3)  # a bounded observation window: nothing must happen in it
    assert stranger.node_id not in cluster[0].members()
    assert set(stranger.members()) == {stranger.node_id}


def test_roles_and_node_ids(base_dir, cluster):
    start_cluster(base_dir, cluster, 1)
    storage = ClusterNode(os.path.join(base_dir, "s"), ["--roles", "storage", "--node-id", "store-1", "--join", cluster[0].internal]).start()
    query = ClusterNode(os.path.join(base_dir, "q"), ["--roles", "query,ingest", "--join", cluster[0].internal]).start()
    cluster.extend([storage, query])
    assert storage.node_id == "store-1"
    assert wait_until(lambda: everyone_sees(cluster, {n.node_id: ("alive", "ACTIVE") for n in cluster}), 10) is not None
    view = cluster[0].members()
    assert view["store-1"]["roles"] == ["storage"]
    assert view[query.node_id]["roles"] == ["ingest", "query"]
    ring = requests.get(cluster[0].query + "/api/cluster/ring", timeout=5).json()
    tokens = {n["id"]: n["tokens"] for n in ring["nodes"]}
    assert tokens["store-1"] == 128 and tokens[query.node_id] == 0
    assert ring["replicationFactor"] == 2  # capped by the two storage nodes
    # A storage node keeps its ID: another ID on the same data dir is refused.
    storage.proc.kill()
    storage.proc.wait(timeout=30)
    clash = subprocess.run([WEFT, "serve", "--data-dir", storage.data_dir, "--node-id", "other", "--otlp-port", "0",
                            "--query-port", "0", "--otlp-grpc-port", "0", "--internal-port", "0"],
                           capture_output=True, text=True, timeout=60)
    assert clash.returncode != 0 and "belongs to node 'store-1'" in clash.stderr
    # A query node without storage answers from the storage nodes.
    r = requests.get(query.query + "/api/search", timeout=5)
    assert r.status_code == 200 and r.json()["traces"] == []
    bad = subprocess.run([WEFT, "serve", "--roles", "ingest,cook"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "roles" in bad.stderr


NETNS = "weft-test-ns"


def netns_available():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["ip", "netns", "add", NETNS + "-probe"], capture_output=True)
    if probe.returncode != 0:
        return False
    subprocess.run(["ip", "netns", "del", NETNS + "-probe"], capture_output=True)
    return True


@pytest.mark.skipif(not netns_available(), reason="needs root and network namespaces")
def test_node_cut_off_by_a_network_namespace_is_declared_dead_then_rejoins(base_dir, cluster):
    """Three nodes, each in its own namespace on a private bridge; cutting one node's link makes the
    others declare it dead; restoring the link brings it back."""
    subnet = "10.231.77."
    bridge = "weftbr77"
    run = lambda *args: subprocess.run(list(args), check=True, capture_output=True)
    cleanup = lambda: [subprocess.run(c, capture_output=True) for c in
                       [["ip", "netns", "del", "%s%d" % (NETNS, i)] for i in range(1, 4)] + [["ip", "link", "del", bridge]]]
    cleanup()
    try:
        run("ip", "link", "add", bridge, "type", "bridge")
        run("ip", "addr", "add", subnet + "1/24", "dev", bridge)
        run("ip", "link", "set", bridge, "up")
        for i in range(1, 4):
            ns = "%s%d" % (NETNS, i)
            run("ip", "netns", "add", ns)
            run("ip", "link", "add", "wv%d" % i, "type", "veth", "peer", "name", "eth0", "netns", ns)
            run("ip", "link", "set", "wv%d" % i, "master", bridge)
            run("ip", "link", "set", "wv%d" % i, "up")
            run("ip", "netns", "exec", ns, "ip", "addr", "add", "%s%d/24" % (subnet, 10 + i), "dev", "eth0")
            run("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
            run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        for i in range(1, 4):
            extra = ["--host", "%s%d" % (subnet, 10 + i), "--node-id", "ns-%d" % i]
            if i > 1:
                extra += ["--join", cluster[0].internal]
            cluster.append(ClusterNode(os.path.join(base_dir, "ns%d" % i), extra, prefix=["ip", "netns", "exec", "%s%d" % (NETNS, i)]).start())
        assert wait_until(lambda: everyone_sees(cluster, {n.node_id: ("alive", "ACTIVE") for n in cluster}), 15) is not None
        run("ip", "link", "set", "wv3", "down")
        dead = wait_until(lambda: everyone_sees(cluster[:2], {"ns-3": ("dead", None)}), 30)
        assert dead is not None and dead < 15, "cut node declared dead after %s s" % dead
        print("netns cut: declared dead after %.2f s" % dead)
        run("ip", "link", "set", "wv3", "up")
        back = wait_until(lambda: everyone_sees(cluster, {n.node_id: ("alive", "ACTIVE") for n in cluster}), 45)
        assert back is not None, "the cut node did not rejoin"
        print("netns heal: alive again everywhere after %.2f s" % back)
    finally:
        for n in cluster:
            if n.proc and n.proc.poll() is None:
                n.proc.kill()
                n.proc.wait(timeout=30)
        cluster.clear()
        cleanup()
