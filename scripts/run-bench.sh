#!/usr/bin/env bash
# `hubroute run` on a file under /usr/bin/time -v, as README's Performance section measures it:
# routes-10 with one sink per endpoint, a fresh store, rayon limited to THREADS threads.
#
# Usage (from the repository root, after `cargo build --release`; HUBROUTE_BIN=PATH measures
# another build, e.g. a saved copy of an earlier one):
#   scripts/run-bench.sh [INPUT] [THREADS] [file|storage]
# (defaults: ../shared/bench/messages-10k.jsonl 1 file). Prints run's summary line, CPU% and max
# RSS; the scratch directory is removed at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
INPUT=${1:-$ROOT/../shared/bench/messages-10k.jsonl}
THREADS=${2:-1}
KIND=${3:-file}
ROUTES=$ROOT/../shared/bench/routes-10.json
[ -x /usr/bin/time ] || { echo "error: /usr/bin/time not found (apt-get install time)" >&2; exit 2; }
D=$(mktemp -d "${BENCH_TMP:-/tmp}/hubroute-run-bench.XXXXXX")
trap 'rm -rf "$D"' EXIT
SINKS=()
for n in $(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(" ".join([e["name"] for k in c["endpoints"].values() for e in k] + ["events"]))' "$ROUTES"); do
    case $KIND in
        file) SINKS+=(--sink "$n=file:$D/$n.jsonl") ;;
        storage) SINKS+=(--sink "$n=storage:$D/$n") ;;
        *) echo "error: sink kind '$KIND' (expected file or storage)" >&2; exit 2 ;;
    esac
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
RAYON_NUM_THREADS=$THREADS /usr/bin/time -v "${HUBROUTE_BIN:-$ROOT/target/release/hubroute}" run --quiet \
    --routes "$ROUTES" --input "$INPUT" --store "$D/store" --dead-letter "$D/dead.jsonl" \
    "${SINKS[@]}" 2>&1 | grep -E "^read |Percent of CPU|Maximum resident"
