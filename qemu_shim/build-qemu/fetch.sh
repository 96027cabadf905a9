# shellcheck shell=bash
# Part of build-qemu.sh: the QEMU source. Either what --qemu-src names (a
# source tree or a tarball), or the Debian tarball from <codename>-backports,
# downloaded once with `apt-get source` into the cache and kept.
#
# Sets SRC_KIND (tarball|dir), SRC_PATH, QEMU_VERSION and SRC_ID (what the
# cache key records about the source).
#
# Uses from the driver: QEMU_SRC, REFRESH_SOURCE, DOWNLOAD_DIR,
# BACKPORTS_SUITE, log, die, abspath, need_root_for; from sources.sh:
# ensure_backports_source, BACKPORTS_FILE; from scripts/lib/apt.sh:
# tlpb_apt_update, tlpb_apt_get.

find_cached_tarball() {  # find_cached_tarball DIR: the newest qemu_*.orig.tar.* in DIR
    local t
    for t in "$1"/qemu_*.orig.tar.*; do
        case $t in *.asc) continue ;; esac
        if [ -f "$t" ]; then printf '%s\n' "$t"; fi
    done | sort -V | tail -n 1
}

download_source() {
    local dl rc t
    need_root_for "QEMU source is not cached and must be fetched with apt-get source"
    command -v apt-get >/dev/null || die "apt-get not found; pass --qemu-src"
    ensure_backports_source
    tlpb_apt_update || die "apt-get update failed (network or apt sources problem; see output above)"
    dl=$DOWNLOAD_DIR/incoming.$$
    rm -rf "$dl"; mkdir -p "$dl"
    log "apt-get source --download-only qemu/$BACKPORTS_SUITE (into $DOWNLOAD_DIR)"
    # Only the upstream tarball is needed. The Debian packaging part of the
    # source package may be missing on the mirror, in which case apt-get
    # exits 100 after the tarball arrived, so the exit code alone means nothing.
    rc=0
    (cd "$dl" && tlpb_apt_get -o APT::Sandbox::User=root source --download-only "qemu/$BACKPORTS_SUITE") || rc=$?
    t=$(find_cached_tarball "$dl")
    if [ -z "$t" ]; then
        rm -rf "$dl"
        die "apt-get source qemu/$BACKPORTS_SUITE (exit $rc) produced no qemu_*.orig.tar.* tarball; check the deb-src entry in $BACKPORTS_FILE or pass --qemu-src"
    fi
    [ "$rc" = 0 ] || log "apt-get source exited $rc, but $(basename "$t") arrived; that is all we need"
    log "checking $(basename "$t")"
    tar -tf "$t" >/dev/null 2>&1 || { rm -rf "$dl"; die "downloaded $t is not a readable tarball"; }
    mv -f "$t" "$DOWNLOAD_DIR/" || die "cannot move $t into $DOWNLOAD_DIR"
    rm -rf "$dl"
}

resolve_source() {
    if [ -n "$QEMU_SRC" ]; then
        [ -e "$QEMU_SRC" ] || die "QEMU source '$QEMU_SRC' does not exist"
        SRC_PATH=$(abspath "$QEMU_SRC")
        if [ -d "$SRC_PATH" ]; then
            [ -f "$SRC_PATH/VERSION" ] && [ -f "$SRC_PATH/configure" ] \
                || die "'$SRC_PATH' is not a QEMU source tree (no VERSION/configure)"
            SRC_KIND=dir
            QEMU_VERSION=$(tr -d ' \n' <"$SRC_PATH/VERSION")
            # A tree can change without its VERSION changing: key it on its
            # location, plus its git commit and dirtiness when it is a checkout.
            SRC_ID="dir $SRC_PATH"
            if [ -e "$SRC_PATH/.git" ] && command -v git >/dev/null; then
                SRC_ID="$SRC_ID git $(git -C "$SRC_PATH" rev-parse HEAD 2>/dev/null || echo none)"
                SRC_ID="$SRC_ID $(git -C "$SRC_PATH" status --porcelain 2>/dev/null | sha256sum | cut -c1-16)"
            fi
        elif [ -f "$SRC_PATH" ]; then
            SRC_KIND=tarball
            QEMU_VERSION=$(basename "$SRC_PATH" | sed -nE 's/^qemu[-_]([0-9]+(\.[0-9]+)+).*/\1/p')
            [ -n "$QEMU_VERSION" ] || QEMU_VERSION=custom
            SRC_ID="tarball $(sha256sum "$SRC_PATH" | cut -d' ' -f1)"
        else
            die "QEMU source '$QEMU_SRC' is neither a directory nor a file"
        fi
        return 0
    fi
    mkdir -p "$DOWNLOAD_DIR" || die "cannot create $DOWNLOAD_DIR"
    SRC_PATH=$(find_cached_tarball "$DOWNLOAD_DIR")
    if [ -z "$SRC_PATH" ] || [ "$REFRESH_SOURCE" = 1 ]; then
        download_source
        SRC_PATH=$(find_cached_tarball "$DOWNLOAD_DIR")
        [ -n "$SRC_PATH" ] || die "no QEMU tarball in $DOWNLOAD_DIR after download"
    fi
    SRC_KIND=tarball
    QEMU_VERSION=$(basename "$SRC_PATH" | sed -nE 's/^qemu_([0-9]+(\.[0-9]+)+).*/\1/p')
    [ -n "$QEMU_VERSION" ] || QEMU_VERSION=custom
    SRC_ID="tarball $(sha256sum "$SRC_PATH" | cut -d' ' -f1)"
}
