#!/usr/bin/env bash
# Instructions per message of routing ../shared/bench/messages-1k.jsonl, counted by callgrind:
# a stable measure of the hot path where wall-clock timings are noisy (see the README's
# Performance section). Needs valgrind (apt-get install valgrind).
#
#   scripts/instructions.sh [WORKLOAD...]   # routes-10 routes-100 properties-only floor
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }
cargo build --quiet --release --example instructions
bin=target/release/examples/instructions
[ $# -gt 0 ] || set -- routes-10 routes-100 properties-only floor
for workload in "$@"; do
    log=$(mktemp)
    n=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null --log-file="$log" \
        --toggle-collect='instructions::measured_*' "$bin" "$workload")
    collected=$(grep -o 'Collected : [0-9]*' "$log" | awk '{print $3}')
    rm -f "$log"
    echo "$workload: $((collected / n)) instructions/message"
done
