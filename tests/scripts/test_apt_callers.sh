#!/bin/sh
# Every apt-get call of the project's scripts goes through scripts/lib/apt.sh
# (serialised, with the dpkg lock timeout): no shell script runs apt-get as a
# command itself. Messages and comments that name apt-get are fine.
#
# usage: test_apt_callers.sh REPO_DIR
set -eu
cd "$1"
found=$(git ls-files '*.sh' 2>/dev/null || find . -name '*.sh' -not -path './build*')
[ -n "$found" ] || { echo "FAIL: no shell scripts found in $1"; exit 1; }
# A command position: line start, after ; & | ( or then/do/else, optionally
# behind VAR=value assignments.
bad=$(printf '%s\n' "$found" | grep -v '^scripts/lib/apt\.sh$' |
	xargs grep -nE '(^|[;&|({]|\bthen|\bdo|\belse)[[:space:]]*([A-Za-z_][A-Za-z0-9_]*=[^[:space:]]*[[:space:]]+)*apt-get[[:space:]]' || true)
if [ -n "$bad" ]; then
	echo "FAIL: apt-get run directly, not through scripts/lib/apt.sh:"
	printf '%s\n' "$bad"
	exit 1
fi
echo "ok: $(printf '%s\n' "$found" | wc -l) shell scripts, apt-get only in scripts/lib/apt.sh"
