#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# codec_bench.sh - the store's per-page literal choice (index/compress.c) on real checkpoint
# pages: dumps two processes into a tmpfs directory with ckptfs's own C/R core - cr_memhog
# (MIB MiB of text-like, pointer-like, zero and random pages) and python3 holding a 2-million
# entry dict - and runs codec_bench on their pages.img: bytes and single-core decode time of
# zstd -1 with zstd's own literal coding, with raw literals, and as the store encodes (ratios
# to zstd -1). A measurement: exits non-zero only if a dump or the codec check failed.
#
# usage: tests/bench/codec_bench.sh [--mib N] [--build DIR]   (default 512 MiB, build/; root)
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
mib=512
build=$top/build
while [ $# -gt 0 ]; do
	case $1 in
	--mib) mib=$2; shift 2 ;;
	--build) build=$(readlink -f "$2"); shift 2 ;;
	-h | --help) sed -n '3,10p' "$0"; exit 0 ;;
	*) echo "codec_bench: unknown option '$1'" >&2; exit 2 ;;
	esac
done
[ -d "$build" ] || meson setup "$build" >/dev/null || exit 1
ninja -C "$build" tools/ckptfs tests/cr/cr_memhog tests/bench/codec_bench >/dev/null || exit 1
ckptfs=$build/tools/ckptfs
tmp=$(mktemp -d /dev/shm/ckptfs-codec.XXXXXX) || exit 1
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT

# start NAME READY-LINE CMD...: runs CMD (no inherited fds: the dump refuses outside pipe
# peers) until it prints READY-LINE, then dumps it into $tmp/NAME (which ends it).
start_and_dump() {
	local name=$1 ready=$2 pid i
	shift 2
	"$top/tools/without-inherited-fds.sh" "$@" </dev/null >"$tmp/$name.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	for ((i = 0; i < 600; i++)); do
		grep -qx "$ready" "$tmp/$name.log" && break
		kill -0 "$pid" 2>/dev/null || { cat "$tmp/$name.log"; return 1; }
		sleep 0.1
	done
	"$ckptfs" dump --pid "$pid" "$tmp/$name" >/dev/null 2>"$tmp/$name.err" ||
		{ cat "$tmp/$name.err"; return 1; }
	wait "$pid" 2>/dev/null # ended by the dump
	unset 'pids[-1]' # reaped: its pid may be another process's by the time cleanup runs
	return 0
}

start_and_dump memhog READY "$build/tests/cr/cr_memhog" "$mib" realistic ||
	{ echo "codec_bench: dumping cr_memhog failed" >&2; exit 1; }
start_and_dump python READY python3 -c '
import time
d = {"key-%d" % i: (i, str(i * 7), [i, i + 1]) for i in range(2_000_000)}
print("READY", flush=True)
while True:
    time.sleep(1)
' || { echo "codec_bench: dumping python3 failed" >&2; exit 1; }
"$build/tests/bench/codec_bench" "$tmp"/memhog/task-*/pages.img "$tmp"/python/task-*/pages.img
