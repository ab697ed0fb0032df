#!/usr/bin/env bash
# refuse.sh WORKLOAD MODE REGEX... - a dump that must be refused before it touches the target
# (issue 3: never a silently different restore). The workload (workloads/wl_*.c protocol)
# sets up the unsupported state and prints READY; then `ckptfs dump` (kill mode) must exit
# non-zero, not time out, name "pid PID" and match every REGEX (grep -E) on stderr, leave no
# image (the directory absent or empty), and leave the target running and untraced; after
# SIGTERM the target must pass its own checks (its state was not harmed). A workload that
# prints "SKIP: ..." and exits 77 before READY (the kernel lacks the feature) skips the test.
source "$(dirname "$0")/cr_lib.sh"

wl=$(readlink -f "$1")
mode=$2
shift 2
CR_NAME="refuse-$(basename "$wl")-$mode"
# A workload that made a SysV segment names it in SCRATCH/shmid: removed at the end whatever
# happened (the workload removes it itself when it ends normally).
drop_shm() { [ -s "$scratch/shmid" ] && ipcrm -m "$(cat "$scratch/shmid")" 2>/dev/null; true; }
CR_EXIT_HOOK=drop_shm
cr_workload_files dump.err

cd "$scratch" || exit 1
"$wl" "$scratch" "$mode" </dev/null >>"$log" 2>&1 &
pid=$!
cr_track "$pid"
if ! cr_wait_line "$log" '^READY$' 20 "$pid"; then
	if grep -q '^SKIP' "$log"; then
		wait "$pid"
		[ $? -eq 77 ] && exit 77
	fi
	cr_fail "workload $pid did not print READY"
fi
sleep 0.2
cr_alive "$pid" || cr_fail "workload $pid died after READY"

cr_ckptfs 60 dump --pid "$pid" "$img" 2>"$err"
rc=$?
cat "$err" >&2
[ "$rc" -ne 0 ] || cr_fail "the dump of pid $pid succeeded; it must be refused"
[ "$rc" -ne 124 ] || cr_fail "the dump of pid $pid hung"
grep -q "pid $pid" "$err" || cr_fail "the refusal does not name pid $pid"
for re in "$@"; do
	grep -qE -- "$re" "$err" || cr_fail "the refusal does not match '$re'"
done
if [ -e "$img" ] && [ -n "$(ls -A "$img")" ]; then
	ls -lR "$img" >&2
	cr_fail "the refused dump left an image in '$img'"
fi
cr_alive "$pid" || cr_fail "the refused dump killed pid $pid"
tracer=$(awk '/^TracerPid:/ { print $2 }' "/proc/$pid/status")
[ "$tracer" = 0 ] || cr_fail "pid $pid is still traced by $tracer"
grep -q '^FAIL' "$log" && cr_fail "the workload failed after the refused dump"

kill -TERM "$pid"
wait "$pid"
status=$?
[ "$status" -eq 0 ] || cr_fail "after the refused dump the workload exited $status"
grep -qx PASS "$log" || cr_fail "the workload did not pass its checks after the refused dump"
cr_log "PASS"
