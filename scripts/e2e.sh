#!/usr/bin/env bash
# End-to-end throughput of the broker paths, against real brokers on loopback:
#
#   A. device_fleet → Mosquitto (examples/mosquitto/hubroute.conf) → hubroute run --input mqtt://…
#   B. device_fleet → Mosquitto → hubroute bridge → JetStream (nats-server -js), then
#      one `run --input jetstream://…` worker draining the stream, then two workers sharing a
#      consumer on a second pass over the same stream.
#
#   C. last, the time from device to router (the device's send time in each body against the
#      router's enqueuedTime) at steady rates: LATENCY_RATES (default "200 2000 10000" msg/s,
#      empty to skip), LATENCY_SECONDS each (default 3).
#
#   0. first, the broker with a plain subscriber: device_fleet → Mosquitto → mosquitto_sub (no
#      router; a C client that writes each PUBACK on its own, so a router that batches its
#      acknowledgements can go faster).
#
# Every router routes ../shared/bench/routes-10.json with a file: sink per endpoint and its own
# durable store (device_fleet's messages match none of its ten routes: all ten conditions are
# evaluated and each message takes the fallback route to `events`). Prints messages/s, broker-side drops (Mosquitto's "Outgoing messages are being
# dropped" log lines and messages the router never got), and the routers' delivery latency
# (p50/p99 per endpoint, from `run`'s report; for the JetStream workers, which start on a full
# stream, it includes the time the message waited in the stream).
#
# Usage (from the repository root): scripts/e2e.sh [MESSAGES] [DEVICES]   (default 100000 10)
# HUBROUTE_BIN=PATH runs that router binary instead of this tree's release build.
# Needs mosquitto and nats-server on PATH or in /usr/sbin (apt-get install mosquitto
# nats-server). Builds the release binary and the device_fleet example first. Everything runs
# on 127.0.0.1 on free ports, under a temporary directory that is removed at the end.
set -euo pipefail

N=${1:-100000}
DEVICES=${2:-10}
IDLE=3 # seconds without a message after which routers and the bridge stop
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH="$PATH:/usr/sbin"
for tool in mosquitto nats-server python3; do
    command -v "$tool" >/dev/null || {
        echo "error: $tool not found; install it (apt-get install mosquitto nats-server python3)" >&2
        exit 2
    }
done

# HUBROUTE_BIN=PATH measures another build of the router (e.g. a saved copy of an earlier one).
if [ -z "${HUBROUTE_BIN:-}" ] || [ ! -x target/release/examples/device_fleet ]; then
    cargo build --release --quiet --bin hubroute --example device_fleet
fi
BIN=${HUBROUTE_BIN:-$ROOT/target/release/hubroute}
FLEET=$ROOT/target/release/examples/device_fleet
ROUTES=$ROOT/../shared/bench/routes-10.json

W=$(mktemp -d /tmp/hubroute-e2e.XXXXXX)
PIDS=()
cleanup() {
    # Routers run under /usr/bin/time, which does not pass a signal on: stop its child too.
    for p in "${PIDS[@]}"; do
        pkill -P "$p" 2>/dev/null || true
        kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
now() { date +%s.%N; }
rate() { python3 -c "import sys; n,t=float(sys.argv[1]),float(sys.argv[2]); print(f'{n/t:.0f}' if t>0 else 'n/a')" "$@"; }
# CPU ticks (user + system) a running process has used so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# CPU seconds per 100k messages: TICKS_BEFORE TICKS_AFTER, or SECONDS from /usr/bin/time.
per100k() { python3 -c "import sys; print(f'{float(sys.argv[1]) * 100000 / float(sys.argv[2]):.2f}')" "$1" "$N"; }
ticks_per100k() { per100k "$(python3 -c "import sys; print((int(sys.argv[2]) - int(sys.argv[1])) / $(getconf CLK_TCK))" "$1" "$2")"; }
# Runs a command under /usr/bin/time, its user + system seconds into FILE: FILE COMMAND…
timed() { local out=$1; shift; /usr/bin/time -f "%U %S" -o "$out" "$@"; }
cpu_of() { awk 'END {print $1 + $2}' "$1" 2>/dev/null || echo 0; }
minus() { python3 -c "import sys; print(f'{float(sys.argv[1])-float(sys.argv[2])-float(sys.argv[3]):.3f}')" "$@"; }

# Sinks: one file per endpoint of routes-10 (their names from the configuration).
sinks() { # DIR
    python3 - "$ROUTES" "$1" <<'EOF'
import json, sys
config = json.load(open(sys.argv[1]))
names = [e["name"] for kind in config["endpoints"].values() for e in kind] + ["events"]
print(" ".join(f"--sink {n}=file:{sys.argv[2]}/{n}.jsonl" for n in names))
EOF
}

# `run`'s arguments for a router on routes-10 reading INPUT, its store, dead letter and sinks
# under DIR, into the array RUN_ARGS (an array, so that /usr/bin/time can run it): DIR INPUT
run_args() {
    mkdir -p "$1"
    local sink_args
    read -ra sink_args <<<"$(sinks "$1")"
    RUN_ARGS=(run --routes "$ROUTES" --input "$2" --quiet --exit-when-idle "${IDLE}s"
        --store "$1/store" --dead-letter "$1/dead.jsonl" "${sink_args[@]}")
}

wait_for() { # FILE PATTERN SECONDS
    for _ in $(seq 1 $(($3 * 10))); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "error: timed out waiting for '$2' in $1:" >&2
    cat "$1" >&2
    exit 1
}

MQTT_PORT=$(free_port)
NATS_PORT=$(free_port)
mkdir -p "$W/mosquitto" "$W/js"
sed -e "s/^listener 1883 127.0.0.1/listener $MQTT_PORT 127.0.0.1/" \
    -e "s|^persistence_location .*|persistence_location $W/mosquitto/|" \
    examples/mosquitto/hubroute.conf >"$W/mosquitto.conf"
# Mosquitto started as root runs as user mosquitto: let it write its persistence there.
chmod 755 "$W"
chmod 777 "$W/mosquitto"
echo "log_dest stderr" >>"$W/mosquitto.conf"
mosquitto -c "$W/mosquitto.conf" >"$W/mosquitto.log" 2>&1 &
MOSQUITTO=$!
PIDS+=($MOSQUITTO)
nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$W/js" >"$W/nats.log" 2>&1 &
NATS=$!
PIDS+=($NATS)
sleep 0.5

ROUTER="mqtt://router@127.0.0.1:$MQTT_PORT?password_file=examples/mosquitto/router.password"
DEVICE="mqtt://dev@127.0.0.1:$MQTT_PORT?password_file=examples/mosquitto/device.password"
STREAM="jetstream://127.0.0.1:$NATS_PORT/HUB"

# A router's own rate: the messages its summary counts over its summary's time less the idle
# wait (that time runs from when its input starts, the store already open, to the end of its
# drain: the process's start and exit are not in it).
own_rate() { # LOG
    local n t
    n=$(sed -n 's/^read \([0-9]*\) messages in \([0-9.]*\)s.*/\1/p' "$1" | head -1)
    t=$(sed -n 's/^read \([0-9]*\) messages in \([0-9.]*\)s.*/\2/p' "$1" | head -1)
    rate "${n:-0}" "$(minus "${t:-0}" "$IDLE" 0)"
}

report() { # NAME LOG START END
    local read elapsed
    read=$(sed -n 's/^read \([0-9]*\) messages.*/\1/p' "$2" | head -1)
    elapsed=$(minus "$4" "$3" "$IDLE")
    echo "$1: read ${read:-0} of $N messages in ${elapsed}s ($(rate "${read:-0}" "$elapsed") msg/s);" \
        "not received: $((N - ${read:-0}))"
    grep -E "^  (hot-telemetry|events):" "$2" | sed -e 's/^ */    /' -e 's/, retries.*latency/, latency/' || true
}

echo "== 0. the broker with a plain subscriber: device_fleet → Mosquitto → mosquitto_sub (QoS 1, no router)"
# What this machine's Mosquitto and device_fleet move with a subscriber that does nothing but
# acknowledge (mosquitto_sub, C, one write per PUBACK): the broker's pace, for comparison.
if command -v mosquitto_sub >/dev/null; then
    timed "$W/sub.cpu" timeout 300 mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -u router \
        -P "$(cat examples/mosquitto/router.password)" -i e2e-ceiling -q 1 -C "$N" \
        -t 'devices/+/messages/events/#' >/dev/null 2>"$W/sub.log" &
    SUB=$!
    PIDS+=($SUB)
    sleep 0.5
    M0=$(ticks "$MOSQUITTO")
    T0=$(now)
    timed "$W/sub-fleet.cpu" "$FLEET" "$DEVICE" "$N" "$DEVICES" | sed 's/^/    device_fleet: /'
    wait "$SUB" || true
    T1=$(now)
    M1=$(ticks "$MOSQUITTO")
    echo "    mosquitto_sub: $N messages in $(minus "$T1" "$T0" 0)s ($(rate "$N" "$(minus "$T1" "$T0" 0)") msg/s)"
    echo "    CPU s per 100k: Mosquitto $(ticks_per100k "$M0" "$M1"), device_fleet" \
        "$(per100k "$(cpu_of "$W/sub-fleet.cpu")"), mosquitto_sub $(per100k "$(cpu_of "$W/sub.cpu")")"
else
    echo "    skipped: mosquitto_sub not found (apt-get install mosquitto-clients)"
fi

echo "== A. device_fleet → Mosquitto → run --input mqtt ($N messages, $DEVICES devices)"
run_args "$W/a" "$ROUTER"
timed "$W/a.cpu" "$BIN" "${RUN_ARGS[@]}" >"$W/a.log" 2>&1 &
RUN=$!
PIDS+=($RUN)
wait_for "$W/a.log" subscribed 10
M0=$(ticks "$MOSQUITTO")
T0=$(now)
timed "$W/a-fleet.cpu" "$FLEET" "$DEVICE" "$N" "$DEVICES" | sed 's/^/    device_fleet: /'
wait "$RUN" || true
T1=$(now)
M1=$(ticks "$MOSQUITTO")
report "    run --input mqtt" "$W/a.log" "$T0" "$T1"
echo "    Mosquitto drops: $(grep -c 'Outgoing messages are being dropped' "$W/mosquitto.log" || true) log lines"
echo "    CPU s per 100k: router $(per100k "$(cpu_of "$W/a.cpu")"), Mosquitto $(ticks_per100k "$M0" "$M1")," \
    "device_fleet $(per100k "$(cpu_of "$W/a-fleet.cpu")")"

echo "== B. device_fleet → Mosquitto → bridge → JetStream, then workers"
timed "$W/bridge.cpu" "$BIN" bridge --from "$ROUTER" --to "$STREAM" --exit-when-idle "${IDLE}s" \
    --dead-letter "$W/bridge-dead.jsonl" --client-id e2e-bridge >"$W/bridge.log" 2>&1 &
BRIDGE=$!
PIDS+=($BRIDGE)
wait_for "$W/bridge.log" subscribed 10
M0=$(ticks "$MOSQUITTO")
J0=$(ticks "$NATS")
T0=$(now)
"$FLEET" "$DEVICE" "$N" "$DEVICES" | sed 's/^/    device_fleet: /'
wait "$BRIDGE" || true
T1=$(now)
M1=$(ticks "$MOSQUITTO")
J1=$(ticks "$NATS")
APPENDED=$(sed -n 's/^  appended to .*: \([0-9]*\)$/\1/p' "$W/bridge.log")
ELAPSED=$(minus "$T1" "$T0" "$IDLE")
echo "    bridge: appended ${APPENDED:-0} of $N in ${ELAPSED}s ($(rate "${APPENDED:-0}" "$ELAPSED") msg/s);" \
    "not appended: $((N - ${APPENDED:-0}))"
echo "    Mosquitto drops: $(grep -c 'Outgoing messages are being dropped' "$W/mosquitto.log" || true) log lines"
echo "    CPU s per 100k: bridge $(per100k "$(cpu_of "$W/bridge.cpu")"), Mosquitto $(ticks_per100k "$M0" "$M1")," \
    "nats-server $(ticks_per100k "$J0" "$J1")"

worker() { # CONSUMER DIR
    local RUN_ARGS
    run_args "$2" "$STREAM?consumer=$1"
    timed "$2.cpu" "$BIN" "${RUN_ARGS[@]}" >"$2.log" 2>&1
}

J0=$(ticks "$NATS")
T0=$(now)
worker one "$W/w1"
T1=$(now)
J1=$(ticks "$NATS")
report "    1 JetStream worker (backlog of the stream)" "$W/w1.log" "$T0" "$T1"
echo "    by the worker's own count (its input's run and drain, less the idle wait):" \
    "$(own_rate "$W/w1.log") msg/s"
echo "    CPU s per 100k: worker $(per100k "$(cpu_of "$W/w1.cpu")"), nats-server $(ticks_per100k "$J0" "$J1")"

J0=$(ticks "$NATS")
T0=$(now)
worker two "$W/w2a" &
A=$!
worker two "$W/w2b" &
B=$!
PIDS+=($A $B)
wait "$A" || true
wait "$B" || true
T1=$(now)
J1=$(ticks "$NATS")
RA=$(sed -n 's/^read \([0-9]*\) messages.*/\1/p' "$W/w2a.log" | head -1)
RB=$(sed -n 's/^read \([0-9]*\) messages.*/\1/p' "$W/w2b.log" | head -1)
TOTAL=$((${RA:-0} + ${RB:-0}))
ELAPSED=$(minus "$T1" "$T0" "$IDLE")
echo "    2 JetStream workers, one consumer: read $TOTAL (${RA:-0} + ${RB:-0}) of $N in ${ELAPSED}s" \
    "($(rate "$TOTAL" "$ELAPSED") msg/s); not received: $((N - TOTAL))"
echo "    CPU s per 100k: workers $(per100k "$(cpu_of "$W/w2a.cpu")") + $(per100k "$(cpu_of "$W/w2b.cpu")")," \
    "nats-server $(ticks_per100k "$J0" "$J1")"

echo "== C. latency from device to router at steady rates: device_fleet → Mosquitto → run --input mqtt"
# Each message's body carries the device's send time (sentMicros); the router stamps
# enqueuedTime when it reads the message, and the events sink's file keeps both. Steady loads
# (device_fleet's rate argument) for LATENCY_SECONDS each, not the all-out load above, where
# the time is mostly waiting in queues.
for RATE in ${LATENCY_RATES-200 2000 10000}; do
    COUNT=$((RATE * ${LATENCY_SECONDS:-3}))
    D="$W/lat-$RATE"
    run_args "$D" "$ROUTER"
    # A session of its own: run A's session still collects what the bridge was sent.
    "$BIN" "${RUN_ARGS[@]}" --client-id "e2e-latency-$RATE" >"$D.log" 2>&1 &
    RUN=$!
    PIDS+=($RUN)
    wait_for "$D.log" subscribed 10
    "$FLEET" "$DEVICE" "$COUNT" "$DEVICES" "$RATE" >/dev/null
    wait "$RUN" || true
    python3 - "$D/events.jsonl" "$RATE" "$COUNT" <<'EOF2'
import datetime, json, sys
path, rate, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
ms = []
for line in open(path):
    record = json.loads(line)
    body = record["Body"]
    if isinstance(body, str):
        body = json.loads(body)
    stamped = record["EnqueuedTimeUtc"]
    # 2026-12-06T05:36:39.1234567Z: Python reads microseconds (six fraction digits).
    at = datetime.datetime.fromisoformat(stamped[:26] + "+00:00").timestamp() * 1e6
    ms.append((at - body["sentMicros"]) / 1000)
ms.sort()
n = len(ms)
if n == 0:
    print(f"    {rate} msg/s: no message reached the events endpoint of {count} sent")
else:
    pick = lambda q: ms[min(n - 1, int(n * q))]
    print(f"    {rate} msg/s ({n} of {count} messages): p50 {pick(0.5):.2f} ms, p90 {pick(0.9):.2f} ms,"
          f" p99 {pick(0.99):.2f} ms, max {ms[-1]:.2f} ms")
EOF2
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
