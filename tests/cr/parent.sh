#!/usr/bin/env bash
# parent.sh MODE MEMHOG - incremental dumps (`ckptfs dump --parent`). cr_memhog (64 MiB of
# realistic memory) is dumped, changes 3 % of its pages, and is dumped again against the first
# image. Every child image is checked twice: page by page against a plain dump of the same
# (idle) process taken right after it, and by restoring it (after its parent is deleted) into
# a process that changes its pages once more and then verifies all of its memory itself.
#
#   mount    into a ckptfs mount: the second dump writes only about the changed pages (at most
#            20 % of them by its own count, the store grows by at most 10 % of the image); a third dump chains on the second; the parent is removed
#            (`ckptfs rm` + `gc` + `fsck`) and the child still restores
#   tmpfs    into a plain tmpfs directory (also through a 16 MiB capture ring); the parent is
#            deleted (rm -rf) before the restore
#   corrupt  the parent's pages.sums with flipped bytes, cut short, emptied; its pages.img cut
#            short; its inventory.img gone: every dump exits 0, says the parent was not used
#            and gives a correct image
#   other    the parent is an image of another process (a different pid and page count)
#   crossfs  the parent is on tmpfs, the child in a mount: copy_file_range fails (EXDEV), the
#            pages are written instead and the dump says so
#   auto     --auto-parent in a mount: the first dump finds no parent and says so, the next ones
#            pick the newest earlier image of the pid (not an image of another process, even a
#            newer one); --parent with --auto-parent is a usage error
source "$(dirname "$0")/cr_lib.sh"

mode=$1
memhog=$2
log=$CR_TMP/memhog.log
shm=$(mktemp -d /dev/shm/ckptfs-parent.XXXXXX) || exit 1
CR_EXIT_HOOK='rm -rf "$shm"'
: >"$log"
trap 'cr_rc=$?; echo "--- memhog log:"; cat "$log"; echo "--- mount log:"; cat "$CR_TMP/mount.log" 2>/dev/null; cr_cleanup $cr_rc' EXIT

# dump DIR [ARGS]: dump the memhog with --leave-running; its messages in $CR_TMP/dump.err.
dump() {
	local dir=$1
	shift
	cr_ckptfs 120 dump --pid "$pid" --leave-running "$@" "$dir" 2>"$CR_TMP/dump.err"
	local rc=$?
	cat "$CR_TMP/dump.err" >&2
	[ "$rc" -eq 0 ] || cr_fail "dump into '$dir' $* exited $rc"
}

# Pages written and copied, from the report of the last dump with --parent ($CR_TMP/inc.err).
written() { sed -n 's/.*pages: \([0-9]*\) written.*/\1/p' "$CR_TMP/inc.err"; }
copied() { sed -n 's/.*written, \([0-9]*\) copied from parent.*/\1/p' "$CR_TMP/inc.err"; }

# same_pages A B: the pages.img of images A and B differ in at most a few pages (the memhog
# only sleeps between the two dumps; its stack and libc data may move a little).
same_pages() {
	python3 - "$1/task-$pid/pages.img" "$2/task-$pid/pages.img" <<'PY' || cr_fail "images '$1' and '$2' differ"
import sys
a, b = (open(p, "rb") for p in sys.argv[1:3])
n = diff = 0
while True:
    x, y = a.read(4096), b.read(4096)
    if not x and not y:
        break
    if len(x) != len(y):
        sys.exit(f"{sys.argv[1]} and {sys.argv[2]} have different sizes")
    diff += x != y
    n += 1
print(f"{n} pages, {diff} differ", file=sys.stderr)
sys.exit(0 if n > 16000 and diff <= 8 else 1)
PY
}

start_memhog() {
	"$memhog" 64 realistic </dev/null >>"$log" 2>&1 &
	pid=$!
	cr_track "$pid"
	cr_wait_line "$log" '^READY$' 60 "$pid" || cr_fail "cr_memhog did not get ready"
}

change_pages() { # GENERATION
	kill -USR1 "$pid"
	cr_wait_line "$log" "^CHANGED $1\$" 30 "$pid" || cr_fail "cr_memhog did not change its pages"
}

# restore_and_check DIR GEN: restore DIR, change pages once more (generation GEN), and let the
# process verify every page.
restore_and_check() {
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	cr_restore_detach "$1" "$pid"
	change_pages "$2"
	kill -TERM "$pid"
	cr_wait_gone "$pid" 60 || cr_fail "restored cr_memhog did not finish its memory check"
	local st
	st=$(cr_reaped_status "$pid")
	[ "$st" = "exit 0" ] || cr_fail "cr_memhog restored from '$1' ended with '$st'"
	[ "$(grep -cx PASS "$log")" -eq 1 ] || cr_fail "restored cr_memhog did not print PASS"
}

# An incremental dump into DIR against PARENT, then a plain reference dump of the same state.
incremental() { # DIR PARENT
	dump "$1" --parent "$2"
	cp "$CR_TMP/dump.err" "$CR_TMP/inc.err"
	dump "$1.ref"
	same_pages "$1" "$1.ref"
}

case $mode in
auto)
	store=$CR_TMP/store
	mnt=$CR_TMP/mnt
	cr_mount_store "$store" "$mnt"
	start_memhog
	"$CKPTFS" dump --pid "$pid" --leave-running --parent "$mnt/x" --auto-parent "$mnt/bad" \
		2>/dev/null
	[ $? -eq 2 ] || cr_fail "--parent with --auto-parent was not a usage error"
	[ -e "$mnt/bad" ] && cr_fail "a refused dump created its directory"
	dump "$mnt/ck1" --auto-parent
	grep -q "no parent, writing every page: no earlier image of pid $pid" "$CR_TMP/dump.err" ||
		cr_fail "the first --auto-parent dump did not say that it found no parent"
	change_pages 1
	# A newer image of another process next to ours must not be taken.
	"$memhog" 4 realistic </dev/null >"$CR_TMP/other.log" 2>&1 &
	other=$!
	cr_track "$other"
	cr_wait_line "$CR_TMP/other.log" '^READY$' 60 "$other" || cr_fail "second cr_memhog did not get ready"
	cr_ckptfs 60 dump --pid "$other" "$mnt/other" || cr_fail "dump of the other process failed"
	dump "$mnt/ck2" --auto-parent
	cp "$CR_TMP/dump.err" "$CR_TMP/inc.err"
	grep -q "copied from parent '$mnt/ck1'" "$CR_TMP/inc.err" || cr_fail "ck2 did not pick ck1"
	[ "$(copied)" -gt $((4 * $(written))) ] ||
		cr_fail "ck2 copied $(copied) pages and wrote $(written): the parent was hardly used"
	change_pages 2
	dump "$mnt/ck3" --auto-parent
	cp "$CR_TMP/dump.err" "$CR_TMP/inc.err"
	grep -q "copied from parent '$mnt/ck2'" "$CR_TMP/inc.err" || cr_fail "ck3 did not pick ck2, the newest"
	restore_and_check "$mnt/ck3" 3
	;;
mount)
	store=$CR_TMP/store
	mnt=$CR_TMP/mnt
	cr_mount_store "$store" "$mnt"
	start_memhog
	dump "$mnt/ck1"
	grep -q 'pages:' "$CR_TMP/dump.err" && cr_fail "a dump without --parent reported copied pages"
	change_pages 1
	s1=$(cr_stored_bytes "$store") || cr_fail "ckptfs df failed"
	dump "$mnt/ck2" --parent "$mnt/ck1"
	cp "$CR_TMP/dump.err" "$CR_TMP/inc.err"
	s2=$(cr_stored_bytes "$store") || cr_fail "ckptfs df failed"
	w=$(written) c=$(copied)
	[ -n "$w" ] && [ -n "$c" ] || cr_fail "dump --parent did not report written and copied pages"
	total=$((w + c))
	img2=$(stat -c %s "$mnt/ck2/task-$pid/pages.img")
	cr_log "second dump: $w pages written, $c copied ($total in all); store grew by $((s2 - s1)) bytes"
	[ "$total" -eq $((img2 / 4096)) ] || cr_fail "written + copied = $total, pages.img holds $((img2 / 4096)) pages"
	# 3 % of the 16384 pages changed (at random), plus libc data and the stack; the dump also
	# rewrites up to 16 unchanged pages between two changed ones instead of splitting a
	# write (cr/dump_mm.c), which makes about 12 % in all here.
	[ "$w" -le $((total / 5)) ] || cr_fail "$w of $total pages written: the parent was not used"
	[ "$w" -ge $((total / 100)) ] || cr_fail "only $w of $total pages written, but 3 % changed"
	[ $((s2 - s1)) -le $((img2 / 10)) ] || cr_fail "the store grew by $((s2 - s1)) bytes for a $img2-byte image"
	dump "$mnt/ck2.ref"
	same_pages "$mnt/ck2" "$mnt/ck2.ref"
	"$CKPTFS" show "$mnt/ck2" >"$CR_TMP/show.out" || cr_fail "ckptfs show '$mnt/ck2' failed"
	grep -q 'page digests: pages.sums' "$CR_TMP/show.out" || cr_fail "ckptfs show does not report the page digests"
	grep -qF "dumped against parent $mnt/ck1" "$CR_TMP/show.out" || cr_fail "ckptfs show does not name the parent"
	"$CKPTFS" show --json "$mnt/ck2" | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if d["parent"] == sys.argv[1] and d["tasks"][0]["page_digests"] == "ok" else 1)' "$mnt/ck1" ||
		cr_fail "ckptfs show --json lacks the parent or the page digests"
	# A chain: the child's own digests serve the next dump.
	change_pages 2
	incremental "$mnt/ck3" "$mnt/ck2"
	[ "$(written)" -le $((total / 5)) ] || cr_fail "$(written) pages written against a parent made with --parent"
	cr_ckptfs 60 rm "$store" ck1 ck2 ck2.ref ck3.ref || cr_fail "ckptfs rm of the parents failed"
	cr_ckptfs 120 gc "$store" || cr_fail "ckptfs gc failed"
	cr_ckptfs 300 fsck "$store" || cr_fail "ckptfs fsck failed after removing the parents"
	"$CKPTFS" ls "$store" >"$CR_TMP/ls.out" || cr_fail "ckptfs ls failed"
	cat "$CR_TMP/ls.out" >&2
	grep -qE '^ck(1|2|2\.ref|3\.ref)\b' "$CR_TMP/ls.out" && cr_fail "removed parents are still listed"
	grep -qE '^ck3\b' "$CR_TMP/ls.out" || cr_fail "the child ck3 is not listed"
	restore_and_check "$mnt/ck3" 3
	cr_unmount_store "$mnt"
	;;
tmpfs)
	start_memhog
	dump "$shm/ck1"
	change_pages 1
	incremental "$shm/ck2" "$shm/ck1"
	[ "$(written)" -le 3300 ] || cr_fail "$(written) pages written to tmpfs against the parent"
	# Through a 16 MiB capture ring (the writers overlap the capture) the result is the same.
	CKPTFS_DUMP_BUFFER_MAX_MIB=16 dump "$shm/ck2ring" --parent "$shm/ck1"
	grep -q 'exceeded the 16 MiB capture buffer' "$CR_TMP/dump.err" || cr_fail "the dump did not use the ring"
	same_pages "$shm/ck2ring" "$shm/ck2.ref"
	rm -rf "$shm/ck1"
	restore_and_check "$shm/ck2" 2
	;;
corrupt)
	start_memhog
	dump "$shm/good"
	change_pages 1
	sums=task-$pid/pages.sums
	n=0
	for damage in flip-digest flip-header cut-sums empty-sums cut-pages no-inventory; do
		n=$((n + 1))
		p=$shm/bad-$damage
		cp -a "$shm/good" "$p"
		case $damage in
		flip-digest) printf '\xff\x00\xff' | dd of="$p/$sums" bs=1 seek=5000 conv=notrunc status=none ;;
		flip-header) printf '\x07' | dd of="$p/$sums" bs=1 seek=25 conv=notrunc status=none ;;
		cut-sums) truncate -s -16 "$p/$sums" ;;
		empty-sums) : >"$p/$sums" ;;
		cut-pages) truncate -s -8192 "$p/task-$pid/pages.img" ;;
		no-inventory) rm "$p/inventory.img" ;;
		esac
		incremental "$shm/ck$n" "$p"
		grep -q 'parent not used' "$CR_TMP/inc.err" || cr_fail "damage '$damage' did not make the dump ignore the parent"
		[ "$(copied)" -eq 0 ] || cr_fail "damage '$damage': $(copied) pages still copied from the parent"
	done
	restore_and_check "$shm/ck$n" 2
	;;
other)
	"$memhog" 8 random </dev/null >"$CR_TMP/other.log" 2>&1 &
	other=$!
	cr_track "$other"
	cr_wait_line "$CR_TMP/other.log" '^READY$' 60 "$other" || cr_fail "the other cr_memhog did not get ready"
	start_memhog
	pid_save=$pid
	pid=$other
	dump "$shm/other"
	pid=$pid_save
	change_pages 1
	incremental "$shm/ck" "$shm/other"
	grep -q "has no task $pid; matching pages against its task $other" "$CR_TMP/inc.err" ||
		cr_fail "a parent of another process was not reported"
	cr_log "against another process's image: $(written) pages written, $(copied) copied"
	kill -KILL "$other"
	rm -rf "$shm/other"
	restore_and_check "$shm/ck" 2
	;;
crossfs)
	mnt=$CR_TMP/mnt
	cr_mount_store "$CR_TMP/store" "$mnt"
	start_memhog
	dump "$shm/ck1"
	change_pages 1
	incremental "$mnt/ck2" "$shm/ck1"
	grep -q 'copying pages from the parent stopped' "$CR_TMP/inc.err" ||
		cr_fail "a failed copy_file_range across filesystems was not reported"
	rm -rf "$shm/ck1"
	restore_and_check "$mnt/ck2" 2
	cr_unmount_store "$mnt"
	;;
*)
	cr_fail "unknown mode '$mode'"
	;;
esac
cr_log "PASS: $mode"
