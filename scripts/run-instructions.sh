#!/usr/bin/env bash
# Instructions per message of `hubroute run` (routes-10, one file: sink per endpoint, a fresh
# store), per thread, counted by callgrind: the end-to-end pipeline's cost where wall-clock
# timings are noisy (a busy machine). Needs valgrind (apt-get install valgrind) and a release
# build (cargo build --release --bin hubroute).
#
#   scripts/run-instructions.sh [INPUT] [THREADS] [file|storage]
#   (defaults: ../shared/bench/messages-10k.jsonl 1 file; HUBROUTE_BIN=PATH: another build)
#
# Prints one line per thread that ran more than 1% of the instructions (thread number, its
# instructions per message) and the total; callgrind's per-thread files stay in $OUT
# (default: a temporary directory, printed) for `callgrind_annotate FILE`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
INPUT=${1:-$ROOT/../shared/bench/messages-10k.jsonl}
THREADS=${2:-1}
KIND=${3:-file}
ROUTES=$ROOT/../shared/bench/routes-10.json
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/hubroute-cg.XXXXXX")}
mkdir -p "$OUT"
D=$(mktemp -d "${TMPDIR:-/tmp}/hubroute-run-cg.XXXXXX")
trap 'rm -rf "$D"' EXIT
SINKS=()
for n in $(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(" ".join([e["name"] for k in c["endpoints"].values() for e in k] + ["events"]))' "$ROUTES"); do
    case $KIND in
        file) SINKS+=(--sink "$n=file:$D/$n.jsonl") ;;
        storage) SINKS+=(--sink "$n=storage:$D/$n") ;;
        *) echo "error: sink kind '$KIND' (expected file or storage)" >&2; exit 2 ;;
    esac
done
N=$(grep -c . "$INPUT")
# `run` starts itself again with glibc's malloc tunables unless GLIBC_TUNABLES is set
# (src/bin/hubroute/malloc_tuning.rs); the new program would run outside valgrind. valgrind
# replaces malloc anyway, so an empty setting changes nothing else.
export GLIBC_TUNABLES=${GLIBC_TUNABLES-}
RAYON_NUM_THREADS=$THREADS valgrind --tool=callgrind --separate-threads=yes \
    --callgrind-out-file="$OUT/cg.out" --log-file="$OUT/valgrind.log" \
    "${HUBROUTE_BIN:-$ROOT/target/release/hubroute}" run --quiet --routes "$ROUTES" --input "$INPUT" \
    --store "$D/store" --dead-letter "$D/dead.jsonl" "${SINKS[@]}" 2>"$OUT/run.stderr" || true
total=0
for f in "$OUT"/cg.out-*; do
    n=$(grep -m1 '^summary:' "$f" | awk '{print $2}')
    total=$((total + n))
done
echo "$N messages; callgrind files in $OUT (thread 1: main)"
for f in "$OUT"/cg.out-*; do
    n=$(grep -m1 '^summary:' "$f" | awk '{print $2}')
    if [ $((n * 100)) -gt "$total" ]; then
        top=$(callgrind_annotate "$f" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | sed -n 2p | sed -E 's/.*\) +//' | cut -c1-70)
        echo "thread ${f##*-}: $((n / N)) instructions/message (top: $top)"
    fi
done
echo "total: $((total / N)) instructions/message"
