"""A short seeded fuzzing run per family against a real `weft serve` (about 60 s in all), and one pass
over the corpus of known failures.

Each family runs on its own node for a few seconds with a fixed seed, then the node is restarted on its
data dir and must serve the acknowledged traces. A failing test names its family; the message lists
every invariant failure with the command that replays it. Longer runs: `python3 Tests/Fuzz/run.py`.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from weftfuzz.campaign import Campaign, default_binary  # noqa: E402
from weftfuzz.corpus import CORPUS  # noqa: E402
from weftfuzz.registry import DEFAULT_FAMILIES  # noqa: E402

SEED = 20251205
SECONDS_PER_FAMILY = 6.0


@pytest.mark.parametrize("family", DEFAULT_FAMILIES)
def test_family_keeps_the_invariants(family):
    lines = []
    campaign = Campaign(default_binary(), SEED, [family], SECONDS_PER_FAMILY, log=lines.append, narrow_seconds=10.0)
    failures = campaign.run()
    assert campaign.counts[family] > 0
    assert not failures, "%s: %d invariant failure(s)\n%s\n%s" % (family, len(failures), "\n".join(lines), campaign.summary())


def test_known_failures_stay_fixed():
    """Each input of the corpus once (the smallest known input of every failure found so far)."""
    lines = []
    campaign = Campaign(default_binary(), SEED, ["corpus"], seconds=600, log=lines.append, narrow_seconds=0, max_cases=len(CORPUS))
    failures = campaign.run()
    assert campaign.counts["corpus"] == len(CORPUS)
    assert not failures, "corpus: %d of %d known failures still fail\n%s\n%s" % (
        len({f.index for f in failures}), len(CORPUS), "\n".join(lines), campaign.summary())
