#!/usr/bin/env bash
# overlayfs.sh - an unmodified Debian daemon, `fuse-overlayfs -f -s` (libfuse3, single-threaded,
# holds three directory fds, /dev/fuse and libfuse's splice pipe pair), dumped and restored
# while clients read the lower layer and write new files: writes made before, during (queued
# while the daemon is down) and after the checkpoint all land, byte-exact. Also: a dump whose
# image directory is on the daemon's own mount is refused (it would deadlock).
. "$(dirname "$0")/fusecr_lib.sh"
: "${FUSECLIENT:?}"
command -v fuse-overlayfs >/dev/null || fc_fail "fuse-overlayfs is needed (tools/install-deps.sh)"

M=$T/mnt
mkdir -p "$M" "$T/lower" "$T/upper" "$T/work"
cd "$T" || exit 1
for i in 1 2 3 4; do head -c $((i * 50003)) /dev/urandom >"$T/lower/low$i"; done

fuse-overlayfs -f -s -o "lowerdir=$T/lower,upperdir=$T/upper,workdir=$T/work" "$M" \
	2>"$T/daemon.err" &
D=$!
fc_track "$D"
fc_track_mount "$M"
fc_wait_mount "$M"
[ "$(fc_threads "$D")" = 1 ] || fc_fail "fuse-overlayfs runs $(fc_threads "$D") threads"

# An image directory on the very mount the frozen daemon serves would deadlock: refused.
if timeout 30 "$CKPTFS" dump --pid "$D" "$M/img" >"$T/self.out" 2>&1; then
	fc_fail "dump into the daemon's own mount succeeded"
fi
grep -q "image directory is on the FUSE mount '$M'" "$T/self.out" ||
	fc_fail "unclear refusal: $(cat "$T/self.out")"
fc_alive "$D" || fc_fail "the refused dump killed fuse-overlayfs"

# before: a client that writes 40 files and stops writing (it keeps verifying them).
"$FUSECLIENT" rw "$M" "$T/stop" before 40 >"$T/before.out" 2>&1 &
B=$!
fc_track "$B"
"$FUSECLIENT" ro "$M" "$T/stop" "$T/lower" >"$T/reader.out" 2>&1 &
RD=$!
fc_track "$RD"
# during: writes on across the dump; those issued while the daemon is down are queued.
"$FUSECLIENT" rw "$M" "$T/stop" during >"$T/during.out" 2>&1 &
W=$!
fc_track "$W"
sleep 0.7

fc_track_image "$T/img"
"$CKPTFS" dump --pid "$D" "$T/img" || fc_fail "dump of fuse-overlayfs failed"
wait "$D" 2>/dev/null
(printf 'queued-write\n' >"$M/queued" && echo done >"$T/queued.status") &
Q=$!
fc_track "$Q"
sleep 0.5
[ -e "$T/queued.status" ] && fc_fail "a write completed while the daemon was down"
"$CKPTFS" restore --pidfile "$T/pid" "$T/img" >"$T/restore.out" 2>&1 &
R=$!
fc_track "$R"
fc_wait 30 "the restored pid file" test -s "$T/pid"
RP=$(cat "$T/pid")
fc_track "$RP"
fc_join "$Q" 15 || fc_fail "the write queued during the checkpoint failed"

# after: a client started after the restore.
rm -f "$T/stop2"
"$FUSECLIENT" rw "$M" "$T/stop2" after 30 >"$T/after.out" 2>&1 &
A=$!
fc_track "$A"
sleep 1
touch "$T/stop" "$T/stop2"
for c in "$B before" "$RD reader" "$W during" "$A after"; do
	pid=${c%% *} name=${c#* }
	fc_join "$pid" 30 || fc_fail "client $name: $(cat "$T/$name.out")"
	fc_log "client $name: $(tail -n1 "$T/$name.out")"
done
# The writes landed in the upper layer itself, not just in the daemon's view.
[ "$(cat "$T/upper/queued")" = queued-write ] || fc_fail "queued write missing from upper"
for tag in before during after; do
	n=$(find "$T/upper" -maxdepth 1 -name "$tag-*" | wc -l)
	[ "$n" -gt 0 ] || fc_fail "no '$tag' files in the upper layer"
	fc_log "$tag: $n files in upper"
done
cmp "$T/upper/before-7" "$M/before-7" || fc_fail "before-7 differs between upper and mount"
kill -TERM "$RP"
fc_join "$R" 15
echo "PASS"
