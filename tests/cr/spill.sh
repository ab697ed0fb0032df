#!/usr/bin/env bash
# spill.sh MEMHOG - a dump larger than its capture buffer. With the buffer bounded to 16 MiB
# (CKPTFS_DUMP_BUFFER_MAX_MIB), 64 MiB of memory cannot be read in one go: the capture waits
# for the writers and reuses the buffer as a ring, and dump must say that pages were written
# while frozen. Both modes, into a ckptfs mount: --leave-running (the original goes on and
# still checks out) and the default kill; the second image restores a process whose memory
# checks out page by page, after its pages changed between the dumps.
source "$(dirname "$0")/cr_lib.sh"

memhog=$1
mnt=$CR_TMP/mnt
log=$CR_TMP/memhog.log
: >"$log"
trap 'cr_rc=$?; echo "--- memhog log:"; cat "$log"; cr_cleanup $cr_rc' EXIT

cr_mount_store "$CR_TMP/store" "$mnt"
"$memhog" 64 realistic </dev/null >>"$log" 2>&1 &
pid=$!
cr_track "$pid"
cr_wait_line "$log" '^READY$' 60 "$pid" || cr_fail "cr_memhog did not get ready"

# spilled_dump DIR [ARGS]: the dump must succeed and report the spill.
spilled_dump() {
	local dir=$1
	shift
	CKPTFS_DUMP_BUFFER_MAX_MIB=16 cr_ckptfs 120 dump --pid "$pid" "$@" "$dir" 2>"$CR_TMP/dump.err"
	local rc=$?
	cat "$CR_TMP/dump.err" >&2
	[ "$rc" -eq 0 ] || cr_fail "dump into '$dir' with a 16 MiB buffer failed"
	grep -q 'exceeded the 16 MiB capture buffer' "$CR_TMP/dump.err" ||
		cr_fail "dump of 64 MiB with a 16 MiB buffer did not report the spill"
}

spilled_dump "$mnt/ck1" --leave-running
cr_alive "$pid" || cr_fail "cr_memhog did not survive the --leave-running dump"
kill -USR1 "$pid"
cr_wait_line "$log" '^CHANGED 1$' 30 "$pid" || cr_fail "cr_memhog did not change its pages"
spilled_dump "$mnt/ck2"
wait "$pid"
[ $? -eq 137 ] || cr_fail "the default-mode dump did not kill cr_memhog"

cr_restore_detach "$mnt/ck2" "$pid"
kill -TERM "$pid"
cr_wait_gone "$pid" 60 || cr_fail "restored cr_memhog did not finish its memory check"
st=$(cr_reaped_status "$pid")
[ "$st" = "exit 0" ] || cr_fail "restored cr_memhog ended with '$st': its memory is wrong"
cr_unmount_store "$mnt"
cr_log "PASS: 64 MiB through a 16 MiB ring, both modes; the restored memory checks out"
