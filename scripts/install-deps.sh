#!/usr/bin/env bash
# Install what tlpbridge needs to build and test, from Debian's packages, all
# before any build starts: the parallel build steps (QEMU, the guest image)
# then find everything present and do not call apt-get themselves.
# Idempotent: packages already present are not reinstalled, and apt-get
# update runs only when something is missing. Every apt-get call goes through
# scripts/lib/apt.sh.
#
# usage: scripts/install-deps.sh [--test | --run] [--no-qemu] [--rtl | --no-rtl] [--bench]
#   --test     (default) what scripts/test.sh needs: the libraries, cmocka,
#              clang-16 with its libFuzzer runtime, Verilator, and (unless
#              --no-qemu) QEMU's build dependencies and the guest image's packages
#   --run      what scripts/run.sh needs: the libraries, and (unless --no-qemu)
#              QEMU's and the guest image's; Verilator only with --rtl
#   --no-qemu  leave out QEMU, the guest image and python3
#   --rtl, --no-rtl  with or without Verilator (default: with for --test)
#   --bench    also what tlpb-bench's libvfio-user peer needs in a Release
#              build (meson, ninja, json-c; see docs/performance.md)
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"

mode="test"
qemu=1
rtl=""
bench=0
while [ $# -gt 0 ]; do
  case "$1" in
    --test) mode="test" ;;
    --run) mode=run ;;
    --no-qemu) qemu=0 ;;
    --rtl) rtl=1 ;;
    --no-rtl) rtl=0 ;;
    --bench) bench=1 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-deps: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$rtl" ] || { [ "$mode" = test ] && rtl=1 || rtl=0; }

packages=(
  build-essential cmake pkg-config   # compiler and build
  libuv1-dev                         # the bridge's event loop
  libprotobuf-c-dev protobuf-c-compiler  # wire schema, generated at build time
  libconfig-dev                      # the bridge's config file
  zlib1g-dev                         # reference CRC-32 in tests and checks
  libisal-dev                        # fast CRC-32 in the dmacopy model
)
if [ "$mode" = test ]; then
  packages+=(
    libcmocka-dev                    # unit tests
    tshark                           # the Wireshark dissector test (integration.pcapng_export)
    clang-16 libclang-rt-16-dev      # libFuzzer fuzz targets (the runtime is in libclang-rt)
  )
fi
[ "$rtl" = 0 ] || packages+=(verilator)  # the RTL backend: dmacopy in SystemVerilog
[ "$qemu" = 0 ] || packages+=(python3)   # the guest tooling (standard library only)
[ "$bench" = 0 ] || packages+=(meson ninja-build libjson-c-dev xz-utils)  # libvfio-user, from the QEMU tarball

# shellcheck source=lib/apt.sh
. "$here/scripts/lib/apt.sh"

missing=$(tlpb_apt_missing "${packages[@]}" | tr '\n' ' ')
if [ -n "$missing" ]; then
  echo "install-deps: installing $missing"
  tlpb_apt_ensure "${packages[@]}" || { echo "install-deps: could not install $missing" >&2; exit 1; }
fi

# QEMU and the guest image keep their own lists (and QEMU's need for
# bookworm-backports); each script installs only what is missing, and skips
# apt-get update if it ran above.
if [ "$qemu" = 1 ]; then
  "$here/qemu_shim/build-qemu.sh" --install-deps
  "$here/examples/guest/build-initramfs.sh" --install-deps
fi
