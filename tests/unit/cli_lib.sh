# SPDX-License-Identifier: MIT
# cli_lib.sh NAME - sourced by the CLI test scripts (cli_store.sh, maint/cli_maint.sh): a scratch
# directory $T, removed at exit together with the lock-holding process $holder if one is
# running; fail; expect_rc.
T=$(mktemp -d "${TMPDIR:-/tmp}/ckptfs-cli-$1-XXXXXX")
holder=
cleanup() {
	[ -n "$holder" ] && kill "$holder" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	exit 1
}
expect_rc() { # expect_rc RC CMD... : runs CMD, checks its exit code, leaves output in $out
	local want=$1 rc
	shift
	out=$("$@" 2>&1)
	rc=$?
	[ "$rc" -eq "$want" ] || fail "'$*' exited $rc, want $want: $out"
}
