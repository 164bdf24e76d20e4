"""Network namespaces for a campaign's nodes (root only): one namespace per node on a private bridge,
partitions as blackhole routes inside a namespace, delay and loss with `tc netem` on its link."""

import os
import subprocess


def run(*argv, check=True):
    """Runs one command; raises with its stderr when `check` and it fails."""
    out = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if check and out.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(argv), out.returncode, out.stderr.strip()))
    return out


def netns_available():
    """(True, "") when this process may create network namespaces, else (False, why)."""
    if os.geteuid() != 0:
        return False, "network namespaces need root"
    for tool in ("ip", "tc"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            return False, "'%s' is missing (iproute2)" % tool
    probe = "wchaos-probe-%d" % os.getpid()
    if run("ip", "netns", "add", probe, check=False).returncode != 0:
        return False, "cannot create a network namespace here"
    run("ip", "netns", "delete", probe, check=False)
    return True, ""


def netem_available():
    """(True, "") when `tc qdisc … netem` works here (the kernel has sch_netem), else (False, why)."""
    probe = "wchaos-netem-%d" % os.getpid()
    if run("ip", "netns", "add", probe, check=False).returncode != 0:
        return False, "cannot create a network namespace here"
    try:
        out = run("ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms", check=False)
        return (True, "") if out.returncode == 0 else (False, "tc netem: %s" % out.stderr.strip())
    finally:
        run("ip", "netns", "delete", probe, check=False)


class Network:
    """A bridge with a /24 on the host and one namespace per node (10.213.X.(10+i))."""

    def __init__(self, tag):
        self.tag = tag % 250
        self.bridge = "wcb%d" % self.tag
        self.prefix = "10.213.%d" % self.tag
        self.namespaces = {}  # index -> namespace name
        self.blackholes = set()  # (index, address)
        self.up = False

    def setup(self):
        run("ip", "link", "add", self.bridge, "type", "bridge")
        self.up = True
        run("ip", "addr", "add", self.prefix + ".1/24", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")

    def namespace(self, index):
        return "wchaos-%d-%d" % (self.tag, index)

    def address(self, index):
        return "%s.%d" % (self.prefix, 10 + index)

    def add(self, index):
        """Creates node `index`'s namespace and link; returns (namespace, address)."""
        ns = self.namespace(index)
        veth = "wcv%d-%d" % (self.tag, index)
        run("ip", "netns", "add", ns)
        self.namespaces[index] = ns
        run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        run("ip", "link", "set", veth, "master", self.bridge, "up")
        run("ip", "-n", ns, "addr", "add", self.address(index) + "/24", "dev", "eth0")
        run("ip", "-n", ns, "link", "set", "eth0", "up")
        run("ip", "-n", ns, "link", "set", "lo", "up")
        return ns, self.address(index)

    def drop(self, src, dst):
        """Packets from node `src` to node `dst` are dropped (one way)."""
        key = (src, self.address(dst))
        if key not in self.blackholes:
            run("ip", "-n", self.namespaces[src], "route", "add", "blackhole", key[1] + "/32")
            self.blackholes.add(key)

    def heal_all(self):
        for src, addr in sorted(self.blackholes):
            run("ip", "-n", self.namespaces[src], "route", "del", "blackhole", addr + "/32", check=False)
        self.blackholes.clear()

    def netem(self, index, *spec):
        run("ip", "netns", "exec", self.namespaces[index], "tc", "qdisc", "replace", "dev", "eth0", "root", "netem", *spec)

    def clear_netem(self, index):
        run("ip", "netns", "exec", self.namespaces[index], "tc", "qdisc", "del", "dev", "eth0", "root", check=False)

    def teardown(self):
        for ns in self.namespaces.values():
            run("ip", "netns", "delete", ns, check=False)
        self.namespaces.clear()
        if self.up:
            run("ip", "link", "delete", self.bridge, check=False)
            self.up = False


class SmallDisk:
    """A size-limited tmpfs mounted as a node's data directory, and a filler file that leaves it full."""

    def __init__(self, path, megabytes):
        self.path = path
        self.megabytes = megabytes
        self.mounted = False

    def mount(self):
        os.makedirs(self.path, exist_ok=True)
        run("mount", "-t", "tmpfs", "-o", "size=%dm" % self.megabytes, "tmpfs", self.path)
        self.mounted = True

    def fill(self, leave_bytes=32 * 1024):
        """Writes a filler file until only `leave_bytes` are free; returns the bytes written."""
        st = os.statvfs(self.path)
        free = st.f_bavail * st.f_frsize
        size = max(0, free - leave_bytes)
        with open(os.path.join(self.path, "chaos-filler"), "wb") as f:
            chunk = b"\0" * (1 << 20)
            left = size
            try:
                while left > 0:
                    left -= f.write(chunk[: min(len(chunk), left)])
            except OSError:
                pass
        return size

    def free(self):
        try:
            os.remove(os.path.join(self.path, "chaos-filler"))
        except FileNotFoundError:
            pass

    def unmount(self):
        if self.mounted:
            run("umount", "-l", self.path, check=False)
            self.mounted = False
