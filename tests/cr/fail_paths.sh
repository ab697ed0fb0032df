#!/usr/bin/env bash
# fail_paths.sh CASE [ARGS] - dumps that must fail cleanly.
#   nopid             dump of a PID that does not exist: non-zero exit, a message naming it,
#                     no image left behind.
#   socket            python3 holding a socket: dump refuses, naming the fd and its kind;
#                     the process is left running, untraced, and keeps counting.
#   fullstore MEMHOG WL_SLEEP
#                     the store lives on a 16 MiB tmpfs; a small process is checkpointed
#                     first, then cr_memhog with 64 MiB of random memory: that dump fails
#                     (in kill mode, and again with --leave-running, where the write may
#                     fail after the target was released),
#                     the target keeps running (and its memory checks out), the store
#                     mounts again, the older checkpoint reads back byte for byte and still
#                     restores.
#   existing WL_SLEEP a second dump into a directory holding a checkpoint is refused; the
#                     checkpoint and the target are untouched.
#   corrupt WL_SLEEP  every image file, truncated or with a header byte flipped: restore
#                     refuses truncation with a message and leaves no process behind; the
#                     intact image still restores.
dir=$(dirname "$0")
source "$dir/cr_lib.sh"
source "$dir/programs.sh"

case=$1
CR_NAME="fail-$case"
err=$CR_TMP/dump.err

case $case in
nopid)
	# A PID we just had and reaped is free (and pid_max is far from wrapping here).
	/bin/true &
	pid=$!
	wait "$pid"
	[ -e "/proc/$pid" ] && cr_fail "pid $pid is in use again, cannot run this test"
	cr_ckptfs 30 dump --pid "$pid" "$CR_TMP/img" 2>"$err"
	rc=$?
	cat "$err"
	[ "$rc" -ne 0 ] || cr_fail "dump of the missing pid $pid succeeded"
	[ "$rc" -ne 124 ] || cr_fail "dump of the missing pid $pid hung"
	grep -q "$pid" "$err" || cr_fail "the error does not name pid $pid"
	grep -qiE "no such process|not exist|not found|ESRCH" "$err" || cr_fail "the error does not say the process does not exist"
	"$CKPTFS" show "$CR_TMP/img" >/dev/null 2>&1 && cr_fail "a failed dump left a readable image"
	;;
socket)
	out=$CR_TMP/counter.out
	: >"$out"
	/usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
open(sys.argv[1], "w").write(str(s.fileno()))
i = 0
while True:
    print(i, flush=True)
    i += 1
    time.sleep(0.02)
' "$CR_TMP/sockfd" </dev/null >>"$out" 2>"$CR_TMP/py.err" &
	pid=$!
	cr_track "$pid"
	cr_wait_lines "$out" 10 "$pid" 30 || cr_fail "python3 with a socket did not start"
	fd=$(cat "$CR_TMP/sockfd")
	cr_ckptfs 60 dump --pid "$pid" "$CR_TMP/img" 2>"$err"
	rc=$?
	cat "$err"
	[ "$rc" -ne 0 ] || cr_fail "dump of a process with a socket succeeded"
	[ "$rc" -ne 124 ] || cr_fail "dump of a process with a socket hung"
	grep -qi socket "$err" || cr_fail "the refusal does not say 'socket'"
	grep -qE "(^|[^0-9])$fd([^0-9]|$)" "$err" || cr_fail "the refusal does not name fd $fd"
	cr_alive "$pid" || cr_fail "the refused dump killed pid $pid"
	tracer=$(awk '/^TracerPid:/ { print $2 }' "/proc/$pid/status")
	[ "$tracer" = 0 ] || cr_fail "pid $pid is still traced by $tracer"
	n=$(cr_count_lines "$out")
	cr_wait_lines "$out" $((n + 20)) "$pid" 20 || cr_fail "pid $pid stopped counting after the refused dump"
	cr_check_sequence "$out" >/dev/null || cr_fail "pid $pid's counter broke across the refused dump"
	kill -TERM "$pid"
	wait "$pid"
	;;
fullstore)
	memhog=$2
	small=$3
	tmpfs=$CR_TMP/small
	store=$tmpfs/store
	mnt=$CR_TMP/mnt
	log=$CR_TMP/memhog.log
	wlog=$CR_TMP/wl.log
	: >"$log"
	: >"$wlog"
	mkdir -p "$tmpfs" "$CR_TMP/scratch"
	mount -t tmpfs -o size=16m ckptfs-cr-small "$tmpfs" || cr_fail "cannot mount a 16 MiB tmpfs"
	cr_track_mount "$tmpfs"
	trap 'cr_rc=$?; echo "--- workload log:"; cat "$wlog"; echo "--- mount log:"; cat "$CR_TMP/mount.log" 2>/dev/null; cr_cleanup $cr_rc' EXIT
	cr_mount_store "$store" "$mnt"

	# An older checkpoint that fits: a small workload, dumped and so killed.
	"$small" "$CR_TMP/scratch" pause </dev/null >>"$wlog" 2>&1 &
	spid=$!
	cr_track "$spid"
	cr_wait_line "$wlog" '^READY$' 20 "$spid" || cr_fail "small workload did not start"
	cr_dump_kill "$spid" "$mnt/old"
	(cd "$mnt/old" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$CR_TMP/old.sums" ||
		cr_fail "cannot read back the checkpoint 'old'"

	"$memhog" 64 random </dev/null >>"$log" 2>&1 &
	pid=$!
	cr_track "$pid"
	cr_wait_line "$log" '^READY$' 60 "$pid" || cr_fail "cr_memhog did not get ready"
	# 40 s each, well inside the meson timeout, so a hang fails the test with its cleanup run.
	cr_ckptfs 40 dump --pid "$pid" "$mnt/big" 2>"$err"
	rc=$?
	cat "$err"
	[ "$rc" -ne 0 ] || cr_fail "a 64 MiB dump into a 16 MiB store succeeded"
	if [ "$rc" -eq 124 ]; then
		# Keep the evidence: where the daemon's threads wait.
		gdb -p "$CR_MOUNT_PID" -batch -ex 'thread apply all bt' 2>&1 | grep -E '^#|^Thread' >&2
		cr_fail "the dump into a full store hung"
	fi
	grep -qiE "space|ENOSPC|full" "$err" || cr_fail "the error does not say the store is out of space"
	cr_alive "$pid" || cr_fail "the failed dump killed pid $pid"
	tracer=$(awk '/^TracerPid:/ { print $2 }' "/proc/$pid/status")
	[ "$tracer" = 0 ] || cr_fail "pid $pid is still traced by $tracer"
	# With --leave-running the target runs again once its memory is captured, so the write
	# can fail after the release: the partial image goes, the target goes on either way.
	cr_ckptfs 40 dump --pid "$pid" --leave-running "$mnt/big2" 2>"$err"
	rc=$?
	cat "$err"
	[ "$rc" -ne 0 ] || cr_fail "a 64 MiB --leave-running dump into a full store succeeded"
	[ "$rc" -ne 124 ] || cr_fail "the --leave-running dump into a full store hung"
	grep -qiE "space|ENOSPC|full" "$err" || cr_fail "the error does not say the store is out of space"
	[ -e "$mnt/big2/inventory.img" ] && cr_fail "the failed --leave-running dump left an inventory.img"
	[ -e "$mnt/big2/task-$pid/pages.img" ] && cr_fail "the failed --leave-running dump left its pages.img"
	cr_alive "$pid" || cr_fail "the failed --leave-running dump killed pid $pid"
	tracer=$(awk '/^TracerPid:/ { print $2 }' "/proc/$pid/status")
	[ "$tracer" = 0 ] || cr_fail "pid $pid is still traced by $tracer"
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	[ "$rc" -eq 0 ] && grep -qx PASS "$log" || cr_fail "after the failed dumps pid $pid's memory is wrong (exit $rc)"

	cr_unmount_store "$mnt"
	cr_mount_store "$store" "$mnt" noinit
	(cd "$mnt/old" && sha256sum --quiet -c "$CR_TMP/old.sums") ||
		cr_fail "checkpoint 'old' does not read back the same after the failed dump"
	cr_restore_detach "$mnt/old" "$spid"
	kill -TERM "$spid"
	cr_wait_gone "$spid" 30 TERM || cr_fail "restored small workload did not exit"
	st=$(cr_reaped_status "$spid")
	[ "$st" = "exit 0" ] && grep -qx PASS "$wlog" || cr_fail "restored small workload ended with '$st'"
	cr_unmount_store "$mnt"
	;;
existing)
	# A directory that already holds a checkpoint is refused, and the target is untouched.
	wl=$2
	wlog=$CR_TMP/wl.log
	: >"$wlog"
	mkdir -p "$CR_TMP/scratch"
	"$wl" "$CR_TMP/scratch" pause </dev/null >>"$wlog" 2>&1 &
	pid=$!
	cr_track "$pid"
	cr_wait_line "$wlog" '^READY$' 20 "$pid" || cr_fail "workload did not start"
	cr_ckptfs 60 dump --pid "$pid" --leave-running "$CR_TMP/img" || cr_fail "first dump failed"
	sums=$(cd "$CR_TMP/img" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
	cr_ckptfs 60 dump --pid "$pid" --leave-running "$CR_TMP/img" 2>"$err"
	rc=$?
	cat "$err"
	[ "$rc" -ne 0 ] || cr_fail "a second dump into '$CR_TMP/img' succeeded"
	grep -qF "$CR_TMP/img" "$err" || cr_fail "the refusal does not name the directory"
	[ "$(cd "$CR_TMP/img" && find . -type f -print0 | sort -z | xargs -0 sha256sum)" = "$sums" ] ||
		cr_fail "the refused dump changed the existing checkpoint"
	cr_alive "$pid" || cr_fail "the refused dump killed pid $pid"
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	[ "$rc" -eq 0 ] && grep -qx PASS "$wlog" || cr_fail "pid $pid failed its checks after the refused dump"
	;;
corrupt)
	# A truncated or corrupted image is refused with a clear error and restores nothing;
	# an intact copy of the same image still restores.
	wl=$2
	wlog=$CR_TMP/wl.log
	: >"$wlog"
	mkdir -p "$CR_TMP/scratch"
	"$wl" "$CR_TMP/scratch" pause </dev/null >>"$wlog" 2>&1 &
	pid=$!
	cr_track "$pid"
	cr_wait_line "$wlog" '^READY$' 20 "$pid" || cr_fail "workload did not start"
	cr_dump_kill "$pid" "$CR_TMP/img"
	for f in $(cd "$CR_TMP/img" && find . -type f | sort); do
		size=$(stat -c %s "$CR_TMP/img/$f")
		[ "$size" -gt 0 ] || continue
		# Page digests are optional and never read by restore; parent.sh damages them.
		[ "$(basename "$f")" = pages.sums ] && continue
		for damage in truncate flip; do
			rm -rf "$CR_TMP/bad"
			cp -a "$CR_TMP/img" "$CR_TMP/bad"
			if [ "$damage" = truncate ]; then
				truncate -s $((size / 2)) "$CR_TMP/bad/$f"
			else
				# Flip a byte of the first 64: headers, magics, lengths.
				off=$(((size < 64 ? size : 64) / 2))
				printf '\xa5' | dd of="$CR_TMP/bad/$f" bs=1 seek="$off" conv=notrunc status=none
				cmp -s "$CR_TMP/img/$f" "$CR_TMP/bad/$f" && continue # it was 0xa5 already
			fi
			CR_REAPED_BEFORE=$(cr_reaped_count "$pid")
			timeout -k 5 60 "$CKPTFS" restore --detach --pidfile "$CR_TMP/bad.pid" "$CR_TMP/bad" 2>"$err"
			rc=$?
			if [ "$rc" -eq 0 ]; then
				# A flipped byte inside page data is not detectable by a parser; a
				# flip in a header is. Only the truncation must always be refused.
				cr_track "$pid"
				kill -KILL "$pid" 2>/dev/null
				cr_reaped_status "$pid" >/dev/null # reaped: the PID is free again
				[ "$damage" = truncate ] && cr_fail "restore of '$f' truncated to $((size / 2)) bytes succeeded"
				cr_log "note: restore accepted '$f' with a flipped byte at $off"
				continue
			fi
			[ "$rc" -ne 124 ] || cr_fail "restore of a damaged '$f' hung"
			[ -s "$err" ] || cr_fail "restore of a damaged '$f' failed without a message"
			cr_alive "$pid" && cr_fail "restore of a damaged '$f' failed but left pid $pid running"
			cr_log "damaged ($damage) '$f' refused: $(head -1 "$err")"
		done
	done
	cr_restore_detach "$CR_TMP/img" "$pid"
	kill -TERM "$pid"
	cr_wait_gone "$pid" 30 TERM || cr_fail "restored workload did not exit"
	st=$(cr_reaped_status "$pid")
	[ "$st" = "exit 0" ] || cr_fail "restored workload ended with '$st'"
	;;
*)
	cr_fail "unknown case '$case'"
	;;
esac
cr_log "PASS"
