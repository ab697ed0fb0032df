#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# fuse_pause.sh - the FUSE C/R benchmark of issue 4: the longest time a client request waited
# while the test daemon (tests/fusecr/testfs.c) was dumped and restored right away, for a
# daemon with a small and with a 256 MiB memory footprint. Two clients hammer the mount
# (fuseclient counter mode: read the counter, create and read back files) across the gap;
# the image goes to a directory under /tmp. Prints one row per footprint: dump wall time,
# restore wall time (until the pid file appears), the longest client wait, client errors.
# A measurement: exits 0 unless a dump, a restore or a client failed.
#
# usage: tests/bench/fuse_pause.sh [--build DIR]        (default build dir build/)
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$top/build
while [ $# -gt 0 ]; do
	case $1 in
	--build) build=$(readlink -f "$2"); shift 2 ;;
	-h | --help) sed -n '3,11p' "$0"; exit 0 ;;
	*) echo "fuse_pause: unknown option '$1'" >&2; exit 2 ;;
	esac
done
if [ ! -d "$build" ]; then
	meson setup "$build" >/dev/null || exit 1
fi
ninja -C "$build" tools/ckptfs tests/fusecr/fusecr_testfs tests/fusecr/fusecr_client \
	>/dev/null || exit 1
export CKPTFS=$build/tools/ckptfs
TESTFS=$build/tests/fusecr/fusecr_testfs
FUSECLIENT=$build/tests/fusecr/fusecr_client
source "$top/tests/fusecr/fusecr_lib.sh"

ms_now() { echo $(($(date +%s%N) / 1000000)); }

run_one() { # MIB
	local mib=$1
	local m=$T/mnt-$mib img=$T/img-$mib d r rp i t0 t1 t2 worst=0 errs=0 w e
	mkdir -p "$m"
	rm -f "$T/stop"
	"$TESTFS" -m "$mib" "$m" &
	d=$!
	fc_track "$d"
	fc_track_mount "$m"
	fc_wait_mount "$m" 60
	for i in 1 2; do
		"$FUSECLIENT" counter "$m" "$T/stop" >"$T/c$i-$mib.out" 2>&1 &
		C[i]=$!
		fc_track "${C[i]}"
	done
	sleep 0.5
	fc_track_image "$img"
	t0=$(ms_now)
	"$CKPTFS" dump --pid "$d" "$img" 2>"$T/dump-$mib.err" || fc_fail "dump: $(cat "$T/dump-$mib.err")"
	t1=$(ms_now)
	wait "$d" 2>/dev/null
	"$CKPTFS" restore --pidfile "$T/pid-$mib" "$img" >"$T/restore-$mib.out" 2>&1 &
	r=$!
	fc_track "$r"
	fc_wait 120 "the restored pid file" test -s "$T/pid-$mib"
	t2=$(ms_now)
	rp=$(cat "$T/pid-$mib")
	fc_track "$rp"
	sleep 0.5
	touch "$T/stop"
	for i in 1 2; do
		fc_join "${C[i]}" 60 || errs=$((errs + 1))
		w=$(sed -n 's/.*max_wait_ms=\([0-9]*\).*/\1/p' "$T/c$i-$mib.out")
		e=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' "$T/c$i-$mib.out")
		[ "${w:-0}" -gt "$worst" ] && worst=$w
		errs=$((errs + ${e:-1}))
	done
	printf '%-10s %10s %12s %14s %8s   %s\n' "${mib} MiB" "$((t1 - t0))" "$((t2 - t1))" \
		"$worst" "$errs" "$(sed -n 's/.*\(frozen for [0-9.]* ms\).*/\1/p' "$T/dump-$mib.err")"
	kill -TERM "$rp"
	fc_join "$r" 30 >/dev/null
	rm -rf "$img"
	[ "$errs" = 0 ]
}

printf '%-10s %10s %12s %14s %8s\n' footprint "dump ms" "restore ms" "max wait ms" errors
rc=0
run_one 0 || rc=1
run_one 256 || rc=1
exit $rc
