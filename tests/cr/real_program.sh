#!/usr/bin/env bash
# real_program.sh NAME - an unmodified Debian program (python3, perl, bash, tclsh) printing a
# counter is dumped (and so killed), reaped and restored with the same PID; after restore the
# counter must continue exactly where it stopped: 0, 1, 2, ... with no repeat and no gap.
dir=$(dirname "$0")
source "$dir/cr_lib.sh"
source "$dir/programs.sh"

name=$1
CR_NAME="real-$name"
out=$CR_TMP/counter.out
err=$CR_TMP/counter.err
img=$CR_TMP/img
: >"$out"
: >"$err"
trap 'cr_rc=$?; echo "--- stderr of $name:"; cat "$err"; echo "--- last lines:"; tail -3 "$out"; cr_cleanup $cr_rc' EXIT

cr_program_start "$name" "$out" "$err"
pid=$CR_PROG_PID
cr_log "started $name as pid $pid"
cr_wait_lines "$out" 20 "$pid" 30 || cr_fail "$name (pid $pid) did not print 20 lines"
exe=$(readlink "/proc/$pid/exe")

cr_dump_kill "$pid" "$img"
at_dump=$(cr_check_sequence "$out") || cr_fail "counter broken before the restore"
cr_log "$at_dump lines at the dump"
cr_check_show "$img" "$pid"
cr_restore_detach "$img" "$pid"
[ "$(readlink "/proc/$pid/exe")" = "$exe" ] || cr_fail "restored pid $pid is not $exe"
cr_wait_lines "$out" $((at_dump + 30)) "$pid" 30 ||
	cr_fail "restored $name did not print 30 more lines (has $(cr_count_lines "$out"), had $at_dump)"
kill -TERM "$pid"
cr_wait_gone "$pid" 20 || cr_fail "restored $name (pid $pid) ignores SIGTERM"
st=$(cr_reaped_status "$pid")
[ "$st" = "signal 15" ] || [ "$st" = "exit 143" ] || cr_fail "restored $name ended with '$st', not by SIGTERM"
total=$(cr_check_sequence "$out") || cr_fail "the counter has a gap or a repeat across the restore"
cr_log "PASS: $total lines, $at_dump before the dump, continued without gap or repeat"
