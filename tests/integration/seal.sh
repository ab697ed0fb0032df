#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# seal.sh - sealing a checkpoint with the user.ckptfs.seal xattr: afterwards every kind of write
# gets EROFS, reads still work, the content id xattr is readable and stable (also across a
# remount), and other checkpoints stay writable.
source "$(dirname "$0")/lib.sh"

GEN=$HELPERS/t_datagen
S=$T/store
M=$T/mnt
ck_init "$S"
ck_mount "$S" "$M"

mkdir "$M/cp1" "$M/cp2" "$M/cp1/sub"
"$GEN" 51 $((3 * 1024 * 1024 + 5)) >"$M/cp1/f1"
"$GEN" 52 4096 >"$M/cp1/sub/f2"
ln -s f1 "$M/cp1/link"
sum_before=$(tree_digest "$M/cp1")

note "seal via xattr"
expect_fail "No such attribute" getfattr --absolute-names -n user.ckptfs.content_id "$M/cp1"
setfattr -n user.ckptfs.seal -v 1 "$M/cp1"
id=$(getfattr --absolute-names --only-values -n user.ckptfs.content_id "$M/cp1")
[[ "$id" =~ ^[0-9a-f]{32}$ ]] || fail "content id '$id'"
note "content id $id"

note "writes to the sealed checkpoint get EROFS"
ROFS="Read-only file system"
expect_fail "$ROFS" touch "$M/cp1/new"
expect_fail "$ROFS" mkdir "$M/cp1/newdir"
expect_fail "$ROFS" ln -s x "$M/cp1/newlink"
expect_fail "$ROFS" bash -c "echo more >>'$M/cp1/f1'"
expect_fail "$ROFS" python3 -c 'import os, sys; os.open(sys.argv[1], os.O_WRONLY)' "$M/cp1/f1"
expect_fail "$ROFS" truncate -s 0 "$M/cp1/f1"
expect_fail "$ROFS" chmod 600 "$M/cp1/f1"
expect_fail "$ROFS" touch -d '2000-01-01' "$M/cp1/f1"
expect_fail "$ROFS" rm "$M/cp1/f1"
expect_fail "$ROFS" rmdir "$M/cp1/sub"
expect_fail "$ROFS" mv "$M/cp1/f1" "$M/cp1/f1-renamed"
expect_fail "$ROFS" mv "$M/cp1/sub/f2" "$M/cp2/f2"
expect_fail "$ROFS" setfattr -n user.x -v 1 "$M/cp1/f1"
expect_fail "$ROFS" fallocate -l 1M "$M/cp1/f1"

note "reads still work; sealing again keeps the id; other checkpoints are writable"
[ "$(tree_digest "$M/cp1")" = "$sum_before" ] || fail "sealed checkpoint changed"
cmp "$M/cp1/f1" <("$GEN" 51 $((3 * 1024 * 1024 + 5))) || fail "sealed file content"
setfattr -n user.ckptfs.seal -v 1 "$M/cp1"
[ "$(getfattr --absolute-names --only-values -n user.ckptfs.content_id "$M/cp1")" = "$id" ] || fail "id changed on reseal"
echo fine >"$M/cp2/writable"
[ "$(cat "$M/cp2/writable")" = fine ] || fail "unsealed checkpoint not writable"

note "the CLI changes the store under the mount"
mkdir "$M/cp3" "$M/cp4"
echo x >"$M/cp3/f"
echo y >"$M/cp4/f"
if ck_has_cmd seal; then
	out=$("$CKPTFS" seal "$S" cp3 2>&1) || fail "ckptfs seal while mounted: $out"
	# Attributes are cached for at most FS_TIMEOUT_LIVE (1 s); writes go to the store anyway.
	expect_fail "$ROFS" bash -c "echo more >>'$M/cp3/f'"
	id3=$(getfattr --absolute-names --only-values -n user.ckptfs.content_id "$M/cp3")
	grep -q "$id3" <<<"$out" || fail "'ckptfs seal' printed '$out', the mount says '$id3'"
	[ "$(cat "$M/cp3/f")" = x ] || fail "checkpoint sealed by the CLI lost data"
fi
if ck_has_cmd rm; then
	out=$("$CKPTFS" rm "$S" cp4 2>&1) || fail "ckptfs rm while mounted: $out"
	sleep 1.2
	[ ! -e "$M/cp4" ] || fail "checkpoint removed by the CLI still visible after the timeout"
	ls "$M" | grep -qx cp4 && fail "checkpoint removed by the CLI still listed"
fi

note "after remount: still sealed, same id, same bytes"
ck_umount "$M"
ck_mount "$S" "$M"
[ "$(getfattr --absolute-names --only-values -n user.ckptfs.content_id "$M/cp1")" = "$id" ] || fail "id after remount"
[ "$(tree_digest "$M/cp1")" = "$sum_before" ] || fail "sealed checkpoint after remount"
expect_fail "$ROFS" bash -c "echo more >>'$M/cp1/f1'"
ck_umount "$M"

if out=$("$CKPTFS" ls "$S" 2>&1); then
	grep -q "$id" <<<"$out" || fail "'ckptfs ls' does not show the content id: $out"
fi
note "PASS"
