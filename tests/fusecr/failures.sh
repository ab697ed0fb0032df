#!/usr/bin/env bash
# failures.sh - FUSE C/R failure paths: the keeper killed before restore (clear error naming the
# mount, image intact), a daemon whose mount was lazily unmounted while in use (dump refuses and
# leaves it serving), and a process with a file open on a FUSE mount (dump refuses).
. "$(dirname "$0")/fusecr_lib.sh"
: "${TESTFS:?}"

M=$T/mnt
mkdir -p "$M"
cd "$T" || exit 1

start_testfs() {
	"$TESTFS" "$M" &
	D=$!
	fc_track "$D"
	fc_track_mount "$M"
	fc_wait_mount "$M"
}

# 1. Keeper killed between dump and restore.
start_testfs
fc_track_image "$T/img"
"$CKPTFS" dump --pid "$D" "$T/img" || fc_fail "dump failed"
wait "$D" 2>/dev/null
K=$(fc_keeper_of "$T/img")
[ -n "$K" ] || fc_fail "no keeper recorded"
kill -KILL "$K"
fc_wait 10 "the keeper to die" fc_gone "$K"
# With the last fd closed the connection is dead: clients now fail instead of hanging.
if timeout 10 cat "$M/counter" >/dev/null 2>"$T/dead.err"; then
	fc_fail "reading a mount whose connection is gone succeeded"
fi
grep -q "not connected" "$T/dead.err" || fc_fail "dead mount gave: $(cat "$T/dead.err")"
if timeout 30 "$CKPTFS" restore --detach "$T/img" >"$T/r1.out" 2>&1; then
	fc_fail "restore without its keeper succeeded"
fi
grep -q "keeper (pid $K) of FUSE mount '$M' (connection [0-9]*) is gone" "$T/r1.out" ||
	fc_fail "unclear error without keeper: $(cat "$T/r1.out")"
fc_alive "$D" && fc_fail "restore left a process behind"
[ -f "$T/img/inventory.img" ] || fc_fail "the image was damaged by the failed restore"
"$CKPTFS" show "$T/img" | grep -c "gone" >/dev/null || fc_fail "show of the image fails after the failure"
umount -l "$M" || fc_fail "cannot detach the dead mount"

# 2. The mount was lazily unmounted while a client keeps a file open: the connection lives on,
#    but the mount cannot be found again. Dump refuses and leaves the daemon serving.
start_testfs
exec 9<"$M/counter"
umount -l "$M" || fc_fail "umount -l failed"
fc_mounted "$M" && fc_fail "mount still listed after umount -l"
if timeout 30 "$CKPTFS" dump --pid "$D" "$T/img2" >"$T/d2.out" 2>&1; then
	fc_fail "dump of a daemon whose mount is gone succeeded"
fi
grep -q "no longer in the mount table" "$T/d2.out" || fc_fail "unclear refusal: $(cat "$T/d2.out")"
[ -e "$T/img2/inventory.img" ] && fc_fail "a refused dump left an image"
fc_alive "$D" || fc_fail "the refused dump killed the daemon"
v=$(timeout 10 head -c 20 <&9) || fc_fail "the daemon stopped serving after a refused dump"
[[ $v =~ ^[0-9]{20}$ ]] || fc_fail "read '$v' from the detached mount"
exec 9<&-
# The last user is gone: the superblock dies and the daemon exits by itself.
fc_join "$D" 15 >/dev/null 2>&1

# 3. A process with a file open on a FUSE mount: refused, left running.
start_testfs
sleep 60 <"$M/counter" &
H=$!
fc_track "$H"
holds() { [ "$(cat "/proc/$H/comm")" = sleep ] && [ "$(readlink "/proc/$H/fd/0")" = "$M/counter" ]; }
fc_wait 10 "sleep to hold '$M/counter'" holds
if timeout 30 "$CKPTFS" dump --pid "$H" "$T/img3" >"$T/d3.out" 2>&1; then
	fc_fail "dump of a process with a file on a FUSE mount succeeded"
fi
grep -q "fd 0 is open on the FUSE mount '$M'" "$T/d3.out" ||
	fc_fail "unclear refusal: $(cat "$T/d3.out")"
fc_alive "$H" || fc_fail "the refused dump killed the process"
kill -KILL "$H"
wait "$H" 2>/dev/null
kill -TERM "$D"
fc_join "$D" 15

# 4. A restore that fails after it took the connection from the keeper (fd 9, a plain file
#    above the daemon's /dev/fuse fd, cannot be reopened): the keeper must keep holding it, a
#    client blocked meanwhile must survive, and the next restore must work.
echo extra >"$T/extra"
"$TESTFS" "$M" 9<"$T/extra" &
D=$!
fc_track "$D"
fc_wait_mount "$M"
fc_track_image "$T/img4"
"$CKPTFS" dump --pid "$D" "$T/img4" || fc_fail "dump failed"
wait "$D" 2>/dev/null
K=$(fc_keeper_of "$T/img4")
(timeout 30 cat "$M/counter" >"$T/q4.out") &
Q=$!
fc_track "$Q"
mv "$T/extra" "$T/extra.away"
if timeout 30 "$CKPTFS" restore --detach "$T/img4" >"$T/r4.out" 2>&1; then
	fc_fail "restore without fd 9's file succeeded"
fi
grep -q "fd 9" "$T/r4.out" || fc_fail "unclear failure: $(cat "$T/r4.out")"
fc_alive "$K" || fc_fail "the keeper went away after a failed restore"
"$CKPTFS" show "$T/img4" | grep -c "holding" >/dev/null || fc_fail "show: keeper not holding"
fc_alive "$Q" || fc_fail "the blocked client did not survive the failed restore"
mv "$T/extra.away" "$T/extra"
"$CKPTFS" restore --pidfile "$T/pid4" "$T/img4" >"$T/r4b.out" 2>&1 &
R=$!
fc_track "$R"
fc_wait 30 "the restored pid file" test -s "$T/pid4"
fc_track "$(cat "$T/pid4")"
fc_join "$Q" 15 || fc_fail "the client blocked across the failed restore failed"
grep -Eq '^[0-9]{20}$' "$T/q4.out" || fc_fail "blocked client read '$(cat "$T/q4.out")'"
fc_wait 10 "the keeper to exit after the handover" fc_gone "$K"
kill -TERM "$(cat "$T/pid4")"
fc_join "$R" 15
echo "PASS"
