#!/usr/bin/env bash
# h2load against Weft's h2c endpoint (nghttp2 engine) and the same endpoint on swift-nio-http2, in one
# run, one event-loop thread each: 1 KiB POST bodies, `-n 200000 -c 4 -m 32` by default.
#   Benchmarks/h2-compare.sh [requests] [clients] [streams per client]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}; C=${2:-4}; M=${3:-32}
command -v h2load >/dev/null || { echo "h2load missing: apt-get install nghttp2-client" >&2; exit 2; }
swift build -c release --product weft-h2bench >/dev/null
swift build -c release --package-path Benchmarks/nio-http2-baseline --scratch-path .build-nio-http2 >/dev/null
BODY=$(mktemp); head -c 1024 /dev/zero | tr '\0' 'a' > "$BODY"
run() {  # name, binary
    local out; out=$(mktemp)
    "$2" 0 1 > "$out" & local pid=$!
    while ! grep -q listening "$out"; do sleep 0.1; done
    local port; port=$(awk '{print $2}' "$out")
    h2load -n "$N" -c "$C" -m "$M" -d "$BODY" "http://127.0.0.1:$port/bench" >/dev/null 2>&1  # warm-up
    local rps; rps=$(h2load -n "$N" -c "$C" -m "$M" -d "$BODY" "http://127.0.0.1:$port/bench" | awk '/^finished in/ {print $4}')
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "$rps"
}
weft=$(run weft .build/release/weft-h2bench)
nio=$(run nio .build-nio-http2/release/nio-http2-baseline)
rm -f "$BODY"
printf "h2load -n %s -c %s -m %s, 1 KiB POST, one server thread\n" "$N" "$C" "$M"
printf "  weft (libnghttp2)   %10.0f req/s\n" "$weft"
printf "  swift-nio-http2     %10.0f req/s\n" "$nio"
awk -v a="$weft" -v b="$nio" 'BEGIN { printf "  ratio               %10.2fx\n", a / b }'
