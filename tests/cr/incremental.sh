#!/usr/bin/env bash
# incremental.sh - two dumps of the same process into a ckptfs mount. The process (cr_memhog,
# 64 MiB of realistic memory) is dumped with --leave-running, changes 3 % of its pages, and is
# dumped again. `ckptfs df` before and after each dump: the second dump must add only about
# the changed pages to the store - far less than its image size and than the first dump.
# Then the original is killed and the second image, read back through the mount, restores a
# process whose memory checks out page by page.
source "$(dirname "$0")/cr_lib.sh"

memhog=$1
store=$CR_TMP/store
mnt=$CR_TMP/mnt
log=$CR_TMP/memhog.log
: >"$log"
trap 'cr_rc=$?; echo "--- memhog log:"; cat "$log"; echo "--- mount log:"; cat "$CR_TMP/mount.log" 2>/dev/null; cr_cleanup $cr_rc' EXIT

cr_mount_store "$store" "$mnt"
"$memhog" 64 realistic </dev/null >>"$log" 2>&1 &
pid=$!
cr_track "$pid"
cr_wait_line "$log" '^READY$' 60 "$pid" || cr_fail "cr_memhog did not get ready"

s0=$(cr_stored_bytes "$store") || cr_fail "ckptfs df '$store' failed"
cr_ckptfs 120 dump --pid "$pid" --leave-running "$mnt/ck1" || cr_fail "first dump failed"
s1=$(cr_stored_bytes "$store") || cr_fail "ckptfs df failed"
kill -USR1 "$pid"
cr_wait_line "$log" '^CHANGED 1$' 30 "$pid" || cr_fail "cr_memhog did not change its pages"
cr_ckptfs 120 dump --pid "$pid" --leave-running "$mnt/ck2" || cr_fail "second dump failed"
s2=$(cr_stored_bytes "$store") || cr_fail "ckptfs df failed"
img1=$(du -sb --apparent-size "$mnt/ck1" | cut -f1)
img2=$(du -sb --apparent-size "$mnt/ck2" | cut -f1)
"$CKPTFS" df "$store"
d1=$((s1 - s0))
d2=$((s2 - s1))
cr_log "stored: $s0 -> $s1 (+$d1, image $img1 bytes) -> $s2 (+$d2, image $img2 bytes)"
[ "$img2" -ge $((60 << 20)) ] || cr_fail "the second image is only $img2 bytes for 64 MiB of memory"
[ "$d1" -gt 0 ] || cr_fail "the first dump added nothing to the store"
# 3 % of the pages changed; allow for metadata and the pages of libc's data and the stack.
[ "$d2" -le $((img2 / 10)) ] || cr_fail "the second dump added $d2 bytes, more than 10% of its $img2-byte image"
[ "$d2" -le $((d1 / 5)) ] || cr_fail "the second dump added $d2 bytes, more than 20% of the first dump's $d1"

kill -KILL "$pid"
wait "$pid"
# A dump into a ckptfs mount seals its checkpoint: immutable, with a content id.
for ck in ck1 ck2; do
	getfattr --absolute-names --only-values -n user.ckptfs.content_id "$mnt/$ck" >/dev/null 2>&1 ||
		cr_fail "checkpoint '$ck' was not sealed by the dump (no content id)"
	if touch "$mnt/$ck/stray" 2>/dev/null; then
		cr_fail "sealed checkpoint '$ck' accepted a new file"
	fi
done
cr_check_show "$mnt/ck2" "$pid"
cr_restore_detach "$mnt/ck2" "$pid"
kill -TERM "$pid"
cr_wait_gone "$pid" 60 || cr_fail "restored cr_memhog did not finish its check"
st=$(cr_reaped_status "$pid")
[ "$st" = "exit 0" ] || cr_fail "restored cr_memhog ended with '$st'"
[ "$(grep -cx PASS "$log")" -eq 1 ] || cr_fail "restored cr_memhog did not print PASS"
cr_unmount_store "$mnt"
cr_log "PASS: second dump stored $d2 bytes for a $img2-byte image (first: $d1)"
