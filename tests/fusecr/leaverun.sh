#!/usr/bin/env bash
# leaverun.sh - --leave-running dumps of a FUSE daemon (docs/fuse-cr.md, "--leave-running"):
#  1. testfs dumped with --leave-running while clients hammer it: the original keeps serving, a
#     keeper holds copies of its connection, restore is refused while the original runs; the
#     original is killed -9: clients block instead of failing; the image restored: the daemon
#     is rolled back to the checkpoint on the same connection, clients finish with zero errors,
#     the counter goes back once to at least its value at dump time and increases after, a
#     file made before the dump is there, one made after it is not;
#  2. two --leave-running dumps in a row: one keeper remains, the older image is refused as
#     superseded, the newer one restores;
#  3. a plain dump after a --leave-running one retires the older keeper as well;
#  4. a normal unmount after a --leave-running dump: the keeper exits by itself.
. "$(dirname "$0")/fusecr_lib.sh"
: "${TESTFS:?}" "${FUSECLIENT:?}"

M=$T/mnt
mkdir -p "$M"
cd "$T" || exit 1

# Keeper pids holding an fd on connection $1.
keepers_of() {
	local p fd
	for p in /proc/[0-9]*; do
		[ "$(cat "$p/comm" 2>/dev/null)" = ckptfs-keeper ] || continue
		for fd in "$p"/fd/*; do
			[ "$(readlink "$fd" 2>/dev/null)" = /dev/fuse ] || continue
			if [ "$(fc_fd_conn "${p#/proc/}" "${fd##*/}")" = "$1" ]; then
				echo "${p#/proc/}"
				break
			fi
		done
	done
}
counter() { timeout 30 cat "$M/counter"; }
restore_bg() { # IMAGE PIDFILE: restore in the background into $R, pid into $RP
	"$CKPTFS" restore --pidfile "$2" "$1" >"$T/restore-$(basename "$1").out" 2>&1 &
	R=$!
	fc_track "$R"
	fc_wait 30 "the restored pid file $2" test -s "$2"
	RP=$(cat "$2")
	fc_track "$RP"
}

# --- 1. crash recovery of testfs ---
"$TESTFS" "$M" &
D=$!
fc_track "$D"
fc_track_mount "$M"
fc_wait_mount "$M"
CONN=$(fc_conn_of "$M")
printf 'made-before\n' >"$M/before" || fc_fail "cannot create a file on testfs"
fc_clients 1 2 rollback "$M" "$T/stop"
sleep 0.5
A=$(counter) || fc_fail "reading the counter before the dump"
fc_track_image "$T/img"
"$CKPTFS" dump --leave-running --pid "$D" "$T/img" || fc_fail "--leave-running dump failed"
fc_alive "$D" || fc_fail "the original died in a --leave-running dump"
K=$(fc_keeper_of "$T/img")
[ -n "$K" ] && fc_alive "$K" || fc_fail "no live keeper after a --leave-running dump"
[ "$(keepers_of "$CONN")" = "$K" ] || fc_fail "keepers of connection $CONN: '$(keepers_of "$CONN")', want $K"
"$CKPTFS" show "$T/img" | grep -c "conn $CONN mount '$M'.*kept (leave-running: restorable after the original stops)" >/dev/null ||
	fc_fail "show: $("$CKPTFS" show "$T/img" | grep fuse)"
printf 'made-after\n' >"$M/after" || fc_fail "the original does not serve after the dump"
B=$(counter) || fc_fail "reading the counter after the dump"
[ "$((10#$B))" -gt "$((10#$A))" ] || fc_fail "counter $B after the dump, $A before"

if timeout 30 "$CKPTFS" restore --detach "$T/img" >"$T/busy.out" 2>&1; then
	fc_fail "restore succeeded while the original serves the connection"
fi
grep -q "still served by pid $D (the original); stop it first" "$T/busy.out" ||
	fc_fail "unclear refusal while the original runs: $(cat "$T/busy.out")"
fc_alive "$D" || fc_fail "the refused restore hurt the original"
fc_alive "$K" || fc_fail "the refused restore ended the keeper"
[ -f "$T/img/inventory.img" ] || fc_fail "the refused restore damaged the image"
[ "$(timeout 10 cat "$M/before")" = made-before ] || fc_fail "the original stopped serving"

sleep 0.3
kill -KILL "$D"
wait "$D" 2>/dev/null
fc_mounted "$M" || fc_fail "the mount went away with the killed original"
(timeout 30 cat "$M/counter" >"$T/queued.out") &
Q=$!
fc_track "$Q"
sleep 1
for i in 1 2; do
	fc_alive "${C[i]}" || fc_fail "client $i ended while the daemon was dead: $(cat "$T/client$i.out")"
done
fc_alive "$Q" || fc_fail "a read while the daemon was dead did not wait: $(cat "$T/queued.out")"
[ -e "$FUSECTL/$CONN/waiting" ] && fc_log "requests waiting while dead: $(cat "$FUSECTL/$CONN/waiting")"

restore_bg "$T/img" "$T/pid"
[ "$RP" = "$D" ] || fc_fail "restored pid $RP, dumped $D"
fc_wait 10 "the keeper to exit after the handover" fc_gone "$K"
fc_join "$Q" 15 || fc_fail "the read queued while the daemon was dead failed"
Y=$(cat "$T/queued.out")
[[ $Y =~ ^[0-9]{20}$ ]] || fc_fail "queued read returned '$Y'"
[ "$((10#$Y))" -gt "$((10#$A))" ] || fc_fail "after restore the counter is $Y, at dump time $A"
[ "$(timeout 10 cat "$M/before")" = made-before ] || fc_fail "the file made before the dump is gone"
if timeout 10 cat "$M/after" >/dev/null 2>&1; then
	fc_fail "a file made after the checkpoint survived the rollback"
fi
C1=$(counter) && C2=$(counter) || fc_fail "reading the counter after restore"
[ "$((10#$C1))" -gt "$((10#$A))" ] && [ "$((10#$C2))" -gt "$((10#$C1))" ] ||
	fc_fail "counter after restore: $C1 then $C2 (at dump time $A)"
sleep 0.5
touch "$T/stop"
for i in 1 2; do
	fc_join "${C[i]}" 30 || fc_fail "client $i: $(cat "$T/client$i.out")"
	fc_log "client $i: $(tail -n1 "$T/client$i.out")"
	to=$(sed -n 's/.*rollback_to=\([0-9]*\).*/\1/p' "$T/client$i.out")
	grep -q "rollbacks=1 " "$T/client$i.out" && [ "${to:-0}" -gt "$((10#$A))" ] ||
		fc_fail "client $i did not see one rollback to above $A: $(cat "$T/client$i.out")"
done
"$CKPTFS" show "$T/img" | grep -c "keeper pid $K .*gone" >/dev/null || fc_fail "show does not say gone"

# --- 2. two --leave-running dumps in a row: only the newest is restorable ---
fc_track_image "$T/img3"
"$CKPTFS" dump --leave-running --pid "$RP" "$T/img3" || fc_fail "first of two dumps failed"
K3=$(fc_keeper_of "$T/img3")
fc_track_image "$T/img4"
"$CKPTFS" dump --leave-running --pid "$RP" "$T/img4" || fc_fail "second of two dumps failed"
K4=$(fc_keeper_of "$T/img4")
fc_wait 10 "the older keeper $K3 to be retired" fc_gone "$K3"
[ "$(keepers_of "$CONN")" = "$K4" ] || fc_fail "keepers of connection $CONN: '$(keepers_of "$CONN")', want $K4"
# A crash (SIGTERM would make libfuse unmount on its way out).
kill -KILL "$RP"
fc_join "$R" 15 >/dev/null 2>&1
fc_wait 10 "the restored daemon to exit" fc_gone "$RP"
fc_mounted "$M" || fc_fail "the mount went away although keeper $K4 holds it"
if timeout 30 "$CKPTFS" restore --detach "$T/img3" >"$T/old.out" 2>&1; then
	fc_fail "the superseded image restored"
fi
grep -q "superseded by a newer checkpoint, whose keeper pid $K4" "$T/old.out" ||
	fc_fail "unclear refusal of the superseded image: $(cat "$T/old.out")"
fc_alive "$K4" || fc_fail "the refused restore ended the newer keeper"
restore_bg "$T/img4" "$T/pid4"
fc_wait 10 "keeper $K4 to exit after the handover" fc_gone "$K4"
[ "$(timeout 10 cat "$M/before")" = made-before ] || fc_fail "the newest image does not serve"

# --- 3. a plain dump retires a --leave-running keeper too ---
fc_track_image "$T/img6"
"$CKPTFS" dump --leave-running --pid "$RP" "$T/img6" || fc_fail "--leave-running dump failed"
K6=$(fc_keeper_of "$T/img6")
fc_track_image "$T/img7"
"$CKPTFS" dump --pid "$RP" "$T/img7" || fc_fail "plain dump after a --leave-running one failed"
fc_join "$R" 15 >/dev/null 2>&1
K7=$(fc_keeper_of "$T/img7")
fc_wait 10 "the --leave-running keeper $K6 to be retired" fc_gone "$K6"
[ "$(keepers_of "$CONN")" = "$K7" ] || fc_fail "keepers of connection $CONN: '$(keepers_of "$CONN")', want $K7"
"$CKPTFS" show "$T/img7" | grep -c "keeper pid $K7 .*: holding" >/dev/null || fc_fail "show of the plain image"
restore_bg "$T/img7" "$T/pid7"
fc_wait 10 "keeper $K7 to exit after the handover" fc_gone "$K7"
[ "$(timeout 10 cat "$M/before")" = made-before ] || fc_fail "the plain image does not serve"

# --- 4. a normal unmount after a --leave-running dump leaves no keeper behind ---
fc_track_image "$T/img5"
"$CKPTFS" dump --leave-running --pid "$RP" "$T/img5" || fc_fail "dump before unmount failed"
K5=$(fc_keeper_of "$T/img5")
[ -n "$K5" ] && fc_alive "$K5" || fc_fail "no keeper after the dump before unmount"
fusermount3 -u "$M" || fc_fail "fusermount3 -u failed"
fc_wait 10 "the keeper to exit after the unmount" fc_gone "$K5"
fc_join "$R" 15 >/dev/null 2>&1
fc_wait 10 "the daemon to exit after the unmount" fc_gone "$RP"
echo "PASS: $(tail -n1 "$T/client1.out")"
