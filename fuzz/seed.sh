#!/usr/bin/env bash
# Builds the seed corpora in fuzz/corpus/<target>/ (git-ignored) from the grammar examples,
# the shared conformance cases, the shared benchmark data and the bundled examples.
# Idempotent: seeds are named by content hash, so re-running adds nothing new.
# Usage: fuzz/seed.sh   (needs python3 and ../shared beside the repository)
set -euo pipefail
cd "$(dirname "$0")"
exec python3 - "$@" <<'PY'
import glob, hashlib, json, os

ROOT = ".."
SHARED = os.path.join(ROOT, "..", "shared")
TARGETS = ["parse", "compile", "eval", "differential", "message", "routing_config", "ingest", "sas"]

def put(target, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    d = os.path.join("corpus", target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

queries, messages, configs = [], [], []

# Grammar examples: one query per file, valid and invalid.
for f in sorted(glob.glob(os.path.join(ROOT, "grammar", "examples", "*", "*"))):
    with open(f, encoding="utf-8") as fh:
        queries.append(fh.read())
with open(os.path.join(ROOT, "examples", "queries.txt"), encoding="utf-8") as fh:
    queries += [l.rstrip("\n") for l in fh if l.strip()]

# Conformance cases: the query and the message of every case.
for f in sorted(glob.glob(os.path.join(SHARED, "conformance", "cases", "*.jsonl"))):
    with open(f, encoding="utf-8") as fh:
        for line in fh:
            case = json.loads(line)
            if isinstance(case.get("query"), str):
                queries.append(case["query"])
            if isinstance(case.get("message"), dict):
                messages.append(json.dumps(case["message"]))

# Benchmark data: route configurations (and their conditions) and a sample of messages.
for f in sorted(glob.glob(os.path.join(SHARED, "bench", "routes-*.json"))):
    with open(f, encoding="utf-8") as fh:
        text = fh.read()
    configs.append(text)
    for r in json.loads(text).get("routes", []):
        if isinstance(r.get("condition"), str):
            queries.append(r["condition"])
with open(os.path.join(SHARED, "bench", "messages-1k.jsonl"), encoding="utf-8") as fh:
    messages += [l.strip() for i, l in enumerate(fh) if i < 200 and l.strip()]

# Bundled examples.
for f in sorted(glob.glob(os.path.join(ROOT, "examples", "messages", "*.json"))):
    with open(f, encoding="utf-8") as fh:
        messages.append(fh.read())
with open(os.path.join(ROOT, "examples", "messages.jsonl"), encoding="utf-8") as fh:
    messages += [l.strip() for l in fh if l.strip()]
with open(os.path.join(ROOT, "examples", "routing.json"), encoding="utf-8") as fh:
    configs.append(fh.read())

# Deep nesting, the limits' worst cases.
queries += ["(" * 300 + "1" + ")" * 300, "NOT " * 300 + "true", "- " * 300 + "1"]

for q in queries:
    # The query targets read text; the generator-driven targets read the same bytes as
    # choices, which gives libFuzzer varied starting points.
    for t in ("parse", "compile", "differential", "eval"):
        put(t, q)
for m in messages:
    put("message", b"\x00" + m.encode("utf-8"))  # mode 0: message JSON text
    put("eval", m)
for c in configs:
    put("routing_config", b"\x00" + c.encode("utf-8"))  # mode 0: configuration text
for mode in range(1, 4):
    put("routing_config", bytes([mode]) + bytes(range(256)))
    put("message", bytes([mode]) + bytes(range(256)))

# Device-to-cloud topics as IoT Hub's SDKs write them (topic, NUL, body).
for topic, body in [
    ("devices/d1/messages/events/$.ct=application%2Fjson&$.ce=utf-8&$.mid=m-1&level=hot", '{"temp": 80}'),
    ("devices/d1/modules/m1/messages/events/", "hello"),
    ("devices/d1/messages/events", ""),
    ("devices/d1/messages/events/a=%zz&b", ""),
    ("devices/d1/messages/events/iothub-connection-device-id=x&$.cdid=y&flag&k=%E2%82%AC", "x"),
    ("devices/d1/messages/events/iothub-creation-time-utc=2024-01-02T03%3A04%3A05Z", "{}"),
]:
    put("ingest", topic.encode("utf-8") + b"\x00" + body.encode("utf-8"))

# SAS tokens and registry files (src/registry).
for text in [
    "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fd1&sig=zqpFKgQp%2Bpod6JOmnau2uE4tlCSx4HcXQv0dQaMzk8k%3D&se=1700000000",
    "SharedAccessSignature sr=h%2fdevices%2fd1&se=1&sig=AA%3D%3D&skn=device",
    "d1",
    '{"d1": "6369", "d2": {"status": "disabled", "authentication": {"symmetricKey": {"primaryKey": "AQID"}}}}',
]:
    put("sas", text)

for t in TARGETS:
    print(f"corpus/{t}: {len(os.listdir(os.path.join('corpus', t)))} seeds")
PY
