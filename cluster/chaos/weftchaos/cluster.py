"""Real `weft serve` processes for a campaign: storage nodes, an ingest+query front, each with its own
data directory and log, optionally each in its own network namespace; kill, pause, restart, wipe, drain
and join; exit codes and logs kept for the crash check."""

import os
import re
import shutil
import signal
import subprocess
import time

import requests

from . import net


def wait_until(predicate, seconds, poll=0.2):
    """Polls `predicate` until it is true or `seconds` pass; returns the elapsed seconds or None."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            if predicate():
                return time.monotonic() - started
        except (requests.RequestException, OSError, ValueError, KeyError):
            pass
        time.sleep(poll)
    return None


class Node:
    """One `weft serve` process and what it left behind (data dir, log, exit codes)."""

    def __init__(self, cluster, name, roles, index):
        self.cluster = cluster
        self.name = name
        self.roles = roles
        self.index = index
        self.data_dir = os.path.join(cluster.run_dir, "data", name)
        self.log_path = os.path.join(cluster.run_dir, "logs", name + ".log")
        self.stdout_path = os.path.join(cluster.run_dir, "logs", name + ".stdout")
        self.host = "127.0.0.1"
        self.netns = None
        self.disk = None
        self.proc = None
        self.paused = False
        self.drained = False  # set once `weftctl drain` named it: it may go LEFT and is then no replica
        self.exits = []  # (return code, expected)
        self.otlp = self.query = self.grpc = self.internal = None
        self.node_id = name

    @property
    def storage(self):
        return "storage" in self.roles or self.roles == "all"

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def argv(self, join):
        c = self.cluster
        argv = [os.path.join(c.bin_dir, "weft"), "serve", "--node-id", self.name, "--roles", self.roles,
                "--host", self.host, "--otlp-port", "0", "--query-port", "0", "--otlp-grpc-port", "0",
                "--internal-port", "0", "--data-dir", self.data_dir, "--log-level", c.log_level,
                "--replication-factor", str(c.rf), "--cluster-secret", c.secret]
        if c.config_path:
            argv += ["--config", c.config_path]
        if join:
            argv += ["--join", join]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns] + argv
        return argv

    def start(self, join=None, timeout=90):
        """Starts the process and waits for its `listening` line; returns self."""
        os.makedirs(self.data_dir, exist_ok=True)
        offset = os.path.getsize(self.stdout_path) if os.path.exists(self.stdout_path) else 0
        with open(self.stdout_path, "ab") as out, open(self.log_path, "ab") as err:
            err.write(("--- %s start %s\n" % (time.strftime("%H:%M:%S"), " ".join(self.argv(join)))).encode())
            err.flush()
            self.proc = subprocess.Popen(self.argv(join), stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        self.paused = False
        fields = {}

        def listening():
            with open(self.stdout_path, "rb") as f:
                f.seek(offset)
                for line in f.read().decode(errors="replace").splitlines():
                    if line.startswith("listening "):
                        fields.update(part.split("=", 1) for part in line.split()[1:] if "=" in part)
                        return True
            if self.proc.poll() is not None:
                raise StartFailed("%s exited with %s before listening" % (self.name, self.proc.returncode))
            return False

        try:
            if wait_until(listening, timeout, poll=0.1) is None:
                raise StartFailed("%s printed no listening line in %d s" % (self.name, timeout))
        except StartFailed:
            self.kill9()
            raise
        self.otlp = "http://" + fields["otlp"] if fields.get("otlp", "none") != "none" else None
        self.query = "http://" + fields["query"] if "query" in fields else None
        self.grpc = fields.get("grpc")
        self.internal = fields.get("internal")
        self.node_id = fields.get("node", self.name)
        if self.query:
            ready = lambda: requests.get(self.query + "/ready", timeout=2).status_code == 200
            if wait_until(ready, timeout) is None:
                raise StartFailed("%s never became ready" % self.name)
        return self

    def signal(self, sig):
        if self.running():
            os.kill(self.proc.pid, sig)

    def kill9(self):
        """SIGKILL; the exit is recorded as expected."""
        if self.proc is None:
            return
        if self.paused:
            self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.exits.append((self.proc.returncode, True))
        self.proc = None
        self.paused = False

    def pause(self):
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self.signal(signal.SIGCONT)
        self.paused = False

    def stop(self, timeout=20):
        """SIGTERM, then SIGKILL after `timeout`; a non-zero exit after SIGTERM counts as unexpected."""
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
            self.exits.append((self.proc.returncode, self.proc.returncode == 0))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
            self.exits.append(("SIGTERM ignored for %d s" % timeout, False))
        self.proc = None

    def poll_crash(self):
        """Records an exit nobody asked for; returns True when the process died on its own."""
        if self.proc is not None and self.proc.poll() is not None:
            self.exits.append((self.proc.returncode, False))
            self.proc = None
            return True
        return False

    def wipe(self):
        """Removes everything in the data directory (the process must be stopped)."""
        assert not self.running()
        for entry in os.listdir(self.data_dir):
            p = os.path.join(self.data_dir, entry)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            else:
                os.remove(p)

    def fatal_lines(self):
        """Log lines that say the process crashed."""
        if not os.path.exists(self.log_path):
            return []
        with open(self.log_path, "rb") as f:
            text = f.read().decode(errors="replace")
        return [l for l in text.splitlines() if re.search(r"Fatal error|\bfatal\b|panic|Segmentation fault|Illegal instruction", l, re.I)]


class StartFailed(RuntimeError):
    pass


class Cluster:
    """Storage nodes s1…sN (storage,query) and one front (ingest,query) joined through s1."""

    def __init__(self, run_dir, bin_dir, rf=3, netns=False, log_level="warning", secret="chaos-secret",
                 config=None, small_disk_mb=0, notes=None):
        self.run_dir = os.path.abspath(run_dir)
        self.bin_dir = os.path.abspath(bin_dir)
        self.rf = rf
        self.log_level = log_level
        self.secret = secret
        self.nodes = {}
        self.notes = notes if notes is not None else []
        self.network = net.Network(os.getpid()) if netns else None
        self.small_disk_mb = small_disk_mb
        self.config_path = None
        os.makedirs(os.path.join(self.run_dir, "logs"), exist_ok=True)
        os.makedirs(os.path.join(self.run_dir, "data"), exist_ok=True)
        if config:
            import json
            self.config_path = os.path.join(self.run_dir, "config.json")
            with open(self.config_path, "w") as f:
                json.dump(config, f)
        for tool in ("weft", "weftctl"):
            if not os.access(os.path.join(self.bin_dir, tool), os.X_OK):
                raise StartFailed("no %s in %s (build it: swift build --product %s)" % (tool, self.bin_dir, tool))

    # Nodes ---------------------------------------------------------------------------------------

    def new_node(self, name, roles):
        node = Node(self, name, roles, len(self.nodes) + 1)
        if self.network:
            if not self.network.up:
                self.network.setup()
            node.netns, node.host = self.network.add(node.index)
        self.nodes[name] = node
        return node

    def storage_nodes(self, running=False, replicas=False):
        """Storage nodes; `running` only live processes; `replicas` leaves out drained nodes that are LEFT
        (a node that handed its placements off and left is no replica, whatever its disk still holds)."""
        nodes = [n for n in self.nodes.values() if n.storage and (not running or n.running())]
        if replicas and any(n.drained for n in nodes):
            states = {m: v.get("state") for m, v in self.members(self.front).items()}
            nodes = [n for n in nodes if not (n.drained and states.get(n.node_id) == "LEFT")]
        return nodes

    @property
    def front(self):
        return self.nodes.get("front")

    def join_address(self, exclude=None):
        """The internal address of a running, unpaused storage node to join through."""
        for n in self.storage_nodes(running=True):
            if n is not exclude and not n.paused and n.internal:
                return n.internal
        return None

    def start(self, storage_count, front=True):
        first = self.new_node("s1", "storage,query")
        if self.small_disk_mb and os.geteuid() == 0:
            first.disk = net.SmallDisk(first.data_dir, self.small_disk_mb)
            first.disk.mount()
        first.start()
        for i in range(2, storage_count + 1):
            self.new_node("s%d" % i, "storage,query").start(join=first.internal)
        if front:
            self.new_node("front", "ingest,query").start(join=first.internal)
        if self.wait_converged(60) is None:
            raise StartFailed("the cluster did not converge (all alive and ACTIVE) in 60 s")
        return self

    def add_storage_node(self):
        """Starts a new storage node joining through a running one (join during load)."""
        name = "s%d" % (len(self.storage_nodes()) + 1)
        return self.new_node(name, "storage,query").start(join=self.join_address())

    def restart(self, node, timeout=90):
        node.start(join=self.join_address(exclude=node), timeout=timeout)

    # Views ---------------------------------------------------------------------------------------

    def members(self, node):
        r = requests.get(node.query + "/api/cluster/members", timeout=5)
        r.raise_for_status()
        return {m["id"]: m for m in r.json()["members"]}

    def converged(self, expected=None):
        """Every running node sees every running node alive (and ACTIVE, unless drained)."""
        live = [n for n in self.nodes.values() if n.running() and not n.paused]
        want = expected or {n.node_id for n in live}
        for n in live:
            view = self.members(n)
            for node_id in want:
                m = view.get(node_id)
                drained = any(x.drained and x.node_id == node_id for x in live)
                if m is None or m["status"] != "alive" or m["state"] not in (("ACTIVE", "LEAVING", "LEFT") if drained else ("ACTIVE", "LEAVING")):
                    return False
        return True

    def wait_converged(self, seconds):
        return wait_until(self.converged, seconds, poll=0.3)

    def weftctl(self, *args, via=None, timeout=60):
        via = via or self.front
        return subprocess.run([os.path.join(self.bin_dir, "weftctl"), *args, "--url", via.query],
                              capture_output=True, text=True, timeout=timeout)

    # Teardown ------------------------------------------------------------------------------------

    def shutdown(self):
        for n in self.nodes.values():
            n.poll_crash()
            try:
                n.stop()
            except Exception as e:  # never leave processes behind
                self.notes.append("stopping %s: %s" % (n.name, e))
                if n.proc is not None:
                    n.proc.kill()
        for n in self.nodes.values():
            if n.disk:
                n.disk.free()
                # Keep what the node wrote for a post-mortem: the tmpfs goes with the unmount.
                shutil.copytree(n.data_dir, n.data_dir + ".saved", dirs_exist_ok=True)
                n.disk.unmount()
        if self.network:
            self.network.teardown()
