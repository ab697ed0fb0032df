#!/usr/bin/env bash
# terminal.sh CR_PTY - the shell-job case. A shell on one pseudo-terminal runs a perl counter
# as its job; the counter is dumped (and killed). `ckptfs restore`, run on a different
# pseudo-terminal, brings it back attached to that one: its fds 0-2 are the restorer's
# terminal, it is in the restorer's session with that terminal as its controlling tty, and
# it goes on printing there from where it stopped (no gap, no repeat across both terminals).
dir=$(dirname "$0")
source "$dir/cr_lib.sh"
source "$dir/programs.sh"
CR_NAME=terminal
pty=$1
out1=$CR_TMP/tty1.out
out2=$CR_TMP/tty2.out
img=$CR_TMP/img
trap 'cr_rc=$?; [ "$cr_rc" -ne 0 ] && { echo "--- terminal 1:"; tail -3 "$out1"; echo "--- terminal 2:"; tail -3 "$out2"; } 2>/dev/null; cr_cleanup $cr_rc' EXIT

# Numbers printed on a terminal, one a line, without the tty's carriage returns.
numbers() { tr -d '\r' <"$1" | grep -E '^[0-9]+$'; }
# wait_numbers FILE N PID: until FILE shows N numbers, while PID runs (15 s at most).
wait_numbers() {
	local i
	for ((i = 0; i < 300; i++)); do
		[ "$(numbers "$1" | wc -l)" -ge "$2" ] && return 0
		cr_alive "$3" || return 1
		sleep 0.05
	done
	return 1
}
tty_of() { readlink "/proc/$1/fd/$2"; }
stat_field() { sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f$(($2 - 2)); }

: >"$out1"
: >"$out2"
counter='$| = 1; print "PID $$\n"; for (my $i = 0;; $i++) { print "$i\n"; select(undef, undef, undef, 0.02) }'
"$pty" "$out1" /bin/bash -c "/usr/bin/perl -e '$counter'; echo \"shell: job ended \$?\"; read -r -t 60 _" &
pty1=$!
cr_track "$pty1"
for ((i = 0; i < 200; i++)); do
	pid=$(tr -d '\r' <"$out1" | sed -n 's/^PID \([0-9]*\)$/\1/p')
	[ -n "$pid" ] && break
	sleep 0.05
done
[ -n "$pid" ] || cr_fail "the counter did not start on the first terminal"
cr_track "$pid"
wait_numbers "$out1" 20 "$pid" || cr_fail "the counter (pid $pid) did not print 20 lines"
tty1=$(tty_of "$pid" 1)
case $tty1 in /dev/pts/*) ;; *) cr_fail "the counter's stdout is '$tty1', not a pty" ;; esac
cr_log "counter pid $pid runs on $tty1 as a job of the shell (sid $(stat_field "$pid" 6))"

cr_ckptfs 120 dump --pid "$pid" "$img" || cr_fail "ckptfs dump --pid $pid failed"
cr_wait_gone "$pid" 20 || cr_fail "the dump did not end pid $pid"
# The first shell stays (reading its terminal), so the second terminal is another pty.
for ((i = 0; i < 100; i++)); do
	tr -d '\r' <"$out1" | grep -q '^shell: job ended' && break
	sleep 0.05
done
tr -d '\r' <"$out1" | grep -q '^shell: job ended 137$' || cr_fail "the shell did not see its job killed"
at_dump=$(numbers "$out1" | wc -l)
cr_log "$at_dump lines on the first terminal at the dump"

"$pty" "$out2" "$CKPTFS" restore "$img" &
pty2=$!
cr_track "$pty2"
wait_numbers "$out2" 1 "$pty2" || cr_fail "the restored counter printed nothing on the second terminal"
cr_alive "$pid" || cr_fail "the restored counter is not running as pid $pid"
restorer=$(sed -n 's/^PPid:\s*//p' "/proc/$pid/status")
tty2=$(tty_of "$restorer" 0)
case $tty2 in /dev/pts/*) ;; *) cr_fail "the restorer's terminal is '$tty2', not a pty" ;; esac
[ "$tty2" != "$tty1" ] || cr_fail "both terminals are '$tty1': the test needs two"
for fd in 0 1 2; do
	got=$(tty_of "$pid" "$fd")
	[ "$got" = "$tty2" ] || cr_fail "restored fd $fd is '$got', not the restorer's terminal '$tty2'"
done
[ "$(stat_field "$pid" 6)" = "$(stat_field "$restorer" 6)" ] ||
	cr_fail "the restored counter is not in the restorer's session"
[ "$(stat_field "$pid" 7)" = "$(stat_field "$restorer" 7)" ] && [ "$(stat_field "$pid" 7)" != 0 ] ||
	cr_fail "the restored counter's controlling terminal is not the restorer's"
wait_numbers "$out2" 30 "$pid" || cr_fail "the restored counter did not print 30 lines on $tty2"
kill -TERM "$pid"
wait "$pty2"
rc=$?
[ "$rc" -eq 143 ] || cr_fail "ckptfs restore exited $rc, not 143 (the counter's SIGTERM)"
{ numbers "$out1"; numbers "$out2"; } >"$CR_TMP/all"
total=$(cr_check_sequence "$CR_TMP/all") || cr_fail "the counter has a gap or a repeat across the terminals"
cr_log "PASS: $total lines, $at_dump on $tty1 before the dump, the rest on $tty2 after the restore"
kill "$pty1" 2>/dev/null
wait "$pty1" 2>/dev/null
exit 0
