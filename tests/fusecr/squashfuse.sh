#!/usr/bin/env bash
# squashfuse.sh - an unmodified Debian daemon, `squashfuse -f` (libfuse3, single-threaded, holds
# the image file and /dev/fuse), dumped and restored while two clients read every file of the
# image in a loop: zero errors and byte-exact data across the gap.
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

for i in 1 2; do
	"$FUSECLIENT" ro "$M" "$T/stop" "$T/ref" >"$T/client$i.out" 2>&1 &
	C[i]=$!
	fc_track "${C[i]}"
done
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
for i in 1 2; do
	fc_join "${C[i]}" 30 || fc_fail "client $i: $(cat "$T/client$i.out")"
	fc_log "client $i: $(tail -n1 "$T/client$i.out")"
done
cmp "$T/ref/file6" "$M/file6" || fc_fail "file6 differs after restore"
kill -TERM "$RP"
fc_join "$R" 15
echo "PASS: $(tail -n1 "$T/client1.out")"
