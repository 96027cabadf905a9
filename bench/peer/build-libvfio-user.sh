#!/usr/bin/env bash
# Build the static libvfio-user from the copy inside the QEMU source tarball
# (subprojects/libvfio-user), for tlpb-bench's peer measurement.
#
# usage: build-libvfio-user.sh TARBALL OUTDIR CC MESON NINJA
# Unpacks only subprojects/libvfio-user into OUTDIR/src, builds it with meson
# and ninja in OUTDIR/build, and leaves OUTDIR/build/lib/libvfio-user.a; the
# headers are in OUTDIR/src/include.
set -euo pipefail
[ $# = 5 ] || { echo "usage: $0 TARBALL OUTDIR CC MESON NINJA" >&2; exit 2; }
tarball=$1 out=$2 cc=$3 meson=$4 ninja=$5
rm -rf "$out/src" "$out/build"
mkdir -p "$out/src"
# The tarball's top directory is qemu-<version>/.
tar -xf "$tarball" -C "$out/src" --strip-components=3 --wildcards '*/subprojects/libvfio-user/*'
[ -f "$out/src/meson.build" ] || { echo "$tarball holds no subprojects/libvfio-user" >&2; exit 1; }
# Its own unit tests need cmocka and meson has no switch to leave them out:
# drop them from this copy, so only the library's needs (json-c) remain.
sed -i -e "s/^cmocka_dep = dependency('cmocka'.*/cmocka_dep = dependency('cmocka', required: false)/" \
       -e "s/^subdir('test')/# subdir('test')/" "$out/src/meson.build"
CC=$cc "$meson" setup "$out/build" "$out/src" --buildtype=release -Ddebug-logs=disabled \
  -Ddefault_library=static >"$out/meson-setup.log" 2>&1 \
  || { cat "$out/meson-setup.log" >&2; exit 1; }
"$ninja" -C "$out/build" lib/libvfio-user.a
