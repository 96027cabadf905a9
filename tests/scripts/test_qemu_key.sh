#!/bin/sh
# The QEMU cache key of qemu_shim/build-qemu.sh covers every file the script
# is made of: the driver, each part in qemu_shim/build-qemu/, and
# scripts/lib/apt.sh. Changing any of them must change the key (or an old
# cached binary would be used for a changed build), while a file that is not
# part of the build (the README) must not. Works on a copy of the files, with
# a stand-in QEMU source tree, so nothing is downloaded or built.
#
# usage: test_qemu_key.sh REPO_DIR
set -eu
repo=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tlpb-qemu-key.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
copy=$tmp/repo
mkdir -p "$copy/scripts" "$tmp/qemu" "$tmp/cache"
cp -R "$repo/qemu_shim" "$repo/host" "$repo/proto" "$copy/"
cp -R "$repo/scripts/lib" "$copy/scripts/"
cp "$repo/CMakeLists.txt" "$copy/"
echo 10.0.2 >"$tmp/qemu/VERSION"
: >"$tmp/qemu/configure"

key() {
	"$copy/qemu_shim/build-qemu.sh" --no-apt --print-key --qemu-src "$tmp/qemu" --cache-dir "$tmp/cache"
}
base=$(key)
case $base in 10.0.2-????????????????) ;; *) echo "FAIL: unexpected key '$base'"; exit 1 ;; esac

fail=0
parts="qemu_shim/build-qemu.sh scripts/lib/apt.sh"
for f in "$copy"/qemu_shim/build-qemu/*.sh; do parts="$parts qemu_shim/build-qemu/${f##*/}"; done
n=0
for p in $parts; do
	cp "$copy/$p" "$tmp/saved"
	echo "# changed" >>"$copy/$p"
	k=$(key)
	cp "$tmp/saved" "$copy/$p"
	if [ "$k" = "$base" ]; then
		echo "FAIL: changing $p leaves the cache key at $base"
		fail=1
	fi
	n=$((n + 1))
done
[ "$n" -ge 8 ] || { echo "FAIL: only $n script files found ($parts)"; fail=1; }

echo "changed" >>"$copy/qemu_shim/README.md"
k=$(key)
if [ "$k" != "$base" ]; then
	echo "FAIL: the README changed the cache key ($base -> $k)"
	fail=1
fi
[ "$fail" = 0 ] && echo "ok: the key covers all $n files of build-qemu.sh ($parts)"
exit "$fail"
