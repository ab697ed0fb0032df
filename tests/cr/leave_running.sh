#!/usr/bin/env bash
# leave_running.sh - `ckptfs dump --leave-running` of python3 printing a counter: the target
# carries on unharmed (not stopped, not traced, its counter keeps going without a gap), and the
# image still restores once the original is killed and reaped: the restored process continues
# from the number it had reached when it was dumped.
dir=$(dirname "$0")
source "$dir/cr_lib.sh"
source "$dir/programs.sh"

out=$CR_TMP/counter.out
err=$CR_TMP/counter.err
img=$CR_TMP/img
: >"$out"
: >"$err"
trap 'cr_rc=$?; echo "--- stderr:"; cat "$err"; echo "--- last lines:"; tail -3 "$out"; cr_cleanup $cr_rc' EXIT

cr_program_start python3 "$out" "$err"
pid=$CR_PROG_PID
cr_wait_lines "$out" 20 "$pid" 30 || cr_fail "python3 (pid $pid) did not print 20 lines"

before=$(cr_count_lines "$out")
cr_ckptfs 120 dump --pid "$pid" --leave-running "$img" || cr_fail "dump --leave-running of $pid failed"
after=$(cr_count_lines "$out")
cr_alive "$pid" || cr_fail "pid $pid is gone after dump --leave-running"
state=$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$pid/stat")
tracer=$(awk '/^TracerPid:/ { print $2 }' "/proc/$pid/status")
[ "$tracer" = 0 ] || cr_fail "pid $pid is still traced by $tracer after the dump"
case $state in
R | S) ;;
*) cr_fail "pid $pid is in state '$state' after the dump (stopped?)" ;;
esac
# A plain directory is not a ckptfs mount: the dump must not leave the seal mark there (a later
# `cp -a` of the image into a mount would copy it and seal the copy half-way).
if getfattr --absolute-names -n user.ckptfs.seal "$img" >/dev/null 2>&1; then
	cr_fail "the dump set user.ckptfs.seal on '$img', which is not on a ckptfs mount"
fi
cr_wait_lines "$out" $((after + 30)) "$pid" 30 || cr_fail "pid $pid stopped counting after the dump"
cr_check_sequence "$out" >/dev/null || cr_fail "the original's counter broke across the dump"

kill -KILL "$pid"
wait "$pid"
killed_at=$(cr_count_lines "$out")
cr_log "original killed after $killed_at lines; dump taken between line $before and $after"
cr_restore_detach "$img" "$pid"
cr_wait_lines "$out" $((killed_at + 30)) "$pid" 30 || cr_fail "restored pid $pid does not count"
kill -TERM "$pid"
cr_wait_gone "$pid" 20 || cr_fail "restored pid $pid ignores SIGTERM"

python3 - "$out" "$killed_at" "$before" "$after" <<'PY' || cr_fail "restored counter does not continue from the dump"
import sys
lines = open(sys.argv[1]).read().split("\n")[:-1]
killed_at, before, after = map(int, sys.argv[2:])
orig, rest = lines[:killed_at], lines[killed_at:]
if orig != [str(n) for n in range(killed_at)]:
    sys.exit("the original's output is not 0..%d" % (killed_at - 1))
start = int(rest[0])
if not before <= start <= after:
    sys.exit(f"restored process started at {start}; the dump was taken between {before} and {after}")
if rest != [str(n) for n in range(start, start + len(rest))]:
    sys.exit("restored output has a gap or a repeat")
print(f"restored process resumed at {start} and printed {len(rest)} lines")
PY
cr_log "PASS"
