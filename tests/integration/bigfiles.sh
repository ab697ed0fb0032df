#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bigfiles.sh - dd of a multi-GiB sparse file (seek) and of a dense 1 GiB file through the mount,
# read back and compared byte for byte with regenerated data, then again after unmount + remount.
# CKPTFS_IT_DENSE_MIB / CKPTFS_IT_SPARSE_GIB shrink or grow the files.
source "$(dirname "$0")/lib.sh"

DENSE_MIB=${CKPTFS_IT_DENSE_MIB:-1024}
SPARSE_GIB=${CKPTFS_IT_SPARSE_GIB:-3}
GEN=$HELPERS/t_datagen
S=$T/store
M=$T/mnt
ck_init "$S"
ck_mount "$S" "$M"
mkdir "$M/c1"

# The expected sparse file: 1 MiB at 0, a hole, 4 MiB at SPARSE_GIB GiB.
sparse_expected() {
	"$GEN" 21 $((1024 * 1024))
	head -c $((SPARSE_GIB * 1024 * 1024 * 1024 - 1024 * 1024)) /dev/zero
	"$GEN" 22 $((4 * 1024 * 1024))
}
check_files() { # WHEN
	[ "$(stat -c %s "$M/c1/sparse")" = $((SPARSE_GIB * 1024 * 1024 * 1024 + 4 * 1024 * 1024)) ] ||
		fail "$1: sparse file size $(stat -c %s "$M/c1/sparse")"
	cmp "$M/c1/sparse" <(sparse_expected) || fail "$1: sparse file content"
	# Holes are stored as nothing: a few MiB of data, not GiBs.
	[ "$(stat -c %b "$M/c1/sparse")" -lt $((64 * 2048)) ] ||
		fail "$1: sparse file occupies $(stat -c %b "$M/c1/sparse") blocks"
	[ "$(stat -c %s "$M/c1/dense")" = $((DENSE_MIB * 1024 * 1024)) ] ||
		fail "$1: dense file size $(stat -c %s "$M/c1/dense")"
	cmp "$M/c1/dense" <("$GEN" 23 $((DENSE_MIB * 1024 * 1024))) || fail "$1: dense file content"
}

note "sparse file of $SPARSE_GIB GiB via dd seek"
"$GEN" 21 $((1024 * 1024)) | dd of="$M/c1/sparse" bs=1M iflag=fullblock status=none
"$GEN" 22 $((4 * 1024 * 1024)) |
	dd of="$M/c1/sparse" bs=1M seek=$((SPARSE_GIB * 1024)) conv=notrunc iflag=fullblock status=none

note "dense file of $DENSE_MIB MiB"
t0=$(date +%s.%N)
"$GEN" 23 $((DENSE_MIB * 1024 * 1024)) | dd of="$M/c1/dense" bs=1M iflag=fullblock conv=fsync status=none
t1=$(date +%s.%N)
note "dense write: $(awk -v n="$DENSE_MIB" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }') MiB/s (incl. fsync)"

note "read back"
t0=$(date +%s.%N)
check_files "before remount"
t1=$(date +%s.%N)
note "read back both in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"

note "unmount + remount"
ck_umount "$M"
ck_mount "$S" "$M"
check_files "after remount"
ck_umount "$M"
note "PASS"
