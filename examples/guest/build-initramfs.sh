#!/bin/sh
# build-initramfs.sh - builds the guest image for the dmacopy example:
#   OUT/vmlinuz             Debian's kernel (linux-image-amd64)
#   OUT/initramfs.cpio.gz   busybox, dmacopy.ko, mmio_bench_edu.ko, dmacopy-test, /init
# The modules are built against the linux-headers of the same kernel version.
# The archive is reproducible: sorted entries, fixed owner and times
# (SOURCE_DATE_EPOCH, default 0), gzip without name or time stamp.
#
# usage: build-initramfs.sh [--out DIR] [--kver VERSION] [--no-install | --install-deps]
#   --no-install    never call apt-get; fail if a package is missing
#   --install-deps  install the packages the image needs, then exit
# shellcheck source-path=SCRIPTDIR
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
DRIVER_DIR="$REPO/examples/dmacopy/linux"
OUT="$REPO/build/guest"
KVER=""
INSTALL=1
DEPS_ONLY=0
PACKAGES="linux-image-amd64 linux-headers-amd64 busybox-static cpio gcc make libc6-dev binutils gzip"

usage() {
	awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

while [ $# -gt 0 ]; do
	case "$1" in
	--out) OUT=$2; shift 2 ;;
	--out=*) OUT=${1#--out=}; shift ;;
	--kver) KVER=$2; shift 2 ;;
	--kver=*) KVER=${1#--kver=}; shift ;;
	--no-install) INSTALL=0; shift ;;
	--install-deps) DEPS_ONLY=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "build-initramfs.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
	esac
done

# Run from a build system (CMake's guest-image target), the parent make's
# jobserver flags would reach the nested makes and make them warn; the module
# and program builds below are self-contained.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKE_TERMOUT MAKE_TERMERR

log() { echo "build-initramfs: $*"; }
die() { echo "build-initramfs: error: $*" >&2; exit 1; }

# --- dependencies: install only what is missing ---------------------------------
# shellcheck source=../../scripts/lib/apt.sh
. "$REPO/scripts/lib/apt.sh"
# shellcheck disable=SC2086 # one argument per package
missing=$(tlpb_apt_missing $PACKAGES | tr '\n' ' ')
if [ -n "$missing" ]; then
	[ "$INSTALL" = 1 ] || die "missing packages: $missing"
	log "installing $missing"
	# shellcheck disable=SC2086
	tlpb_apt_ensure $PACKAGES || die "could not install $missing"
fi
[ "$DEPS_ONLY" = 0 ] || exit 0

# --- kernel version: one with both the image and the headers ---------------------
if [ -z "$KVER" ]; then
	KVER=$(for dir in /lib/modules/*; do
		v=${dir##*/}
		if [ -f "/boot/vmlinuz-$v" ] && [ -f "$dir/build/Makefile" ]; then
			echo "$v"
		fi
	done | sort -V | tail -n 1)
fi
[ -n "$KVER" ] || die "no kernel with both /boot/vmlinuz-VER and /lib/modules/VER/build"
[ -f "/boot/vmlinuz-$KVER" ] || die "/boot/vmlinuz-$KVER not found (linux-image-$KVER)"
[ -f "/lib/modules/$KVER/build/Makefile" ] || die "headers for $KVER not found (linux-headers-$KVER)"
log "kernel $KVER"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BUILD="$OUT/build"
ROOT="$BUILD/root"
rm -rf "$BUILD"
mkdir -p "$BUILD/dmacopy" "$BUILD/edu" "$ROOT"

# --- modules: built in copies so the source folders stay clean -------------------
cp "$DRIVER_DIR/dmacopy.c" "$DRIVER_DIR/dmacopy_ioctl.h" "$DRIVER_DIR/../dmacopy_regs.h" \
	"$DRIVER_DIR/Kbuild" "$BUILD/dmacopy/"
cp "$HERE/mmio_bench_edu.c" "$HERE/Kbuild" "$DRIVER_DIR/dmacopy_ioctl.h" \
	"$DRIVER_DIR/../dmacopy_regs.h" "$BUILD/edu/"
for m in dmacopy edu; do
	log "building $m module"
	# The prefix map keeps the build folder out of the debug info, and so out of
	# the build ID that stays in the stripped module.
	make -s -C "/lib/modules/$KVER/build" M="$BUILD/$m" \
		KCFLAGS="-ffile-prefix-map=$BUILD/=" modules >"$BUILD/$m.log" 2>&1 ||
		{ cat "$BUILD/$m.log" >&2; die "module build failed ($m)"; }
	# Kbuild notes (BTF skipped for want of vmlinux) are not compiler warnings.
	if grep -E "warning:|error:" "$BUILD/$m.log" >&2; then
		die "module build printed warnings ($m)"
	fi
done

log "building dmacopy-test"
make -s -C "$HERE" OUT="$BUILD" DMACOPY_INC="$DRIVER_DIR" "$BUILD/dmacopy-test"

# --- root file system ----------------------------------------------------------------
cd "$ROOT"
mkdir -p bin sbin usr/bin usr/sbin dev proc sys tmp run root etc "lib/modules/$KVER/extra"
cp /bin/busybox bin/busybox
for applet in $(bin/busybox --list-full); do
	[ -e "$applet" ] || ln -s /bin/busybox "$applet"
done
install -m 0755 "$HERE/init" init
install -m 0755 "$HERE/dmacopy-rebind" usr/bin/dmacopy-rebind
install -m 0755 "$BUILD/dmacopy-test" usr/bin/dmacopy-test
strip --strip-all usr/bin/dmacopy-test
for ko in "$BUILD/dmacopy/dmacopy.ko" "$BUILD/edu/mmio_bench_edu.ko"; do
	install -m 0644 "$ko" "lib/modules/$KVER/extra/"
	strip --strip-debug "lib/modules/$KVER/extra/${ko##*/}"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >etc/passwd
printf 'root:x:0:\n' >etc/group
printf 'tlpbridge-guest\n' >etc/hostname
# The kernel's built-in initramfs already has /dev/console; add it when we can.
if [ "$(id -u)" = 0 ]; then
	mknod -m 0600 dev/console c 5 1
	mknod -m 0666 dev/null c 1 3
fi
chmod 0755 . bin sbin usr usr/bin usr/sbin dev proc sys run etc lib
chmod 1777 tmp
chmod 0700 root

# --- archive -----------------------------------------------------------------------------
EPOCH=${SOURCE_DATE_EPOCH:-0}
find . -exec touch -h -d "@$EPOCH" {} +
find . | LC_ALL=C sort |
	cpio --quiet -o -H newc -R 0:0 --reproducible >"$BUILD/initramfs.cpio"
gzip -9 -n -c "$BUILD/initramfs.cpio" >"$OUT/initramfs.cpio.gz"
cp "/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
printf '%s\n' "$KVER" >"$OUT/kernel-version"

log "wrote $OUT/vmlinuz ($KVER) and $OUT/initramfs.cpio.gz ($(wc -c <"$OUT/initramfs.cpio.gz") bytes)"
