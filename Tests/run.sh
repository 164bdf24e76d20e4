#!/usr/bin/env bash
# Runs every test: the Swift unit and property tests, then the end-to-end tests that drive a real
# `weft serve` with the Python OpenTelemetry SDK. Needs the packages installed by `.ci/run`.
set -euo pipefail
cd "$(dirname "$0")/.."
# Scheduling work on an event loop that has shut down is a crash, not a log line.
export SWIFTNIO_STRICT=1

swift build --build-tests
# The whole suite takes about 2 minutes: a run still going after 20 is stuck, and fails here (the tests
# printed as started but not finished name the culprit) rather than at the CI job's time limit.
timeout --kill-after=30 1200 swift test --skip-build || { rc=$?; [ "$rc" -ge 124 ] && echo "swift test stopped after 20 minutes: a test hung" >&2; exit "$rc"; }
python3 -m pytest -q Tests/Interop Tests/Fuzz
# The membership simulator's campaign: 1,000 seeded clusters of 5–64 nodes (crashes, loss, partitions,
# ring changes); fails on any broken property and prints the seed that replays it.
swift build -c release --product weft-sim
.build/release/weft-sim --seeds 1000
