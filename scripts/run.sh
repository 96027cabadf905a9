#!/usr/bin/env bash
# The main job: install what is needed, build, and run the dmacopy example end
# to end: tlpbridged with the dmacopy model (hlsim, in the bridge), QEMU with
# the tlpbridge-pci device booting a small Linux guest, the dmacopy driver
# loaded in the guest, and the guest test program (dmacopy-test) copying
# through the device. Prints a short result; exits 0 only if every check
# passed.
#
# usage: scripts/run.sh [--no-qemu] [--external | --rtl] [--intx] [--accel tcg|kvm]
#                       [--coupled] [--rtl-cycles-per-s N] [-v]
#   --no-qemu    no QEMU: drive the device from the host library (dmacopy-demo)
#   --external   the model in its own process (hlsim-run) instead of in the bridge
#   --rtl        the RTL: dmacopy in SystemVerilog, Verilated, through the RTL adapter
#   --intx       also run the guest cases with INTx (driver rebound, use_msix=0)
#   --accel A    tcg or kvm (default: KVM if a KVM guest boots, else TCG)
#   --coupled    coupled simulated time: the guest's clock waits for the device's
#                (TCG with -icount; docs/user-guide.md, "Coupled simulated time")
#   --rtl-cycles-per-s N  with --rtl: cap the RTL at N cycles per second, as a
#                large design would run
#   -v           echo the guest console and the bridge log
# The first run builds QEMU (about 4 minutes; cached under ~/.cache/tlpbridge).
# The build goes to build/ (TLPB_BUILD_DIR overrides it).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"

qemu=1
rtl=0
guest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-qemu) qemu=0 ;;
    --external) guest_args+=(--backend external) ;;
    --rtl) rtl=1; guest_args+=(--backend rtl) ;;
    --intx) guest_args+=(--intx) ;;
    --accel) guest_args+=(--accel "$2"); shift ;;
    --accel=*) guest_args+=(--accel "${1#--accel=}") ;;
    --coupled) guest_args+=(--coupled) ;;
    --rtl-cycles-per-s) guest_args+=(--rtl-cycles-per-s "$2"); shift ;;
    -v|--verbose) guest_args+=(-v) ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

step() { echo "run: $*"; }

# Everything the build needs (QEMU's and the guest image's packages too) is
# installed here, once, before any build step runs.
deps_args=(--run)
[ "$qemu" = 1 ] || deps_args+=(--no-qemu)
[ "$rtl" = 0 ] || deps_args+=(--rtl)
scripts/install-deps.sh "${deps_args[@]}"

build="${TLPB_BUILD_DIR:-$here/build}"
log="$build/run-build.log"
mkdir -p "$build"

# Builds quietly into a log; shows its tail if something fails.
quiet_build() {
  if ! "$@" >>"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "run: build failed; full log in $log" >&2
    exit 1
  fi
}
: >"$log"

if [ "$qemu" = 0 ]; then
  step "building the bridge, the dmacopy model and the host-side demo"
  quiet_build cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTLPB_BUILD_TESTS=OFF
  quiet_build cmake --build "$build" -j"$(nproc)" --target tlpbridged dmacopy_model dmacopy-demo

  work="$(mktemp -d /tmp/tlpbridge-run.XXXXXX)"
  socket="$work/tlpbridge.sock"
  bridge_pid=""
  # shellcheck disable=SC2317 # run by the EXIT trap
  cleanup() {
    if [ -n "$bridge_pid" ]; then kill "$bridge_pid" 2>/dev/null || true; wait "$bridge_pid" 2>/dev/null || true; fi
    rm -rf "$work"
  }
  trap cleanup EXIT
  # tlpbridged writes "ready" to fd 3 once it listens: no guessing with sleeps.
  ready="$work/ready"
  mkfifo "$ready"
  "$build/bridge/tlpbridged" --listen "$socket" \
    --device "dmacopy0:hlsim=$build/examples/libdmacopy.so" \
    --log-level warn --ready-fd 3 3>"$ready" &
  bridge_pid=$!
  if ! read -r -t 30 line <"$ready" || [ "$line" != "ready" ]; then
    echo "run: tlpbridged did not start" >&2
    exit 1
  fi
  step "tlpbridged is serving dmacopy0 from the hlsim model ($socket)"
  "$build/examples/dmacopy-demo" --socket "$socket" --device dmacopy0
  exit $?
fi

step "configuring (cmake -DTLPB_BUILD_QEMU=ON), build log in $log"
rtl_option=()
targets=(tlpbridged hlsim-run tlpbctl dmacopy_model)
if [ "$rtl" = 1 ]; then
  rtl_option=(-DTLPB_BUILD_RTL=ON)
  targets+=(dmacopy-rtl-sim)
fi
quiet_build cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTLPB_BUILD_TESTS=OFF \
  -DTLPB_BUILD_QEMU=ON "${rtl_option[@]}"
step "building ${targets[*]}"
quiet_build cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"
step "building QEMU with tlpbridge-pci (about 4 minutes the first time, then cached)"
quiet_build cmake --build "$build" --target qemu
step "building the guest image (Debian kernel, busybox, dmacopy.ko, dmacopy-test)"
quiet_build cmake --build "$build" --target guest-image

exec python3 examples/guest/run-guest.py --build "$build" "${guest_args[@]}"
