#!/usr/bin/env bash
# madv.sh CASE WL_MADV - madvise/mlock flags of mappings come back exactly (workloads/wl_madv.c).
#   mount-eager, mount-lazy: the workload is dumped into a ckptfs mount (remounted, so pages
#     come through the daemon), `ckptfs show` must list the flags of exactly its 12 flagged
#     mappings (text and JSON), and it is restored eagerly or with --lazy; on SIGTERM it forks
#     (the child must see zeros in WIPEONFORK mappings and no DONTFORK mapping) and checks the
#     VmFlags and bytes of every mapping.
#   lazy-fork-held: restored with --lazy from a plain directory while the page server's
#     background reads are held back (CKPTFS_LAZY_HOLD_MS): the workload forks while the
#     server is still running, so a WIPEONFORK mapping left to the server would hand the saved
#     bytes to the child.
#   refuse-mlock: the workload runs without CAP_IPC_LOCK; a restorer without it and with a soft
#     RLIMIT_MEMLOCK of 16 KiB cannot lock its mappings: the restore must fail naming the
#     mlock and the mapping, with nothing left running; a normal restore then passes.
source "$(dirname "$0")/cr_lib.sh"

case_=$1
wl=$(readlink -f "$2")
CR_NAME=madv-$case_
store=$CR_TMP/store
mnt=$CR_TMP/mnt
log=$CR_TMP/wl.log
err=$CR_TMP/restore.err
spf=$CR_TMP/server.pid
: >"$log"
trap 'cr_rc=$?; [ "$cr_rc" -ne 0 ] && { echo "--- workload log:"; cat "$log"; echo "--- restore stderr:"; cat "$err" 2>/dev/null; }; cr_cleanup $cr_rc' EXIT

nocap=(setpriv --bounding-set -ipc_lock --inh-caps -ipc_lock)

start_wl() { # [WRAPPER...]
	mkdir -p "$CR_TMP/scratch"
	(cd "$CR_TMP/scratch" && exec "$@" "$wl" "$CR_TMP/scratch" </dev/null >>"$log" 2>&1) &
	pid=$!
	cr_track "$pid"
	cr_wait_line "$log" '^READY$' 30 "$pid" || cr_fail "wl_madv did not get ready"
	cr_wait_line "$log" '^FAIL' 0 && cr_fail "wl_madv failed its own checks before the dump"
	sleep 0.2
}

# The flags ckptfs show lists: one line per flagged mapping, and the same in JSON.
check_show() { # DIR
	cr_show "$1"
	cr_show_has '^      madvise wipeonfork,dontdump,nohugepage,mergeable$' "the wipe-combo flags"
	cr_show_has '^      madvise locked,lockonfault$' "the MLOCK_ONFAULT flags"
	python3 - "$CR_TMP/show.json" <<'PY' || cr_fail "ckptfs show --json lists the wrong madvise flags"
import json, sys
vmas = json.load(open(sys.argv[1]))["tasks"][0]["vmas"]
got = sorted((v["kind"], ",".join(v["madvise_names"])) for v in vmas if "madvise" in v)
want = sorted([
    ("anon", "dontfork"), ("anon", "wipeonfork"), ("anon", "dontdump"), ("anon", "hugepage"),
    ("anon", "nohugepage"), ("anon", "mergeable"), ("anon", "locked"),
    ("anon", "locked,lockonfault"), ("anon", "wipeonfork,dontdump,nohugepage,mergeable"),
    ("file", "dontfork,dontdump"), ("file", "dontdump,hugepage"), ("shmem", "dontdump,locked"),
])
if got != want:
    print("madvise in show --json:", got, file=sys.stderr)
    sys.exit(1)
PY
	[ "$(grep -c '^      madvise ' "$CR_TMP/show.txt")" -eq 12 ] ||
		cr_fail "ckptfs show lists madvise flags for other than the 12 flagged mappings"
}

restore_detach() { # DIR [--lazy]
	local dir=$1 rc
	shift
	rm -f "$spf" "$CR_TMP/restore.pid"
	CR_REAPED_BEFORE=$(cr_reaped_count "$pid")
	cr_log "ckptfs restore --detach $* $dir"
	timeout -k 5 120 "$CKPTFS" restore --detach --pidfile "$CR_TMP/restore.pid" "$@" "$dir" 2>"$err"
	rc=$?
	cat "$err" >&2
	cr_track "$pid"
	[ "$rc" -eq 0 ] || cr_fail "ckptfs restore --detach $* '$dir' exited $rc"
	[ "$(tr -d '[:space:]' <"$CR_TMP/restore.pid")" = "$pid" ] || cr_fail "restored under another pid"
}

case $case_ in
mount-eager | mount-lazy)
	cr_mount_store "$store" "$mnt"
	start_wl
	cr_dump_kill "$pid" "$mnt/ck"
	check_show "$mnt/ck"
	cr_unmount_store "$mnt"
	cr_mount_store "$store" "$mnt" noinit
	if [ "$case_" = mount-lazy ]; then
		restore_detach "$mnt/ck" --lazy --server-pidfile "$spf"
		cr_server_pid "$spf"
	else
		restore_detach "$mnt/ck"
	fi
	sleep 0.3
	cr_term_passes "$pid" "$log"
	if [ "$case_" = mount-lazy ]; then
		cr_wait_gone "$spid" 30 || cr_fail "the page server $spid did not exit"
	fi
	cr_unmount_store "$mnt"
	;;
lazy-fork-held)
	start_wl
	cr_dump_kill "$pid" "$CR_TMP/img"
	CKPTFS_LAZY_HOLD_MS=4000 restore_detach "$CR_TMP/img" --lazy --server-pidfile "$spf"
	cr_server_pid "$spf"
	# At once: the workload forks first thing on SIGTERM, while the server holds its reads
	# (still there after the workload ended, so it was there at the fork).
	cr_term_passes "$pid" "$log"
	cr_alive "$spid" || cr_fail "the page server was gone before the workload forked: the fork did not happen during the fill"
	cr_wait_gone "$spid" 30 || cr_fail "the page server $spid did not exit"
	;;
refuse-mlock)
	start_wl "${nocap[@]}"
	capeff=$(awk '/^CapEff:/ {print $2}' /proc/"$pid"/status)
	(((16#$capeff >> 14) & 1)) && cr_fail "the workload kept CAP_IPC_LOCK ($capeff)"
	cr_dump_kill "$pid" "$CR_TMP/img"
	rm -f "$CR_TMP/restore.pid"
	cr_log "restore without CAP_IPC_LOCK, soft RLIMIT_MEMLOCK 16 KiB"
	"${nocap[@]}" bash -c 'ulimit -S -l 16 && exec timeout -k 5 60 "$1" restore --detach --pidfile "$2" "$3"' \
		_ "$CKPTFS" "$CR_TMP/restore.pid" "$CR_TMP/img" 2>"$err"
	rc=$?
	cat "$err" >&2
	[ -s "$CR_TMP/restore.pid" ] && cr_track "$(tr -d '[:space:]' <"$CR_TMP/restore.pid")"
	[ "$rc" -ne 0 ] || cr_fail "the restore over RLIMIT_MEMLOCK succeeded"
	grep -qE "restoring pid $pid: mlock[^ ]* (\(MLOCK_ONFAULT\) )?of mapping 0x[0-9a-f]+-0x[0-9a-f]+ failed: Cannot allocate memory" "$err" ||
		cr_fail "the refusal does not name the mlock, the mapping and the reason"
	[ -s "$CR_TMP/restore.pid" ] && cr_fail "a failed restore wrote a pid file"
	sleep 0.2
	cr_alive "$pid" && cr_fail "pid $pid runs after the failed restore"
	grep -q '^FAIL' "$log" && cr_fail "something of the failed restore ran"
	# The image itself is fine: with the restorer's privileges it restores and passes.
	restore_detach "$CR_TMP/img"
	sleep 0.3
	cr_term_passes "$pid" "$log"
	;;
*)
	cr_fail "unknown case '$case_'"
	;;
esac
cr_log "PASS"
