# SPDX-License-Identifier: MIT
# lib.sh - sourced by every integration test. Arguments of the test: CKPTFS_BINARY HELPER_DIR.
#
# Gives each test a private temp dir ($T), ck_init/ck_mount/ck_umount around the real binary, and
# a trap that - whatever happened - lazily unmounts every mount the test made, ends the daemons
# it started (by PID), undoes extra mounts (tmpfs) and removes $T. Daemons run in the foreground
# as children of the test shell, each logging to $T/<name>.log.
set -euo pipefail

CKPTFS=$(realpath "${1:?usage: $0 CKPTFS_BINARY HELPER_DIR}")
HELPERS=$(realpath "${2:?usage: $0 CKPTFS_BINARY HELPER_DIR}")
TEST_NAME=$(basename "$0" .sh)
T=$(mktemp -d "/tmp/ckptfs-${TEST_NAME}.XXXXXX")
declare -A DAEMON_PID=()
declare -A DAEMON_LOG=()
EXTRA_MOUNTS=()

note() { echo "== $TEST_NAME: $*"; }
fail() {
	echo "FAIL: $TEST_NAME: $*" >&2
	exit 1
}

_cleanup() {
	local rc=$? m pid i
	set +e
	trap - EXIT
	for m in "${!DAEMON_PID[@]}"; do
		pid=${DAEMON_PID[$m]}
		fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
		for i in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	for m in "${EXTRA_MOUNTS[@]}"; do
		umount -l "$m" 2>/dev/null
	done
	if [ "$rc" -ne 0 ]; then
		for m in "$T"/*.log; do
			[ -f "$m" ] || continue
			echo "--- last lines of $m:" >&2
			tail -n 30 "$m" >&2
		done
	fi
	rm -rf "$T"
	exit "$rc"
}
trap _cleanup EXIT

ck_init() { # STORE
	"$CKPTFS" init "$1" >/dev/null || fail "ckptfs init '$1' failed"
}

# ck_mount STORE MNT [mount options...]: starts the daemon in the foreground as our child and
# waits (10 s at most) until MNT is a mountpoint.
ck_mount() {
	local store=$1 mnt=$2 pid i log
	shift 2
	mkdir -p "$mnt"
	log="$T/daemon-$(basename "$mnt").log"
	"$CKPTFS" mount -f "$@" "$store" "$mnt" >>"$log" 2>&1 &
	pid=$!
	DAEMON_PID[$mnt]=$pid
	DAEMON_LOG[$mnt]=$log
	for i in $(seq 200); do
		mountpoint -q "$mnt" && return 0
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid" || true
			unset "DAEMON_PID[$mnt]"
			fail "daemon for '$mnt' exited before mounting: $(tail -n 5 "$log")"
		fi
		sleep 0.05
	done
	fail "'$mnt' did not become a mountpoint within 10 s"
}

# ck_umount MNT: unmounts (retrying while busy), waits for the daemon, requires exit status 0.
ck_umount() {
	local mnt=$1 pid=${DAEMON_PID[$1]} i rc=0
	for i in $(seq 50); do
		fusermount3 -u "$mnt" 2>/dev/null && break
		[ "$i" -eq 50 ] && fail "cannot unmount '$mnt'"
		sleep 0.1
	done
	wait "$pid" || rc=$?
	unset "DAEMON_PID[$mnt]"
	[ "$rc" -eq 0 ] || fail "daemon for '$mnt' exited with status $rc"
}

# ck_kill9 MNT: kills the daemon with SIGKILL and detaches its dead mount.
ck_kill9() {
	local mnt=$1 pid=${DAEMON_PID[$1]}
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null || true
	unset "DAEMON_PID[$mnt]"
	fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt"
}

# Checksums and metadata of every entry below DIR, relative names, sorted: equal listings mean
# equal trees (content, type, mode, owner, size, mtime, symlink target).
tree_digest() { # DIR
	(
		cd "$1"
		find . ! -type d -printf '%y %m %U:%G %s %T@ nlink=%n %p -> %l\n' | sort
		find . -type d -printf '%y %m %U:%G %T@ %p\n' | sort
		find . -type f -print0 | sort -z | xargs -0 -r sha256sum
	)
}

# Fails unless CMD... fails with an error message containing TEXT.
expect_fail() { # TEXT CMD...
	local text=$1 out
	shift
	if out=$("$@" 2>&1); then
		fail "'$*' succeeded; expected failure with '$text'"
	fi
	case "$out" in
	*"$text"*) ;;
	*) fail "'$*' failed without '$text': $out" ;;
	esac
}

# True if 'ckptfs CMD' is implemented (not the skeleton's "not built yet" placeholder).
ck_has_cmd() { # CMD
	local out
	out=$("$CKPTFS" "$1" --help 2>&1 || true)
	! grep -q "not built yet" <<<"$out"
}
