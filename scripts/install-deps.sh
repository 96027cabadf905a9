#!/usr/bin/env bash
# Install what tlpbridge needs to build and test, from Debian's packages.
# Idempotent: packages already present are not reinstalled, and apt-get
# update runs only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake pkg-config   # compiler and build
  libuv1-dev                         # the bridge's event loop
  libprotobuf-c-dev protobuf-c-compiler  # wire schema, generated at build time
  libconfig-dev                      # the bridge's config file
  zlib1g-dev                         # reference CRC-32 in tests and checks
  libisal-dev                        # fast CRC-32 in the dmacopy model
  libcmocka-dev                      # unit tests
  verilator                          # the RTL backend (-DTLPB_BUILD_RTL=ON): dmacopy in Verilog
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages: ${missing[*]}; run as root (or install them)" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
