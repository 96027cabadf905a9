#!/usr/bin/env bash
# Install the dependencies, build with warnings as errors and ASan+UBSan, and
# run the whole test suite with ctest: unit, integration, and the guest
# end-to-end tests (QEMU with tlpbridge-pci booting Linux with the dmacopy
# driver, on every backend). Extra arguments go to ctest
# (./scripts/test.sh -R fallback, ./scripts/test.sh -LE guest).
#
# QEMU is built once by qemu_shim/build-qemu.sh (about 4 minutes) and cached
# under ~/.cache/tlpbridge; it links its own non-sanitized host library. The
# sanitizers cover this project's programs (tlpbridged, hlsim-run, tools).
# The RTL backend (Verilator: the adapter's tests, and the guest on the
# Verilated dmacopy) is in too. TLPB_TEST_QEMU=OFF leaves QEMU and the guest
# tests out, TLPB_TEST_RTL=OFF the RTL backend.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"

with_qemu="${TLPB_TEST_QEMU:-ON}"
with_rtl="${TLPB_TEST_RTL:-ON}"
# Everything the build needs, QEMU's and the guest image's packages included,
# is installed here, once, before the parallel build starts.
deps_args=(--test)
[ "$with_qemu" = ON ] || deps_args+=(--no-qemu)
[ "$with_rtl" = ON ] || deps_args+=(--no-rtl)
scripts/install-deps.sh "${deps_args[@]}"

build="${TLPB_TEST_BUILD_DIR:-$here/build-test}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DTLPB_SANITIZE=ON -DTLPB_WERROR=ON \
  -DTLPB_BUILD_QEMU="$with_qemu" -DTLPB_BUILD_RTL="$with_rtl"
# Everything, QEMU (cached), the guest image and the Verilated models included.
cmake --build "$build" -j"$(nproc)"
# JUnit XML for a regression farm, in this build directory (so two clones
# testing side by side never share a file): ctest's own result per test, and
# one file per guest test with each dmacopy-test case as a test case. Files
# of an earlier run are removed first, so the directory holds this run only.
junit="$build/junit"
rm -rf "$junit"
mkdir -p "$junit"
cd "$build"
status=0
TLPB_JUNIT_DIR="$junit" ctest --output-on-failure -j"$(nproc)" --output-junit "$junit/ctest.xml" \
  "$@" || status=$?
echo "JUnit results:"
for f in "$junit"/*.xml; do
  [ -e "$f" ] && echo "  $f"
done
exit "$status"
