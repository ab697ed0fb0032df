#!/usr/bin/env bash
# restore_mount.sh MEMHOG WL_MEMORY - the restorer's page fill from a ckptfs mount (the new
# process reads pages.img itself, O_DIRECT) and from a plain directory (reader threads), and
# what a damaged pack does to them.
#   1. cr_memhog (32 MiB realistic memory) is dumped into a mount; a plain-directory copy of
#      the image is made through the mount.
#   2. A byte in the middle of the store's largest pack is flipped and the store remounted:
#      restore from the mount must fail, naming pages.img and an offset inside it, and leave
#      no process behind. The daemon names the unreadable chunk and its pack.
#   3. The byte is put back: restore from the mount and from the plain copy both give a
#      process whose memory checks out page by page.
#   4. wl_memory (read-only, PROT_NONE, shared, memfd and private file mappings with data) is
#      dumped into the mount and restored from it: it checks all of its regions itself.
source "$(dirname "$0")/cr_lib.sh"
# This test damages pack bytes: no background compression pass may move records meanwhile.
export CKPTFS_DEFER_IDLE_MS=0

memhog=$1
wl_memory=$2
store=$CR_TMP/store
mnt=$CR_TMP/mnt
log=$CR_TMP/memhog.log
err=$CR_TMP/restore.err
: >"$log"
trap 'cr_rc=$?; [ "$cr_rc" -ne 0 ] && { echo "--- memhog log:"; cat "$log"; echo "--- mount log:"; cat "$CR_TMP/mount.log" 2>/dev/null; }; cr_cleanup $cr_rc' EXIT

cr_mount_store "$store" "$mnt"
"$memhog" 32 realistic </dev/null >>"$log" 2>&1 &
pid=$!
cr_track "$pid"
cr_wait_line "$log" '^READY$' 60 "$pid" || cr_fail "cr_memhog did not get ready"
cr_dump_kill "$pid" "$mnt/ck"
cp -a "$mnt/ck" "$CR_TMP/plain" || cr_fail "copying the image out of the mount failed"
pages=$mnt/ck/task-$pid/pages.img
size=$(stat -c %s "$pages")
[ "$size" -ge $((30 << 20)) ] || cr_fail "pages.img is only $size bytes for 32 MiB of memory"
cr_unmount_store "$mnt"

# restore_ok DIR: restore detached, then the process (cr_memhog or wl_memory) checks all of its
# memory itself and must exit 0 with PASS.
restore_ok() {
	local dir=$1 st
	: >"$log"
	cr_restore_detach "$dir" "$pid"
	kill -TERM "$pid"
	cr_wait_gone "$pid" 60 || cr_fail "pid $pid restored from '$dir' did not finish its check"
	st=$(cr_reaped_status "$pid")
	[ "$st" = "exit 0" ] || cr_fail "pid $pid restored from '$dir' ended with '$st'"
	grep -qx PASS "$log" || cr_fail "pid $pid restored from '$dir' did not print PASS"
}

pack=$(find "$store" -name '*.pack' -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)
[ -n "$pack" ] || cr_fail "no pack file in '$store'"
psize=$(stat -c %s "$pack")
off=$((psize / 2))
orig=$(od -An -tx1 -j "$off" -N1 "$pack" | tr -d ' ')
printf "\\x$(printf '%02x' $((0x$orig ^ 0xff)))" | dd of="$pack" bs=1 seek="$off" conv=notrunc status=none
[ "$(od -An -tx1 -j "$off" -N1 "$pack" | tr -d ' ')" != "$orig" ] || cr_fail "cannot damage '$pack'"
cr_log "flipped the byte at $off of '$pack' ($psize bytes)"

# A fresh mount: nothing of pages.img can come from the kernel's page cache.
cr_mount_store "$store" "$mnt" noinit
CR_REAPED_BEFORE=$(cr_reaped_count "$pid")
timeout -k 5 60 "$CKPTFS" restore --detach --pidfile "$CR_TMP/bad.pid" "$mnt/ck" 2>"$err"
rc=$?
cat "$err"
if [ "$rc" -eq 0 ]; then
	cr_track "$pid"
	cr_fail "restore through a damaged pack succeeded"
fi
[ "$rc" -ne 124 ] || cr_fail "restore through a damaged pack hung"
cr_alive "$pid" && { cr_track "$pid"; cr_fail "the failed restore left pid $pid running"; }
grep -q "pages.img' at offset [0-9]" "$err" || cr_fail "the error does not name pages.img and an offset"
at=$(sed -n "s/.*pages.img' at offset \([0-9]*\).*/\1/p" "$err" | head -1)
[ "$at" -lt "$size" ] || cr_fail "the error names offset $at, past the end of the $size-byte pages.img"
grep -qi "input/output error" "$err" || cr_fail "the error does not say it was an I/O error"
# The offset named is the page that fails to read, not just somewhere in a big read.
[ $((at % 4096)) -eq 0 ] || cr_fail "the error names offset $at, not a page boundary"
dd if="$mnt/ck/task-$pid/pages.img" of=/dev/null bs=4096 skip=$((at / 4096)) count=1 \
	iflag=direct status=none 2>/dev/null && cr_fail "the page at offset $at of pages.img reads fine"
if [ "$at" -gt 0 ]; then
	dd if="$mnt/ck/task-$pid/pages.img" of=/dev/null bs=4096 skip=$((at / 4096 - 1)) count=1 \
		iflag=direct status=none || cr_fail "the page before offset $at of pages.img fails too"
fi
grep -q "unreadable" "$CR_TMP/mount.log" || cr_fail "the daemon did not log the unreadable chunk"
grep -q "$(basename "$pack")" "$CR_TMP/mount.log" || cr_fail "the daemon's error does not name '$(basename "$pack")'"
cr_unmount_store "$mnt"

printf "\\x$orig" | dd of="$pack" bs=1 seek="$off" conv=notrunc status=none
cr_mount_store "$store" "$mnt" noinit
restore_ok "$mnt/ck"
cr_unmount_store "$mnt"
restore_ok "$CR_TMP/plain"

# Last (its pages must not be where the pack was damaged above): every kind of mapping.
cr_mount_store "$store" "$mnt" noinit
mkdir -p "$CR_TMP/scratch"
: >"$log"
"$wl_memory" "$CR_TMP/scratch" </dev/null >>"$log" 2>&1 &
pid=$!
cr_track "$pid"
cr_wait_line "$log" '^READY$' 20 "$pid" || cr_fail "wl_memory did not get ready"
cr_dump_kill "$pid" "$mnt/wl"
restore_ok "$mnt/wl"
cr_unmount_store "$mnt"
cr_log "PASS: damaged pack refused at offset $at of pages.img; mount and plain copy restore; wl_memory from the mount"
