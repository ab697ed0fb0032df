#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# defer.sh CKPTFS HELPERS - deferred compression through a real mount: with deferral forced
# (CKPTFS_DEFER=always) files read back bit-exact while their chunks are stored raw; the
# mount's background pass (a nice'd `ckptfs gc --compress-deferred` it starts once writes are
# idle) compresses them while the files are being read, leaving a store of the same size as
# one written with deferral off, fsck clean; deferred records left by an earlier mount are
# picked up at the next mount; with deferral off nothing is deferred.
source "$(dirname "$0")/lib.sh"

GEN=$HELPERS/t_datagen

# df_field STORE FIELD: one number from `ckptfs df --json`.
df_field() {
	"$CKPTFS" df --json "$1" | sed -n "s/.*\"$2\": \([0-9]*\).*/\1/p"
}

# wait_settled STORE SECONDS: until no deferred bytes are left.
wait_settled() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		[ "$(df_field "$1" deferred_bytes)" = 0 ] && return 0
		sleep 0.1
	done
	fail "store '$1' still has $(df_field "$1" deferred_bytes) deferred bytes after $2 s"
}

# Compressible text, random pages and repeated pages: ~24 MiB.
(
	seq 1 2000000
	"$GEN" 11 8388608
	"$GEN" 12 2097152 16
) >"$T/data1"
seq 3000000 4000000 >"$T/data2"

note "reference: deferral off"
ck_init "$T/ref"
CKPTFS_DEFER=never ck_mount "$T/ref" "$T/mref"
mkdir "$T/mref/c"
cp "$T/data1" "$T/mref/c/f1"
cp "$T/data2" "$T/mref/c/f2"
sync "$T/mref/c/f1" "$T/mref/c/f2"
[ "$(df_field "$T/ref" deferred_bytes)" = 0 ] || fail "deferral off still deferred chunks"
for p in "$T"/ref/packs/*.pack; do
	[ "$(od -An -tu4 -j8 -N4 "$p" | tr -d ' ')" = 1 ] || fail "pack '$p' is not version 1"
done
ck_umount "$T/mref"
ref_packs=$(df_field "$T/ref" pack_bytes)
ref_stored=$(df_field "$T/ref" stored_bytes)

note "deferral forced, no background pass: raw records, same bytes"
ck_init "$T/s"
CKPTFS_DEFER=always CKPTFS_DEFER_IDLE_MS=0 ck_mount "$T/s" "$T/m"
mkdir "$T/m/c"
cp "$T/data1" "$T/m/c/f1"
sync "$T/m/c/f1"
deferred=$(df_field "$T/s" deferred_bytes)
stored=$(df_field "$T/s" stored_bytes)
note "deferred $deferred of $stored stored bytes (reference stores $ref_stored for both files)"
[ "$deferred" -gt 0 ] && [ "$deferred" = "$stored" ] || fail "expected every chunk deferred"
cmp "$T/data1" "$T/m/c/f1" || fail "f1 reads back wrong while deferred"
"$CKPTFS" fsck "$T/s" >"$T/fsck.out" 2>&1 || fail "fsck with deferred records: $(cat "$T/fsck.out")"
ck_umount "$T/m"

note "remount: the leftover deferred records are compressed in the background, reads go on"
CKPTFS_DEFER=always CKPTFS_DEFER_IDLE_MS=300 ck_mount "$T/s" "$T/m"
# Cold reads through a fresh mount, concurrently with the pass the daemon starts right away.
for i in 1 2 3; do
	cmp "$T/data1" "$T/m/c/f1" || fail "f1 reads back wrong during the background pass"
done
wait_settled "$T/s" 60
cmp "$T/data1" "$T/m/c/f1" || fail "f1 reads back wrong after the background pass"

note "writes while mounted: deferred, then compressed once writes are idle"
cp "$T/data2" "$T/m/c/f2"
sync "$T/m/c/f2"
[ "$(df_field "$T/s" deferred_bytes)" -gt 0 ] || note "(the pass was quicker than df)"
wait_settled "$T/s" 60
grep -q "background compression pass .*failed" "${DAEMON_LOG[$T/m]}" &&
	fail "a background pass failed: $(grep 'pass' "${DAEMON_LOG[$T/m]}")"
cmp "$T/data1" "$T/m/c/f1" || fail "f1 reads back wrong after the second pass"
cmp "$T/data2" "$T/m/c/f2" || fail "f2 reads back wrong after the second pass"
ck_umount "$T/m"

packs=$(df_field "$T/s" pack_bytes)
stored=$(df_field "$T/s" stored_bytes)
note "settled: stored $stored (reference $ref_stored), packs $packs (reference $ref_packs)"
[ "$stored" = "$ref_stored" ] || fail "settled store holds $stored bytes of records, want $ref_stored"
# Pack headers differ in number (one per pack); anything beyond 1 % is a compression miss.
[ "$packs" -le $((ref_packs + ref_packs / 100)) ] || fail "packs $packs > reference $ref_packs + 1 %"
for p in "$T"/s/packs/*.pack; do
	[ "$(od -An -tu4 -j8 -N4 "$p" | tr -d ' ')" = 1 ] || fail "pack '$p' still says version 2"
done
out=$("$CKPTFS" fsck "$T/s" 2>&1) || fail "fsck after the passes: $out"

note "default mode (auto): big flushes deferred, the store settles to the reference size"
ck_init "$T/a"
CKPTFS_DEFER_IDLE_MS=300 ck_mount "$T/a" "$T/ma" -d
mkdir "$T/ma/c"
cp "$T/data1" "$T/ma/c/f1"
cp "$T/data2" "$T/ma/c/f2"
wait_settled "$T/a" 60
cmp "$T/data1" "$T/ma/c/f1" || fail "f1 reads back wrong (auto)"
cmp "$T/data2" "$T/ma/c/f2" || fail "f2 reads back wrong (auto)"
grep -q "background compression pass done" "${DAEMON_LOG[$T/ma]}" ||
	note "(nothing was deferred this time)"
ck_umount "$T/ma"
[ "$(df_field "$T/a" stored_bytes)" = "$ref_stored" ] ||
	fail "auto store holds $(df_field "$T/a" stored_bytes) bytes of records, want $ref_stored"
out=$("$CKPTFS" fsck "$T/a" 2>&1) || fail "fsck of the auto store: $out"
echo "PASS"
