"""The fault campaign's own parts (cluster/chaos/weftchaos), without a cluster: the seeded schedule, the
convergence rule after a drain, and (as root) the delay-and-loss fault on a scratch network namespace."""

import os
import socket
import subprocess
import sys
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "cluster", "chaos"))

from weftchaos import net  # noqa: E402
from weftchaos.cluster import Cluster, Node  # noqa: E402
from weftchaos.nemesis import FAULTS, plan  # noqa: E402

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
