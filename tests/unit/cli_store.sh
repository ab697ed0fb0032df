#!/usr/bin/env bash
# cli_store.sh CKPTFS MKSTORE - the store subcommands end to end: init (and its refusals), ls
# (table and --json), df (--json), seal (prints the id, idempotent), rm (also of a missing name),
# usage errors and --help, and all of them while a "mount" holds the store's lock.
set -uo pipefail
CKPTFS=$1
MKSTORE=$2
. "$(dirname "$0")/cli_lib.sh" store
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# init: creates parents, refuses an existing store and a non-empty non-store directory.
expect_rc 0 "$CKPTFS" init "$T/deep/er/s0"
[ -f "$T/deep/er/s0/ckptfs-store" ] || fail "init made no header"
expect_rc 1 "$CKPTFS" init "$T/deep/er/s0"
grep -q "already is a ckptfs store" <<<"$out" || fail "init twice: $out"
mkdir -p "$T/junk" && echo x >"$T/junk/file"
expect_rc 1 "$CKPTFS" init "$T/junk"
grep -q "not empty and not a ckptfs store" <<<"$out" || fail "init non-empty: $out"
expect_rc 1 "$CKPTFS" ls "$T/junk"
grep -q "not a ckptfs store" <<<"$out" || fail "ls of a non-store: $out"
expect_rc 0 "$CKPTFS" ls "$T/deep/er/s0"
[ "$(wc -l <<<"$out")" -eq 1 ] && grep -q "^NAME" <<<"$out" || fail "ls of an empty store: $out"

# usage and help
expect_rc 2 "$CKPTFS" ls
expect_rc 2 "$CKPTFS" seal "$T/deep/er/s0"
expect_rc 2 "$CKPTFS" rm "$T/deep/er/s0"
expect_rc 2 "$CKPTFS" df --bogus "$T/deep/er/s0"
for c in init ls df seal rm; do
	expect_rc 0 "$CKPTFS" "$c" --help
	grep -q "^usage: ckptfs $c" <<<"$out" || fail "$c --help: $out"
done

S=$T/store
"$MKSTORE" "$S" >/dev/null || fail "maint_mkstore"
# From here on a "mount" holds the store's lock: every command must still work.
(
	exec 9>>"$S/lock"
	flock -n 9 || exit 1
	exec sleep 60
) &
holder=$!
sleep 0.2

expect_rc 0 "$CKPTFS" ls --json "$S"
[ "$(json 'len(d)' <<<"$out")" = 2 ] || fail "ls --json count: $out"
[ "$(json '[c["logical_bytes"] for c in d if c["name"]=="a"][0]' <<<"$out")" = $((600 * 4096)) ] ||
	fail "ls --json size of a: $out"
[ "$(json '[c["sealed"] for c in d if c["name"]=="a"][0]' <<<"$out")" = False ] || fail "a sealed?: $out"
bid=$(json '[c["content_id"] for c in d if c["name"]=="b"][0]' <<<"$out")
[[ $bid =~ ^[0-9a-f]{32}$ ]] || fail "content id of b: $out"
expect_rc 0 "$CKPTFS" ls "$S"
grep -Eq "^b .* yes $bid$" <<<"$out" || fail "ls table row of b: $out"
grep -Eq "^a .* no -$" <<<"$out" || fail "ls table row of a: $out"

expect_rc 0 "$CKPTFS" df --json "$S"
[ "$(json 'd["checkpoints"]' <<<"$out")" = 2 ] || fail "df checkpoints: $out"
[ "$(json 'd["chunks"]' <<<"$out")" = 902 ] || fail "df distinct chunks (a: 0..599, b: 300..899, sparse: 5000, 5001): $out"
[ "$(json 'd["garbage_bytes"]' <<<"$out")" = 0 ] || fail "df garbage: $out"
expect_rc 0 "$CKPTFS" df "$S"
grep -q "^dedup " <<<"$out" || fail "df table: $out"

expect_rc 0 "$CKPTFS" seal "$S" a
aid=$out
[[ $aid =~ ^[0-9a-f]{32}$ ]] || fail "seal printed '$aid'"
expect_rc 0 "$CKPTFS" seal "$S" a
[ "$out" = "$aid" ] || fail "second seal printed another id: $out vs $aid"
expect_rc 0 "$CKPTFS" seal "$S" b
[ "$out" = "$bid" ] || fail "seal of sealed b: $out vs $bid"
expect_rc 1 "$CKPTFS" seal "$S" nope
grep -q "no checkpoint named 'nope'" <<<"$out" || fail "seal nope: $out"

expect_rc 1 "$CKPTFS" rm "$S" nope a
grep -q "no checkpoint named 'nope'" <<<"$out" || fail "rm nope: $out"
expect_rc 0 "$CKPTFS" ls --json "$S"
[ "$(json '[c["name"] for c in d]' <<<"$out")" = "['b']" ] || fail "a not removed after 'rm nope a': $out"
expect_rc 0 "$CKPTFS" rm "$S" b
expect_rc 0 "$CKPTFS" df --json "$S"
[ "$(json 'd["checkpoints"]' <<<"$out")" = 0 ] || fail "df after rm: $out"
[ "$(json 'd["chunks"]' <<<"$out")" = 0 ] || fail "chunks after rm: $out"
[ "$(json 'd["garbage_bytes"] > 0' <<<"$out")" = True ] || fail "garbage after rm: $out"
echo "cli_store: PASS"
