#!/usr/bin/env bash
# show_seals.sh WL_MEMFD_SEALS - `ckptfs show` prints memfd seals: wl_memfd_seals (mode
# seals) is dumped with --leave-running; the text names each memfd's seals and the JSON has
# them as numbers and names, for fds and for the mapping-only memfd.
source "$(dirname "$0")/cr_lib.sh"

wl=$(readlink -f "$1")
cr_workload_files
"$wl" "$scratch" seals </dev/null >>"$log" 2>&1 &
pid=$!
cr_track "$pid"
cr_wait_line "$log" '^READY$' 20 "$pid" || cr_fail "workload $pid did not print READY"
cr_ckptfs 60 dump --pid "$pid" --leave-running "$img" || cr_fail "dump --leave-running failed"
cr_show "$img"
cr_show_has 'seals seal,shrink,grow,write /memfd:wl-seal-frozen' "the seals of fd memfd wl-seal-frozen"
cr_show_has 'seals none /memfd:wl-seal-none' "'seals none' for wl-seal-none"
cr_show_has 'memfd mode 0[0-7]+ seals shrink,grow$' "the seals of the mapping-only memfd"
python3 - "$CR_TMP/show.json" <<'PY' || cr_fail "show --json lacks the seals"
import json, sys
t = json.load(open(sys.argv[1]))["tasks"][0]
fds = {f["path"]: f for f in t["fds"] if f["kind"] == "memfd"}
assert fds["/memfd:wl-seal-frozen"]["seals"] == 0xf, fds
assert fds["/memfd:wl-seal-frozen"]["seal_names"] == ["seal", "shrink", "grow", "write"]
assert fds["/memfd:wl-seal-future"]["seal_names"] == ["shrink", "grow", "future_write"]
assert fds["/memfd:wl-seal-default"]["seal_names"] == ["seal"]
maps = [v for v in t["vmas"] if "wl-seal-maponly" in (v["path"] or "")]
assert maps and maps[0]["seal_names"] == ["shrink", "grow"], maps
PY
kill -TERM "$pid"
wait "$pid"
[ $? -eq 0 ] || cr_fail "the workload failed its checks after the dump"
cr_log "PASS"
