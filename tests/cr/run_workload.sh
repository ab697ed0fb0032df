#!/usr/bin/env bash
# run_workload.sh MODE WORKLOAD [ARGS...] - one self-checking workload (workloads/wl_*.c).
#   plain:  start, READY, SIGTERM, PASS - proves the workload itself is sound, without C/R.
#   detach: start, READY, dump (kills it), reap, restore --detach --pidfile, same PID,
#           SIGTERM, the restored process must exit 0 after printing PASS.
#   leave:  dump --leave-running: the original must carry on and pass its own checks after
#           SIGTERM; then the image is restored (detached) and must pass them too.
#   wait:   like detach, but `ckptfs restore DIR` runs in the background and waits for the
#           process: it must exit 0 once the restored workload passes.
# The workload gets a scratch directory as its first argument; its stdout and stderr go to a
# log file opened O_APPEND, which is how it reports READY and PASS/FAIL.
source "$(dirname "$0")/cr_lib.sh"

mode=$1
wl=$(readlink -f "$2")
shift 2
CR_NAME="$(basename "$wl")${1:+-$1}-$mode"
scratch=$CR_TMP/scratch
img=$CR_TMP/img
log=$CR_TMP/wl.log
mkdir -p "$scratch"
: >"$log"

show_log() {
	echo "--- workload log ($log)"
	cat "$log"
	echo "---"
}
trap 'cr_rc=$?; show_log; cr_cleanup $cr_rc' EXIT

cd "$scratch" || exit 1
"$wl" "$scratch" "$@" </dev/null >>"$log" 2>&1 &
pid=$!
cr_track "$pid"
cr_log "started $wl $* as pid $pid"
cr_wait_line "$log" '^READY$' 20 "$pid" || cr_fail "workload $pid did not print READY (died, or not within 20 s)"
cr_wait_line "$log" '^FAIL' 0 && cr_fail "workload failed while setting up"
sleep 0.2
cr_alive "$pid" || cr_fail "workload $pid died after READY"

case $mode in
plain)
	kill -TERM "$pid"
	wait "$pid"
	status=$?
	;;
detach | wait | leave)
	if [ "$mode" = leave ]; then
		cr_ckptfs 120 dump --pid "$pid" --leave-running "$img" ||
			cr_fail "ckptfs dump --leave-running of $pid failed"
		sleep 0.3
		cr_alive "$pid" || cr_fail "pid $pid died after dump --leave-running"
		kill -TERM "$pid"
		wait "$pid"
		status=$?
		[ "$status" -eq 0 ] || cr_fail "after dump --leave-running the original exited $status"
		grep -qx PASS "$log" || cr_fail "the original did not pass its checks after the dump"
		grep -q '^FAIL' "$log" && cr_fail "the original failed its checks after the dump"
	else
		cr_dump_kill "$pid" "$img"
	fi
	cr_check_show "$img" "$pid"
	[ "$(basename "$wl")" = wl_caps ] && cr_check_show_caps "$img"
	if [ "$mode" != wait ]; then
		cr_restore_detach "$img" "$pid"
	else
		cr_log "ckptfs restore $img (waiting mode, in the background)"
		timeout -k 5 120 "$CKPTFS" restore "$img" &
		rpid=$!
		cr_track "$rpid"
		# The PID first belongs to the restorer's child; it is restored once it runs $wl.
		for ((i = 0; i < 400; i++)); do
			[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$wl" ] && break
			kill -0 "$rpid" 2>/dev/null || break
			sleep 0.05
		done
		cr_track "$pid"
		cr_alive "$pid" || cr_fail "restored process $pid did not appear"
		sleep 0.2 # exe is switched before the registers are: let the restorer finish
	fi
	exe=$(readlink "/proc/$pid/exe")
	[ "$exe" = "$wl" ] || cr_fail "restored pid $pid runs '$exe', not '$wl'"
	# Let it run a little in its restored state before asking it to check itself.
	sleep 0.5
	cr_alive "$pid" || cr_fail "restored process $pid died on its own"
	kill -TERM "$pid"
	if [ "$mode" != wait ]; then
		cr_wait_gone "$pid" 30 TERM || cr_fail "restored process $pid did not exit within 30 s of SIGTERM"
		st=$(cr_reaped_status "$pid")
		[ "$st" = "exit 0" ] || cr_fail "restored process $pid ended with '$st'"
		status=0
	else
		cr_wait_gone "$pid" 30 TERM || cr_fail "restored process $pid did not exit within 30 s of SIGTERM"
		wait "$rpid"
		status=$?
		[ "$status" -eq 0 ] || cr_fail "ckptfs restore (waiting) exited $status"
	fi
	;;
*)
	cr_fail "unknown mode '$mode'"
	;;
esac

[ "$status" -eq 0 ] || cr_fail "workload exited with status $status"
grep -q '^FAIL' "$log" && cr_fail "workload reported failures"
want_pass=1
[ "$mode" = leave ] && want_pass=2 # the original's, then the restored process's
[ "$(grep -cx PASS "$log")" -eq "$want_pass" ] || cr_fail "workload did not print PASS"
[ "$(grep -cx READY "$log")" -eq 1 ] || cr_fail "workload printed READY more than once (restarted?)"
cr_log "PASS"
