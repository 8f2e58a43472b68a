#!/usr/bin/env bash
# The disk's floor under `hubroute run`: how long the durable writes of one run take on their
# own, with no routing at all. A run on a file writes every accepted record to the store's log
# and every copy to its endpoint's file, and syncs each before it is acknowledged or its cursor
# moves; the run cannot end before the disk has taken all of it. This script
#
#   1. runs `hubroute run` once (routes-10, a file: sink per endpoint, a fresh store, as
#      scripts/run-bench.sh does) and notes the bytes of the store's log and of each sink file;
#   2. writes the same bytes again, one thread per file, in as many batches as the run had
#      commits (one per 1024 lines), each followed by `fdatasync` (what the committer and the
#      endpoint threads do), and times that.
#
# It prints the bytes per message, the write time, the messages/s the disk alone allows
# (messages / write time), and the CPU time the writes took (nearly all of it the kernel's:
# a floor under a run's CPU, which two cores must carry with the routing). Repeat it: the
# disk's speed varies from run to run.
#
# Usage (from the repository root, after `cargo build --release`):
#   scripts/io-floor.sh [INPUT] [ROUNDS]
# (defaults: ../shared/bench/messages-10k.jsonl 3; INPUT's records must fit one 64 MB log
# segment, about 40k lines like the bench's). BENCH_TMP=DIR measures another file
# system (default /tmp); COMMITS=N writes each file in N synced batches instead (how much the
# number of syncs costs). Needs python3.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
INPUT=${1:-$ROOT/../shared/bench/messages-10k.jsonl}
ROUNDS=${2:-3}
ROUTES=$ROOT/../shared/bench/routes-10.json
command -v python3 >/dev/null || { echo "error: python3 is missing" >&2; exit 2; }
D=$(mktemp -d "${BENCH_TMP:-/tmp}/hubroute-io-floor.XXXXXX")
trap 'rm -rf "$D"' EXIT
SINKS=()
for n in $(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(" ".join([e["name"] for k in c["endpoints"].values() for e in k] + ["events"]))' "$ROUTES"); do
    SINKS+=(--sink "$n=file:$D/out/$n.jsonl")
done
mkdir -p "$D/out"
"${HUBROUTE_BIN:-$ROOT/target/release/hubroute}" run --quiet --routes "$ROUTES" --input "$INPUT" \
    --store "$D/store" --dead-letter "$D/out/dead.jsonl" "${SINKS[@]}" 2>&1 | grep -E "^read " || true
python3 - "$D" "$INPUT" "$ROUNDS" <<'EOF'
import os, resource, sys, threading, time
d, inp, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines = sum(1 for l in open(inp, "rb") if l.strip())
commits = int(os.environ.get("COMMITS", 0)) or max(1, -(-lines // 1024))
# The store's log: the run leaves its last segment (renamed `*.log2.deleting` once every
# endpoint passed it; the next open deletes it), which holds every record of an input whose
# records fit one 64 MB segment (messages-10k: 15 MB). Larger inputs' earlier segments are
# gone, so the script takes inputs of that size.
sizes = {}
for root, _, files in os.walk(d):
    for f in files:
        p = os.path.join(root, f)
        sizes[p] = os.path.getsize(p)
store = sum(s for p, s in sizes.items() if "/store/" in p and ".log2" in p)
sinks = sum(s for p, s in sizes.items() if "/out/" in p)
print(f"{lines} messages, {commits} commits; bytes per message: store log {store/lines:.0f}, "
      f"sink files {sinks/lines:.0f}")
files = [s for p, s in sizes.items() if ("/out/" in p or (".log2" in p)) and s > 0]
scratch = os.path.join(d, "scratch")
os.mkdir(scratch)
# Each file's batch, made (and its pages touched) before the clock starts.
bufs = [memoryview(b"x" * -(-s // commits)) for s in files]
def write(i, size):
    fd = os.open(os.path.join(scratch, f"{i}"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    buf = bufs[i]
    batch = len(buf)
    left = size
    while left > 0:
        n = min(batch, left)
        os.write(fd, buf[:n])
        os.fdatasync(fd)
        left -= n
    os.close(fd)
total = sum(files)
for r in range(rounds):
    for f in os.listdir(scratch):
        os.unlink(os.path.join(scratch, f))
    os.sync()
    t = time.monotonic()
    c = resource.getrusage(resource.RUSAGE_SELF)
    ts = [threading.Thread(target=write, args=(i, s)) for i, s in enumerate(files)]
    for x in ts: x.start()
    for x in ts: x.join()
    dt = time.monotonic() - t
    e = resource.getrusage(resource.RUSAGE_SELF)
    # The writers' CPU, nearly all of it the kernel's (copying into the page cache, writeback,
    # the syncs): what a run's durable writes cost the two cores before any routing.
    sys_ms = (e.ru_stime - c.ru_stime) * 1000
    cpu_ms = sys_ms + (e.ru_utime - c.ru_utime) * 1000
    print(f"round {r+1}: {total/1e6:.1f} MB in {len(files)} files synced in {dt*1000:.0f} ms "
          f"({total/dt/1e6:.0f} MB/s): the disk alone allows {lines/dt/1000:.0f}k messages/s; "
          f"CPU {cpu_ms:.0f} ms (system {sys_ms:.0f}), {cpu_ms*1000/lines:.1f} µs per message")
EOF
