#!/usr/bin/env bash
# Writes a Mosquitto password file for the router and the devices dev-0 … dev-(N-1):
#   examples/mosquitto/make-passwd.sh OUT ROUTER_PASSWORD_FILE DEVICE_PASSWORD_FILE [N]
# The shipped examples/mosquitto/passwd is this with the demo passwords in router.password and
# device.password and N=100. For real devices give each its own password (or a certificate).
set -euo pipefail
out=$1 router=$2 device=$3 n=${4:-100}
: >"$out"
mosquitto_passwd -b "$out" router "$(cat "$router")"
for ((i = 0; i < n; i++)); do
    mosquitto_passwd -b "$out" "dev-$i" "$(cat "$device")"
done
