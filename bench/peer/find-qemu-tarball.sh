#!/usr/bin/env bash
# Print the path of the QEMU source tarball the project caches (the one
# qemu_shim/build-qemu.sh downloads), or nothing when there is none. Same
# cache root and the same search as build-qemu.sh (its fetch.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=../../qemu_shim/build-qemu/fetch.sh
. "$here/qemu_shim/build-qemu/fetch.sh"
cache_root=${TLPB_QEMU_CACHE:-${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/tlpbridge}
find_cached_tarball "$cache_root/downloads"
