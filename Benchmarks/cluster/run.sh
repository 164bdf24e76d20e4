#!/usr/bin/env bash
# The cluster query benchmark: the same N LLM-gateway spans in one `--roles all` node and in a
# 5-storage-node RF=3 cluster with an ingest+query front, on this machine; the API queries of
# Benchmarks/api timed through HTTP on both, answers checked identical, and per query the single-node
# median, the cluster median, their ratio, the cluster's cold run and its fan-out cost.
# Usage: Benchmarks/cluster/run.sh [--spans N]   (CONFIG=debug for a quick check of the script; BACKFILL=2h
# for spans older than the cluster)
set -euo pipefail
cd "$(dirname "$0")/../.."
SPANS=1000000
while [ $# -gt 0 ]; do
    case "$1" in
        --spans) SPANS=$2; shift 2 ;;
        *) echo "usage: $0 [--spans N]" >&2; exit 2 ;;
    esac
done
DIR=${DIR:-/tmp/weft-cluster-bench}
RUNS=${RUNS:-11}
STORAGE=${STORAGE:-5}
RF=${RF:-3}
SEED=${SEED:-7}
PROXY_PORT=${PROXY_PORT:-14329}
CONFIG=${CONFIG:-release}
HERE=Benchmarks/cluster
swift build -c "$CONFIG" --product weft
swift build -c "$CONFIG" --product weftctl
WEFT=".build/$CONFIG/weft"
rm -rf "$DIR"
mkdir -p "$DIR"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

# Starts `weft serve NAME ARGS...` on ports chosen by the OS; sets LISTEN to its `listening` line.
start() {
    local name=$1; shift
    "$WEFT" serve --data-dir "$DIR/$name" --otlp-port 0 --query-port 0 --otlp-grpc-port 0 --log-level warning "$@" \
        > "$DIR/$name.out" 2> "$DIR/$name.log" &
    PIDS+=($!)
    for _ in $(seq 1 200); do
        LISTEN=$(grep -m1 '^listening ' "$DIR/$name.out" || true)
        [ -n "$LISTEN" ] && return 0
        sleep 0.1
    done
    echo "$name did not start: $(cat "$DIR/$name.log")" >&2
    exit 1
}
field() { echo "$LISTEN" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

start lone
LONE_OTLP=$(field otlp); LONE_QUERY=$(field query)
CLUSTER=(--replication-factor "$RF" --cluster-secret weft-cluster-bench --internal-port 0)
start s1 --roles storage "${CLUSTER[@]}"
SEED_INTERNAL=$(field internal)
STORAGE_QUERY=("$(field query)")
for i in $(seq 2 "$STORAGE"); do
    start "s$i" --roles storage "${CLUSTER[@]}" --join "$SEED_INTERNAL"
    STORAGE_QUERY+=("$(field query)")
done
start front --roles ingest,query "${CLUSTER[@]}" --join "$SEED_INTERNAL"
FRONT_OTLP=$(field otlp); FRONT_QUERY=$(field query)
# Every storage node ACTIVE with tokens in the front's ring before any write.
for _ in $(seq 1 300); do
    active=$(curl -sf "http://$FRONT_QUERY/api/cluster/ring" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(sum(1 for n in r["nodes"] if n["state"]=="ACTIVE" and n["tokens"]>0))' || echo 0)
    [ "$active" = "$STORAGE" ] && break
    sleep 0.2
done
[ "$active" = "$STORAGE" ] || { echo "the ring has $active active storage nodes, not $STORAGE" >&2; exit 1; }
# A span started within a minute of a ring change may lie under either ring's replica set, so reads of
# its trace cannot trust one placement. The load generator dates spans back so that each trace has
# ended when it is sent (by up to about two and a half minutes), so the load starts once the ring has
# been steady for three and a half minutes, as in a cluster that has been running.
ring_version() { curl -sf "http://$FRONT_QUERY/api/cluster/ring" | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])'; }
if [ -z "${BACKFILL:-}" ]; then
    settled=$(ring_version)
    while true; do
        sleep 210
        now=$(ring_version)
        [ "$now" = "$settled" ] && break
        settled=$now
    done
fi

python3 Benchmarks/api/capture_proxy.py --listen "$PROXY_PORT" --upstream "http://$FRONT_OTLP" --out "$DIR/requests.bin" &
PIDS+=($!)
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$PROXY_PORT/" && break; sleep 0.1; done

echo "== loading $SPANS spans into the cluster (seed $SEED), then the same requests into the lone node"
# Spans are stamped as they are sent (BACKFILL=2h spreads them over the two hours before, older than
# the ring history: then no trace read can trust its candidate placements, and searches take two rounds).
BACKFILL_FLAGS=()
[ -n "${BACKFILL:-}" ] && BACKFILL_FLAGS=(--backfill "$BACKFILL")
".build/$CONFIG/weftctl" load --url "http://127.0.0.1:$PROXY_PORT/v1/traces" --spans "$SPANS" --seed "$SEED" "${BACKFILL_FLAGS[@]}" --concurrency 4 --quiet
python3 "$HERE/replay.py" --requests "$DIR/requests.bin" --url "http://$LONE_OTLP/v1/traces"
python3 Benchmarks/api/otlp_to_tsv.py --requests "$DIR/requests.bin" --params "$DIR/params.json"
cat "$DIR/params.json"; echo

echo "== POST /flush everywhere, then until compaction settles on every node"
for q in "$LONE_QUERY" "${STORAGE_QUERY[@]}"; do curl -sf -X POST "http://$q/flush" > /dev/null; done
last="" same=0
for _ in $(seq 1 600); do
    blocks=$(for q in "$LONE_QUERY" "${STORAGE_QUERY[@]}"; do
        curl -sf "http://$q/metrics" | awk '$1 == "weft_blocks_count" || $1 == "weft_block_compactions_total" {printf "%s ", $2}'
    done)
    if [ "$blocks" = "$last" ]; then same=$((same + 1)); else same=0; last=$blocks; fi
    [ "$same" -ge 10 ] && break
    sleep 1
done

echo "blocks and compactions (single node, then storage nodes): $blocks"
python3 "$HERE/cluster_queries.py" --single "http://$LONE_QUERY" --cluster "http://$FRONT_QUERY" --params "$DIR/params.json" \
    --runs "$RUNS" --out "$DIR/cluster-bench.json"
