#!/usr/bin/env bash
# lazy.sh CASE PROG - page-lazy restore (`ckptfs restore --lazy`, cr/restore_lazy.c).
#   dir-detach, dir-wait, mount-detach, mount-wait (PROG = wl_lazy): the workload is dumped into
#     a plain directory or a ckptfs mount (remounted, so pages come through the daemon) and
#     restored with --lazy, detached or waiting. Right after the restore it mremaps, discards,
#     unmaps and forks while the page server still fills it (it reports how many pages of
#     those mappings were present: some must have been missing, or the events were not
#     exercised); the page server must exit (0 when it is ours to reap) once everything is in,
#     and the process must pass its checks of all its memory afterwards.
#   server-fail (PROG = wl_lazy): the page server fails while the process runs (a test hook
#     makes the handling of its fork fail as if memory ran out): the process and the child
#     it just forked must be killed before either runs on with missing pages (no FAIL line
#     from them, ever), and the server must exit 1 saying it failed.
#   abort (PROG = cr_memhog): the restore fails after the page server started: neither the
#     process nor the server may be left.
#   corrupt (PROG = cr_memhog): a byte of the store's largest pack is flipped; the lazy restore
#     must end with the process killed (not running on wrong memory, not hung), an error naming
#     pages.img, an offset inside it that fails to read and the address, and the server gone
#     (exit 1). With the byte put back, a lazy restore from the mount checks out page by page.
source "$(dirname "$0")/cr_lib.sh"
# The corrupt case damages pack bytes: no background compression pass may move records.
export CKPTFS_DEFER_IDLE_MS=0

case_=$1
prog=$(readlink -f "$2")
CR_NAME=lazy-$case_
store=$CR_TMP/store
mnt=$CR_TMP/mnt
log=$CR_TMP/wl.log
err=$CR_TMP/restore.err
spf=$CR_TMP/server.pid
: >"$log"
trap 'cr_rc=$?; [ "$cr_rc" -ne 0 ] && { echo "--- workload log:"; cat "$log"; echo "--- restore stderr:"; cat "$err" 2>/dev/null; echo "--- mount log:"; cat "$CR_TMP/mount.log" 2>/dev/null; }; cr_cleanup $cr_rc' EXIT

# start_prog ARGS...: run PROG in the background until READY; sets pid.
start_prog() {
	mkdir -p "$CR_TMP/scratch"
	(cd "$CR_TMP/scratch" && exec "$prog" "$@" </dev/null >>"$log" 2>&1) &
	pid=$!
	cr_track "$pid"
	cr_wait_line "$log" '^READY$' 60 "$pid" || cr_fail "$(basename "$prog") did not get ready"
	sleep 0.2
}

# server_exits TIMEOUT: the page server must be gone within TIMEOUT seconds.
server_exits() {
	cr_wait_gone "$spid" "$1" || cr_fail "the page server $spid did not exit within $1 s"
}

# server_killed WHY: the page server exits 1 and the process ends by SIGKILL; WHY is the
# cause, for the messages.
server_killed() {
	local st
	server_exits 30
	st=$(CR_REAPED_BEFORE=0 cr_reaped_status "$spid")
	[ "$st" = "exit 1" ] || cr_fail "the page server $spid ended with '$st', not 'exit 1' ($1)"
	cr_wait_gone "$pid" 30 || cr_fail "pid $pid is still running ($1)"
	st=$(cr_reaped_status "$pid")
	[ "$st" = "signal 9" ] || cr_fail "pid $pid ended with '$st', not SIGKILL ($1)"
}

restore_lazy_detach() { # DIR
	rm -f "$spf"
	CR_REAPED_BEFORE=$(cr_reaped_count "$pid")
	cr_log "ckptfs restore --lazy --detach $1"
	timeout -k 5 120 "$CKPTFS" restore --lazy --detach --pidfile "$CR_TMP/restore.pid" \
		--server-pidfile "$spf" "$1" 2>"$err"
	local rc=$?
	cat "$err" >&2
	cr_track "$pid"
	[ "$rc" -eq 0 ] || cr_fail "ckptfs restore --lazy --detach '$1' exited $rc"
	[ "$(tr -d '[:space:]' <"$CR_TMP/restore.pid")" = "$pid" ] || cr_fail "restored under another pid"
	cr_server_pid "$spf"
}

# The process checks all of its memory on SIGTERM and must pass.
check_passes() { # MODE
	local st
	kill -TERM "$pid"
	cr_wait_gone "$pid" 60 TERM || cr_fail "restored process $pid did not finish its checks"
	if [ "$1" = wait ]; then
		wait "$rpid"
		st=$?
		[ "$st" -eq 0 ] || cr_fail "ckptfs restore --lazy (waiting) exited $st"
	else
		st=$(cr_reaped_status "$pid")
		[ "$st" = "exit 0" ] || cr_fail "restored process $pid ended with '$st'"
	fi
	grep -q '^FAIL' "$log" && cr_fail "the restored process reported failures"
	[ "$(grep -cx PASS "$log")" -eq 1 ] || cr_fail "the restored process did not print PASS once"
}

case $case_ in
dir-* | mount-*)
	mode=${case_#*-}
	img=$CR_TMP/img
	if [ "${case_%%-*}" = mount ]; then
		cr_mount_store "$store" "$mnt"
		img=$mnt/ck
	fi
	start_prog "$CR_TMP/scratch"
	cr_dump_kill "$pid" "$img"
	if [ "${case_%%-*}" = mount ]; then
		# A fresh mount: the pages come through the daemon, not the page cache.
		cr_unmount_store "$mnt"
		cr_mount_store "$store" "$mnt" noinit
	fi
	if [ "$mode" = detach ]; then
		restore_lazy_detach "$img"
	else
		rm -f "$spf"
		cr_log "ckptfs restore --lazy $img (waiting, in the background)"
		timeout -k 5 120 "$CKPTFS" restore --lazy --server-pidfile "$spf" "$img" 2>"$err" &
		rpid=$!
		cr_track "$rpid"
		cr_server_pid "$spf"
		cr_track "$pid"
	fi
	cr_wait_line "$log" '^EARLY done$' 60 "$pid" || cr_fail "the restored process did not finish its early steps"
	line=$(grep '^EARLY resident' "$log")
	cr_log "$line"
	read -r a b d <<<"$(echo "$line" | sed -n 's|.*A=\([0-9]*\)/[0-9]* B=\([0-9]*\)/.* D=\([0-9]*\)/.*|\1 \2 \3|p')"
	[ -n "$d" ] && [ "$a" -lt 4096 ] && [ "$b" -lt 4096 ] && [ "$d" -lt 4096 ] ||
		cr_fail "mappings A, B and D were already filled when the process ran: the test did not race the page server ($line)"
	server_exits 60
	if [ "$mode" = detach ]; then
		st=$(CR_REAPED_BEFORE=0 cr_reaped_status "$spid")
		[ "$st" = "exit 0" ] || cr_fail "the page server $spid ended with '$st'"
	fi
	cr_alive "$pid" || cr_fail "restored process $pid died"
	check_passes "$mode"
	grep -q . "$err" && cr_fail "the lazy restore printed errors"
	[ "${case_%%-*}" = mount ] && cr_unmount_store "$mnt"
	cr_log "PASS: lazy restore ($case_), server exited after the prefetch"
	;;
corrupt)
	cr_mount_store "$store" "$mnt"
	start_prog 32 realistic
	cr_dump_kill "$pid" "$mnt/ck"
	size=$(stat -c %s "$mnt/ck/task-$pid/pages.img")
	cr_unmount_store "$mnt"
	pack=$(find "$store" -name '*.pack' -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)
	[ -n "$pack" ] || cr_fail "no pack file in '$store'"
	off=$(($(stat -c %s "$pack") / 2))
	orig=$(od -An -tx1 -j "$off" -N1 "$pack" | tr -d ' ')
	printf "\\x$(printf '%02x' $((0x$orig ^ 0xff)))" | dd of="$pack" bs=1 seek="$off" conv=notrunc status=none
	cr_log "flipped the byte at $off of '$pack'"
	cr_mount_store "$store" "$mnt" noinit

	rm -f "$spf"
	: >"$log"
	CR_REAPED_BEFORE=$(cr_reaped_count "$pid")
	timeout -k 5 60 "$CKPTFS" restore --lazy --detach --pidfile "$CR_TMP/restore.pid" \
		--server-pidfile "$spf" "$mnt/ck" 2>"$err"
	rc=$?
	cr_track "$pid"
	[ "$rc" -ne 124 ] || cr_fail "the lazy restore through a damaged pack hung"
	if [ "$rc" -eq 0 ]; then
		# The process ran: the page server must kill it and leave.
		cr_server_pid "$spf"
		server_killed "restored from a damaged pack"
	else
		# The damaged page was needed during the restore itself: nothing may be left.
		cr_log "the restore itself failed ($rc)"
		[ -s "$spf" ] && { cr_server_pid "$spf"; server_exits 30; }
		cr_alive "$pid" && cr_fail "the failed lazy restore left pid $pid running"
	fi
	cat "$err" >&2
	grep -q "^PASS" "$log" && cr_fail "the process restored from a damaged pack passed its checks"
	at=$(sed -n "s/.*pages.img' at offset \([0-9]*\).*/\1/p" "$err" | head -1)
	[ -n "$at" ] || cr_fail "the error does not name pages.img and an offset"
	[ "$at" -lt "$size" ] && [ $((at % 4096)) -eq 0 ] || cr_fail "offset $at is not a page of the $size-byte pages.img"
	grep -q "address 0x[0-9a-f]*" "$err" || cr_fail "the error does not name the address"
	dd if="$mnt/ck/task-$pid/pages.img" of=/dev/null bs=4096 skip=$((at / 4096)) count=1 \
		iflag=direct status=none 2>/dev/null && cr_fail "the page at offset $at of pages.img reads fine"
	cr_unmount_store "$mnt"

	printf "\\x$orig" | dd of="$pack" bs=1 seek="$off" conv=notrunc status=none
	cr_mount_store "$store" "$mnt" noinit
	: >"$log"
	restore_lazy_detach "$mnt/ck"
	server_exits 60
	st=$(CR_REAPED_BEFORE=0 cr_reaped_status "$spid")
	[ "$st" = "exit 0" ] || cr_fail "the page server $spid ended with '$st'"
	check_passes detach
	cr_unmount_store "$mnt"
	cr_log "PASS: damaged pack: process killed, offset $at named, server gone; intact pack restores lazily"
	;;
server-fail)
	start_prog "$CR_TMP/scratch"
	cr_dump_kill "$pid" "$CR_TMP/img"
	CKPTFS_LAZY_FAIL_FORK=1 restore_lazy_detach "$CR_TMP/img"
	server_killed "its page server failed"
	# The forked child: killed too, or its uffd closes with the server and it checks zeros.
	for ((i = 0; i < 50; i++)); do
		left=$(ps --ppid "$PPID" -o pid=,comm= | grep -w wl_lazy)
		[ -z "$left" ] && break
		sleep 0.1
	done
	[ -z "$left" ] || cr_fail "a process forked by pid $pid outlived the failed page server: $left"
	cat "$err" >&2
	grep -q '^FAIL' "$log" && cr_fail "the process or its child ran on after the page server failed: $(grep -m3 '^FAIL' "$log")"
	grep -q '^EARLY done' "$log" && cr_fail "pid $pid got past its fork after the page server failed"
	grep -q "the page server failed: Cannot allocate memory; killing it" "$err" ||
		cr_fail "the page server did not say that it failed"
	cr_log "PASS: the failed page server killed the process and its child, neither ran on"
	;;
dump-during-fill)
	# A dump of a process whose lazy restore is still filling its memory: the missing pages
	# are absent from pagemap, so a dump now would lose them. With no time to wait it must
	# refuse (nothing written, the process unharmed); by default it waits for the page server
	# and the image is complete (as many pages as the first one, and it restores and checks).
	start_prog 64 realistic
	cr_dump_kill "$pid" "$CR_TMP/img"
	pages1=$("$CKPTFS" show --json "$CR_TMP/img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tasks"][0]["pages"])')
	: >"$log"
	CKPTFS_LAZY_HOLD_MS=3000 restore_lazy_detach "$CR_TMP/img"
	# Its background readers use idle CPU only (policy, field 41 of stat, 5 = SCHED_IDLE);
	# the thread that serves faults does not.
	pols=$(for f in /proc/"$spid"/task/*/stat; do st=$(<"$f"); st=${st##*) }; read -ra st <<<"$st"; echo "${st[38]}"; done | sort | tr '\n' ' ')
	[ "$pols" = "0 5 5 " ] || cr_fail "page server threads' scheduling policies are '$pols', not '0 5 5 ' (one normal, two SCHED_IDLE readers)"
	CKPTFS_DUMP_LAZY_WAIT_S=0 "$CKPTFS" dump --pid "$pid" --leave-running "$CR_TMP/refused" \
		2>"$CR_TMP/dump.err" && cr_fail "a dump during the fill was not refused"
	cat "$CR_TMP/dump.err" >&2
	grep -q "pid $pid: mapping 0x[0-9a-f]* is still registered with a userfaultfd" "$CR_TMP/dump.err" ||
		cr_fail "the refusal does not name the pid, the mapping and the userfaultfd"
	[ -e "$CR_TMP/refused" ] && cr_fail "the refused dump left '$CR_TMP/refused'"
	cr_alive "$pid" || cr_fail "pid $pid did not survive the refused dump"
	cr_alive "$spid" || cr_fail "the page server had finished already: the test did not test the wait"
	"$CKPTFS" dump --pid "$pid" --leave-running "$CR_TMP/img2" 2>"$CR_TMP/dump.err" ||
		{ cat "$CR_TMP/dump.err"; cr_fail "the dump during the fill failed"; }
	cat "$CR_TMP/dump.err" >&2
	grep -q "a lazy restore is still filling its memory" "$CR_TMP/dump.err" ||
		cr_fail "the dump did not say it waited for the fill"
	server_exits 60
	pages2=$("$CKPTFS" show --json "$CR_TMP/img2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tasks"][0]["pages"])')
	[ "$pages2" -ge "$pages1" ] || cr_fail "the dump during the fill saved $pages2 pages, the image it was restored from $pages1"
	check_passes detach
	: >"$log"
	CR_REAPED_BEFORE=$(cr_reaped_count "$pid")
	"$CKPTFS" restore --detach --pidfile "$CR_TMP/restore.pid" "$CR_TMP/img2" ||
		cr_fail "the image dumped during the fill does not restore"
	cr_track "$pid"
	check_passes detach
	cr_log "PASS: a dump during a lazy fill refused without time to wait, else waited: $pages2 pages (first image $pages1), restores and checks"
	;;
abort)
	# The restore fails after the page server started (its pid file cannot be written):
	# the process and the server must both be gone, the server reaped by the restorer.
	start_prog 32 realistic
	cr_dump_kill "$pid" "$CR_TMP/img"
	timeout -k 5 60 "$CKPTFS" restore --lazy --detach --pidfile "$CR_TMP/no/such/dir/pid" \
		"$CR_TMP/img" 2>"$err"
	rc=$?
	cat "$err" >&2
	[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || cr_fail "the restore with an unwritable pid file exited $rc"
	grep -q "no/such/dir/pid" "$err" || cr_fail "the error does not name the pid file"
	cr_alive "$pid" && { cr_track "$pid"; cr_fail "the failed lazy restore left pid $pid running"; }
	# Orphans would have come to cr_reaper, our parent.
	left=$(ps --ppid "$PPID" -o pid=,comm= | grep -w ckptfs-pages)
	[ -z "$left" ] || cr_fail "a page server was left behind: $left"
	cr_log "PASS: failed lazy restore left neither the process nor its page server"
	;;
*)
	cr_fail "unknown case '$case_'"
	;;
esac
