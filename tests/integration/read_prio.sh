#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# read_prio.sh - the daemon decodes a read at the priority of the thread that asked
# (fs/read_prio.c): while a SCHED_IDLE reader (like the lazy page server's prefetch) reads, a
# worker thread runs SCHED_IDLE, and a nice 15 reader's requests run at nice 15; a normal
# reader's never run lowered, and every worker is back at the daemon's priority afterwards.
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || { echo "read_prio: needs root (CAP_SYS_NICE) to run; skipped"; exit 77; }
S=$T/store
M=$T/mnt
ck_init "$S"
ck_mount "$S" "$M"
daemon=${DAEMON_PID[$M]}
mkdir "$M/c1"
# Compressible text, so that reads decode.
seq 1 30000000 >"$M/c1/f"
sync "$M/c1/f"
for i in $(seq 600); do
	[[ $("$CKPTFS" df --json "$S") =~ \"deferred_bytes\":\ *0[,}] ]] && break
	sleep 0.1
done

# workers: "policy nice" of each daemon thread, one line each (fields 41 and 19 of stat).
workers() {
	local f st
	for f in /proc/"$daemon"/task/*/stat; do
		{ read -r st <"$f"; } 2>/dev/null || continue
		st=${st##*) }
		read -ra st <<<"$st"
		# After the ')' field 3 (state) is index 0: nice is field 19, policy field 41.
		echo "${st[38]} ${st[16]}"
	done
}

# The daemon's own priority, the one every worker must have when not serving a lowered read
# (the suite may itself run under nice); a nice 15 reader then runs at base + 15, at most 19.
main_stat=$(<"/proc/$daemon/stat")
read -ra main_fields <<<"${main_stat##*) }"
base="${main_fields[38]} ${main_fields[16]}"
[ "${base%% *}" = 0 ] || { echo "read_prio: the daemon is not SCHED_OTHER ($base); skipped"; exit 77; }
base_nice=${base#* }
want_nice=$((base_nice + 15 > 19 ? 19 : base_nice + 15))
[ "$want_nice" -gt "$base_nice" ] || { echo "read_prio: the daemon runs at nice $base_nice; skipped"; exit 77; }

# sample_while CMD...: runs CMD in the background and prints every "policy nice" pair seen on
# a daemon thread while it runs (one line per distinct pair).
sample_while() {
	local pid
	"$@" &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do workers; done | sort -u
	wait "$pid" || fail "'$*' failed"
}

read_file() { dd if="$M/c1/f" of=/dev/null bs=128k iflag=direct status=none; }

note "a SCHED_IDLE reader is served at SCHED_IDLE"
seen=$(sample_while chrt --idle 0 bash -c "$(declare -f read_file); M='$M'; read_file")
echo "$seen" | grep -q '^5 ' || fail "no worker ran SCHED_IDLE during an idle read (seen: $seen)"

note "a nice 15 reader is served at nice 15"
seen=$(sample_while nice -n 15 bash -c "$(declare -f read_file); M='$M'; read_file")
echo "$seen" | grep -qx "0 $want_nice" ||
	fail "no worker ran at nice $want_nice during a nice 15 read (daemon at $base; seen: $seen)"

note "a normal reader is served at the daemon's priority"
seen=$(sample_while bash -c "$(declare -f read_file); M='$M'; read_file")
[ "$seen" = "$base" ] || fail "a worker ran lowered during a normal read (daemon at $base; seen: $seen)"

note "every worker has the daemon's priority back"
seen=$(workers | sort -u)
[ "$seen" = "$base" ] || fail "a worker kept a lowered priority (daemon at $base; seen: $seen)"
cmp "$M/c1/f" <(seq 1 30000000) || fail "c1/f reads back wrong"
ck_umount "$M"
note "PASS"
