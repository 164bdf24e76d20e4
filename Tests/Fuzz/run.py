#!/usr/bin/env python3
"""Fuzzes a real `weft serve` with structure-aware cases and checks its invariants.

    python3 Tests/Fuzz/run.py --seed 1 --seconds 600                      # a long run, every family
    python3 Tests/Fuzz/run.py --seed 1 --seconds 60 --families traceql,org
    python3 Tests/Fuzz/run.py --seed 1 --family traceql --case 17         # replay one case
    python3 Tests/Fuzz/run.py --seed 1 --family traceql --case 17 --show  # print it as curl commands
    python3 Tests/Fuzz/run.py --families corpus --cases 17 --seconds 600  # each known failure once

Exits 1 if any invariant failed (each failure prints its replay command), 0 otherwise.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from weftfuzz.campaign import GIB, Campaign, Limits, default_binary  # noqa: E402
from weftfuzz.registry import DEFAULT_FAMILIES, FAMILIES  # noqa: E402
from weftfuzz.show import show_case  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--seconds", type=float, default=60.0, help="campaign length (node start and final restart not counted)")
    p.add_argument("--families", default=",".join(DEFAULT_FAMILIES),
                   help="comma-separated, from: %s (default: all but corpus)" % ", ".join(FAMILIES))
    p.add_argument("--cases", type=int, help="stop after this many cases (e.g. one pass over the corpus)")
    p.add_argument("--weft", default=default_binary(), help="the weft binary (default .build/debug/weft, or $WEFT_BIN)")
    p.add_argument("--family", help="with --case: replay one case of this family")
    p.add_argument("--case", type=int, help="with --family: the case index to replay")
    p.add_argument("--show", action="store_true", help="with --family/--case: print the case's requests as curl commands")
    p.add_argument("--query-deadline", type=float, default=2.0, help="seconds a query may take (2)")
    p.add_argument("--ingest-deadline", type=float, default=5.0, help="seconds an export may take (5)")
    p.add_argument("--seconds-per-mib", type=float, default=1.0, help="added to a deadline per MiB of request body (1)")
    p.add_argument("--rss-gib", type=float, default=1.5, help="bound on the node's peak RSS (1.5 GiB)")
    p.add_argument("--verbose", action="store_true", help="print every request and its answer")
    p.add_argument("--narrow-seconds", type=float, default=120.0, help="time to find which case breaks a restart (120)")
    args = p.parse_args()

    if (args.family is None) != (args.case is None):
        p.error("--family and --case go together")
    if args.show:
        if args.family is None:
            p.error("--show needs --family and --case")
        show_case(args.seed, args.family, args.case)
        return 0
    if not os.access(args.weft, os.X_OK):
        p.error("no weft binary at %s (run `swift build` first)" % args.weft)

    limits = Limits(args.query_deadline, args.ingest_deadline, int(args.rss_gib * GIB), seconds_per_mib=args.seconds_per_mib)
    families = [args.family] if args.family else [f for f in args.families.split(",") if f]
    campaign = Campaign(args.weft, args.seed, families, args.seconds, limits, narrow_seconds=args.narrow_seconds, max_cases=args.cases)
    campaign.verbose = args.verbose
    campaign.run(only=(args.family, args.case) if args.family else None)
    print(campaign.summary())
    return 1 if campaign.failures else 0


if __name__ == "__main__":
    sys.exit(main())
