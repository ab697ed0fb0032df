#!/usr/bin/env bash
# zeros.sh WL_ZEROS - restore does not fault in private anonymous memory that the image keeps
# as holes (wl_zeros: 32 MiB written with zeros), which still reads zeros: from a ckptfs mount
# (the store keeps zero pages as holes, SEEK_HOLE reports them), eagerly and with --lazy, and
# from a plain copy made with a hole-aware cp. From a copy that holds the zeros as data (cp --sparse=never) the same
# process has all of them resident again, which shows the measure tells the cases apart.
source "$(dirname "$0")/cr_lib.sh"

wl=$(readlink -f "$1")
store=$CR_TMP/store
mnt=$CR_TMP/mnt
log=$CR_TMP/wl.log
: >"$log"
trap 'cr_rc=$?; [ "$cr_rc" -ne 0 ] && { echo "--- workload log:"; cat "$log"; }; cr_cleanup $cr_rc' EXIT

cr_mount_store "$store" "$mnt"
"$wl" </dev/null >>"$log" 2>&1 &
pid=$!
cr_track "$pid"
cr_wait_line "$log" '^READY$' 30 "$pid" || cr_fail "wl_zeros did not get ready"
cr_dump_kill "$pid" "$mnt/ck"
cp -a "$mnt/ck" "$CR_TMP/sparse" || cr_fail "copying the image out of the mount failed"
cp -a --sparse=never "$mnt/ck" "$CR_TMP/dense" || cr_fail "copying the image out of the mount failed"
# Cold: the pages must come through the daemon.
cr_unmount_store "$mnt"
cr_mount_store "$store" "$mnt" noinit

# restored DIR WANT: restore from DIR; the process checks itself and reports the resident
# pages of its zero region, which WANT (a bash test expression on $n) must accept.
restored() {
	local dir=$1 want=$2 n
	: >"$log"
	cr_restore_detach "$dir" "$pid"
	cr_term_passes "$pid" "$log"
	n=$(sed -n 's/^ZERO_RESIDENT //p' "$log")
	[ -n "$n" ] || cr_fail "restored from '$dir': no ZERO_RESIDENT line"
	cr_log "restored from '$dir': $n of 8192 zero pages resident"
	eval "[ $want ]" || cr_fail "restored from '$dir': $n zero pages resident, want $want"
}

restored "$mnt/ck" '"$n" -eq 0'
# The same with restore --lazy: the page server counts those pages as never saved (a fault
# there gets the zero page) and does not prefetch them. Checked once its fill has ended (no
# mapping registered with the userfaultfd any more). The server learns the holes just after
# the restore's commit; a fault before that (the process touching memory next to the region)
# is served with a 64 KiB window that may reach into it: at most 2 such windows, 32 pages.
restored_lazy() {
	local i
	: >"$log"
	CKPTFS_RESTORE_LAZY=1 cr_restore_detach "$mnt/ck" "$pid"
	for ((i = 0; i < 300; i++)); do
		grep -q '^VmFlags:.* um' "/proc/$pid/smaps" 2>/dev/null || break
		sleep 0.1
	done
	grep -q '^VmFlags:.* um' "/proc/$pid/smaps" 2>/dev/null && cr_fail "the lazy fill did not end in 30 s"
	cr_term_passes "$pid" "$log"
	n=$(sed -n 's/^ZERO_RESIDENT //p' "$log")
	cr_log "restored lazily from the mount: $n of 8192 zero pages resident"
	[ -n "$n" ] && [ "$n" -le 32 ] ||
		cr_fail "restored lazily from the mount: $n zero pages resident, want at most 32"
}
restored_lazy
restored "$CR_TMP/sparse" '"$n" -eq 0'
restored "$CR_TMP/dense" '"$n" -eq 8192'
cr_unmount_store "$mnt"
cr_log "PASS"
