"""Measurements for the write-path bars: process CPU and RSS from /proc, Prometheus counters from a
node's /metrics, and `weftctl load` runs parsed into numbers."""

import os
import re
import subprocess

import requests

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU seconds a process has used."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def metric(node, name):
    """The sum of a metric's samples on a node's /metrics."""
    text = requests.get(node.query + "/metrics", timeout=10).text
    return sum(float(v) for v in re.findall(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M))


def parse_load(stdout):
    """The numbers of `weftctl load`'s summary."""
    out = {}
    m = re.search(r"spans acknowledged\s+([\d,]+)", stdout)
    out["acked"] = int(m.group(1).replace(",", "")) if m else 0
    m = re.search(r"spans sent\s+([\d,]+)", stdout)
    out["sent"] = int(m.group(1).replace(",", "")) if m else 0
    m = re.search(r"elapsed\s+([\d.]+) s", stdout)
    out["elapsed"] = float(m.group(1)) if m else 0.0
    m = re.search(r"requests\s+([\d,]+)\s+\[([^\]]*)\]\s+retries ([\d,]+)\s+failed ([\d,]+)", stdout)
    if m:
        out["requests"] = int(m.group(1).replace(",", ""))
        out["statuses"] = m.group(2)
        out["retries"] = int(m.group(3).replace(",", ""))
        out["failed"] = int(m.group(4).replace(",", ""))
    out["spans_per_s"] = out["acked"] / out["elapsed"] if out["elapsed"] else 0.0
    return out


def load_command(bin_dir, node, spans=None, duration=None, concurrency=8, batch=500, protocol="http1", seed=1, rate=0):
    argv = [os.path.join(bin_dir, "weftctl"), "load", "--url", node.otlp + "/v1/traces", "--protocol", protocol,
            "--concurrency", str(concurrency), "--batch-size", str(batch), "--seed", str(seed), "--quiet"]
    if spans:
        argv += ["--spans", str(spans)]
    if duration:
        argv += ["--duration", str(duration)]
    if rate:
        argv += ["--rate", str(rate)]
    return argv


def run_load(bin_dir, node, **options):
    out = subprocess.run(load_command(bin_dir, node, **options), capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError("weftctl load failed (%d): %s" % (out.returncode, out.stderr.strip()[-500:]))
    return parse_load(out.stdout), out.stdout
