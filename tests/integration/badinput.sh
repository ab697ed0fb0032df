#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# badinput.sh - mount refuses bad input with a clear message and exit 1 (not a store, missing
# store, missing mountpoint, a second mount of the same store, a bad -o option); a detached
# mount and SIGTERM shut down cleanly; a store on a full tmpfs gives the writer ENOSPC and
# loses nothing that was already stored.
source "$(dirname "$0")/lib.sh"

GEN=$HELPERS/t_datagen
S=$T/store
M=$T/mnt
mkdir -p "$M"
ck_init "$S"

# expect_mount_error TEXT ARGS...: ckptfs mount -f ARGS must exit 1 saying TEXT, mounting nothing.
expect_mount_error() {
	local text=$1 rc=0 out
	shift
	out=$(timeout 20 "$CKPTFS" mount -f "$@" 2>&1) || rc=$?
	[ "$rc" -eq 1 ] || fail "mount $* exited $rc, expected 1: $out"
	grep -qF -- "$text" <<<"$out" || fail "mount $*: message lacks '$text': $out"
	mountpoint -q "$M" && fail "mount $* left a mount behind"
	note "refused as expected: $(head -n 1 <<<"$out")"
}

note "not a store"
mkdir "$T/notstore"
echo junk >"$T/notstore/file"
expect_mount_error "$T/notstore" "$T/notstore" "$M"
mkdir "$T/emptydir"
expect_mount_error "$T/emptydir" "$T/emptydir" "$M"
expect_mount_error "store '$T/missing' does not exist" "$T/missing" "$M"

note "mountpoint problems"
expect_mount_error "mountpoint '$T/nomnt' does not exist" "$S" "$T/nomnt"
touch "$T/afile"
expect_mount_error "is not a directory" "$S" "$T/afile"

note "bad libfuse option"
expect_mount_error "" -o no_such_option_here "$S" "$M"

note "usage errors exit 2"
rc=0
"$CKPTFS" mount "$S" >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "mount with one argument exited $rc"
"$CKPTFS" mount --help | grep -q "user.ckptfs.seal" || fail "mount --help"

note "second mount of the same store"
ck_mount "$S" "$M"
mkdir -p "$T/mnt2"
out=$(timeout 20 "$CKPTFS" mount -f "$S" "$T/mnt2" 2>&1) && fail "second mount succeeded"
grep -q "already mounted" <<<"$out" && grep -qF "$S" <<<"$out" ||
	fail "second mount message: $out"
mountpoint -q "$T/mnt2" && fail "second mount left a mount"
mkdir "$M/c1"
"$GEN" 61 100000 >"$M/c1/f"

note "SIGTERM unmounts and closes the store"
pid=${DAEMON_PID[$M]}
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
unset "DAEMON_PID[$M]"
[ "$rc" -eq 0 ] || fail "daemon exited $rc after SIGTERM"
mountpoint -q "$M" && fail "still mounted after SIGTERM"

note "detached mount"
EXTRA_MOUNTS+=("$M")
out=$("$CKPTFS" mount -l "$T/bg.log" "$S" "$M" 2>&1) || fail "detached mount failed: $out"
mountpoint -q "$M" || fail "detached mount returned before the mount was up"
bgpid=$(sed -n 's/.*daemon pid \([0-9]*\).*/\1/p' <<<"$out")
[ -n "$bgpid" ] || fail "detached mount did not say its daemon pid: $out"
cmp "$M/c1/f" <("$GEN" 61 100000) || fail "data after SIGTERM + detached remount"
"$GEN" 62 200000 >"$M/c1/g"
fusermount3 -u "$M"
for i in $(seq 100); do
	kill -0 "$bgpid" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$bgpid" 2>/dev/null && fail "detached daemon $bgpid still running after unmount"
grep -q "unmounting" "$T/bg.log" || fail "detached daemon log: $(cat "$T/bg.log")"
ck_mount "$S" "$M"
cmp "$M/c1/g" <("$GEN" 62 200000) || fail "data written through the detached daemon"
ck_umount "$M"

note "ENOSPC on a full filesystem"
SMALL=$T/small
mkdir "$SMALL"
mount -t tmpfs -o size=8m tmpfs "$SMALL"
EXTRA_MOUNTS+=("$SMALL")
ck_init "$SMALL/store"
ck_mount "$SMALL/store" "$M"
mkdir "$M/c1"
"$GEN" 63 $((1024 * 1024)) >"$M/c1/keep"
sync -f "$M/c1/keep"
keep_sum=$(sha256sum <"$M/c1/keep")
expect_fail "No space left on device" \
	dd if=<("$GEN" 64 $((24 * 1024 * 1024))) of="$M/c1/big1" bs=1M iflag=fullblock conv=fsync
expect_fail "No space left on device" \
	dd if=<("$GEN" 65 $((24 * 1024 * 1024))) of="$M/c1/big2" bs=1M iflag=fullblock
ck_umount "$M"
mount -o remount,size=64m "$SMALL"
ck_mount "$SMALL/store" "$M"
[ "$(sha256sum <"$M/c1/keep")" = "$keep_sum" ] || fail "stored file damaged by ENOSPC"
ck_umount "$M"
note "PASS"
