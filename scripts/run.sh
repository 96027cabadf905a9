#!/usr/bin/env bash
# The main job: install what is needed, build, start tlpbridged with the
# dmacopy model (hlsim backend), and drive the device through the host
# library: register accesses, DMA copies checked byte for byte and by CRC,
# MSI-X completion interrupts. Exits 0 only if every check passes.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"

scripts/install-deps.sh

build="$here/build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTLPB_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null

work="$(mktemp -d /tmp/tlpbridge-run.XXXXXX)"
socket="$work/tlpbridge.sock"
bridge_pid=""
cleanup() {
  [ -n "$bridge_pid" ] && kill "$bridge_pid" 2>/dev/null && wait "$bridge_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# tlpbridged writes "ready" to fd 3 once it listens: no guessing with sleeps.
ready="$work/ready"
mkfifo "$ready"
"$build/bridge/tlpbridged" --config examples/configs/dmacopy-hlsim.cfg --listen "$socket" \
  --log-level warn --ready-fd 3 3>"$ready" &
bridge_pid=$!
if ! read -r -t 30 line <"$ready" || [ "$line" != "ready" ]; then
  echo "run: tlpbridged did not start" >&2
  exit 1
fi

echo "tlpbridged is serving dmacopy0 from the hlsim model ($socket)"
"$build/examples/dmacopy-demo" --socket "$socket" --device dmacopy0
