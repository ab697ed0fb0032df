#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# posix.sh - the POSIX subset through a real mount: cp -a of a tree of a few thousand entries +
# diff -r, tar extract and create, symlinks, hard links, chmod/chown/utimens, user.* xattrs, a
# large directory, renames (NOREPLACE, EXCHANGE, across checkpoints, into the root), unlink and
# rename of open files, truncate/fallocate, the root's rules, and the whole tree bit-exact after
# unmount + remount.
source "$(dirname "$0")/lib.sh"

S=$T/store
M=$T/mnt
R2="$HELPERS/t_rename2"
ck_init "$S"
ck_mount "$S" "$M"

note "root holds only checkpoint directories"
mkdir "$M/c1" "$M/c2"
expect_fail "Operation not permitted" touch "$M/rootfile"
expect_fail "Operation not permitted" ln -s x "$M/rootlink"
[ "$(ls "$M")" = "$(printf 'c1\nc2')" ] || fail "root listing: $(ls "$M")"

note "source tree: zoneinfo + linux headers + hard links, xattrs, odd modes"
SRC=$T/src
mkdir -p "$SRC"
cp -a /usr/share/zoneinfo "$SRC/zoneinfo"
cp -a /usr/include/linux "$SRC/linux"
ln "$SRC/linux/fs.h" "$SRC/fs-hardlink.h"
setfattr -n user.origin -v "debian headers" "$SRC/linux/fuse.h"
chmod 0751 "$SRC/linux"
chmod 0604 "$SRC/linux/stat.h"
chown 4321:8765 "$SRC/linux/types.h"
touch -h -d '1999-12-31 23:59:58.123456789' "$SRC/zoneinfo/UTC"
"$HELPERS/t_datagen" 7 $((3 * 1024 * 1024 + 123)) >"$SRC/odd-size.bin"
truncate -s 50M "$SRC/sparse.bin"
printf 'tail' >>"$SRC/sparse.bin"
nsrc=$(find "$SRC" | wc -l)
note "copying $nsrc entries with cp -a"
cp -a "$SRC" "$M/c1/tree"
diff -r --no-dereference "$SRC" "$M/c1/tree" || fail "diff -r after cp -a"
diff <(tree_digest "$SRC") <(tree_digest "$M/c1/tree") || fail "metadata after cp -a differs"
[ "$(getfattr --absolute-names --only-values -n user.origin "$M/c1/tree/linux/fuse.h")" = "debian headers" ] ||
	fail "xattr not copied"
[ "$(stat -c %i "$M/c1/tree/linux/fs.h")" = "$(stat -c %i "$M/c1/tree/fs-hardlink.h")" ] ||
	fail "hard link not preserved by cp -a"

note "tar extract and create"
tar -C "$SRC" -cf "$T/src.tar" --xattrs .
mkdir "$M/c2/untar"
tar -C "$M/c2/untar" -xf "$T/src.tar" --xattrs --xattrs-include='user.*'
diff -r --no-dereference "$SRC" "$M/c2/untar" || fail "diff -r after tar extract"
diff <(tree_digest "$SRC") <(tree_digest "$M/c2/untar") || fail "metadata after tar extract"
tar -C "$M/c2/untar" -cf "$T/back.tar" .
# Which of two hard links tar stores as the file depends on readdir order: leave those out.
tar_list() { tar -tvf "$1" | grep -v -e 'fs-hardlink\.h' -e 'linux/fs\.h' | sort; }
diff <(tar_list "$T/src.tar") <(tar_list "$T/back.tar") ||
	fail "tar listing of the mount differs"
mkdir "$T/back"
tar -C "$T/back" -xf "$T/back.tar"
diff -r --no-dereference "$SRC" "$T/back" || fail "tar created from the mount differs"

note "symlinks, hard links, chmod, chown, utimens"
D=$M/c1/misc
mkdir "$D"
ln -s ../some/where "$D/sl"
[ "$(readlink "$D/sl")" = "../some/where" ] || fail "readlink"
[ "$(stat -c %F "$D/sl")" = "symbolic link" ] || fail "symlink type"
echo hello >"$D/h1"
ln "$D/h1" "$D/h2"
[ "$(stat -c %h "$D/h1")" = 2 ] || fail "nlink after link: $(stat -c %h "$D/h1")"
echo more >>"$D/h2"
[ "$(cat "$D/h1")" = "$(printf 'hello\nmore')" ] || fail "hard link does not share data"
rm "$D/h1"
[ "$(stat -c %h "$D/h2")" = 1 ] || fail "nlink after unlink"
expect_fail "Invalid cross-device link" ln "$D/h2" "$M/c2/h2"
chmod 0640 "$D/h2"
[ "$(stat -c %a "$D/h2")" = 640 ] || fail "chmod"
chown 1234:5678 "$D/h2"
[ "$(stat -c %u:%g "$D/h2")" = 1234:5678 ] || fail "chown"
touch -d '2001-02-03 04:05:06.123456789' "$D/h2"
stat -c %y "$D/h2" | grep -q '2001-02-03 04:05:06.123456789' || fail "utimens: $(stat -c %y "$D/h2")"
mkfifo "$D/fifo"
[ "$(stat -c %F "$D/fifo")" = "fifo" ] || fail "mkfifo"

note "user.* xattrs"
setfattr -n user.a -v hello "$D/h2"
setfattr -n user.b -v 0x00ff00 "$D/h2"
[ "$(getfattr --absolute-names --only-values -n user.a "$D/h2")" = hello ] || fail "getxattr"
getfattr --absolute-names -d -e hex "$D/h2" | grep -q 'user.b=0x00ff00' || fail "binary xattr"
setfattr -x user.a "$D/h2"
expect_fail "No such attribute" getfattr --absolute-names -n user.a "$D/h2"
[ "$(getfattr --absolute-names -d "$D/h2" | grep -c '^user\.')" = 1 ] || fail "listxattr"
expect_fail "Operation not supported" setfattr -n trusted.x -v 1 "$D/h2"

note "large directory"
mkdir "$M/c1/big"
(cd "$M/c1/big" && touch $(seq -f 'entry-%05g' 1 5000))
[ "$(ls -f "$M/c1/big" | wc -l)" = 5002 ] || fail "readdir of 5000 entries: $(ls -f "$M/c1/big" | wc -l)"
diff <(ls "$M/c1/big") <(seq -f 'entry-%05g' 1 5000) || fail "large directory listing"
# Remove every second entry while a listing is in progress: the survivors are all seen once.
python3 - "$M/c1/big" <<'PY' || fail "readdir during concurrent unlinks"
import os, sys
d = sys.argv[1]
seen = []
with os.scandir(d) as it:
    for i, e in enumerate(it):
        seen.append(e.name)
        if i == 100:
            for n in range(2, 5001, 2):
                try:
                    os.unlink(os.path.join(d, "entry-%05d" % n))
                except FileNotFoundError:
                    pass
odd = {"entry-%05d" % n for n in range(1, 5001, 2)}
missing = odd - set(seen)
dups = len(seen) - len(set(seen))
if missing or dups:
    sys.exit("missing %d survivors, %d duplicates" % (len(missing), dups))
PY
[ "$(ls "$M/c1/big" | wc -l)" = 2500 ] || fail "entries after unlinking half"

note "rename"
R=$M/c1/ren
mkdir "$R"
echo a >"$R/a"
echo b >"$R/b"
[ "$("$R2" noreplace "$R/a" "$R/b" || true)" = EEXIST ] || fail "RENAME_NOREPLACE over an existing name"
"$R2" exchange "$R/a" "$R/b" || fail "RENAME_EXCHANGE"
[ "$(cat "$R/a")$(cat "$R/b")" = ba ] || fail "exchange did not swap"
"$R2" noreplace "$R/a" "$R/c" || fail "RENAME_NOREPLACE to a free name"
[ ! -e "$R/a" ] && [ "$(cat "$R/c")" = b ] || fail "noreplace rename result"
mv "$R/c" "$R/b"
[ "$(cat "$R/b")" = b ] && [ "$(ls "$R")" = b ] || fail "rename over an existing file"
mkdir -p "$R/d1/sub"
echo deep >"$R/d1/sub/f"
mv "$R/d1" "$R/d2"
[ "$(cat "$R/d2/sub/f")" = deep ] || fail "directory rename"
[ "$("$R2" plain "$R/d2" "$R/d2/sub/inside" || true)" = EINVAL ] ||
	fail "moving a directory into its own subtree"
mv "$R/d2" "$M/c2/moved"
[ "$(cat "$M/c2/moved/sub/f")" = deep ] || fail "directory rename across checkpoints"
mv "$R/b" "$M/c2/b-moved"
[ "$(cat "$M/c2/b-moved")" = b ] || fail "file rename across checkpoints"
expect_fail "Operation not permitted" mv "$M/c2/b-moved" "$M/b-at-root"
mkdir "$M/c3"
echo x >"$M/c3/x"
mv "$M/c3" "$M/c3-renamed"
[ "$(cat "$M/c3-renamed/x")" = x ] || fail "checkpoint rename"

note "unlink and rename of open files"
O=$M/c1/open
mkdir "$O"
"$HELPERS/t_datagen" 11 $((2 * 1024 * 1024)) >"$O/f"
exec 3<"$O/f"
rm "$O/f"
[ ! -e "$O/f" ] || fail "unlinked file still visible"
cmp <(cat <&3) <("$HELPERS/t_datagen" 11 $((2 * 1024 * 1024))) || fail "reading an unlinked open file"
exec 3<&-
"$HELPERS/t_datagen" 12 100000 >"$O/g"
exec 4<>"$O/g"
mv "$O/g" "$O/g2"
rm "$O/g2"
echo -n "appended-after-unlink" >>/proc/self/fd/4
cmp <(head -c 100000 /proc/self/fd/4) <("$HELPERS/t_datagen" 12 100000) || fail "unlinked file data"
[ "$(tail -c 21 /proc/self/fd/4)" = appended-after-unlink ] || fail "write to an unlinked open file"
exec 4<&-

note "truncate, fallocate, O_APPEND, O_EXCL"
F=$M/c1/trunc
"$HELPERS/t_datagen" 13 1000000 >"$F"
truncate -s 5000 "$F"
cmp "$F" <("$HELPERS/t_datagen" 13 5000) || fail "truncate down"
truncate -s 20000 "$F"
cmp "$F" <(
	"$HELPERS/t_datagen" 13 5000
	head -c 15000 /dev/zero
) || fail "truncate up reads zeros"
"$HELPERS/t_datagen" 14 65536 >"$F"
fallocate -p -o 8192 -l 16384 "$F"
cmp "$F" <(
	"$HELPERS/t_datagen" 14 8192
	head -c 16384 /dev/zero
	"$HELPERS/t_datagen" 14 65536 | tail -c $((65536 - 24576))
) || fail "punch hole"
[ "$(stat -c %s "$F")" = 65536 ] || fail "punch hole changed the size"
fallocate -l 100000 "$F"
[ "$(stat -c %s "$F")" = 100000 ] || fail "fallocate did not extend"
echo one >"$M/c1/app"
echo two >>"$M/c1/app"
[ "$(cat "$M/c1/app")" = "$(printf 'one\ntwo')" ] || fail "O_APPEND"
expect_fail "File exists" python3 -c \
	'import os, sys; os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL)' "$M/c1/app"

note "statfs"
# The mount reports the space of the filesystem holding the store (others write meanwhile:
# allow 1 GiB of drift).
read -r mb ma ms < <(stat -f -c '%b %a %S' "$M")
read -r sb sa ss < <(stat -f -c '%b %a %S' "$S")
[ "$((mb * ms))" -eq "$((sb * ss))" ] || fail "statfs total: mount $((mb * ms)), store fs $((sb * ss))"
diff=$((ma * ms - sa * ss))
[ "${diff#-}" -lt $((1 << 30)) ] || fail "statfs free: mount $((ma * ms)), store fs $((sa * ss))"

note "unmount + remount: everything bit-exact"
tree_digest "$M" >"$T/before"
ck_umount "$M"
ck_mount "$S" "$M"
tree_digest "$M" >"$T/after"
diff "$T/before" "$T/after" || fail "tree differs after remount"
ck_umount "$M"
note "PASS"
