# shellcheck shell=sh
# The one way this project's scripts call apt-get. Source it (POSIX sh, so
# bash and dash scripts can both use it):
#
#   . "$REPO/scripts/lib/apt.sh"
#   tlpb_apt_ensure python3 cpio        # install the ones missing (root only)
#
# Why: the build runs several installing scripts at once (QEMU and the guest
# image are built in parallel), and apt-get does not wait for its own locks:
# `apt-get update` fails at once with "Could not get lock
# /var/lib/apt/lists/lock", and DPkg::Lock::Timeout only covers the dpkg lock.
# So every apt-get call here runs under one flock (TLPB_APT_LOCK), and waits
# for other apt users (the dpkg lock) with DPkg::Lock::Timeout.
#
# Functions:
#   tlpb_apt_installed PKG        true if dpkg has PKG installed
#   tlpb_apt_missing PKG...       print the ones not installed, one per line
#   tlpb_apt_update               apt-get update, at most once per run (below)
#   tlpb_apt_install [-t SUITE] PKG...   apt-get install, no recommends
#   tlpb_apt_ensure [-t SUITE] PKG...    install those still missing, updating
#                                 the lists first; errors when not root
#   tlpb_apt_get ARG...           any other apt-get command (e.g. source)
#   tlpb_apt_sources_changed      the lists must be fetched again (a source
#                                 was added)
# They print apt's output on stderr and return apt's exit status. The caller
# decides what is fatal.
#
# "Once per run": tlpb_apt_update exports TLPB_APT_UPDATED, so scripts started
# by a script that already updated (install-deps.sh runs the QEMU and guest
# image scripts) do not update again.
#
# Environment: TLPB_APT_LOCK (lock file, default /run/lock/tlpbridge-apt.lock),
# TLPB_APT_LOCK_WAIT (seconds to wait for it and for the dpkg lock, default 600).

if [ -z "${TLPB_APT_LOCK:-}" ]; then
	if [ -d /run/lock ]; then TLPB_APT_LOCK=/run/lock/tlpbridge-apt.lock
	else TLPB_APT_LOCK=/var/lib/apt/tlpbridge-apt.lock
	fi
fi
TLPB_APT_LOCK_WAIT=${TLPB_APT_LOCK_WAIT:-600}
TLPB_APT_UPDATED=${TLPB_APT_UPDATED:-0}

tlpb_apt_installed() {
	case $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) in
	installed) return 0 ;;
	*) return 1 ;;
	esac
}

tlpb_apt_missing() {
	for _tlpb_p in "$@"; do
		tlpb_apt_installed "$_tlpb_p" || printf '%s\n' "$_tlpb_p"
	done
}

# tlpb_apt_get ARG...: apt-get ARG... under the lock. flock(1) holds the lock
# for exactly the apt-get process; the lock fd is not passed on, so nothing
# apt-get starts (a daemon from a maintainer script) keeps it.
tlpb_apt_get() {
	command -v apt-get >/dev/null 2>&1 || {
		echo "apt: apt-get is not available (Debian/Ubuntu only)" >&2
		return 127
	}
	command -v flock >/dev/null 2>&1 || {
		echo "apt: flock (util-linux) is required" >&2
		return 127
	}
	_tlpb_rc=0
	DEBIAN_FRONTEND=noninteractive flock -w "$TLPB_APT_LOCK_WAIT" -E 75 "$TLPB_APT_LOCK" \
		apt-get -o DPkg::Lock::Timeout="$TLPB_APT_LOCK_WAIT" -o Acquire::Retries=3 "$@" >&2 ||
		_tlpb_rc=$?
	[ "$_tlpb_rc" != 75 ] ||
		echo "apt: waited ${TLPB_APT_LOCK_WAIT}s for $TLPB_APT_LOCK (another apt-get of this project)" >&2
	return "$_tlpb_rc"
}

tlpb_apt_update() {
	[ "$TLPB_APT_UPDATED" = 1 ] && return 0
	echo "apt: apt-get update" >&2
	tlpb_apt_get update -q || return
	TLPB_APT_UPDATED=1
	export TLPB_APT_UPDATED
}

tlpb_apt_sources_changed() {
	TLPB_APT_UPDATED=0
	export TLPB_APT_UPDATED
}

tlpb_apt_install() {
	echo "apt: apt-get install $*" >&2
	tlpb_apt_get install -y -q --no-install-recommends "$@"
}

tlpb_apt_ensure() {
	_tlpb_target=""
	if [ "$1" = -t ]; then
		_tlpb_target=$2
		shift 2
	fi
	_tlpb_missing=$(tlpb_apt_missing "$@")
	[ -n "$_tlpb_missing" ] || return 0
	_tlpb_missing=$(printf '%s' "$_tlpb_missing" | tr '\n' ' ')
	if [ "$(id -u)" != 0 ]; then
		echo "apt: missing packages: $_tlpb_missing; run as root or: sudo apt-get install $_tlpb_missing" >&2
		return 1
	fi
	tlpb_apt_update || return
	# shellcheck disable=SC2086 # one argument per package
	if [ -n "$_tlpb_target" ]; then
		tlpb_apt_install -t "$_tlpb_target" $_tlpb_missing
	else
		tlpb_apt_install $_tlpb_missing
	fi
}
