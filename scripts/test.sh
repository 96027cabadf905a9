#!/usr/bin/env bash
# Install the dependencies, build with warnings as errors and ASan+UBSan, and
# run the whole test suite with ctest.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"

scripts/install-deps.sh

build="${TLPB_TEST_BUILD_DIR:-$here/build-test}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DTLPB_SANITIZE=ON -DTLPB_WERROR=ON
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure -j"$(nproc)" "$@"
