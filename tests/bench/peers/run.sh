#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Side-by-side benchmark of ckptfs against the stores people use for checkpoint images today:
# casync, borg, restic (each in its default configuration and tuned for 4 KiB pages), plain
# `zstd -1` (no dedup) and plain `cp` into a directory. See docs/benchmarks.md, section "Peers".
#
#   sudo tests/bench/peers/run.sh [--quick] [--update-docs] [--keep] [--ckpts N]
#                                 [--workloads python,sqlite] [--tools LIST] [--workdir DIR]
#
# Workloads are real processes: python3 holding a large dict, sqlite3 with an in-memory database.
# Each is checkpointed N times (default 10) with `ckptfs dump --leave-running` into plain
# directories, a few % of its memory changing in between. When our dump cannot dump the workload
# yet, the stand-in memsnap (this folder) dumps it the same way, and the report says so.
# Every tool then adds the same checkpoints one after another; measured: store size (du -sb),
# time of each add (tool + sync of the store's filesystem), time to read the last checkpoint
# back in full (caches dropped; ckptfs remounted) into tmpfs, verified byte for byte, and peak
# memory (/usr/bin/time max RSS; for the ckptfs daemon its VmHWM).
#
# Output in tests/bench/peers/out/: results.md, results.csv, peers.png, raw.tsv, logs.
# The goals are printed as HOLDS/MISSES; this is a measurement, so it exits 0 either way,
# and non-zero only when the benchmark itself could not run (or a read-back was wrong).
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../../.." && pwd)
out=$here/out

quick=0
update_docs=0
keep=0
nckpt=10
workloads=python,sqlite
tools=ckptfs,casync-default,casync-4k,borg-default,borg-4k,restic-default,zstd-1,cp
workroot=/var/tmp

usage() {
	sed -n '4,10p' "$0" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--update-docs) update_docs=1 ;;
	--keep) keep=1 ;;
	--ckpts) nckpt=$2; shift ;;
	--workloads) workloads=$2; shift ;;
	--tools) tools=$2; shift ;;
	--workdir) workroot=$2; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "run.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
	esac
	shift
done

if [ "$quick" = 1 ]; then
	mode=quick
	py_mib=64
	sql_mib=32
else
	mode=full
	py_mib=512
	sql_mib=256
fi
# Percent of the python dict's values rewritten between checkpoints (a few runs of neighbouring
# keys plus single keys); sqlite3 updates a similar share of its rows.
py_percent=3
sql_percent=2

say() { printf '[peers %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { say "FATAL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (FUSE mounts, ptrace, drop_caches)"

# ---------------------------------------------------------------------------------------------
# Cleanup: everything started or mounted here is registered and undone on any exit.
work=
rbroot=
started_pids=()
mounted=()
wl_pid=

cleanup() {
	local rc=$? p m
	set +e
	for m in "${mounted[@]}"; do
		if mountpoint -q "$m"; then
			fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
		fi
	done
	if [ -n "$wl_pid" ]; then
		kill "$wl_pid" 2>/dev/null
	fi
	for p in "${started_pids[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${started_pids[@]}" $wl_pid; do
		for _ in $(seq 50); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$p" 2>/dev/null
	done
	[ -n "$rbroot" ] && rm -rf "$rbroot"
	if [ -n "$work" ]; then
		if [ "$keep" = 1 ]; then
			say "kept $work"
		else
			rm -rf "$work"
		fi
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# Peers from Debian, our helpers, our build.
need=()
for p in casync borgbackup restic zstd gnuplot-nox sqlite3 time attr fuse3 python3 libzstd-dev \
	libxxhash-dev gcc; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	say "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

mkdir -p "$out/bin" "$out/logs"
rm -f "$out"/logs/*
cflags=(-std=gnu11 -O2 -Wall -Wextra -Wshadow -Wmissing-prototypes -Wno-unused-parameter -Werror
	-D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -I"$top")
cc "${cflags[@]}" -o "$out/bin/memsnap" "$here/memsnap.c" "$top/common/log.c"
cc "${cflags[@]}" -o "$out/bin/ideal" "$here/ideal.c" "$top/common/log.c" -lzstd -lxxhash

ckptfs=
ckptfs_why=
if [[ ",$tools," == *,ckptfs,* ]] || [ "${CKPTFS_PEERS_DUMP:-auto}" != memsnap ]; then
	bdir=$top/build-peers
	# A setup that failed half-way leaves a directory without build.ninja: start it over.
	if [ ! -f "$bdir/build.ninja" ]; then
		rm -rf "$bdir"
		meson setup "$bdir" "$top" --buildtype=release >"$out/logs/meson-setup.log" 2>&1 ||
			ckptfs_why="meson setup of ckptfs failed: $(grep -m1 ERROR "$out/logs/meson-setup.log")"
	fi
	if [ -z "$ckptfs_why" ]; then
		if ninja -C "$bdir" >"$out/logs/ninja.log" 2>&1; then
			ckptfs=$bdir/tools/ckptfs
		else
			ckptfs_why="build of ckptfs failed: $(grep -m1 'error' "$out/logs/ninja.log")"
		fi
	fi
	[ -n "$ckptfs_why" ] && say "$ckptfs_why"
fi

work=$(mktemp -d "$workroot/ckptfs-peers.XXXXXX")
rbroot=$(mktemp -d /dev/shm/ckptfs-peers-rb.XXXXXX)
RANDOM=1
raw=$out/raw.tsv
: >"$raw"
rec() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$raw"; }

export BORG_PASSPHRASE='' BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_BASE_DIR=$work/borg-base
export RESTIC_PASSWORD=x RESTIC_CACHE_DIR=$work/restic-cache

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }
drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}
# Max RSS of every tool process run since the last rss_reset, in KiB.
rssf=$work/rss
rss_reset() { : >"$rssf"; }
rss_max() { sort -n "$rssf" | tail -n1; }
TIMEV=(/usr/bin/time -f %M -a -o "$rssf")

# ---------------------------------------------------------------------------------------------
# The tools. Each has NAME_init STORE, NAME_add STORE SRCDIR CKPTNAME (cwd = the checkpoints'
# parent, so archives hold the relative name) and NAME_restore STORE CKPTNAME DEST.

casync_default_init() { mkdir -p "$1/chunks"; }
casync_default_add() { "${TIMEV[@]}" casync make --store="$1/chunks" "$1/$3.caidx" "$2" >/dev/null; }
casync_default_restore() {
	"${TIMEV[@]}" casync extract --store="$1/chunks" "$1/$2.caidx" "$3/$2"
}
# Tuned: fixed 4 KiB chunks (min = avg = max), the smallest casync's chunker makes in practice for
# page data; the archive stream is not page-aligned, so identical pages only match when their
# stream offsets agree.
casync_4k_init() { mkdir -p "$1/chunks"; }
casync_4k_add() {
	"${TIMEV[@]}" casync make --chunk-size=4096:4096:4096 --store="$1/chunks" "$1/$3.caidx" \
		"$2" >/dev/null
}
casync_4k_restore() { casync_default_restore "$@"; }

borg_default_init() { borg init --encryption none "$1/repo" >/dev/null; }
borg_default_add() { "${TIMEV[@]}" borg create "$1/repo::$3" "$3"; }
borg_default_restore() { (cd "$3" && "${TIMEV[@]}" borg extract "$1/repo::$2"); }
borg_4k_init() { borg_default_init "$@"; }
borg_4k_add() {
	"${TIMEV[@]}" borg create --chunker-params fixed,4096 --compression zstd,3 "$1/repo::$3" "$3"
}
borg_4k_restore() { borg_default_restore "$@"; }

restic_default_init() { restic -q -r "$1/repo" init >/dev/null; }
restic_default_add() { "${TIMEV[@]}" restic -q -r "$1/repo" backup "$3" >/dev/null; }
restic_default_restore() {
	"${TIMEV[@]}" restic -q -r "$1/repo" restore latest --target "$3" >/dev/null
}

zstd_1_init() { mkdir -p "$1"; }
zstd_1_add() { tar -cf - "$3" | "${TIMEV[@]}" zstd -1 -q -o "$1/$3.tar.zst"; }
zstd_1_restore() { "${TIMEV[@]}" zstd -d -q -c "$1/$2.tar.zst" | tar -C "$3" -xf -; }

cp_init() { mkdir -p "$1"; }
cp_add() { "${TIMEV[@]}" cp -a "$3" "$1/$3"; }
cp_restore() { "${TIMEV[@]}" cp -a "$1/$2" "$3/"; }

# ckptfs: through the FUSE mount, the way any engine writes into it.
ck_daemon=
ck_mnt=
ck_hwm=0
ckptfs_mount() { # STORE MNT LOG
	mkdir -p "$2"
	"$ckptfs" mount -f "$1" "$2" >>"$3" 2>&1 &
	ck_daemon=$!
	started_pids+=("$ck_daemon")
	mounted+=("$2")
	for _ in $(seq 100); do
		if mountpoint -q "$2"; then
			return 0
		fi
		kill -0 "$ck_daemon" 2>/dev/null || break
		sleep 0.1
	done
	say "ckptfs mount of '$1' on '$2' did not come up: $(tail -n3 "$3" | tr '\n' ' ')"
	return 1
}
ckptfs_note_hwm() {
	local h
	h=$(awk '/^VmHWM:/ { print $2 }' "/proc/$ck_daemon/status" 2>/dev/null || echo 0)
	[ "${h:-0}" -gt "$ck_hwm" ] && ck_hwm=$h
	return 0
}
ckptfs_umount() {
	ckptfs_note_hwm
	fusermount3 -u "$ck_mnt" || return 1
	for _ in $(seq 100); do
		kill -0 "$ck_daemon" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$ck_daemon" 2>/dev/null; then
		say "ckptfs daemon $ck_daemon still running after unmount"
		return 1
	fi
	wait "$ck_daemon" 2>/dev/null || true
	ck_daemon=
}
ckptfs_init() {
	"$ckptfs" init "$1/store" >/dev/null || return 1
	ck_mnt=$1/mnt
	ck_hwm=0
	ckptfs_mount "$1/store" "$ck_mnt" "$1/daemon.log"
}
# Not the source's xattrs: `ckptfs dump` marks even a plain directory with user.ckptfs.seal, and
# cp -a would copy that mark over before it sets the directory's mode, which a sealed checkpoint
# refuses. The seal comes last, once everything is written.
ckptfs_add() {
	cp -a --no-preserve=xattr "$2" "$ck_mnt/$3" && setfattr -n user.ckptfs.seal -v 1 "$ck_mnt/$3"
}
ckptfs_restore() { cp -a "$ck_mnt/$2" "$3/"; }
# Stored bytes are the backing store only, not the mount point.
ckptfs_size_path() { echo "$1/store"; }

tool_fn() { # TOOL VERB -> function name
	local t=${1//-/_}
	echo "${t}_$2"
}

# ---------------------------------------------------------------------------------------------
# Workloads: started as coprocesses, driven through their stdin/stdout.

wl_start() { # KIND
	case $1 in
	python)
		coproc WL { exec /usr/bin/python3 "$here/dictload.py" "$py_mib" "$py_percent" 1; }
		wl_pid=$WL_PID
		local word pid n
		read -r -t 600 word pid n <&"${WL[0]}" || die "python workload did not start"
		[ "$word" = ready ] && [ "$pid" = "$wl_pid" ] || die "python workload said '$word $pid'"
		say "python3 dict workload pid $wl_pid: $n entries, $(wl_rss) MiB resident"
		;;
	sqlite)
		coproc WL { exec sqlite3 -batch :memory: 2>&1; }
		wl_pid=$WL_PID
		# ~105 bytes of table + index per row, all in sqlite's page cache (:memory: never spills).
		sql_rows=$((sql_mib * 1048576 / 105))
		cat >&"${WL[1]}" <<-EOF
			PRAGMA cache_size = -2000000;
			CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT NOT NULL, v TEXT NOT NULL);
			WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $sql_rows)
			  INSERT INTO t SELECT x, printf('key-%010d', x), hex(randomblob(24)) FROM c;
			CREATE INDEX t_k ON t(k);
			SELECT 'ready', count(*) FROM t;
		EOF
		local l
		read -r -t 600 l <&"${WL[0]}" || die "sqlite3 workload did not start"
		[[ $l == ready\|* ]] || die "sqlite3 workload said '$l'"
		say "sqlite3 :memory: workload pid $wl_pid: ${l#ready|} rows, $(wl_rss) MiB resident"
		;;
	esac
}
wl_rss() { awk '/^VmRSS:/ { printf "%d", $2 / 1024 }' "/proc/$wl_pid/status"; }
wl_mutate() { # KIND
	local l
	case $1 in
	python)
		echo m >&"${WL[1]}"
		read -r -t 120 l <&"${WL[0]}" || die "python workload did not answer"
		[[ $l == ok* ]] || die "python workload said '$l'"
		;;
	sqlite)
		# A few runs of neighbouring rows plus scattered single rows (1/20 of them), about
		# sql_percent % of the rows in all.
		local want=$((sql_rows * sql_percent / 100)) runs=8 i start sql=
		local run_len=$((want * 19 / 20 / runs))
		for ((i = 0; i < runs; i++)); do
			start=$(((RANDOM * 32768 + RANDOM) % (sql_rows - run_len) + 1))
			sql+="UPDATE t SET v = hex(randomblob(24)) WHERE id BETWEEN $start AND $((start + run_len - 1));"
		done
		sql+="UPDATE t SET v = hex(randomblob(24)) WHERE id IN (SELECT abs(random()) % $sql_rows + 1 FROM t LIMIT $((want / 20)));"
		echo "$sql SELECT 'ok', total_changes();" >&"${WL[1]}"
		read -r -t 120 l <&"${WL[0]}" || die "sqlite3 workload did not answer"
		[[ $l == ok\|* ]] || die "sqlite3 workload said '$l'"
		;;
	esac
}
# The workload must still be whole after being dumped N times with --leave-running.
wl_check() { # KIND
	local l
	case $1 in
	python)
		echo c >&"${WL[1]}"
		read -r -t 120 l <&"${WL[0]}" || die "python workload died after the dumps"
		[[ $l == sum* ]] || die "python workload said '$l'"
		;;
	sqlite)
		echo "PRAGMA integrity_check;" >&"${WL[1]}"
		read -r -t 300 l <&"${WL[0]}" || die "sqlite3 workload died after the dumps"
		[ "$l" = ok ] || die "sqlite3 integrity_check after the dumps: '$l'"
		;;
	esac
	say "workload state intact after the dumps ($l)"
}
wl_stop() { # KIND
	case $1 in
	python) echo q >&"${WL[1]}" ;;
	sqlite) echo .quit >&"${WL[1]}" ;;
	esac
	for _ in $(seq 50); do
		kill -0 "$wl_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill "$wl_pid" 2>/dev/null || true
	wait "$wl_pid" 2>/dev/null || true
	wl_pid=
}

# Which dumper: our own `ckptfs dump --leave-running` whenever it can dump this workload,
# the memsnap stand-in otherwise. Decided on the first checkpoint, then kept for all N.
dumper=
dump_one() { # KIND DIR
	local log=$out/logs/dump-$1.log
	if [ -z "$dumper" ]; then
		dumper=memsnap
		if [ "${CKPTFS_PEERS_DUMP:-auto}" = memsnap ]; then
			dumper_why="forced by CKPTFS_PEERS_DUMP=memsnap"
		elif [ -z "$ckptfs" ]; then
			dumper_why=$ckptfs_why
		elif "$ckptfs" dump --pid "$wl_pid" --leave-running "$2" >>"$log" 2>&1 &&
			kill -0 "$wl_pid" 2>/dev/null &&
			[ -n "$(find "$2" -type f -name '*pages*' -size +0 -print -quit)" ]; then
			dumper=ckptfs
			dumper_why="ckptfs dump --leave-running works on this workload"
			return 0
		else
			dumper_why="ckptfs dump failed on it: $(tail -n1 "$log")"
			kill -0 "$wl_pid" 2>/dev/null || die "workload $1 died in the failed ckptfs dump"
			rm -rf "$2"
		fi
		[ "${CKPTFS_PEERS_DUMP:-auto}" = ckptfs ] && die "ckptfs dump required: $dumper_why"
	fi
	case $dumper in
	ckptfs) "$ckptfs" dump --pid "$wl_pid" --leave-running "$2" >>"$log" 2>&1 ||
		die "ckptfs dump of $1 into '$2' failed: $(tail -n1 "$log")" ;;
	memsnap) "$out/bin/memsnap" "$wl_pid" "$2" >/dev/null 2>>"$log" ||
		die "memsnap of $1 into '$2' failed: $(tail -n1 "$log")" ;;
	esac
}

# ---------------------------------------------------------------------------------------------

run_tool() { # WORKLOAD TOOL CKPTDIR
	local wl=$1 tool=$2 src=$3 store=$work/store-$1-$2 rb t0 t1 i name sizep
	local log=$out/logs/$wl-$tool.log
	local f_init f_add f_restore
	f_init=$(tool_fn "$tool" init)
	f_add=$(tool_fn "$tool" add)
	f_restore=$(tool_fn "$tool" restore)
	mkdir -p "$store"
	if ! "$f_init" "$store" >>"$log" 2>&1; then
		say "$tool: init failed (see $log)"
		rec "$wl" "$tool" error init
		return 0
	fi
	rss_reset
	(
		cd "$src"
		for ((i = 1; i <= nckpt; i++)); do
			name=$(printf 'ckpt-%02d' "$i")
			t0=$EPOCHREALTIME
			"$f_add" "$store" "$src/$name" "$name" >>"$log" 2>&1 ||
				{ echo "add of $name failed" >>"$log"; exit 1; }
			sync -f "$store"
			t1=$EPOCHREALTIME
			rec "$wl" "$tool" add_s "$(elapsed "$t0" "$t1")"
		done
	) || {
		say "$tool: add failed (see $log: $(tail -n1 "$log"))"
		rec "$wl" "$tool" error add
		[ "$tool" = ckptfs ] && ckptfs_umount >>"$log" 2>&1
		rm -rf "$store"
		return 0
	}
	sizep=$store
	if [ "$tool" = ckptfs ]; then
		sizep=$(ckptfs_size_path "$store")
		# The mount compresses what streamed in raw once writes are idle (deferred
		# compression): measure the settled store, and say how long settling took.
		local t_settle0=$SECONDS i d=
		for ((i = 0; i < 1200; i++)); do
			d=$("$ckptfs" df --json "$store/store" 2>/dev/null |
				sed -n 's/.*"deferred_bytes": *\([0-9]*\).*/\1/p')
			[ "$d" = 0 ] && break
			sleep 0.1
		done
		[ "$d" = 0 ] || say "ckptfs: store not settled after 120 s ($d deferred bytes)"
		say "ckptfs: background compression settled $((SECONDS - t_settle0)) s after the last add"
	fi
	rec "$wl" "$tool" store_bytes "$(du -sb "$sizep" | cut -f1)"
	rec "$wl" "$tool" store_alloc_bytes "$(du -sB1 "$sizep" | cut -f1)"
	if [ "$tool" = ckptfs ]; then
		"$ckptfs" df --json "$store/store" >"$out/logs/$wl-ckptfs-df.json" 2>>"$log" || true
		du -sb "$store/store"/* >"$out/logs/$wl-ckptfs-du.txt" 2>>"$log" || true
		ckptfs_umount >>"$log" 2>&1 || { say "ckptfs: unmount failed"; rec "$wl" "$tool" error umount; return 0; }
	fi

	# Read the last checkpoint back in full, from cold caches, into tmpfs.
	name=$(printf 'ckpt-%02d' "$nckpt")
	rb=$rbroot/$wl-$tool
	mkdir -p "$rb"
	drop_caches
	if [ "$tool" = ckptfs ]; then
		ckptfs_mount "$store/store" "$ck_mnt" "$store/daemon.log" || { rec "$wl" "$tool" error mount; return 0; }
	fi
	t0=$EPOCHREALTIME
	if "$f_restore" "$store" "$name" "$rb" >>"$log" 2>&1; then
		t1=$EPOCHREALTIME
		rec "$wl" "$tool" readback_s "$(elapsed "$t0" "$t1")"
		local got
		got=$(find "$rb" -type d -name "$name" -print -quit)
		if [ -n "$got" ] && diff -r --no-dereference "$src/$name" "$got" >>"$log" 2>&1; then
			rec "$wl" "$tool" verified yes
		else
			say "$tool: READ-BACK DIFFERS from $name (see $log)"
			rec "$wl" "$tool" verified NO
		fi
	else
		say "$tool: read-back failed (see $log: $(tail -n1 "$log"))"
		rec "$wl" "$tool" error readback
	fi
	rm -rf "$rb"
	if [ "$tool" = ckptfs ]; then
		ckptfs_umount >>"$log" 2>&1 || say "ckptfs: unmount after read-back failed"
		rec "$wl" "$tool" peak_rss_kib "$ck_hwm"
	else
		rec "$wl" "$tool" peak_rss_kib "$(rss_max)"
	fi
	rm -rf "$store"
	say "$tool: done ($(awk -F'\t' -v w="$wl" -v t="$tool" '$1 == w && $2 == t && $3 == "add_s" { s += $4 } END { printf "%.1f s of adds", s }' "$raw"))"
}

run_workload() { # KIND
	local wl=$1 ck=$work/ckpts-$1 i name t0 t1
	mkdir -p "$ck"
	wl_start "$wl"
	rec "$wl" workload rss_mib "$(wl_rss)"
	for ((i = 1; i <= nckpt; i++)); do
		name=$(printf 'ckpt-%02d' "$i")
		[ "$i" -gt 1 ] && wl_mutate "$wl"
		t0=$EPOCHREALTIME
		dump_one "$wl" "$ck/$name"
		t1=$EPOCHREALTIME
		rec "$wl" workload dump_s "$(elapsed "$t0" "$t1")"
		[ "$i" = 1 ] && say "dumper: $dumper ($dumper_why)"
	done
	rec "$wl" workload dumper "$dumper"
	wl_check "$wl"
	wl_stop "$wl"
	sync
	rec "$wl" workload ckpt_bytes "$(du -sb "$ck/$(printf 'ckpt-%02d' "$nckpt")" | cut -f1)"
	rec "$wl" workload all_ckpt_bytes "$(du -sb "$ck" | cut -f1)"

	local dirs=() line
	for ((i = 1; i <= nckpt; i++)); do
		dirs+=("$ck/$(printf 'ckpt-%02d' "$i")")
	done
	"$out/bin/ideal" "${dirs[@]}" >"$out/logs/$wl-ideal.txt" || die "ideal failed for $wl"
	line=$(tail -n1 "$out/logs/$wl-ideal.txt")
	rec "$wl" ideal store_bytes "$(sed -n 's/.*bytes=\([0-9]*\).*/\1/p' <<<"$line")"
	rec "$wl" ideal distinct_chunks "$(sed -n 's/.*distinct=\([0-9]*\).*/\1/p' <<<"$line")"
	rec "$wl" ideal chunks "$(sed -n 's/.*chunks=\([0-9]*\)$/\1/p' <<<"$line")"
	say "$wl: $nckpt checkpoints, $(du -sh "$ck" | cut -f1) in all; ideal: $line"

	local tool
	for tool in ${tools//,/ }; do
		if [ "$tool" = ckptfs ] && [ -z "$ckptfs" ]; then
			rec "$wl" ckptfs error "unavailable: $ckptfs_why"
			continue
		fi
		say "$wl: $tool"
		run_tool "$wl" "$tool" "$ck"
	done
	[ "$keep" = 1 ] || rm -rf "$ck"
}

say "machine: $(nproc) cores, kernel $(uname -r), $(awk '/MemTotal/ { printf "%d GiB", $2 / 1048576 }' /proc/meminfo); work dir $work"
say "mode: $mode: python3 dict ${py_mib} MiB, sqlite3 ${sql_mib} MiB, $nckpt checkpoints each"
load_start=$(cut -d' ' -f1 /proc/loadavg)
for wl in ${workloads//,/ }; do
	dumper=
	dumper_why=
	run_workload "$wl"
done

report_args=(--raw "$raw" --out "$out" --mode "$mode" --command "tests/bench/peers/run.sh")
if [ "$quick" = 1 ]; then
	report_args=(--raw "$raw" --out "$out" --mode "$mode" --command "tests/bench/peers/run.sh --quick")
fi
report_args+=(--load "$load_start $(cut -d' ' -f1 /proc/loadavg)")
if [ "$update_docs" = 1 ]; then
	report_args+=(--docs "$top/docs")
fi
python3 "$here/report.py" "${report_args[@]}"
if grep -q $'\tverified\tNO$' "$raw"; then
	say "a read-back did not match its checkpoint"
	exit 1
fi
