#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# corruption.sh - bytes flipped in the middle of a pack file: reading the affected file fails
# with EIO and never returns a wrong byte, the daemon log names the chunk, the other files read
# back intact; 'ckptfs fsck' (when built) reports the damage and exits non-zero.
source "$(dirname "$0")/lib.sh"

GEN=$HELPERS/t_datagen
S=$T/store
M=$T/mnt
NFILES=8
FSIZE=$((2 * 1024 * 1024 + 1000))
ck_init "$S"
ck_mount "$S" "$M"
mkdir "$M/c1"
for k in $(seq "$NFILES"); do
	"$GEN" $((70 + k)) "$FSIZE" >"$M/c1/f$k"
	sync -f "$M/c1/f$k"
done
ck_umount "$M"

pack=$(find "$S" -name '*.pack' -type f -printf '%s %p\n' | sort -n | tail -n 1 | cut -d' ' -f2-)
[ -n "$pack" ] || fail "no pack file in the store: $(find "$S")"
psize=$(stat -c %s "$pack")
note "flipping 64 bytes at offset $((psize / 2)) of $pack ($psize bytes)"
python3 - "$pack" $((psize / 2)) <<'PY'
import sys
path, off = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(off)
    b = bytearray(f.read(64))
    f.seek(off)
    f.write(bytes(x ^ 0x5A for x in b))
PY

ck_mount "$S" "$M"
ok=0
bad=0
bad_names=()
for k in $(seq "$NFILES"); do
	rc=0
	cat "$M/c1/f$k" >"$T/out" 2>"$T/err" || rc=$?
	if [ "$rc" -eq 0 ]; then
		cmp "$T/out" <("$GEN" $((70 + k)) "$FSIZE") || fail "f$k read without error but differs"
		ok=$((ok + 1))
	else
		grep -q "Input/output error" "$T/err" || fail "f$k failed without EIO: $(cat "$T/err")"
		got=$(stat -c %s "$T/out")
		cmp -n "$got" "$T/out" <("$GEN" $((70 + k)) "$FSIZE") ||
			fail "f$k returned wrong bytes before its EIO"
		bad=$((bad + 1))
		bad_names+=("f$k")
	fi
done
note "$bad file(s) with EIO, $ok intact"
[ "$bad" -ge 1 ] || fail "corrupting the pack went unnoticed"
[ "$ok" -ge 1 ] || fail "corruption in one place broke every file"
ck_umount "$M"
grep -i "chunk" "${DAEMON_LOG[$M]}" | grep -qi "[0-9a-f]\{32\}" ||
	fail "daemon log does not name the damaged chunk: $(cat "${DAEMON_LOG[$M]}")"
for name in "${bad_names[@]}"; do
	grep -q "'/c1/$name'" "${DAEMON_LOG[$M]}" ||
		fail "daemon log does not name the damaged file $name: $(cat "${DAEMON_LOG[$M]}")"
done
note "daemon log: $(grep -i chunk "${DAEMON_LOG[$M]}" | head -n 1)"

if ck_has_cmd fsck; then
	rc=0
	out=$("$CKPTFS" fsck "$S" 2>&1) || rc=$?
	[ "$rc" -ne 0 ] || fail "fsck did not report the flipped bytes: $out"
	note "fsck exit $rc: $(head -n 1 <<<"$out")"
fi
note "PASS"
