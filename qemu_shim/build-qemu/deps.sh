# shellcheck shell=bash
# Part of build-qemu.sh: the Debian packages the QEMU build and the built
# binary need, installed when missing (checked with dpkg-query, so re-runs do
# not touch apt). Every apt-get call goes through scripts/lib/apt.sh.
#
# Uses from the driver: TLPB_HOST_LIB, BACKPORTS_SUITE, MESON_MIN, log, die,
# need_root_for; from sources.sh: ensure_backports_source.

# Packages needed to configure and build QEMU.
BUILD_PKGS=(build-essential ninja-build pkg-config python3 python3-venv
            libglib2.0-dev libpixman-1-dev flex bison xz-utils dpkg-dev)
# Packages that must come from <codename>-backports (QEMU 10 needs meson >= 1.5).
BACKPORTS_PKGS=(meson python3-pycotap)
# Packages needed to run the result: firmware (BIOS, VGA BIOS, option ROMs,
# NIC boot ROMs) and the shared libraries the binary links against.
RUNTIME_PKGS=(seabios qemu-system-data ipxe-qemu libglib2.0-0 libpixman-1-0 zlib1g)
HOST_RUNTIME_PKGS=(libprotobuf-c1)
HOST_BUILD_PKGS=(libprotobuf-c-dev)
# Building the host library from this repository: its CMake project
# configures every component, so it needs all of the project's libraries.
SELF_HOST_BUILD_PKGS=(cmake protobuf-c-compiler libuv1-dev libconfig-dev zlib1g-dev libisal-dev)

meson_ok() {
    local v
    v=$(dpkg-query -W -f='${Version}' meson 2>/dev/null) || return 1
    tlpb_apt_installed meson && dpkg --compare-versions "$v" ge "$MESON_MIN"
}

install_missing() {  # install_missing WHAT PKG...: apt-get install the missing ones
    local what=$1 missing
    shift
    missing=$(tlpb_apt_missing "$@")
    [ -z "$missing" ] && return 0
    # shellcheck disable=SC2086 # one word per package
    need_root_for "missing $what packages: $(printf "%s " $missing)"
    tlpb_apt_update || die "apt-get update failed (network or apt sources problem; see output above)"
    # shellcheck disable=SC2086
    tlpb_apt_install $missing || die "apt-get install $(printf "%s " $missing)failed (see output above)"
}

ensure_runtime_deps() {
    install_missing runtime "${RUNTIME_PKGS[@]}" "${HOST_RUNTIME_PKGS[@]}"
}

ensure_build_deps() {
    local pkgs=("${BUILD_PKGS[@]}" "${RUNTIME_PKGS[@]}" "${HOST_BUILD_PKGS[@]}" "${HOST_RUNTIME_PKGS[@]}")
    [ -n "$TLPB_HOST_LIB" ] || pkgs+=("${SELF_HOST_BUILD_PKGS[@]}")
    install_missing build "${pkgs[@]}"
    if ! meson_ok || [ -n "$(tlpb_apt_missing "${BACKPORTS_PKGS[@]}")" ]; then
        need_root_for "meson >= $MESON_MIN and python3-pycotap from $BACKPORTS_SUITE are needed"
        ensure_backports_source
        tlpb_apt_update || die "apt-get update failed (network or apt sources problem; see output above)"
        tlpb_apt_install -t "$BACKPORTS_SUITE" "${BACKPORTS_PKGS[@]}" \
            || die "apt-get install -t $BACKPORTS_SUITE ${BACKPORTS_PKGS[*]} failed (see output above)"
        meson_ok || die "meson from $BACKPORTS_SUITE is still older than $MESON_MIN"
    fi
}
