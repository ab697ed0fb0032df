#!/usr/bin/env bash
# squashfuse.sh - an unmodified Debian daemon, `squashfuse -f` (libfuse3, single-threaded, holds
# the image file and /dev/fuse), dumped and restored while two clients read every file of the
# image in a loop: zero errors and byte-exact data across the gap; then (with squashfuse_ll) a
# --leave-running dump, a crash of the original and the rollback restore.
. "$(dirname "$0")/fusecr_lib.sh"
: "${FUSECLIENT:?}"
command -v squashfuse >/dev/null && command -v mksquashfs >/dev/null ||
	fc_fail "squashfuse and squashfs-tools are needed (tools/install-deps.sh)"

M=$T/mnt
mkdir -p "$M" "$T/ref"
cd "$T" || exit 1
for i in 1 2 3 4 5 6; do head -c $((i * 70001)) /dev/urandom >"$T/ref/file$i"; done
printf 'small\n' >"$T/ref/small"
mksquashfs "$T/ref" "$T/image.sqsh" -quiet -noappend >/dev/null || fc_fail "mksquashfs failed"

squashfuse -f "$T/image.sqsh" "$M" &
D=$!
fc_track "$D"
fc_track_mount "$M"
fc_wait_mount "$M"
[ "$(fc_threads "$D")" = 1 ] || fc_fail "squashfuse runs $(fc_threads "$D") threads"

fc_clients 1 2 ro "$M" "$T/stop" "$T/ref"
sleep 0.5
fc_track_image "$T/img"
"$CKPTFS" dump --pid "$D" "$T/img" || fc_fail "dump of squashfuse failed"
wait "$D" 2>/dev/null
sleep 0.5
"$CKPTFS" restore --pidfile "$T/pid" "$T/img" >"$T/restore.out" 2>&1 &
R=$!
fc_track "$R"
fc_wait 30 "the restored pid file" test -s "$T/pid"
RP=$(cat "$T/pid")
fc_track "$RP"
sleep 1
touch "$T/stop"
fc_join_clients 1 2
cmp "$T/ref/file6" "$M/file6" || fc_fail "file6 differs after restore"
kill -TERM "$RP"
fc_join "$R" 15
fc_wait 10 "squashfuse to unmount" eval '! fc_mounted "$M"'

# --leave-running, then a crash: a --leave-running dump while two clients read, the original
# killed -9, clients started meanwhile wait, the image restored (rolled back on the same
# connection): they read byte-exact with zero errors. This needs squashfuse_ll (same package,
# libfuse low-level API): its node ids are the on-disk inode ids and FORGET is a no-op, so the
# kernel's view matches the rolled-back daemon. `squashfuse` itself runs on libfuse's
# high-level API, whose node table and lookup counts do not survive a rollback (it aborts in
# forget_node on the next cache eviction). The clients across the dump stop (and their files
# are released) before the kill: a file opened after the checkpoint has a handle (a heap
# pointer) that the rolled-back daemon never gave out (docs/fuse-cr.md, "--leave-running").
command -v squashfuse_ll >/dev/null || fc_fail "squashfuse_ll is needed (package squashfuse)"
rm -f "$T/stop"
squashfuse_ll -f "$T/image.sqsh" "$M" &
D=$!
fc_track "$D"
fc_wait_mount "$M"
CONN=$(fc_conn_of "$M")
[ "$(fc_threads "$D")" = 1 ] || fc_fail "squashfuse_ll runs $(fc_threads "$D") threads"
fc_clients 3 4 ro "$M" "$T/stop" "$T/ref"
sleep 0.5
fc_track_image "$T/img2"
"$CKPTFS" dump --leave-running --pid "$D" "$T/img2" || fc_fail "--leave-running dump failed"
fc_alive "$D" || fc_fail "the original died in a --leave-running dump"
"$CKPTFS" show "$T/img2" | grep -c "conn $CONN .*kept (leave-running" >/dev/null ||
	fc_fail "show: $("$CKPTFS" show "$T/img2" | grep fuse)"
sleep 0.5
touch "$T/stop"
fc_join_clients 3 4 " across the dump"
rm -f "$T/stop"
# Their last close()s send RELEASE asynchronously: let the original answer those too, or the
# rolled-back daemon would get handles it never gave out (a heap pointer: a crash in free()).
idle() { [ "$(cat "$FUSECTL/$CONN/waiting")" = 0 ]; }
fc_wait 10 "the connection to be idle" idle
sleep 0.2
kill -KILL "$D"
wait "$D" 2>/dev/null
fc_mounted "$M" || fc_fail "the mount went away with the killed original"
fc_clients 5 6 ro "$M" "$T/stop" "$T/ref"
sleep 1
for i in 5 6; do
	fc_alive "${C[i]}" && [ ! -s "$T/client$i.out" ] ||
		fc_fail "client $i did not wait for the dead daemon: $(cat "$T/client$i.out")"
done
"$CKPTFS" restore --pidfile "$T/pid2" "$T/img2" >"$T/restore2.out" 2>&1 &
R=$!
fc_track "$R"
fc_wait 30 "the restored pid file" test -s "$T/pid2"
RP=$(cat "$T/pid2")
fc_track "$RP"
[ "$RP" = "$D" ] || fc_fail "restored pid $RP, dumped $D"
sleep 1
touch "$T/stop"
fc_join_clients 5 6 " after the rollback"
cmp "$T/ref/file6" "$M/file6" || fc_fail "file6 differs after the rollback"
kill -TERM "$RP"
fc_join "$R" 15
echo "PASS: $(tail -n1 "$T/client1.out")"
