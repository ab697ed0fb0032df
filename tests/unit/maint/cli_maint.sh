#!/usr/bin/env bash
# cli_maint.sh CKPTFS MKSTORE - 'ckptfs gc' and 'ckptfs fsck [--rebuild-index]' end to end on a
# store made by maint_mkstore: exit codes, printed stats and problem lines, the rebuild refused
# while the store's lock is held, the old index kept aside.
set -uo pipefail
CKPTFS=$1
MKSTORE=$2
. "$(dirname "$0")/../cli_lib.sh" maint
S=$T/store

"$MKSTORE" "$S" || fail "maint_mkstore"

out=$("$CKPTFS" fsck "$S" 2>&1) || fail "fsck of a fresh store: $out"
grep -q "is clean" <<<"$out" || fail "fsck did not say clean: $out"

"$CKPTFS" rm "$S" a || fail "rm a"
out=$("$CKPTFS" gc "$S" 2>&1) || fail "gc: $out"
echo "$out"
grep -q "^packs rewritten: 1$" <<<"$out" || fail "gc did not rewrite the pack: $out"
grep -q "^chunks dropped:  300$" <<<"$out" || fail "gc did not drop a's 300 pages: $out"
rec=$(sed -n 's/^bytes reclaimed: //p' <<<"$out")
[ "${rec:-0}" -gt 0 ] || fail "gc reclaimed nothing: $out"
out=$("$CKPTFS" fsck "$S" 2>&1) || fail "fsck after gc: $out"

# The rebuild is refused while something (a mount) holds the store's lock.
(
	exec 9>>"$S/lock"
	flock -n 9 || exit 1
	exec sleep 30 # the sleep itself holds fd 9, so killing it releases the lock
) &
holder=$!
sleep 0.3
out=$("$CKPTFS" fsck --rebuild-index "$S" 2>&1) && fail "rebuild ran while the lock was held: $out"
grep -q "is mounted" <<<"$out" || fail "refusal does not say why: $out"
kill "$holder"
wait "$holder" 2>/dev/null
holder=

out=$("$CKPTFS" fsck --rebuild-index "$S" 2>&1) || fail "rebuild: $out"
echo "$out"
grep -q "is clean" <<<"$out" || fail "no clean fsck after the rebuild: $out"
ls -d "$S"/index.broken-* >/dev/null 2>&1 || fail "the old index was not kept"

# Damage: one flipped byte in the middle of the (now fully live) pack.
pack=$(ls "$S"/packs/*.pack | head -1)
size=$(stat -c %s "$pack")
off=$((size / 2))
byte=$(od -An -tu1 -j "$off" -N1 "$pack" | tr -d ' ')
printf "$(printf '\\%03o' $(((byte + 1) % 256)))" | dd of="$pack" bs=1 seek="$off" conv=notrunc status=none
out=$("$CKPTFS" fsck "$S" 2>&1)
rc=$?
echo "$out"
[ "$rc" -eq 1 ] || fail "fsck exit $rc on a damaged pack (want 1): $out"
grep -q "^chunk [0-9a-f]\{32\} (pack 'packs/[0-9]\{8\}\.pack' offset [0-9]*): .*referenced by 'b/" <<<"$out" ||
	fail "the problem line does not name the chunk, pack, offset and file: $out"

"$CKPTFS" gc --help | grep -q "usage: ckptfs gc" || fail "gc --help"
"$CKPTFS" fsck --help | grep -q -- "--rebuild-index" || fail "fsck --help"
"$CKPTFS" fsck >/dev/null 2>&1
[ $? -eq 2 ] || fail "fsck without a store is not a usage error"
echo "PASS"
