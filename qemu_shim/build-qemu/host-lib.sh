# shellcheck shell=bash
# Part of build-qemu.sh: the host protocol library QEMU links (libtlpbhost.a,
# libtlpbwire.a). By default it is built from this repository by a nested,
# separate CMake configure in the build tree, always without sanitizers:
# ASan-instrumented archives cannot be linked into QEMU, so the project's own
# (sanitized) build directory is never used. --host-lib names prebuilt
# archives instead; they are checked here.
#
# Uses from the driver: REPO_DIR, WORK, LOG, JOBS, HOST_ARCHIVES (cache.sh),
# log, die; from compile.sh: run_logged, fail_with_log.

check_host_lib() {
    [ ${#HOST_ARCHIVES[@]} -gt 0 ] || return 0  # built from the repository later
    local a
    for a in "${HOST_ARCHIVES[@]}"; do
        case $(head -c 8 "$a" | tr -d '\n') in
            '!<arch>'|'!<thin>') ;;
            *) die "host library '$a' is not a static archive (.a)" ;;
        esac
        # QEMU links as a position-independent executable: absolute 32-bit
        # relocations mean the archive was built without -fPIC and cannot link.
        # (Debug sections legitimately carry such relocations; skip them.)
        if command -v readelf >/dev/null &&
            readelf -rW "$a" 2>/dev/null | awk '
                /^Relocation section/ { dbg = ($3 ~ /debug/) }
                !dbg && / R_X86_64_32S? / { bad = 1 }
                END { exit !bad }'; then
            die "host library '$a' is not position-independent; build it with -fPIC (CMAKE_POSITION_INDEPENDENT_CODE=ON)"
        fi
    done
}

# Build libtlpbhost.a and libtlpbwire.a from this repository into
# $WORK/hostlib. Sets HOST_ARCHIVES, HOST_INC_DIRS and TLPB_HOST_LIB.
build_self_host_lib() {
    local hb=$WORK/hostlib
    log "building the host library from $REPO_DIR in $hb"
    run_logged "$LOG" cmake -S "$REPO_DIR" -B "$hb" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DTLPB_SANITIZE=OFF -DTLPB_BUILD_TESTS=OFF -DTLPB_BUILD_QEMU=OFF -DTLPB_BUILD_RTL=OFF \
        -DTLPB_WERROR=OFF || fail_with_log "$LOG" "configuring the host library failed"
    run_logged "$LOG" cmake --build "$hb" -j "$JOBS" --target tlpbhost tlpbwire \
        || fail_with_log "$LOG" "building the host library failed"
    HOST_ARCHIVES=("$hb/host/libtlpbhost.a" "$hb/proto/libtlpbwire.a")
    HOST_INC_DIRS=$(printf '%s\n' "$REPO_DIR/host/include" "$REPO_DIR/proto/include" "$hb/proto/generated")
    TLPB_HOST_LIB=$(IFS=:; printf '%s' "${HOST_ARCHIVES[*]}")
    check_host_lib
}
