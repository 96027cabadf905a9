# shellcheck shell=bash
# Part of build-qemu.sh: the cache. A built binary lives in
# $CACHE_ROOT/qemu-<key>/; the key is "<qemu version>-<16 hex digits>", the
# digits from the sha256 of a manifest of everything that affects the result:
# the QEMU source, every file of this script (driver, parts, the apt helper),
# the device sources, and the host library (its archives and headers, or its
# sources in this repository). Concurrent runs for one key build once (flock).
#
# Sets KEY, KEY_MANIFEST, KEY_DIR, BIN, HOST_ARCHIVES, HOST_INC_DIRS.
#
# Uses from the driver: CACHE_ROOT, SCRIPT_DIR, REPO_DIR, BUILD_PARTS,
# QEMU_VERSION and SRC_ID (fetch.sh), TLPB_HOST_LIB, TLPB_HOST_INCLUDE,
# TLPB_HOST_LIBS, log, die, abspath; from patch.sh: shim_sources.

host_include_dirs() {  # one absolute dir per line
    local d
    [ -n "$TLPB_HOST_INCLUDE" ] || return 0
    local IFS=:
    for d in $TLPB_HOST_INCLUDE; do
        [ -n "$d" ] || continue
        [ -d "$d" ] || die "host include dir '$d' does not exist"
        abspath "$d"
    done
}

# Sources of the host library when it is built from this repository: the
# top-level CMake project and everything under host/ and proto/.
self_host_sources() {
    printf '%s\n' "$REPO_DIR/CMakeLists.txt"
    find "$REPO_DIR/host" "$REPO_DIR/proto" -type f | LC_ALL=C sort
}

sha() { sha256sum <"$1" | cut -d' ' -f1; }

compute_key() {
    local f d manifest
    [ -f "$SCRIPT_DIR/tlpbridge-pci.c" ] || die "device source $SCRIPT_DIR/tlpbridge-pci.c is missing"
    HOST_ARCHIVES=()
    if [ -n "$TLPB_HOST_LIB" ]; then
        local IFS_OLD=$IFS a
        IFS=:
        for a in $TLPB_HOST_LIB; do
            [ -n "$a" ] || continue
            [ -f "$a" ] || die "host library '$a' does not exist (build it with CMake first)"
            HOST_ARCHIVES+=("$(abspath "$a")")
        done
        IFS=$IFS_OLD
        [ ${#HOST_ARCHIVES[@]} -gt 0 ] || die "--host-lib names no archive"
    elif [ -n "$TLPB_HOST_INCLUDE" ]; then
        die "--host-include given without --host-lib"
    else
        [ -f "$REPO_DIR/CMakeLists.txt" ] && [ -d "$REPO_DIR/host" ] && [ -d "$REPO_DIR/proto" ] \
            || die "no --host-lib given and $REPO_DIR is not the tlpbridge repository to build it from"
    fi
    HOST_INC_DIRS=$(host_include_dirs)
    manifest=$(
        printf 'qemu %s\nsource %s\n' "$QEMU_VERSION" "$SRC_ID"
        for f in "${BUILD_PARTS[@]}"; do
            printf 'script %s %s\n' "${f#"$REPO_DIR"/}" "$(sha "$f")"
        done
        while IFS= read -r f; do
            printf 'shim %s %s\n' "$(basename "$f")" "$(sha "$f")"
        done < <(shim_sources)
        if [ -n "$TLPB_HOST_LIB" ]; then
            for f in "${HOST_ARCHIVES[@]}"; do
                printf 'hostlib %s %s\n' "$(basename "$f")" "$(sha "$f")"
            done
            printf 'hostlibs %s\n' "$TLPB_HOST_LIBS"
            while IFS= read -r d; do
                [ -n "$d" ] || continue
                printf 'include %s\n' "$d"
                find "$d" -type f \( -name '*.h' -o -name '*.hpp' \) -printf '%P\n' | LC_ALL=C sort |
                    while IFS= read -r f; do
                        printf 'header %s %s\n' "$f" "$(sha "$d/$f")"
                    done
            done <<<"$HOST_INC_DIRS"
        else
            printf 'hostlib self %s\n' "$TLPB_HOST_LIBS"
            while IFS= read -r f; do
                printf 'hostsrc %s %s\n' "${f#"$REPO_DIR"/}" "$(sha "$f")"
            done < <(self_host_sources)
        fi
    )
    KEY_MANIFEST=$manifest
    KEY="$QEMU_VERSION-$(printf '%s\n' "$manifest" | sha256sum | cut -c1-16)"
    KEY_DIR=$CACHE_ROOT/qemu-$KEY
    BIN=$KEY_DIR/qemu-system-x86_64
}

# Hold the key's lock (fd 9) until this script exits; wait if another run
# is building the same key.
lock_key() {
    command -v flock >/dev/null || die "flock (util-linux) is required"
    exec 9>"$CACHE_ROOT/.lock-qemu-$KEY"
    if ! flock -n 9; then
        log "another build of $KEY is running; waiting for it"
        flock 9 || die "cannot lock $CACHE_ROOT/.lock-qemu-$KEY"
    fi
}

# install_into_cache BINARY INFO: install atomically (fill a temp dir, then
# rename it to the key dir); INFO is the text of build-info.txt.
install_into_cache() {
    local t=$CACHE_ROOT/.qemu-$KEY.tmp.$$
    rm -rf "$t"; mkdir -p "$t"
    cp "$1" "$t/" || die "cannot copy the binary into $t"
    printf '%s\n--- key inputs ---\n%s\n' "$2" "$KEY_MANIFEST" >"$t/build-info.txt"
    if ! mv -T "$t" "$KEY_DIR" 2>/dev/null; then
        rm -rf "$t"
        [ -x "$KEY_DIR/qemu-system-x86_64" ] || die "cannot install into $KEY_DIR"
        log "another run installed $KEY_DIR first; using it"
    fi
}

# Delete the binaries and build trees of other keys, skipping any key whose
# build is running right now (its lock is held).
prune_cache() {
    local d k
    for d in "$CACHE_ROOT"/qemu-* "$CACHE_ROOT"/work/qemu-*; do
        [ -d "$d" ] || continue
        k=${d##*/qemu-}
        [ "$k" = "$KEY" ] && continue
        if ( exec 8>"$CACHE_ROOT/.lock-qemu-$k" && flock -n 8 ); then
            log "pruning $d"
            rm -rf "$d"
            [ -d "$CACHE_ROOT/qemu-$k" ] || [ -d "$CACHE_ROOT/work/qemu-$k" ] \
                || rm -f "$CACHE_ROOT/.lock-qemu-$k"
        fi
    done
}
