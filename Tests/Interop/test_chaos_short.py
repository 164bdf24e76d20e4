"""A short fault campaign (cluster/chaos/run, docs/chaos.md): 3 storage nodes (RF=3) and an ingest front
under the checked workload for about a minute and a quarter with a handful of faults — SIGKILL + restart,
SIGSTOP past the failure detector, a join and, as root, a full disk and a partition in network
namespaces — then every invariant. WEFT_BIN picks the binary directory (weft and weftctl beside it)."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(os.environ["WEFT_BIN"]) if os.environ.get("WEFT_BIN") else os.path.join(ROOT, ".build", "debug")
SEED = 11


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    """Runs the campaign once; returns (report, printed output)."""
    tmp = tmp_path_factory.mktemp("chaos")
    # A fixed schedule (GAP:KIND:TARGETS:SECONDS) so that every run covers the same kinds; the seed picks the IDs.
    schedule = "3:kill:s2:4,3:pause:s3:9,3:join:s4:0"
    extra = []
    if os.geteuid() == 0:
        schedule += ",3:disk-full:s1:6,3:partition-one:s3:6"
        extra = ["--netns"]
    report = tmp / "report.json"
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "cluster", "chaos", "run"), "--nodes", "3", "--rf", "3", "--minutes", "1.25",
         "--seed", str(SEED), "--schedule", schedule, "--bin", BIN, "--run-dir", str(tmp / "run"),
         "--json", str(report), "--replica-deadline", "40", "--log-level", "warning"] + extra,
        capture_output=True, text=True, timeout=175)
    print(out.stdout)
    assert report.exists(), out.stderr[-3000:]
    return json.loads(report.read_text()), out.stdout


def violations(report, *categories):
    return [v for v in report["violations"] if v[1:].split("]")[0] in categories]


def test_short_campaign_loses_no_acknowledged_span_and_crashes_no_node(campaign):
    r, printed = campaign
    assert r["acknowledged_spans"] > 0, printed
    assert sum(k["injected"] for k in r["faults_by_kind"].values()) >= 3, r["faults_by_kind"]
    assert sum(k["failed_to_apply"] for k in r["faults_by_kind"].values()) == 0, r["events"]
    # No acknowledged span on fewer than RF storage nodes (none lost), none twice on one node; no crash; no
    # harness error. (A span retried across a ring change can land under a second placement and so on one
    # node more than RF: docs/chaos.md lists this as not yet handled, so more than RF is not failed here.)
    copies = {int(k): v for k, v in r["checks"]["replicas"]["copies_histogram"].items()}
    assert all(k >= r["rf"] for k in copies), (copies, printed)
    assert r["checks"]["replicas"]["repeated_on_one_node"] == 0, printed
    assert violations(r, "crash", "harness") == [], printed


def test_short_campaign_answers_are_exact(campaign):
    r, printed = campaign
    assert violations(r, "reads", "during-run") == [], printed
