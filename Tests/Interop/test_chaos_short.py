"""A short fault campaign (cluster/chaos/run): 3 storage nodes (RF=3) and an ingest front under the
checked workload for about a minute with a handful of seeded faults — SIGKILL + restart, SIGSTOP past
the failure detector, a join, and, as root, a full disk and (with network namespaces) a partition and
netem — then every invariant of docs/chaos.md. WEFT_BIN picks the binary directory (weft and weftctl)."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(os.environ["WEFT_BIN"]) if os.environ.get("WEFT_BIN") else os.path.join(ROOT, ".build", "debug")
SEED = 11


def test_short_campaign_keeps_every_acknowledged_span(tmp_path):
    # A fixed schedule (GAP:KIND:TARGET:SECONDS) so that every run covers the same kinds; the seed picks the IDs.
    schedule = "4:kill:s2:5,4:pause:s3:10,4:join:s4:0"
    extra = []
    if os.geteuid() == 0:
        schedule += ",4:disk-full:s1:8,4:partition-one:s3:8"
        extra = ["--netns"]
    report = tmp_path / "report.json"
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "cluster", "chaos", "run"), "--nodes", "3", "--rf", "3", "--minutes", "1.5",
         "--seed", str(SEED), "--schedule", schedule, "--bin", BIN, "--run-dir", str(tmp_path / "run"),
         "--json", str(report), "--replica-deadline", "45", "--log-level", "warning"] + extra,
        capture_output=True, text=True, timeout=170)
    print(out.stdout)
    assert report.exists(), out.stderr[-3000:]
    r = json.loads(report.read_text())
    assert r["acknowledged_spans"] > 0, out.stdout
    assert sum(k["injected"] for k in r["faults_by_kind"].values()) >= 3, r["faults_by_kind"]
    assert r["violations"] == [], "\n".join(r["violations"]) + "\n" + out.stdout
    assert out.returncode == 0, out.stdout
