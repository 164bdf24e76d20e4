#!/usr/bin/env bash
# What users feel: a release `weft serve` with default settings, N LLM-gateway spans loaded with
# `weftctl load` (current timestamps, spread over the last 2 h), the API queries timed right after
# ingest (head + fresh blocks) and again after POST /flush and compaction, beside DuckDB over the same
# spans (captured on their way in), answers compared. Usage: Benchmarks/api/run.sh [--spans N]
set -euo pipefail
cd "$(dirname "$0")/../.."
SPANS=1000000
while [ $# -gt 0 ]; do
    case "$1" in
        --spans) SPANS=$2; shift 2 ;;
        *) echo "usage: $0 [--spans N]" >&2; exit 2 ;;
    esac
done
DIR=${DIR:-/tmp/weft-api-bench}
RUNS=${RUNS:-5}
THREADS=${THREADS:-2}
OTLP_PORT=${OTLP_PORT:-14318}
QUERY_PORT=${QUERY_PORT:-13200}
GRPC_PORT=${GRPC_PORT:-14317}
PROXY_PORT=${PROXY_PORT:-14319}
HERE=Benchmarks/api
# CONFIG=debug reuses a debug build (a quick check of the script; its figures mean nothing).
CONFIG=${CONFIG:-release}
python3 -c 'import duckdb' 2>/dev/null || pip install duckdb
swift build -c "$CONFIG" --product weft
swift build -c "$CONFIG" --product weftctl
rm -rf "$DIR"
mkdir -p "$DIR"

".build/$CONFIG/weft" serve --data-dir "$DIR/data" --otlp-port "$OTLP_PORT" --query-port "$QUERY_PORT" --otlp-grpc-port "$GRPC_PORT" \
    > "$DIR/weft.log" 2>&1 &
WEFT=$!
python3 "$HERE/capture_proxy.py" --listen "$PROXY_PORT" --upstream "http://127.0.0.1:$OTLP_PORT" --out "$DIR/requests.bin" &
PROXY=$!
trap 'kill $WEFT $PROXY 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$QUERY_PORT/ready" > /dev/null && curl -s -o /dev/null "http://127.0.0.1:$PROXY_PORT/" && break
    sleep 0.5
done

echo "== loading $SPANS spans"
".build/$CONFIG/weftctl" load --url "http://127.0.0.1:$PROXY_PORT/v1/traces" --spans "$SPANS" --backfill 2h --concurrency 4 --quiet
python3 "$HERE/otlp_to_tsv.py" --requests "$DIR/requests.bin" --params "$DIR/params.json"
cat "$DIR/params.json"; echo

echo "== right after ingest (head + fresh blocks)"
python3 "$HERE/api_queries.py" --url "http://127.0.0.1:$QUERY_PORT" --params "$DIR/params.json" --runs "$RUNS" --label "Weft fresh" --out "$DIR/weft-fresh.json"

echo "== after POST /flush and compaction"
curl -sf -X POST "http://127.0.0.1:$OTLP_PORT/flush" > /dev/null
# Compaction runs in the background: wait until the block and compaction counts have not changed for 10 s.
last="" same=0
for _ in $(seq 1 600); do
    blocks=$(curl -sf "http://127.0.0.1:$QUERY_PORT/metrics" | awk '$1 == "weft_blocks_count" || $1 == "weft_block_compactions_total" {printf "%s ", $2}')
    if [ "$blocks" = "$last" ]; then same=$((same + 1)); else same=0; last=$blocks; fi
    [ "$same" -ge 10 ] && break
    sleep 1
done
[ -n "$last" ] || { echo "no block metrics on /metrics" >&2; exit 1; }
echo "blocks, compactions: $last"
python3 "$HERE/api_queries.py" --url "http://127.0.0.1:$QUERY_PORT" --params "$DIR/params.json" --runs "$RUNS" --label "Weft compacted" --out "$DIR/weft-compacted.json"
kill $WEFT $PROXY
wait $WEFT $PROXY 2>/dev/null || true
trap - EXIT

echo "== DuckDB"
python3 "$HERE/otlp_to_tsv.py" --requests "$DIR/requests.bin" --tsv "$DIR/spans.tsv"
python3 "$HERE/duckdb_api.py" --tsv "$DIR/spans.tsv" --params "$DIR/params.json" --runs "$RUNS" --threads "$THREADS" --out "$DIR/duckdb.json"
python3 "$HERE/compare.py" "$DIR/duckdb.json" "$DIR/weft-fresh.json" "$DIR/weft-compacted.json"
