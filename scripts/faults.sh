#!/usr/bin/env bash
# The fault-injection suite (tests/faults.rs) run bigger, with its results as a table:
# per scenario and endpoint, messages published, acknowledged by the broker, expected at the
# endpoint, lost, duplicates, torn lines, and what else was measured (the other endpoints'
# throughput while one is down).
#
#   scripts/faults.sh                       # FAULT_SCALE=10: tens of thousands of messages
#   FAULT_SCALE=1 scripts/faults.sh         # the CI size
#   scripts/faults.sh router_sigkill        # one scenario (any cargo test filter)
#   HUBROUTE_BIN=../wt-pipeline/target/debug/hubroute scripts/faults.sh   # another build
#   FAULT_REPEAT=11 scripts/faults.sh nats_server   # the same scenario 11 times (rare failures)
#
# Needs mosquitto and nats-server (Debian packages of those names). Exits non-zero when a
# scenario failed; the table still shows what was measured.
set -uo pipefail
cd "$(dirname "$0")/.."

export FAULT_SCALE="${FAULT_SCALE:-10}"
# The whole output (panic messages carry the processes' logs) stays in target/faults.log.
mkdir -p target
log="target/faults.log"
: >"$log"

echo "fault suite, FAULT_SCALE=$FAULT_SCALE, binary: ${HUBROUTE_BIN:-target/debug/hubroute}"
status=0
for run in $(seq "${FAULT_REPEAT:-1}"); do
    cargo test --test faults -- --test-threads=1 --nocapture "$@" >>"$log" 2>&1 || status=1
    [ "${FAULT_REPEAT:-1}" -gt 1 ] && echo "run $run: $(grep '^test result' "$log" | tail -1)"
done
grep -E '^test result|panicked at' "$log"
sed -n '/^failures:$/,/^test result/p' "$log" | grep -E '^    [a-z_]+$' | sed 's/^ */FAILED: /' | sort -u
echo
{
    echo "scenario|messages|acked|endpoint|expected|lost|duplicates|torn|note"
    grep -oE 'FAULTS\|.*' "$log" | cut -d'|' -f2-
} | column -t -s '|'
if [ "$status" -ne 0 ]; then
    echo
    echo "some scenarios failed; target/faults.log has their messages and the processes' logs"
fi
exit "$status"
