# shellcheck shell=bash
# cr_lib.sh - helpers shared by the tests/cr scripts (sourced, not run).
#
# Every script runs under cr_reaper, which provides $CR_TMP (a fresh directory it removes at
# the end) and records the exit status of orphans it reaps in $CR_TMP/reaped. Scripts register
# every process they start with cr_track and every mount with cr_track_mount; the EXIT trap
# unmounts and kills exactly those (by PID), whatever way the script ends, then runs
# $CR_EXIT_HOOK if set.
set -uo pipefail

: "${CKPTFS:?CKPTFS must name the ckptfs binary}"
: "${CR_TMP:?run this script through cr_reaper}"

CR_PIDS=()
CR_MOUNTS=()
CR_NAME=$(basename "$0" .sh)

cr_log() { echo "[$CR_NAME $(date +%T.%3N)] $*" >&2; }
cr_fail() {
	echo "FAIL [$CR_NAME]: $*" >&2
	exit 1
}

cr_track() { CR_PIDS+=("$1"); }
cr_track_mount() { CR_MOUNTS+=("$1"); }

cr_alive() { # PID: running (a zombie counts as gone)
	local st
	st=$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

cr_cleanup() { # [STATUS]
	local rc=${1:-$?} m p i
	trap - EXIT
	for ((i = ${#CR_MOUNTS[@]} - 1; i >= 0; i--)); do # the newest first: mounts nest
		m=${CR_MOUNTS[i]}
		if mountpoint -q "$m"; then
			fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null ||
				echo "cleanup: cannot unmount '$m'" >&2
		fi
	done
	for p in "${CR_PIDS[@]}"; do
		if cr_alive "$p"; then
			echo "cleanup: killing process $p" >&2
			kill -KILL "$p" 2>/dev/null
		fi
	done
	wait 2>/dev/null
	[ -n "${CR_EXIT_HOOK:-}" ] && eval "$CR_EXIT_HOOK"
	exit "$rc"
}
trap cr_cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# The files of a script that runs one workload, in $CR_TMP: $scratch (its directory, made),
# $img (the image), $log (its output, emptied), $err (a ckptfs command's stderr, named
# ERR_FILE, default "err"). The EXIT trap prints the workload's log before the cleanup.
cr_workload_files() { # [ERR_FILE]
	scratch=$CR_TMP/scratch
	img=$CR_TMP/img
	log=$CR_TMP/wl.log
	err=$CR_TMP/${1:-err}
	mkdir -p "$scratch"
	: >"$log"
	trap 'cr_rc=$?; echo "--- workload log"; cat "$log"; echo "---"; cr_cleanup $cr_rc' EXIT
}

# Poll until FILE has a line matching REGEX; TIMEOUT in seconds.
# With PID, give up as soon as that process is gone.
cr_wait_line() {
	local file=$1 re=$2 timeout=$3 pid=${4:-} i
	for ((i = 0; i <= timeout * 20; i++)); do
		grep -qE "$re" "$file" 2>/dev/null && return 0
		[ -n "$pid" ] && ! cr_alive "$pid" && ! grep -qE "$re" "$file" 2>/dev/null && return 1
		((i < timeout * 20)) && sleep 0.05
	done
	return 1
}

# Poll until PID is gone (or a zombie); TIMEOUT in seconds. Every RESEND seconds (if given)
# send SIGNAL again: a workload may have been in a window where the first one was lost.
cr_wait_gone() {
	local pid=$1 timeout=$2 sig=${3:-} i
	for ((i = 0; i < timeout * 20; i++)); do
		cr_alive "$pid" || return 0
		if [ -n "$sig" ] && ((i > 0 && i % 60 == 0)); then
			kill "-$sig" "$pid" 2>/dev/null
		fi
		sleep 0.05
	done
	return 1
}

# How many exits cr_reaper has recorded for PID so far (a PID is reused by every restore).
cr_reaped_count() {
	local n
	n=$(grep -c "^$1 " "$CR_TMP/reaped" 2>/dev/null)
	echo "${n:-0}"
}

# Exit status ("exit N" / "signal N") of the next exit of PID cr_reaper records after the
# cr_restore_detach that set CR_REAPED_BEFORE; waits up to 10 s for it.
cr_reaped_status() {
	local pid=$1 i
	for ((i = 0; i < 200; i++)); do
		if [ "$(cr_reaped_count "$pid")" -gt "${CR_REAPED_BEFORE:-0}" ]; then
			grep -E "^$pid " "$CR_TMP/reaped" | sed -n "$((${CR_REAPED_BEFORE:-0} + 1))p" | cut -d' ' -f2-
			return 0
		fi
		sleep 0.05
	done
	echo "unknown (not reaped)"
	return 1
}

# Run a ckptfs command with a time limit, its output shown; returns its exit code.
cr_ckptfs() {
	local limit=$1 rc
	shift
	cr_log "ckptfs $*"
	timeout -k 5 "$limit" "$CKPTFS" "$@"
	rc=$?
	[ "$rc" -eq 124 ] && cr_log "ckptfs $1 timed out after ${limit}s"
	return "$rc"
}

# Dump PID (our child) into DIR and reap it: the dump must succeed and must have killed it.
cr_dump_kill() {
	local pid=$1 dir=$2 rc status
	shift 2
	cr_ckptfs 120 dump --pid "$pid" "$@" "$dir"
	rc=$?
	[ "$rc" -eq 0 ] || cr_fail "ckptfs dump --pid $pid exited $rc"
	wait "$pid"
	status=$?
	[ "$status" -eq 137 ] || cr_fail "after the dump, process $pid ended with status $status, not SIGKILL"
	cr_alive "$pid" && cr_fail "process $pid still exists after dump and reap"
	return 0
}

# ckptfs show must describe the image, as text and as JSON naming the pid.
cr_check_show() {
	local dir=$1 pid=$2
	cr_ckptfs 30 show "$dir" || cr_fail "ckptfs show '$dir' failed"
	cr_ckptfs 30 show --json "$dir" >"$CR_TMP/show.json" || cr_fail "ckptfs show --json '$dir' failed"
	python3 - "$CR_TMP/show.json" "$pid" <<'PY' || cr_fail "ckptfs show --json output is not JSON naming pid $pid"
import json, sys
doc = json.load(open(sys.argv[1]))
def pids(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "pid" and isinstance(v, int):
                yield v
            yield from pids(v)
    elif isinstance(o, list):
        for v in o:
            yield from pids(v)
sys.exit(0 if int(sys.argv[2]) in set(pids(doc)) else 1)
PY
}

# `ckptfs show DIR` into $CR_TMP/show.txt (also shown) and `show --json DIR` into
# $CR_TMP/show.json; either failing fails the test.
cr_show() {
	local dir=$1
	cr_ckptfs 30 show "$dir" >"$CR_TMP/show.txt" || cr_fail "ckptfs show '$dir' failed"
	cat "$CR_TMP/show.txt" >&2
	cr_ckptfs 30 show --json "$dir" >"$CR_TMP/show.json" || cr_fail "ckptfs show --json '$dir' failed"
}

# After cr_show: the text has a line matching REGEX (grep -E), else the test fails with
# "ckptfs show does not print WHAT".
cr_show_has() {
	grep -qE -- "$1" "$CR_TMP/show.txt" || cr_fail "ckptfs show does not print $2"
}

# The capability state ckptfs show reports for an image of workloads/wl_caps.c, which sets
# known values: effective {kill, net_bind_service}, ambient {net_bind_service}, securebits
# NOROOT|NOROOT_LOCKED|KEEP_CAPS (0x13), no_new_privs, four bounding-set drops.
cr_check_show_caps() {
	cr_show "$1"
	cr_show_has '^    effective +0x0000000000000420 \(cap_kill,cap_net_bind_service\)$' \
		"the effective set {kill, net_bind_service}"
	cr_show_has 'capabilities: securebits 0x13, no_new_privs 1' "securebits 0x13 and no_new_privs 1"
	python3 - "$CR_TMP/show.json" <<'PY' || cr_fail "ckptfs show --json reports the wrong capability state"
import json, sys
t = json.load(open(sys.argv[1]))["tasks"][0]
c = t["caps"]
want = {
    "effective": 1 << 5 | 1 << 10,
    "ambient": 1 << 10,
    "permitted": 1 << 0 | 1 << 5 | 1 << 8 | 1 << 10 | 1 << 12,
    "inheritable": 1 << 0 | 1 << 10 | 1 << 27,
    "securebits": 0x13,
}
bad = [k for k, v in want.items() if c[k] != v]
dropped = {"cap_sys_boot", "cap_mknod", "cap_audit_write", "cap_net_raw"}
if dropped & set(c["bounding_names"]) or "cap_kill" not in c["bounding_names"]:
    bad.append("bounding")
if c["effective_names"] != ["cap_kill", "cap_net_bind_service"]:
    bad.append("effective_names")
if t["no_new_privs"] != 1:
    bad.append("no_new_privs")
print("wrong:", bad, c, file=sys.stderr) if bad else None
sys.exit(1 if bad else 0)
PY
}

# Restore DIR detached; the pidfile and the process must carry the dumped PID.
cr_restore_detach() {
	local dir=$1 pid=$2 pf=$CR_TMP/restore.pid rc got
	rm -f "$pf"
	CR_REAPED_BEFORE=$(cr_reaped_count "$pid")
	cr_ckptfs 120 restore --detach --pidfile "$pf" "$dir"
	rc=$?
	cr_track "$pid"
	[ "$rc" -eq 0 ] || cr_fail "ckptfs restore --detach '$dir' exited $rc"
	got=$(cat "$pf" 2>/dev/null | tr -d '[:space:]')
	[ "$got" = "$pid" ] || cr_fail "restore pidfile says '$got', the dumped pid was $pid"
	cr_alive "$pid" || cr_fail "restored process $pid is not running"
}

# Init STORE and mount it at MNT with `ckptfs mount -f` in the background (our child, so it
# can be reaped after the unmount). Sets CR_MOUNT_PID.
cr_mount_store() {
	local store=$1 mnt=$2 init=${3:-init} i
	mkdir -p "$mnt"
	if [ "$init" = init ]; then
		cr_ckptfs 30 init "$store" || cr_fail "ckptfs init '$store' failed"
	fi
	"$CKPTFS" mount -f "$store" "$mnt" >>"$CR_TMP/mount.log" 2>&1 &
	CR_MOUNT_PID=$!
	cr_track "$CR_MOUNT_PID"
	cr_track_mount "$mnt"
	for ((i = 0; i < 200; i++)); do
		mountpoint -q "$mnt" && return 0
		kill -0 "$CR_MOUNT_PID" 2>/dev/null || break
		sleep 0.05
	done
	cat "$CR_TMP/mount.log"
	cr_fail "ckptfs mount -f '$store' '$mnt' did not mount"
}

# cr_term_passes PID LOG: SIGTERM makes a self-checking workload check itself and exit; it must
# end with status 0, print no FAIL line and PASS exactly once in LOG.
cr_term_passes() {
	local pid=$1 log=$2 st
	kill -TERM "$pid"
	cr_wait_gone "$pid" 30 TERM || cr_fail "restored process $pid did not finish its checks"
	st=$(cr_reaped_status "$pid")
	[ "$st" = "exit 0" ] || cr_fail "restored process $pid ended with '$st'"
	grep -q '^FAIL' "$log" && cr_fail "the restored process reported failures"
	[ "$(grep -cx PASS "$log")" -eq 1 ] || cr_fail "the restored process did not print PASS once"
}

# cr_server_pid FILE: the lazy page server's pid, from `restore --lazy --server-pidfile FILE`
# (written before the process runs on), into $spid; tracked for cleanup.
cr_server_pid() {
	local i
	for ((i = 0; i < 200; i++)); do
		[ -s "$1" ] && break
		sleep 0.05
	done
	spid=$(tr -d '[:space:]' <"$1" 2>/dev/null)
	[ -n "$spid" ] || cr_fail "restore --lazy wrote no page server pid to '$1'"
	cr_track "$spid"
}

# Unmount MNT and reap the daemon CR_MOUNT_PID started by cr_mount_store.
cr_unmount_store() {
	local mnt=$1 i
	fusermount3 -u "$mnt" || cr_fail "fusermount3 -u '$mnt' failed"
	for ((i = 0; i < 200; i++)); do
		kill -0 "$CR_MOUNT_PID" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$CR_MOUNT_PID" 2>/dev/null && cr_fail "ckptfs mount daemon $CR_MOUNT_PID did not exit after unmount"
	wait "$CR_MOUNT_PID"
	local rc=$?
	[ "$rc" -eq 0 ] || cr_fail "ckptfs mount daemon exited $rc"
}

# Stored bytes of STORE according to `ckptfs df STORE`: the number on the line that names
# stored bytes (plain bytes, or with a K/M/G/T(i)B unit).
cr_stored_bytes() {
	local store=$1
	"$CKPTFS" df "$store" >"$CR_TMP/df.out" 2>&1 || {
		cat "$CR_TMP/df.out" >&2
		return 1
	}
	python3 - "$CR_TMP/df.out" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
units = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "kib": 1024, "m": 1e6, "mb": 1e6, "mib": 1 << 20,
         "g": 1e9, "gb": 1e9, "gib": 1 << 30, "t": 1e12, "tb": 1e12, "tib": 1 << 40}
try:
    doc = json.loads(text)
    for k, v in doc.items():
        if "stored" in k.lower() and isinstance(v, (int, float)):
            print(int(v)); sys.exit(0)
except ValueError:
    pass
for line in text.splitlines():
    if re.search(r"\bstored\b", line, re.I) and not re.search(r"ratio", line, re.I):
        m = re.search(r"stored[^0-9]*?([0-9][0-9,]*(?:\.[0-9]+)?)\s*([KMGT]?i?B?)\b", line, re.I)
        if m:
            print(int(float(m.group(1).replace(",", "")) * units[m.group(2).lower()]))
            sys.exit(0)
sys.exit("no 'stored' figure in ckptfs df output:\n" + text)
PY
}
