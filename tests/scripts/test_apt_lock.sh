#!/bin/sh
# scripts/lib/apt.sh serialises apt-get: while one apt-get started through
# it runs, a second caller does not start apt-get (it waits for the lock, and
# with TLPB_APT_LOCK_WAIT=0 gives up with exit 75 at once). A fake apt-get on
# PATH behaves like the real one's lists lock: it fails with exit 100 when
# another apt-get holds it. The fake runs the second caller itself, while it
# holds the lists lock, so the two overlap every time, without timing.
#
# usage: test_apt_lock.sh REPO_DIR
set -eu
repo=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tlpb-apt-lock.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/bin"
cat >"$tmp/bin/apt-get" <<'FAKE'
#!/bin/sh
# Fake apt-get: the lists lock of the real one, a log of its calls.
exec 7>"$FAKE_DIR/lists.lock"
if ! flock -n 7; then
	echo "E: Could not get lock $FAKE_DIR/lists.lock" >&2
	exit 100
fi
echo "apt-get $*" >>"$FAKE_DIR/calls"
if [ -n "${FAKE_SECOND:-}" ]; then
	# The second caller, started while this apt-get holds the lock.
	rc=0
	FAKE_SECOND= sh -c "$FAKE_SECOND" >"$FAKE_DIR/second.log" 2>&1 7>&- || rc=$?
	echo "$rc" >"$FAKE_DIR/second.rc"
fi
exit 0
FAKE
chmod +x "$tmp/bin/apt-get"

export PATH="$tmp/bin:$PATH" FAKE_DIR="$tmp" TLPB_APT_LOCK="$tmp/tlpb-apt.lock"
second=". '$repo/scripts/lib/apt.sh'; TLPB_APT_LOCK_WAIT=0 tlpb_apt_update"
fail=0
rc=0
FAKE_SECOND=$second sh -c ". '$repo/scripts/lib/apt.sh'; tlpb_apt_update" >"$tmp/first.log" 2>&1 || rc=$?
if [ "$rc" != 0 ]; then
	echo "FAIL: first tlpb_apt_update exited $rc"; cat "$tmp/first.log"; fail=1
fi
second_rc=$(cat "$tmp/second.rc" 2>/dev/null || echo none)
if grep -q "Could not get lock" "$tmp/second.log" 2>/dev/null; then
	echo "FAIL: the second caller ran apt-get while the first one held apt's lock:"
	cat "$tmp/second.log"; fail=1
elif [ "$second_rc" != 75 ]; then
	echo "FAIL: the second caller exited $second_rc, want 75 (project apt lock busy)"
	cat "$tmp/second.log" 2>/dev/null; fail=1
fi
calls=$(wc -l <"$tmp/calls")
if [ "$calls" != 1 ]; then
	echo "FAIL: apt-get ran $calls times, want 1"; cat "$tmp/calls"; fail=1
fi
# Every call passes the dpkg lock timeout, for apt users outside this project.
if ! grep -q -- "-o DPkg::Lock::Timeout=" "$tmp/calls"; then
	echo "FAIL: apt-get was called without DPkg::Lock::Timeout:"; cat "$tmp/calls"; fail=1
fi

# Once the first is done, a waiting caller gets its turn.
rc=0
sh -c ". '$repo/scripts/lib/apt.sh'; tlpb_apt_update" >"$tmp/third.log" 2>&1 || rc=$?
if [ "$rc" != 0 ]; then
	echo "FAIL: tlpb_apt_update after the first one exited $rc"; cat "$tmp/third.log"; fail=1
fi
[ "$fail" = 0 ] && echo "ok: apt-get calls through scripts/lib/apt.sh do not overlap"
exit "$fail"
