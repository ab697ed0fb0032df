#!/usr/bin/env bash
# caps_fail.sh WL_CAPS - a process whose capabilities the restorer cannot reproduce.
# wl_caps keeps CAP_NET_ADMIN in its permitted and bounding sets; the restore is run under
# `setpriv --bounding-set=-net_admin`, so the restorer (root) lacks that capability. The
# restore must fail before the process runs, naming the pid and CAP_NET_ADMIN, and leave no
# process behind. Likewise for a copy of the image that holds CAP_SYS_RESOURCE, which no
# restorer here has. The image then restores with full privileges and passes its checks.
source "$(dirname "$0")/cr_lib.sh"

wl=$(readlink -f "$1")
pf=$CR_TMP/restore.pid
cr_workload_files restore.err

# check_refused CAP WHAT: the restore (exit status $rc, stderr $err) failed before the process
# ran, naming pid $pid and CAP, with no pid file written and no process left.
check_refused() {
	cat "$err" >&2
	cr_track "$pid"
	[ "$rc" -ne 0 ] || cr_fail "$2 succeeded"
	[ "$rc" -ne 124 ] || cr_fail "$2 timed out"
	grep -q "pid $pid" "$err" || cr_fail "the error does not name pid $pid"
	grep -q "$1" "$err" || cr_fail "the error does not name $1"
	[ -e "$pf" ] && cr_fail "a failed restore wrote the pid file"
	sleep 0.2
	cr_alive "$pid" && cr_fail "pid $pid exists after the refused restore"
	grep -q '^FAIL\|^PASS' "$log" && cr_fail "the workload ran after the refused restore"
	return 0
}

command -v setpriv >/dev/null || cr_fail "setpriv (util-linux) is not installed"
cd "$scratch" || exit 1
"$wl" "$scratch" </dev/null >>"$log" 2>&1 &
pid=$!
cr_track "$pid"
cr_wait_line "$log" '^READY$' 20 "$pid" || cr_fail "workload $pid did not print READY"
cr_wait_line "$log" '^FAIL' 0 && cr_fail "workload failed while setting up"
cr_dump_kill "$pid" "$img"

cr_log "ckptfs restore without CAP_NET_ADMIN (setpriv --bounding-set=-net_admin)"
setpriv --bounding-set=-net_admin timeout -k 5 60 "$CKPTFS" restore --detach --pidfile "$pf" \
	"$img" 2>"$err"
rc=$?
check_refused CAP_NET_ADMIN "restore without CAP_NET_ADMIN"

# The same image as if dumped where the process held CAP_SYS_RESOURCE (this machine's
# processes never do): the CAPS record of core.img gets that bit in its permitted and bounding
# sets. Every restorer here lacks it, so the restore must be refused naming it.
cp -a "$img" "$CR_TMP/img-sysres" || cr_fail "cannot copy the image"
python3 - "$CR_TMP/img-sysres/task-$pid/core.img" <<'PY' || cr_fail "cannot patch core.img"
import struct, sys
path = sys.argv[1]
b = bytearray(open(path, "rb").read())
off = 16
while off < len(b):
    rtype, rlen = struct.unpack_from("<II", b, off)
    if rtype == 11:  # CAPS: inheritable, permitted, effective, bounding, ambient
        for field in (1, 3):
            at = off + 8 + 8 * field
            struct.pack_into("<Q", b, at, struct.unpack_from("<Q", b, at)[0] | 1 << 24)
        open(path, "wb").write(b)
        sys.exit(0)
    off += 8 + rlen + (-rlen % 8)
sys.exit("no CAPS record in " + path)
PY
cr_log "ckptfs restore of an image holding CAP_SYS_RESOURCE"
timeout -k 5 60 "$CKPTFS" restore --detach --pidfile "$pf" "$CR_TMP/img-sysres" 2>"$err"
rc=$?
check_refused CAP_SYS_RESOURCE "restore of an image holding CAP_SYS_RESOURCE"

# Nothing was consumed: with the restorer's full privileges the image restores and passes.
cr_restore_detach "$img" "$pid"
sleep 0.3
cr_term_passes "$pid" "$log"
cr_log "PASS"
