# shellcheck shell=bash
# Part of build-qemu.sh: configuring and building the patched QEMU tree, only
# the qemu-system-x86_64 target, and checking that the result has the device.
#
# Uses from the driver: QUIET, JOBS, WORK, PROG, die, log.

# The QEMU feature set. Changing this line changes the script, hence the key.
CONFIGURE_ARGS=(
    --target-list=x86_64-softmmu
    --without-default-features
    --enable-kvm
    --enable-pixman
    --enable-tcg
    --disable-install-blobs
    --disable-docs
    --disable-werror
    --disable-download
    --python=/usr/bin/python3
    # Debian's firmware locations, so no -L is needed (-L still works).
    --firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu
)

run_logged() {  # run_logged LOGFILE CMD...: run, output to log (and stderr unless -q)
    local logf=$1; shift
    if [ "$QUIET" = 1 ]; then "$@" >>"$logf" 2>&1
    else "$@" 2>&1 | tee -a "$logf" >&2
    fi
}

fail_with_log() {  # fail_with_log LOGFILE MESSAGE
    if [ "$QUIET" = 1 ] && [ -f "$1" ]; then
        printf '%s: last lines of %s:\n' "$PROG" "$1" >&2
        tail -n 40 "$1" >&2
    fi
    die "$2 (full log: $1; build tree kept in $WORK)"
}

compile_qemu() {  # compile_qemu QEMU_DIR LOGFILE: builds QEMU_DIR/build/qemu-system-x86_64
    local logf=$2 b=$1/build
    mkdir -p "$b"
    log "configure ${CONFIGURE_ARGS[*]}"
    (cd "$b" && run_logged "$logf" ../configure "${CONFIGURE_ARGS[@]}") \
        || fail_with_log "$logf" "QEMU configure failed"
    grep -q '^CONFIG_TLPBRIDGE_PCI=y' "$b"/x86_64-softmmu-config-devices.mak 2>/dev/null \
        || fail_with_log "$logf" "configure did not enable CONFIG_TLPBRIDGE_PCI"
    log "ninja -j$JOBS qemu-system-x86_64"
    run_logged "$logf" ninja -C "$b" -j "$JOBS" qemu-system-x86_64 \
        || fail_with_log "$logf" "building qemu-system-x86_64 failed"
    [ -x "$b/qemu-system-x86_64" ] || fail_with_log "$logf" "build finished but $b/qemu-system-x86_64 is missing"
    "$b/qemu-system-x86_64" -device help 2>/dev/null | grep -q '"tlpbridge-pci"' \
        || fail_with_log "$logf" "the built QEMU does not list -device tlpbridge-pci"
}
