#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# closeerr.sh - a pack write that fails after write(2) was accepted reaches close(2), even with
# plenty of free space on the store's filesystem (release's answer reaches nobody, so flush has
# to store the data). The failure is injected in the daemon (CKPTFS_FAULT=pack_append_eio: every
# pack append fails with EIO; ENOSPC takes the same path). Without the fault, the same writes
# close cleanly and read back.
source "$(dirname "$0")/lib.sh"

GEN=$HELPERS/t_datagen
S=$T/store
M=$T/mnt
ck_init "$S"

note "EIO from the packs reaches close(2)"
export CKPTFS_FAULT=pack_append_eio
ck_mount "$S" "$M"
unset CKPTFS_FAULT
mkdir "$M/c1"
# dd reports a failing close of its output ("closing output file").
expect_fail "Input/output error" dd if=<("$GEN" 1 65536) of="$M/c1/small" bs=64k status=none
expect_fail "Input/output error" cp <("$GEN" 2 300000) "$M/c1/copied"
# The daemon cannot store what it holds; whatever it says at unmount, end it and move on.
fusermount3 -u "$M"
wait "${DAEMON_PID[$M]}" || true
unset "DAEMON_PID[$M]"

note "the same writes without the fault"
ck_mount "$S" "$M"
mkdir -p "$M/c2"
dd if=<("$GEN" 1 65536) of="$M/c2/small" bs=64k status=none || fail "dd without fault"
cp <("$GEN" 2 300000) "$M/c2/copied" || fail "cp without fault"
ck_umount "$M"
ck_mount "$S" "$M"
cmp "$M/c2/small" <("$GEN" 1 65536) || fail "c2/small reads back wrong"
cmp "$M/c2/copied" <("$GEN" 2 300000) || fail "c2/copied reads back wrong"
ck_umount "$M"
note "PASS"
