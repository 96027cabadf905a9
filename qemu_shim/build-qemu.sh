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
# shellcheck source-path=SCRIPTDIR
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

MESON_MIN=1.5.0  # QEMU 10 needs it; bookworm's is older (see build-qemu/deps.sh)
INSTALL_DEPS=0

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
  --install-deps        install the packages the build needs and exit
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
        --install-deps)  INSTALL_DEPS=1; shift ;;
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

need_root_for() {  # need_root_for WHY: die unless apt-get may and can be used
    [ "$NO_APT" = 1 ] && die "$1, and --no-apt/TLPB_NO_APT forbids apt-get"
    [ "$(id -u)" = 0 ] || die "$1; run this script as root (it uses apt-get) or install them first"
    command -v apt-get >/dev/null || die "$1, and apt-get is not available (Debian/Ubuntu only)"
}

CODENAME=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release 2>/dev/null | tr -d '"') || true
CODENAME=${CODENAME:-bookworm}
BACKPORTS_SUITE=${TLPB_BACKPORTS_SUITE:-$CODENAME-backports}

# -------------------------------------------------------------------- parts --
# One file per job, in the order a build uses them. All of them (and the apt
# helper) are part of the cache key: see build-qemu/cache.sh.
PART_DIR=$SCRIPT_DIR/build-qemu
BUILD_PARTS=("$SCRIPT_PATH" "$REPO_DIR/scripts/lib/apt.sh")
for part in sources deps fetch cache host-lib patch compile; do
    BUILD_PARTS+=("$PART_DIR/$part.sh")
done
for part in "${BUILD_PARTS[@]}"; do
    [ -f "$part" ] || die "$part is missing (incomplete checkout?)"
done
unset part
# shellcheck source=../scripts/lib/apt.sh
. "$REPO_DIR/scripts/lib/apt.sh"   # every apt-get call, serialised
# shellcheck source=build-qemu/sources.sh
. "$PART_DIR/sources.sh"           # apt sources: <codename>-backports, deb-src
# shellcheck source=build-qemu/deps.sh
. "$PART_DIR/deps.sh"              # the packages the build and the binary need
# shellcheck source=build-qemu/fetch.sh
. "$PART_DIR/fetch.sh"             # the QEMU source
# shellcheck source=build-qemu/cache.sh
. "$PART_DIR/cache.sh"             # cache key, lock, install, prune
# shellcheck source=build-qemu/host-lib.sh
. "$PART_DIR/host-lib.sh"          # the host library: nested build or checks
# shellcheck source=build-qemu/patch.sh
. "$PART_DIR/patch.sh"             # the device added to the QEMU tree
# shellcheck source=build-qemu/compile.sh
. "$PART_DIR/compile.sh"           # configure, ninja, check

# ------------------------------------------------------------------- build --
do_build() {
    local q t0 t1
    WORK=$CACHE_ROOT/work/qemu-$KEY
    log "building QEMU $QEMU_VERSION with tlpbridge-pci in $WORK"
    rm -rf "$WORK" || die "cannot clear $WORK"
    mkdir -p "$WORK" || die "cannot create $WORK"
    LOG=$WORK/build.log
    : >"$LOG"
    t0=$(date +%s)
    [ ${#HOST_ARCHIVES[@]} -gt 0 ] || build_self_host_lib
    unpack_source "$WORK"
    q=$WORK/qemu
    patch_tree "$q"
    compile_qemu "$q" "$LOG"
    t1=$(date +%s)
    # shellcheck disable=SC2086 # one word per dir
    install_into_cache "$q/build/qemu-system-x86_64" "$(
        printf 'key: %s\n' "$KEY"
        printf 'built: %s in %ss\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$((t1 - t0))"
        printf 'source: %s (%s)\n' "$SRC_PATH" "$SRC_KIND"
        printf 'host-lib: %s\n' "${HOST_ARCHIVES[*]:-none}"
        printf 'host-include: %s\n' "$(printf "%s " $HOST_INC_DIRS)"
        printf 'configure: %s' "${CONFIGURE_ARGS[*]}"
    )"
    if [ "$KEEP_BUILD" = 1 ]; then
        log "build tree kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    log "built in $((t1 - t0))s"
}

finish() {  # finish: optional pruning, then the path as the last stdout line
    [ "$PRUNE" = 1 ] && prune_cache
    printf '%s\n' "$BIN"
    exit 0
}

# -------------------------------------------------------------------- main --
if [ "$INSTALL_DEPS" = 1 ]; then
    ensure_build_deps
    ensure_runtime_deps
    exit 0
fi

mkdir -p "$CACHE_ROOT" || die "cannot create cache dir $CACHE_ROOT"
CACHE_ROOT=$(abspath "$CACHE_ROOT")
DOWNLOAD_DIR=$CACHE_ROOT/downloads

resolve_source
compute_key

if [ "$PRINT_KEY" = 1 ]; then
    printf '%s\n' "$KEY"
    exit 0
fi

if [ "$FORCE" = 0 ] && [ -x "$BIN" ]; then
    ensure_runtime_deps
    log "cached: $BIN"
    finish
fi

lock_key
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
