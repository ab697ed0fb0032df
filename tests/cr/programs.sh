# shellcheck shell=bash
# programs.sh - the unmodified Debian programs the C/R tests run (sourced). Each prints an
# increasing counter, one number per line, to stdout, sleeping a little in between, and keeps
# some state it checks as it goes. No child processes (bash uses the loadable sleep builtin).

cr_program_start() { # NAME OUTFILE ERRFILE -> sets CR_PROG_PID
	local name=$1 out=$2 err=$3
	case $name in
	python3)
		/usr/bin/python3 -c '
import sys, time
d = {k: k * 3 for k in range(200000)}
i = 0
while True:
    k = i % 200000
    if d[k] != k * 3 or len(d) != 200000:
        print("dict corrupted at", k, flush=True)
        sys.exit(1)
    print(i, flush=True)
    i += 1
    time.sleep(0.02)
' </dev/null >>"$out" 2>>"$err" &
		;;
	perl)
		/usr/bin/perl -e '
$| = 1;
my %h = map { $_ => $_ * 3 } 0 .. 49999;
for (my $i = 0;; $i++) {
	my $k = $i % 50000;
	die "hash corrupted at $k\n" unless $h{$k} == $k * 3;
	print "$i\n";
	select(undef, undef, undef, 0.02);
}' </dev/null >>"$out" 2>>"$err" &
		;;
	bash)
		/bin/bash -c 'enable -f /usr/lib/bash/sleep sleep || exit 1
i=0; while :; do echo $((i++)); sleep 0.05; done' </dev/null >>"$out" 2>>"$err" &
		;;
	tclsh)
		echo 'set i 0
while 1 { puts $i; flush stdout; incr i; after 20 }' >"$CR_TMP/counter.tcl"
		/usr/bin/tclsh "$CR_TMP/counter.tcl" </dev/null >>"$out" 2>>"$err" &
		;;
	*)
		cr_fail "unknown program '$name'"
		;;
	esac
	CR_PROG_PID=$!
	cr_track "$CR_PROG_PID"
}

cr_count_lines() { wc -l <"$1" | tr -d ' '; }

# Wait until FILE has at least N lines while PID runs; TIMEOUT seconds.
cr_wait_lines() {
	local file=$1 n=$2 pid=$3 timeout=$4 i
	for ((i = 0; i < timeout * 20; i++)); do
		[ "$(cr_count_lines "$file")" -ge "$n" ] && return 0
		cr_alive "$pid" || return 1
		sleep 0.05
	done
	return 1
}

# The counter file must read 0, 1, 2, ... with no gap and no repeat (a partial last line,
# cut by the final kill, is ignored). Prints the number of lines checked.
cr_check_sequence() {
	python3 - "$1" <<'PY'
import sys
data = open(sys.argv[1]).read()
lines = data.split("\n")[:-1]
for n, line in enumerate(lines):
    if line != str(n):
        ctx = lines[max(0, n - 3):n + 3]
        sys.exit(f"line {n + 1}: expected {n}, got {line!r} (around: {ctx})")
print(len(lines))
PY
}
