#!/usr/bin/env bash
# Q1–Q8 over the same 10 M generated spans in Weft (in process, release build) and in DuckDB (native
# table, same threads), answers compared. Usage: Benchmarks/query/run.sh [--reuse] [--spans N]
# --reuse keeps the blocks, TSV and parameters of an earlier run in $DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${DIR:-/tmp/weft-query-bench}
THREADS=${THREADS:-2}
python3 -c 'import duckdb' 2>/dev/null || pip install duckdb
swift build -c release --product weft-bench
mkdir -p "$DIR"
.build/release/weft-bench query --dir "$DIR" --tsv "$DIR/spans.tsv" --params "$DIR/params.json" --out "$DIR/weft.json" --threads "$THREADS" "$@"
python3 Benchmarks/query/duckdb_queries.py --csv "$DIR/spans.tsv" --params "$DIR/params.json" --runs 5 --threads "$THREADS" --out "$DIR/duckdb.json"
python3 Benchmarks/query/compare.py "$DIR/weft.json" "$DIR/duckdb.json"
