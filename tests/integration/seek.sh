#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# seek.sh - lseek SEEK_DATA / SEEK_HOLE (index/seek.c): the chunks a file has are data, the
# ones it does not (never written, written as zeros, punched, past a truncation) are holes,
# with writes still buffered and after they are stored; a 1 TiB sparse file answers from the
# file map without walking its empty blocks; a file with one chunk in each MiB (one per map
# block) lists all 64, buffered and stored, and cp --sparse=always copies it equal.
source "$(dirname "$0")/lib.sh"

S=$T/store
M=$T/mnt
ck_init "$S"
ck_mount "$S" "$M"
mkdir "$M/c1"

note "data and holes, buffered and stored"
python3 - "$M/c1" <<'PYEOF' || fail "SEEK_DATA/SEEK_HOLE gave a wrong layout"
import errno, os, sys

d = sys.argv[1]
K = 4096


def layout(path):
    fd = os.open(path, os.O_RDONLY)
    size, out, off = os.fstat(fd).st_size, [], 0
    while off < size:
        try:
            data = os.lseek(fd, off, os.SEEK_DATA)
        except OSError as e:
            assert e.errno == errno.ENXIO, e
            out.append(("hole", off, size))
            break
        if data > off:
            out.append(("hole", off, data))
        hole = os.lseek(fd, data, os.SEEK_HOLE)
        out.append(("data", data, hole))
        off = hole
    os.close(fd)
    return out


def expect(what, got, want):
    if got != want:
        sys.exit(f"{what}: got {got}, want {want}")


p = os.path.join(d, "f")
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(fd, b"A" * 2 * K, 0)          # chunks 0-1: data
os.pwrite(fd, b"\0" * 4 * K, 2 * K)     # chunks 2-5: written as zeros, holes
os.pwrite(fd, b"B" * 100, 22 * K + 7)   # chunk 22: data, partly written
os.ftruncate(fd, 256 * K)               # a hole up to the end
want = [("data", 0, 2 * K), ("hole", 2 * K, 22 * K), ("data", 22 * K, 23 * K),
        ("hole", 23 * K, 256 * K)]
expect("buffered", layout(p), want)
# Offsets inside a chunk: SEEK_DATA/SEEK_HOLE answer the offset itself when it is of that kind.
expect("data at 100", os.lseek(fd, 100, os.SEEK_DATA), 100)
expect("hole at 3*K+5", os.lseek(fd, 3 * K + 5, os.SEEK_HOLE), 3 * K + 5)
for whence, off in ((os.SEEK_DATA, 23 * K), (os.SEEK_DATA, 256 * K), (os.SEEK_HOLE, 256 * K)):
    try:
        os.lseek(fd, off, whence)
        sys.exit(f"lseek({off}, {whence}) past the last data or the end did not fail")
    except OSError as e:
        expect(f"errno of lseek({off}, {whence})", e.errno, errno.ENXIO)
os.fsync(fd)
expect("stored", layout(p), want)
# A punched chunk becomes a hole; a write into the tail hole becomes data.
os.close(fd)
os.system(f"fallocate --punch-hole --offset {K} --length {K} {p}")
os.system(f"printf C | dd of={p} bs=1 seek={100 * K} conv=notrunc status=none")
expect("after punch and write", layout(p),
       [("data", 0, K), ("hole", K, 22 * K), ("data", 22 * K, 23 * K), ("hole", 23 * K, 100 * K),
        ("data", 100 * K, 101 * K), ("hole", 101 * K, 256 * K)])
with open(p, "rb") as f:
    b = f.read()
expect("bytes", (b[:K], b[K:2 * K], b[22 * K + 7:22 * K + 107], b[100 * K:100 * K + 1], len(b)),
       (b"A" * K, b"\0" * K, b"B" * 100, b"C", 256 * K))

# 1 TiB, one chunk of data in the middle: stored, the map answers at once (walking 2^28
# chunks would take minutes); buffered, the answer may be early but what it skips is zeros.
p = os.path.join(d, "big")
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, 1 << 40)
os.pwrite(fd, b"D" * K, 1 << 39)
got = os.lseek(fd, 0, os.SEEK_DATA)
if got > 1 << 39 or any(os.pread(fd, K, o) != b"\0" * K for o in range(0, got, 1 << 30)):
    sys.exit(f"buffered 1 TiB file: SEEK_DATA from 0 gave {got}")
os.fsync(fd)
expect("stored 1 TiB file", layout(p), [("hole", 0, 1 << 39), ("data", 1 << 39, (1 << 39) + K),
                                        ("hole", (1 << 39) + K, 1 << 40)])
os.close(fd)
PYEOF

note "one chunk in each MiB: every data chunk found, buffered and stored"
# cp --sparse finds zero runs by reading them when lseek reports none, so its copy is sparse
# either way: the extents are checked here, cp only for equal bytes.
python3 - "$M/c1/sparse" <<'PYEOF' || fail "SEEK_DATA/SEEK_HOLE missed data chunks of c1/sparse"
import errno, os, sys

K = 4096
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
for i in range(64):
    os.pwrite(fd, b"x" * K, i << 20)


def extents():
    out, off = [], 0
    while True:
        try:
            data = os.lseek(fd, off, os.SEEK_DATA)
        except OSError as e:
            assert e.errno == errno.ENXIO, e
            return out
        off = os.lseek(fd, data, os.SEEK_HOLE)
        out.append((data, off))


want = [(i << 20, (i << 20) + K) for i in range(64)]
for what in ("buffered", "stored"):
    got = extents()
    if got != want:
        sys.exit(f"{what}: {len(got)} extents {got[:3]}..., want 64 of one chunk at each MiB")
    os.fsync(fd)
os.close(fd)
PYEOF
cp --sparse=always "$M/c1/sparse" "$T/copy"
cmp "$M/c1/sparse" "$T/copy" || fail "the sparse copy differs"

note "a sealed checkpoint answers the same after a remount"
setfattr -n user.ckptfs.seal -v 1 "$M/c1" || fail "cannot seal c1"
ck_umount "$M"
ck_mount "$S" "$M"
python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
got = (os.lseek(fd, 0, os.SEEK_HOLE), os.lseek(fd, 4096, os.SEEK_DATA), os.lseek(fd, 22*4096, os.SEEK_HOLE))
sys.exit(0 if got == (4096, 22*4096, 23*4096) else f"after remount: {got}")' "$M/c1/f" ||
	fail "SEEK_DATA/SEEK_HOLE differ after a remount"
ck_umount "$M"
note "PASS"
