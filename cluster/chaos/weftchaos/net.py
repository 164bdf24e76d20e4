"""Network namespaces for a campaign's nodes (root only): one namespace per node on a private bridge,
partitions as blackhole routes inside a namespace, delay and loss on its link: `tc netem` where the kernel
has it, else a `tbf` rate limit (queueing delay) and an nftables random drop (loss)."""

import os
import re
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


# What the fallback applies when the kernel has no sch_netem: `tbf` queues what a node sends beyond
# TBF_RATE for up to TBF_LATENCY (then drops it), so its traffic is delayed whenever it sends faster than
# that; nftables drops LOSS_PERCENT of the packets it sends and receives, drawn at random per packet.
TBF_RATE, TBF_BURST, TBF_LATENCY = "256kbit", "4kb", "200ms"
NFT_TABLE = "wchaos_impair"


def tbf_spec():
    return ["tbf", "rate", TBF_RATE, "burst", TBF_BURST, "latency", TBF_LATENCY]


def nft_loss_script(device, percent):
    """An nftables script: a table that drops `percent` % of the packets in and out of `device` at random."""
    rules = []
    for chain, hook, match in (("in", "input", "iifname"), ("out", "output", "oifname")):
        rules.append("  chain %s { type filter hook %s priority 0; policy accept; %s \"%s\" numgen random mod 100 < %d counter drop; }"
                     % (chain, hook, match, device, percent))
    return "table inet %s {\n%s\n}\n" % (NFT_TABLE, "\n".join(rules))


def impairment_method():
    """How delay and loss can be applied here: ("netem", note) when the kernel has sch_netem; else
    ("tbf+nft", note) with a tbf rate limit and an nftables random drop; ("tbf", note) or ("nft", note) when
    only one of them works; (None, why) when neither does. Probed once in a scratch namespace."""
    probe = "wchaos-impair-%d" % os.getpid()
    if run("ip", "netns", "add", probe, check=False).returncode != 0:
        return None, "cannot create a network namespace here"
    try:
        inside = ["ip", "netns", "exec", probe]
        out = run(*inside, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms", check=False)
        if out.returncode == 0:
            return "netem", ""
        why_netem = "no tc netem (%s)" % (out.stderr.strip().splitlines() or ["?"])[0]
        tbf = run(*inside, "tc", "qdisc", "add", "dev", "lo", "root", *tbf_spec(), check=False).returncode == 0
        nft = subprocess.run(inside + ["nft", "-f", "-"], input=nft_loss_script("lo", 5), capture_output=True,
                             text=True, timeout=30).returncode == 0 if _has("nft") else False
        if tbf and nft:
            return "tbf+nft", why_netem + ": delay as a tbf rate limit, loss as an nftables random drop"
        if tbf:
            return "tbf", why_netem + " and no nftables (nft): delay as a tbf rate limit only, no loss"
        if nft:
            return "nft", why_netem + " and no tbf: loss as an nftables random drop only, no delay"
        return None, why_netem + ", no tbf qdisc and no nftables (nft): no delay or loss can be applied"
    finally:
        run("ip", "netns", "delete", probe, check=False)


def _has(tool):
    return subprocess.run(["which", tool], capture_output=True).returncode == 0


class Network:
    """A bridge with a /24 on the host and one namespace per node (10.213.X.(10+i))."""

    def __init__(self, tag):
        self.tag = tag % 250
        self.bridge = "wcb%d" % self.tag
        self.prefix = "10.213.%d" % self.tag
        self.namespaces = {}  # index -> namespace name
        self.blackholes = set()  # (index, address)
        self.impaired = set()  # (index, device)
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
        for index, device in sorted(self.impaired):
            clear_impairment(self.namespaces[index], device)
        self.impaired.clear()

    def impair(self, index, method, delay="100ms", jitter="50ms", loss_percent=5, device="eth0"):
        """Delays and drops node `index`'s packets with `method` (from `impairment_method`); returns what was
        applied, in words."""
        self.impaired.add((index, device))
        return impair_namespace(self.namespaces[index], method, delay, jitter, loss_percent, device)

    def impairment_effect(self, index, device="eth0"):
        return impairment_effect(self.namespaces[index], device)

    def clear_impairment(self, index, device="eth0"):
        clear_impairment(self.namespaces[index], device)
        self.impaired.discard((index, device))

    def teardown(self):
        for ns in self.namespaces.values():
            run("ip", "netns", "delete", ns, check=False)
        self.namespaces.clear()
        if self.up:
            run("ip", "link", "delete", self.bridge, check=False)
            self.up = False


def impair_namespace(ns, method, delay, jitter, loss_percent, device):
    inside = ["ip", "netns", "exec", ns]
    applied = []
    if method == "netem":
        run(*inside, "tc", "qdisc", "replace", "dev", device, "root", "netem", "delay", delay, jitter, "loss", "%d%%" % loss_percent)
        return "tc netem delay %s %s loss %d%% on %s" % (delay, jitter, loss_percent, device)
    if method in ("tbf+nft", "tbf"):
        run(*inside, "tc", "qdisc", "replace", "dev", device, "root", *tbf_spec())
        applied.append("tc %s on %s (what it sends beyond %s waits up to %s, then is dropped)" % (
            " ".join(tbf_spec()), device, TBF_RATE, TBF_LATENCY))
    if method in ("tbf+nft", "nft"):
        out = subprocess.run(inside + ["nft", "-f", "-"], input=nft_loss_script(device, loss_percent),
                             capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise RuntimeError("nft: %s" % out.stderr.strip())
        applied.append("nftables drop of %d%% of the packets in and out of %s (numgen random)" % (loss_percent, device))
    if not applied:
        raise RuntimeError("no way to delay or drop packets here")
    return "; ".join(applied)


def impairment_effect(ns, device):
    """What the impairment did so far: {"tbf": {sent_packets, dropped, overlimits}, "nft_dropped": {in, out}}."""
    inside = ["ip", "netns", "exec", ns]
    effect = {}
    out = run(*inside, "tc", "-s", "qdisc", "show", "dev", device, check=False).stdout
    m = re.search(r"qdisc (\w+) .*?Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)", out, re.S)
    if m:
        effect[m.group(1)] = {"sent_bytes": int(m.group(2)), "sent_packets": int(m.group(3)),
                              "dropped": int(m.group(4)), "overlimits": int(m.group(5))}
    if _has("nft"):
        listing = run(*inside, "nft", "list", "table", "inet", NFT_TABLE, check=False).stdout
        drops = {}
        for chain, body in re.findall(r"chain (\w+) \{(.*?)\}", listing, re.S):
            c = re.search(r"counter packets (\d+)", body)
            if c:
                drops[chain] = int(c.group(1))
        if drops:
            effect["nft_dropped"] = drops
    return effect


def clear_impairment(ns, device):
    inside = ["ip", "netns", "exec", ns]
    run(*inside, "tc", "qdisc", "del", "dev", device, "root", check=False)
    if _has("nft"):
        run(*inside, "nft", "delete", "table", "inet", NFT_TABLE, check=False)


class SmallDisk:
    """A small file system mounted as a node's data directory, and a filler file that leaves it full: an
    ext4 image on a loop device, or a size-limited tmpfs where loop devices are not available."""

    def __init__(self, path, megabytes):
        self.path = path
        self.megabytes = megabytes
        self.mounted = False
        self.kind = None
        self.image = path.rstrip("/") + ".img"

    def mount(self):
        os.makedirs(self.path, exist_ok=True)
        try:
            with open(self.image, "wb") as f:
                f.truncate(self.megabytes << 20)
            run("mkfs.ext4", "-q", "-F", "-m", "0", self.image)
            run("mount", "-o", "loop", self.image, self.path)
            self.kind = "ext4 on a loop device"
        except Exception:
            if os.path.exists(self.image):
                os.remove(self.image)
            run("mount", "-t", "tmpfs", "-o", "size=%dm" % self.megabytes, "tmpfs", self.path)
            self.kind = "tmpfs (no loop device)"
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
            if os.path.exists(self.image):
                os.remove(self.image)
