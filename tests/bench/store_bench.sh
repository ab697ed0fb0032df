#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# store_bench.sh - the store benchmark of issue 2: writes N successive page-image "checkpoints"
# (3 % of pages dirtied between them) through ckptfs and, in the same run and on the same files,
# through tmpfs, libfuse's null and passthrough examples (the ceilings), then reads the last one
# back. Prints throughputs, the ratios against the goals (PASS/MISS), the store size against the
# ideal (distinct non-zero pages, each zstd -1 on its own) and the daemon's peak RSS; writes the
# same numbers as CSV. A measurement, not a test: exits 0 whether goals are met or not, non-zero
# only if the benchmark itself could not run. Needs root (FUSE mounts, drop_caches).
set -uo pipefail

usage() {
	cat <<EOF
usage: tests/bench/store_bench.sh [options]

  --size-mib N          size of each generation (default 300)
  --gens N              number of generations, the first fresh, the rest 97 % duplicate (default 10)
  --quick               64 MiB x 3 generations, no --big, no --compression-block (< 1 minute)
  --big / --no-big      also write one 4 GiB file through the mount and report the daemon's peak
                        RSS (default: on, off with --quick)
  --big-mib N           size of that file (default 4096)
  --compression-block   also measure compressing 1/2/4/8/16 consecutive distinct pages together
                        (default: on, off with --quick); --no-compression-block skips it
  --csv PATH            where to write the CSV (default tests/bench/out/store_bench.csv; the
                        report text goes next to it as store_bench.txt)
  --seed S              generator seed (default 1)
  --read-rounds N       read the last generation back N times per target, report the median (default 3)
  --fresh-rounds N      time N fresh writes per target (generation 1 plus N-1 more all-new images
                        written after the store was measured), report the median (default 3)
  --workdir DIR         disk directory for stores and mountpoints (default /var/tmp)
  --ckptfs PATH         use this ckptfs binary instead of building build-bench/
  --no-seal             do not seal each ckptfs generation after writing it (default: seal, as a
                        dump does, with the user.ckptfs.seal xattr; timed separately)
  -h, --help            this text
EOF
}

size_mib=300
gens=10
big=1
big_mib=4096
blocks=1
csv=
seed=1
disk_base=/var/tmp
read_rounds=3
fresh_rounds=3
seal=1
ckptfs_bin=
while [ $# -gt 0 ]; do
	case $1 in
	--size-mib) size_mib=${2:?}; shift ;;
	--gens) gens=${2:?}; shift ;;
	--quick) size_mib=64; gens=3; big=0; blocks=0 ;;
	--big) big=1 ;;
	--no-big) big=0 ;;
	--big-mib) big_mib=${2:?}; shift ;;
	--compression-block) blocks=1 ;;
	--no-compression-block) blocks=0 ;;
	--csv) csv=${2:?}; shift ;;
	--seed) seed=${2:?}; shift ;;
	--read-rounds) read_rounds=${2:?}; shift ;;
	--fresh-rounds) fresh_rounds=${2:?}; shift ;;
	--workdir) disk_base=${2:?}; shift ;;
	--ckptfs) ckptfs_bin=${2:?}; shift ;;
	--no-seal) seal=0 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "store_bench: unknown option '$1'" >&2; usage >&2; exit 2 ;;
	esac
	shift
done
for v in size_mib gens big_mib seed read_rounds fresh_rounds; do
	if ! [[ ${!v} =~ ^[0-9]+$ ]] || [ "${!v}" -lt 1 ]; then
		echo "store_bench: --${v//_/-} needs a positive integer" >&2
		exit 2
	fi
done
[ "$gens" -ge 2 ] || { echo "store_bench: --gens needs at least 2 (one fresh, one incremental)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "store_bench: run as root (FUSE mounts, drop_caches)" >&2; exit 1; }

top=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "$csv" ]; then
	mkdir -p "$top/tests/bench/out" || exit 1
	csv=$top/tests/bench/out/store_bench.csv
fi
examples=/usr/share/doc/libfuse3-dev/examples

# --- cleanup: every mount, daemon and temp dir this run created, undone on any exit ---------------
declare -A live_pids=()   # pid -> what it is
declare -a mounts=()      # mountpoints, in mount order
declare -a mnt_paths=()   # mountpoint dirs/files to remove once unmounted
declare -a data_dirs=()   # temp dirs (never contain a mountpoint)

is_mounted() { # $1 = absolute path
	awk -v p="$1" '$5 == p { f = 1 } END { exit !f }' /proc/self/mountinfo
}

reap() { # $1 = pid: wait for a daemon we started (it flushes its store on unmount), at most 60 s, then SIGKILL it
	local pid=$1 i
	for ((i = 0; i < 600; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "store_bench: ${live_pids[$pid]} (pid $pid) did not exit; killing it" >&2
		kill -9 "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	unset "live_pids[$pid]"
}

unmount() { # $1 = mountpoint
	is_mounted "$1" || return 0
	fusermount3 -u "$1" 2>/dev/null || fusermount3 -u -z "$1" 2>/dev/null || umount -l "$1"
}

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	local i pid d
	for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
		unmount "${mounts[$i]}"
	done
	for pid in "${!live_pids[@]}"; do
		kill "$pid" 2>/dev/null
		reap "$pid"
	done
	for ((i = ${#mnt_paths[@]} - 1; i >= 0; i--)); do
		d=${mnt_paths[$i]}
		if is_mounted "$d"; then
			echo "store_bench: '$d' is still mounted; leaving it" >&2
		elif [ -d "$d" ]; then
			rmdir "$d" 2>/dev/null
		elif [ -f "$d" ]; then
			rm -f "$d"
		fi
	done
	for d in "${data_dirs[@]}"; do
		# never descend into a mount (passthrough mirrors /): refuse if anything is mounted below
		if awk -v p="$d/" 'index($5, p) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then
			echo "store_bench: something is still mounted below '$d'; leaving it" >&2
		else
			rm -rf --one-file-system "$d"
		fi
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
	echo "store_bench: $*" >&2
	exit 1
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
shm=$(mktemp -d /dev/shm/ckptfs-bench.XXXXXX) || die "cannot create a temp dir in /dev/shm"
data_dirs+=("$shm")
disk=$(mktemp -d "$disk_base/ckptfs-bench.XXXXXX") || die "cannot create a temp dir in '$disk_base'"
data_dirs+=("$disk")
mntroot=$(mktemp -d "$disk_base/ckptfs-bench-mnt.XXXXXX") || die "cannot create a temp dir in '$disk_base'"
mnt_paths+=("$mntroot")
bin=$disk/bin
mkdir -p "$bin" "$shm/gens"
gen_file() { echo "$shm/gens/gen-$1.img"; }

# --- FUSE daemons -----------------------------------------------------------------------------------
daemon_pid=
# start_fuse NAME MOUNTPOINT LOG CMD...: runs CMD (a foreground FUSE daemon) in the background and
# waits until MOUNTPOINT is mounted. Sets daemon_pid. Returns 1 (daemon reaped) if it never mounts.
start_fuse() {
	local name=$1 mnt=$2 log=$3 i
	shift 3
	"$@" >>"$log" 2>&1 &
	daemon_pid=$!
	live_pids[$daemon_pid]=$name
	mounts+=("$mnt")
	for ((i = 0; i < 200; i++)); do
		is_mounted "$mnt" && return 0
		kill -0 "$daemon_pid" 2>/dev/null || break
		sleep 0.05
	done
	echo "store_bench: $name did not mount '$mnt'; its output:" >&2
	sed 's/^/    /' "$log" | tail -20 >&2
	kill "$daemon_pid" 2>/dev/null
	reap "$daemon_pid"
	return 1
}

stop_fuse() { # $1 = mountpoint, $2 = pid
	unmount "$1"
	reap "$2"
}

peak_rss_kib() { # $1 = pid: VmHWM in KiB
	awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# --- timing helpers ---------------------------------------------------------------------------------
now_ns() { date +%s%N; }

# timed_write SRC DST: dd with a final fsync (the same tool for every target); echoes nanoseconds.
timed_write() {
	local t0 t1
	t0=$(now_ns)
	dd if="$1" of="$2" bs=1M conv=fsync status=none || return 1
	t1=$(now_ns)
	echo $((t1 - t0))
}

timed_read() { # $1 = file; echoes nanoseconds
	local t0 t1
	t0=$(now_ns)
	cat "$1" >/dev/null || return 1
	t1=$(now_ns)
	echo $((t1 - t0))
}

mbps() { # bytes ns -> MB/s (10^6 bytes per second)
	awk -v b="$1" -v t="$2" 'BEGIN { if (t > 0) printf "%.0f", b * 1000 / t; else print "" }'
}

ratio() { # a b -> a/b
	awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && b > 0) printf "%.3f", a / b; else print "" }'
}

median() { # numbers as arguments -> the median (the lower middle one for an even count)
	printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}

gen_bytes=$((size_mib * 1048576))

# Results: res[TARGET,METRIC]; fresh/incr/read/big in MB/s, rss/bigrss in KiB, verify, note,
# store_packs/store_total in bytes.
declare -A res=()

progress() { echo "store_bench: $*" >&2; }

# --- 1. helpers: page generator and libfuse's examples, built here (never copied into the tree) ----
progress "building gen_pages and libfuse's null/passthrough/passthrough_ll examples"
cc -O2 -std=gnu11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Wall -Wextra -Wno-unused-parameter \
	-I"$top" -o "$bin/gen_pages" "$top/tests/bench/gen_pages.c" -lzstd -lxxhash ||
	die "cannot build gen_pages (needs libzstd-dev, libxxhash-dev)"
have_example() { [ -x "$bin/$1" ]; }
for ex in null passthrough passthrough_ll; do
	if [ -f "$examples/$ex.c" ]; then
		# shellcheck disable=SC2046
		cc -O2 -w -I"$examples" -o "$bin/$ex" "$examples/$ex.c" $(pkg-config --cflags --libs fuse3) -lpthread \
			>"$disk/cc-$ex.log" 2>&1 || progress "building the $ex example failed: $(tail -3 "$disk/cc-$ex.log")"
	else
		progress "no $examples/$ex.c (install libfuse3-dev); skipping $ex"
	fi
done

# --- 2. ckptfs, built in its own build dir ----------------------------------------------------------
ckptfs=
ckptfs_skip=
bdir=$top/build-bench
if [ -n "$ckptfs_bin" ]; then
	[ -x "$ckptfs_bin" ] || die "--ckptfs '$ckptfs_bin' is not an executable"
	ckptfs=$(realpath "$ckptfs_bin")
elif [ ! -f "$bdir/build.ninja" ]; then
	# our own build dir: a half-configured one (an earlier setup failed) is started over
	rm -rf "$bdir"
	meson setup "$bdir" "$top" --buildtype=release >"$disk/meson-setup.log" 2>&1 ||
		ckptfs_skip="meson setup failed: $(tail -3 "$disk/meson-setup.log" | tr '\n' ' ')"
fi
if [ -z "$ckptfs_skip" ] && [ -z "$ckptfs" ]; then
	if ninja -C "$bdir" tools/ckptfs >"$disk/ninja.log" 2>&1; then
		ckptfs=$bdir/tools/ckptfs
	else
		ckptfs_skip="the build failed (ninja -C $bdir): $(grep -m1 -A1 '^FAILED' "$disk/ninja.log" | tr '\n' ' ')"
	fi
fi
if [ -n "$ckptfs" ]; then
	# probe: does init + mount work at all yet?
	mkdir -p "$mntroot/probe"
	mnt_paths+=("$mntroot/probe")
	if ! "$ckptfs" init "$disk/probe-store" >"$disk/probe-init.log" 2>&1; then
		ckptfs_skip="'ckptfs init' failed: $(head -c 300 "$disk/probe-init.log")"
	elif ! start_fuse ckptfs-probe "$mntroot/probe" "$disk/probe-mount.log" \
		"$ckptfs" mount -f "$disk/probe-store" "$mntroot/probe"; then
		ckptfs_skip="'ckptfs mount' did not mount: $(head -c 300 "$disk/probe-mount.log")"
	else
		stop_fuse "$mntroot/probe" "$daemon_pid"
	fi
	rm -rf "$disk/probe-store"
fi
[ -z "$ckptfs_skip" ] || progress "SKIPPING ckptfs targets: $ckptfs_skip"

# --- 3. the generations, in tmpfs --------------------------------------------------------------------
progress "generating $gens generations of $size_mib MiB in $shm"
"$bin/gen_pages" gen --seed "$seed" --size-mib "$size_mib" "$(gen_file 1)" 2>>"$disk/gen.log" ||
	die "gen_pages gen failed: $(tail -3 "$disk/gen.log")"
for ((k = 2; k <= gens; k++)); do
	"$bin/gen_pages" mutate --seed $((seed * 1000 + k)) --percent 3 "$(gen_file $((k - 1)))" "$(gen_file "$k")" \
		2>>"$disk/gen.log" || die "gen_pages mutate failed: $(tail -3 "$disk/gen.log")"
done
for ((r = 2; r <= fresh_rounds; r++)); do
	"$bin/gen_pages" gen --seed $((seed + 100 + r)) --size-mib "$size_mib" "$(gen_file "fresh-$r")" \
		2>>"$disk/gen.log" || die "gen_pages gen failed: $(tail -3 "$disk/gen.log")"
done
gen_list=()
for ((k = 1; k <= gens; k++)); do gen_list+=("$(gen_file "$k")"); done
ideal_line=$("$bin/gen_pages" ideal "${gen_list[@]}") || die "gen_pages ideal failed"
ideal=$(sed -n 's/.*ideal_bytes=\([0-9]*\).*/\1/p' <<<"$ideal_line")
ideal_capped=$(sed -n 's/.*ideal_capped_bytes=\([0-9]*\).*/\1/p' <<<"$ideal_line")
distinct=$(sed -n 's/.*distinct_pages=\([0-9]*\).*/\1/p' <<<"$ideal_line")
zero_pages=$(sed -n 's/.*zero_pages=\([0-9]*\).*/\1/p' <<<"$ideal_line")
total_pages=$(sed -n 's/.* pages=\([0-9]*\).*/\1/p' <<<"$ideal_line")

# --- 4. the targets, side by side --------------------------------------------------------------------
# Every target is mounted at once and each generation is written to all of them in turn (rotating
# the order), so that load from anything else on the machine hits all targets alike and the ratios
# stay meaningful even when absolute numbers wobble.
declare -A tmnt=() tpid=() store_of=()
targets=(tmpfs)
have_example null && targets+=(null-fs)
have_example passthrough && targets+=(passthrough)
have_example passthrough_ll && targets+=(passthrough_ll)
if [ -z "$ckptfs_skip" ]; then
	targets+=(ckptfs-disk ckptfs-tmpfs)
	store_of[ckptfs-disk]=$disk/store
	store_of[ckptfs-tmpfs]=$shm/store
fi
mkdir -p "$shm/t-tmpfs" "$shm/t-passthrough" "$shm/t-passthrough_ll"
for t in "${targets[@]}"; do
	case $t in
	tmpfs) ;;
	null-fs) tmnt[$t]=$mntroot/null; : >"${tmnt[$t]}" ;;
	*) tmnt[$t]=$mntroot/$t; mkdir -p "${tmnt[$t]}" ;;
	esac
	[ -z "${tmnt[$t]:-}" ] || mnt_paths+=("${tmnt[$t]}")
done

target_start() { # T: mounts T's daemon (tmpfs: nothing to do)
	local t=$1 m=${tmnt[$1]:-}
	case $t in
	tmpfs) return 0 ;;
	null-fs) start_fuse "$t" "$m" "$disk/$t.log" "$bin/null" -f "$m" ;;
	passthrough) start_fuse "$t" "$m" "$disk/$t.log" "$bin/passthrough" -f "$m" ;;
	passthrough_ll)
		start_fuse "$t" "$m" "$disk/$t.log" "$bin/passthrough_ll" -f -o source="$shm/t-$t" "$m" ;;
	ckptfs-*) start_fuse "$t" "$m" "$disk/$t.log" "$ckptfs" mount -f "${store_of[$t]}" "$m" ;;
	esac || return 1
	tpid[$t]=$daemon_pid
}

# CPU seconds (user + system, all threads) a daemon has used so far. Unlike MB/s it hardly moves
# when other work shares the machine, so it is the steadier measure of what a target costs.
cpu_seconds() { # $1 = pid
	local tck
	tck=$(getconf CLK_TCK)
	# fields after the ")" that ends comm: utime and stime are the 12th and 13th
	sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk -v hz="$tck" '{ printf "%.2f", ($12 + $13) / hz }'
}

phase='write' # which phase target_stop charges the daemon's CPU time to
target_stop() { # T: unmounts T and reaps its daemon, keeping its peak RSS and CPU time
	local t=$1 rss cpu
	[ -n "${tpid[$t]:-}" ] || return 0
	rss=$(peak_rss_kib "${tpid[$t]}")
	cpu=$(cpu_seconds "${tpid[$t]}")
	[ -z "$cpu" ] || res[$t,cpu_$phase]=$(awk -v a="${res[$t,cpu_$phase]:-0}" -v b="$cpu" 'BEGIN { printf "%.2f", a + b }')
	[ -z "$rss" ] || [ "$rss" -le "${res[$t,rss]:-0}" ] || res[$t,rss]=$rss
	stop_fuse "${tmnt[$t]}" "${tpid[$t]}"
	unset "tpid[$t]"
}

target_file() { # T K: where generation K goes
	case $1 in
	tmpfs) echo "$shm/t-tmpfs/gen-$2/pages.img" ;;
	null-fs) echo "${tmnt[$1]}" ;; # null's only file is its mountpoint
	passthrough) echo "${tmnt[$1]}$shm/t-passthrough/gen-$2/pages.img" ;; # it mirrors /
	*) echo "${tmnt[$1]}/gen-$2/pages.img" ;;
	esac
}

alive=()
for t in "${targets[@]}"; do
	if [[ $t == ckptfs-* ]] && ! "$ckptfs" init "${store_of[$t]}" >"$disk/$t-init.log" 2>&1; then
		res[$t,note]="init failed: $(head -c 200 "$disk/$t-init.log")"
	elif ! target_start "$t"; then
		res[$t,note]="did not mount"
	else
		alive+=("$t")
	fi
done

progress "writing $gens generations to: ${alive[*]}"
declare -A incr_ns=() fresh_list=() seal_list=()
drop_caches
for ((k = 1; k <= gens; k++)); do
	n=${#alive[@]}
	for ((j = 0; j < n; j++)); do
		t=${alive[$(((j + k) % n))]}
		[ -z "${res[$t,note]:-}" ] || continue
		f=$(target_file "$t" "$k")
		if [ "$t" != null-fs ] && ! mkdir -p "$(dirname "$f")" 2>"$disk/$t.err"; then
			res[$t,note]="generation $k: $(tail -1 "$disk/$t.err")"
			continue
		fi
		if ! ns=$(timed_write "$(gen_file "$k")" "$f" 2>"$disk/$t.err"); then
			res[$t,note]="generation $k: $(tail -1 "$disk/$t.err")"
			continue
		fi
		if [ "$k" -eq 1 ]; then
			fresh_list[$t]+="$(mbps "$gen_bytes" "$ns") "
			[ -z "${tpid[$t]:-}" ] || res[$t,cpu_gen1]=$(cpu_seconds "${tpid[$t]}")
		else
			incr_ns[$t]=$((${incr_ns[$t]:-0} + ns))
		fi
		# plain copies pile up in RAM: keep only the newest (through the mount, so FUSE lets go)
		case $t in
		tmpfs | passthrough*) [ "$k" -eq 1 ] || rm -rf "$(dirname "$(dirname "$f")")/gen-$((k - 1))" ;;
		esac
		# a dump seals its checkpoint when done (which writes its manifest): do the same, timed
		# apart from the write so that the write ratios compare like with like
		if [[ $t == ckptfs-* ]] && [ "$seal" -eq 1 ]; then
			t0=$(now_ns)
			if setfattr -n user.ckptfs.seal -v 1 "$(dirname "$f")" 2>>"$disk/$t-seal.log"; then
				seal_list[$t]+="$((($(now_ns) - t0) / 1000000)) "
			else
				res[$t,note]="sealing generation $k failed: $(tail -1 "$disk/$t-seal.log")"
			fi
		fi
	done
done
for t in "${alive[@]}"; do
	# shellcheck disable=SC2086 # the list is space-separated numbers
	[ -z "${seal_list[$t]:-}" ] || res[$t,seal_ms]=$(median ${seal_list[$t]})
done
for t in "${alive[@]}"; do
	[ -z "${incr_ns[$t]:-}" ] || res[$t,incr]=$(mbps $((gen_bytes * (gens - 1))) "${incr_ns[$t]}")
	target_stop "$t"
done

# Reads of the last generation: each round remounts every FUSE target and drops caches, so the
# bytes come from the daemon (and for ckptfs-disk from the disk); the median round is reported.
readers=()
for t in "${alive[@]}"; do
	[ "$t" = null-fs ] || [ -n "${res[$t,note]:-}" ] || readers+=("$t")
done
progress "reading generation $gens back, $read_rounds rounds: ${readers[*]}"
phase='read'
declare -A read_list=()
for ((r = 0; r < read_rounds; r++)); do
	for t in "${readers[@]}"; do
		[ -z "${res[$t,note]:-}" ] || continue
		target_start "$t" || { res[$t,note]="remount failed"; continue; }
		drop_caches
		if ns=$(timed_read "$(target_file "$t" "$gens")" 2>"$disk/$t.err"); then
			read_list[$t]+="$(mbps "$gen_bytes" "$ns") "
		else
			res[$t,note]="reading back: $(tail -1 "$disk/$t.err")"
		fi
		# untimed, last round: the bytes must be the ones written, or the numbers mean nothing
		if [ $((r + 1)) -eq "$read_rounds" ]; then
			if cmp -s "$(target_file "$t" "$gens")" "$(gen_file "$gens")"; then
				res[$t,verify]=ok
			else
				res[$t,verify]=MISMATCH
				progress "$t: generation $gens does not read back what was written"
			fi
		fi
		target_stop "$t"
	done
done
for t in "${readers[@]}"; do
	[ -n "${read_list[$t]:-}" ] || continue
	# shellcheck disable=SC2086 # the list is space-separated numbers
	res[$t,read]=$(median ${read_list[$t]})
	res[$t,read_all]=${read_list[$t]% }
done

for t in ckptfs-disk ckptfs-tmpfs; do
	store=${store_of[$t]:-}
	if [ -z "$store" ] || [ ! -d "$store" ]; then
		continue
	fi
	# A mount stores what streams in raw and compresses it in the background once idle
	# (deferred compression); the daemon is gone now, so finish that pass here: the sizes below
	# are those of a settled store.
	"$ckptfs" gc --compress-deferred "$store" >/dev/null 2>&1 ||
		echo "store_bench: gc --compress-deferred of '$store' failed" >&2
	res[$t,store_total]=$(du -sb "$store" | cut -f1)
	# the store's own accounting: compressed record bytes and index bytes
	dfj=$("$ckptfs" df --json "$store" 2>/dev/null)
	res[$t,df_stored]=$(sed -n 's/.*"stored_bytes": *\([0-9]*\).*/\1/p' <<<"$dfj")
	res[$t,df_index]=$(sed -n 's/.*"index_bytes": *\([0-9]*\).*/\1/p' <<<"$dfj")
	res[$t,df_garbage]=$(sed -n 's/.*"garbage_bytes": *\([0-9]*\).*/\1/p' <<<"$dfj")
	if [ -d "$store/packs" ]; then
		res[$t,store_packs]=$(du -sb "$store/packs" | cut -f1)
	else
		# no packs/ dir in this layout: ask the store itself
		res[$t,store_packs]=$("$ckptfs" df --json "$store" 2>/dev/null |
			sed -n 's/.*"pack_bytes"[^0-9]*\([0-9]*\).*/\1/p')
	fi
done
# More fresh writes: a fresh checkpoint is one sample per target otherwise, and this machine is
# shared. Each round writes a new image (no page in common with anything stored) to every target.
if [ "$fresh_rounds" -gt 1 ]; then
	progress "$((fresh_rounds - 1)) more fresh writes per target"
	phase='fresh'
	writers=()
	for t in "${alive[@]}"; do
		[ -n "${res[$t,note]:-}" ] || ! target_start "$t" || writers+=("$t")
	done
	for ((r = 2; r <= fresh_rounds; r++)); do
		n=${#writers[@]}
		for ((j = 0; j < n; j++)); do
			t=${writers[$(((j + r) % n))]}
			f=$(target_file "$t" "fresh-$r")
			[ "$t" = null-fs ] || mkdir -p "$(dirname "$f")" || continue
			ns=$(timed_write "$(gen_file "fresh-$r")" "$f") && fresh_list[$t]+="$(mbps "$gen_bytes" "$ns") "
			case $t in
			tmpfs | passthrough*) rm -rf "$(dirname "$f")" ;;
			esac
		done
	done
	for t in "${writers[@]}"; do
		target_stop "$t"
	done
fi
for t in "${alive[@]}"; do
	# shellcheck disable=SC2086 # the list is space-separated numbers
	res[$t,fresh]=$(median ${fresh_list[$t]:-})
	res[$t,fresh_all]=${fresh_list[$t]% }
done
rm -rf "$shm/t-tmpfs" "$shm/t-passthrough" "$shm/t-passthrough_ll"

# --- 5. one big file: does the daemon's memory stay bounded? -----------------------------------------
big_note=
if [ "$big" -eq 1 ]; then
	progress "big file: generating $big_mib MiB"
	phase='big'
	bigf=$shm/big.img
	big_bytes=$((big_mib * 1048576))
	if ! "$bin/gen_pages" gen --seed $((seed + 77)) --size-mib "$big_mib" "$bigf" 2>>"$disk/gen.log"; then
		big_note="generating the big file failed"
	else
		for t in null-fs ckptfs-disk; do
			[ -n "${tmnt[$t]:-}" ] || continue
			progress "big file through $t"
			if [ "$t" = ckptfs-disk ]; then
				# a fresh store, so that the file's pages are all new (the worst case)
				store_of[$t]=$disk/store-big
				"$ckptfs" init "${store_of[$t]}" >"$disk/big-init.log" 2>&1 ||
					{ big_note="ckptfs init for the big file failed"; continue; }
			fi
			gens_rss=${res[$t,rss]:-}
			unset "res[$t,rss]"
			target_start "$t" || { big_note="$t did not mount for the big file"; continue; }
			f=$(target_file "$t" big)
			[ "$t" = null-fs ] || mkdir -p "$(dirname "$f")"
			if ns=$(timed_write "$bigf" "$f"); then
				res[$t,big]=$(mbps "$big_bytes" "$ns")
			else
				big_note="writing the big file through $t failed"
			fi
			target_stop "$t"
			res[$t,bigrss]=${res[$t,rss]:-}
			res[$t,rss]=$gens_rss
		done
		[ -z "${store_of[ckptfs-disk]:-}" ] || rm -rf "$disk/store-big"
	fi
	rm -f "$bigf"
fi

# --- 6. compression-block experiment ------------------------------------------------------------------
blocks_out=
if [ "$blocks" -eq 1 ]; then
	progress "compression-block experiment over the $gens generations"
	blocks_out=$("$bin/gen_pages" ideal --groups 1,2,4,8,16 "${gen_list[@]}") || blocks_out="(failed)"
fi

# --- 7. report ---------------------------------------------------------------------------------------
num() { if [ -n "${1:-}" ]; then echo "$1"; else echo "-"; fi; }
mib() { awk -v k="${1:-}" 'BEGIN { if (k == "") print "-"; else printf "%.1f", k / 1024 }'; }
csv_rows=()

goal_line() { # label value op goal
	local label=$1 v=$2 op=$3 g=$4 status
	if [ -z "$v" ]; then
		status=n/a
	elif awk -v v="$v" -v g="$g" -v op="$op" 'BEGIN { exit !(op == ">=" ? v >= g : v <= g) }'; then
		status=PASS
	else
		status=MISS
	fi
	printf '  %-62s %9s   goal %s %-5s %s\n' "$label" "$(num "$v")" "$op" "$g" "$status"
	csv_rows+=("goal,\"$label\",$v,x,$op $g,$status")
}

info_line() { # label value unit
	printf '  %-62s %9s %s\n' "$1" "$(num "$2")" "${3:-}"
	csv_rows+=("info,\"$1\",$2,${3:-},,")
}

report() {
	local t p=passthrough ck
	echo
	echo "ckptfs store benchmark (tests/bench/store_bench.sh)  $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "machine: $(nproc) cores, kernel $(uname -r), load average at start $load_start, at end $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "data: $gens generations x $size_mib MiB, 3 % of pages dirtied per generation; $total_pages pages, $zero_pages zero, $distinct distinct non-zero"
	echo "writes: dd bs=1M conv=fsync, all targets mounted at once, generations written round-robin;"
	echo "        fresh = median of $fresh_rounds all-new images, incr = generations 2..$gens together"
	echo "reads: cat of generation $gens after remount + drop_caches, median of $read_rounds rounds; MB = 10^6 bytes"
	echo
	printf '%-15s %11s %11s %10s %7s %13s %9s  %s\n' target "fresh_MB/s" "incr_MB/s" "read_MB/s" verify "peak_RSS_MiB" "big_MB/s" note
	for t in "${targets[@]}"; do
		printf '%-15s %11s %11s %10s %7s %13s %9s  %s\n' "$t" "$(num "${res[$t,fresh]:-}")" \
			"$(num "${res[$t,incr]:-}")" "$(num "${res[$t,read]:-}")" "$(num "${res[$t,verify]:-}")" \
			"$(mib "${res[$t,rss]:-}")" "$(num "${res[$t,big]:-}")" "${res[$t,note]:-}"
	done
	[ -z "$ckptfs_skip" ] || echo "ckptfs: SKIPPED ($ckptfs_skip)"

	echo
	echo "goals (ckptfs-disk is the product; ckptfs-tmpfs shows what the disk costs):"
	for ck in ckptfs-disk ckptfs-tmpfs; do
		[ -z "$ckptfs_skip" ] || [ "$ck" = ckptfs-disk ] || continue
		goal_line "$ck incremental write / null-fs" "$(ratio "${res[$ck,incr]:-}" "${res[null-fs,incr]:-}")" ">=" 0.8
		goal_line "$ck fresh write / null-fs" "$(ratio "${res[$ck,fresh]:-}" "${res[null-fs,fresh]:-}")" ">=" 0.5
		goal_line "$ck read / passthrough read" "$(ratio "${res[$ck,read]:-}" "${res[$p,read]:-}")" ">=" 0.8
		goal_line "$ck read / tmpfs read (PRODUCT: within 1.5x of cp)" "$(ratio "${res[$ck,read]:-}" "${res[tmpfs,read]:-}")" ">=" 0.667
		goal_line "$ck store packs / ideal" "$(ratio "${res[$ck,store_packs]:-}" "$ideal")" "<=" 1.05
		goal_line "$ck store total (packs + index + manifests) / ideal" "$(ratio "${res[$ck,store_total]:-}" "$ideal")" "<=" 1.05
	done

	echo
	echo "other ratios:"
	for ck in ckptfs-disk ckptfs-tmpfs; do
		[ -n "${res[$ck,incr]:-}" ] || continue
		info_line "$ck incremental write / tmpfs (cp to tmpfs)" "$(ratio "${res[$ck,incr]:-}" "${res[tmpfs,incr]:-}")"
		info_line "$ck fresh write / tmpfs" "$(ratio "${res[$ck,fresh]:-}" "${res[tmpfs,fresh]:-}")"
		info_line "$ck read / passthrough_ll read" "$(ratio "${res[$ck,read]:-}" "${res[passthrough_ll,read]:-}")"
	done
	info_line "null-fs / tmpfs incremental write (FUSE's own cost)" "$(ratio "${res[null-fs,incr]:-}" "${res[tmpfs,incr]:-}")"
	info_line "passthrough / null-fs incremental write" "$(ratio "${res[$p,incr]:-}" "${res[null-fs,incr]:-}")"
	info_line "passthrough read / tmpfs read" "$(ratio "${res[$p,read]:-}" "${res[tmpfs,read]:-}")"

	echo
	if [ "$seal" -eq 1 ]; then
		echo "sealing each checkpoint after its write (setfattr user.ckptfs.seal; median of $gens):"
		for ck in ckptfs-disk ckptfs-tmpfs; do
			[ -z "${res[$ck,seal_ms]:-}" ] || info_line "$ck seal" "${res[$ck,seal_ms]}" ms
		done
		echo
	fi
	echo "store size (ideal = distinct non-zero 4 KiB pages, each compressed alone with zstd -1):"
	info_line "logical bytes written" "$((gen_bytes * gens))" bytes
	info_line "ideal" "$ideal" bytes
	info_line "ideal if incompressible pages were stored raw" "$ideal_capped" bytes
	for ck in ckptfs-disk ckptfs-tmpfs; do
		[ -n "${res[$ck,store_total]:-}" ] || continue
		info_line "$ck packs (du -sb)" "${res[$ck,store_packs]:-}" bytes
		info_line "$ck total with index + manifests (du -sb)" "${res[$ck,store_total]}" bytes
		info_line "$ck stored chunk bytes (ckptfs df)" "${res[$ck,df_stored]:-}" bytes
		info_line "$ck garbage in packs (ckptfs df; gc reclaims it)" "${res[$ck,df_garbage]:-}" bytes
		info_line "$ck index bytes (ckptfs df)" "${res[$ck,df_index]:-}" bytes
		info_line "$ck stored chunk bytes / ideal" "$(ratio "${res[$ck,df_stored]:-}" "$ideal")"
	done

	echo
	echo "daemon CPU time (user + system, all threads; steadier than MB/s on a shared machine):"
	for t in "${targets[@]}"; do
		[ -n "${res[$t,cpu_write]:-}" ] || continue
		info_line "$t, writing the $gens generations" "${res[$t,cpu_write]}" s
		if [ -n "${res[$t,cpu_gen1]:-}" ]; then
			info_line "$t, per GB of generation 1 (fresh)" "$(ratio "${res[$t,cpu_gen1]}" "$(awk -v b=$gen_bytes 'BEGIN { print b / 1e9 }')")" s/GB
			info_line "$t, per GB of generations 2..$gens (incremental)" "$(awk -v a="${res[$t,cpu_write]}" -v g1="${res[$t,cpu_gen1]}" -v b=$((gen_bytes * (gens - 1))) 'BEGIN { printf "%.3f", (a - g1) / (b / 1e9) }')" s/GB
		fi
		[ -z "${res[$t,cpu_read]:-}" ] || info_line "$t, per GB read" "$(ratio "${res[$t,cpu_read]}" "$(awk -v b=$((gen_bytes * read_rounds)) 'BEGIN { print b / 1e9 }')")" s/GB
		[ -z "${res[$t,cpu_fresh]:-}" ] || info_line "$t, per GB of the extra fresh images" "$(ratio "${res[$t,cpu_fresh]}" "$(awk -v b=$((gen_bytes * (fresh_rounds - 1))) 'BEGIN { print b / 1e9 }')")" s/GB
		[ -z "${res[$t,cpu_big]:-}" ] || info_line "$t, per GB of the big file" "$(ratio "${res[$t,cpu_big]}" "$(awk -v b=$((big_mib * 1048576)) 'BEGIN { print b / 1e9 }')")" s/GB
	done
	echo
	echo "daemon peak RSS (VmHWM just before unmount):"
	for t in "${targets[@]}"; do
		[ -z "${res[$t,rss]:-}" ] || info_line "$t, $gens generations + reads" "$(mib "${res[$t,rss]}")" MiB
	done
	if [ "$big" -eq 1 ]; then
		for t in null-fs ckptfs-disk; do
			[ -n "${res[$t,bigrss]:-}" ] || continue
			info_line "$t, one $big_mib MiB file: peak RSS" "$(mib "${res[$t,bigrss]}")" MiB
			info_line "$t, one $big_mib MiB file: write" "${res[$t,big]:-}" MB/s
		done
		[ -z "$big_note" ] || echo "  big file: $big_note"
	fi

	if [ -n "$blocks_out" ]; then
		echo
		echo "compression blocks: G consecutive distinct pages compressed together with zstd -1"
		echo "(vs_1page < 1 means smaller; a reader of one page decompresses its whole block):"
		while IFS= read -r line; do echo "  $line"; done <<<"$blocks_out"
	fi
}

report_file=${csv%.csv}.txt
[ "$report_file" != "$csv" ] || report_file=$csv.txt
# report() runs in this shell (it collects csv_rows), so it goes through a file, not a pipe
report >"$disk/report.txt"
cat "$disk/report.txt"
cp "$disk/report.txt" "$report_file" || die "cannot write '$report_file'"

# CSV: one row per number
{
	echo "kind,name,value,unit,goal,result"
	for t in "${targets[@]}"; do
		for m in fresh incr read big; do
			[ -z "${res[$t,$m]:-}" ] || echo "throughput,$t $m,${res[$t,$m]},MB/s,,"
		done
		[ -z "${res[$t,read_all]:-}" ] || echo "throughput,$t read rounds,\"${res[$t,read_all]}\",MB/s,,"
		[ -z "${res[$t,fresh_all]:-}" ] || echo "throughput,$t fresh rounds,\"${res[$t,fresh_all]}\",MB/s,,"
		[ -z "${res[$t,rss]:-}" ] || echo "rss,$t,${res[$t,rss]},KiB,,"
		for m in gen1 write read fresh big; do
			[ -z "${res[$t,cpu_$m]:-}" ] || echo "cpu,$t $m,${res[$t,cpu_$m]},s,,"
		done
		[ -z "${res[$t,bigrss]:-}" ] || echo "rss,$t big file,${res[$t,bigrss]},KiB,,"
		[ -z "${res[$t,verify]:-}" ] || echo "verify,$t,${res[$t,verify]},,,"
		[ -z "${res[$t,seal_ms]:-}" ] || echo "seal,$t,${res[$t,seal_ms]},ms,,"
		[ -z "${res[$t,store_packs]:-}" ] || echo "size,$t packs,${res[$t,store_packs]},bytes,,"
		[ -z "${res[$t,store_total]:-}" ] || echo "size,$t total,${res[$t,store_total]},bytes,,"
		[ -z "${res[$t,df_stored]:-}" ] || echo "size,$t df stored,${res[$t,df_stored]},bytes,,"
		[ -z "${res[$t,df_index]:-}" ] || echo "size,$t df index,${res[$t,df_index]},bytes,,"
	done
	echo "size,ideal,$ideal,bytes,,"
	echo "size,logical,$((gen_bytes * gens)),bytes,,"
} >"$csv" || die "cannot write '$csv'"
# the goal/info rows were collected while the report ran in this shell
printf '%s\n' "${csv_rows[@]}" >>"$csv"
progress "CSV written to $csv, report to $report_file"
exit 0
