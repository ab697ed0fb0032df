#!/usr/bin/env bash
# The main job end to end: install deps, build, init a store, mount it, start a demo process,
# dump it into the mount, restore it from there, and show that it continued where it stopped.
# Run as root from the repository: sudo tools/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/install-deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
ckptfs=$PWD/build/tools/ckptfs

work=$(mktemp -d /tmp/ckptfs-demo.XXXXXX)
store=$work/store
mnt=$work/mnt
mkdir -p "$mnt"
daemon= demo= restored=
cleanup() {
	[ -n "$restored" ] && kill -KILL "$restored" 2>/dev/null || true
	[ -n "$demo" ] && kill -KILL "$demo" 2>/dev/null || true
	mountpoint -q "$mnt" && fusermount3 -u "$mnt" 2>/dev/null || true
	[ -n "$daemon" ] && wait "$daemon" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

echo "== ckptfs init $store"
"$ckptfs" init "$store"
echo "== ckptfs mount $store $mnt"
"$ckptfs" mount -f "$store" "$mnt" &
daemon=$!
for _ in $(seq 100); do mountpoint -q "$mnt" && break; sleep 0.1; done
mountpoint -q "$mnt" || { echo "demo: mount did not come up"; exit 1; }

echo "== starting a demo process: perl counting, one number per line every 0.1 s"
log=$work/counter.log
"$PWD/tools/without-inherited-fds.sh" perl -e '$| = 1; for (my $i = 0;; $i++) { print "$i\n"; select(undef, undef, undef, 0.1) }' \
	>"$log" 2>/dev/null </dev/null &
demo=$!
sleep 1.5
echo "   pid $demo, last line before the dump: $(tail -n1 "$log")"

echo "== ckptfs dump --pid $demo --leave-running $mnt/demo-0   (a first checkpoint; it keeps running)"
"$ckptfs" dump --pid "$demo" --leave-running "$mnt/demo-0"
sleep 0.5
echo "== ckptfs dump --pid $demo --parent $mnt/demo-0 $mnt/demo-1   (incremental: freezes, dumps, kills)"
"$ckptfs" dump --pid "$demo" --parent "$mnt/demo-0" "$mnt/demo-1"
{ wait "$demo"; } 2>/dev/null || true
before=$(tail -n1 "$log")
pid=$demo
demo=
echo "   the process is gone; last line: $before"
echo "== each checkpoint is a sealed directory of image files; the second one added only its changes:"
ls -l "$mnt/demo-1"
# A dump stores new pages raw and the mount compresses them once writes are idle (deferred
# compression): wait for that, so the sizes below are the settled ones.
for _ in $(seq 100); do
	"$ckptfs" df "$store" | grep -q '^deferred  *0 bytes' && break
	sleep 0.1
done
"$ckptfs" ls "$store"
echo "== ckptfs show $mnt/demo-1"
{ "$ckptfs" show "$mnt/demo-1" || true; } | head -n 25 # (show may get SIGPIPE from head)

echo "== ckptfs restore --detach $mnt/demo-1"
"$ckptfs" restore --detach --pidfile "$work/pid" "$mnt/demo-1"
restored=$(cat "$work/pid")
sleep 1.5
after=$(tail -n1 "$log")
echo "   restored pid $restored (was $pid); last line now: $after"
# The counter must go on from where it stopped: no repeat, no gap.
if awk 'NR > 1 && $1 != prev + 1 { bad = 1 } { prev = $1 } END { exit bad }' "$log" &&
	[ "$restored" = "$pid" ] && [ "$after" -gt "$before" ]; then
	echo "== demo OK: same PID, counter continued from $before to $after with no gap or repeat"
else
	echo "== demo FAILED"
	exit 1
fi
