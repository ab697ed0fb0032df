#!/usr/bin/env bash
# rlimits.sh WL_SLEEP - resource limits come back exactly, or restore refuses before it
# creates anything. Without CAP_SYS_RESOURCE a hard limit cannot be raised, so an image whose
# hard limit is above the restorer's cannot be restored exactly.
#   1. wl_sleep (pause) runs with its own limits (RLIMIT_NOFILE 300:4000, RLIMIT_CORE
#      1234:5678, RLIMIT_MSGQUEUE 9000:9000, all below ours) and is dumped.
#   2. A restorer whose hard RLIMIT_NOFILE is 2000 (and that lacks CAP_SYS_RESOURCE) must
#      fail, naming the pid, RLIMIT_NOFILE and both values, with no process left running.
#   3. A normal restore gives the process exactly the limits it had (/proc/PID/limits), and
#      it passes its own checks.
source "$(dirname "$0")/cr_lib.sh"

wl=$(readlink -f "$1")
cr_workload_files restore.err

cd "$scratch" || exit 1
prlimit --nofile=300:4000 --core=1234:5678 --msgqueue=9000:9000 \
	"$wl" "$scratch" pause </dev/null >>"$log" 2>&1 &
pid=$!
cr_track "$pid"
cr_wait_line "$log" '^READY$' 20 "$pid" || cr_fail "workload $pid did not print READY"
# prlimit execs the workload: the pid stays the same.
[ "$(readlink "/proc/$pid/exe")" = "$wl" ] || cr_fail "pid $pid is not the workload"
cp "/proc/$pid/limits" "$CR_TMP/limits.before"
grep -qE '^Max open files +300 +4000 ' "$CR_TMP/limits.before" || cr_fail "prlimit did not set the limits"
cr_dump_kill "$pid" "$img"

# A restorer with a lower hard limit, and no CAP_SYS_RESOURCE to raise it.
capsh --drop=cap_sys_resource -- -c "ulimit -n 2000 && exec \"\$0\" restore --detach --pidfile \"\$1\" \"\$2\"" \
	"$CKPTFS" "$CR_TMP/low.pid" "$img" 2>"$err"
rc=$?
cat "$err" >&2
[ "$rc" -ne 0 ] || cr_fail "restore by a restorer with hard RLIMIT_NOFILE 2000 succeeded"
[ -s "$CR_TMP/low.pid" ] && cr_fail "the refused restore wrote a pid file"
sleep 0.2
cr_alive "$pid" && cr_fail "the refused restore left pid $pid running"
for re in "pid $pid" RLIMIT_NOFILE 4000 2000; do
	grep -q -- "$re" "$err" || cr_fail "the refusal does not name '$re'"
done

cr_restore_detach "$img" "$pid"
cp "/proc/$pid/limits" "$CR_TMP/limits.after"
diff -u "$CR_TMP/limits.before" "$CR_TMP/limits.after" >&2 || cr_fail "the restored limits differ"
kill -TERM "$pid"
cr_wait_gone "$pid" 30 TERM || cr_fail "restored process $pid did not exit after SIGTERM"
st=$(cr_reaped_status "$pid")
[ "$st" = "exit 0" ] || cr_fail "restored process $pid ended with '$st'"
grep -qx PASS "$log" || cr_fail "the restored workload did not pass its checks"
cr_log "PASS"
