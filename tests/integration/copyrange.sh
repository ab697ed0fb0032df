#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# copyrange.sh - copy_file_range(2) between files of one mount is a chunk-reference copy
# (index/copy.c, fs/fsops_copy.c). Checks that the kernel hands the call to the daemon (with a
# read-only source and a write-only, direct_io destination), the semantics of any range against
# a model (unaligned edges, mismatched offsets, EOF, buffered writes on both sides, holes, one
# file, a sealed destination, other filesystems, more than 4 GiB), exact refcounts (fsck) after
# the copies, after removing the source checkpoint and after gc, and that copying a large file
# adds no pack bytes and is far faster than reading and writing it (numbers printed); and kill -9
# during copies leaves a clean store in which every fsync'd copy reads back.
source "$(dirname "$0")/lib.sh"

S=$T/store
M=$T/mnt
# Size of the speed check; the sanitizer build runs the store several times slower.
BIG_MIB=${CKPTFS_IT_COPY_MIB:-1024}
MIN_RATIO=${CKPTFS_IT_COPY_MIN_RATIO:-4}
ck_init "$S"

df_field() { # FIELD: one number from 'ckptfs df --json'
	"$CKPTFS" df --json "$S" | python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"
}

check_fsck() { # WHEN
	local out
	out=$("$CKPTFS" fsck "$S" 2>&1) || fail "fsck after $1: $out"
}

note "the kernel sends copy_file_range to the daemon (O_RDONLY source, O_WRONLY direct_io dest)"
ck_mount "$S" "$M" -d
mkdir "$M/p"
"$HELPERS/t_datagen" 1 $((8 << 20)) >"$M/p/src"
python3 - "$M/p/src" "$M/p/dst" <<'PYEOF' || fail "copy_file_range into the mount failed"
import os, sys

src = os.open(sys.argv[1], os.O_RDONLY)
dst = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
n = os.copy_file_range(src, dst, 8 << 20)
if n != 8 << 20:
    sys.exit(f"copied {n} bytes, want {8 << 20}")
os.close(dst)
os.close(src)
PYEOF
cmp "$M/p/src" "$M/p/dst" || fail "p/dst differs from p/src after copy_file_range"
grep -q "opcode: COPY_FILE_RANGE" "${DAEMON_LOG[$M]}" ||
	fail "the daemon never received COPY_FILE_RANGE (the kernel copied by itself)"
ck_umount "$M"

note "semantics of any range, against a model"
ck_mount "$S" "$M"
mkdir "$M/sem" "$M/seal"
python3 - "$M" "$T" <<'PYEOF' || fail "copy_file_range semantics"
import errno, os, random, sys

M, T = sys.argv[1], sys.argv[2]
PG = 4096
rnd = random.Random(7)
problems = []


def check(cond, what):
    if not cond:
        problems.append(what)


def blob(n):
    # Pages of random bytes, of a repeated byte and of zeros, in runs.
    out = bytearray()
    while len(out) < n:
        kind = rnd.randrange(3)
        run = rnd.randrange(1, 3 * PG)
        out += rnd.randbytes(run) if kind == 0 else bytes([kind * 40]) * run if kind == 1 else bytes(run)
    return bytes(out[:n])


def cfr(fi, fo, n, off_in=None, off_out=None):
    return os.copy_file_range(fi, fo, n, off_in, off_out)


def same(fd, model, what):
    got = os.pread(fd, len(model) + 1, 0)
    check(got == bytes(model), f"{what}: file differs from the model "
          f"({len(got)} bytes read, {len(model)} expected)")


def place(model, off, data):
    if len(model) < off:
        model.extend(bytes(off - len(model)))
    model[off:off + len(data)] = data


src_data = bytearray(blob(64 * PG + 123))
srcp, dstp = f"{M}/sem/src", f"{M}/sem/dst"
with open(srcp, "wb") as f:
    f.write(src_data)
si = os.open(srcp, os.O_RDONLY)
do = os.open(dstp, os.O_WRONLY | os.O_CREAT, 0o644)
dr = os.open(dstp, os.O_RDONLY)
dst = bytearray()

# Matching in-page offsets, unaligned head and tail: reference copy in the middle.
check(cfr(si, do, 10 * PG + 500, 1000, 1000) == 10 * PG + 500, "unaligned head/tail count")
place(dst, 1000, src_data[1000:1000 + 10 * PG + 500])
same(dr, dst, "unaligned head/tail")
# Different in-page offsets: all bytes.
check(cfr(si, do, 5 * PG, 7, 20 * PG + 1) == 5 * PG, "mismatched offsets count")
place(dst, 20 * PG + 1, src_data[7:7 + 5 * PG])
same(dr, dst, "mismatched offsets")
# Past the source's end: short count, then 0.
n = cfr(si, do, 1 << 30, 60 * PG, 30 * PG)
check(n == len(src_data) - 60 * PG, f"short count at EOF: {n}")
place(dst, 30 * PG, src_data[60 * PG:])
same(dr, dst, "copy up to EOF")
check(cfr(si, do, PG, len(src_data), 0) == 0, "copy at EOF is not 0")
check(cfr(si, do, PG, len(src_data) + 5 * PG, 0) == 0, "copy past EOF is not 0")

# A write just before the copy is copied; a write after it into the destination wins.
sw = os.open(srcp, os.O_RDWR)
os.pwrite(sw, b"W" * PG, 2 * PG)
src_data[2 * PG:3 * PG] = b"W" * PG
check(cfr(si, do, 8 * PG, 0, 40 * PG) == 8 * PG, "copy after write count")
place(dst, 40 * PG, src_data[0:8 * PG])
same(dr, dst, "copy right after a write to the source")
os.pwrite(do, b"V" * 100, 41 * PG + 5)
place(dst, 41 * PG + 5, b"V" * 100)
same(dr, dst, "write into the destination after a copy")

# One file: non-overlapping ranges work, overlapping ones are EINVAL.
check(cfr(sw, sw, 4 * PG, 0, 10 * PG) == 4 * PG, "same-file copy count")
src_data[10 * PG:14 * PG] = src_data[0:4 * PG]
same(si, src_data, "same-file copy")
try:
    cfr(sw, sw, 4 * PG, 0, 2 * PG)
    problems.append("overlapping same-file copy succeeded")
except OSError as e:
    check(e.errno == errno.EINVAL, f"overlapping same-file copy: {e}")
os.close(sw)

# Holes stay holes: a sparse source gives a sparse destination.
hp = f"{M}/sem/holes"
hw = os.open(hp, os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(hw, 32 << 20)
for pg in (0, 1000, 8191):
    os.pwrite(hw, rnd.randbytes(PG), pg * PG)
os.close(hw)
hi = os.open(hp, os.O_RDONLY)
ho = os.open(f"{M}/sem/holes2", os.O_WRONLY | os.O_CREAT, 0o644)
check(cfr(hi, ho, 32 << 20) == 32 << 20, "sparse copy count")
os.close(ho)
a, b = os.stat(hp), os.stat(f"{M}/sem/holes2")
check(a.st_size == b.st_size and a.st_blocks == b.st_blocks,
      f"sparse copy: size/blocks {b.st_size}/{b.st_blocks}, source {a.st_size}/{a.st_blocks}")
with open(hp, "rb") as f1, open(f"{M}/sem/holes2", "rb") as f2:
    check(f1.read() == f2.read(), "sparse copy: contents differ")

# More than 4 GiB (the reply carries 32 bits): short counts, a loop gets it all.
bp = f"{M}/sem/huge"
bw = os.open(bp, os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(bw, 5 << 30)
os.pwrite(bw, b"E" * PG, (5 << 30) - 2 * PG)
os.close(bw)
bi = os.open(bp, os.O_RDONLY)
bo = os.open(f"{M}/sem/huge2", os.O_WRONLY | os.O_CREAT, 0o644)
total, calls = 0, 0
while True:
    n = cfr(bi, bo, 8 << 30)
    if n == 0:
        break
    check(n < 1 << 32, f"one call reported {n} bytes")
    total += n
    calls += 1
check(total == 5 << 30 and os.fstat(bo).st_size == 5 << 30, f"huge copy: {total} bytes")
check(os.pread(os.open(f"{M}/sem/huge2", os.O_RDONLY), PG, (5 << 30) - 2 * PG) == b"E" * PG,
      "huge copy: last data page differs")

# Another filesystem: the kernel refuses (EXDEV, callers fall back) or copies the bytes.
op = f"{T}/plain"
with open(op, "wb") as f:
    f.write(b"P" * 10000)
oi = os.open(op, os.O_RDONLY)
oo = os.open(f"{M}/sem/fromplain", os.O_WRONLY | os.O_CREAT, 0o644)
try:
    n = os.copy_file_range(oi, oo, 10000)
    with open(f"{M}/sem/fromplain", "rb") as f:
        check(n == 10000 and f.read() == b"P" * 10000, "copy from another filesystem")
except OSError as e:
    check(e.errno == errno.EXDEV, f"copy from another filesystem: {e}")

# A destination whose checkpoint was sealed while it was open: EROFS.
with open(f"{M}/seal/f", "wb") as f:
    f.write(b"S" * PG)
so = os.open(f"{M}/seal/f", os.O_WRONLY)
os.setxattr(f"{M}/seal", "user.ckptfs.seal", b"1")
try:
    cfr(si, so, PG, 0, 0)
    problems.append("copy into a sealed checkpoint succeeded")
except OSError as e:
    check(e.errno == errno.EROFS, f"copy into a sealed checkpoint: {e}")
os.close(so)
with open(f"{M}/seal/f", "rb") as f:
    check(f.read() == b"S" * PG, "sealed file changed")

for fd in (si, do, dr, hi, bi, bo, oi, oo):
    os.close(fd)
with open(f"{T}/dst.want", "wb") as f:
    f.write(dst)
with open(f"{T}/src.want", "wb") as f:
    f.write(src_data)
for p in problems:
    print("problem:", p, file=sys.stderr)
sys.exit(1 if problems else 0)
PYEOF
cmp "$M/sem/dst" "$T/dst.want" || fail "sem/dst differs from the model"
ck_umount "$M"
check_fsck "the copies"
ck_mount "$S" "$M"
cmp "$M/sem/dst" "$T/dst.want" || fail "sem/dst differs from the model after a remount"
cmp "$M/sem/src" "$T/src.want" || fail "sem/src differs from the model after a remount"

note "copies outlive their source checkpoint and gc"
mkdir "$M/keep"
for f in src dst holes; do
	python3 -c 'import os, sys
fi = os.open(sys.argv[1], os.O_RDONLY)
fo = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT, 0o644)
size = os.fstat(fi).st_size
while os.copy_file_range(fi, fo, size):
    pass' "$M/sem/$f" "$M/keep/$f" || fail "copy sem/$f to keep/$f"
done
sha256sum "$M/sem/holes" | cut -d' ' -f1 >"$T/holes.sum"
"$CKPTFS" rm "$S" sem p >/dev/null || fail "ckptfs rm sem p"
check_fsck "removing the source checkpoints"
"$CKPTFS" gc "$S" >/dev/null || fail "ckptfs gc"
check_fsck "gc"
cmp "$M/keep/dst" "$T/dst.want" || fail "keep/dst differs after removing its source and gc"
cmp "$M/keep/src" "$T/src.want" || fail "keep/src differs after removing its source and gc"
[ "$(sha256sum "$M/keep/holes" | cut -d' ' -f1)" = "$(cat "$T/holes.sum")" ] ||
	fail "keep/holes differs after removing its source and gc"
ck_umount "$M"
check_fsck "unmount"

note "speed: $BIG_MIB MiB by reference vs read+write, and no new pack bytes"
ck_mount "$S" "$M"
mkdir "$M/parent" "$M/next"
"$HELPERS/t_datagen" 2 $((BIG_MIB << 20)) >"$M/parent/pages.img"
setfattr -n user.ckptfs.seal -v 1 "$M/parent" || fail "sealing parent"
# Let the mount's background pass compress what the big write deferred first: its pack
# rewriting would otherwise show up in the growth measured below (deferred compression).
for ((i = 0; i < 600; i++)); do
	[ "$(df_field deferred_bytes)" = 0 ] && break
	sleep 0.1
done
packs0=$(df_field pack_bytes)
chunks0=$(df_field chunks)
ref=$(python3 - "$M/parent/pages.img" "$M/next/pages.img" <<'PYEOF'
import os, sys, time

fi = os.open(sys.argv[1], os.O_RDONLY)
fo = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
size = os.fstat(fi).st_size
t = time.monotonic()
done = 0
while done < size:
    n = os.copy_file_range(fi, fo, size - done)
    if n == 0:
        sys.exit(f"copy stopped at {done} of {size} bytes")
    done += n
os.fsync(fo)
os.close(fo)
print(f"{time.monotonic() - t:.3f}")
PYEOF
) || fail "reference copy of parent/pages.img"
packs1=$(df_field pack_bytes)
chunks1=$(df_field chunks)
t0=$(date +%s.%N)
dd if="$M/parent/pages.img" of="$M/next/pages.dd" bs=1M conv=fsync status=none ||
	fail "dd of parent/pages.img"
t1=$(date +%s.%N)
rw=$(echo "$t1 - $t0" | bc -l)
cmp "$M/parent/pages.img" "$M/next/pages.img" || fail "next/pages.img differs from its source"
cmp "$M/parent/pages.img" "$M/next/pages.dd" || fail "next/pages.dd differs from its source"
growth=$((packs1 - packs0))
printf '== %s: %d MiB: copy_file_range %.3f s (%.0f MB/s), dd read+write %.3f s, ratio %.1fx; pack growth %d bytes, chunks %d -> %d\n' \
	"$TEST_NAME" "$BIG_MIB" "$ref" "$(echo "$BIG_MIB * 1.048576 / $ref" | bc -l)" "$rw" \
	"$(echo "$rw / $ref" | bc -l)" "$growth" "$chunks0" "$chunks1"
[ "$chunks1" -eq "$chunks0" ] || fail "the reference copy added chunks ($chunks0 -> $chunks1)"
[ "$growth" -lt $((1 << 20)) ] || fail "the reference copy grew the packs by $growth bytes"
# Far faster: a copy that read and wrote (and hashed) the bytes could not reach 4x dd. (The
# sanitizer build asks less: its fixed costs - fsync, the manifest walk - weigh more at 256 MiB.)
[ "$(echo "$rw > $MIN_RATIO * $ref" | bc -l)" -eq 1 ] ||
	fail "copy_file_range ($ref s) is not far faster than read+write ($rw s)"
ck_umount "$M"
check_fsck "the large copy"

note "kill -9 during copies: fsck clean, every fsync'd copy intact"
REC=$T/copies.rec
: >"$REC"
for round in 1 2 3; do
	ck_mount "$S" "$M"
	mkdir -p "$M/crash"
	python3 - "$M/parent/pages.img" "$M/crash" "$REC" "$round" <<'PYEOF' &
import os, random, sys

src, d, rec, rnd_seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
PG = 4096
rnd = random.Random(rnd_seed)
fi = os.open(src, os.O_RDONLY)
size = min(os.fstat(fi).st_size, 64 << 20)
recfd = os.open(rec, os.O_WRONLY | os.O_APPEND)
try:
    for i in range(100000):
        name = f"r{rnd_seed}.{i}"
        off = rnd.randrange(size // PG) * PG + (rnd.randrange(PG) if i % 4 == 0 else 0)
        n = rnd.randrange(1, min(size - off, 1024 * PG) + 1)
        fo = os.open(f"{d}/{name}", os.O_WRONLY | os.O_CREAT, 0o644)
        done = 0
        while done < n:
            done += os.copy_file_range(fi, fo, n - done, off + done, off + done)
        os.fsync(fo)
        os.close(fo)
        os.write(recfd, f"{name} {off} {n}\n".encode())
        os.fsync(recfd)
except OSError:
    pass  # the daemon was killed under us
PYEOF
	copier=$!
	sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.3 + (r % 100) / 100 }')"
	ck_kill9 "$M"
	wait "$copier" || true
	check_fsck "kill -9 during copies (round $round)"
	ck_mount "$S" "$M"
	python3 - "$M/parent/pages.img" "$M/crash" "$REC" <<'PYEOF' || fail "round $round: a fsync'd copy differs"
import os, sys

src, d, rec = sys.argv[1], sys.argv[2], sys.argv[3]
with open(src, "rb") as f:
    data = f.read(64 << 20)
n = 0
for line in open(rec):
    name, off, ln = line.split()
    off, ln = int(off), int(ln)
    with open(f"{d}/{name}", "rb") as f:
        got = f.read()
    if len(got) != off + ln or got[off:] != data[off:off + ln] or got[:off].count(0) != off:
        sys.exit(f"{name}: copy of {ln} bytes at {off} reads back wrong ({len(got)} bytes)")
    n += 1
print(f"== copyrange: {n} fsync'd copies intact")
PYEOF
	ck_umount "$M"
done
[ -s "$REC" ] || fail "no copy was ever fsync'd: the crash rounds proved nothing"
note "PASS"
