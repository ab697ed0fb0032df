#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# crash_kill9.sh - kill -9 the daemon during heavy writes, again and again: each round mounts,
# starts writers (t_crashwriter: files fsync'd and recorded outside the mount; dd conv=fsync of
# a large file), kills the daemon at a random moment, detaches the dead mount, remounts and
# requires every file recorded as fsync'd - in this round and all before - to read back
# bit-exact. If 'ckptfs fsck' is built, the store must also check clean after every crash.
source "$(dirname "$0")/lib.sh"

ROUNDS=${CKPTFS_IT_CRASH_ROUNDS:-10}
GEN=$HELPERS/t_datagen
CW=$HELPERS/t_crashwriter
S=$T/store
M=$T/mnt
REC=$T/records
mkdir -p "$REC"
ck_init "$S"

have_fsck=0
ck_has_cmd fsck && have_fsck=1

verify_all() { # WHEN
	local f out
	for f in "$REC"/*; do
		[ -e "$f" ] || continue
		case "$f" in
		*.dd)
			read -r name seed size <"$f"
			cmp "$M/c1/$name" <("$GEN" "$seed" "$size") ||
				fail "$1: fsync'd dd file $name differs"
			;;
		*)
			out=$("$CW" verify "$M/c1" "$f") || fail "$1: $out"
			;;
		esac
	done
}

RANDOM=$$
for round in $(seq "$ROUNDS"); do
	ck_mount "$S" "$M"
	mkdir -p "$M/c1"
	pids=()
	for w in 1 2 3; do
		"$CW" write "$M/c1" "$REC/r$round.$w" $((round * 10 + w)) 40 2>/dev/null &
		pids+=($!)
	done
	size=$(((RANDOM % 48 + 16) * 1024 * 1024))
	(
		if "$GEN" $((round + 1000)) "$size" |
			dd of="$M/c1/dd$round" bs=1M iflag=fullblock conv=fsync status=none 2>/dev/null; then
			echo "dd$round $((round + 1000)) $size" >"$REC/r$round.dd"
			sync -f "$REC/r$round.dd"
		fi
	) &
	pids+=($!)
	sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.2 + (r % 150) / 100 }')"
	ck_kill9 "$M"
	for p in "${pids[@]}"; do
		wait "$p" || true
	done
	if [ "$have_fsck" = 1 ]; then
		out=$("$CKPTFS" fsck "$S" 2>&1) || fail "round $round: fsck after kill -9: $out"
	fi
	ck_mount "$S" "$M"
	verify_all "round $round"
	n=$(cat "$REC"/r*.[0-9] 2>/dev/null | wc -l)
	note "round $round: killed, remounted, $n fsync'd files + $(ls "$REC" | grep -c '\.dd$' || true) dd files intact"
	ck_umount "$M"
done
[ "$(cat "$REC"/r*.[0-9] 2>/dev/null | wc -l)" -gt 0 ] || fail "no file was ever fsync'd: the test proved nothing"
note "PASS"
