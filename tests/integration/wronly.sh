#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# wronly.sh - write-only handles bypass the kernel's page cache (fs/fsops_data.c): what they
# write must still be what every other view of the file shows at once - a read-write handle
# that cached the old bytes, a read-only handle, a shared mapping - and O_APPEND through them
# must still append. Then the same bytes must be in the store after a remount.
source "$(dirname "$0")/lib.sh"

S=$T/store
M=$T/mnt
ck_init "$S"
ck_mount "$S" "$M"
mkdir "$M/c1"

note "readers see writes made through a write-only handle"
python3 - "$M/c1/f" <<'PYEOF' || fail "a view of the file missed a write-only handle's write"
import mmap, os, sys

path = sys.argv[1]
rw = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(rw, b"A" * 65536, 0)
ro = os.open(path, os.O_RDONLY)
m = mmap.mmap(ro, 65536, prot=mmap.PROT_READ)
# Fill every cache the kernel keeps for the other handles before the direct writes.
assert os.pread(ro, 65536, 0) == b"A" * 65536 and os.pread(rw, 65536, 0) == b"A" * 65536
assert m[:65536] == b"A" * 65536
wo = os.open(path, os.O_WRONLY)
os.pwrite(wo, b"B" * 8192, 4096)
want = b"A" * 4096 + b"B" * 8192 + b"A" * (65536 - 12288)
for name, got in (("read-only", os.pread(ro, 65536, 0)), ("read-write", os.pread(rw, 65536, 0)),
                  ("mapping", m[:65536])):
    if got != want:
        sys.exit(f"{name} handle reads stale bytes after a write-only write")
os.pwrite(wo, b"C" * 100, 65536)
if os.fstat(ro).st_size != 65636 or os.pread(ro, 100, 65536) != b"C" * 100:
    sys.exit("an extending write-only write is not visible to a reader")
ap = os.open(path, os.O_WRONLY | os.O_APPEND)
os.write(ap, b"D" * 5000)
os.write(wo, b"E")  # at this handle's own offset 0, not appended
if os.fstat(ro).st_size != 70636 or os.pread(ro, 5000, 65636) != b"D" * 5000:
    sys.exit("O_APPEND through a write-only handle did not append")
if os.pread(ro, 2, 0) != b"EA":
    sys.exit("a write-only write at offset 0 is not visible")
for fd in (ap, wo, ro, rw):
    os.close(fd)
m.close()
PYEOF

note "the bytes are stored"
python3 -c 'import sys; sys.stdout.buffer.write(b"E" + b"A" * 4095 + b"B" * 8192 + b"A" * 53248 + b"C" * 100 + b"D" * 5000)' >"$T/want"
ck_umount "$M"
ck_mount "$S" "$M"
cmp "$M/c1/f" "$T/want" || fail "c1/f reads back wrong after a remount"
ck_umount "$M"
note "PASS"
