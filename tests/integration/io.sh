#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# io.sh - random-I/O integrity with fio --verify=crc32c (verified again after remount), two
# writers at once (different files; one file at disjoint ranges), concurrent O_APPEND writers.
source "$(dirname "$0")/lib.sh"

GEN=$HELPERS/t_datagen
S=$T/store
M=$T/mnt
ck_init "$S"
ck_mount "$S" "$M"
mkdir -p "$M/c1/fio"

FIO_GLOBAL=(
	--directory="$M/c1/fio" --ioengine=psync --verify=crc32c --verify_fatal=1
	--group_reporting --output-format=terse --verify_state_save=0
)
FIO_JOBS=(
	--name=aligned --rw=randwrite --bs=4k --size=32m --numjobs=2
	--name=unaligned --rw=randwrite --bsrange=1k-96k --blockalign=1k --size=24m
	--name=fsyncing --rw=randwrite --bs=16k --size=16m --fsync=16
)
note "fio random writes, verify=crc32c"
fio "${FIO_GLOBAL[@]}" "${FIO_JOBS[@]}" >"$T/fio.out" 2>&1 || {
	cat "$T/fio.out"
	fail "fio verify failed"
}

note "two writers, different files"
"$GEN" 31 $((160 * 1024 * 1024)) >"$M/c1/w1" &
p1=$!
"$GEN" 32 $((160 * 1024 * 1024)) >"$M/c1/w2" &
p2=$!
wait "$p1" || fail "writer 1"
wait "$p2" || fail "writer 2"
cmp "$M/c1/w1" <("$GEN" 31 $((160 * 1024 * 1024))) || fail "writer 1 data"
cmp "$M/c1/w2" <("$GEN" 32 $((160 * 1024 * 1024))) || fail "writer 2 data"

note "two writers, one file, disjoint ranges"
"$GEN" 33 $((64 * 1024 * 1024)) |
	dd of="$M/c1/shared" bs=64k iflag=fullblock conv=notrunc status=none &
p1=$!
"$GEN" 34 $((64 * 1024 * 1024 + 777)) |
	dd of="$M/c1/shared" bs=64k seek=1024 iflag=fullblock conv=notrunc status=none &
p2=$!
wait "$p1" || fail "range writer 1"
wait "$p2" || fail "range writer 2"
cmp "$M/c1/shared" <(
	"$GEN" 33 $((64 * 1024 * 1024))
	"$GEN" 34 $((64 * 1024 * 1024 + 777))
) || fail "disjoint ranges of one file"

note "concurrent O_APPEND writers"
python3 - "$M/c1/appended" <<'PY' || fail "O_APPEND records"
import os, sys
path = sys.argv[1]
N, L = 2000, 100
pids = []
for w in range(2):
    pid = os.fork()
    if pid == 0:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        for i in range(N):
            rec = ("%d:%06d:" % (w, i)).ljust(L - 1, chr(ord("a") + w)) + "\n"
            os.write(fd, rec.encode())
        os.close(fd)
        os._exit(0)
    pids.append(pid)
for pid in pids:
    if os.waitpid(pid, 0)[1] != 0:
        sys.exit("appender failed")
data = open(path, "rb").read()
if len(data) != 2 * N * L:
    sys.exit("size %d, expected %d" % (len(data), 2 * N * L))
seen = set()
for off in range(0, len(data), L):
    rec = data[off:off + L].decode()
    w, i, _ = rec.split(":", 2)
    if rec != ("%s:%s:" % (w, i)).ljust(L - 1, chr(ord("a") + int(w))) + "\n":
        sys.exit("torn record at %d" % off)
    seen.add((w, i))
if len(seen) != 2 * N:
    sys.exit("%d distinct records" % len(seen))
PY

note "unmount + remount: fio data verifies again"
sha_before=$(cd "$M/c1" && sha256sum w1 w2 shared appended)
ck_umount "$M"
ck_mount "$S" "$M"
fio "${FIO_GLOBAL[@]}" --verify_only "${FIO_JOBS[@]}" >"$T/fio2.out" 2>&1 || {
	cat "$T/fio2.out"
	fail "fio verify after remount failed"
}
[ "$(cd "$M/c1" && sha256sum w1 w2 shared appended)" = "$sha_before" ] || fail "checksums after remount"
ck_umount "$M"
note "PASS"
