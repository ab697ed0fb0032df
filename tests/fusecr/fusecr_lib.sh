# shellcheck shell=bash
# fusecr_lib.sh - helpers for the tests/fusecr scripts (sourced, not run).
#
# Every script gets a fresh $T directory. Processes it starts are registered with fc_track,
# mounts with fc_track_mount, image directories with fc_track_image (their keepers are found
# through `ckptfs show`). The EXIT trap, whatever way the script ends: aborts each tracked
# mount's FUSE connection through fusectl (that is the only thing that releases clients blocked
# on a connection nobody serves), detaches the mount, and kills keepers and tracked processes
# by PID. Nothing here stats a path below a mount that may be dead: mounts are found in
# /proc/self/mountinfo.
set -uo pipefail

: "${CKPTFS:?CKPTFS must name the ckptfs binary}"

FC_NAME=$(basename "$0" .sh)
FC_PIDS=()
FC_MOUNTS=()
FC_IMAGES=()
T=$(mktemp -d "/tmp/fusecr-$FC_NAME.XXXXXX")
FUSECTL=/sys/fs/fuse/connections

fc_log() { echo "[$FC_NAME $(date +%T.%3N)] $*" >&2; }
fc_fail() {
	echo "FAIL [$FC_NAME]: $*" >&2
	exit 1
}
fc_track() { FC_PIDS+=("$1"); }
fc_track_mount() { FC_MOUNTS+=("$1"); }
fc_track_image() { FC_IMAGES+=("$1"); }

fc_alive() { # PID: running (a zombie counts as gone)
	local st
	st=$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# The FUSE connection number of the mount at MNT (its device is 0:N), or nothing.
fc_conn_of() {
	awk -v m="$1" '$5 == m && $3 ~ /^0:/ { sub(/^0:/, "", $3); print $3; exit }' \
		/proc/self/mountinfo
}
fc_mounted() { [ -n "$(fc_conn_of "$1")" ]; }

fc_keeper_of() { # IMAGE: the keeper pid the image names, or nothing
	"$CKPTFS" show "$1" 2>/dev/null | sed -n 's/.* keeper pid \([0-9]*\) .*/\1/p' | head -n1
}

fc_cleanup() {
	local rc=${1:-$?} m c p img k i
	trap - EXIT
	for img in "${FC_IMAGES[@]}"; do
		k=$(fc_keeper_of "$img")
		if [ -n "$k" ] && [ "$(cat "/proc/$k/comm" 2>/dev/null)" = ckptfs-keeper ]; then
			kill -KILL "$k" 2>/dev/null
		fi
	done
	for ((i = ${#FC_MOUNTS[@]} - 1; i >= 0; i--)); do
		m=${FC_MOUNTS[i]}
		c=$(fc_conn_of "$m")
		[ -n "$c" ] || continue
		[ -e "$FUSECTL/$c/abort" ] && echo 1 >"$FUSECTL/$c/abort" 2>/dev/null
		umount -l "$m" 2>/dev/null || echo "cleanup: cannot detach '$m'" >&2
	done
	for p in "${FC_PIDS[@]}"; do
		fc_alive "$p" && kill -KILL "$p" 2>/dev/null
	done
	wait 2>/dev/null
	# FC_KEEP=1: a failed run leaves $T (outputs, images) for a post-mortem.
	if [ "$rc" != 0 ] && [ -n "${FC_KEEP:-}" ]; then
		echo "kept $T" >&2
	else
		rm -rf "$T"
	fi
	exit "$rc"
}
trap fc_cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# fusectl is not mounted by default; cleanup needs it to release blocked clients.
if ! grep -q " $FUSECTL fusectl " /proc/self/mounts; then
	mount -t fusectl none "$FUSECTL" 2>/dev/null || fc_log "cannot mount fusectl"
fi

fc_wait() { # TIMEOUT_S DESCRIPTION COMMAND...: poll every 50 ms until COMMAND succeeds
	local timeout=$1 what=$2 i
	shift 2
	for ((i = 0; i < timeout * 20; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	fc_fail "timed out after ${timeout}s waiting for $what"
}

fc_wait_mount() { fc_wait "${2:-10}" "the mount at '$1'" fc_mounted "$1"; }
fc_gone() { ! fc_alive "$1"; }

# Waits (TIMEOUT_S) for background PID and returns its exit status.
fc_join() {
	local pid=$1 timeout=$2 i
	for ((i = 0; i < timeout * 20; i++)); do
		if ! kill -0 "$pid" 2>/dev/null || ! fc_alive "$pid"; then
			wait "$pid"
			return $?
		fi
		sleep 0.05
	done
	fc_fail "process $pid did not finish within ${timeout}s"
}

# fc_clients FIRST LAST ARGS...: starts clients FIRST..LAST, each running "$FUSECLIENT ARGS..."
# with its output in $T/clientN.out; their pids go to C[N] (tracked for cleanup).
fc_clients() {
	local first=$1 last=$2 i
	shift 2
	for ((i = first; i <= last; i++)); do
		"$FUSECLIENT" "$@" >"$T/client$i.out" 2>&1 &
		C[i]=$!
		fc_track "${C[i]}"
	done
}

# fc_join_clients FIRST LAST [WHEN]: each client must end with status 0 within 30 s; logs its
# last line. WHEN (e.g. " after the rollback") goes into the messages.
fc_join_clients() {
	local first=$1 last=$2 when=${3:-} i
	for ((i = first; i <= last; i++)); do
		fc_join "${C[i]}" 30 || fc_fail "client $i$when: $(cat "$T/client$i.out")"
		fc_log "client $i$when: $(tail -n1 "$T/client$i.out")"
	done
}

fc_threads() { awk '/^Threads:/ { print $2 }' "/proc/$1/status"; }

# The FUSE connection of fd FD of PID, from its fdinfo.
fc_fd_conn() { awk '/^fuse_connection:/ { print $2 }' "/proc/$1/fdinfo/$2" 2>/dev/null; }
