#!/usr/bin/env bash
# Build qemu-system-x86_64 with the tlpbridge-pci device, cached by content.
#
# Usage: qemu_shim/build-qemu.sh [options]
#   QEMU=$(qemu_shim/build-qemu.sh | tail -1)
#
# The host protocol library (libtlpbhost, libtlpbwire) is built from this
# repository, without sanitizers, unless --host-lib names prebuilt archives.
#
# Everything but the final binary path goes to stderr; the path is the last
# line of stdout. See qemu_shim/README.md.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCRIPT_PATH="$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")"
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
PROG=$(basename "$0")

# ---------------------------------------------------------------- settings --
QEMU_SRC=${QEMU_SRC:-}
TLPB_HOST_LIB=${TLPB_HOST_LIB:-}
TLPB_HOST_INCLUDE=${TLPB_HOST_INCLUDE:-}
TLPB_HOST_LIBS=${TLPB_HOST_LIBS:--lprotobuf-c}
CACHE_ROOT=${TLPB_QEMU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tlpbridge}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
REFRESH_SOURCE=0
KEEP_BUILD=0
FORCE=0
QUIET=0
NO_APT=${TLPB_NO_APT:-0}
PRINT_KEY=0
PRUNE=0

# Packages needed to configure and build QEMU.
BUILD_PKGS=(build-essential ninja-build pkg-config python3 python3-venv
            libglib2.0-dev libpixman-1-dev flex bison xz-utils dpkg-dev)
# Packages that must come from <codename>-backports (QEMU 10 needs meson >= 1.5).
BACKPORTS_PKGS=(meson python3-pycotap)
MESON_MIN=1.5.0
# Packages needed to run the result: firmware (BIOS, VGA BIOS, option ROMs,
# NIC boot ROMs) and the shared libraries the binary links against.
RUNTIME_PKGS=(seabios qemu-system-data ipxe-qemu libglib2.0-0 libpixman-1-0 zlib1g)
HOST_RUNTIME_PKGS=(libprotobuf-c1)
HOST_BUILD_PKGS=(libprotobuf-c-dev)
# Building the host library from this repository: its CMake project
# configures every component, so it needs all of the project's libraries.
SELF_HOST_BUILD_PKGS=(cmake protobuf-c-compiler libuv1-dev libconfig-dev zlib1g-dev libisal-dev)

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

# ----------------------------------------------------------------- helpers --
log()  { [ "$QUIET" = 1 ] || printf '%s: %s\n' "$PROG" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die()  { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

usage() {
    cat <<EOF
Usage: $PROG [options]

Builds qemu-system-x86_64 (QEMU 10.0.x) with the tlpbridge-pci device and
prints the path of the cached binary as the last line of stdout.

Options (environment variable in brackets):
  --qemu-src PATH       QEMU source directory or tarball [QEMU_SRC]; default:
                        'apt-get source --download-only qemu/<codename>-backports'
                        into the cache (downloaded once, kept)
  --host-lib FILES      prebuilt static host protocol library libtlpbhost.a, then
                        the archives it needs (libtlpbwire.a), colon-separated
                        [TLPB_HOST_LIB]; default: built from this repository
                        (RelWithDebInfo, no sanitizers) in the build tree
  --host-include DIRS   colon-separated include dirs for it [TLPB_HOST_INCLUDE]
  --host-libs FLAGS     extra link flags for it, default '-lprotobuf-c' [TLPB_HOST_LIBS]
  --cache-dir DIR       cache root [TLPB_QEMU_CACHE], default
                        \${XDG_CACHE_HOME:-\$HOME/.cache}/tlpbridge
  -j, --jobs N          parallel build jobs [JOBS], default nproc
  --refresh-source      ask apt again for the newest QEMU source
  --force               rebuild even if the cached binary exists
  --keep-build          keep the build tree after a successful build
  --no-apt              never call apt-get; fail if something is missing [TLPB_NO_APT=1]
  --print-key           print the cache key and exit (downloads source if needed)
  --prune               afterwards, delete cached builds and build trees of other keys
  -q, --quiet           only print errors and the final path
  -h, --help            this text
EOF
}

while [ $# -gt 0 ]; do
    case $1 in
        --qemu-src)      [ $# -ge 2 ] || die "$1 needs an argument"; QEMU_SRC=$2; shift 2 ;;
        --qemu-src=*)    QEMU_SRC=${1#*=}; shift ;;
        --host-lib)      [ $# -ge 2 ] || die "$1 needs an argument"; TLPB_HOST_LIB=$2; shift 2 ;;
        --host-lib=*)    TLPB_HOST_LIB=${1#*=}; shift ;;
        --host-include)  [ $# -ge 2 ] || die "$1 needs an argument"; TLPB_HOST_INCLUDE=$2; shift 2 ;;
        --host-include=*) TLPB_HOST_INCLUDE=${1#*=}; shift ;;
        --host-libs)     [ $# -ge 2 ] || die "$1 needs an argument"; TLPB_HOST_LIBS=$2; shift 2 ;;
        --host-libs=*)   TLPB_HOST_LIBS=${1#*=}; shift ;;
        --cache-dir)     [ $# -ge 2 ] || die "$1 needs an argument"; CACHE_ROOT=$2; shift 2 ;;
        --cache-dir=*)   CACHE_ROOT=${1#*=}; shift ;;
        -j|--jobs)       [ $# -ge 2 ] || die "$1 needs an argument"; JOBS=$2; shift 2 ;;
        -j*)             JOBS=${1#-j}; shift ;;
        --jobs=*)        JOBS=${1#*=}; shift ;;
        --refresh-source) REFRESH_SOURCE=1; shift ;;
        --force)         FORCE=1; shift ;;
        --keep-build)    KEEP_BUILD=1; shift ;;
        --no-apt)        NO_APT=1; shift ;;
        --print-key)     PRINT_KEY=1; shift ;;
        --prune)         PRUNE=1; shift ;;
        -q|--quiet)      QUIET=1; shift ;;
        -h|--help)       usage; exit 0 ;;
        *)               usage >&2; die "unknown argument: $1" ;;
    esac
done

case $JOBS in ''|*[!0-9]*|0) die "--jobs wants a positive number, got '$JOBS'" ;; esac
[ -n "${HOME:-}" ] || [ -n "${XDG_CACHE_HOME:-}" ] || [ -n "${TLPB_QEMU_CACHE:-}" ] \
    || die "neither HOME nor XDG_CACHE_HOME is set; pass --cache-dir"

abspath() {  # abspath PATH: absolute path of an existing file or dir
    local p=$1
    if [ -d "$p" ]; then (cd "$p" && pwd)
    else printf '%s/%s\n' "$(cd "$(dirname "$p")" && pwd)" "$(basename "$p")"
    fi
}

# ------------------------------------------------------------ apt handling --
CODENAME=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release 2>/dev/null | tr -d '"') || true
CODENAME=${CODENAME:-bookworm}
BACKPORTS_SUITE=${TLPB_BACKPORTS_SUITE:-$CODENAME-backports}
BACKPORTS_FILE=/etc/apt/sources.list.d/tlpbridge-backports.sources
APT_UPDATED=0
APT_OPTS=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)

pkg_installed() {  # pkg_installed NAME: dpkg says it is installed
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

missing_pkgs() {  # missing_pkgs NAME...: print the ones not installed
    local p
    for p in "$@"; do pkg_installed "$p" || printf '%s\n' "$p"; done
}

meson_ok() {
    local v
    v=$(dpkg-query -W -f='${Version}' meson 2>/dev/null) || return 1
    pkg_installed meson && dpkg --compare-versions "$v" ge "$MESON_MIN"
}

need_root_for() {
    [ "$NO_APT" = 1 ] && die "$1, and --no-apt/TLPB_NO_APT forbids apt-get"
    [ "$(id -u)" = 0 ] || die "$1; run this script as root (it uses apt-get) or install them first"
    command -v apt-get >/dev/null || die "$1, and apt-get is not available (Debian/Ubuntu only)"
}

apt_update() {
    [ "$APT_UPDATED" = 1 ] && return 0
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" update -q >&2 \
        || die "apt-get update failed (network or apt sources problem; see output above)"
    APT_UPDATED=1
}

# Print "URIS<TAB>SIGNED_BY<TAB>COMPONENTS" of the main Debian archive as
# configured on this machine (deb822 or one-line format); fall back to defaults.
debian_archive() {
    local f out=""
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && [ "$f" != "$BACKPORTS_FILE" ] || continue
        out=$(awk -v suite="$CODENAME" '
            function flush() {
                if (uris != "" && (" " suites " ") ~ (" " suite " ") && types ~ /(^| )deb( |$)/ && !found) {
                    printf "%s\t%s\t%s\n", uris, signed, comps; found = 1
                }
                uris = ""; suites = ""; signed = ""; comps = ""; types = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[A-Za-z-]+:/ {
                key = tolower(substr($0, 1, index($0, ":") - 1))
                val = substr($0, index($0, ":") + 1); gsub(/^[ \t]+|[ \t]+$/, "", val)
                if (key == "uris") uris = val
                else if (key == "suites") suites = val
                else if (key == "signed-by") signed = val
                else if (key == "components") comps = val
                else if (key == "types") types = val
            }
            END { flush() }' "$f")
        [ -n "$out" ] && break
    done
    if [ -z "$out" ] && [ -f /etc/apt/sources.list ]; then
        out=$(awk -v suite="$CODENAME" '
            $1 == "deb" {
                i = 2; opts = ""
                if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) { opts = opts " " $i; i++ } opts = opts " " $i; i++ }
                if ($(i+1) == suite) {
                    signed = ""
                    if (match(opts, /signed-by=[^] ]+/)) signed = substr(opts, RSTART + 10, RLENGTH - 10)
                    comps = ""; for (j = i + 2; j <= NF; j++) comps = comps (comps ? " " : "") $j
                    printf "%s\t%s\t%s\n", $i, signed, comps; exit
                }
            }' /etc/apt/sources.list)
    fi
    if [ -z "$out" ]; then
        warn "no '$CODENAME' entry found in apt sources; using deb.debian.org"
        out=$(printf 'http://deb.debian.org/debian\t/usr/share/keyrings/debian-archive-keyring.gpg\tmain')
    fi
    printf '%s\n' "$out"
}

# Make sure <codename>-backports is configured for both deb and deb-src.
ensure_backports_source() {
    local line uris signed comps content
    line=$(debian_archive)
    IFS=$'\t' read -r uris signed comps <<<"$line"
    [ -n "$comps" ] || comps=main
    case " $comps " in *" main "*) ;; *) comps="main $comps" ;; esac
    content="# Added by tlpbridge qemu_shim/build-qemu.sh: QEMU 10 source and meson >= $MESON_MIN
Types: deb deb-src
URIs: $uris
Suites: $BACKPORTS_SUITE
Components: $comps"
    case $signed in
        /*) content="$content
Signed-By: $signed" ;;
        "") ;;
        *) warn "Signed-By of the $CODENAME source is not a file path; relying on the default keyrings" ;;
    esac
    if [ -f "$BACKPORTS_FILE" ] && [ "$(cat "$BACKPORTS_FILE")" = "$content" ]; then
        return 0
    fi
    need_root_for "apt source '$BACKPORTS_SUITE' (deb and deb-src) must be added"
    log "adding $BACKPORTS_SUITE (deb, deb-src) as $BACKPORTS_FILE"
    printf '%s\n' "$content" >"$BACKPORTS_FILE.tmp.$$" \
        && mv -f "$BACKPORTS_FILE.tmp.$$" "$BACKPORTS_FILE" \
        || die "cannot write $BACKPORTS_FILE"
    APT_UPDATED=0
    apt_update
}

apt_install() {  # apt_install [-t SUITE] PKG...
    local target=()
    if [ "$1" = -t ]; then target=(-t "$2"); shift 2; fi
    log "apt-get install ${target[*]} $*"
    DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y -q \
        --no-install-recommends "${target[@]}" "$@" >&2 \
        || die "apt-get install ${target[*]} $* failed (see output above)"
}

ensure_runtime_deps() {
    local pkgs=("${RUNTIME_PKGS[@]}") missing
    pkgs+=("${HOST_RUNTIME_PKGS[@]}")
    missing=$(missing_pkgs "${pkgs[@]}")
    [ -z "$missing" ] && return 0
    need_root_for "missing runtime packages: $(printf "%s " $missing)"
    apt_update
    # shellcheck disable=SC2086
    apt_install $missing
}

ensure_build_deps() {
    local pkgs=("${BUILD_PKGS[@]}" "${RUNTIME_PKGS[@]}") missing
    pkgs+=("${HOST_BUILD_PKGS[@]}" "${HOST_RUNTIME_PKGS[@]}")
    [ -n "$TLPB_HOST_LIB" ] || pkgs+=("${SELF_HOST_BUILD_PKGS[@]}")
    missing=$(missing_pkgs "${pkgs[@]}")
    if [ -n "$missing" ]; then
        need_root_for "missing build packages: $(printf "%s " $missing)"
        apt_update
        # shellcheck disable=SC2086
        apt_install $missing
    fi
    if ! meson_ok || [ -n "$(missing_pkgs "${BACKPORTS_PKGS[@]}")" ]; then
        need_root_for "meson >= $MESON_MIN and python3-pycotap from $BACKPORTS_SUITE are needed"
        ensure_backports_source
        apt_update
        apt_install -t "$BACKPORTS_SUITE" "${BACKPORTS_PKGS[@]}"
        meson_ok || die "meson from $BACKPORTS_SUITE is still older than $MESON_MIN"
    fi
}

# ----------------------------------------------------------- QEMU source --
DOWNLOAD_DIR=$CACHE_ROOT/downloads

find_cached_tarball() {
    local t
    t=$(ls -1 "$DOWNLOAD_DIR"/qemu_*.orig.tar.* 2>/dev/null | grep -v '\.asc$' | sort -V | tail -1) || true
    printf '%s\n' "$t"
}

download_source() {
    local dl rc t
    need_root_for "QEMU source is not cached and must be fetched with apt-get source"
    command -v apt-get >/dev/null || die "apt-get not found; pass --qemu-src"
    ensure_backports_source
    apt_update
    dl=$DOWNLOAD_DIR/incoming.$$
    rm -rf "$dl"; mkdir -p "$dl"
    log "apt-get source --download-only qemu/$BACKPORTS_SUITE (into $DOWNLOAD_DIR)"
    # Only the upstream tarball is needed. The Debian packaging part of the
    # source package may be missing on the mirror, in which case apt-get
    # exits 100 after the tarball arrived, so the exit code alone means nothing.
    rc=0
    (cd "$dl" && apt-get "${APT_OPTS[@]}" -o APT::Sandbox::User=root source --download-only "qemu/$BACKPORTS_SUITE") >&2 || rc=$?
    t=$(ls -1 "$dl"/qemu_*.orig.tar.* 2>/dev/null | grep -v '\.asc$' | sort -V | tail -1) || true
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

# Sets SRC_KIND (tarball|dir), SRC_PATH, QEMU_VERSION, SRC_ID.
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
    SRC_PATH=$(find_cached_tarball)
    if [ -z "$SRC_PATH" ] || [ "$REFRESH_SOURCE" = 1 ]; then
        download_source
        SRC_PATH=$(find_cached_tarball)
        [ -n "$SRC_PATH" ] || die "no QEMU tarball in $DOWNLOAD_DIR after download"
    fi
    SRC_KIND=tarball
    QEMU_VERSION=$(basename "$SRC_PATH" | sed -nE 's/^qemu_([0-9]+(\.[0-9]+)+).*/\1/p')
    [ -n "$QEMU_VERSION" ] || QEMU_VERSION=custom
    SRC_ID="tarball $(sha256sum "$SRC_PATH" | cut -d' ' -f1)"
}

# ------------------------------------------------------------- cache key --
# Device sources: every C file and header next to this script, and the
# trace-events file (appended to hw/misc/trace-events).
shim_sources() {
    find "$SCRIPT_DIR" -maxdepth 1 -type f \( -name '*.c' -o -name '*.h' -o -name trace-events \) |
        LC_ALL=C sort
}

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
        printf 'script %s\n' "$(sha256sum <"$SCRIPT_PATH" | cut -d' ' -f1)"
        while IFS= read -r f; do
            printf 'shim %s %s\n' "$(basename "$f")" "$(sha256sum <"$f" | cut -d' ' -f1)"
        done < <(shim_sources)
        if [ -n "$TLPB_HOST_LIB" ]; then
            for f in "${HOST_ARCHIVES[@]}"; do
                printf 'hostlib %s %s\n' "$(basename "$f")" "$(sha256sum <"$f" | cut -d' ' -f1)"
            done
            printf 'hostlibs %s\n' "$TLPB_HOST_LIBS"
            while IFS= read -r d; do
                [ -n "$d" ] || continue
                printf 'include %s\n' "$d"
                find "$d" -type f \( -name '*.h' -o -name '*.hpp' \) -printf '%P\n' | LC_ALL=C sort |
                    while IFS= read -r f; do
                        printf 'header %s %s\n' "$f" "$(sha256sum <"$d/$f" | cut -d' ' -f1)"
                    done
            done <<<"$HOST_INC_DIRS"
        else
            printf 'hostlib self %s\n' "$TLPB_HOST_LIBS"
            while IFS= read -r f; do
                printf 'hostsrc %s %s\n' "${f#"$REPO_DIR"/}" "$(sha256sum <"$f" | cut -d' ' -f1)"
            done < <(self_host_sources)
        fi
    )
    KEY_MANIFEST=$manifest
    KEY="$QEMU_VERSION-$(printf '%s\n' "$manifest" | sha256sum | cut -c1-16)"
}

# ------------------------------------------------------------------ build --
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

unpack_source() {
    local dest=$1 top
    mkdir -p "$dest"
    if [ "$SRC_KIND" = tarball ]; then
        log "unpacking $(basename "$SRC_PATH")"
        tar -xf "$SRC_PATH" -C "$dest" || die "cannot unpack $SRC_PATH"
        top=$(find "$dest" -mindepth 1 -maxdepth 1 -type d | head -1)
        [ -n "$top" ] && [ -f "$top/configure" ] || die "$SRC_PATH does not contain a QEMU source tree"
        mv "$top" "$dest/qemu" || die "cannot rename $top"
    else
        log "copying $SRC_PATH"
        mkdir -p "$dest/qemu"
        (cd "$SRC_PATH" && tar --exclude=./.git --exclude=./build -cf - .) | tar -xf - -C "$dest/qemu" \
            || die "cannot copy $SRC_PATH"
    fi
}

# Meson list literal of quoted strings: meson_list a b -> ['a', 'b']
meson_list() {
    local out="" s
    for s in "$@"; do
        s=${s//\\/\\\\}; s=${s//\'/\\\'}
        out="$out${out:+, }'$s'"
    done
    printf '[%s]' "$out"
}

patch_tree() {
    local q=$1 f inc_args=() link_args=() d
    if grep -qi tlpbridge "$q/hw/misc/meson.build" "$q/hw/misc/Kconfig"; then
        die "the QEMU source already mentions tlpbridge in hw/misc; pass an unmodified QEMU source"
    fi
    # 1. The device sources.
    while IFS= read -r f; do
        case $(basename "$f") in
            trace-events) { printf '\n'; cat "$f"; } >>"$q/hw/misc/trace-events" ;;
            *) cp "$f" "$q/hw/misc/" ;;
        esac
    done < <(shim_sources)

    # 2. Kconfig: on by default wherever PCI devices are (like EDU), on any
    #    machine with PCI Express, as it is a PCIe-only endpoint.
    cat >>"$q/hw/misc/Kconfig" <<'EOF'

config TLPBRIDGE_PCI
    bool
    default y if PCI_DEVICES
    depends on PCI_EXPRESS && MSI_NONBROKEN
EOF

    # 3. meson: the device, its C files, and the host library as a dependency.
    # The include dirs go after QEMU's own and the system ones (-idirafter),
    # so a header of ours can never shadow one QEMU uses.
    if [ -n "$TLPB_HOST_LIB" ]; then
        while IFS= read -r d; do [ -n "$d" ] && inc_args+=("-idirafter$d"); done <<<"$HOST_INC_DIRS"
        # shellcheck disable=SC2206
        link_args=("${HOST_ARCHIVES[@]}" $TLPB_HOST_LIBS)
    fi
    {
        printf '/* Generated by qemu_shim/build-qemu.sh */\n'
        printf '#define TLPBRIDGE_BUILD_KEY "%s"\n' "$KEY"
    } >"$q/hw/misc/tlpbridge-build.h"
    local extra_c=() n
    while IFS= read -r f; do
        n=$(basename "$f")
        case $n in *.c) [ "$n" = tlpbridge-pci.c ] || extra_c+=("$n") ;; esac
    done < <(shim_sources)
    cat >>"$q/hw/misc/meson.build" <<EOF

# tlpbridge-pci: PCIe endpoint that forwards TLPs to the tlpbridge daemon.
tlpbhost = declare_dependency(compile_args: $(meson_list "${inc_args[@]}"),
                              link_args: $(meson_list "${link_args[@]}"))
system_ss.add(when: 'CONFIG_TLPBRIDGE_PCI',
              if_true: [files($(meson_list tlpbridge-pci.c "${extra_c[@]}" | sed 's/^\[//; s/\]$//')), tlpbhost])
EOF

    # 4. The Debian '+ds' tarball has no firmware blobs; do not unpack EDK2 ones.
    if ! ls "$q"/pc-bios/edk2-*.fd.bz2 >/dev/null 2>&1; then
        if grep -q 'unpack_edk2_blobs = bzip2.found()' "$q/meson.build"; then
            sed -i 's/unpack_edk2_blobs = bzip2.found()/unpack_edk2_blobs = false/' "$q/meson.build"
        elif ! grep -q 'unpack_edk2_blobs' "$q/meson.build"; then
            : # newer/older QEMU without this logic
        else
            die "cannot disable EDK2 blob unpacking in $q/meson.build (pattern changed); the source has no pc-bios/edk2-*.fd.bz2"
        fi
    fi
}

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

# Build libtlpbhost.a and libtlpbwire.a from this repository into the build
# tree, always without sanitizers: ASan-instrumented archives cannot be linked
# into QEMU. Sets HOST_ARCHIVES and HOST_INC_DIRS.
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

do_build() {
    local q b t0 t1
    WORK=$CACHE_ROOT/work/qemu-$KEY
    log "building QEMU $QEMU_VERSION with tlpbridge-pci in $WORK"
    rm -rf "$WORK" || die "cannot clear $WORK"
    mkdir -p "$WORK" || die "cannot create $WORK"
    LOG=$WORK/build.log
    : >"$LOG"
    t0=$(date +%s)
    [ ${#HOST_ARCHIVES[@]} -gt 0 ] || build_self_host_lib
    unpack_source "$WORK"
    q=$WORK/qemu; b=$q/build
    patch_tree "$q"
    mkdir -p "$b"
    log "configure ${CONFIGURE_ARGS[*]}"
    (cd "$b" && run_logged "$LOG" ../configure "${CONFIGURE_ARGS[@]}") \
        || fail_with_log "$LOG" "QEMU configure failed"
    grep -q '^CONFIG_TLPBRIDGE_PCI=y' "$b"/x86_64-softmmu-config-devices.mak 2>/dev/null \
        || fail_with_log "$LOG" "configure did not enable CONFIG_TLPBRIDGE_PCI"
    log "ninja -j$JOBS qemu-system-x86_64"
    run_logged "$LOG" ninja -C "$b" -j "$JOBS" qemu-system-x86_64 \
        || fail_with_log "$LOG" "building qemu-system-x86_64 failed"
    [ -x "$b/qemu-system-x86_64" ] || fail_with_log "$LOG" "build finished but $b/qemu-system-x86_64 is missing"
    "$b/qemu-system-x86_64" -device help 2>/dev/null | grep -q '"tlpbridge-pci"' \
        || fail_with_log "$LOG" "the built QEMU does not list -device tlpbridge-pci"
    t1=$(date +%s)

    # Install atomically: fill a temp dir, then rename it to the key dir.
    t=$CACHE_ROOT/.qemu-$KEY.tmp.$$
    rm -rf "$t"; mkdir -p "$t"
    cp "$b/qemu-system-x86_64" "$t/" || die "cannot copy the binary into $t"
    {
        printf 'key: %s\n' "$KEY"
        printf 'built: %s in %ss\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$((t1 - t0))"
        printf 'source: %s (%s)\n' "$SRC_PATH" "$SRC_KIND"
        printf 'host-lib: %s\n' "${HOST_ARCHIVES[*]:-none}"
        printf 'host-include: %s\n' "$(printf "%s " $HOST_INC_DIRS)"
        printf 'configure: %s\n' "${CONFIGURE_ARGS[*]}"
        printf -- '--- key inputs ---\n%s\n' "$KEY_MANIFEST"
    } >"$t/build-info.txt"
    if ! mv -T "$t" "$KEY_DIR" 2>/dev/null; then
        rm -rf "$t"
        [ -x "$KEY_DIR/qemu-system-x86_64" ] || die "cannot install into $KEY_DIR"
        log "another run installed $KEY_DIR first; using it"
    fi
    if [ "$KEEP_BUILD" = 1 ]; then
        log "build tree kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    log "built in $((t1 - t0))s"
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

finish() {  # finish: optional pruning, then the path as the last stdout line
    [ "$PRUNE" = 1 ] && prune_cache
    printf '%s\n' "$BIN"
    exit 0
}

# ------------------------------------------------------------------- main --
mkdir -p "$CACHE_ROOT" || die "cannot create cache dir $CACHE_ROOT"
CACHE_ROOT=$(abspath "$CACHE_ROOT")
DOWNLOAD_DIR=$CACHE_ROOT/downloads

resolve_source
compute_key
KEY_DIR=$CACHE_ROOT/qemu-$KEY
BIN=$KEY_DIR/qemu-system-x86_64

if [ "$PRINT_KEY" = 1 ]; then
    printf '%s\n' "$KEY"
    exit 0
fi

if [ "$FORCE" = 0 ] && [ -x "$BIN" ]; then
    ensure_runtime_deps
    log "cached: $BIN"
    finish
fi

command -v flock >/dev/null || die "flock (util-linux) is required"
exec 9>"$CACHE_ROOT/.lock-qemu-$KEY"
if ! flock -n 9; then
    log "another build of $KEY is running; waiting for it"
    flock 9 || die "cannot lock $CACHE_ROOT/.lock-qemu-$KEY"
fi
if [ "$FORCE" = 0 ] && [ -x "$BIN" ]; then
    ensure_runtime_deps
    log "cached: $BIN"
    finish
fi
if [ "$FORCE" = 1 ] && [ -e "$KEY_DIR" ]; then
    rm -rf "$KEY_DIR" || die "cannot remove $KEY_DIR for --force"
fi

check_host_lib
ensure_build_deps
do_build
finish
