#!/bin/sh
# A bounded libFuzzer run, as ctest does it:
#   run-fuzzer.sh FUZZER SEED_DIR WORK_DIR ARTIFACT_DIR [libFuzzer options]
# New inputs go to WORK_DIR (emptied first), so the checked-in seeds in
# SEED_DIR are only read. Exits non-zero when the fuzzer finds a crash, a
# leak, a sanitizer report, an input slower than 10 s or a memory blow-up;
# the input is left in ARTIFACT_DIR.
set -eu
fuzzer=$1 seeds=$2 work=$3 artifacts=$4
shift 4
rm -rf "$work"
mkdir -p "$work" "$artifacts"
exec "$fuzzer" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$(basename "$fuzzer")-" "$@" "$work" "$seeds"
