#!/usr/bin/env bash
# testfs.sh - the test daemon (testfs.c) dumped and restored while clients hammer its mount:
# zero client errors, the counter continues, files made before the dump are still there, a
# read the daemon was sleeping in at dump time completes after restore, requests made while it
# was down are served, the restored daemon holds the same connection at the same fd number,
# the keeper goes away, a second restore is refused. (--leave-running dumps: leaverun.sh.)
. "$(dirname "$0")/fusecr_lib.sh"
: "${TESTFS:?}" "${FUSECLIENT:?}"

M=$T/mnt
mkdir -p "$M"
cd "$T" || exit 1

# -c: besides the session fd, a FUSE_DEV_IOC_CLONE'd fd and a dup() of the session fd.
"$TESTFS" -c "$M" &
D=$!
fc_track "$D"
fc_track_mount "$M"
fc_wait_mount "$M"
CONN=$(fc_conn_of "$M")
[ "$(fc_threads "$D")" = 1 ] || fc_fail "testfs is not single-threaded"
fuse_fds() { for f in /proc/"$1"/fd/*; do [ "$(readlink "$f")" = /dev/fuse ] && basename "$f"; done | sort -n | tr '\n' ' '; }
FDS=$(fuse_fds "$D")
[ "$(echo $FDS | wc -w)" = 3 ] || fc_fail "testfs -c holds /dev/fuse fds '$FDS', want 3"

fc_clients 1 2 counter "$M" "$T/stop"
sleep 0.5
# The daemon sleeps 2 s inside this read: the dump catches it in the middle.
(timeout 30 cat "$M/slow" >"$T/slow.out") &
S=$!
fc_track "$S"
sleep 0.3

fc_track_image "$T/img"
"$CKPTFS" dump --pid "$D" "$T/img" || fc_fail "dump of testfs failed"
wait "$D" 2>/dev/null # reap it: restore needs its pid free
fc_mounted "$M" || fc_fail "the mount went away with the daemon"
KEEPER=$(fc_keeper_of "$T/img")
[ -n "$KEEPER" ] && fc_alive "$KEEPER" || fc_fail "no live keeper after the dump"
"$CKPTFS" show "$T/img" | grep -c "fuse .*conn $CONN mount '$M'.*holding" >/dev/null ||
	fc_fail "show does not report connection $CONN of '$M' as held"
"$CKPTFS" show --json "$T/img" | grep -c "\"fuse_conn\":$CONN,\"fuse_keeper_pid\":$KEEPER," >/dev/null ||
	fc_fail "show --json lacks the connection"
# The session fd and the clone are two open files; the dup shares the session fd's.
[ "$(fuse_fds "$KEEPER" | wc -w)" = 2 ] || fc_fail "keeper holds '$(fuse_fds "$KEEPER")'"

# Requests while nobody serves: they must queue, not fail.
(timeout 30 cat "$M/counter" >"$T/queued.out") &
Q=$!
fc_track "$Q"
sleep 1
[ -e "$FUSECTL/$CONN/waiting" ] && fc_log "requests waiting during the gap: $(cat "$FUSECTL/$CONN/waiting")"

"$CKPTFS" restore --pidfile "$T/pid" "$T/img" >"$T/restore.out" 2>&1 &
R=$!
fc_track "$R"
fc_wait 30 "the restored pid file" test -s "$T/pid"
RP=$(cat "$T/pid")
fc_track "$RP"
[ "$RP" = "$D" ] || fc_fail "restored pid $RP, dumped $D"
[ "$(fuse_fds "$RP")" = "$FDS" ] || fc_fail "restored /dev/fuse fds '$(fuse_fds "$RP")', dumped '$FDS'"
for fd in $FDS; do
	[ "$(fc_fd_conn "$RP" "$fd")" = "$CONN" ] ||
		fc_fail "restored daemon fd $fd does not serve connection $CONN"
done
fc_wait 10 "the keeper to exit after the handover" fc_gone "$KEEPER"
"$CKPTFS" show "$T/img" | grep -c "keeper pid $KEEPER .*gone" >/dev/null ||
	fc_fail "show does not report the keeper as gone"

fc_join "$Q" 15 || fc_fail "a read queued while the daemon was down failed"
grep -Eq '^[0-9]{20}$' "$T/queued.out" || fc_fail "queued read returned '$(cat "$T/queued.out")'"
fc_join "$S" 15 || fc_fail "the read in flight at dump time failed"
[ "$(cat "$T/slow.out")" = slow-ok ] || fc_fail "in-flight read returned '$(cat "$T/slow.out")'"

sleep 1
touch "$T/stop"
fc_join_clients 1 2
last=$(sed -n 's/.*counter=\([0-9]*\).*/\1/p' "$T/client1.out")
[ "${last:-0}" -gt 10 ] || fc_fail "counter did not advance: '$last'"

# The connection was handed over: a second restore must refuse, clearly.
if "$CKPTFS" restore --detach "$T/img" >"$T/second.out" 2>&1; then
	fc_fail "a second restore of the same image succeeded"
fi
grep -q "twice" "$T/second.out" || fc_fail "second restore: unclear refusal: $(cat "$T/second.out")"
fc_alive "$RP" || fc_fail "the second restore attempt hurt the restored daemon"

kill -TERM "$RP"
fc_join "$R" 15
fc_wait 10 "testfs to unmount" eval '! fc_mounted "$M"'

echo "PASS: $(tail -n1 "$T/client1.out")"
